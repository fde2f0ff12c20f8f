/**
 * `anycast-health run`: the daemon around the pure policy (components/core/health/policy.ts).
 *
 * Every interval: observe (the checks in process, in parallel, each with its timeout; BIRD over
 * its control socket; the drain and release switches), decide (`step`), act (the state file and
 * BIRD's protocols, nginx's upstream file and SIGHUP, the flap history), publish (the status
 * for the HTTP server, the status file when it changes). Nothing here forks a process.
 *
 * A failed action is not a crash: it is reported in the status and retried every round (BIRD
 * restarting, nginx's pid file missing, a full disk). Stopping the agent leaves the announcement
 * as it is: BIRD keeps its protocols until the next agent decides.
 */
import * as fs from "node:fs";
import { performance } from "node:perf_hooks";
import { decayedPenalty, AgentCounters } from "../components/core/health/metrics";
import { Action, AgentState, ANYCAST_VALUE, Observations, PeerAnswer } from "../components/core/health/agent-state";
import { initialState, meshAsks, publicFetches, statusOf, step } from "../components/core/health/policy";
import { AgentSettings } from "../components/core/health/settings";
import { parseStateFile, renderStateFile } from "../components/core/health/state-file";
import { AgentStatus, parsePeerView } from "../components/core/health/status";
import { BirdControl } from "./bird";
import { ConnectionAborter } from "./connections";
import { controlFiles, formatWithdrawals, parseWithdrawals, readOptional, writeAtomic } from "./files";
import { CheckClient, parseTarget } from "./http";
import { StatusServer } from "./server";

const mono = () => performance.now();
/** How often the status file is rewritten when nothing in it changed but its round (publish). */
const STATUS_FILE_REFRESH_MS = 5000;
/**
 * Epoch ms minus monotonic ms: turns a monotonic time into a wall-clock one. Measured afresh it
 * jitters by a millisecond (the two clocks are read one after the other), which would make every
 * wall-clock time in the status change from round to round; so the offset in use moves only
 * when the wall clock has moved (a step, or drift) by more than WALL_OFFSET_SLACK_MS.
 */
const WALL_OFFSET_SLACK_MS = 50;
let offsetInUse = Date.now() - performance.now();
function wallOffset(): number {
    const measured = Date.now() - performance.now();
    if (Math.abs(measured - offsetInUse) > WALL_OFFSET_SLACK_MS) offsetInUse = measured;
    return offsetInUse;
}

export interface DaemonOptions {
    settings: AgentSettings;
    version: string;
    log: (line: string) => void;
}

export class AgentDaemon {
    private readonly settings: AgentSettings;
    private readonly log: (line: string) => void;
    private readonly bird: BirdControl;
    private readonly files: ReturnType<typeof controlFiles>;
    private readonly server: StatusServer;
    private state!: AgentState;
    /** The last round's status, once built (roundStatus), and that round's time. */
    private status?: AgentStatus;
    private publishedAt?: number;
    private roundAt = 0;
    private tickMs = 0;
    private readonly startedAt = Date.now();
    private stopped = false;
    private wake?: () => void;
    /** Writes and reloads that failed, retried every round until they work. */
    private pending: { stateFile?: 0 | 1 | 2; upstreams?: string; reload: boolean; withdrawals?: number[] } = { reload: false };
    private nginx: Observations["nginx"] = { reloaded: true };
    private birdProblems = "";
    private statusKey = "";
    private statusWrittenAt = -Infinity;
    private readonly counters: AgentCounters = { withdrawals: 0, rounds: 0, stateChanges: 0, dampingPenalty: 0 };
    /** When the announcement went on or off (monotonic ms), for the damping estimate. */
    private flaps: number[] = [];
    private lastError = "";
    /** One client, with its kept-alive connection, per check target (agent/http.ts). */
    private readonly clients: { proxy: CheckClient; origins: CheckClient[]; peers: CheckClient[] };
    /** The other PoPs' public status URLs, as they announce them: clients made when first asked. */
    private readonly publicClients = new Map<string, CheckClient>();
    /** BIRD's last `show protocols`, and when (monotonic): asked again after a second, or at once after a change or a failure. */
    private birdSeen?: { at: number; observation: Observations["bird"] };
    /** Aborts the connections to a path that went down (agent/connections.ts). */
    private readonly aborter: ConnectionAborter;

