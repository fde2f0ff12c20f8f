/**
 * Booting the lab: the emulated cloud (provider edges in FRR or BIRD, transit BIRDs, the origin's
 * HTTP service) and, in each PoP namespace, the artifacts the components rendered. The ones whose
 * content depends on where the files live and on the machine's timers (bird.conf, nginx.conf,
 * the agent's settings) are rendered by the same core renderers for the namespace's layout
 * (lab/layout.ts); the report lists how that layout differs from a host's, field by field.
 */
import { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ARTIFACTS, ArtifactName, artifactsFor, PushedArtifactName } from "../components/core/artifacts";
import type { AgentStatus } from "../components/core/health/status";
import { deployedLayout, HostLayout, pathsUnder, popRenderInput } from "../components/core/render/layout";
import type { HostAddresses, PopRenderInput } from "../components/core/model";
import { DEFAULT_EXPORTER_SOURCES, exporterArgv } from "../components/core/monitoring/exporters";
import { edgeRouters, EdgeKind, EdgeRouters } from "./edge";
import { LabPreconditionError } from "./errors";
import { nowMs, nsDaemon, nsRun, RunOptions, waitFor } from "./exec";
import { renderTransitBird } from "./routers";
import { labLayout, LayoutFile, layoutRewrites, renderPopForLab } from "./layout";
import type { Rewrite } from "./rewrite";
import { LabStack } from "./stack";
import { probeTimeoutForStalls } from "./stalls";
import { isCertificate, LabTls, makeLabTls } from "./tls";
import { LAB_DIR, LabDesign, POP_UPLINK, LabRegion, urlHost } from "./topology";

/** Static routes every PoP namespace gets besides its own, to show that none of them leaks into BGP. */
export const UNRELATED_POP_ROUTES = ["2001:db8:dead::/48", "2001:db8:dead:1::/64"];

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

/** The TLS files, and where the layout puts each. */
const TLS_ARTIFACTS = { "origin.pem": "certificate", "origin.key": "key", "origin-pull-ca.pem": "clientCa" } as const;

/** Write an artifact into a namespace's directory under its own name, with the mode it has on a host. */
function writeArtifact(dir: string, name: PushedArtifactName, content: string): void {
    writeArtifactAt(path.join(dir, name), name, content);
}

/** Write an artifact where the namespace's layout puts it, with the mode it has on a host. */
function writeArtifactAt(file: string, name: PushedArtifactName, content: string): void {
    fs.writeFileSync(file, content, { mode: parseInt(ARTIFACTS[name].mode, 8) });
}

