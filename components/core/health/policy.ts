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
 *
 * The vocabulary (observations, state, actions) is in agent-state.ts, the timers in timing.ts, the
 * paths' checks and the choice of nginx's primary in paths.ts; this file is the round's decision.
 */
import type { AgentSettings } from "./settings";
import type { AgentStatus, AnnounceState, PeerView } from "./status";
import type { Action, AgentState, Observations, PeerAnswer, PeerState, StartInfo } from "./agent-state";
import { ANYCAST_VALUE } from "./agent-state";
import { choosePrimary, describePaths, pathsOf, pathScore, statusPaths, updatePaths, upstreamsText } from "./paths";
import { confirmMs, isolationMs, quietAskMs, recoverMs, viewMaxAgeMs } from "./timing";

// --- the state machine -------------------------------------------------------------------------

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
 * asked for quietAskMs, those whose last answer failed or went stale, and those whose relay path
 * is coming back up.
 *
 * A relay path is checked only when its PoP is asked, and comes up after `rise` good answers. At
 * the quiet pace that took rise × quietAskMs after the peer recovered, and a fault here in that
 * window found no relay to fail over to. So once a peer's answer says it could take this PoP's
 * traffic again while its relay path is still down, it is asked every round until the path is up:
 * rise rounds, and no more questions than before while the peer itself is still broken.
 */
export function meshAsks(s: AgentState, now: number, settings: AgentSettings): number[] {
    const everyRound = !quiet(s);
    const relayRising = (j: number) => s.peers[j].relayOk && s.paths.some((p) => p.kind === "relay" && p.index === j && !p.up);
    return s.peers.flatMap((p, j) =>
        (everyRound || p.meshFailing || !fresh(p, now, settings) || now - p.meshAskedAt >= quietAskMs(settings) || relayRising(j)
            ? [j] : []));
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
    const paths = statusPaths(s);
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
