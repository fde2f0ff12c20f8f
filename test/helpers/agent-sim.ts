/**
 * One health agent on a fake clock against a simulated world and BIRD, for the policy's tests
 * (test/unit/health-policy.test.ts): the world is edited between rounds, and each round observes
 * it, steps the policy and carries out its BIRD actions.
 */
import * as assert from "node:assert/strict";
import { Action, AgentState, CheckResult, Observations, PeerAnswer } from "../../components/core/health/agent-state";
import { initialState, meshAsks, publicFetches, step } from "../../components/core/health/policy";
import { AgentSettings } from "../../components/core/health/settings";
import { PeerView } from "../../components/core/health/status";
import { agentSettings } from "../../components/core/render/health";
import { popRenderInput, prodSpec } from "./fixtures";

export const OK: CheckResult = { ok: true, rttUs: 2000, detail: "200" };
export const REFUSED: CheckResult = { ok: false, rttUs: 0, detail: "connect EHOSTUNREACH" };

/** A peer's answer: announced and reaching an origin unless told otherwise. */
export function peer(name: string, over: Partial<PeerView> = {}): PeerAnswer {
    return { ok: true, rttUs: 800, view: { pop: name, seq: 1, state: "announced", proxyOk: true, directUp: 1, bestUs: 2000, ageMs: 0, ...over } };
}
export const SILENT: PeerAnswer = { ok: false, detail: "connect ETIMEDOUT" };
/** A check that hangs until its timeout (a cut tunnel drops packets): its round lasts timeoutMs. */
export const TIMED_OUT: CheckResult = { ok: false, rttUs: 0, detail: "timed out" };
export const timedOut = (r: { ok: boolean; detail?: string } | undefined): boolean => r !== undefined && !r.ok && /ETIMEDOUT|timed out/.test(r.detail ?? "");

/** The world one PoP's agent observes; the test edits it between rounds. */
export interface World {
    proxy: CheckResult;
    origins: CheckResult[];
    /** What each peer answers over the mesh, and over its public address. */
    mesh: PeerAnswer[];
    public: PeerAnswer[];
    drainFile: boolean;
    releaseFile: boolean;
    birdReachable: boolean;
}

/**
 * One agent on a fake clock against a simulated BIRD. `round()` advances the clock by one
 * interval, observes the world, steps the policy and carries out its BIRD actions.
 */
export class Sim {
    now = 0;
    state: AgentState;
    readonly actions: Action[][] = [];
    /** Which peers each round asked over the mesh. */
    readonly meshAsked: number[][] = [];
    /** BIRD's protocols and whether each is up. */
    readonly bird = new Map<string, boolean>();
    stateFile: 0 | 1 | 2;
    readonly world: World;
    /** How long the last round took: as the daemon runs, an interval, or a timeout when a check hung. */
    private lastRoundMs: number;

    constructor(readonly settings: AgentSettings, start: { restart?: boolean; previous?: 0 | 1 | 2; withdrawals?: number[] } = {}) {
        this.stateFile = start.previous ?? 0;
        this.lastRoundMs = settings.intervalMs;
        this.birdStarts();
        this.world = {
            proxy: OK, origins: settings.origins.map(() => OK), mesh: settings.peers.map((p) => peer(p.name)),
            public: settings.peers.map((p) => peer(p.name)), drainFile: false, releaseFile: false, birdReachable: true,
        };
        this.state = initialState(settings, this.now, { restart: start.restart ?? false, previous: start.previous, withdrawals: start.withdrawals ?? [], drainFile: false });
    }

    /** BIRD (re)starts: its protocols as bird.conf's `disabled (ANYCAST_STATE - n)` reads the state file. */
    birdStarts(): void {
        for (const n of this.settings.bird.announce) this.bird.set(n, this.stateFile === 2);
        for (const n of this.settings.bird.drain) this.bird.set(n, this.stateFile === 1);
        for (const n of this.settings.bird.sessions) this.bird.set(n, true);
    }

    /** What BIRD announces now: the plain routes, the GRACEFUL_SHUTDOWN ones, or nothing. */
    get announcing(): "plain" | "graceful-shutdown" | "nothing" | "both" {
        const up = (names: string[]) => names.some((n) => this.bird.get(n));
        const plain = up(this.settings.bird.announce);
        const drain = up(this.settings.bird.drain);
        return plain && drain ? "both" : plain ? "plain" : drain ? "graceful-shutdown" : "nothing";
    }

    observations(): Observations {
        const w = this.world;
        // Asked as the daemon asks: over the mesh those meshAsks names, over their public address those publicFetches names.
        const publicAsked = new Set(publicFetches(this.state).map((f) => f.index));
        const meshAsked = new Set(meshAsks(this.state, this.now, this.settings));
        this.meshAsked.push([...meshAsked]);
        return {
            proxy: w.proxy, origins: w.origins, drainFile: w.drainFile, releaseFile: w.releaseFile,
            peers: w.mesh.map((m, j) => ({ ...(meshAsked.has(j) ? { mesh: m } : {}), ...(publicAsked.has(j) ? { public: w.public[j] } : {}) })),
            bird: w.birdReachable
                ? { ok: true, protocols: [...this.bird].map(([name, up]) => ({ name, proto: name.includes("upstream") ? "BGP" : "Static", state: up ? "up" : "down", since: "", info: up && name.includes("upstream") ? "Established" : "" })) }
                : { ok: false, detail: "connect ENOENT /run/bird/bird.ctl" },
            nginx: { reloaded: true },
        };
    }

    round(): Action[] {
        this.now += this.lastRoundMs;
        const o = this.observations();
        // The daemon starts a round every interval, or at once after one whose checks ran into their timeout.
        const hung = [o.proxy, ...o.origins, ...o.peers.flatMap((p) => [p.mesh, p.public])].some(timedOut);
        this.lastRoundMs = hung ? Math.max(this.settings.intervalMs, this.settings.timeoutMs) : this.settings.intervalMs;
        const { state, actions } = step(this.state, o, this.now, this.settings);
        this.state = state;
        for (const a of actions) {
            if (a.kind === "state-file") this.stateFile = a.value;
            if (a.kind === "bird" && this.world.birdReachable) {
                for (const n of a.enable) this.bird.set(n, true);
                for (const n of a.disable) this.bird.set(n, false);
            }
        }
        if (this.world.releaseFile && actions.some((a) => a.kind === "release-done")) this.world.releaseFile = false;
        this.actions.push(actions);
        return actions;
    }

    rounds(n: number): void {
        for (let i = 0; i < n; i++) this.round();
    }

    /** Rounds until the state is one of these; the count, or a failure after `limit` rounds. */
    until(states: AgentState["state"][], limit: number): number {
        for (let i = 1; i <= limit; i++) {
            this.round();
            if (states.includes(this.state.state)) return i;
        }
        assert.fail(`still ${this.state.state} after ${limit} rounds (${this.state.reason}; ${this.state.badReason})`);
    }

    /** Every log line so far. */
    get log(): string[] {
        return this.actions.flat().flatMap((a) => (a.kind === "log" ? [a.line] : []));
    }

    /** Rounds a span of fake time takes. */
    roundsIn(ms: number): number {
        return Math.ceil(ms / this.settings.intervalMs);
    }
}

export function prodLax(edit: (s: AgentSettings) => void = () => undefined): AgentSettings {
    const s = agentSettings(popRenderInput(prodSpec(), "lax"));
    edit(s);
    return s;
}

/** An announced PoP: started after a boot, risen. */
export function announced(settings = prodLax()): Sim {
    const sim = new Sim(settings);
    sim.until(["announced"], settings.rise);
    return sim;
}
