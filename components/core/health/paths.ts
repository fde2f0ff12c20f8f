/**
 * The health agent's paths to the origins (each origin directly; with failover.relay each other
 * PoP's relay): their checks (down after `fall` failures, up after `rise` successes), their cost,
 * the choice of nginx's primary and the upstream file and summary that follow from it. Pure, as
 * policy.ts, which calls these once a round.
 */
import type { AgentSettings } from "./settings";
import type { AgentState, Observations, PathState } from "./agent-state";
import type { StatusPath } from "./status";
import { renderUpstreams, UpstreamPath, upstreamRoles } from "./upstreams";

/** Every path at start, up (as the pushed upstream file has them): the origins in preference order, then the relays. */
export function pathsOf(settings: AgentSettings): PathState[] {
    const fresh = { up: true, good: 0, bad: 0, srttUs: 0, history: 0 };
    const direct = directOrder(settings).map((k): PathState =>
        ({ label: settings.origins[k].name, server: settings.origins[k].server, kind: "direct", index: k, ...fresh }));
    const relays = settings.relay ? settings.peers.map((p, j): PathState => ({ label: `via ${p.name}`, server: p.relayServer, kind: "relay", index: j, ...fresh })) : [];
    return [...direct, ...relays];
}

/** Origin indexes in the order of preference: originPreference, then the order of origins. */
export function directOrder(settings: { origins: ReadonlyArray<{ name: string }>; originPreference: readonly string[] }): number[] {
    const preferred = settings.originPreference.map((name) => settings.origins.findIndex((o) => o.name === name)).filter((k) => k >= 0);
    return [...preferred, ...settings.origins.map((_, k) => k).filter((k) => !preferred.includes(k))];
}


function popcount16(x: number): number {
    let n = 0;
    for (let v = x & 0xffff; v; v >>= 1) n += v & 1;
    return n;
}

/** A path's cost: its smoothed round trip plus a quarter for each of its last 16 checks that failed. */
export function pathScore(p: PathState): number {
    return Math.floor((p.srttUs * (4 + popcount16(p.history))) / 4);
}

/** Record one check of a path; returns a log line when the path goes up or down. */
function recordCheck(p: PathState, ok: boolean, rttUs: number, detail: string, settings: AgentSettings): string | undefined {
    p.history = ((p.history << 1) | (ok ? 0 : 1)) & 0xffff;
    if (ok) {
        p.good++;
        p.bad = 0;
        p.srttUs = p.srttUs === 0 ? rttUs : Math.floor((3 * p.srttUs + rttUs) / 4);
        if (!p.up && p.good >= settings.rise) {
            p.up = true;
            return `path ${p.label} up: ${settings.rise} checks in a row`;
        }
    } else {
        p.bad++;
        p.good = 0;
        p.lastError = detail;
        if (p.up && p.bad >= settings.fall) {
            p.up = false;
            return `path ${p.label} down: ${detail}, ${settings.fall} checks in a row`;
        }
    }
    return undefined;
}

/** Record this round's checks of every path; returns the paths that went down in it. */
export function updatePaths(s: AgentState, o: Observations, settings: AgentSettings, log: (l: string) => void): PathState[] {
    const wentDown: PathState[] = [];
    for (const p of s.paths) {
        const wasUp = p.up;
        let line: string | undefined;
        if (p.kind === "direct") {
            const c = o.origins[p.index] ?? { ok: false, rttUs: 0, detail: "not checked" };
            line = recordCheck(p, c.ok, c.rttUs, c.detail, settings);
        } else {
            const peer = s.peers[p.index];
            const mesh = o.peers[p.index]?.mesh;
            // A relay path is checked when its PoP is asked (meshAsks), not every round.
            if (mesh === undefined) continue;
            const why = !mesh.ok ? `${settings.peers[p.index].name} does not answer (${mesh.detail})`
                : !mesh.view.proxyOk ? `${settings.peers[p.index].name}'s proxy is down`
                    : `${settings.peers[p.index].name} reaches no origin`;
            line = recordCheck(p, peer.relayOk, Math.max(1, peer.relayUs), why, settings);
        }
        if (line) log(line);
        if (wasUp && !p.up) wentDown.push(p);
    }
    return wentDown;
}

/** The best working path among these (by score; a configured preference decides among direct ones). */
function bestOf(s: AgentState, candidates: number[], settings: AgentSettings): number {
    let best = -1;
    for (const k of candidates) {
        const p = s.paths[k];
        if (!p.up) continue;
        if (p.kind === "direct" && settings.originPreference.length > 0) return k;
        if (best < 0 || pathScore(p) < pathScore(s.paths[best])) best = k;
    }
    return best;
}

/**
 * The primary path: a direct one while any works, a relay only when none does. A working primary
 * stays unless another of its kind is clearly cheaper (by a fifth and by a millisecond), so
 * round-trip noise does not move traffic back and forth.
 */
export function choosePrimary(s: AgentState, settings: AgentSettings): void {
    const direct = s.paths.map((p, k) => (p.kind === "direct" ? k : -1)).filter((k) => k >= 0);
    const relays = s.paths.map((p, k) => (p.kind === "relay" ? k : -1)).filter((k) => k >= 0);
    let best = bestOf(s, direct, settings);
    if (best < 0) best = bestOf(s, relays, settings);
    const current = s.primary >= 0 ? s.paths[s.primary] : undefined;
    if (best >= 0 && current?.up && best !== s.primary && s.paths[best].kind === current.kind) {
        const preferenceDecides = current.kind === "direct" && settings.originPreference.length > 0;
        if (!preferenceDecides) {
            const a = pathScore(s.paths[best]);
            const b = pathScore(current);
            if (!(a * 5 < b * 4 && b - a > 1000)) best = s.primary;
        }
    }
    s.primary = best;
}

function upstreamPathsOf(s: AgentState): UpstreamPath[] {
    return s.paths.map((p) => ({ label: p.label, server: p.server, kind: p.kind, up: p.up }));
}

export function upstreamsText(s: AgentState, settings: AgentSettings): string {
    return renderUpstreams({ pop: settings.pop, file: settings.paths.upstreamsFile, paths: upstreamPathsOf(s), primary: s.primary, passiveFailTimeoutS: settings.passiveFailTimeoutS });
}

export function describePaths(s: AgentState): string {
    const primary = s.primary >= 0 ? s.paths[s.primary] : undefined;
    const parts = [primary ? `primary ${primary.label} (${(pathScore(primary) / 1000).toFixed(1)} ms)` : "no path works: every request gets the 503"];
    const roles = upstreamRoles(upstreamPathsOf(s), s.primary);
    for (const role of ["backup", "standby", "down"] as const) {
        const named = s.paths.filter((_, k) => roles[k] === role).map((p) => p.label);
        if (named.length) parts.push(`${role} ${named.join(", ")}`);
    }
    return parts.join("; ");
}

/** Each path as the status file shows it: its role in nginx's upstreams, round trip and recent failures. */
export function statusPaths(s: AgentState): StatusPath[] {
    const roles = upstreamRoles(upstreamPathsOf(s), s.primary);
    return s.paths.map((p, k) => ({
        name: p.label, kind: p.kind, up: p.up, role: roles[k],
        rtt_us: p.srttUs, failed_of_16: popcount16(p.history), ...(p.lastError && !p.up ? { last_error: p.lastError } : {}),
    }));
}
