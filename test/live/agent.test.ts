/**
 * The health agent, live, where it needs the real thing: the bundled agent driving a real BIRD
 * (the rendered bird.conf) over its control socket in a network namespace, rewriting nginx's
 * upstream file and signalling it, and surviving its own crash and BIRD's restart. Its decisions
 * are tested on a fake clock in test/unit/health-policy.test.ts and its artifacts in
 * test/render/health.test.ts; this test only waits for outcomes, with generous limits.
 */
import { test, describe, after, before, TestContext } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { agentSettings, renderHealthAgent } from "../../components/core/render/health";
import { renderBirdConfig } from "../../components/core/render/bird";
import { HEALTH_ENDPOINT } from "../../components/core/render/nginx";
import { AgentSettings, formatAgentSettings } from "../../components/core/health/settings";
import { labSpec, popRenderInput, withAgentPaths } from "../helpers/fixtures";
import {
    CapturedProcess, createNetns, deleteNetns, inNetnsOk, isRoot, needRoot, needTools, pollingDuring, run, spawnCaptured, tempDir,
    uniqueNetnsName, until, which,
} from "../helpers/tools";

// ------------------------------------------------------------------------------------------------
// Live: the bundled agent, a real BIRD with the rendered bird.conf, real HTTP, in a namespace.
// ------------------------------------------------------------------------------------------------

const SPEC = labSpec();
const INPUT = popRenderInput(SPEC, "lax");
const ANYCAST = SPEC.address.toString();
const PREFIX = SPEC.prefixes[0].toString();
const [ORIGIN1, ORIGIN2] = SPEC.origins.map((o) => o.meshAddress.toString());
const LAX_MESH = SPEC.pops.find((p) => p.name === "lax")!.meshAddress.toString();
const AMS_MESH = SPEC.pops.find((p) => p.name === "ams")!.meshAddress.toString();
/** The agent listens here in the test: the fake ams holds the real status port on its own address. */
const AGENT_PORT = 9199;
/**
 * A limit for something to happen, not a measure of how fast: a round of checks can last a check
 * timeout and a shared machine stalls for seconds. How fast is the lab report's and the bench's.
 */
const REACT_MS = 30_000;

/**
 * Stands for nginx's health endpoint on [anycast]:80, both origins on [mesh]:8080 and ams's agent
 * on [mesh]:statusPort, where the rendered settings point. Commands on stdin: "stop origin" /
 * "start origin" close or reopen a listener.
 */
const FAKE_SERVERS = `
const http = require("node:http");
const specs = {
    proxy: { host: ${JSON.stringify(ANYCAST)}, port: 80, path: ${JSON.stringify(HEALTH_ENDPOINT)}, body: () => "lax ok\\n" },
    origin: { host: ${JSON.stringify(ORIGIN1)}, port: 8080, path: "/healthz", body: () => "ok\\n" },
    origin2: { host: ${JSON.stringify(ORIGIN2)}, port: 8080, path: "/healthz", body: () => "ok\\n" },
    ams: { host: ${JSON.stringify(AMS_MESH)}, port: ${SPEC.health.statusPort}, path: "/status", body: () => JSON.stringify({ pop: "ams", seq: ++seq,
        state: "announced", proxy_ok: true, direct_up: 1, best_us: 400, age_ms: 0 }) },
};
let seq = 0;
const servers = {};
function start(name, done) {
    if (servers[name] && servers[name].listening) return done();
    const spec = specs[name];
    const server = http.createServer((req, res) => { res.statusCode = req.url === spec.path ? 200 : 404; res.end(spec.body()); });
    server.listen(spec.port, spec.host, done);
    servers[name] = server;
}
function stop(name, done) {
    if (!servers[name].listening) return done();
    servers[name].close(done);
    servers[name].closeAllConnections();
}
require("node:readline").createInterface({ input: process.stdin }).on("line", (line) => {
    const [verb, name] = line.trim().split(" ");
    (verb === "stop" ? stop : start)(name, () => console.log("done " + line.trim()));
});
start("proxy", () => start("origin", () => start("origin2", () => start("ams", () => console.log("ready")))));
`;

