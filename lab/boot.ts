/**
 * Booting the lab: the emulated cloud (provider edges in FRR or BIRD, transit BIRDs, the origin's
 * HTTP service) and, in each PoP namespace, exactly the artifacts the components rendered. The
 * only changes made to those artifacts are path rewrites where a namespace needs its own
 * directory; each one is recorded and printed.
 */
import { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ARTIFACTS, ArtifactName, artifactsFor, PushedArtifactName } from "../components/core/artifacts";
import { BIRD_STATE_FILE } from "../components/core/render/bird";
import { NGINX_PATHS } from "../components/core/render/nginx";
import { DEFAULT_EXPORTER_SOURCES, exporterArgv } from "../components/core/monitoring/exporters";
import { AgentPaths, formatAgentSettings, parseAgentSettings } from "../components/core/health/settings";
import { edgeRouters, EdgeKind, EdgeRouters } from "./edge";
import { LabPreconditionError } from "./errors";
import { nowMs, nsDaemon, nsRun, RunOptions, waitFor } from "./exec";
import { renderTransitBird } from "./routers";
import type { Rewrite } from "./rewrite";
import { LabStack } from "./stack";
import { probeTimeoutForStalls } from "./stalls";
import { isCertificate, LabTls, makeLabTls } from "./tls";
import { LAB_DIR, LabPlan, POP_UPLINK, RegionPlan, urlHost } from "./topology";

export type { Rewrite } from "./rewrite";

/** Static routes every PoP namespace gets besides its own, to show that none of them leaks into BGP. */
export const UNRELATED_POP_ROUTES = ["2001:db8:dead::/48", "2001:db8:dead:1::/64"];

/** The agent's paths (its settings' `paths`), and where each goes inside a PoP's directory. */
const AGENT_PATHS_IN_LAB: Record<keyof AgentPaths, string> = {
    stateFile: "anycast-state.conf",
    birdSocket: "bird.ctl",
    statusFile: "health.json",
    controlDir: "control",
    upstreamsFile: "nginx-upstreams.conf",
    nginxPidFile: "nginx.pid",
};

/**
 * The PoP artifacts (components/core/artifacts.ts) the lab does not take from the stack as they
 * are, and what it does instead. Every other PoP artifact must have been rendered, or the boot
 * stops: a file added to the registry is booted, or listed here with the reason.
 */
export const POP_ARTIFACTS_NOT_BOOTED: Partial<Record<ArtifactName, string>> = {
    "cloud-init.yaml": "the namespace stands for the host; anycast-net.sh runs directly",
    "anycast-health.service": "the agent runs as a child process of the lab, not under systemd",
    "nftables.conf": "applied when rendered and it loads in the namespace, reported otherwise",
    "authorized_keys": "nobody logs in to a namespace; the deploy rehearsal (lab/deploy) pushes it over SSH",
    "origin.pem": "the stack's certificate when it is a real one, else the lab's own CA",
    "origin.key": "the stack's key with the stack's certificate, else the lab's own CA",
    "origin-pull-ca.pem": "the stack's CA when it is a real certificate, else the lab's own CA",
    "bird-exporter.conf": "the exporter runs as a child process of the lab, with the drop-in's command line (exporterArgv) and the namespace's BIRD socket",
    "nginx-exporter.conf": "the exporter runs as a child process of the lab, with the drop-in's command line (exporterArgv)",
};

/** The artifacts a PoP must have been rendered for the lab to boot it. */
export function popArtifactsBooted(): ArtifactName[] {
    return artifactsFor("pop", { createdOnVultr: true }).map((a) => a.name).filter((name) => !(name in POP_ARTIFACTS_NOT_BOOTED));
}

/** The TLS files, each in the PoP directory's tls/ under its artifact name. */
const TLS_ARTIFACTS = ["origin.pem", "origin.key", "origin-pull-ca.pem"] as const;

/** Write an artifact into a namespace's directory under its own name, with the mode it has on a host. */
function writeArtifact(dir: string, name: PushedArtifactName, content: string): void {
    fs.writeFileSync(path.join(dir, name), content, { mode: parseInt(ARTIFACTS[name].mode, 8) });
}

export function nsDir(ns: string): string {
    return path.join(LAB_DIR, ns);
}

/** Replace exact path strings; every replacement is recorded, a path that is absent is not. */
export function rewritePaths(host: string, file: string, text: string, map: Array<{ what: string; from: string; to: string }>,
    rewrites: Rewrite[]): string {
    let out = text;
    for (const r of map) {
        if (!out.includes(r.from)) continue;
        out = out.split(r.from).join(r.to);
        rewrites.push({ host, file, ...r });
    }
    return out;
}