    constructor(private readonly options: DaemonOptions) {
        this.settings = options.settings;
        const s = options.settings;
        this.clients = {
            // nginx's health endpoint answers only to the anycast address itself.
            proxy: new CheckClient(parseTarget(s.proxyUrl), { localAddress: s.anycastAddress }),
            origins: s.origins.map((o) => new CheckClient(parseTarget(o.url))),
            peers: s.peers.map((p) => new CheckClient(parseTarget(p.statusUrl))),
        };
        this.log = options.log;
        this.aborter = new ConnectionAborter(this.log);
        this.bird = new BirdControl(this.settings.paths.birdSocket, Math.max(1000, this.settings.timeoutMs));
        this.files = controlFiles(this.settings.paths.controlDir);
        this.server = new StatusServer(this.settings, () => this.currentStatus(), () => this.counters, this.log);
    }

    get publicStatusUrl(): string {
        const a = this.settings.listen.publicAddress;
        return `http://${a.includes(":") ? `[${a}]` : a}:${this.settings.listen.port}/status`;
    }

    /** The status as of now (its age filled in), for the HTTP server. */
    private currentStatus(): AgentStatus | undefined {
        if (this.publishedAt === undefined) return undefined;
        return { ...this.roundStatus(), age_ms: Math.max(0, Math.round(mono() - this.roundAt)) };
    }

    async start(): Promise<void> {
        const s = this.settings;
        fs.mkdirSync(s.paths.controlDir, { recursive: true });
        const now = mono();
        const offset = wallOffset();
        // A clock stepped back since a withdrawal was saved must not put it in the future.
        const withdrawals = parseWithdrawals(readOptional(this.files.withdrawals)).map((t) => Math.min(now, t - offset));
        this.state = initialState(s, now, {
            restart: fs.existsSync(s.paths.statusFile),
            previous: parseStateFile(readOptional(s.paths.stateFile) ?? ""),
            withdrawals,
            drainFile: fs.existsSync(this.files.drain),
            upstreams: readOptional(s.paths.upstreamsFile),
        });
        this.roundAt = now;
        this.publish(now);
        this.log(`starting in state ${this.state.state} (ANYCAST_STATE = ${ANYCAST_VALUE[this.state.state]}; ${this.state.reason}) for ` +
            `${s.anycastAddress}: checking ${s.proxyUrl}, ${s.origins.length} origin(s) (${s.origins.map((o) => o.name).join(" ")}) and ` +
            `${s.peers.length} other PoP(s) every ${s.intervalMs} ms; relay ${s.relay ? "on" : "off"}; status on port ${s.listen.port}`);
        this.server.listen();
        void this.loop();
    }

    async stop(): Promise<void> {
        this.stopped = true;
        this.wake?.();
        this.bird.close();
        for (const c of [this.clients.proxy, ...this.clients.origins, ...this.clients.peers, ...this.publicClients.values()]) c.close();
        await this.server.close();
    }

    private async loop(): Promise<void> {
        let next = mono();
        let lastStart = 0;
        while (!this.stopped) {
            const started = mono();
            if (lastStart > 0) {
                const took = started - lastStart;
                this.tickMs = this.tickMs === 0 ? took : (3 * this.tickMs + took) / 4;
            }
            lastStart = started;
            try {
                await this.round();
                this.lastError = "";
            } catch (e) {
                // A bug, not a fault of the network: say it once, keep the announcement, try again.
                const text = (e as Error).stack ?? String(e);
                if (text !== this.lastError) this.log(`round failed (the announcement stays as it is): ${text}`);
                this.lastError = text;
            }
            next += this.settings.intervalMs;
            const now = mono();
            // Behind schedule (slow checks): start the next round now rather than bursting to catch up.
            if (next < now) next = now;
            await new Promise<void>((resolve) => {
                const timer = setTimeout(resolve, next - now);
                this.wake = () => {
                    clearTimeout(timer);
                    resolve();
                };
            });
        }
    }

    private async fetchPeer(client: CheckClient): Promise<PeerAnswer> {
        const a = await client.check({ timeoutMs: this.settings.timeoutMs, body: true, accept: (st) => st === 200 });
        if (!a.ok) return { ok: false, detail: a.detail };
        const view = parsePeerView(a.body ?? "");
        return view ? { ok: true, view, rttUs: a.connectUs } : { ok: false, detail: "an answer that is not an agent's status" };
    }

