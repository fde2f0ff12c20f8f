/**
 * `anycast lab`: the whole anycast network on this machine. Runs the stack program under mocks,
 * boots what it rendered in network namespaces next to an emulated cloud (Vultr edges, transits,
 * clients, the origin), measures, and prints a report (see docs/ARTIFACTS.md and issue 3).
 *
 * Everything lives in namespaces named `alab-*` and in /run/anycast-lab; teardown (also on
 * Ctrl-C, on failure and via `anycast lab --down`) removes both.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LabRuntime, nsDir, UNRELATED_POP_ROUTES } from "./boot";
import { showProtocols, showRoutes } from "./birdc";
import { abortLab, hasCommand, nsRun, settleInFlight, waitFor } from "./exec";
import { EXPERIMENT_IDS, runExperiments } from "./experiments";
import { ORIGIN_EXPERIMENT_IDS, OriginExperimentId, originFailoverProblems, runOriginExperiments } from "./origin-experiments";
import { buildNetwork, labNamespaces, namespacePids, teardownNetwork } from "./network";
import { probeOnce } from "./probe";
import { CatchmentEntry, formatReport, HttpsCheck, HttpsResult, LabReport, SessionReport, TransitRoute } from "./report";
import { loadStack, LabStack } from "./stack";
import { LAB_DIR, LAB_NS_PREFIX, planLab } from "./topology";
import { UPSTREAM_TABLE_SIZE } from "./routers";
import { probeExposure, probeUdpExposure } from "./exposure";
import { flapDamping, policyChange, routingSafety } from "./routing";

export type { LabReport } from "./report";
export { LAB_NS_PREFIX } from "./topology";

export interface LabOptions {
    /** A Pulumi.<stack>.yaml file. */
    configFile: string;
    /** Also write the report as JSON to this file. */
    json?: string;
    /** Leave the lab running afterwards (tear down later with teardownLab / `anycast lab --down`). */
    keep?: boolean;
    /** Runs of each experiment (default 5). */
    repeats?: number;
    /** Only these experiments (default: all). */
    experiments?: Array<(typeof EXPERIMENT_IDS)[number] | OriginExperimentId>;
    log?: (line: string) => void;
}

/** The machine cannot run the lab; the message says what to do. */
export class LabPreconditionError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "LabPreconditionError";
    }
}

const REQUIRED_TOOLS: Array<[string, string]> = [
    ["ip", "iproute2"], ["bird", "bird2"], ["birdc", "bird2"], ["wg", "wireguard-tools"], ["wg-quick", "wireguard-tools"],
    ["wireguard-go", "wireguard-go"], ["nginx", "nginx-light"], ["nft", "nftables"], ["curl", "curl"], ["openssl", "openssl"],
    ["mount", "mount"],
];

/** Root and the tools; throws LabPreconditionError with what to run. */
export function checkLabPreconditions(): void {
    if (process.platform !== "linux") throw new LabPreconditionError("the lab needs Linux (network namespaces)");
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
        throw new LabPreconditionError("the lab needs root (network namespaces, veth links, BIRD): run it with sudo, e.g. `sudo npx anycast lab --config Pulumi.lab.yaml`");
    }
    const missing = REQUIRED_TOOLS.filter(([cmd]) => !hasCommand(cmd));
    if (missing.length > 0) {
        const pkgs = [...new Set(missing.map(([, p]) => p))];
        throw new LabPreconditionError(`missing tools: ${missing.map(([c]) => c).join(", ")} (Debian packages: ${pkgs.join(" ")}). ` +
            "Install everything the lab needs with `sudo bash scripts/setup.sh`.");
    }
    if (!fs.existsSync(path.join(__dirname, "prober.js"))) {
        throw new LabPreconditionError("the lab is not built: run `npm run build` first");
    }
}

/** Kill every lab process and delete every lab namespace (`anycast lab --down`). */
export async function teardownLab(log: (line: string) => void = console.log): Promise<void> {
    checkLabPreconditions();
    const before = await labNamespaces();
    if (before.length === 0 && !fs.existsSync(LAB_DIR)) {
        releaseLabLock();
        log("anycast lab: nothing to tear down");
        return;
    }
    log(`anycast lab: tearing down ${before.length} namespaces (${LAB_NS_PREFIX}*)`);
    await teardownNetwork(log);
    releaseLabLock();
}

