/**
 * `anycast bench` / `npm run bench`: figures, each min/median/max over repeated runs, printed
 * and written to BENCHMARKS.md with the method.
 *
 * 1. Program evaluation time and resource count of stacks/network for 1, 4, 16 and 32 PoPs.
 * 2. The lab's failover figures (crash, link loss, origin loss, drain) against the anchors.
 * 3. The data path: requests/s and latency to the origin directly over the mesh versus through
 *    the anycast address and a PoP, measured in the same lab run, as a ratio.
 * 4. Link loss per provider profile (no BFD with the default and the shortest hold time), each in
 *    a lab of its own, next to the lab stack's BFD figure.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { measureEvaluation, EvaluationFigure } from "./evaluation";
import { measureDataPath, DataPathFigures } from "./datapath";
import { formatSummary, stats, Summary } from "../lab/stats";
import type { OriginFailoverReport } from "../lab/origin-experiments";
import { DAEMONS } from "../lab/resources";
import { measureProfiles, ProfileFigure } from "./profiles";
import type { LabReport } from "../lab/index";
import { ms } from "../lab/report";

export interface BenchOptions {
    configFile: string;
    /** Only the evaluation figures (no root needed). */
    skipLab?: boolean;
    repeats?: number;
    log?: (line: string) => void;
    /** Where to write the results; default BENCHMARKS.md in the current directory. */
    output?: string;
}

export interface BenchResult {
    evaluation: EvaluationFigure[];
    lab?: LabReport;
    dataPath?: DataPathFigures;
    profiles?: ProfileFigure[];
}

/** The anchors the issue measures us against (seconds). */
const ANCHORS = {
    crash: "seeds: ~5 s on the real Internet when a PoP died",
    linkLoss: "BIRD default hold time 240 s (minutes of blackhole); BFD setups ~0.6 s",
    originLoss: "no anchor: without a health agent the route stays until someone notices",
    drain: "target: 0 failed requests",
    proxyLoss: "the deploy rehearsal's experiment (lab/deploy/observe.ts); the lab does not run it",
};

export async function runBench(opts: BenchOptions): Promise<BenchResult> {
    const log = opts.log ?? console.log;
    const repeats = opts.repeats ?? 5;
    log(`anycast bench on ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}`);
    // Each part is a long step: a line when it starts, and one with its elapsed time when it ends.
    const timed = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
        const started = Date.now();
        log(`${what}:`);
        const value = await run();
        log(`  ${what.replace(/,.*$/, "")}: done in ${ms(Date.now() - started)}`);
        return value;
    };
    const evaluation = await timed("program evaluation (stacks/network under mocks), min / median / max",
        () => measureEvaluation(opts.configFile, [1, 4, 16, 32], repeats, log));
    const growth = growthOf(evaluation);
    log(`  growth: ${growth}`);

    let lab: LabReport | undefined;
    let dataPath: DataPathFigures | undefined;
    let profiles: ProfileFigure[] | undefined;
    if (!opts.skipLab) {
        const labModule = await import("../lab/index");
        const { loadStack } = await import("../lab/stack");
        const { designLab, urlHost } = await import("../lab/topology");
        // Keep the lab up after its experiments, so the data path is measured on the same network.
        const labReport = await timed("lab (failover experiments, then the data path), this takes a few minutes",
            () => labModule.runLab({ configFile: opts.configFile, repeats, keep: true, log }));
        lab = labReport;
        try {
            const plan = designLab(await loadStack(opts.configFile));
            const region = plan.regions[0];
            const spec = plan.origin;
            dataPath = await timed("data path, wrk to the origin: over the mesh vs through the anycast address", () => {
                log(`  from ${region.pop.ns} over the mesh, from ${region.client.ns} through the anycast address`);
                return measureDataPath(
                    { ns: region.pop.ns, url: `http://${urlHost(spec.meshAddress)}:${spec.port}/` },
                    { ns: region.client.ns, url: `http://${urlHost(labReport.anycast.address)}/`, hostHeader: labReport.anycast.hostname },
                    { repeats },
                );
            });
            log(`  direct over the mesh: ${formatSummary(dataPath.direct.rps, "req/s")}, p50 ${formatSummary(dataPath.direct.p50Ms, "ms", 2)}, p99 ${formatSummary(dataPath.direct.p99Ms, "ms", 2)}`);
            log(`  through anycast + PoP: ${formatSummary(dataPath.anycast.rps, "req/s")}, p50 ${formatSummary(dataPath.anycast.p50Ms, "ms", 2)}, p99 ${formatSummary(dataPath.anycast.p99Ms, "ms", 2)}`);
            log(`  ratio anycast/direct: ${dataPath.rpsRatio.toFixed(2)} × throughput, ${dataPath.p50Ratio.toFixed(2)} × median latency`);
        } finally {
            await labModule.teardownLab(log);
        }
        profiles = await timed("link loss per provider profile, a lab each", () => measureProfiles(opts.configFile, repeats, log));
    }
    const output = opts.output ?? "BENCHMARKS.md";
    fs.writeFileSync(output, renderBenchmarks({ evaluation, lab, dataPath, profiles }, repeats, opts.configFile));
    log(`wrote ${path.resolve(output)}`);
    return { evaluation, lab, dataPath, profiles };
}