/**
 * The agent's settings with its paths inside a PoP's directory: the settings are parsed (the
 * agent's own parser) and their `paths` replaced, each replacement recorded.
 */
export function relocateAgentSettings(host: string, text: string, dir: string, rewrites: Rewrite[]): string {
    const settings = parseAgentSettings(text);
    const paths = { ...settings.paths };
    for (const key of Object.keys(AGENT_PATHS_IN_LAB) as Array<keyof AgentPaths>) {
        const to = path.join(dir, AGENT_PATHS_IN_LAB[key]);
        rewrites.push({ host, file: "anycast-health.json", what: `paths.${key}`, from: paths[key], to });
        paths[key] = to;
    }
    return formatAgentSettings({ ...settings, paths });
}

/** What a PoP's health agent says of itself (`anycast-health status`; the fields the lab reads). */
export interface AgentStatus {
    state: string;
    healthy: boolean;
    withdrawals_last_hour: number;
    last_reason: string;
    /** The nginx role of each path to the origins: primary, backup or down. */
    paths?: Array<{ name: string; kind: "direct" | "relay"; up: boolean; role: string }>;
    /** How long a round of checks takes on this machine, smoothed (ms). */
    tick_ms?: number;
}

/** One line on an agent's view, for a problem that names a PoP: "announced, primary via ams, ...". */
export function describeAgent(pop: string, s: AgentStatus | undefined): string {
    if (!s) return `${pop}'s agent: no status`;
    const primary = s.paths?.find((p) => p.role === "primary")?.name;
    const down = s.paths?.filter((p) => !p.up).map((p) => p.name) ?? [];
    return `${pop}'s agent: ${s.state}, ${primary ? `primary ${primary}` : "no path"}${down.length ? `, down ${down.join(", ")}` : ""}` +
        `${s.tick_ms ? `, a round of checks ${s.tick_ms} ms` : ""}; ${s.last_reason}`;
}

/** What the lab started, for the experiments and for teardown messages. */
export class LabRuntime {
    readonly rewrites: Rewrite[] = [];
    readonly notes: string[] = [];
    /** The longest stall the machine showed before the boot (lab/stalls.ts); a re-render adapts to it too. */
    stallMs = 0;

    /** How long an HTTP probe waits for its answer: 300 ms, longer on a machine that stalls. */
    get probeTimeoutMs(): number {
        return probeTimeoutForStalls(300, this.stallMs);
    }
    /** PoP name -> the running BIRD (restarted by the crash experiment). */
    readonly popBird = new Map<string, ChildProcess>();
    firewallApplied = false;
    tls!: LabTls & { source: string };
    /** The emulated provider edges (FRR by default). */
    readonly edges: EdgeRouters;

    constructor(readonly plan: LabPlan, readonly stack: LabStack, readonly log: (line: string) => void, edge: EdgeKind = "frr") {
        this.edges = edgeRouters(edge, {
            birdSocket: (ns) => this.birdSocket(ns),
            startBird: async (ns) => {
                const child = this.startBird(ns);
                await this.waitForBird(ns, child);
                return child;
            },
            dirOf: nsDir,
        });
    }

    birdSocket(ns: string): string {
        return path.join(nsDir(ns), "bird.ctl");
    }

    region(name: string): RegionPlan {
        const r = this.plan.regions.find((x) => x.region === name || x.pop.name === name);
        if (!r) throw new Error(`no region ${name}`);
        return r;
    }

    // --- WireGuard --------------------------------------------------------------------------