/**
 * What is left of a lab: its namespaces, processes inside them, and any process anywhere whose
 * command line names the lab's directory or scripts (one that escaped its namespace's deletion).
 */
export async function labLeftovers(): Promise<{ namespaces: string[]; processes: Array<{ pid: number; cmdline: string }> }> {
    const namespaces = await labNamespaces();
    const pids = new Set((await Promise.all(namespaces.map((n) => namespacePids(n)))).flat());
    const marks = [LAB_DIR, path.join(__dirname, "prober.js"), path.join(__dirname, "origin-server.js")];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
        try {
            const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ");
            if (marks.some((m) => cmdline.includes(m))) pids.add(Number(entry));
        } catch {
            // exited meanwhile
        }
    }
    const processes = [...pids].map((pid) => {
        let cmdline = "";
        try {
            cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
        } catch {
            // exited meanwhile
        }
        return { pid, cmdline };
    }).filter((p) => p.cmdline !== "");
    return { namespaces, processes };
}

/** Held by the process running a lab; outside LAB_DIR, which teardown deletes. */
const LOCK_FILE = "/run/anycast-lab.lock";

function pidAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

/**
 * One lab per machine: the namespaces and addresses are fixed. A second lab (another test file,
 * a bench) waits for the first to finish instead of tearing it down under its feet; a lock left
 * by a process that is gone (a kept lab, a crash) is taken over.
 */
async function acquireLabLock(log: (line: string) => void, timeoutMs = 6 * 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let told = false;
    for (;;) {
        try {
            fs.writeFileSync(LOCK_FILE, String(process.pid), { flag: "wx" });
            return;
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        }
        const owner = Number(fs.readFileSync(LOCK_FILE, "utf8").trim());
        if (!Number.isInteger(owner) || owner === process.pid || !pidAlive(owner)) {
            fs.rmSync(LOCK_FILE, { force: true });
            continue;
        }
        if (!told) {
            log(`  another lab is running (pid ${owner}): waiting for it to finish`);
            told = true;
        }
        if (Date.now() > deadline) throw new LabPreconditionError(`another lab (pid ${owner}) is still running; stop it or run \`anycast lab --down\``);
        await new Promise((r) => setTimeout(r, 500));
    }
}

function releaseLabLock(): void {
    try {
        if (Number(fs.readFileSync(LOCK_FILE, "utf8").trim()) === process.pid) fs.rmSync(LOCK_FILE, { force: true });
    } catch {
        // not held
    }
}

export async function runLab(options: LabOptions): Promise<LabReport> {
    const log = options.log ?? ((line: string) => console.log(line));
    checkLabPreconditions();
    await acquireLabLock(log);
    let kept = false;
    try {
        const report = await runLabLocked(options, log);
        kept = report.kept;
        return report;
    } finally {
        // A kept lab stays ours while this process lives (a bench measuring on it); teardownLab
        // or this process's exit gives it up.
        if (!kept) releaseLabLock();
    }
}