    private async observe(): Promise<Observations> {
        const s = this.settings;
        const timeoutMs = s.timeoutMs;
        const overPublic = new Map(publicFetches(this.state).map((p) => [p.index, p.url]));
        const overMesh = new Set(meshAsks(this.state, mono(), s));
        const [proxy, origins, peers, bird, drainFile, releaseFile] = await Promise.all([
            this.clients.proxy.check({ timeoutMs, accept: (st) => st === 200 }),
            Promise.all(this.clients.origins.map((c) => c.check({ timeoutMs }))),
            Promise.all(this.clients.peers.map(async (client, j) => {
                const url = overPublic.get(j);
                const [mesh, pub] = await Promise.all([
                    overMesh.has(j) ? this.fetchPeer(client) : undefined,
                    url ? this.fetchPublic(url) : undefined,
                ]);
                return { ...(mesh ? { mesh } : {}), ...(pub ? { public: pub } : {}) };
            })),
            this.observeBird(),
            // A stat on a tmpfs: cheaper done at once than through the thread pool.
            fs.existsSync(this.files.drain),
            fs.existsSync(this.files.release),
        ]);
        return {
            proxy: { ok: proxy.ok, rttUs: proxy.connectUs, detail: proxy.detail },
            origins: origins.map((o) => ({ ok: o.ok, rttUs: o.connectUs, detail: o.detail })),
            peers, bird, drainFile, releaseFile, nginx: this.nginx,
        };
    }

    private fetchPublic(url: string): Promise<PeerAnswer> {
        let client = this.publicClients.get(url);
        if (!client) {
            try {
                client = new CheckClient(parseTarget(url));
            } catch {
                return Promise.resolve({ ok: false, detail: `bad URL ${url}` });
            }
            this.publicClients.set(url, client);
        }
        return this.fetchPeer(client);
    }

    /**
     * BIRD's protocols, asked at most once a second while nothing changes: a BIRD restart closes
     * the socket (asked again at once), an operator's `disable` or `configure` is undone within a
     * second, and an idle PoP does not ask BIRD ten times a second.
     */
    private async observeBird(): Promise<Observations["bird"]> {
        const now = mono();
        if (this.birdSeen?.observation.ok && this.bird.connected && now - this.birdSeen.at < 1000) return this.birdSeen.observation;
        const observation = await this.bird.observe();
        this.birdSeen = { at: mono(), observation };
        return observation;
    }

    private async round(): Promise<void> {
        const observations = await this.observe();
        const now = mono();
        const before = this.state;
        const { state, actions } = step(before, observations, now, this.settings);
        this.state = state;
        this.roundAt = now;
        this.counters.rounds++;
        if (state.state !== before.state) this.counters.stateChanges++;
        if ((ANYCAST_VALUE[state.state] > 0) !== (ANYCAST_VALUE[before.state] > 0)) this.flaps.push(now);
        if (state.withdrawals.length > before.withdrawals.length) this.counters.withdrawals += state.withdrawals.length - before.withdrawals.length;
        this.flaps = this.flaps.filter((t) => now - t < 6 * 3600_000);
        this.counters.dampingPenalty = decayedPenalty(this.flaps.map((t) => now - t));
        await this.act(actions);
        this.publish(now);
    }

    private async act(actions: Action[]): Promise<void> {
        const aborts: string[] = [];
        for (const a of actions) {
            switch (a.kind) {
                case "log": this.log(a.line); break;
                case "state-file": this.pending.stateFile = a.value; break;
                case "upstreams": this.pending.upstreams = a.text; this.pending.reload = true; break;
                case "abort-connections": aborts.push(...a.servers); break;
                case "withdrawals": this.pending.withdrawals = a.times; break;
                case "release-done":
                    try {
                        fs.rmSync(this.files.release, { force: true });
                    } catch {
                        // Gone already, or not ours to remove: the release was acted on either way.
                    }
                    break;
                case "bird": {
                    // The state file first, so a BIRD that restarts in between starts as the agent wants.
                    await this.flushStateFile();
                    const problems = (await this.bird.switchProtocols(a.enable, a.disable)).join("; ");
                    if (problems && problems !== this.birdProblems) this.log(`BIRD: ${problems} (retrying every round)`);
                    this.birdProblems = problems;
                    // BIRD confirmed every switch (0009/0011): its state is the agent's now, not only from the next round on.
                    if (!problems) this.state = { ...this.state, birdApplied: true };
                    // Whatever happened, the next round looks at BIRD again.
                    this.birdSeen = undefined;
                    break;
                }
            }
        }
        await this.flushStateFile();
        await this.flushUpstreams();
        // After the reload: nginx's new workers no longer pick these paths, and the requests the
        // old ones sent on them fail now and go on to the next path (agent/connections.ts).
        if (aborts.length > 0) {
            void this.aborter.abort(aborts).then((n) => { if (n > 0) this.log(`aborted ${n} connection${n === 1 ? "" : "s"} to ${aborts.join(", ")}`); });
        }
        if (this.pending.withdrawals) {
            const offset = wallOffset();
            const text = formatWithdrawals(this.pending.withdrawals.map((t) => t + offset));
            try {
                writeAtomic(this.files.withdrawals, text);
                this.pending.withdrawals = undefined;
            } catch (e) {
                this.log(`cannot save the flap history (${(e as Error).message}): retrying every round`);
            }
        }
    }

