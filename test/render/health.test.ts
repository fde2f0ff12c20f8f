/**
 * The health agent: goldens for the env file and the unit; the script file itself (shellcheck,
 * its settings against the renderer's); systemd-analyze on the unit; and the real agent driving
 * a real BIRD in a network namespace, with tiny node HTTP servers standing for nginx's health
 * endpoint and the origin.
 */
import { test, describe, after, before, TestContext } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
    renderHealthAgent, renderHealthEnv, renderHealthUnit, HEALTH_AGENT_FILE, HEALTH_PATHS,
} from "../../components/core/render/health";
import { ARTIFACTS } from "../../components/core/artifacts";
import { ANYCAST_STATE, renderBirdStateInclude } from "../../components/core/render/bird";
import { HEALTH_ENDPOINT, renderNginxUpstreams, STATUS_ENDPOINT } from "../../components/core/render/nginx";
import { assertGolden, REPO_ROOT } from "../helpers/golden";
import { labSpec, popRenderInput, prodSpec } from "../helpers/fixtures";
import {
    CapturedProcess, createNetns, deleteNetns, inNetnsOk, isRoot, needRoot, needTools, pollingDuring, run, sleep, spawnCaptured, tempDir,
    uniqueNetnsName, until, which,
} from "../helpers/tools";