async function runLabLocked(options: LabOptions, log: (line: string) => void): Promise<LabReport> {
    const repeats = options.repeats ?? 5;
    const started = Date.now();
    log(`anycast lab: rendering ${options.configFile} with the stack program (Pulumi mocks)`);
    const stack = await loadStack(options.configFile);
    const plan = planLab(stack);

    if ((await labNamespaces()).length > 0) {
        log("  a previous lab is still there (kept or interrupted): tearing it down first");
        await teardownNetwork(log);
    }

    const lab = new LabRuntime(plan, stack, log);
    let interrupted: Promise<never> | undefined;
    const onSignal = (sig: NodeJS.Signals) => {
        if (interrupted) return;
        log(`\nanycast lab: ${sig}: stopping and tearing down`);
        abortLab();
        // The exit code a shell expects after that signal; the process ends here, whatever the
        // main flow was awaiting (its next command fails with LabAborted and waits for this).
        interrupted = settleInFlight()
            .then(() => teardownNetwork(log))
            .finally(() => {
                releaseLabLock();
                process.exit(sig === "SIGINT" ? 130 : 143);
            }) as Promise<never>;
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);

    let keep = false;
    try {
        log(`  building ${plan.namespaces.length} namespaces, ${plan.links.length} links`);
        await buildNetwork(plan);
        log("  starting the emulated cloud: Vultr edges and transits (BIRD)");
        await lab.bootRouters();
        await lab.prepareTls();
        for (const o of plan.origins) log(`  starting the origin ${o.host.name} at ${o.address} (WireGuard, HTTP on [${o.meshAddress}]:${o.port})`);
        await lab.bootOrigins(path.join(__dirname, "origin-server.js"));
        for (const r of plan.regions) {
            log(`  booting PoP ${r.pop.name} (${r.region}) at ${r.pop.address}: anycast-net.sh, nftables, WireGuard, BIRD, nginx, health agent`);
            await lab.bootPop(r);
        }
        log("  waiting for BGP sessions and the health agents to announce");
        await waitForAnnounced(lab);
        const setupS = (Date.now() - started) / 1000;
        log(`  lab is up after ${setupS.toFixed(1)} s`);

        const report = await measure(lab, options, stack);
        report.setupS = setupS;
        if (repeats > 0) {
            log(`  experiments, ${repeats} runs each, rotating over the PoPs`);
            const only = options.experiments?.filter((id): id is (typeof EXPERIMENT_IDS)[number] => (EXPERIMENT_IDS as readonly string[]).includes(id));
            report.experiments = await runExperiments(lab, { repeats, only, log });
            for (const e of report.experiments) {
                for (const [i, run] of e.runs.entries()) {
                    if (run.error) report.problems.push(`${e.title} run ${i + 1} (${run.pop}): ${run.error}`);
                }
            }
        }
        const originOnly = options.experiments?.filter((id): id is OriginExperimentId => (ORIGIN_EXPERIMENT_IDS as readonly string[]).includes(id));
        if (repeats > 0 && (!originOnly || originOnly.length > 0)) {
            log(`  origin failover, ${repeats} runs each: every origin down, a PoP's tunnels to the origins cut, one of the origins down`);
            report.originFailover = await runOriginExperiments(lab, { repeats, only: originOnly, log });
            report.problems.push(...originFailoverProblems(report.originFailover));
        }
        if (repeats > 0 && !options.experiments) {
            log("  routing policy change: edit a PoP's communities and prepend, apply with birdc configure, revert");
            const policy = await policyChange(lab, options.configFile);
            report.policyChange = policy;
            if (policy.error) report.problems.push(`policy change on ${policy.pop}: ${policy.error}`);
            else if (!policy.sessionKept) report.problems.push(`policy change on ${policy.pop}: the BGP session was reset (${policy.notEstablished} of ${policy.polls} polls not Established)`);
            const target = plan.regions[1 % plan.regions.length];
            log(`  flap damping: flapping ${target.pop.name}'s origin path until its agent holds it down`);
            const damping = await flapDamping(lab, target);
            report.flapDamping = damping;
            if (damping.error) report.problems.push(`flap damping on ${damping.pop}: ${damping.error}`);
            else {
                if (!damping.healthyWhileHeld) report.problems.push(`flap damping on ${damping.pop}: not held down while healthy`);
                if (damping.edgeRoutesWhileHeld > 0) report.problems.push(`flap damping on ${damping.pop}: announced while held down`);
                if (damping.penalty >= damping.suppressThreshold) report.problems.push(`flap damping on ${damping.pop}: a damping penalty of ${damping.penalty} would suppress the prefix`);
            }
        }
        report.durationS = (Date.now() - started) / 1000;
        keep = !!options.keep;
        report.kept = keep;
        if (keep) report.howToPoke = howToPoke(lab);
        report.ok = report.problems.length === 0;
        log("");
        log(formatReport(report));
        if (options.json) fs.writeFileSync(options.json, JSON.stringify(report, null, 2) + "\n");
        return report;
    } finally {
        if (interrupted) await interrupted;
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        if (!keep) {
            log("anycast lab: tearing down");
            await teardownNetwork(log);
        }
    }
}