    private async flushStateFile(): Promise<void> {
        const value = this.pending.stateFile;
        if (value === undefined) return;
        try {
            writeAtomic(this.settings.paths.stateFile, renderStateFile(value));
            this.pending.stateFile = undefined;
        } catch (e) {
            this.log(`cannot write ${this.settings.paths.stateFile} (${(e as Error).message}): retrying every round`);
        }
    }

    private async flushUpstreams(): Promise<void> {
        if (this.pending.upstreams !== undefined) {
            try {
                writeAtomic(this.settings.paths.upstreamsFile, this.pending.upstreams);
                this.pending.upstreams = undefined;
            } catch (e) {
                this.nginxFailed(`cannot write ${this.settings.paths.upstreamsFile}: ${(e as Error).message}`);
                return;
            }
        }
        if (!this.pending.reload) return;
        // SIGHUP to nginx's master: it starts workers with the new file and lets the old ones finish.
        const pidText = readOptional(this.settings.paths.nginxPidFile)?.trim() ?? "";
        const pid = /^\d+$/.test(pidText) ? Number(pidText) : undefined;
        try {
            if (pid === undefined) throw new Error(`no pid in ${this.settings.paths.nginxPidFile}`);
            process.kill(pid, "SIGHUP");
            if (!this.nginx.reloaded) this.log("nginx reloaded again");
            this.nginx = { reloaded: true };
            this.pending.reload = false;
        } catch (e) {
            this.nginxFailed(`cannot reload nginx: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
    }

    private nginxFailed(error: string): void {
        if (this.nginx.error !== error) this.log(`${error} (retrying every round)`);
        this.nginx = { reloaded: false, error };
    }

    /**
     * The status for the server, and the status file when what it says changed, else every
     * STATUS_FILE_REFRESH_MS: the file is for readers that do not ask the agent (its own `status`
     * when the agent does not answer, the lab), and its `updated` tells them the agent is alive.
     */
    private publish(now: number): void {
        // Built when someone asks (a peer, `anycast-health status`, Prometheus) or the file is due, not every round.
        this.status = undefined;
        this.publishedAt = now;
        const st = this.state;
        const key = [st.state, st.healthy, st.fault, st.primary, st.paths.map((p) => (p.up ? 1 : 0)).join(""), st.withdrawals.length,
            st.drainRequested, st.bird.ok, st.birdApplied, st.nginx.reloaded, st.since, st.reason].join("|");
        if (key === this.statusKey && now - this.statusWrittenAt < STATUS_FILE_REFRESH_MS) return;
        this.statusKey = key;
        this.statusWrittenAt = now;
        try {
            writeAtomic(this.settings.paths.statusFile, JSON.stringify(this.roundStatus()) + "\n");
        } catch (e) {
            const message = (e as Error).message;
            if (this.lastError !== message) this.log(`cannot write ${this.settings.paths.statusFile}: ${message}`);
            this.lastError = message;
        }
    }

    /** The status of the last round, built once per round. */
    private roundStatus(): AgentStatus {
        this.status ??= statusOf(this.state, this.settings, this.publishedAt ?? this.roundAt, {
            wallOffsetMs: wallOffset(), agentVersion: this.options.version, startedAt: this.startedAt, tickMs: this.tickMs, roundAt: this.roundAt,
            publicStatusUrl: this.publicStatusUrl,
        });
        return this.status;
    }
}