describe("health agent artifacts", () => {
    test("golden: env lab lax", () => assertGolden("health/lab-lax.env", renderHealthEnv(popRenderInput(labSpec(), "lax"))));
    test("golden: env prod lax", () => assertGolden("health/prod-lax.env", renderHealthEnv(popRenderInput(prodSpec(), "lax"))));
    test("golden: unit", () => assertGolden("health/anycast-health.service", renderHealthUnit()));
    test("the agent is the repo's script file, pushed as it is", () => {
        assert.equal(HEALTH_AGENT_FILE, path.join(REPO_ROOT, "components", "core", "render", "anycast-health.sh"));
        assert.equal(renderHealthAgent(), fs.readFileSync(HEALTH_AGENT_FILE, "utf8"));
        assert.ok(renderHealthAgent().startsWith("#!/bin/bash\n"));
    });

    test("env: the URLs the agent checks, bracketing only IPv6", () => {
        const lab = envValues(renderHealthEnv(popRenderInput(labSpec(), "lax")));
        assert.equal(lab.PROXY_URL, `http://[2001:db8:100::1]${HEALTH_ENDPOINT}`);
        assert.equal(lab.ORIGINS, "origin origin2");
        assert.equal(lab.ORIGIN_URLS, "http://[fd00:a:1::1]:8080/healthz http://[fd00:a:1:0:ffff:ffff:ffff:ffff]:8080/healthz");
        assert.equal(lab.ORIGIN_SERVERS, "[fd00:a:1::1]:8080 [fd00:a:1:0:ffff:ffff:ffff:ffff]:8080");
        assert.equal(lab.PEERS, "ams sgp");
        assert.equal(lab.PEER_STATUS_URLS, `http://[fd00:a:1::3]:8081${STATUS_ENDPOINT} http://[fd00:a:1::4]:8081${STATUS_ENDPOINT}`);
        assert.equal(lab.PEER_SERVERS, "[fd00:a:1::3]:8081 [fd00:a:1::4]:8081");
        assert.equal(lab.RELAY, "yes");
        assert.equal(lab.MESH_TOPOLOGY, "full");
        assert.equal(lab.INTERVAL, "0.1");
        assert.equal(lab.STATE_FILE, HEALTH_PATHS.stateFile);
        // sgp prefers origin2 (Pulumi.lab.yaml); the others go by measured round-trip time.
        assert.equal(lab.ORIGIN_PREFERENCE, "measured");
        assert.equal(envValues(renderHealthEnv(popRenderInput(labSpec(), "sgp"))).ORIGIN_PREFERENCE, "origin2 origin");
        const prod = envValues(renderHealthEnv(popRenderInput(prodSpec(), "ams")));
        assert.equal(prod.POP, "ams");
        assert.equal(prod.ORIGINS, "origin");
        assert.equal(prod.ORIGIN_URLS, "http://10.77.0.1:8080/healthz");
        assert.equal(prod.ORIGIN_SERVERS, "10.77.0.1:8080");
        assert.equal(prod.DRAIN_SECONDS, "10");
        // A single PoP has no peers: the empty list is "-", never an empty (missing) setting.
        const alone = popRenderInput(prodSpec(), "ams");
        const single = envValues(renderHealthEnv({ ...alone, peers: [] }));
        assert.equal(single.PEERS, "-");
        assert.equal(single.RELAY, "no");
    });

    test("env: a line break in a value is refused, it would inject a key", () => {
        const input = popRenderInput(labSpec(), "lax");
        input.origins = [{ ...input.origins![0], healthPath: "/x\nSTATE_FILE=/etc/passwd" }];
        assert.throws(() => renderHealthEnv(input), /line break/);
    });

    test("unit: the agent may write nginx's paths to the origins, and nothing else outside /run", () => {
        assert.match(renderHealthUnit(), /^ReadWritePaths=\/etc\/bird \/etc\/anycast -\/run\/bird$/m);
        assert.equal(HEALTH_PATHS.upstreamsFile, ARTIFACTS["nginx-upstreams.conf"].remotePath);
    });

    test("the script requires exactly the settings the env file sets, and has no defaults for them", () => {
        const script = renderHealthAgent();
        const list = /^SETTINGS=\(([^)]*)\)/m.exec(script);
        assert.ok(list, "the script declares its SETTINGS");
        const settings = list[1].split(/\s+/).filter(Boolean);
        assert.deepEqual(settings, Object.keys(envValues(renderHealthEnv(popRenderInput(labSpec(), "lax")))));
        for (const key of settings) {
            assert.doesNotMatch(script, new RegExp(`\\$\\{${key}:[-=]`), `the script has a default for ${key}`);
        }
    });

    test("the script's fallback env file is the env artifact's path", () => {
        assert.ok(renderHealthAgent().includes(`ENV_FILE=\${ANYCAST_HEALTH_ENV:-${ARTIFACTS["anycast-health.env"].remotePath}}\n`));
        assert.equal(HEALTH_PATHS.env, ARTIFACTS["anycast-health.env"].remotePath);
    });

    test("the agent refuses to run without every setting, naming the missing ones", (t) => {
        if (!needTools(t, "bash")) return;
        const dir = tempDir("health-settings");
        try {
            const env = renderHealthEnv(popRenderInput(labSpec(), "lax"));
            const partial = path.join(dir, "partial.env");
            fs.writeFileSync(partial, env.replace(/^MAX_WITHDRAWALS_PER_HOUR=.*\n/m, "").replace(/^TIMEOUT=.*$/m, "TIMEOUT="));
            for (const command of ["run", "status", "drain"]) {
                const result = run("bash", [HEALTH_AGENT_FILE, command], { env: { ...process.env, ANYCAST_HEALTH_ENV: partial } });
                assert.equal(result.status, 2, `${command}: ${result.stderr}`);
                assert.match(result.stderr, /does not set TIMEOUT MAX_WITHDRAWALS_PER_HOUR \(every setting is required\)/);
            }
            const missing = run("bash", [HEALTH_AGENT_FILE, "status"], { env: { ...process.env, ANYCAST_HEALTH_ENV: path.join(dir, "none.env") } });
            assert.equal(missing.status, 2);
            assert.match(missing.stderr, /cannot read the settings file .*none\.env/);
            // The process environment never stands in for the file.
            const fromEnvironment = run("bash", [HEALTH_AGENT_FILE, "status"], {
                env: { ...process.env, ANYCAST_HEALTH_ENV: partial, TIMEOUT: "1", MAX_WITHDRAWALS_PER_HOUR: "3" },
            });
            assert.equal(fromEnvironment.status, 2);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    test("shellcheck accepts the agent's file", (t) => {
        if (!needTools(t, "shellcheck")) return;
        const result = run("shellcheck", [HEALTH_AGENT_FILE]);
        assert.equal(result.status, 0, result.stdout + result.stderr);
    });

    test("systemd-analyze verify accepts the unit", (t) => {
        if (!needTools(t, "systemd-analyze")) return;
        const dir = tempDir("health-unit");
        try {
            // verify insists that ExecStart exists; and the real unit name may be masked on a dev machine.
            const script = path.join(dir, "anycast-health");
            fs.writeFileSync(script, renderHealthAgent(), { mode: 0o755 });
            const unit = path.join(dir, "anycast-health-verify.service");
            fs.writeFileSync(unit, renderHealthUnit().replace(HEALTH_PATHS.script, script));
            const result = run("systemd-analyze", ["verify", unit]);
            assert.equal(result.status, 0, result.stderr);
            // It only warns (exit 0) on unknown keys or bad values, so any output about our file is a failure.
            assert.equal(result.stderr.split("\n").filter((l) => l.includes(unit)).join("\n"), "");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

function envValues(text: string): Record<string, string> {
    const values: Record<string, string> = {};
    for (const line of text.split("\n")) {
        if (line === "" || line.startsWith("#")) continue;
        const eq = line.indexOf("=");
        values[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return values;
}

// ------------------------------------------------------------------------------------------------
// Live: the real agent, a real BIRD, real HTTP, in a namespace.
// ------------------------------------------------------------------------------------------------

const ANYCAST = "2001:db8:100::1";
const [ORIGIN1, ORIGIN2] = labSpec().origins.map((o) => o.meshAddress);
/** The lab's ams, the peer that plays "another PoP" (sgp never answers: a dead peer). */
const AMS = labSpec().pops.find((p) => p.name === "ams")!.meshAddress;
const RELAY_PORT = labSpec().failover.relayPort;
/**
 * How long a wait for the agent (or BIRD, or a process) to react may take. The waits check that
 * something happens, not how fast: one tick can last a check timeout, and this shared machine
 * stalls for seconds under load. How fast is printed, and measured by the bench.
 */
const REACT_MS = 15_000;

/**
 * Stands for nginx's health endpoint on [anycast]:80, both origins on [mesh]:8080 and ams's status
 * on [mesh]:relayPort, exactly where the rendered env file points. Commands on stdin: "stop
 * origin" / "start origin" close or reopen a listener; "view serving|global|withdrawn" sets what
 * ams says: announced and reaching an origin, announced and reaching none, or withdrawn.
 */
const FAKE_SERVERS = `
const http = require("node:http");
const specs = {
    proxy: { host: ${JSON.stringify(ANYCAST)}, port: 80, path: ${JSON.stringify(HEALTH_ENDPOINT)}, body: () => "lax ok\\n" },
    origin: { host: ${JSON.stringify(ORIGIN1)}, port: 8080, path: "/healthz", body: () => "ok\\n" },
    origin2: { host: ${JSON.stringify(ORIGIN2)}, port: 8080, path: "/healthz", body: () => "ok\\n" },
    ams: { host: ${JSON.stringify(AMS)}, port: ${RELAY_PORT}, path: ${JSON.stringify(STATUS_ENDPOINT)}, body: () => status() },
};
let view = "serving";
let seq = 0;
function status() {
    const reaches = view !== "global";
    return JSON.stringify({ pop: "ams", seq: ++seq, state: view === "withdrawn" ? "withdrawn" : "announced", serving: reaches,
        direct_up: reaches ? 1 : 0, best_us: reaches ? 400 : -1 }) + "\\n";
}
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
    const done = () => console.log("done " + line.trim());
    if (verb === "view") { view = name; done(); } else (verb === "stop" ? stop : start)(name, done);
});
start("proxy", () => start("origin", () => start("origin2", () => start("ams", () => console.log("ready")))));
`;

/** Stands for nginx's master: writes its pid file and counts the SIGHUPs (reloads) it gets. */
const FAKE_NGINX = `trap 'echo hup' HUP; echo $$ >"$1"; while :; do sleep 0.05 & wait $!; done`;

type Proc = CapturedProcess;

class Lab {
    readonly ns = uniqueNetnsName("health");
    readonly dir = tempDir("health-live");
    readonly stateFile = path.join(this.dir, "anycast-state.conf");
    readonly socket = path.join(this.dir, "bird.ctl");
    readonly statusFile = path.join(this.dir, "run", "health.json");
    readonly controlDir = path.join(this.dir, "run");
    readonly upstreamsFile = path.join(this.dir, "nginx-upstreams.conf");
    readonly nginxPidFile = path.join(this.dir, "nginx.pid");
    readonly script = path.join(this.dir, "anycast-health");
    private procs: Proc[] = [];
    bird?: Proc;
    servers?: Proc;
    nginx?: Proc;

    setUp(): void {
        createNetns(this.ns);
        for (const address of [ANYCAST, ORIGIN1, ORIGIN2, AMS]) inNetnsOk(this.ns, "ip", ["addr", "add", `${address}/128`, "dev", "lo", "nodad"]);
        fs.writeFileSync(this.stateFile, `define ANYCAST_STATE = ${ANYCAST_STATE.withdrawn};\n`);
        // A static protocol has no export side, so its import filter reads the switch here: the
        // route appears, carries 65535:0 or disappears exactly as an upstream export would.
        fs.writeFileSync(path.join(this.dir, "bird.conf"), [
            "router id 192.0.2.1;",
            `include "${this.stateFile}";`,
            "protocol device {}",
            "protocol static anycast {",
            "    ipv6 { import filter {",
            "        if ANYCAST_STATE = 0 then reject;",
            "        if ANYCAST_STATE = 1 then bgp_community.add((65535, 0));",
            "        accept;",
            "    }; };",
            "    route 2001:db8:100::/48 unreachable;",
            "}",
            "",
        ].join("\n"));
        fs.writeFileSync(this.script, renderHealthAgent(), { mode: 0o755 });
        this.startBird();
        this.nginx = this.spawn("bash", ["-c", FAKE_NGINX, "fake-nginx", this.nginxPidFile]);
    }

    startBird(): void {
        this.bird = this.spawn("ip", ["netns", "exec", this.ns, "bird", "-f", "-c", path.join(this.dir, "bird.conf"), "-s", this.socket]);
    }

    async startServers(): Promise<void> {
        this.servers = this.spawn("ip", ["netns", "exec", this.ns, process.execPath, "-e", FAKE_SERVERS], true);
        await until("fake servers", 20_000, () => this.servers!.out.includes("ready"));
        await until("fake nginx", REACT_MS, () => fs.existsSync(this.nginxPidFile));
    }

    /** "stop origin", "start origin", "view global", ...: resolves once it is done. */
    async server(command: string): Promise<void> {
        const marker = `done ${command}`;
        const seen = this.servers!.out.split(marker).length;
        this.servers!.child.stdin!.write(command + "\n");
        await until(command, REACT_MS, () => this.servers!.out.split(marker).length > seen);
    }

    /** Both origins at once: what "the origin is unreachable from here" means with two of them. */
    async origins(verb: "stop" | "start"): Promise<void> {
        await this.server(`${verb} origin`);
        await this.server(`${verb} origin2`);
    }

    /**
     * The lab's env file: the rendered one with only the paths (and given parameters) changed.
     * RELAY=no unless a test says otherwise: then an origin lost here is a fault of this PoP's
     * own while ams, announced, still reaches one (with the relay, this PoP would use ams's).
     */
    writeEnv(name: string, overrides: Record<string, string>): string {
        let text = renderHealthEnv(popRenderInput(labSpec(), "lax"));
        const all: Record<string, string> = {
            STATE_FILE: this.stateFile, BIRD_SOCKET: this.socket, STATUS_FILE: this.statusFile, CONTROL_DIR: this.controlDir,
            UPSTREAMS_FILE: this.upstreamsFile, NGINX_PID_FILE: this.nginxPidFile, RELAY: "no",
            // A check timeout longer than this machine's stalls (it stops for up to ~1 s under
            // load, and a curl stopped mid-check would fail a healthy check). Every fault these
            // tests make is a refused connection, which fails at once, so nothing waits on it.
            TIMEOUT: "2",
            ...overrides,
        };
        for (const [key, value] of Object.entries(all)) {
            const pattern = new RegExp(`^${key}=.*$`, "m");
            assert.match(text, pattern, `${key} in the rendered env`);
            text = text.replace(pattern, `${key}=${value}`);
        }
        const file = path.join(this.dir, name);
        fs.writeFileSync(file, text);
        return file;
    }

    readonly agents: Proc[] = [];

    startAgent(envFile: string): Proc {
        const agent = this.spawn("ip", ["netns", "exec", this.ns, "env", `ANYCAST_HEALTH_ENV=${envFile}`, this.script, "run"]);
        this.agents.push(agent);
        return agent;
    }

    async stopAgent(agent: Proc): Promise<void> {
        agent.child.kill("SIGTERM");
        await until("agent exit", REACT_MS, () => agent.exited);
    }

    /**
     * A clean slate for the next test: whatever an earlier test left running (it may have failed
     * half-way) stopped, BIRD and every server up, ams serving, no withdrawal history, the switch at 0.
     */
    async freshStart(): Promise<void> {
        for (const agent of this.agents) if (!agent.exited) await this.stopAgent(agent);
        if (this.bird?.exited) this.startBird();
        await this.origins("start");
        await this.server("start proxy");
        await this.server("start ams");
        await this.server("view serving");
        fs.rmSync(this.controlDir, { recursive: true, force: true });
        fs.rmSync(this.upstreamsFile, { force: true });
        fs.writeFileSync(this.stateFile, "define ANYCAST_STATE = 0;\n");
    }

    cli(envFile: string, command: string): string {
        const result = run(this.script, [command], { env: { ...process.env, ANYCAST_HEALTH_ENV: envFile } });
        assert.equal(result.status, 0, result.stderr);
        return result.stdout;
    }

    state(): number | undefined {
        const match = /^define ANYCAST_STATE = (\d);/.exec(fs.readFileSync(this.stateFile, "utf8"));
        return match ? Number(match[1]) : undefined;
    }

    status(): Record<string, unknown> {
        return JSON.parse(fs.readFileSync(this.statusFile, "utf8")) as Record<string, unknown>;
    }

    /** The agent's nginx upstream file: each path's role in upstream "origin" ("primary", "backup" or "down"). */
    upstreams(block = "origin"): Record<string, string> {
        const text = fs.existsSync(this.upstreamsFile) ? fs.readFileSync(this.upstreamsFile, "utf8") : "";
        const body = text.split(`upstream ${block} {`)[1]?.split("}")[0] ?? "";
        const roles: Record<string, string> = {};
        for (const m of body.matchAll(/^ {4}server \S+ max_fails=1 fail_timeout=\d+s( backup| down)?;   # (.+)$/gm)) {
            roles[m[2]] = m[1]?.trim() ?? "primary";
        }
        return roles;
    }

    /** SIGHUPs the fake nginx has had: the agent's reloads. */
    reloads(): number {
        return this.nginx!.out.split("hup").length - 1;
    }

    /** What BIRD holds: undefined (withdrawn), "plain" or "graceful-shutdown". */
    route(): string | undefined {
        const out = run("birdc", ["-s", this.socket, "show", "route", "all", "2001:db8:100::/48"]).stdout;
        if (!out.includes("2001:db8:100::/48")) return undefined;
        return /BGP\.community: .*\(65535,0\)/.test(out) ? "graceful-shutdown" : "plain";
    }

    /** BIRD applies the switch a moment after the file changes (birdc configure): wait for it. */
    async expectRoute(expected: string | undefined): Promise<void> {
        await until(`route ${expected ?? "withdrawn"} in BIRD`, REACT_MS, () => this.route() === expected);
    }

    /** Poll the state file every 5 ms until it holds `value`; the elapsed ms. */
    async waitState(value: number, timeoutMs: number): Promise<number> {
        const started = performance.now();
        await until(`ANYCAST_STATE = ${value}`, timeoutMs, () => this.state() === value, 5);
        return Math.round(performance.now() - started);
    }

    /** Fails the test if the switch leaves `value` while `during` runs. */
    async holds<T>(value: number, during: () => Promise<T>): Promise<T> {
        let left: number | undefined;
        try {
            return await pollingDuring(() => {
                const now = this.state();
                if (now !== value && left === undefined) left = now;
            }, 5, during);
        } finally {
            assert.equal(left, undefined, `ANYCAST_STATE left ${value} (to ${left})`);
        }
    }

    spawn(command: string, args: string[], stdin = false): Proc {
        const proc = spawnCaptured(command, args, stdin);
        this.procs.push(proc);
        return proc;
    }

    async tearDown(): Promise<void> {
        for (const proc of this.procs.reverse()) {
            if (!proc.exited) proc.child.kill("SIGTERM");
        }
        await until("processes to exit", REACT_MS, () => this.procs.every((p) => p.exited)).catch(() => {
            for (const proc of this.procs) if (!proc.exited) proc.child.kill("SIGKILL");
        });
        deleteNetns(this.ns);
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

/**
 * The agent logs a transition before it writes the state file, but its stderr reaches this
 * process through a pipe that node reads later than a poll sees the file: wait for the line.
 */
async function logged(proc: Proc, pattern: RegExp, timeoutMs = 3000): Promise<void> {
    await until(`log line ${pattern}`, timeoutMs, () => pattern.test(proc.err)).catch(() => assert.match(proc.err, pattern));
}


/** CPU seconds (user + system, the agent and its children) from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    // After "pid (comm) ": state is field 0, so utime/stime/cutime/cstime are 11..14.
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    return ticks / 100;
}

/** The server lines of an nginx upstream file, without the comments and blocks around them. */
function serverLines(text: string): string[] {
    return text.split("\n").filter((l) => l.trimStart().startsWith("server "));
}

describe("the agent against a real BIRD (live)", () => {
    const canRun = isRoot() && ["bird", "birdc", "curl", "ip"].every((tool) => which(tool) !== undefined);
    const lab = canRun ? new Lab() : undefined;
    before(async () => {
        if (!lab) return;
        lab.setUp();
        await until("BIRD control socket", 10_000, () => fs.existsSync(lab.socket));
        await lab.startServers();
    });
    after(async () => {
        await lab?.tearDown();
    });
    /** True (and the test skipped with the reason) when the lab could not be set up. */
    const skipUnlessLab = (t: TestContext): boolean => {
        if (lab) return false;
        if (needRoot(t, "network namespace and BIRD")) needTools(t, "bird", "birdc", "curl", "ip");
        return true;
    };

    test("rise, fall, re-announce, proxy failure, drain, BIRD restart, agent restart", async (t) => {
        if (skipUnlessLab(t) || !lab) return;
        await lab.freshStart();
        // Lab parameters: interval 0.1 s, rise 3, fall 2 (timeout 2 s, see writeEnv); a 2 s drain keeps
        // the test short and is long enough for a poll of the state file to see it on a stalling machine.
        const DRAIN_SECONDS = 2;
        // This test withdraws five times on purpose; flap damping has its own tests below.
        const env = lab.writeEnv("health.env", { DRAIN_SECONDS: String(DRAIN_SECONDS), MAX_WITHDRAWALS_PER_HOUR: "100" });
        const agent = lab.startAgent(env);

        const toAnnounce = await lab.waitState(ANYCAST_STATE.announced, 15_000);
        console.log(`health: start -> announced in ${toAnnounce} ms (rise 3 x 0.1 s)`);
        await logged(agent, /withdrawn -> announced: healthy, 3 checks in a row/);
        await lab.expectRoute("plain");

        // Steady state: the switch is not rewritten (same inode) and the agent is cheap.
        const inode = fs.statSync(lab.stateFile).ino;
        const cpuBefore = cpuSeconds(agent.child.pid!);
        await sleep(3000);
        const cpuPercent = ((cpuSeconds(agent.child.pid!) - cpuBefore) / 3) * 100;
        console.log(`health: agent CPU at 10 checks/s (proxy, 2 origins, 2 peers): ${cpuPercent.toFixed(1)}% of one core`);
        assert.ok(cpuPercent < 50, `agent CPU ${cpuPercent}%`);
        // 20 more checks (the status's seq counts them; the file is rewritten on a change and at
        // least every interval + timeout), however long this (possibly stalling) machine takes,
        // all while announced. Not "20 good in a row": under load one check can time out, and one
        // bad check (below fall) must change nothing either.
        const seq0 = lab.status().seq as number;
        await until("20 more checks while announced", 60_000, () => {
            const now = lab.status();
            assert.equal(now.state, "announced", `left announced while healthy: ${JSON.stringify(now)}`);
            return (now.seq as number) >= seq0 + 20;
        });
        const ticks = lab.status();
        assert.ok((ticks.tick_ms as number) >= 100, `a tick lasts at least the interval: tick_ms ${ticks.tick_ms}`);
        // Unchanged, the status is rewritten about every interval + timeout (2.1 s here), not every tick.
        const writes = new Set<number>();
        const seqStart = lab.status().seq as number;
        const writesUntil = Date.now() + 3000;
        while (Date.now() < writesUntil) {
            writes.add(lab.status().updated as number);
            await sleep(20);
        }
        const checked = (lab.status().seq as number) - seqStart;
        console.log(`health: ${writes.size} status writes in 3 s, steady and announced (${checked}+ checks)`);
        assert.ok(writes.size <= 4, `${writes.size} status writes in 3 s without a change`);
        assert.equal(fs.statSync(lab.stateFile).ino, inode, "no rewrite of the state file without a change");
        await until("a good check", 10_000, () => lab.status().healthy === true);
        const steady = lab.status();
        assert.equal(steady.state, "announced");
        assert.equal(steady.fault, "none");

        // Both origins stop while ams, announced, still reaches one: a fault of this PoP's own.
        // Withdrawn once the agent has waited long enough for a shared fault to show at ams too.
        await lab.origins("stop");
        const toWithdraw = await lab.waitState(ANYCAST_STATE.withdrawn, 15_000);
        console.log(`health: origins stop -> ANYCAST_STATE 0 in ${toWithdraw} ms (paths fall 2 x 0.1 s, then 2 x (interval + timeout) + timeout to confirm at ams, then fall 2)`);
        await logged(agent, /announced -> withdrawn: no origin reachable from here \(.*\) while ams reaches one and is announced, 2 checks in a row/);
        await lab.expectRoute(undefined);
        await until("status withdrawn", REACT_MS, () => lab.status().state === "withdrawn");
        const down = lab.status();
        assert.equal(down.origin_ok, false);
        assert.equal(down.proxy_ok, true);
        assert.equal(down.fault, "local");
        assert.equal(down.withdrawals_last_hour, 1);

        // The origins come back: announced after 3 good checks.
        await lab.origins("start");
        const toReannounce = await lab.waitState(ANYCAST_STATE.announced, 15_000);
        console.log(`health: origins back -> ANYCAST_STATE 2 in ${toReannounce} ms (rise 3 x 0.1 s)`);
        await lab.expectRoute("plain");

        // The proxy (nginx) stops answering: withdrawn too, whatever the other PoPs see.
        await lab.server("stop proxy");
        await lab.waitState(ANYCAST_STATE.withdrawn, 15_000);
        await logged(agent, /announced -> withdrawn: proxy check failed/);
        await lab.server("start proxy");
        await lab.waitState(ANYCAST_STATE.announced, 15_000);

        // Drain: GRACEFUL_SHUTDOWN (1) for DRAIN_SECONDS, then withdrawn (0), held there while healthy.
        assert.match(lab.cli(env, "drain"), /drain requested/);
        await lab.waitState(ANYCAST_STATE.draining, REACT_MS);
        // The drain's length by the agent's own clock (`since` of each state): a test that only
        // watches the file could see either change late on a machine that stalls.
        await until("status draining", REACT_MS, () => lab.status().state === "draining");
        const drainStarted = lab.status().since as number;
        await lab.expectRoute("graceful-shutdown");
        await lab.waitState(ANYCAST_STATE.withdrawn, 15_000);
        await until("status withdrawn", REACT_MS, () => lab.status().state === "withdrawn");
        const drainedMs = (lab.status().since as number) - drainStarted;
        console.log(`health: drain announced GRACEFUL_SHUTDOWN for ${drainedMs} ms (DRAIN_SECONDS ${DRAIN_SECONDS}), then withdrew`);
        // Never shorter than asked; longer by the tick that notices the end (a check timeout or a stall at most).
        assert.ok(drainedMs >= DRAIN_SECONDS * 1000 && drainedMs < DRAIN_SECONDS * 1000 + 5000, `drain lasted ${drainedMs} ms`);
        await lab.expectRoute(undefined);
        await sleep(600);
        assert.equal(lab.state(), ANYCAST_STATE.withdrawn, "a drained PoP stays withdrawn while healthy");
        const drained = lab.status();
        assert.equal(drained.drain_requested, true);
        assert.equal(drained.healthy, true);
        assert.equal(drained.withdrawals_last_hour, 2, "a drain is not a flap");
        assert.match(lab.cli(env, "undrain"), /undrained/);
        await lab.waitState(ANYCAST_STATE.announced, REACT_MS);

        // BIRD goes away: the agent keeps deciding and the file follows every decision (a BIRD that
        // starts reads it), even when birdc fails; once BIRD is back the last decision is applied.
        lab.bird!.child.kill("SIGTERM");
        await until("BIRD exit", REACT_MS, () => lab.bird!.exited);
        await lab.origins("stop");
        await lab.waitState(ANYCAST_STATE.withdrawn, 15_000);
        await until("birdc failure logged", REACT_MS, () => agent.err.includes("birdc configure failed, retrying every tick"));
        await until("status: BIRD has not applied the withdrawal", REACT_MS, () => lab.status().bird_applied === false);
        await lab.origins("start");
        await lab.waitState(ANYCAST_STATE.announced, 15_000);
        await lab.origins("stop");
        await lab.waitState(ANYCAST_STATE.withdrawn, 15_000);
        lab.startBird();
        await until("BIRD applies the withdrawal", REACT_MS, () => agent.err.includes("BIRD applied ANYCAST_STATE = 0 after"));
        await until("status: BIRD applied", REACT_MS, () => lab.status().bird_applied === true);
        await lab.expectRoute(undefined);
        await lab.origins("start");
        await lab.waitState(ANYCAST_STATE.announced, 15_000);
        await lab.expectRoute("plain");
        assert.equal(agent.exited, false, "BIRD going away never stops the agent");

        // Agent restart (every config push does one) while announced: no withdrawal in between.
        await lab.stopAgent(agent);
        // The line as bird.ts renders it at install time (with its comment) must read as "announced" too.
        fs.writeFileSync(lab.stateFile, renderBirdStateInclude(ANYCAST_STATE.announced));
        const restarted = lab.startAgent(env);
        const watchUntil = Date.now() + 1500;
        while (Date.now() < watchUntil) {
            assert.equal(lab.state(), ANYCAST_STATE.announced, "the restart must not withdraw a healthy PoP");
            await sleep(5);
        }
        await logged(restarted, /starting in state announced/);
        await lab.stopAgent(restarted);

        const status = JSON.parse(lab.cli(env, "status")) as Record<string, unknown>;
        assert.equal(status.pop, "lax");
        for (const key of ["state", "healthy", "proxy_ok", "origin_ok", "serving", "fault", "primary", "paths", "seq",
            "consecutive_good", "consecutive_bad", "withdrawals_last_hour", "since", "tick_ms", "last_reason"]) {
            assert.ok(key in status, `status has ${key}`);
        }
    });

    test("paths for nginx: the agent writes the servers it was pushed with, fails over between origins, and reloads nginx on changes only", async (t) => {
        if (skipUnlessLab(t) || !lab) return;
        await lab.freshStart();
        // The configured order (the renderer's order too): with the default, measured round trips,
        // a loaded machine can make origin2 look a fifth faster and the agent rightly moves to it.
        const env = lab.writeEnv("paths.env", { ORIGIN_PREFERENCE: "origin origin2" });
        const agent = lab.startAgent(env);
        await lab.waitState(ANYCAST_STATE.announced, 15_000);
        // Every path up: the same server lines as the renderer's pushed starting point (RELAY=no here).
        const input = popRenderInput(labSpec(), "lax");
        const pushed = renderNginxUpstreams({ ...input, failover: { ...input.failover!, relay: false } });
        await until("the upstream file written", REACT_MS, () => fs.existsSync(lab.upstreamsFile));
        assert.deepEqual(serverLines(fs.readFileSync(lab.upstreamsFile, "utf8")), serverLines(pushed));
        const reloadsSteady = lab.reloads();
        assert.ok(reloadsSteady >= 1, "the agent asserts its file once at start");
        await sleep(1000);
        assert.equal(lab.reloads(), reloadsSteady, "no reload without a change");

        // One origin gone: nginx moves to the other at once (the other PoPs see nothing of it).
        await lab.server("stop origin");
        await until("origin down, origin2 primary", 15_000, () => lab.upstreams().origin === "down" && lab.upstreams().origin2 === "primary");
        assert.deepEqual(lab.upstreams(), { origin: "down", origin2: "primary" });
        assert.deepEqual(lab.upstreams("origin_direct"), { origin: "down", origin2: "primary" });
        await until("nginx reloaded", REACT_MS, () => lab.reloads() > reloadsSteady);
        await until("status: origin2 primary", REACT_MS, () => lab.status().primary === "origin2");
        assert.equal(lab.status().healthy, true);
        assert.equal(lab.state(), ANYCAST_STATE.announced);
        // Back: origin is up again and, first in the configured order, primary again.
        await lab.server("start origin");
        await until("origin primary again", 15_000, () => lab.upstreams().origin === "primary" && lab.upstreams().origin2 === "backup");
        await logged(agent, /path origin down: http 000, curl exit 7, 2 checks in a row/);
        await logged(agent, /path origin up: 3 checks in a row/);
        await lab.stopAgent(agent);

        // A configured preference puts origin2 first from the start.
        await lab.freshStart();
        const preferring = lab.startAgent(lab.writeEnv("prefer.env", { ORIGIN_PREFERENCE: "origin2" }));
        await until("the upstream file written", REACT_MS, () => fs.existsSync(lab.upstreamsFile));
        await sleep(300);
        assert.deepEqual(lab.upstreams(), { origin2: "primary", origin: "backup" });
        await lab.stopAgent(preferring);
    });

    test("a global fault (no PoP reaches an origin) keeps the PoP announced with every path down, three times in a row, no damping", async (t) => {
        if (skipUnlessLab(t) || !lab) return;
        await lab.freshStart();
        const env = lab.writeEnv("global.env", { MAX_WITHDRAWALS_PER_HOUR: "2" });
        const agent = lab.startAgent(env);
        await lab.waitState(ANYCAST_STATE.announced, 15_000);
        for (let outage = 1; outage <= 3; outage++) {
            await lab.holds(ANYCAST_STATE.announced, async () => {
                // ams loses the origins too: it says so.
                await lab.server("view global");
                await lab.origins("stop");
                await until("every path down", REACT_MS, () => Object.values(lab.upstreams()).every((r) => r === "down"));
                await until("fault global", REACT_MS, () => lab.status().fault === "global");
                // Held well past the time a local fault takes to withdraw (see the test above).
                await sleep(1500);
                assert.equal(lab.status().state, "announced");
                await lab.origins("start");
                await lab.server("view serving");
                // Either origin: which one is primary follows the measured round trips.
                await until("serving again", 15_000, () => lab.status().healthy === true && Object.values(lab.upstreams()).includes("primary"));
            });
            console.log(`health: global outage ${outage}: stayed announced, every path down for nginx, then back`);
        }
        assert.equal(lab.status().withdrawals_last_hour, 0, "a global fault is never a withdrawal");
        await logged(agent, /nginx: no path works: every request gets the 503/);
        assert.doesNotMatch(agent.err, /-> withdrawn|held-down/);
        await lab.stopAgent(agent);
    });

    test("with its own paths broken and a peer that reaches an origin, the PoP relays through it and stays healthy", async (t) => {
        if (skipUnlessLab(t) || !lab) return;
        await lab.freshStart();
        const agent = lab.startAgent(lab.writeEnv("relay.env", { RELAY: "yes" }));
        await lab.waitState(ANYCAST_STATE.announced, 15_000);
        await until("via ams a backup", REACT_MS, () => lab.upstreams()["via ams"] === "backup");
        // sgp never answers: its relay path is down from the start.
        await until("via sgp down", REACT_MS, () => lab.upstreams()["via sgp"] === "down");
        await lab.holds(ANYCAST_STATE.announced, async () => {
            await lab.origins("stop");
            await until("via ams primary", 15_000, () => lab.upstreams()["via ams"] === "primary");
            assert.deepEqual(lab.upstreams(), { origin: "down", origin2: "down", "via ams": "primary", "via sgp": "down" });
            // What this PoP relays for others: its own direct paths only, all down now.
            assert.deepEqual(lab.upstreams("origin_direct"), { origin: "down", origin2: "down" });
            // The agent writes the upstream file before its status file in the same tick: wait for both.
            await until("status relaying", REACT_MS, () => lab.status().primary === "via ams");
            const relaying = lab.status();
            assert.equal(relaying.healthy, true);
            assert.equal(relaying.serving, true);
            assert.equal(relaying.direct_up, 0, "peers must not relay through this PoP");
            await sleep(1000);
            await lab.origins("start");
            await until("a direct path primary again", 15_000, () => lab.upstreams().origin === "primary" || lab.upstreams().origin2 === "primary");
        });
        assert.equal(lab.status().withdrawals_last_hour, 0);
        await logged(agent, /nginx: primary via ams/);
        await lab.stopAgent(agent);
    });

    test("cut off from the whole mesh it withdraws (full mesh); in a hub mesh it cannot tell and stays; a withdrawn peer cannot take over", async (t) => {
        if (skipUnlessLab(t) || !lab) return;
        await lab.freshStart();
        const full = lab.startAgent(lab.writeEnv("isolated.env", {}));
        await lab.waitState(ANYCAST_STATE.announced, 15_000);
        await sleep(500);
        await lab.server("stop ams");
        await lab.origins("stop");
        await lab.waitState(ANYCAST_STATE.withdrawn, 15_000);
        await logged(full, /announced -> withdrawn: no origin reachable from here .* while ams \(before this PoP lost the mesh\) reaches one and is announced/);
        assert.equal(lab.status().fault, "local");
        await lab.stopAgent(full);

        await lab.freshStart();
        const hub = lab.startAgent(lab.writeEnv("hub.env", { MESH_TOPOLOGY: "hub" }));
        await lab.waitState(ANYCAST_STATE.announced, 15_000);
        await sleep(500);
        await lab.holds(ANYCAST_STATE.announced, async () => {
            await lab.server("stop ams");
            await lab.origins("stop");
            await until("fault global", REACT_MS, () => lab.status().fault === "global");
            await sleep(1500);
        });
        await lab.stopAgent(hub);

        // The last announced PoP: ams reaches an origin but is withdrawn, so it cannot take the traffic.
        await lab.freshStart();
        const last = lab.startAgent(lab.writeEnv("last.env", {}));
        await lab.waitState(ANYCAST_STATE.announced, 15_000);
        await lab.server("view withdrawn");
        await lab.holds(ANYCAST_STATE.announced, async () => {
            await lab.origins("stop");
            await until("fault global", REACT_MS, () => lab.status().fault === "global");
            await sleep(1500);
        });
        assert.equal(lab.status().withdrawals_last_hour, 0);
        await lab.stopAgent(last);
    });

    test("flap damping: held down after MAX withdrawals until the oldest ages out", async (t) => {
        if (skipUnlessLab(t) || !lab) return;
        // Long enough that two withdrawals and the announcement between them fit in it on a
        // machine that stalls, short enough to watch the window end.
        // A withdrawal for an origin fault waits for the peers' view first (about 3 s here).
        const WINDOW_S = 25;
        await lab.freshStart();
        const env = lab.writeEnv("flap.env", { MAX_WITHDRAWALS_PER_HOUR: "2", FLAP_WINDOW_SECONDS: String(WINDOW_S) });
        const agent = lab.startAgent(env);
        await lab.waitState(ANYCAST_STATE.announced, 15_000);

        // Wall-clock bounds that a late observer cannot break (this machine may stall): the first
        // withdrawal happened after the origin was stopped and before the test saw it.
        const originStopped = Date.now();
        await lab.origins("stop");
        await lab.waitState(ANYCAST_STATE.withdrawn, 15_000);
        const firstWithdrawalSeen = Date.now();
        await lab.origins("start");
        await lab.waitState(ANYCAST_STATE.announced, 15_000);
        await lab.origins("stop");
        await lab.waitState(ANYCAST_STATE.withdrawn, 15_000);
        await until("held-down", REACT_MS, () => lab.status().state === "held-down");
        const held = lab.status();
        assert.equal(held.withdrawals_last_hour, 2);
        assert.equal(typeof held.held_until, "number");
        const heldUntil = held.held_until as number;
        // Held until the first withdrawal is one window old, by the agent's own clock.
        assert.ok(heldUntil >= originStopped + WINDOW_S * 1000 && heldUntil <= firstWithdrawalSeen + WINDOW_S * 1000,
            `held until ${heldUntil - originStopped} ms after the origin stopped, ${heldUntil - firstWithdrawalSeen} ms after the withdrawal was seen`);
        assert.match(String(held.last_reason), new RegExp(`2 withdrawals within ${WINDOW_S}s, held down for \\d+s`));

        // Healthy again, but held: no announcement until the first withdrawal is a window old.
        await lab.origins("start");
        await until("healthy again (held down)", 15_000, () => lab.status().healthy === true);
        assert.equal(lab.status().state, "held-down");
        assert.equal(lab.state(), ANYCAST_STATE.withdrawn);
        await lab.waitState(ANYCAST_STATE.announced, WINDOW_S * 1000 + 5000);
        const announcedSeen = Date.now();
        console.log(`health: flap damping (max 2 per ${WINDOW_S} s window) re-announced, seen ${announcedSeen - originStopped} ms after the origin first stopped`);
        assert.ok(announcedSeen >= heldUntil, `re-announced ${heldUntil - announcedSeen} ms before held_until`);
        await logged(agent, /held-down -> withdrawn: flap damping over/);
        await lab.stopAgent(agent);
    });

    test("flap damping: `anycast-health release` lets a held-down PoP announce at once", async (t) => {
        if (skipUnlessLab(t) || !lab) return;
        await lab.freshStart();
        // An hour's window, as deployed: without the release the PoP would stay down for an hour.
        const env = lab.writeEnv("release.env", { MAX_WITHDRAWALS_PER_HOUR: "2" });
        const agent = lab.startAgent(env);
        await lab.waitState(ANYCAST_STATE.announced, 15_000);
        for (let i = 0; i < 2; i++) {
            await lab.origins("stop");
            await lab.waitState(ANYCAST_STATE.withdrawn, 15_000);
            await lab.origins("start");
            if (i === 0) await lab.waitState(ANYCAST_STATE.announced, 15_000);
        }
        await until("held-down", REACT_MS, () => lab.status().state === "held-down");
        await until("healthy again (held down)", 15_000, () => lab.status().healthy === true);
        assert.equal(lab.state(), ANYCAST_STATE.withdrawn, "held down while healthy");

        assert.match(lab.cli(env, "release"), /flap history cleared/);
        const released = await lab.waitState(ANYCAST_STATE.announced, REACT_MS);
        console.log(`health: release -> announced in ${released} ms`);
        await until("the release logged", REACT_MS, () => agent.err.includes("held-down -> withdrawn: flap damping released by the operator"));
        await until("status: history cleared and announced", REACT_MS, () => lab.status().withdrawals_last_hour === 0 && lab.status().state === "announced");
        assert.equal(fs.existsSync(path.join(lab.controlDir, "release")), false, "the request is consumed");
        await lab.stopAgent(agent);
    });
});