async function waitForAnnounced(lab: LabRuntime): Promise<void> {
    const { plan } = lab;
    await Promise.all(plan.regions.map(async (r) => {
        await waitFor(`the BGP session of PoP ${r.pop.name} to be established`, async () => {
            const protos = await showProtocols(r.edge.ns, lab.birdSocket(r.edge.ns));
            return protos.find((p) => p.name === "pop")?.bgpState === "Established";
        }, 30_000, 100).catch(async (e: Error) => {
            const protos = await showProtocols(r.pop.ns, lab.birdSocket(r.pop.ns)).catch(() => []);
            const why = protos.filter((p) => p.proto === "BGP").map((p) => `${p.name}: ${p.bgpState ?? p.info} ${p.lastError ?? ""}`).join("; ");
            throw new Error(`${e.message} (PoP side: ${why || "no answer"})`);
        });
        await waitFor(`the health agent of ${r.pop.name} to announce`, async () => (await lab.agentStatus(r.pop.name))?.state === "announced", 30_000, 100)
            .catch(async (e: Error) => {
                const s = await lab.agentStatus(r.pop.name);
                throw new Error(`${e.message} (agent: ${s ? `${s.state}, ${s.last_reason}` : "no status file"})`);
            });
    }));
    // Each transit must have heard its own region's route before catchment is measured.
    await Promise.all(plan.regions.map((r) => waitFor(`transit ${r.region} to prefer its own edge`, async () => {
        const routes = await showRoutes(r.transit.ns, lab.birdSocket(r.transit.ns), lab.stack.spec.prefixes[0]);
        return routes.some((x) => x.best && x.from === r.transit.edgePeer.name);
    }, 10_000, 100)));
}

