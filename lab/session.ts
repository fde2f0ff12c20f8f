/**
 * A PoP's BGP session to its provider edge, as both ends report it: whether it is up, since
 * when, and how many route updates the PoP has received on it. The lab's checks that a change
 * leaves the session alone (a routing policy change, a withdrawal and re-announcement by the
 * health agent, the rehearsal's upgrade) compare two such samples.
 */
import type { LabRuntime } from "./boot";
import { ProtocolStatus, showProtocols } from "./birdc";
import type { EdgeSession } from "./edge";
import type { LabRegion } from "./topology";

export interface SessionSample {
    pop?: ProtocolStatus;
    edge?: EdgeSession;
}

/** The PoP's BGP session of a family (the one towards its upstream), or its IPv6 one. */
export function upstreamSession(protos: ProtocolStatus[], family: 4 | 6 = 6): ProtocolStatus | undefined {
    const bgp = protos.filter((p) => p.proto === "BGP");
    return bgp.find((p) => p.name.endsWith(`upstream${family}`)) ?? bgp[0];
}

export async function sampleSession(lab: LabRuntime, r: LabRegion): Promise<SessionSample> {
    const [pop, edge] = await Promise.all([
        showProtocols(r.pop.ns, lab.birdSocket(r.pop.ns)).then((ps) => upstreamSession(ps)),
        lab.edges.session(r),
    ]);
    return { pop, edge };
}

/**
 * A BIRD session's import counters (`show protocols all`: received, rejected, filtered, ignored,
 * accepted). `updates` and `withdraws` are the accepted ones: the changes to the routes it holds.
 * An update identical to the route already held is counted as ignored, as a damping router
 * ignores it (RFC 2439 charges a withdrawal, a re-advertisement or an attribute change, not a
 * repeat), and a busy edge does send repeats. `received` counts every update that arrived,
 * filtered ones too: it grows when the peer sends its routes again (a new session, or a route
 * refresh, which a BIRD reconfiguration with changed filters asks for).
 */
export function importChanges(p: ProtocolStatus | undefined): { updates: number; withdraws: number; received: number } {
    const column = (v: string | undefined, last: boolean) => Number((last ? /(\d+)\s*$/ : /^(\d+)/).exec(v ?? "")?.[1] ?? 0);
    const line = p?.details["Import updates"];
    return { updates: column(line, true), withdraws: column(p?.details["Import withdraws"], true), received: column(line, false) };
}

/**
 * Whether a session's "since" is the same before and after. Both daemons derive it at each query
 * from a monotonic clock and the current wall-clock time, so the same session reads a little
 * apart: FRR in epoch seconds (one second apart), BIRD with milliseconds (one millisecond apart).
 * A reset during the steps would move it by the steps' length (seconds) instead.
 */
export function sameSince(before: string, after: string): boolean {
    if (/^\d+$/.test(before) && /^\d+$/.test(after)) return Math.abs(Number(before) - Number(after)) <= 1;
    const at = (t: string) => Date.parse(/^\d{4}-/.test(t) ? t.replace(" ", "T") : `1970-01-01T${t}`);
    const a = at(before);
    const b = at(after);
    if (Number.isFinite(a) && Number.isFinite(b)) return Math.abs(a - b) <= 50;
    return before === after;
}

/**
 * What changed on the session between two samples, one phrase each; empty when it stayed up
 * throughout, neither end's "since" moved and the PoP received no route again.
 */
export function sessionChanges(before: SessionSample, after: SessionSample): string[] {
    const out: string[] = [];
    if (after.pop?.bgpState !== "Established") out.push(`the PoP's session is ${after.pop?.bgpState ?? "gone"}`);
    if (after.edge?.established !== true) out.push(`the edge's session is ${after.edge?.state ?? "gone"}`);
    if (!sameSince(before.pop?.since ?? "?", after.pop?.since ?? "?")) out.push(`the PoP's session restarted (since ${before.pop?.since} -> ${after.pop?.since})`);
    if (!sameSince(before.edge?.since ?? "?", after.edge?.since ?? "?")) out.push(`the edge's session restarted (since ${before.edge?.since} -> ${after.edge?.since})`);
    if (before.pop?.details["Import updates"] === undefined) out.push("BIRD reported no import counters");
    const [a, b] = [importChanges(before.pop).received, importChanges(after.pop).received];
    if (b !== a) out.push(`the edge sent the PoP ${b - a} route update(s) again (a route refresh or a new session)`);
    return out;
}