/** Stands for nginx's master: writes its pid file and counts the SIGHUPs (reloads) it gets. */
const FAKE_NGINX = `trap 'echo hup' HUP; echo $$ >"$1"; while :; do sleep 0.05 & wait $!; done`;

class LiveAgent {
    readonly ns = uniqueNetnsName("health");
    readonly dir = tempDir("health-live");
    readonly paths = {
        stateFile: path.join(this.dir, "anycast-state.conf"),
        birdSocket: path.join(this.dir, "bird.ctl"),
        statusFile: path.join(this.dir, "run", "health.json"),
        controlDir: path.join(this.dir, "run"),
        upstreamsFile: path.join(this.dir, "nginx-upstreams.conf"),
        nginxPidFile: path.join(this.dir, "nginx.pid"),
    };
    readonly program = path.join(this.dir, "anycast-health");
    readonly settingsFile = path.join(this.dir, "anycast-health.json");
    readonly birdConf = path.join(this.dir, "bird.conf");
    private procs: CapturedProcess[] = [];
    bird?: CapturedProcess;
    servers?: CapturedProcess;
    nginx?: CapturedProcess;
    agent?: CapturedProcess;

    async setUp(): Promise<void> {
        createNetns(this.ns);
        for (const address of [ANYCAST, ORIGIN1, ORIGIN2, AMS_MESH, LAX_MESH]) inNetnsOk(this.ns, "ip", ["addr", "add", `${address}/128`, "dev", "lo", "nodad"]);
        // The rendered bird.conf, its state include where this test keeps it (the layout's); BIRD
        // starts withdrawn, as anycast-net seeds a fresh host.
        fs.writeFileSync(this.paths.stateFile, "define ANYCAST_STATE = 0;\n");
        fs.writeFileSync(this.birdConf, renderBirdConfig(INPUT, withAgentPaths(INPUT, this.paths)));
        fs.writeFileSync(this.program, renderHealthAgent(), { mode: 0o755 });
        // Relay off: an origin lost here is then this PoP's own fault while ams still reaches one.
        const settings: AgentSettings = { ...agentSettings(INPUT, withAgentPaths(INPUT, this.paths)), relay: false, drainMs: 1500, listen: { ...agentSettings(INPUT).listen, port: AGENT_PORT } };
        fs.writeFileSync(this.settingsFile, formatAgentSettings(settings));
        this.startBird();
        this.nginx = this.spawn("bash", ["-c", FAKE_NGINX, "fake-nginx", this.paths.nginxPidFile]);
        this.servers = this.spawn("ip", ["netns", "exec", this.ns, process.execPath, "-e", FAKE_SERVERS], true);
        await until("fake servers", REACT_MS, () => this.servers!.out.includes("ready"));
        await until("fake nginx", REACT_MS, () => fs.existsSync(this.paths.nginxPidFile));
        await until("BIRD's control socket", REACT_MS, () => fs.existsSync(this.paths.birdSocket));
    }

    startBird(): void {
        this.bird = this.spawn("ip", ["netns", "exec", this.ns, "bird", "-f", "-c", this.birdConf, "-s", this.paths.birdSocket]);
    }

    async killBird(): Promise<void> {
        this.bird!.child.kill("SIGKILL");
        await until("BIRD to exit", REACT_MS, () => this.bird!.exited);
        fs.rmSync(this.paths.birdSocket, { force: true });
    }

    startAgent(): CapturedProcess {
        this.agent = this.spawn("ip", ["netns", "exec", this.ns, "env", `ANYCAST_HEALTH_SETTINGS=${this.settingsFile}`, this.program, "run"]);
        return this.agent;
    }

    async server(command: string): Promise<void> {
        const marker = `done ${command}`;
        const seen = this.servers!.out.split(marker).length;
        this.servers!.child.stdin!.write(command + "\n");
        await until(command, REACT_MS, () => this.servers!.out.split(marker).length > seen);
    }

