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
import { LabRuntime } from "./boot";
import { EdgeKind } from "./edge";
import { LabPreconditionError } from "./errors";
import { abortLab, hasCommand, LabAborted, settleInFlight } from "./exec";
import { EXPERIMENT_IDS, runExperiments } from "./experiments";
import { ORIGIN_EXPERIMENT_IDS, OriginExperimentId, originFailoverProblems, runOriginExperiments } from "./origin-experiments";
import { frrPasswordProblem, FRR_DAEMON_DIR, frrDaemons } from "./frr";
import { renderHtml } from "./html";
import { cloudNotes, howToPoke, measure, waitForAnnounced } from "./measure";
import { buildNetwork, labNamespaces, namespacePids, teardownNetwork } from "./network";
import { sampleIdleCost } from "./resources";
import { formatReport, LabReport } from "./report";
import { loadStack, LabStack } from "./stack";
import { specAsRun } from "./layout";
import { minimumBfdDetectMs, probeStalls } from "./stalls";
import { jsonText } from "./text";
import { LAB_DIR, LAB_NS_PREFIX, LabDesign, designLab } from "./topology";
import { flapDamping, policyChange } from "./routing";
import { alertProblems, LabPrometheus } from "./monitoring";

export type { LabReport } from "./report";
export type { EdgeKind } from "./edge";
export { EDGE_KINDS } from "./edge";
export { LAB_NS_PREFIX } from "./topology";

/** Every experiment `experiments` may name (LabOptions). */
export const LAB_EXPERIMENT_IDS: ReadonlyArray<(typeof EXPERIMENT_IDS)[number] | OriginExperimentId> = [...EXPERIMENT_IDS, ...ORIGIN_EXPERIMENT_IDS];
export { LabPreconditionError } from "./errors";

export interface LabOptions {
    /** A Pulumi.<stack>.yaml file. */
    configFile: string;
    /** Also write the report as JSON to this file. */
    json?: string;
    /** Also write the report as one self-contained HTML page to this file (lab/html.ts). */
    html?: string;
    /** Leave the lab running afterwards (tear down later with teardownLab / `anycast lab --down`). */
    keep?: boolean;
    /** Runs of each experiment (default 5). */
    repeats?: number;
    /** Only these experiments (default: all). */
    experiments?: Array<(typeof EXPERIMENT_IDS)[number] | OriginExperimentId>;
    /** What plays the provider edges: FRR (default, not our BGP implementation) or BIRD. */
    edge?: EdgeKind;
    /**
     * Run Prometheus on the monitoring origin and check each fault's alerts (default true). Each
     * kind of fault is then held, once, until its alerts fire: a few seconds each.
     */
    monitoring?: boolean;
    log?: (line: string) => void;
}

const REQUIRED_TOOLS: Array<[string, string]> = [
    ["ip", "iproute2"], ["bird", "bird2"], ["birdc", "bird2"], ["wg", "wireguard-tools"], ["wg-quick", "wireguard-tools"],
    ["wireguard-go", "wireguard-go"], ["nginx", "nginx-light"], ["nft", "nftables"], ["curl", "curl"], ["openssl", "openssl"],
    ["mount", "mount"], ["prometheus", "prometheus"], ["prometheus-bird-exporter", "prometheus-bird-exporter"],
    ["prometheus-nginx-exporter", "prometheus-nginx-exporter"],
];

/** The FRR programs the default edge needs (Debian package frr). */
const FRR_TOOLS = ["vtysh", ...["zebra", "bgpd", "bfdd"].map((d) => path.join(FRR_DAEMON_DIR, d))];

function present(tool: string): boolean {
    return tool.startsWith("/") ? fs.existsSync(tool) : hasCommand(tool);
}