    /**
     * wireguard-go keeps its control socket in /var/run/wireguard, which every namespace shares,
     * and each namespace's interface is wg0 as on a real host. So every WireGuard command runs in
     * a private mount namespace (the one `ip netns exec` creates) with the namespace's own
     * directory bound over /run/wireguard: each wg0 gets its own socket, and `wg` finds it.
     */
    wgCommand(ns: string, argv: string[], opts: RunOptions = {}) {
        const [program, ...args] = this.withWgSocket(ns, argv);
        return nsRun(ns, program, args, {
            ...opts,
            env: { ...process.env, WG_QUICK_USERSPACE_IMPLEMENTATION: "wireguard-go", WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1" },
        });
    }

    /** `argv` run with the namespace's WireGuard socket directory at /run/wireguard (see wgCommand). */
    withWgSocket(ns: string, argv: string[]): string[] {
        const dir = path.join(nsDir(ns), "wireguard");
        fs.mkdirSync(dir, { recursive: true });
        fs.mkdirSync("/run/wireguard", { recursive: true });
        return ["bash", "-c", `mount --bind ${dir} /run/wireguard && exec "$@"`, argv[0], ...argv];
    }

    wgUp(ns: string) {
        return this.wgCommand(ns, ["wg-quick", "up", path.join(nsDir(ns), "wg0.conf")]);
    }

    wgDown(ns: string) {
        return this.wgCommand(ns, ["wg-quick", "down", path.join(nsDir(ns), "wg0.conf")]);
    }

    // --- BIRD -------------------------------------------------------------------------------

    startBird(ns: string): ChildProcess {
        const dir = nsDir(ns);
        // -f: stay in the foreground, so the pid we hold is BIRD's own (the crash experiment kills it).
        return nsDaemon(ns, ["bird", "-f", "-c", path.join(dir, "bird.conf"), "-s", this.birdSocket(ns), "-P", path.join(dir, "bird.pid")],
            path.join(dir, "bird.stderr.log"), undefined, { controlPlane: true });
    }

    async waitForBird(ns: string, child?: ChildProcess): Promise<void> {
        await waitFor(`BIRD in ${ns} to answer on its socket`, async () => {
            if (child && child.exitCode !== null) {
                const log = fs.readFileSync(path.join(nsDir(ns), "bird.stderr.log"), "utf8").trim().split("\n").slice(-3).join(" | ");
                throw new Error(`BIRD in ${ns} exited (${child.exitCode}): ${log}`);
            }
            const r = await nsRun(ns, "birdc", ["-s", this.birdSocket(ns), "show", "status"], { allowFail: true, timeoutMs: 2000 });
            return r.code === 0 && /Daemon is up and running/.test(r.stdout);
        }, 10_000, 30);
    }

    startPopBird(popName: string): ChildProcess {
        const r = this.region(popName);
        const child = this.startBird(r.pop.ns);
        this.popBird.set(r.pop.name, child);
        return child;
    }

    /**
     * Replace a running PoP's bird.conf the way the push does (components/pop.ts): check it with
     * `bird -p`, install it, `birdc configure`. Same path rewrite as at boot.
     */
    async reconfigurePopBird(popName: string, rendered: string): Promise<{ reply: string; ms: number }> {
        const r = this.region(popName);
        const dir = nsDir(r.pop.ns);
        const text = rewritePaths(r.pop.name, "bird.conf", rendered,
            [{ what: "BIRD state include", from: BIRD_STATE_FILE, to: path.join(dir, "anycast-state.conf") }], []);
        const next = path.join(dir, "bird.conf.new");
        fs.writeFileSync(next, text);
        await nsRun(r.pop.ns, "bird", ["-p", "-c", next]);
        fs.renameSync(next, path.join(dir, "bird.conf"));
        const t0 = nowMs();
        const res = await nsRun(r.pop.ns, "birdc", ["-s", this.birdSocket(r.pop.ns), "configure"]);
        const reply = res.stdout.split("\n").map((l) => l.trim())
            .filter((l) => l && !/^BIRD .* ready\.$/.test(l) && !/^Reading configuration from/.test(l)).join(" ");
        if (!/Reconfigur/.test(reply)) throw new Error(`birdc configure on ${popName}: ${reply || res.stderr.trim()}`);
        return { reply, ms: nowMs() - t0 };
    }

    // --- health agent -----------------------------------------------------------------------

    agentSettingsFile(ns: string): string {
        return path.join(nsDir(ns), "anycast-health.json");
    }

    agent(popName: string, command: "drain" | "undrain" | "release" | "status") {
        const r = this.region(popName);
        return nsRun(r.pop.ns, path.join(nsDir(r.pop.ns), "anycast-health"), [command], {
            env: { ...process.env, ANYCAST_HEALTH_SETTINGS: this.agentSettingsFile(r.pop.ns) },
        });
    }

    async agentStatus(popName: string): Promise<AgentStatus | undefined> {
        const file = path.join(nsDir(this.region(popName).pop.ns), "health.json");
        try {
            return JSON.parse(fs.readFileSync(file, "utf8"));
        } catch {
            return undefined;
        }
    }

    // --- boot -------------------------------------------------------------------------------

    async bootRouters(): Promise<void> {
        const started: Array<[string, ChildProcess]> = [];
        for (const t of this.plan.transits) {
            fs.writeFileSync(path.join(nsDir(t.ns), "bird.conf"), renderTransitBird(t, path.join(nsDir(t.ns), "bird.log")));
            await nsRun(t.ns, "bird", ["-p", "-c", path.join(nsDir(t.ns), "bird.conf")]);
            started.push([t.ns, this.startBird(t.ns)]);
        }
        await this.edges.start(this.plan.regions.map((r) => r.edge), nsDir);
        await Promise.all(started.map(([ns, child]) => this.waitForBird(ns, child)));
    }

    /** TLS for the PoPs: the stack's own certificates when they are real, else the lab's PKI. */
    async prepareTls(): Promise<void> {
        const pop = this.stack.hosts.find((h) => h.role === "pop");
        const files = pop?.files ?? {};
        const client = this.stack.originPullClient;
        const fd = this.stack.spec.frontDoor;
        if (await isCertificate(files["origin.pem"]) && files["origin.key"] && await isCertificate(files["origin-pull-ca.pem"]) && client) {
            this.tls = {
                serverCertPem: files["origin.pem"], serverKeyPem: files["origin.key"], serverCaPem: this.stack.originCaPem ?? "",
                pullCaPem: files["origin-pull-ca.pem"], pullClientCertPem: client.certPem, pullClientKeyPem: client.keyPem,
                source: "the stack's certificates (mock Origin CA and origin-pull CA)",
            };
            return;
        }
        const made = await makeLabTls(path.join(LAB_DIR, "pki"), [fd.hostname, fd.anycastName], this.stack.spec.address.toString());
        this.tls = { ...made, source: "the lab's own CA (openssl): the stack run gave no usable certificates" };
    }

    /** Apply a rendered nftables.conf if it loads in the namespace; report either way. */
    async applyFirewall(ns: string, host: string, text: string | undefined): Promise<void> {
        if (text === undefined) {
            this.notes.push(`${host}: no nftables.conf rendered, firewall not applied`);
            return;
        }
        const file = path.join(nsDir(ns), "nftables.conf");
        fs.writeFileSync(file, text);
        const check = await nsRun(ns, "nft", ["-c", "-f", file], { allowFail: true });
        if (check.code !== 0) {
            this.notes.push(`${host}: nftables.conf does not load (${check.stderr.trim().split("\n")[0]}), firewall not applied`);
            return;
        }
        await nsRun(ns, "nft", ["-f", file]);
        this.firewallApplied = true;
    }

    /** Each origin's HTTP service (the freeze experiments stop and continue it). */
    readonly originServers = new Map<string, ChildProcess>();

    async bootOrigins(serverScript: string): Promise<void> {
        for (const o of this.plan.origins) await this.bootOrigin(serverScript, o);
    }

    async bootOrigin(serverScript: string, o: LabPlan["origins"][number] = this.plan.origin): Promise<void> {
        const dir = nsDir(o.ns);
        const files = o.host.files;
        if (!files["wg0.conf"]) throw new Error(`the stack rendered no wg0.conf for the origin ${o.host.name}`);
        writeArtifact(dir, "wg0.conf", files["wg0.conf"]);
        await this.applyFirewall(o.ns, o.host.name, files["nftables.conf"]);
        await this.wgUp(o.ns);
        const logFile = path.join(dir, "origin-http.log");
        const server = nsDaemon(o.ns, [process.execPath, serverScript, o.host.name, o.meshAddress, String(o.port)], logFile);
        this.originServers.set(o.host.name, server);
        const where = `${urlHost(o.meshAddress)}:${o.port}`;
        await waitFor(`the origin's HTTP service on ${where}`, async () => {
            if (server.exitCode !== null) {
                const why = fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-1)[0] ?? "";
                throw new LabPreconditionError(/EADDRINUSE/.test(why)
                    ? `port ${o.port} is busy on the origin's mesh address ${o.meshAddress}: free it or set origin.port to another port`
                    : `the origin's HTTP service exited: ${why}`);
            }
            const r = await nsRun(o.ns, "curl", ["-sf", "-m", "1", "-o", "/dev/null", `http://${where}${o.healthPath}`], { allowFail: true });
            return r.code === 0;
        }, 10_000);
    }