    cli(command: string): { status: number | null; stdout: string; stderr: string } {
        return run("ip", ["netns", "exec", this.ns, "env", `ANYCAST_HEALTH_SETTINGS=${this.settingsFile}`, this.program, command]);
    }

    birdc(...args: string[]): string {
        return run("birdc", ["-s", this.paths.birdSocket, ...args]).stdout;
    }

    /** What BIRD holds for the prefix: undefined (withdrawn), "plain" or "graceful-shutdown". */
    route(): string | undefined {
        const out = this.birdc("show", "route", "all", PREFIX);
        if (!out.includes(PREFIX)) return undefined;
        return /BGP\.community: .*\(65535,0\)/.test(out) ? "graceful-shutdown" : "plain";
    }

    async expectRoute(expected: string | undefined): Promise<void> {
        await until(`route ${expected ?? "withdrawn"} in BIRD`, REACT_MS, () => this.route() === expected).catch((e: Error) => {
            throw new Error(`${e.message}; the agent said: ${this.agent?.err.split("\n").slice(-6).join(" | ")}`);
        });
    }

    /** Fails if the route leaves `expected` while `during` runs. */
    async routeHolds<T>(expected: string | undefined, during: () => Promise<T>): Promise<T> {
        let left: string | undefined | null = null;
        try {
            return await pollingDuring(() => {
                const now = this.route();
                if (now !== expected && left === null) left = now;
            }, 20, during);
        } finally {
            assert.equal(left, null, `the route left ${expected ?? "withdrawn"} (to ${String(left)})`);
        }
    }

    /** The running agent's status, as `anycast-health status` gets it (the status file is rewritten only on changes). */
    status(): Record<string, unknown> & { state: string; bird: { reachable: boolean; applied: boolean } } {
        const r = this.cli("status");
        try {
            return JSON.parse(r.stdout);
        } catch {
            return { state: `no status (${r.stderr.trim() || `exit ${r.status}`})`, bird: { reachable: false, applied: false } };
        }
    }

    reloads(): number {
        return this.nginx!.out.split("hup").length - 1;
    }

    /** BIRD's "Last reconfiguration" time: unchanged while the agent only enables and disables protocols. */
    lastReconfiguration(): string {
        return /Last reconfiguration on (.*)/.exec(this.birdc("show", "status"))?.[1] ?? "";
    }

    spawn(command: string, args: string[], stdin = false): CapturedProcess {
        const proc = spawnCaptured(command, args, stdin);
        this.procs.push(proc);
        return proc;
    }