/** Root and the tools (FRR's too for the default edge); throws LabPreconditionError with what to run. */
export function checkLabPreconditions(edge: EdgeKind = "frr"): void {
    if (process.platform !== "linux") throw new LabPreconditionError("the lab needs Linux (network namespaces)");
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
        throw new LabPreconditionError("the lab needs root (network namespaces, veth links, BIRD): run it as root, e.g. `npx anycast lab --config Pulumi.lab.yaml` in a root shell");
    }
    const required: Array<[string, string]> = [...REQUIRED_TOOLS, ...(edge === "frr" ? FRR_TOOLS.map((t): [string, string] => [t, "frr"]) : [])];
    const missing = required.filter(([cmd]) => !present(cmd));
    if (missing.length > 0) {
        const pkgs = [...new Set(missing.map(([, p]) => p))];
        throw new LabPreconditionError(`missing tools: ${missing.map(([c]) => path.basename(c)).join(", ")} (Debian packages: ` +
            `${pkgs.join(" ")}): install everything the lab needs with \`bash scripts/setup.sh\` as root` +
            (edge === "frr" && pkgs.join() === "frr" ? ", or run the BIRD edge with --edge bird" : ""));
    }
    if (!fs.existsSync(path.join(__dirname, "prober.js"))) {
        throw new LabPreconditionError("the lab is not built: run `npm run build` first");
    }
}

/** Kill every lab process and delete every lab namespace (`anycast lab --down`). */
export async function teardownLab(log: (line: string) => void = console.log): Promise<void> {
    checkLabPreconditions("bird");
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
    checkLabPreconditions(options.edge ?? "frr");
    await acquireLabLock(log);
    let kept = false;
    try {
        const report = await runLabLocked(options, log);
        kept = report.kept;
        return report;
    } finally {
        // A kept lab stays ours while this process lives (a bench measuring on it); teardownLab
        // or this process's exit gives it up.
        if (!kept && !keptAfterFailure) releaseLabLock();
    }
}

/** Set when set-up failed with --keep: the broken lab stays up for inspection. */
let keptAfterFailure = false;

/**
 * How long set-up waits for sessions and agents before it gives up with the reason: a limit, not
 * a measure (the report gives how long set-up took); a loaded 2-core machine took over 30 s.
 */
const ANNOUNCE_TIMEOUT_MS = 60_000;

function firstLine(e: unknown): string {
    return (e instanceof Error ? e.message : String(e)).split("\n").map((l) => l.trim()).filter((l) => l)[0] ?? "unknown error";
}

/** A set-up step: whatever fails in it stops the lab with one line naming the step. */
async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
        return await fn();
    } catch (e) {
        if (e instanceof LabPreconditionError || e instanceof LabAborted) throw e;
        throw new LabPreconditionError(`${what}: ${firstLine(e)}`, { cause: e });
    }
}

/** What this config asks of the chosen edge that it cannot do, before anything is built. */
function checkEdge(stack: LabStack, edge: EdgeKind): void {
    if (edge !== "frr") return;
    for (const pop of stack.spec.pops) {
        const problem = frrPasswordProblem(pop.bgp.password);
        if (problem) {
            throw new LabPreconditionError(`PoP ${pop.name}: the BGP password ${problem}; run the lab with --edge bird ` +
                "(and check that your provider's router accepts it)");
        }
    }
}

async function loadAndDesign(options: LabOptions, edge: EdgeKind, log: (line: string) => void):
    Promise<{ stack: LabStack; design: LabDesign; stallMs: number }> {
    log(`anycast lab: rendering ${options.configFile} with the stack program (Pulumi mocks)`);
    const stack = await loadStack(options.configFile).catch((e: Error) => {
        // A config error is the user's to fix and says so itself; anything else is one line here.
        if (e.name === "ConfigError") throw e;
        throw new LabPreconditionError(`rendering ${options.configFile} failed: ${firstLine(e)}`, { cause: e });
    });
    checkEdge(stack, edge);
    // This machine may stop for hundreds of ms at a time (lab/stalls.ts): BFD timers shorter than
    // that would flap for no reason, so the PoPs' layouts raise them (lab/layout.ts), and the
    // model the lab plans and measures with says what they run, before anything reads it.
    const probe = probeStalls();
    const spec = specAsRun(stack.stackSpec, probe.maxMs);
    if (spec !== stack.stackSpec) {
        log(`  this machine stalled up to ${probe.maxMs} ms in a ${probe.durationMs} ms probe: BFD detection and ` +
            `health check timeouts below ${minimumBfdDetectMs(probe.maxMs)} ms are raised (listed under rewrites)`);
    }
    const asRun = { ...stack, spec };
    return { stack: asRun, design: designLab(asRun), stallMs: probe.maxMs };
}

