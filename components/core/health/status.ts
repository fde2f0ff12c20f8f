/**
 * What a health agent says of itself: its status, as its HTTP server answers `/status` (the other
 * PoPs, `anycast-health status`, `anycast status`) and as it keeps it in the status file.
 *
 * The other PoPs read a few fields of it (PeerView): whether this PoP is announced, reaches an
 * origin directly and serves, and how old that view is. parsePeerView reads them from an answer
 * that came over the network, so anything else in it is ignored and anything malformed is no view.
 */
import { UpstreamRole } from "./upstreams";

/** What the agent makes of BIRD's announcement: announced, draining (GRACEFUL_SHUTDOWN), withdrawn, or held down by damping. */
export type AnnounceState = "announced" | "draining" | "withdrawn" | "held-down";

/** Why the PoP is not healthy: none, its proxy, or no path (its own fault, or one every PoP shares). */
export type Fault = "none" | "proxy" | "local" | "global";

/** One path to an origin in the status. */
export interface StatusPath {
    name: string;
    kind: "direct" | "relay";
    up: boolean;
    /** Its role in nginx's upstream (components/core/health/upstreams.ts). */
    role: UpstreamRole;
    /** Smoothed round trip of its checks, µs (0: none measured yet). */
    rtt_us: number;
    /** Failed checks among its last 16. */
    failed_of_16: number;
    /** What its last failed check saw. */
    last_error?: string;
}

/** A BGP session as BIRD reports it. */
export interface StatusSession {
    name: string;
    /** BIRD's protocol state (up, down, start) and, for BGP, its session state (Established, Active, ...). */
    state: string;
    /** BGP state when BIRD reports one, else the protocol state. */
    bgp_state: string;
    /** When it entered that state, as BIRD prints it (timeformat protocol iso long). */
    since: string;
    info: string;
}

export interface AgentStatus {
    pop: string;
    /** The agent's own version (the package's). */
    agent_version: string;
    /** Rounds of checks since the agent started. */
    seq: number;
    state: AnnounceState;
    /** The BIRD announcement switch the agent wants: 0 withdrawn, 1 draining, 2 announced. */
    anycast_state: 0 | 1 | 2;
    healthy: boolean;
    proxy_ok: boolean;
    /** A path to an origin works (directly or through a relay). */
    serving: boolean;
    /** Direct paths that work. */
    direct_up: number;
    /** The cost of the best direct path, µs; -1: none works. */
    best_us: number;
    fault: Fault;
    primary: string | null;
    paths: StatusPath[];
    consecutive_good: number;
    consecutive_bad: number;
    withdrawals_last_hour: number;
    /** Epoch ms until which flap damping holds this PoP down, or null. */
    held_until: number | null;
    /** A drain is asked for, by the config or by `anycast-health drain`. */
    drain_requested: boolean;
    drained_by_config: boolean;
    drained_by_operator: boolean;
    bird: { reachable: boolean; applied: boolean; error?: string; sessions: StatusSession[] };
    nginx: { reloaded: boolean; error?: string };
    /** Epoch ms of the last state change. */
    since: number;
    last_reason: string;
    /** Epoch ms of the round of checks this status is from. */
    updated: number;
    /** How long ago that round ended, ms (filled in when the status is served). */
    age_ms: number;
    /** How long a round of checks takes here, smoothed, ms. */
    tick_ms: number;
    /** Epoch ms the agent started. */
    started: number;
    /** Where the other PoPs reach this status when the mesh does not carry it. */
    public_status_url: string;
    /** The other PoPs as this one sees them. */
    peers: Array<{ name: string; state: string; direct_up: number; over: "mesh" | "public" | "none"; age_ms: number | null }>;
}

/** What one PoP's agent needs from another's status. */
export interface PeerView {
    pop: string;
    seq: number;
    state: AnnounceState;
    proxyOk: boolean;
    directUp: number;
    bestUs: number;
    /** How old the peer's view was when it answered, ms. */
    ageMs: number;
    publicStatusUrl?: string;
}

const STATES: readonly AnnounceState[] = ["announced", "draining", "withdrawn", "held-down"];
const PUBLIC_URL = /^http:\/\/(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}\/status$/;

/** The PeerView in an answer's body, or undefined when it is not one. */
export function parsePeerView(body: string): PeerView | undefined {
    let v: unknown;
    try {
        v = JSON.parse(body);
    } catch {
        return undefined;
    }
    if (typeof v !== "object" || v === null) return undefined;
    const o = v as Record<string, unknown>;
    const int = (x: unknown, min: number) => typeof x === "number" && Number.isInteger(x) && x >= min;
    if (typeof o.pop !== "string" || !int(o.seq, 0) || !STATES.includes(o.state as AnnounceState) || typeof o.proxy_ok !== "boolean" ||
        !int(o.direct_up, 0) || !int(o.best_us, -1) || !int(o.age_ms, 0)) return undefined;
    return {
        pop: o.pop, seq: o.seq as number, state: o.state as AnnounceState, proxyOk: o.proxy_ok, directUp: o.direct_up as number,
        bestUs: o.best_us as number, ageMs: o.age_ms as number,
        ...(typeof o.public_status_url === "string" && PUBLIC_URL.test(o.public_status_url) ? { publicStatusUrl: o.public_status_url } : {}),
    };
}

/** The fields the public address serves: enough for a peer's decision, nothing about the mesh. */
export function publicView(s: AgentStatus): Pick<AgentStatus, "pop" | "seq" | "state" | "proxy_ok" | "direct_up" | "best_us" | "age_ms"> {
    return { pop: s.pop, seq: s.seq, state: s.state, proxy_ok: s.proxy_ok, direct_up: s.direct_up, best_us: s.best_us, age_ms: s.age_ms };
}