    async tearDown(): Promise<void> {
        for (const proc of this.procs.reverse()) if (!proc.exited) proc.child.kill("SIGTERM");
        await until("processes to exit", REACT_MS, () => this.procs.every((p) => p.exited)).catch(() => {
            for (const proc of this.procs) if (!proc.exited) proc.child.kill("SIGKILL");
        });
        deleteNetns(this.ns);
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

/** CPU seconds (user + system) of a process from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
}

describe("the agent against a real BIRD (live)", () => {
    const canRun = isRoot() && ["bird", "birdc", "ip", "curl"].every((tool) => which(tool) !== undefined);
    const live = canRun ? new LiveAgent() : undefined;
    before(async () => {
        await live?.setUp();
    });
    after(async () => {
        await live?.tearDown();
    });
    const skipUnlessLive = (t: TestContext): boolean => {
        if (live) return false;
        if (needRoot(t, "network namespace and BIRD")) needTools(t, "bird", "birdc", "ip", "curl");
        return true;
    };

    test("BIRD obeys the agent over its socket, with no reconfiguration; nginx gets its upstream file; a crash and a BIRD restart cost no flap", async (t) => {
        if (skipUnlessLive(t) || !live) return;
        const reconfigured = live.lastReconfiguration();
        const agent = live.startAgent();

        // A first start after boot: withdrawn until rise good checks, then the plain route.
        await live.expectRoute("plain");
        assert.equal(fs.readFileSync(live.paths.stateFile, "utf8").startsWith("define ANYCAST_STATE = 2;"), true);
        assert.match(live.birdc("show", "protocols", "lax_drain6"), /lax_drain6\s+Static\s+master6\s+down/);
        await until("the upstream file", REACT_MS, () => fs.existsSync(live.paths.upstreamsFile));
        assert.match(fs.readFileSync(live.paths.upstreamsFile, "utf8"), /server \[fd00:a:1::1\]:8080 max_fails=1 fail_timeout=5s;   # origin/);

        // The operator's view: `anycast-health status` asks the agent over loopback; /metrics is Prometheus text.
        const shown = live.cli("status");
        assert.equal(shown.status, 0, shown.stderr);
        const status = JSON.parse(shown.stdout);
        assert.equal(status.state, "announced");
        assert.equal(status.bird.applied, true);
        assert.deepEqual(status.bird.sessions.map((s: { name: string }) => s.name), ["lax_upstream6"]);
        const metrics = run("ip", ["netns", "exec", live.ns, "curl", "-sf", `http://[::1]:${AGENT_PORT}/metrics`]);
        assert.match(metrics.stdout, /^anycast_announced\{pop="lax"\} 1$/m);

        // Both origins gone while ams still reaches one: a fault of this PoP's own, withdrawn; the
        // paths go down in nginx's file and nginx is signalled.
        const reloads = live.reloads();
        await live.server("stop origin");
        await live.server("stop origin2");
        await live.expectRoute(undefined);
        assert.match(fs.readFileSync(live.paths.upstreamsFile, "utf8"), /down;   # origin\n/);
        await until("nginx reloaded", REACT_MS, () => live.reloads() > reloads);
        await live.server("start origin");
        await live.server("start origin2");
        await live.expectRoute("plain");

        // Drain: GRACEFUL_SHUTDOWN, then withdrawn; undrain announces again.
        assert.equal(live.cli("drain").status, 0);
        await live.expectRoute("graceful-shutdown");
        await live.expectRoute(undefined);
        assert.equal(live.cli("undrain").status, 0);
        await live.expectRoute("plain");

        // Not one of those changes re-read BIRD's config (which would make its peers resend routes).
        assert.equal(live.lastReconfiguration(), reconfigured);

        // An operator's `birdc disable` is undone: the agent re-asserts its state.
        live.birdc("disable", "lax_anycast6");
        await live.expectRoute("plain");

        // The agent killed: BIRD keeps the announcement; the restarted agent takes it over without a flap.
        await live.routeHolds("plain", async () => {
            agent.child.kill("SIGKILL");
            await until("the agent to exit", REACT_MS, () => agent.exited);
            const again = live.startAgent();
            await until("the restarted agent's status", REACT_MS, () => /restarted while announced/.test(again.err));
            await until("its first rounds", REACT_MS, () => live.status().state === "announced" && (live.status().seq as number) > 5);
        });

        // BIRD restarted: it starts from the state file (announced); the agent sees it and goes on.
        await live.killBird();
        await until("the agent to report BIRD unreachable", REACT_MS, () => live.status().bird.reachable === false);
        assert.equal(live.agent!.exited, false, "the agent kept running without BIRD");
        live.startBird();
        await live.expectRoute("plain");
        await until("BIRD applied again", REACT_MS, () => live.status().bird.applied === true);

        // Idle cost, printed (the lab report measures it on the whole network).
        // `ip netns exec` and `env` exec in place: the child's pid is the agent's.
        const pid = live.agent!.child.pid;
        if (pid !== undefined) {
            const cpu0 = cpuSeconds(pid);
            const t0 = performance.now();
            await new Promise((r) => setTimeout(r, 3000));
            const share = (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000);
            t.diagnostic(`agent CPU at a ${SPEC.health.interval * 1000} ms interval, idle: ${(share * 100).toFixed(1)}% of one core`);
        }
    });
});
