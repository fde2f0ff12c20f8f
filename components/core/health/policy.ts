/**
 * The health agent's decisions, as a pure function: (state, observations, now) -> (state, actions).
 *
 * Every round of checks the agent's I/O (agent/) observes the local proxy, every origin over the
 * mesh, every other PoP's status (over the mesh, and over its public address when the mesh does
 * not answer), the drain and release switches and BIRD's protocols; `step` decides; the I/O
 * carries out the actions (BIRD over its control socket, nginx's upstream file and SIGHUP, the
 * flap history on disk). No I/O and no clock here: `now` is a monotonic millisecond count the
 * caller supplies, so every decision is tested on a fake clock (test/unit/health-policy.test.ts).
 *
 * What it decides:
 *  - each path to an origin (each origin directly; with failover.relay each other PoP's relay)
 *    goes down after `fall` failed checks and up after `rise` good ones; nginx gets the nearest
 *    working one as primary (pops[].origins, else the shortest measured round trip, moving only
 *    for one clearly faster);
 *  - the PoP is announced while its proxy answers and a path works, withdrawn after `fall` bad
 *    rounds and announced again after `rise` good ones;
 *  - without a path it withdraws only for a fault of its own: another PoP that is announced still
 *    reaches an origin (LOCAL). When every PoP loses the origins (GLOBAL) every PoP stays announced
 *    and nginx answers the 503 at once: withdrawing everywhere would only add BGP churn;
 *  - drain: GRACEFUL_SHUTDOWN for drainMs, then withdrawn until undrained;
 *  - flap damping: after maxWithdrawalsPerHour health withdrawals within the window the PoP stays
 *    withdrawn until the oldest leaves it (or the operator releases it);
 *  - BIRD follows: the wanted protocols are enabled and the others disabled whenever BIRD's own
 *    view differs (after a BIRD restart, an operator's `birdc configure`, a failed command).
 */
import type { AgentSettings } from "./settings";
import type { AgentStatus, AnnounceState, Fault, PeerView, StatusPath } from "./status";
import { renderUpstreams, UpstreamPath, upstreamRoles } from "./upstreams";

export type { AnnounceState, Fault } from "./status";

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

// --- timing rules, in one place (the lab's bounds call these) ---------------------------------

/** One round of checks at worst: the interval, or a check that waits out its timeout. */
export function roundMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs">): number {
    return s.intervalMs + s.timeoutMs;
}

/** How long a peer's view counts: a few of its rounds (it reports how old its view is). */
export function viewMaxAgeMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs">): number {
    return 4 * roundMs(s);
}

/**
 * How often a PoP with nothing wrong asks the other PoPs over the mesh: often enough that their
 * views stay fresh (half of viewMaxAgeMs), not every round. Their views matter when this PoP
 * loses a path, and from its first failed check it asks every round again (meshAsks); in between,
 * each question is a wake-up on both hosts, and on a small PoP wake-ups are most of the agent's CPU.
 */
export function quietAskMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs">): number {
    return Math.max(s.intervalMs, viewMaxAgeMs(s) / 2);
}

/**
 * How long after losing its paths a PoP waits before it believes a peer that still reaches an
 * origin, where a fault every PoP shares would look the same: long enough for such a peer to
 * have failed its own `fall` checks (each up to a round, its rounds up to one behind), plus a
 * timeout for the fetch.
 */
export function confirmMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs" | "fall">): number {
    return (s.fall + 1) * roundMs(s) + s.timeoutMs;
}

/**
 * How long a peer must have reached an origin before its word makes this PoP's lost paths a
 * local fault: when a fault every PoP shared ends, each PoP's paths come back after `rise` good
 * checks, its rounds up to one behind a peer's, plus a timeout for the fetch. Without this wait
 * the PoP that is a round behind at the end of a global outage withdraws, and the withdrawal
 * counts towards flap damping.
 */
export function recoverMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs" | "rise">): number {
    return (s.rise + 1) * roundMs(s) + s.timeoutMs;
}

/** How long no other PoP may answer at all before a PoP counts itself cut off without a witness. */
export function isolationMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs" | "fall">): number {
    return Math.max(viewMaxAgeMs(s), confirmMs(s));
}