export function nsDir(ns: string): string {
    return path.join(LAB_DIR, ns);
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

    constructor(readonly design: LabDesign, readonly stack: LabStack, readonly log: (line: string) => void, edge: EdgeKind = "frr") {
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

    /** Every BIRD's socket in its namespace's directory; a PoP's is its layout's (pathsUnder). */
    birdSocket(ns: string): string {
        return pathsUnder(nsDir(ns)).agent.birdSocket;
    }

    /** A PoP's render input from the stack's model, on its host's addresses. */
    private popInput(popName: string, stack: LabStack = this.stack): { input: PopRenderInput; files: Record<string, string> } {
        const host = stack.hosts.find((h) => h.role === "pop" && h.name === popName);
        if (!host) throw new Error(`the stack has no PoP host ${popName}`);
        const addresses: HostAddresses = { ipv6: host.ipv6, ...(host.ipv4 ? { ipv4: host.ipv4 } : {}) };
        return { input: popRenderInput(stack.stackSpec, popName, addresses), files: host.files };
    }

    /** Each PoP's layout, once made for the stalls it was made for (agentStatus reads it every poll). */
    private readonly layouts = new Map<string, { stallMs: number; layout: HostLayout }>();

    /** A PoP namespace's layout: its directory's paths, the timers for this machine's stalls (lab/layout.ts). */
    layoutOf(popName: string): HostLayout {
        const r = this.region(popName);
        const known = this.layouts.get(r.pop.name);
        if (known?.stallMs === this.stallMs) return known.layout;
        const layout = labLayout(this.popInput(r.pop.name).input, nsDir(r.pop.ns), this.stallMs);
        this.layouts.set(r.pop.name, { stallMs: this.stallMs, layout });
        return layout;
    }

    /** A PoP's bird.conf, nginx.conf and agent settings for its namespace, from `stack`'s model (default the lab's). */
    renderPop(popName: string, stack: LabStack = this.stack): Record<LayoutFile, string> {
        const r = this.region(popName);
        const { input, files } = this.popInput(r.pop.name, stack);
        return renderPopForLab(stack.stackSpec, r.pop.name, input.host, files, this.layoutOf(popName));
    }

    region(name: string): LabRegion {
        const r = this.design.regions.find((x) => x.region === name || x.pop.name === name);
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
     * `bird -p`, install it, `birdc configure`. Rendered from `stack`'s model (an edited config's)
     * for the PoP's namespace, as at boot.
     */
    async reconfigurePopBird(popName: string, stack: LabStack): Promise<{ reply: string; ms: number }> {
        const r = this.region(popName);
        const dir = nsDir(r.pop.ns);
        const text = this.renderPop(r.pop.name, stack)["bird.conf"];
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
        const file = this.layoutOf(popName).paths.agent.statusFile;
        try {
            return JSON.parse(fs.readFileSync(file, "utf8"));
        } catch {
            return undefined;
        }
    }

    // --- boot -------------------------------------------------------------------------------

    async bootRouters(): Promise<void> {
        const started: Array<[string, ChildProcess]> = [];
        for (const t of this.design.transits) {
            fs.writeFileSync(path.join(nsDir(t.ns), "bird.conf"), renderTransitBird(t, path.join(nsDir(t.ns), "bird.log")));
            await nsRun(t.ns, "bird", ["-p", "-c", path.join(nsDir(t.ns), "bird.conf")]);
            started.push([t.ns, this.startBird(t.ns)]);
        }
        await this.edges.start(this.design.regions.map((r) => r.edge), nsDir);
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
        for (const o of this.design.origins) await this.bootOrigin(serverScript, o);
    }

    async bootOrigin(serverScript: string, o: LabDesign["origins"][number] = this.design.origin): Promise<void> {
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

    async bootPop(r: LabRegion): Promise<void> {
        const ns = r.pop.ns;
        const dir = nsDir(ns);
        const host = r.pop.name;
        const files = r.pop.host.files;
        for (const name of popArtifactsBooted()) {
            if (files[name] === undefined) throw new Error(`the stack rendered no ${name} for PoP ${host}`);
        }
        const layout = this.layoutOf(host);
        const { agent, tls } = layout.paths;
        const rendered = this.renderPop(host);
        this.rewrites.push(...layoutRewrites(host, deployedLayout(this.popInput(host).input), layout, this.stallMs));
        fs.mkdirSync(agent.controlDir, { recursive: true });
        for (const file of Object.values(tls)) fs.mkdirSync(path.dirname(file), { recursive: true });

        // anycast-net.sh runs unchanged; its paths are environment variables by design.
        writeArtifact(dir, "anycast-net.sh", files["anycast-net.sh"]);
        await nsRun(ns, path.join(dir, "anycast-net.sh"), [], { env: { ...process.env, ANYCAST_STATE_FILE: agent.stateFile, DEFAULT_ROUTE_WAIT: "5" } });

        await this.applyFirewall(ns, host, files["nftables.conf"]);

        // A real host has other routes (a container network, a backup link): BIRD must not announce them.
        for (const route of UNRELATED_POP_ROUTES) {
            await nsRun(ns, "ip", ["-6", "route", "add", route, "via", r.pop.gateway, "dev", POP_UPLINK]);
        }

        writeArtifact(dir, "wg0.conf", files["wg0.conf"]);
        await this.wgUp(ns);

        writeArtifact(dir, "bird.conf", rendered["bird.conf"]);
        await nsRun(ns, "bird", ["-p", "-c", path.join(dir, "bird.conf")]);
        const birdChild = this.startPopBird(host);

        const tlsContent: Record<keyof typeof TLS_ARTIFACTS, string> = {
            "origin.pem": this.tls.serverCertPem, "origin.key": this.tls.serverKeyPem, "origin-pull-ca.pem": this.tls.pullCaPem,
        };
        for (const [name, key] of Object.entries(TLS_ARTIFACTS) as Array<[keyof typeof TLS_ARTIFACTS, keyof typeof tls]>) {
            writeArtifactAt(tls[key], name, tlsContent[name]);
        }
        writeArtifactAt(agent.upstreamsFile, "nginx-upstreams.conf", files["nginx-upstreams.conf"]);
        writeArtifact(dir, "nginx.conf", rendered["nginx.conf"]);
        await nsRun(ns, "nginx", ["-t", "-q", "-c", path.join(dir, "nginx.conf")]);
        nsDaemon(ns, ["nginx", "-c", path.join(dir, "nginx.conf"), "-g", "daemon off;"], path.join(dir, "nginx.stderr.log"));

        writeArtifact(dir, "anycast-health", files["anycast-health"]);
        writeArtifactAt(this.agentSettingsFile(ns), "anycast-health.json", rendered["anycast-health.json"]);
        await this.waitForBird(ns, birdChild);
        // With the namespace's WireGuard socket, as on a host: /metrics reads the mesh's handshakes with `wg`.
        nsDaemon(ns, this.withWgSocket(ns, [path.join(dir, "anycast-health"), "run"]), path.join(dir, "health.log"),
            { ...process.env, ANYCAST_HEALTH_SETTINGS: this.agentSettingsFile(ns) }, { controlPlane: true });
        this.startExporters(r, layout);
    }

    /** Debian's bird and nginx exporters on the PoP's mesh address, as their drop-ins run them on a host. */
    private startExporters(r: LabRegion, layout: HostLayout): void {
        const ns = r.pop.ns;
        // The layout's BIRD socket (its difference from a host's is reported with the socket's).
        const sources = { ...DEFAULT_EXPORTER_SOURCES, birdSocket: layout.paths.agent.birdSocket };
        for (const name of ["bird", "nginx"] as const) {
            nsDaemon(ns, exporterArgv(name, r.pop.spec.meshAddress, sources), path.join(nsDir(ns), `${name}-exporter.log`));
        }
    }
}