function growthOf(figures: EvaluationFigure[]): string {
    const first = figures[0];
    const last = figures[figures.length - 1];
    const perPopMs = (last.ms.median - first.ms.median) / (last.pops - first.pops);
    const perPopResources = (last.resources - first.resources) / (last.pops - first.pops);
    return `${perPopResources.toFixed(1)} resources and ${perPopMs.toFixed(1)} ms per added PoP ` +
        `(${last.pops}/${first.pops} PoPs: ×${(last.ms.median / first.ms.median).toFixed(1)} time, ×${(last.resources / first.resources).toFixed(1)} resources)`;
}

function renderBenchmarks(result: BenchResult, repeats: number, configFile: string): string {
    const lines = [
        "# Benchmarks",
        "",
        `Measured by \`npm run bench\` (\`anycast bench --config ${path.basename(configFile)}\`) on ` +
            `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${os.platform()} ${os.release()}, node ${process.version}, ` +
            `${new Date().toISOString().slice(0, 10)}. Every figure is min / median / max over ${repeats} runs. ` +
            "The machine is shared, so read the ratios more than the absolute numbers.",
        "",
        "## Program evaluation",
        "",
        "Method: `stacks/network` runs in-process under Pulumi's mocks (`harness/stackrun.ts`), with the lab stack's",
        "settings and N PoPs in N Vultr regions; the time covers config validation, every component, every",
        "render and every resource registration. One warm-up run first (SDK loading).",
        "",
        "| PoPs | resources | evaluation time (ms) |",
        "|---:|---:|---|",
        ...result.evaluation.map((f) => `| ${f.pops} | ${f.resources} | ${formatSummary(f.ms, "")} |`),
        "",
        `Growth: ${growthOf(result.evaluation)}.`,
        "",
    ];
    if (result.lab) lines.push(...renderLabSection(result.lab), ...renderIdleCost(result.lab), ...renderOriginFailover(result.lab.originFailover, "the lab stack"));
    else lines.push("## Lab figures", "", "Not measured in this run (`--skip-lab`).", "");
    if (result.lab && result.profiles) lines.push(...renderProfiles(result.lab, result.profiles));
    if (result.lab) lines.push(...renderSafety(result.lab));
    if (result.dataPath) lines.push(...renderDataPath(result.dataPath));
    return lines.join("\n");
}

// Milliseconds: a crash fails over in a few ms, a link-loss recovery takes seconds; one unit for both.
const msOf = (s: Summary | undefined) => s ? formatSummary(s, "ms") : "n/a";

/**
 * What the daemons cost while nothing happens (lab/resources.ts), beside the last figures of the
 * bash health agent that 0.2 replaced (measured the same way on 43c83ba: `ps`-based, idle kept lab).
 */
export function renderIdleCost(lab: Pick<LabReport, "idleCost">): string[] {
    const c = lab.idleCost;
    if (!c) return [];
    const pops = [...new Set(c.daemons.map((d) => d.pop))];
    const cell = (pop: string, daemon: string) => {
        const d = c.daemons.find((x) => x.pop === pop && x.daemon === daemon);
        return d ? `${d.cpuPercent.toFixed(1)}% / ${(d.rssKiB / 1024).toFixed(1)} MiB` : "n/a";
    };
    return [
        "## Idle cost of the daemons (the lab)",
        "",
        `Method: after set-up, ${(c.sampledMs / 1000).toFixed(0)} s without traffic; CPU as a share of one core and resident memory of each PoP's`,
        "processes, from /proc (lab/resources.ts); the health agent checks every `health.interval` (0.1 s in the lab stack).",
        "",
        `| PoP | ${DAEMONS.join(" | ")} |`,
        `|---|${DAEMONS.map(() => "---").join("|")}|`,
        ...pops.map((pop) => `| ${pop} | ${DAEMONS.map((d) => cell(pop, d)).join(" | ")} |`),
        "",
        `Processes started on the whole machine: ${c.forksPerSecond.toFixed(1)}/s (the lab's own included).`,
        "The bash agent before 0.2, in an idle kept lab on the same stack: 14.6% of a core per PoP (it and its `curl`s),",
        "67 processes started per second on the machine.",
        "",
    ];
}