async function measure(lab: LabRuntime, options: LabOptions, stack: LabStack): Promise<LabReport> {
    const { plan } = lab;
    const spec = stack.spec;
    const log = lab.log;
    const problems: string[] = [];

    log("  reading BGP sessions");
    const sessions: SessionReport[] = [];
    for (const r of plan.regions) {
        const popProtos = await showProtocols(r.pop.ns, lab.birdSocket(r.pop.ns));
        const edgeProtos = await showProtocols(r.edge.ns, lab.birdSocket(r.edge.ns));
        const edgePop = edgeProtos.find((p) => p.name === "pop");
        const bfd = await nsRun(r.edge.ns, "birdc", ["-s", lab.birdSocket(r.edge.ns), "show", "bfd", "sessions"], { allowFail: true });
        const bfdLine = bfd.stdout.split("\n").find((l) => l.startsWith(r.pop.address));
        for (const p of popProtos.filter((x) => x.proto === "BGP")) {
            const established = p.bgpState === "Established";
            sessions.push({
                pop: r.pop.name, region: r.region, protocol: p.name, neighbor: p.neighborAddress ?? "?", neighborAs: p.neighborAs ?? "?",
                state: p.bgpState ?? p.info, established, since: p.since, lastError: p.lastError, holdTimer: p.holdTimer?.split("/")[1],
                bfd: r.edge.towardsPop.bfd ? (bfdLine?.split(/\s+/)[2] ?? "none") : "off",
                exported: p.routes?.exported, edgeImported: edgePop?.routes?.imported,
                upstreamOffered: edgePop?.routes?.exported, popImported: p.routes?.imported,
            });
            if (!established) problems.push(`PoP ${r.pop.name}: BGP ${p.name} is ${p.bgpState ?? p.info}${p.lastError ? ` (${p.lastError})` : ""}`);
            if ((p.routes?.imported ?? 0) > 0) problems.push(`PoP ${r.pop.name}: imported ${p.routes?.imported} routes from its upstream (must be none)`);
            if ((edgePop?.routes?.imported ?? 0) > spec.prefixes.length) {
                problems.push(`PoP ${r.pop.name}: the edge accepted ${edgePop?.routes?.imported} routes from it; only ${spec.prefixes.length} configured`);
            }
        }
    }

    log("  reading the transits' routes");
    const transitRoutes: TransitRoute[] = [];
    for (const r of plan.regions) {
        const routes = await showRoutes(r.transit.ns, lab.birdSocket(r.transit.ns), spec.prefixes[0]);
        for (const x of routes) {
            transitRoutes.push({ region: r.region, transitAsn: r.transit.asn, from: x.from, best: x.best, asPath: x.asPath, localPref: x.localPref, communities: x.communities });
        }
        const best = routes.find((x) => x.best);
        if (!best || best.from !== r.transit.edgePeer.name) problems.push(`transit ${r.region}: best route is not its own edge's (${best?.from ?? "none"})`);
    }

    log("  measuring catchment and HTTP through the anycast address");
    const target = { address: spec.address, host: spec.frontDoor.hostname };
    const catchment: CatchmentEntry[] = [];
    for (const r of plan.regions) {
        const s = await probeOnce(r.client.ns, target);
        const entry: CatchmentEntry = { region: r.region, client: r.client.address, expectedPop: r.pop.name, servedBy: s.pop, status: s.status, ms: s.done - s.sent, error: s.error };
        try {
            const body = JSON.parse(s.body ?? "") as { origin?: string; headers?: Record<string, string> };
            entry.origin = body.origin;
            entry.hostHeader = body.headers?.host;
            entry.xForwardedFor = body.headers?.["x-forwarded-for"];
        } catch {
            // not the origin's JSON: the status column says what came back
        }
        catchment.push(entry);
        if (entry.servedBy !== r.pop.name) problems.push(`region ${r.region}: served by ${entry.servedBy ?? "nobody"} instead of its own PoP ${r.pop.name}`);
        if (entry.status !== 200 || !spec.origins.some((o) => o.name === entry.origin)) problems.push(`region ${r.region}: no origin answer through the anycast address (${entry.status ?? entry.error})`);
        if (entry.hostHeader !== spec.frontDoor.hostname) problems.push(`region ${r.region}: origin saw Host ${entry.hostHeader}, not ${spec.frontDoor.hostname}`);
        if (!entry.xForwardedFor?.includes(r.client.address)) problems.push(`region ${r.region}: X-Forwarded-For ${entry.xForwardedFor ?? "missing"} lacks the client ${r.client.address}`);
    }

    log("  checking HTTPS with Authenticated Origin Pulls (with and without the client certificate)");
    const https = await checkHttps(lab);
    for (const h of https) {
        if (h.withCert.status !== 200 || h.withCert.servedBy !== h.expectedPop) {
            problems.push(`region ${h.region}: HTTPS with the origin-pull certificate gave ${h.withCert.status ?? h.withCert.error}`);
        }
        if (h.withoutCert.status === 200) problems.push(`region ${h.region}: HTTPS without a client certificate was served`);
    }

    log("  probing who may reach what (TCP connects from each kind of source)");
    const exposure = await probeExposure(lab);
    if (lab.firewallApplied) {
        // The UDP probe reads the firewall's own drop counter: only meaningful when it is applied.
        exposure.push(...await probeUdpExposure(lab));
        for (const p of exposure.filter((x) => !x.ok)) problems.push(`${p.from} -> ${p.to} ${p.protocol}/${p.port}: ${p.result}, expected ${p.expect} (${p.rule})`);
    }

    log("  checking what each PoP exports and what the transits learned from our AS");
    const routing = await routingSafety(lab);
    if (!routing.ok) problems.push("routing safety: a PoP imported routes, exported other than the configured prefixes, or a transit learned other prefixes from our AS");

    let outsider: LabReport["outsider"];
    {
        const s = await probeOnce(plan.outsider.ns, target, 1000);
        outsider = { client: plan.outsider.address, blocked: !s.ok, detail: s.ok ? `served by ${s.pop}` : (s.error ?? `status ${s.status}`) };
        if (lab.firewallApplied && !outsider.blocked) problems.push(`the outsider ${plan.outsider.address} (outside httpSources) was served by ${s.pop}`);
    }

    return {
        ok: false, config: options.configFile, startedAt: new Date().toISOString(), durationS: 0, problems,
        notes: [...stack.notes, ...plan.notes, ...lab.notes,
            `the emulated upstream offers each PoP a default route and ${UPSTREAM_TABLE_SIZE} more; a PoP must import none`,
            `each PoP also has unrelated static routes (${UNRELATED_POP_ROUTES.join(", ")}); its edge must accept only the configured prefix`],
        rewrites: lab.rewrites,
        firewall: lab.firewallApplied ? "rendered nftables.conf applied on every host that has one" : "not applied (see notes)",
        tls: lab.tls.source,
        anycast: { address: spec.address, prefixes: spec.prefixes, asn: spec.asn, hostname: spec.frontDoor.hostname },
        topology: plan.regions.map((r) => ({ region: r.region, pop: r.pop.name, popAddress: r.pop.address, edgeNs: r.edge.ns,
            publicAsn: r.edge.publicAsn, transitAsn: r.transit.asn, client: r.client.address })),
        sessions, transitRoutes, catchment, https, outsider, exposure, routing, experiments: [], kept: false,
    };
}