/**
 * Rounds of checks a PoP cut off from the mesh takes to withdraw when another PoP confirms over
 * its public address that it serves: `fall` for its paths to fall, one for the public answer
 * (asked from the round after the mesh failed), `fall` bad rounds to withdraw; in a hub mesh a
 * witness counts only after confirmMs.
 */
export function isolationRounds(s: Pick<AgentSettings, "fall">): number {
    return 2 * s.fall + 1;
}

// --- the state machine -------------------------------------------------------------------------

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

function pathsOf(settings: AgentSettings): PathState[] {
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

/**
 * The state at start. Every path starts up, as the pushed upstream file has it. A restart (a
 * config push restarts the agent, so does a crash) keeps an announced or draining PoP as BIRD has
 * it, so it does not flap; the first start after a boot starts withdrawn, as a new PoP does.
 */
export function initialState(settings: AgentSettings, now: number, start: StartInfo): AgentState {
    const drainRequested = start.drainFile || settings.drained;
    let state: AnnounceState = "withdrawn";
    let reason = "agent started";
    let drainUntil: number | undefined;
    if (start.restart && (start.previous === 2 || start.previous === 1)) {
        if (drainRequested) {
            state = "draining";
            drainUntil = now + settings.drainMs;
            reason = "agent restarted while draining: GRACEFUL_SHUTDOWN again for the drain period";
        } else {
            state = "announced";
            reason = "agent restarted while announced";
        }
    }
    const paths = pathsOf(settings);
    return {
        state, since: now, reason, seq: 0, good: 0, bad: 0, healthy: false, fault: "none", badReason: "", proxyOk: false, proxyDetail: "not checked yet",
        paths, primary: paths.length > 0 ? 0 : -1,
        peers: settings.peers.map(() => ({ viewAt: -Infinity, viewOver: "none", meshAt: -Infinity, meshAskedAt: -Infinity, meshFailing: false, relayOk: false, relayUs: 0 })),
        meshAnswerAt: -Infinity, anyAnswerAt: -Infinity,
        withdrawals: start.withdrawals.filter((t) => t > now - settings.flapWindowMs).sort((a, b) => a - b),
        drainUntil,
        // What BIRD was told before this start: nothing needs writing until the state differs.
        stateFileValue: start.previous,
        upstreams: start.upstreams,
        bird: { ok: false, detail: "not asked yet" }, birdApplied: false, nginx: { reloaded: true },
        drainRequested, drainFile: start.drainFile,
    };
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

/** A peer's view counts while it is younger than viewMaxAgeMs. */
function fresh(p: PeerState, now: number, settings: AgentSettings): p is PeerState & { view: PeerView } {
    return p.view !== undefined && now - p.viewAt < viewMaxAgeMs(settings);
}

/** A peer that can take this PoP's traffic: announced and reaching an origin directly. */
function takesOver(v: PeerView): boolean {
    return v.state === "announced" && v.directUp > 0;
}

function observePeers(s: AgentState, o: Observations, now: number): void {
    s.peers.forEach((p, j) => {
        const seen = o.peers[j];
        const take = (a: PeerAnswer | undefined, over: "mesh" | "public") => {
            if (!a?.ok) return false;
            const at = now - Math.max(0, a.view.ageMs);
            // A view over the other path may be older than the one already held: keep the newest.
            if (p.view === undefined || at >= p.viewAt) {
                p.view = a.view;
                p.viewAt = at;
                p.viewOver = over;
                if (!takesOver(a.view)) p.takesOverSince = undefined;
                else p.takesOverSince ??= at;
            }
            if (a.view.publicStatusUrl) p.publicStatusUrl = a.view.publicStatusUrl;
            s.anyAnswerAt = now;
            return true;
        };
        const mesh = seen?.mesh;
        take(seen?.public, "public");
        // Not asked over the mesh this round: what the last answer said still stands.
        if (mesh === undefined) return;
        p.meshAskedAt = now;
        p.meshFailing = !take(mesh, "mesh");
        if (!p.meshFailing) {
            p.meshAt = now;
            s.meshAnswerAt = now;
        }
        // Its relay works while it answers over the mesh, its proxy works and it reaches an origin itself.
        p.relayOk = mesh.ok && mesh.view.proxyOk && mesh.view.directUp > 0 && mesh.view.bestUs >= 0;
        p.relayUs = mesh.ok ? mesh.rttUs + Math.max(0, mesh.view.bestUs) : 0;
    });
}

/** Record this round's checks of every path; returns the paths that went down in it. */
function updatePaths(s: AgentState, o: Observations, settings: AgentSettings, log: (l: string) => void): PathState[] {
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
function choosePrimary(s: AgentState, settings: AgentSettings): void {
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

function upstreamsText(s: AgentState, settings: AgentSettings): string {
    return renderUpstreams({ pop: settings.pop, file: settings.paths.upstreamsFile, paths: upstreamPathsOf(s), primary: s.primary, passiveFailTimeoutS: settings.passiveFailTimeoutS });
}

function describePaths(s: AgentState): string {
    const primary = s.primary >= 0 ? s.paths[s.primary] : undefined;
    const parts = [primary ? `primary ${primary.label} (${(pathScore(primary) / 1000).toFixed(1)} ms)` : "no path works: every request gets the 503"];
    const roles = upstreamRoles(upstreamPathsOf(s), s.primary);
    for (const role of ["backup", "standby", "down"] as const) {
        const named = s.paths.filter((_, k) => roles[k] === role).map((p) => p.label);
        if (named.length) parts.push(`${role} ${named.join(", ")}`);
    }
    return parts.join("; ");
}

/**
 * Is the fault of a PoP without a path its own? LOCAL when some other PoP that is announced
 * reaches an origin directly and its word counts:
 *  1. over the mesh, with a view newer than this PoP's fault by confirmMs (a peer sharing the
 *     fault has failed its own checks by then);
 *  2. cut off from the mesh (no origin and no peer answers over it since the paths were lost),
 *     over a peer's public address: at once in a full mesh, since a fault every PoP shares does
 *     not cut a PoP off from the other PoPs; in a hub mesh the hub being down does, so the view
 *     must be confirmMs newer than the fault, as in 1;
 *  3. cut off from everyone, mesh and public, for isolationMs in a full mesh, when a peer was
 *     taking over just before.
 * Otherwise GLOBAL: every PoP would lose the same origins, and the last announced PoP never
 * withdraws for an origin fault.
 */
function classify(s: AgentState, now: number, settings: AgentSettings): { fault: "local" | "global"; takeover?: string } {
    const since = s.notServingSince ?? now;
    const confirmed = since + confirmMs(settings);
    // A witness has reached an origin for recoverMs: this PoP would have its paths back by then if the fault were shared.
    const witness = (p: PeerState) => fresh(p, now, settings) && takesOver(p.view)
        && p.takesOverSince !== undefined && p.viewAt >= p.takesOverSince + recoverMs(settings);
    for (const [j, p] of s.peers.entries()) {
        if (witness(p) && p.viewOver === "mesh" && p.viewAt >= confirmed) {
            return { fault: "local", takeover: settings.peers[j].name };
        }
    }
    if (settings.peers.length === 0 || s.meshAnswerAt >= since) return { fault: "global" };
    for (const [j, p] of s.peers.entries()) {
        if (witness(p) && p.viewOver === "public" && (settings.meshTopology === "full" || p.viewAt >= confirmed)) {
            return { fault: "local", takeover: `${settings.peers[j].name} (asked over its public address: this PoP is cut off from the mesh)` };
        }
    }
    if (settings.meshTopology === "full" && s.anyAnswerAt < since && now >= since + isolationMs(settings)) {
        for (const [j, p] of s.peers.entries()) {
            // Its last word before the loss: asked at most quietAskMs before the fault, and fresh then.
            if (p.view && takesOver(p.view) && p.viewAt >= since - viewMaxAgeMs(settings) - quietAskMs(settings)) {
                return { fault: "local", takeover: `${settings.peers[j].name} (before this PoP lost every other PoP)` };
            }
        }
    }
    return { fault: "global" };
}

function assess(s: AgentState, o: Observations, now: number, settings: AgentSettings): void {
    const serving = s.paths.some((p) => p.up);
    if (!o.proxy.ok) {
        s.healthy = false;
        s.fault = "proxy";
        s.bad++;
        s.good = 0;
        s.badReason = `proxy check failed (${o.proxy.detail})`;
        if (serving) s.notServingSince = undefined;
        else s.notServingSince ??= now;
        return;
    }
    if (serving) {
        s.healthy = true;
        s.fault = "none";
        s.notServingSince = undefined;
        s.good++;
        s.bad = 0;
        return;
    }
    s.healthy = false;
    s.good = 0;
    s.notServingSince ??= now;
    const c = classify(s, now, settings);
    s.fault = c.fault;
    if (c.fault === "local") {
        s.bad++;
        const seen = s.paths.filter((p) => p.kind === "direct").map((p) => `${p.label}: ${p.lastError ?? "no answer"}`).join(", ");
        s.badReason = `no origin reachable from here (${seen}) while ${c.takeover} is announced and reaches one`;
    } else {
        s.bad = 0;
        s.badReason = "no PoP reaches an origin: staying announced, nginx answers 503";
    }
}

function setState(s: AgentState, to: AnnounceState, reason: string, now: number, log: (l: string) => void): void {
    if (to === s.state) return;
    log(`${s.state} -> ${to}: ${reason}`);
    s.state = to;
    s.since = now;
    s.reason = reason;
}

function windowText(settings: AgentSettings): string {
    return `${Math.round(settings.flapWindowMs / 1000)}s`;
}

export function heldUntil(s: AgentState, settings: AgentSettings): number | undefined {
    return s.state === "held-down" && s.withdrawals.length > 0 ? s.withdrawals[0] + settings.flapWindowMs : undefined;
}

function holdDown(s: AgentState, lead: string, now: number, settings: AgentSettings, log: (l: string) => void): void {
    const until = s.withdrawals[0] + settings.flapWindowMs;
    setState(s, "held-down", `${lead}${s.withdrawals.length} withdrawals within ${windowText(settings)}, held down for ` +
        `${Math.ceil((until - now) / 1000)}s`, now, log);
}

function withdraw(s: AgentState, reason: string, now: number, settings: AgentSettings, actions: Action[], log: (l: string) => void): void {
    s.withdrawals.push(now);
    actions.push({ kind: "withdrawals", times: [...s.withdrawals] });
    if (s.withdrawals.length >= settings.maxWithdrawalsPerHour) holdDown(s, `${reason}; `, now, settings, log);
    else setState(s, "withdrawn", reason, now, log);
}

function transition(s: AgentState, now: number, settings: AgentSettings, actions: Action[], log: (l: string) => void): void {
    const drain = s.drainRequested;
    const drainS = `${settings.drainMs / 1000}s`;
    switch (s.state) {
        case "announced":
            if (drain) {
                s.drainUntil = now + settings.drainMs;
                setState(s, "draining", `drain requested (${settings.drained ? "by the config" : "anycast-health drain"}): GRACEFUL_SHUTDOWN for ${drainS}, then withdraw`, now, log);
            } else if (s.bad >= settings.fall) {
                withdraw(s, `${s.badReason}, ${s.bad} checks in a row`, now, settings, actions, log);
            }
            break;
        case "draining":
            if (!drain) setState(s, "announced", "undrained before the drain ended", now, log);
            else if (s.bad >= settings.fall) setState(s, "withdrawn", `drained; ${s.badReason}, ${s.bad} checks in a row`, now, log);
            else if (now >= (s.drainUntil ?? now)) setState(s, "withdrawn", "drained", now, log);
            break;
        case "held-down":
            if (s.withdrawals.length < settings.maxWithdrawalsPerHour) {
                setState(s, "withdrawn", `flap damping over: ${s.withdrawals.length} withdrawals within ${windowText(settings)}`, now, log);
            }
            break;
        case "withdrawn":
            break;
    }
    // Not part of the switch: a PoP released from hold-down in this round may announce in it.
    if (s.state === "withdrawn" && !drain) {
        if (s.withdrawals.length >= settings.maxWithdrawalsPerHour) holdDown(s, "", now, settings, log);
        else if (s.good >= settings.rise) setState(s, "announced", `healthy, ${s.good} checks in a row`, now, log);
    }
}

/** The protocols BIRD must have up for a state: the plain routes, the GRACEFUL_SHUTDOWN ones, or none. */
export function wantedProtocols(state: AnnounceState, bird: AgentSettings["bird"]): { up: string[]; down: string[] } {
    const value = ANYCAST_VALUE[state];
    if (value === 2) return { up: bird.announce, down: bird.drain };
    if (value === 1) return { up: bird.drain, down: bird.announce };
    return { up: [], down: [...bird.announce, ...bird.drain] };
}

/** Bring BIRD to the state: the state file first (what a BIRD start or `configure` reads), then the protocols. */
function syncBird(s: AgentState, o: Observations, settings: AgentSettings, actions: Action[], log: (l: string) => void): void {
    const value = ANYCAST_VALUE[s.state];
    if (s.stateFileValue !== value) {
        actions.push({ kind: "state-file", value });
        s.stateFileValue = value;
    }
    const wanted = wantedProtocols(s.state, settings.bird);
    let problem: string | undefined;
    if (!o.bird.ok) {
        // One line per outage, not per state change: the status shows what the state file says.
        problem = `BIRD does not answer (${o.bird.detail}): retrying every round`;
        s.birdApplied = false;
    } else {
        const protocols = o.bird.protocols;
        const stateOf = (name: string) => protocols.find((p) => p.name === name)?.state;
        const enable = wanted.up.filter((n) => stateOf(n) === "down");
        const disable = wanted.down.filter((n) => { const st = stateOf(n); return st !== undefined && st !== "down"; });
        const missing = [...wanted.up, ...wanted.down].filter((n) => stateOf(n) === undefined);
        s.birdApplied = enable.length === 0 && disable.length === 0 && missing.length === 0;
        if (missing.length > 0) problem = `BIRD has no protocol ${missing.join(", ")}: is its bird.conf this deployment's?`;
        // After the agent's own change this is what it asked for; otherwise BIRD was restarted or
        // reconfigured into another state, and the agent asserts its own.
        if (enable.length > 0 || disable.length > 0) actions.push({ kind: "bird", enable, disable });
    }
    if (problem !== s.birdProblem) {
        log(problem ?? "BIRD answers and follows the agent again");
        s.birdProblem = problem;
    }
}

/** One round: the observations in, the next state and what the I/O must do out. */
export function step(prev: AgentState, o: Observations, now: number, settings: AgentSettings): { state: AgentState; actions: Action[] } {
    const s: AgentState = structuredClone(prev);
    const actions: Action[] = [];
    const log = (line: string) => actions.push({ kind: "log", line });
    s.seq++;
    s.proxyOk = o.proxy.ok;
    s.proxyDetail = o.proxy.detail;
    observePeers(s, o, now);
    const wentDown = updatePaths(s, o, settings, log);
    choosePrimary(s, settings);
    const upstreams = upstreamsText(s, settings);
    if (upstreams !== s.upstreams) {
        actions.push({ kind: "upstreams", text: upstreams });
        s.upstreams = upstreams;
        log(`nginx: ${describePaths(s)}`);
    }
    if (wentDown.length > 0) actions.push({ kind: "abort-connections", servers: wentDown.map((p) => p.server) });
    assess(s, o, now, settings);
    if (o.releaseFile) {
        actions.push({ kind: "release-done" });
        if (s.withdrawals.length > 0) actions.push({ kind: "withdrawals", times: [] });
        s.withdrawals = [];
        if (s.state === "held-down") setState(s, "withdrawn", "flap damping released by the operator", now, log);
    }
    const kept = s.withdrawals.filter((t) => now - t < settings.flapWindowMs);
    if (kept.length !== s.withdrawals.length) {
        s.withdrawals = kept;
        actions.push({ kind: "withdrawals", times: [...kept] });
    }
    s.drainFile = o.drainFile;
    s.drainRequested = o.drainFile || settings.drained;
    transition(s, now, settings, actions, log);
    syncBird(s, o, settings, actions, log);
    s.bird = o.bird;
    s.nginx = o.nginx;
    return { state: s, actions };
}

/**
 * Whether nothing is wrong here: announced and healthy, every direct path up and its last check
 * good, nginx's primary a direct path. Such a PoP needs the other PoPs' views only to stay fresh.
 */
function quiet(s: AgentState): boolean {
    if (s.state !== "announced" || !s.healthy || s.bad > 0 || s.drainRequested || s.fault !== "none") return false;
    if (s.primary < 0 || s.paths[s.primary].kind !== "direct") return false;
    return s.paths.every((p) => p.kind !== "direct" || (p.up && (p.history & 1) === 0));
}

/**
 * The peers to ask over the mesh this round: every one while anything is wrong here (from the
 * first failed check on, so their views are fresh by the time this PoP decides), else those not
 * asked for quietAskMs, those whose last answer failed or went stale.
 */
export function meshAsks(s: AgentState, now: number, settings: AgentSettings): number[] {
    const everyRound = !quiet(s);
    return s.peers.flatMap((p, j) =>
        (everyRound || p.meshFailing || !fresh(p, now, settings) || now - p.meshAskedAt >= quietAskMs(settings) ? [j] : []));
}

/** The peers to ask over their public address this round: those whose mesh fetch failed last round. */
export function publicFetches(s: AgentState): Array<{ index: number; url: string }> {
    return s.peers.flatMap((p, index) => (p.meshFailing && p.publicStatusUrl ? [{ index, url: p.publicStatusUrl }] : []));
}

// --- the status ----------------------------------------------------------------------------------

export interface StatusContext {
    /** Epoch ms minus monotonic ms: the wall clock of a monotonic time. */
    wallOffsetMs: number;
    agentVersion: string;
    startedAt: number;
    tickMs: number;
    /** When the round this state is from ended (monotonic). */
    roundAt: number;
    publicStatusUrl: string;
}

export function statusOf(s: AgentState, settings: AgentSettings, now: number, ctx: StatusContext): AgentStatus {
    const wall = (t: number) => Math.round(t + ctx.wallOffsetMs);
    const directUp = s.paths.filter((p) => p.kind === "direct" && p.up);
    const best = directUp.length > 0 ? Math.min(...directUp.map(pathScore)) : -1;
    const roles = upstreamRoles(upstreamPathsOf(s), s.primary);
    const paths: StatusPath[] = s.paths.map((p, k) => ({
        name: p.label, kind: p.kind, up: p.up, role: roles[k],
        rtt_us: p.srttUs, failed_of_16: popcount16(p.history), ...(p.lastError && !p.up ? { last_error: p.lastError } : {}),
    }));
    const held = heldUntil(s, settings);
    const sessions = s.bird.ok
        ? s.bird.protocols.filter((p) => settings.bird.sessions.includes(p.name)).map((p) => {
            const bgp = /^(Idle|Connect|Active|OpenSent|OpenConfirm|Established|Close)\b/.exec(p.info)?.[1];
            return { name: p.name, state: p.state, bgp_state: bgp ?? p.state, since: p.since, info: p.info };
        })
        : [];
    return {
        pop: settings.pop,
        agent_version: ctx.agentVersion,
        seq: s.seq,
        state: s.state,
        anycast_state: ANYCAST_VALUE[s.state],
        healthy: s.healthy,
        proxy_ok: s.proxyOk,
        serving: s.paths.some((p) => p.up),
        direct_up: directUp.length,
        best_us: best,
        fault: s.fault,
        primary: s.primary >= 0 ? s.paths[s.primary].label : null,
        paths,
        consecutive_good: s.good,
        consecutive_bad: s.bad,
        withdrawals_last_hour: s.withdrawals.length,
        held_until: held === undefined ? null : wall(held),
        drain_requested: s.drainRequested,
        drained_by_config: settings.drained,
        drained_by_operator: s.drainFile,
        bird: { reachable: s.bird.ok, applied: s.birdApplied, ...(s.bird.ok ? {} : { error: s.bird.detail }), sessions },
        nginx: s.nginx,
        since: wall(s.since),
        last_reason: s.reason,
        updated: wall(ctx.roundAt),
        age_ms: Math.max(0, Math.round(now - ctx.roundAt)),
        tick_ms: Math.round(ctx.tickMs),
        started: ctx.startedAt,
        public_status_url: ctx.publicStatusUrl,
        peers: s.peers.map((p, j) => ({
            name: settings.peers[j].name, state: p.view?.state ?? "unknown", direct_up: p.view?.directUp ?? 0, over: p.viewOver,
            age_ms: p.view ? Math.round(now - p.viewAt) : null,
        })),
    };
}