async function setUp(lab: LabRuntime): Promise<void> {
    const { design, log } = lab;
    log(`  building ${design.namespaces.length} namespaces, ${design.links.length} links`);
    await step("building the namespaces", () => buildNetwork(design));
    const daemons = lab.edges.kind === "frr" ? `FRR ${frrDaemons(design.regions[0].edge).join(", ")}` : "BIRD";
    log(`  starting the emulated cloud: provider edges (${daemons}), transits (BIRD)`);
    await step("starting the emulated cloud", () => lab.bootRouters());
    await step("making the TLS material", () => lab.prepareTls());
    for (const o of design.origins) {
        log(`  starting the origin ${o.host.name} at ${o.address} (WireGuard, HTTP on port ${o.port})`);
        await step(`starting the origin ${o.host.name}`, () => lab.bootOrigin(path.join(__dirname, "origin-server.js"), o));
    }
    for (const r of design.regions) {
        log(`  booting PoP ${r.pop.name} (${r.region}) at ${r.pop.address}: anycast-net.sh, nftables, WireGuard, BIRD, nginx, agent`);
        await step(`booting PoP ${r.pop.name}`, () => lab.bootPop(r));
    }
    log("  waiting for BGP sessions and the health agents to announce");
    await step("waiting for the PoPs to announce", () => waitForAnnounced(lab, ANNOUNCE_TIMEOUT_MS));
}

/** The experiments, the policy change and flap damping; each adds what went wrong to the problems. */
async function runFaults(lab: LabRuntime, report: LabReport, options: LabOptions, repeats: number, prometheus?: LabPrometheus): Promise<void> {
    const { log, design } = lab;
    const notOwn = report.catchment.filter((c) => c.servedBy !== c.expectedPop);
    if (notOwn.length > 0) {
        report.experimentsAborted = `region ${notOwn[0].region} is served by ${notOwn[0].servedBy ?? "nobody"}, not its own PoP ` +
            `${notOwn[0].expectedPop}, before any fault: no experiment can measure a failover from it`;
        report.problems.push(`experiments not run: ${report.experimentsAborted}`);
        return;
    }
    const only = options.experiments?.filter((id): id is (typeof EXPERIMENT_IDS)[number] => (EXPERIMENT_IDS as readonly string[]).includes(id));
    const originOnly = options.experiments?.filter((id): id is OriginExperimentId => (ORIGIN_EXPERIMENT_IDS as readonly string[]).includes(id));
    log(`  experiments, ${repeats} run${repeats === 1 ? "" : "s"} each, rotating over the PoPs`);
    const result = await runExperiments(lab, { repeats, only, log, prometheus });
    report.experiments = result.reports;
    for (const e of result.reports) {
        for (const [i, run] of e.runs.entries()) if (run.error) report.problems.push(`${e.title} run ${i + 1} (${run.pop}): ${run.error}`);
    }
    if (result.aborted) {
        report.experimentsAborted = result.aborted;
        report.problems.push(`experiments stopped: ${result.aborted}`);
        return;
    }
    if (!originOnly || originOnly.length > 0) {
        log(`  origin failover, ${repeats} run${repeats === 1 ? "" : "s"} each: every origin down, a PoP's tunnels to the origins cut, one of the origins down`);
        report.originFailover = await runOriginExperiments(lab, { repeats, only: originOnly, log, prometheus });
        report.problems.push(...originFailoverProblems(report.originFailover));
    }
    if (options.experiments) return;
    log("  routing policy change: edit a PoP's communities and prepend, apply with birdc configure, revert");
    const policy = await policyChange(lab, options.configFile);
    report.policyChange = policy;
    if (policy.error) report.problems.push(`policy change on ${policy.pop}: ${policy.error}`);
    else if (!policy.sessionKept) {
        report.problems.push(`policy change on ${policy.pop}: the BGP session was reset (${policy.notEstablished} of ${policy.polls} polls not Established)`);
    }
    const target = design.regions[1 % design.regions.length];
    log(`  flap damping: flapping ${target.pop.name}'s origin path until its agent holds it down`);
    const damping = await flapDamping(lab, target, prometheus);
    report.flapDamping = damping;
    const where = `flap damping on ${damping.pop}`;
    if (damping.error) report.problems.push(`${where}: ${damping.error}`);
    else if (!damping.skipped) {
        if (!damping.healthyWhileHeld) report.problems.push(`${where}: not held down while healthy`);
        if (damping.edgeRoutesWhileHeld > 0) report.problems.push(`${where}: announced while held down`);
        if (damping.penalty >= damping.suppressThreshold) report.problems.push(`${where}: a damping penalty of ${damping.penalty} would suppress the prefix`);
    }
}