/** What an HTTPS request from a namespace met: status and serving PoP, or curl's error. */
async function curlHttps(ns: string, address: string, hostname: string, tlsDir: string, withCert: boolean): Promise<HttpsResult> {
    const args = ["-sS", "-m", "3", "-o", "/dev/null", "-D", "-", "--cacert", path.join(tlsDir, "server-ca.pem"),
        "--resolve", `${hostname}:443:[${address}]`, `https://${hostname}/`];
    if (withCert) args.unshift("--cert", path.join(tlsDir, "client.pem"), "--key", path.join(tlsDir, "client.key"));
    const res = await nsRun(ns, "curl", args, { allowFail: true, timeoutMs: 5000 });
    const status = /^HTTP\/\S+ (\d+)/m.exec(res.stdout);
    const pop = /^x-anycast-pop: *(\S+)/im.exec(res.stdout);
    if (!status) return { error: res.stderr.trim().replace(/^curl: /, "") || `curl exit ${res.code}` };
    return { status: Number(status[1]), servedBy: pop?.[1] };
}

/** Cloudflare's side of "Full (strict)" + Authenticated Origin Pulls, played from each region's client. */
async function checkHttps(lab: LabRuntime): Promise<HttpsCheck[]> {
    const tlsDir = path.join(LAB_DIR, "cloudflare-side");
    fs.mkdirSync(tlsDir, { recursive: true });
    fs.writeFileSync(path.join(tlsDir, "server-ca.pem"), lab.tls.serverCaPem);
    fs.writeFileSync(path.join(tlsDir, "client.pem"), lab.tls.pullClientCertPem);
    fs.writeFileSync(path.join(tlsDir, "client.key"), lab.tls.pullClientKeyPem, { mode: 0o600 });
    const spec = lab.stack.spec;
    const out: HttpsCheck[] = [];
    for (const r of lab.plan.regions) {
        out.push({
            region: r.region, expectedPop: r.pop.name,
            withCert: await curlHttps(r.client.ns, spec.address, spec.frontDoor.hostname, tlsDir, true),
            withoutCert: await curlHttps(r.client.ns, spec.address, spec.frontDoor.hostname, tlsDir, false),
        });
    }
    return out;
}

function howToPoke(lab: LabRuntime): string[] {
    const r = lab.plan.regions[0];
    return [
        "The lab is still running (--keep). Poke it:",
        `  ip netns exec ${r.pop.ns} birdc -s ${lab.birdSocket(r.pop.ns)} show protocols all      # the PoP's BIRD`,
        `  ip netns exec ${r.edge.ns} birdc -s ${lab.birdSocket(r.edge.ns)} show route all         # the emulated Vultr edge`,
        `  ip netns exec ${r.transit.ns} birdc -s ${lab.birdSocket(r.transit.ns)} show route ${lab.stack.spec.prefixes[0]} all`,
        `  ip netns exec ${r.client.ns} curl -si -H 'Host: ${lab.stack.spec.frontDoor.hostname}' http://[${lab.stack.spec.address}]/`,
        `  ip netns exec ${r.pop.ns} env ANYCAST_HEALTH_ENV=${lab.healthEnvFile(r.pop.ns)} ${nsDir(r.pop.ns)}/anycast-health status`,
        `  namespaces: ${lab.plan.namespaces.map((n) => n.name).join(" ")}; files and logs: ${LAB_DIR}/<namespace>/`,
        "Tear it down with: sudo npx anycast lab --down",
    ];
}