function renderLabSection(lab: LabReport): string[] {
    return [
        "## Failover (the lab)",
        "",
        "Method: `anycast lab` on the lab stack (three PoPs in three regions, emulated Vultr edges with BFD,",
        "transits, one client per region). A client in the affected region requests the anycast address",
        "every few tens of ms; failover = first good answer from another PoP after the fault's command started;",
        "recovery = first answer from the region's own PoP after the repair's command started. Faults rotate over the PoPs.",
        "",
        "| experiment | fault | failover (min / median / max) | recovery | failed requests | anchor |",
        "|---|---|---|---|---:|---|",
        ...lab.experiments.map((e) => `| ${e.title} | ${e.fault} | ${msOf(e.failover)} | ${msOf(e.recovery)} | ${e.failedTotal} | ${ANCHORS[e.id]} |`),
        "",
    ];
}

/**
 * The origin faults (lab/origin-experiments.ts) as a BENCHMARKS.md section; `source` says which
 * stack file they ran on.
 */
export function renderOriginFailover(r: OriginFailoverReport | undefined, source: string): string[] {
    if (!r || (!r.outage && !r.tunnelCut && !r.originDown)) return [];
    const rows: string[] = [];
    if (r.outage) {
        const o = r.outage;
        rows.push(`| global origin outage | every origin's HTTP service frozen (SIGSTOP) for 3 s, ${o.runs.length} times in a row | ` +
            `first 503 from every region's own PoP ${msOf(o.first503)}; a 503 takes ${msOf(o.answer503)} | served again ${msOf(o.recovery)} after the thaw | ` +
            `${o.noAnswerTotal} (requests in flight when the origins froze) | ${o.withdrawals} withdrawals; ${o.servesAfter ? "serving after the last outage, none held down" : "NOT serving afterwards"}; ` +
            `the first three within ${o.firstThreeWithinS?.toFixed(1) ?? "n/a"} s |`);
    }
    if (r.tunnelCut) {
        const t = r.tunnelCut;
        rows.push(`| a PoP's direct tunnels cut (origins up) | WireGuard between one PoP and every origin silently dropped, ${t.runs.length} runs over the PoPs | ` +
            `served through another PoP's relay after ${msOf(t.reroute)}; added latency ${msOf(t.added)} per request | ` +
            `${msOf(stats(t.runs.filter((x) => x.recoveryMs !== undefined).map((x) => x.recoveryMs!)))} back on the own tunnels | ${t.failedTotal} | ` +
            `${t.runs.filter((x) => x.stayedAnnounced).length} of ${t.runs.length} runs stayed announced |`);
    }
    if (r.originDown) {
        const d = r.originDown;
        rows.push(`| one of two origins down | the origin serving most regions frozen, ${d.runs.length} runs | ` +
            `every region served from the other after ${msOf(d.switchTime)} | paths up again ${msOf(d.recovery)} after the thaw | ${d.failedTotal} | ` +
            `${d.runs.filter((x) => x.notAnnounced.length === 0).length} of ${d.runs.length} runs without a withdrawal |`);
    }
    return [
        "## Origin faults (the lab)",
        "",
        `Method: \`anycast lab\` on ${source} (lab/origin-experiments.ts). Clients in every region request the anycast`,
        "address every 50 ms (the cut PoP's region every 20 ms); times count from the start of the fault's or the",
        "repair's command. A failed request is one without a good answer (a 503 during a global outage is the",
        "expected answer and counts apart).",
        "",
        "| experiment | fault | failover (min / median / max) | recovery | failed requests | announcements |",
        "|---|---|---|---|---:|---|",
        ...rows,
        ...r.skipped.map((s) => `| ${s.id} | not run: ${s.why} | | | | |`),
        "",
    ];
}