    async bootPop(r: RegionPlan): Promise<void> {
        const ns = r.pop.ns;
        const dir = nsDir(ns);
        const host = r.pop.name;
        const files = r.pop.host.files;
        for (const name of popArtifactsBooted()) {
            if (files[name] === undefined) throw new Error(`the stack rendered no ${name} for PoP ${host}`);
        }
        const stateFile = path.join(dir, "anycast-state.conf");
        fs.mkdirSync(path.join(dir, "control"), { recursive: true });
        fs.mkdirSync(path.join(dir, "tls"), { recursive: true });

        // anycast-net.sh runs unchanged; its paths are environment variables by design.
        writeArtifact(dir, "anycast-net.sh", files["anycast-net.sh"]);
        this.rewrites.push({ host, file: "anycast-net.sh", what: "ANYCAST_STATE_FILE (environment)", from: BIRD_STATE_FILE, to: stateFile });
        await nsRun(ns, path.join(dir, "anycast-net.sh"), [], { env: { ...process.env, ANYCAST_STATE_FILE: stateFile, DEFAULT_ROUTE_WAIT: "5" } });

        await this.applyFirewall(ns, host, files["nftables.conf"]);

        // A real host has other routes (a container network, a backup link): BIRD must not announce them.
        for (const route of UNRELATED_POP_ROUTES) {
            await nsRun(ns, "ip", ["-6", "route", "add", route, "via", r.pop.gateway, "dev", POP_UPLINK]);
        }

        writeArtifact(dir, "wg0.conf", files["wg0.conf"]);
        await this.wgUp(ns);

        const bird = rewritePaths(host, "bird.conf", files["bird.conf"], [{ what: "BIRD state include", from: BIRD_STATE_FILE, to: stateFile }], this.rewrites);
        fs.writeFileSync(path.join(dir, "bird.conf"), bird);
        this.rewrites.push({ host, file: "(bird command line)", what: "BIRD control socket", from: "/run/bird/bird.ctl", to: this.birdSocket(ns) });
        await nsRun(ns, "bird", ["-p", "-c", path.join(dir, "bird.conf")]);
        const birdChild = this.startPopBird(host);

        const tlsContent: Record<(typeof TLS_ARTIFACTS)[number], string> = {
            "origin.pem": this.tls.serverCertPem, "origin.key": this.tls.serverKeyPem, "origin-pull-ca.pem": this.tls.pullCaPem,
        };
        for (const name of TLS_ARTIFACTS) {
            writeArtifact(path.join(dir, "tls"), name, tlsContent[name]);
        }
        const nginx = rewritePaths(host, "nginx.conf", files["nginx.conf"], [
            { what: "nginx pid file", from: NGINX_PATHS.pid, to: path.join(dir, "nginx.pid") },
            { what: "nginx error log", from: NGINX_PATHS.errorLog, to: path.join(dir, "nginx-error.log") },
            { what: "nginx access log", from: NGINX_PATHS.accessLog, to: path.join(dir, "nginx-access.log") },
            { what: "nginx paths to the origins (the agent rewrites them)", from: NGINX_PATHS.upstreams, to: path.join(dir, "nginx-upstreams.conf") },
            { what: "nginx stale cache", from: NGINX_PATHS.staleCache, to: path.join(dir, "stale-cache") },
            ...TLS_ARTIFACTS.map((name) => ({ what: `TLS ${name}`, from: ARTIFACTS[name].remotePath, to: path.join(dir, "tls", name) })),
        ], this.rewrites);
        writeArtifact(dir, "nginx-upstreams.conf", files["nginx-upstreams.conf"]);
        fs.writeFileSync(path.join(dir, "nginx.conf"), nginx);
        await nsRun(ns, "nginx", ["-t", "-q", "-c", path.join(dir, "nginx.conf")]);
        nsDaemon(ns, ["nginx", "-c", path.join(dir, "nginx.conf"), "-g", "daemon off;"], path.join(dir, "nginx.stderr.log"));

        writeArtifact(dir, "anycast-health", files["anycast-health"]);
        fs.writeFileSync(this.agentSettingsFile(ns), relocateAgentSettings(host, files["anycast-health.json"], dir, this.rewrites));
        await this.waitForBird(ns, birdChild);
        // With the namespace's WireGuard socket, as on a host: /metrics reads the mesh's handshakes with `wg`.
        nsDaemon(ns, this.withWgSocket(ns, [path.join(dir, "anycast-health"), "run"]), path.join(dir, "health.log"),
            { ...process.env, ANYCAST_HEALTH_SETTINGS: this.agentSettingsFile(ns) }, { controlPlane: true });
        this.startExporters(r);
    }

    /** Debian's bird and nginx exporters on the PoP's mesh address, as their drop-ins run them on a host. */
    private startExporters(r: RegionPlan): void {
        const ns = r.pop.ns;
        const sources = { ...DEFAULT_EXPORTER_SOURCES, birdSocket: this.birdSocket(ns) };
        this.rewrites.push({ host: r.pop.name, file: "bird-exporter.conf", what: "BIRD control socket (exporter command line)",
            from: DEFAULT_EXPORTER_SOURCES.birdSocket, to: sources.birdSocket });
        for (const name of ["bird", "nginx"] as const) {
            nsDaemon(ns, exporterArgv(name, r.pop.spec.meshAddress, sources), path.join(nsDir(ns), `${name}-exporter.log`));
        }
    }
}
