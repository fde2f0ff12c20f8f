/**
 * The health agent's vocabulary (policy.ts decides with it): what one round of checks observed,
 * what the agent keeps between rounds, how it starts, and the actions it asks its I/O for. Types
 * only, and BIRD's announcement switch values, so the agent's I/O (agent/), the lab and the tests
 * can name them without the decisions.
 */
import type { AnnounceState, Fault, PeerView } from "./status";

/** BIRD's announcement switch, as the state file and bird.conf's static protocols read it. */
export type AnycastValue = 0 | 1 | 2;

export const ANYCAST_VALUE: Record<AnnounceState, AnycastValue> = { announced: 2, draining: 1, withdrawn: 0, "held-down": 0 };

// --- observations ------------------------------------------------------------------------------

/** One HTTP check: its outcome, the TCP connect time (µs, 0 when none) and what it saw. */
export interface CheckResult {
    ok: boolean;
    rttUs: number;
    detail: string;
}

/** A peer's status fetched over one path: its view, or why there is none. */
export type PeerAnswer = { ok: true; view: PeerView; rttUs: number } | { ok: false; detail: string };

export interface PeerObservation {
    /** Its agent on its mesh address; undefined when not asked this round (meshAsks). */
    mesh?: PeerAnswer;
    /** Its agent on its public address; asked only while the mesh does not answer. */
    public?: PeerAnswer;
}

/** A protocol as BIRD's `show protocols` lists it. */
export interface BirdProtocol {
    name: string;
    proto: string;
    /** up, down, start, stop */
    state: string;
    since: string;
    info: string;
}

export type BirdObservation = { ok: true; protocols: BirdProtocol[] } | { ok: false; detail: string };

export interface Observations {
    proxy: CheckResult;
    /** By the index of settings.origins. */
    origins: CheckResult[];
    /** By the index of settings.peers. */
    peers: PeerObservation[];
    /** `anycast-health drain` left its switch. */
    drainFile: boolean;
    /** `anycast-health release` asked to forget the flap history. */
    releaseFile: boolean;
    bird: BirdObservation;
    /** Whether the last nginx reload worked (the I/O reports it; shown in the status). */
    nginx: { reloaded: boolean; error?: string };
}

// --- state -------------------------------------------------------------------------------------

export interface PathState {
    label: string;
    server: string;
    kind: "direct" | "relay";
    /** settings.origins index (direct) or settings.peers index (relay). */
    index: number;
    up: boolean;
    good: number;
    bad: number;
    /** Smoothed round trip, µs; 0 until measured. */
    srttUs: number;
    /** The last 16 checks, a bit per check, 1 for a failure, newest lowest. */
    history: number;
    lastError?: string;
}

export interface PeerState {
    /** Its last view and when that view was true (now minus the age it reported). */
    view?: PeerView;
    viewAt: number;
    /** Over which path the last view came. */
    viewOver: "mesh" | "public" | "none";
    /**
     * Since when its views have said, without a break, that it can take this PoP's traffic
     * (undefined while they do not): a peer that has only just got an origin back says nothing
     * yet about this PoP's own paths (see recoverMs).
     */
    takesOverSince?: number;
    /** The last time it answered over the mesh (-Infinity: never). */
    meshAt: number;
    /** The last time it was asked over the mesh (-Infinity: never). */
    meshAskedAt: number;
    /** Whether the last mesh fetch failed: the next round also asks its public address. */
    meshFailing: boolean;
    /** Where its status is reachable without the mesh, as it last said. */
    publicStatusUrl?: string;
    /** Whether its mesh answer this round makes its relay usable, and its relay's cost. */
    relayOk: boolean;
    relayUs: number;
}

export interface AgentState {
    state: AnnounceState;
    /** When the state last changed, and why. */
    since: number;
    reason: string;
    /** Rounds of checks so far. */
    seq: number;
    /** Healthy and unhealthy rounds in a row. */
    good: number;
    bad: number;
    healthy: boolean;
    fault: Fault;
    /** Why the last unhealthy round was unhealthy. */
    badReason: string;
    proxyOk: boolean;
    proxyDetail: string;
    paths: PathState[];
    /** Index into paths, -1: none works. */
    primary: number;
    peers: PeerState[];
    /** When the PoP lost its last path (undefined while it has one). */
    notServingSince?: number;
    /** When any peer last answered over the mesh, and over either path. */
    meshAnswerAt: number;
    anyAnswerAt: number;
    /** Health-driven withdrawals within the flap window, oldest first (monotonic ms). */
    withdrawals: number[];
    drainUntil?: number;
    /** What the agent last wrote for BIRD and nginx (undefined: not yet this run). */
    stateFileValue?: AnycastValue;
    upstreams?: string;
    /** The last round's BIRD and nginx view, for the status. */
    bird: BirdObservation;
    birdApplied: boolean;
    /** What is wrong with BIRD, as last logged (undefined: nothing). */
    birdProblem?: string;
    nginx: { reloaded: boolean; error?: string };
    drainRequested: boolean;
    drainFile: boolean;
}

// --- actions -----------------------------------------------------------------------------------

export type Action =
    /** Write BIRD's state file (what BIRD reads at start and on `birdc configure`). */
    | { kind: "state-file"; value: AnycastValue }
    /** Enable, then disable, these protocols over BIRD's control socket (enable first: no gap). */
    | { kind: "bird"; enable: string[]; disable: string[] }
    /** Write nginx's upstream file and reload nginx. */
    | { kind: "upstreams"; text: string }
    /**
     * Abort the TCP connections to these paths (`[address]:port`), after the reload: they just went
     * down. A request nginx sent on a kept-alive connection into a silently broken tunnel would
     * otherwise wait for its read timeout (60 s); aborted, nginx passes it to the next path at once.
     */
    | { kind: "abort-connections"; servers: string[] }
    /** Persist the flap history (monotonic ms; the I/O stores wall-clock times). */
    | { kind: "withdrawals"; times: number[] }
    /** The release switch has been acted on. */
    | { kind: "release-done" }
    | { kind: "log"; line: string };

/** How the agent starts: after a reboot (no status in the tmpfs yet) or a restart, with what BIRD was told. */
export interface StartInfo {
    /** The agent ran before on this boot (its status file exists). */
    restart: boolean;
    /** The state file's value, if it has one. */
    previous?: AnycastValue;
    /** Flap history in monotonic ms, already pruned to the window by the caller or not. */
    withdrawals: number[];
    drainFile: boolean;
    /** nginx's upstream file as it is on disk: no rewrite and reload while the agent would write the same. */
    upstreams?: string;
}