function renderProfiles(lab: LabReport, profiles: ProfileFigure[]): string[] {
    const bfd = lab.experiments.find((e) => e.id === "linkLoss");
    const rows = [
        `| BFD 100 ms × 3, hold 3 s (the lab stack) | ${msOf(bfd?.failover)} | ${msOf(bfd?.recovery)} | ${bfd?.failedTotal ?? "n/a"} | upstreams that run BFD: your own routers, many colo and IX set-ups |`,
        ...profiles.map((p) => p.linkLoss
            ? `| ${p.profile.title} | ${msOf(p.linkLoss.failover)} | ${msOf(p.linkLoss.recovery)} | ${p.linkLoss.failedTotal} | ${p.profile.applies} |`
            : `| ${p.profile.title} | not measured: ${p.error} | | | ${p.profile.applies} |`),
    ];
    return [
        "## Link loss per provider profile",
        "",
        "Method: the link-loss experiment above (the edge silently drops everything on the PoP's link), each profile",
        "in a lab of its own with every PoP's `bgp` block set as shown. Without BFD only the hold timer notices a",
        "silent failure: failover is the time left on it (between 2/3 and all of the hold time, as keepalives come",
        "every third of it) plus the upstream's reaction. A crash, an origin loss and a drain do not depend on",
        "these timers (the TCP close and the health agent act at once).",
        "",
        "| profile | failover (min / median / max) | recovery | failed requests | applies to |",
        "|---|---|---|---:|---|",
        ...rows,
        "",
    ];
}

function renderSafety(lab: LabReport): string[] {
    const p = lab.policyChange;
    const f = lab.flapDamping;
    if (!p && !f) return [];
    const out = ["## Routing changes and flap damping (the lab, one run each)", ""];
    if (p) {
        const [apply, revert] = p.steps;
        out.push(p.error ? `- Policy change: not measured (${p.error}).` :
            `- Policy change (${p.edit}): \`birdc configure\` ${ms(apply?.configureMs)}, the transit held the new route ` +
            `${ms(apply?.seenAtTransitMs)} later (AS path \`${apply?.transitAsPath}\`); revert ${ms(revert?.configureMs)} + ${ms(revert?.seenAtTransitMs)}. ` +
            `BGP session ${p.sessionKept ? "kept" : "RESET"}: ${p.notEstablished} of ${p.polls} polls not Established, uptime unchanged at both ends.`);
    }
    if (f) {
        out.push(f.error ? `- Flap damping: not measured (${f.error}).` :
            `- Flap damping (maxWithdrawalsPerHour ${f.maxWithdrawalsPerHour}): held down after ${f.flaps} flaps, withdrawn for ` +
            `${ms(f.watchedMs)} while healthy (${f.edgeRoutesWhileHeld} routes at the edge); the upstream received ${f.upstream.withdrawals} withdrawals ` +
            `and ${f.upstream.announcements} announcements, a damping penalty of ${f.penalty} against the suppress threshold ${f.suppressThreshold}; ` +
            `\`anycast-health release\` brought it back in ${ms(f.releasedAfterMs)}.`);
    }
    out.push("");
    return out;
}

function renderDataPath(d: DataPathFigures): string[] {
    const row = (name: string, p: DataPathFigures["direct"]) =>
        `| ${name} | ${formatSummary(p.rps, "")} | ${formatSummary(p.p50Ms, "", 2)} | ${formatSummary(p.p99Ms, "", 2)} | ${p.errors} |`;
    return [
        "## Data path",
        "",
        `Method: wrk (1 thread, ${d.connections} connections, ${d.seconds} s per run, runs alternating between the two paths)`,
        "against the lab origin's HTTP server. Direct: from a PoP namespace over WireGuard (wireguard-go,",
        "userspace) to the origin. Anycast: from a region's client through transit, emulated Vultr edge,",
        "the PoP's nginx, and the same WireGuard hop. Everything shares 2 CPU cores, so this compares the",
        "paths' costs, not what a real PoP does.",
        "",
        "| path | requests/s | p50 latency (ms) | p99 latency (ms) | errors |",
        "|---|---|---|---|---:|",
        row("direct over the mesh", d.direct),
        row("through anycast + PoP", d.anycast),
        "",
        `Ratio (medians, anycast / direct): ${d.rpsRatio.toFixed(2)} × throughput, ${d.p50Ratio.toFixed(2)} × median latency.`,
        "",
    ];
}