function newReport(lab: LabRuntime, options: LabOptions, measured: Awaited<ReturnType<typeof measure>>): LabReport {
    const { design, stack } = lab;
    const spec = stack.spec;
    return {
        ok: false, config: options.configFile, edge: lab.edges.kind, startedAt: new Date().toISOString(), durationS: 0,
        notes: [...stack.notes, ...design.notes, ...lab.notes, ...cloudNotes(lab)],
        rewrites: lab.rewrites,
        firewall: lab.firewallApplied ? "rendered nftables.conf applied on every host that has one" : "not applied (see notes)",
        tls: lab.tls.source,
        admin: design.admin.why,
        anycast: { address: spec.address.toString(), prefixes: spec.prefixes.map(String), asn: spec.asn, hostname: spec.frontDoor.hostname },
        topology: design.regions.map((r) => ({ region: r.region, pop: r.pop.name, popAddress: r.pop.address, popAddress4: r.pop.address4,
            edgeNs: r.edge.ns, publicAsn: r.edge.publicAsn, transitAsn: r.transit.asn, client: r.client.address, client4: r.client.address4 })),
        ...measured, experiments: [], kept: false,
    };
}

async function runLabLocked(options: LabOptions, log: (line: string) => void): Promise<LabReport> {
    const repeats = options.repeats ?? 5;
    const edge = options.edge ?? "frr";
    const started = Date.now();
    const { stack, design, stallMs } = await loadAndDesign(options, edge, log);

    if ((await labNamespaces()).length > 0) {
        log("  a previous lab is still there (kept or interrupted): tearing it down first");
        await teardownNetwork(log);
    }

    const lab = new LabRuntime(design, stack, log, edge);
    lab.stallMs = stallMs;
    if (lab.probeTimeoutMs > 300) {
        lab.notes.push(`this machine stalled up to ${stallMs} ms before the boot: the lab's HTTP probes wait ` +
            `${lab.probeTimeoutMs} ms for an answer instead of 300 ms, so a stall is not counted as a lost request`);
    }
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
        try {
            await setUp(lab);
        } catch (e) {
            if (options.keep && e instanceof LabPreconditionError) {
                keep = keptAfterFailure = true;
                throw new LabPreconditionError(`${e.message} (the lab is left up for inspection under ${LAB_DIR}; ` +
                    "`anycast lab --down` removes it)", { cause: e });
            }
            throw e;
        }
        const setupS = (Date.now() - started) / 1000;
        log(`  lab is up after ${setupS.toFixed(1)} s`);

        const report = newReport(lab, options, await measure(lab));
        report.setupS = setupS;
        // The idle cost before the lab's Prometheus starts: it scrapes every LAB_SCRAPE_MS (500 ms) so
        // that an alert fires within a fault, 30 times a deployed one's default, and every scrape
        // wakes each PoP's agent and exporters. At a deployed scrapeInterval that cost is noise.
        log("  sampling the PoPs' daemons for 10 s without traffic");
        report.idleCost = await sampleIdleCost(design.regions.map((r) => ({ name: r.pop.name, ns: r.pop.ns })), 10_000);
        const prometheus = options.monitoring === false ? undefined
            : await step("starting Prometheus on the monitoring origin", () => LabPrometheus.start(stack, design.origins, ANNOUNCE_TIMEOUT_MS));
        if (prometheus) log(`  Prometheus on ${prometheus.report.where} scrapes ${prometheus.report.targets} targets over the mesh`);
        if (repeats > 0) await runFaults(lab, report, options, repeats, prometheus);
        if (prometheus) {
            report.alerts = prometheus.report;
            report.problems.push(...alertProblems(prometheus.report));
        }
        report.durationS = (Date.now() - started) / 1000;
        keep = !!options.keep;
        report.kept = keep;
        if (keep) report.howToPoke = howToPoke(lab);
        report.ok = report.problems.length === 0;
        log("");
        log(formatReport(report));
        // One line per small record (a timeline's bucket above all), else a report runs to 10,000 lines.
        if (options.json) fs.writeFileSync(options.json, jsonText(report) + "\n");
        if (options.html) fs.writeFileSync(options.html, renderHtml(report));
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
