/**
 * Origin failover in the lab: the faults of issue 12, each run 5 times.
 *
 *  - global origin outage: every origin's HTTP service frozen (SIGSTOP) at once. Every PoP must
 *    stay announced and answer at once with the 503 page; no withdrawal, so no flap damping; the
 *    runs follow each other within a minute, and the network serves once the origins are back.
 *  - a PoP's direct tunnels cut: WireGuard between one PoP and every origin silently dropped, the
 *    origins still up. The PoP must stay announced and serve through another PoP's relay; the
 *    report gives the time to reroute and the latency the relay adds.
 *  - one of two origins down: the origin serving most regions frozen. Every PoP must serve from
 *    the other; the report gives the switch time.
 *
 * Times count from the start of the fault's or the repair's command, as in experiments.ts.
 */
import { originConnectTimeoutMs } from "../components/core/render/nginx";
import type { PopRenderInput } from "../components/core/model";
import { roundMs } from "../components/core/health/timing";
import type { LabPrometheus } from "./monitoring";
import { describeAgent, LabRuntime } from "./boot";
import { nowMs, nsRun, sleep, waitFor } from "./exec";
import { failureSummary, Prober, ProbeSample } from "./probe";
import { stats, Summary as Stats } from "./stats";
import { ms, table, wrap } from "./text";
import { probeTimeline, ProbeTimeline } from "./timeline";
import { LabRegion } from "./topology";

export const ORIGIN_EXPERIMENT_IDS = ["originOutage", "tunnelCut", "originDown"] as const;
export type OriginExperimentId = (typeof ORIGIN_EXPERIMENT_IDS)[number];

/** How long each fault is held once its effect is in place. */
const OUTAGE_MS = 3000;
const CUT_HOLD_MS = 2500;
const DOWN_HOLD_MS = 2500;
const CUT_TABLE = "anycast_lab_tunnel_cut";
/** How often each region's client sends a request in each experiment. */
const OUTAGE_PROBE_MS = 50;
const CUT_PROBE_MS = 20;
const DOWN_PROBE_MS = 50;

export interface OutageRun {
    /** ms from the first outage's start: the runs follow each other within a minute. */
    startedAtMs: number;
    /** The slowest region's first 503 from its own PoP, ms after the freeze. */
    first503Ms?: number;
    /** Median time a 503 took to come back (request sent to answer). */
    answer503Ms?: number;
    answered503: number;
    /** Requests without any answer (timeouts: the ones caught in flight by the freeze). */
    noAnswer: number;
    /** The slowest region's first 200 from its own PoP after the thaw. */
    recoveryMs?: number;
    /** PoPs whose agent left "announced" at any poll during the run. */
    notAnnounced: string[];
    /** Withdrawals the agents counted during the run (flap damping). */
    withdrawals: number;
    error?: string;
    /** Every region's client together, from shortly before the freeze to the end of the run (lab/timeline.ts). */
    timeline?: ProbeTimeline;
}

export interface TunnelCutRun {
    pop: string;
    region: string;
    /** ms from the cut to the first answer from the own PoP relayed through another. */
    rerouteMs?: number;
    relayedBy?: string;
    /** Median request time through the direct tunnel before the cut, and through the relay. */
    directMs?: number;
    relayedMs?: number;
    /** Answers from another PoP while the cut lasted (must be 0: the PoP stays in). */
    servedByOthers: number;
    stayedAnnounced: boolean;
    failed: number;
    /** Of `failed`, those sent after the cut began (the rest were in flight when it began). */
    failedAfterCut: number;
    /** What the failed requests saw, as "2x timeout" (no good answer within cutAnswerMs). */
    failures?: string;
    /** Requests answered well but later than the lab's usual probe wait (passed on to a relay). */
    late: number;
    /** The slowest good answer from the cut to the repair, ms. */
    slowestMs?: number;
    /** ms from the repair to the first answer through the direct tunnel again. */
    recoveryMs?: number;
    error?: string;
    /** The region's client, from shortly before the cut to the end of the run (lab/timeline.ts). */
    timeline?: ProbeTimeline;
}

export interface OriginDownRun {
    origin: string;
    /** Regions that were served by the frozen origin. */
    affected: string[];
    /** The slowest affected region's first answer from the other origin, ms after the freeze. */
    switchMs?: number;
    servedBy: string[];
    notAnnounced: string[];
    failed: number;
    /** ms from the thaw until every PoP's agent has the origin's direct path up again. */
    recoveryMs?: number;
    error?: string;
    /** Every region's client together, from shortly before the freeze to the end of the run (lab/timeline.ts). */
    timeline?: ProbeTimeline;
}

export interface OriginFailoverReport {
    outage?: {
        runs: OutageRun[];
        first503?: Stats;
        answer503?: Stats;
        recovery?: Stats;
        noAnswerTotal: number;
        withdrawals: number;
        /** Seconds from the first outage's start to the third one's end. */
        firstThreeWithinS?: number;
        /** After the last outage every region is served by its own PoP with 200, no PoP held down. */
        servesAfter: boolean;
        heldDown: string[];
    };
    tunnelCut?: { runs: TunnelCutRun[]; reroute?: Stats; added?: Stats; relayed?: Stats; failedTotal: number; failedAfterCutTotal: number; answerMs: number };
    originDown?: { runs: OriginDownRun[]; switchTime?: Stats; recovery?: Stats; failedTotal: number };
    /** Experiments this config cannot run, and why (one origin, no relay). */
    skipped: Array<{ id: OriginExperimentId; why: string }>;
}

/**
 * How long the agents may take to act on a fault: `ticks` rounds of checks and a margin for a
 * stalling machine. A round lasts interval + timeout against a frozen origin, from the running
 * stack's health settings (which the lab widens on a machine that stalls, lab/stalls.ts), plus
 * what a round costs beyond the interval on this machine, as the agents report it (`tick_ms`):
 * on a loaded machine a round's own work takes longer than its checks.
 */
async function decideMs(lab: LabRuntime, ticks: number): Promise<number> {
    const h = lab.stack.spec.health;
    let overheadMs = 0;
    for (const r of lab.design.regions) {
        const tick = (await lab.agentStatus(r.pop.name))?.tick_ms ?? 0;
        overheadMs = Math.max(overheadMs, tick - h.interval * 1000);
    }
    return Math.round(ticks * ((h.interval + h.timeout) * 1000 + overheadMs)) + 10_000;
}

/**
 * Rounds of checks until a PoP acts on an origin fault: `fall` failed checks take its direct
 * paths down, and one more round to write that. In a global outage its relay paths fall only
 * after the peers have reported theirs down: `fall` more, and a round for the fetch.
 */
function roundsToAct(lab: LabRuntime, throughPeers: boolean): number {
    const fall = lab.stack.spec.health.fall;
    return throughPeers ? 2 * fall + 2 : fall + 2;
}

/** The agents of these regions' PoPs, as they see things now: for a problem's message. */
async function describeAgents(lab: LabRuntime, regions: LabRegion[]): Promise<string> {
    const lines = await Promise.all(regions.map(async (r) => describeAgent(r.pop.name, await lab.agentStatus(r.pop.name))));
    return lines.join("; ");
}

/** A progress line, wrapped at the report's 100 columns like the lab's other experiment lines. */
function logWrapped(log: (line: string) => void, text: string): void {
    for (const line of wrap(text, "  ", "      ")) log(line);
}

function median(values: number[]): number | undefined {
    if (values.length === 0) return undefined;
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function originServer(lab: LabRuntime, name: string) {
    const child = lab.originServers.get(name);
    if (!child?.pid || child.exitCode !== null) throw new Error(`the HTTP service of origin ${name} is not running`);
    return child.pid;
}

/** Freeze (SIGSTOP) or continue (SIGCONT) origins' HTTP services: a hung origin, not a refusing one. */
function freeze(lab: LabRuntime, names: string[], frozen: boolean): void {
    for (const name of names) process.kill(originServer(lab, name), frozen ? "SIGSTOP" : "SIGCONT");
}

/** Polls every PoP's agent while `during` runs; the PoPs that were not announced at some poll. */
async function watchAnnounced<T>(lab: LabRuntime, during: () => Promise<T>): Promise<{ result: T; notAnnounced: string[] }> {
    const notAnnounced = new Set<string>();
    let watching = true;
    const watch = (async () => {
        while (watching) {
            for (const r of lab.design.regions) {
                const s = await lab.agentStatus(r.pop.name);
                if (s && s.state !== "announced") notAnnounced.add(r.pop.name);
            }
            await sleep(100);
        }
    })();
    try {
        return { result: await during(), notAnnounced: [...notAnnounced] };
    } finally {
        watching = false;
        await watch;
    }
}

async function withdrawalsNow(lab: LabRuntime): Promise<number> {
    let n = 0;
    for (const r of lab.design.regions) n += (await lab.agentStatus(r.pop.name))?.withdrawals_last_hour ?? 0;
    return n;
}

function probersFor(lab: LabRuntime, regions: LabRegion[], intervalMs: number, timeoutMs: number = lab.probeTimeoutMs): Prober[] {
    const target = { address: lab.stack.spec.address.toString(), host: lab.stack.spec.frontDoor.hostname };
    return regions.map((r) => new Prober(r.client.ns, target, intervalMs, timeoutMs));
}

/**
 * How long a tunnel-cut probe waits for its answer. A PoP whose tunnels are cut stays announced,
 * so nothing is blackholed: a request that meets a dead path is passed on to a relay, late but
 * not lost. It is passed on after nginx's connect timeout (the relays are the backups), or, sent
 * on a kept-alive connection, once the agent finds the path down and aborts the connection:
 * `fall` failed checks and a round to act. A failed request is one with no good answer by then;
 * the late ones are reported apart (late, slowest).
 */
export function cutAnswerMs(lab: Pick<LabRuntime, "probeTimeoutMs">, spec: Pick<PopRenderInput, "health">): number {
    const h = spec.health;
    const agentMs = (h.fall + 1) * roundMs({ intervalMs: h.interval * 1000, timeoutMs: h.timeout * 1000 });
    return lab.probeTimeoutMs + Math.max(originConnectTimeoutMs(spec), agentMs);
}

/**
 * Every region steadily served (5 in a row) by its own PoP, matching `also`, within 30 s of its
 * prober's first answer: a prober is a process of its own, and on a loaded machine it takes
 * seconds to start.
 */
async function steady(probers: Prober[], regions: LabRegion[], also: (s: ProbeSample) => boolean = () => true): Promise<void> {
    const since = nowMs();
    await Promise.all(regions.map(async (r, i) => {
        const first = await probers[i].waitFor(since, () => true, 60_000);
        if (!first) throw new Error(`region ${r.region}: its client's prober answered nothing within 60 s of its start`);
        if (!await probers[i].waitForStreak(since, 5, (s) => s.ok && s.pop === r.pop.name && also(s), 30_000)) {
            const last = probers[i].samples.slice(-3).map((s) => (s.ok ? `${s.pop} via ${s.relay ?? "-"} from ${s.origin}` : s.error ?? `status ${s.status}`));
            throw new Error(`region ${r.region} is not steadily served by its own PoP (last: ${last.join(", ") || "no answers"})`);
        }
    }));
}

async function outageRun(lab: LabRuntime, firstStart: number | undefined, prometheus?: LabPrometheus): Promise<OutageRun> {
    const regions = lab.design.regions;
    const origins = lab.design.origins.map((o) => o.host.name);
    const run: OutageRun = { startedAtMs: 0, answered503: 0, noAnswer: 0, notAnnounced: [], withdrawals: 0 };
    const probers = probersFor(lab, regions, OUTAGE_PROBE_MS);
    let frozen = false;
    // When the freeze and the thaw started (epoch ms), for the run's timeline.
    const at: { fault?: number; repair?: number } = {};
    try {
        await steady(probers, regions);
        const before = await withdrawalsNow(lab);
        // Every PoP stays announced and answers 503: the one alert is that no PoP reaches an origin.
        const alerts = prometheus?.beginCheck("Global origin outage", undefined, [{ alert: "AnycastNoOriginReachable" }]);
        const t0 = at.fault = nowMs();
        run.startedAtMs = firstStart === undefined ? 0 : t0 - firstStart;
        const watched = await watchAnnounced(lab, async () => {
            freeze(lab, origins, true);
            frozen = true;
            const bound = await decideMs(lab, roundsToAct(lab, true));
            const firsts = await Promise.all(regions.map((r, i) => probers[i].waitFor(t0, (s) => s.status === 503 && s.pop === r.pop.name, bound)));
            const missing = regions.filter((_, i) => !firsts[i]).map((r) => r.region);
            if (missing.length > 0) {
                throw new Error(`no 503 from the own PoP in ${missing.join(", ")} within ${ms(bound)} of the outage ` +
                    `(${await describeAgents(lab, regions.filter((r) => missing.includes(r.region)))})`);
            }
            run.first503Ms = Math.max(...firsts.map((s) => s!.done - t0));
            await sleep(Math.max(0, t0 + OUTAGE_MS - nowMs()));
            await alerts?.hold();
            const t1 = at.repair = nowMs();
            freeze(lab, origins, false);
            frozen = false;
            const backs = await Promise.all(regions.map((r, i) => probers[i].waitFor(t1, (s) => s.ok && s.pop === r.pop.name, 15_000)));
            const stuck = regions.filter((_, i) => !backs[i]).map((r) => r.region);
            if (stuck.length > 0) throw new Error(`${stuck.join(", ")} not served by the own PoP within 15 s of the origins' return`);
            run.recoveryMs = Math.max(...backs.map((s) => s!.done - t1));
            return { t1, end: Math.max(...backs.map((s) => s!.done)) };
        });
        run.notAnnounced = watched.notAnnounced;
        await sleep(lab.probeTimeoutMs + 50);
        const during = probers.flatMap((p) => p.samples.filter((s) => s.sent >= t0 - lab.probeTimeoutMs && s.sent < watched.result.end));
        const answers503 = during.filter((s) => s.status === 503);
        run.answered503 = answers503.length;
        run.answer503Ms = median(answers503.map((s) => s.done - s.sent));
        run.noAnswer = during.filter((s) => s.status === undefined).length;
        run.withdrawals = (await withdrawalsNow(lab)) - before;
        await alerts?.finish();
    } catch (err) {
        run.error = (err as Error).message.split("\n")[0];
    } finally {
        if (frozen) freeze(lab, origins, false);
        await Promise.all(probers.map((p) => p.stop()));
        if (at.fault !== undefined) run.timeline = probeTimeline(probers.map((p) => p.samples), { intervalMs: OUTAGE_PROBE_MS, faultAt: at.fault, repairAt: at.repair });
    }
    return run;
}

/** Silently drop WireGuard between the PoP and every origin (both ways), or lift that. */
async function cutTunnels(lab: LabRuntime, r: LabRegion, cut: boolean): Promise<void> {
    if (!cut) {
        await nsRun(r.pop.ns, "nft", ["delete", "table", "inet", CUT_TABLE]);
        return;
    }
    const addresses = lab.design.origins.map((o) => o.address).join(", ");
    const port = lab.stack.spec.mesh.port;
    await nsRun(r.pop.ns, "nft", ["-f", "-"], {
        input: [
            `table inet ${CUT_TABLE} {`,
            `  chain out { type filter hook output priority -400; policy accept; ip6 daddr { ${addresses} } udp dport ${port} drop; }`,
            `  chain in { type filter hook input priority -400; policy accept; ip6 saddr { ${addresses} } udp sport ${port} drop; }`,
            "}",
        ].join("\n"),
    });
}

async function tunnelCutRun(lab: LabRuntime, r: LabRegion, prometheus?: LabPrometheus): Promise<TunnelCutRun> {
    const run: TunnelCutRun = { pop: r.pop.name, region: r.region, servedByOthers: 0, stayedAnnounced: false, failed: 0, failedAfterCut: 0, late: 0 };
    const answerMs = cutAnswerMs(lab, lab.stack.spec);
    const [prober] = probersFor(lab, [r], CUT_PROBE_MS, answerMs);
    let cut = false;
    const at: { fault?: number; repair?: number } = {};
    try {
        await steady([prober], [r], (s) => s.relay === undefined);
        // The case is a PoP whose relays work when its tunnels break. After an earlier fault (the
        // global outage runs just before) its agent brings the relay paths back only as it asks
        // the other PoPs again (every quietAskMs while nothing is wrong, `rise` times): wait for that.
        await waitFor(`${r.pop.name}'s agent to find its relay paths up`, async () => {
            const paths = (await lab.agentStatus(r.pop.name))?.paths ?? [];
            return paths.some((p) => p.kind === "relay") && paths.every((p) => p.kind !== "relay" || p.up) ? true : undefined;
        }, 30_000, 100).catch(async () => {
            throw new Error(`${r.pop.name}'s relay paths did not come up within 30 s (${await describeAgents(lab, [r])})`);
        });
        await sleep(500);
        // Prometheus on the origin scrapes through the tunnels that are cut: it loses the PoP.
        const alerts = prometheus?.beginCheck("Tunnels cut", r.pop.name, [{ alert: "AnycastPopUnreachable", pop: r.pop.name }]);
        const t0 = at.fault = nowMs();
        const direct = prober.samples.filter((s) => s.ok && s.pop === r.pop.name && s.relay === undefined && s.done > t0 - 1500);
        run.directMs = median(direct.map((s) => s.done - s.sent));
        const watched = await watchAnnounced(lab, async () => {
            await cutTunnels(lab, r, true);
            cut = true;
            const bound = await decideMs(lab, roundsToAct(lab, false));
            const relayed = await prober.waitFor(t0, (s) => s.ok && s.pop === r.pop.name && s.relay !== undefined, bound);
            if (!relayed) throw new Error(`${r.pop.name} did not serve through another PoP within ${ms(bound)} of the cut (${await describeAgents(lab, [r])})`);
            run.rerouteMs = relayed.done - t0;
            run.relayedBy = relayed.relay;
            await sleep(CUT_HOLD_MS);
            await alerts?.hold();
            const t1 = at.repair = nowMs();
            const through = prober.samples.filter((s) => s.ok && s.pop === r.pop.name && s.relay !== undefined && s.sent >= relayed.done && s.done <= t1);
            run.relayedMs = median(through.map((s) => s.done - s.sent));
            run.servedByOthers = prober.samples.filter((s) => s.sent >= t0 && s.done <= t1 && s.pop !== undefined && s.pop !== r.pop.name).length;
            await cutTunnels(lab, r, false);
            cut = false;
            const back = await prober.waitFor(t1, (s) => s.ok && s.pop === r.pop.name && s.relay === undefined, 30_000);
            if (!back) throw new Error(`${r.pop.name} did not use its own tunnels again within 30 s of the repair`);
            run.recoveryMs = back.done - t1;
            return back.done;
        });
        run.stayedAnnounced = !watched.notAnnounced.includes(r.pop.name);
        await sleep(answerMs + 50);
        const during = prober.samples.filter((s) => s.sent >= t0 - answerMs && s.sent < watched.result);
        const failed = during.filter((s) => !s.ok);
        run.failed = failed.length;
        run.failedAfterCut = failed.filter((s) => s.sent >= t0).length;
        run.failures = failureSummary(failed);
        const answered = during.filter((s) => s.ok);
        run.late = answered.filter((s) => s.done - s.sent > lab.probeTimeoutMs).length;
        run.slowestMs = answered.length > 0 ? Math.max(...answered.map((s) => s.done - s.sent)) : undefined;
        await alerts?.finish();
    } catch (err) {
        run.error = (err as Error).message.split("\n")[0];
    } finally {
        if (cut) await cutTunnels(lab, r, false).catch(() => undefined);
        await prober.stop();
        if (at.fault !== undefined) run.timeline = probeTimeline([prober.samples], { intervalMs: CUT_PROBE_MS, faultAt: at.fault, repairAt: at.repair });
    }
    return run;
}

async function originDownRun(lab: LabRuntime, prometheus?: LabPrometheus): Promise<OriginDownRun> {
    const regions = lab.design.regions;
    const run: OriginDownRun = { origin: "", affected: [], servedBy: [], notAnnounced: [], failed: 0 };
    const probers = probersFor(lab, regions, DOWN_PROBE_MS);
    let frozen = false;
    const at: { fault?: number; repair?: number } = {};
    try {
        await steady(probers, regions, (s) => s.origin !== undefined);
        // The origin that serves the most regions right now goes down.
        const current = regions.map((_, i) => probers[i].samples.filter((s) => s.ok).slice(-1)[0]?.origin ?? "");
        const counts = new Map<string, number>();
        for (const o of current) counts.set(o, (counts.get(o) ?? 0) + 1);
        run.origin = [...counts].sort((a, b) => b[1] - a[1])[0][0];
        const affected = regions.filter((_, i) => current[i] === run.origin);
        run.affected = affected.map((r) => r.region);
        // The other origins serve: every PoP still reaches one, nothing pages.
        const alerts = prometheus?.beginCheck("One origin down", undefined, []);
        const t0 = at.fault = nowMs();
        const watched = await watchAnnounced(lab, async () => {
            freeze(lab, [run.origin], true);
            frozen = true;
            const bound = await decideMs(lab, roundsToAct(lab, false));
            const switched = await Promise.all(regions.map((r) => probers[regions.indexOf(r)]
                .waitFor(t0, (s) => s.ok && s.pop === r.pop.name && s.origin !== undefined && s.origin !== run.origin, bound)));
            const missing = regions.filter((_, i) => !switched[i]).map((r) => r.region);
            if (missing.length > 0) {
                throw new Error(`${missing.join(", ")} not served by another origin within ${ms(bound)} ` +
                    `(${await describeAgents(lab, regions.filter((r) => missing.includes(r.region)))})`);
            }
            run.servedBy = [...new Set(switched.map((s) => s!.origin!))];
            run.switchMs = Math.max(0, ...affected.map((r) => switched[regions.indexOf(r)]!.done - t0));
            await sleep(DOWN_HOLD_MS);
            await alerts?.hold();
            const t1 = at.repair = nowMs();
            freeze(lab, [run.origin], false);
            frozen = false;
            await waitFor(`every PoP's path to ${run.origin} up again`, async () => {
                for (const r of regions) {
                    const s = await lab.agentStatus(r.pop.name) as { paths?: Array<{ name: string; up: boolean }> } | undefined;
                    if (!s?.paths?.some((p) => p.name === run.origin && p.up)) return false;
                }
                return true;
            }, 15_000, 20);
            run.recoveryMs = nowMs() - t1;
            return nowMs();
        });
        run.notAnnounced = watched.notAnnounced;
        await sleep(lab.probeTimeoutMs + 50);
        run.failed = probers.flatMap((p) => p.samples.filter((s) => !s.ok && s.sent >= t0 - lab.probeTimeoutMs && s.sent < watched.result)).length;
        await alerts?.finish();
    } catch (err) {
        run.error = (err as Error).message.split("\n")[0];
    } finally {
        if (frozen) freeze(lab, [run.origin], false);
        await Promise.all(probers.map((p) => p.stop()));
        if (at.fault !== undefined) run.timeline = probeTimeline(probers.map((p) => p.samples), { intervalMs: DOWN_PROBE_MS, faultAt: at.fault, repairAt: at.repair });
    }
    return run;
}

export interface OriginExperimentOptions {
    repeats: number;
    /** The lab's Prometheus: each experiment's first run is held for its alerts and checked. */
    prometheus?: LabPrometheus;
    only?: OriginExperimentId[];
    log: (line: string) => void;
}

export async function runOriginExperiments(lab: LabRuntime, opts: OriginExperimentOptions): Promise<OriginFailoverReport> {
    const report: OriginFailoverReport = { skipped: [] };
    const spec = lab.stack.spec;
    const wanted = (id: OriginExperimentId) => !opts.only || opts.only.includes(id);
    const regions = lab.design.regions;
    if (wanted("originOutage")) {
        const runs: OutageRun[] = [];
        let firstStart: number | undefined;
        for (let i = 0; i < opts.repeats; i++) {
            const started = nowMs();
            const run = await outageRun(lab, firstStart, opts.prometheus);
            firstStart ??= started + run.startedAtMs;
            runs.push(run);
            logWrapped(opts.log, `global origin outage ${i + 1}/${opts.repeats} at +${(run.startedAtMs / 1000).toFixed(1)} s: ` + (run.error ? `FAILED: ${run.error}`
                : `503 from every PoP after ${ms(run.first503Ms)} (answered in ${ms(run.answer503Ms)}), served again after ${ms(run.recoveryMs)}; ` +
                  `withdrawals ${run.withdrawals}, not announced: ${run.notAnnounced.join(", ") || "none"}, no answer ${run.noAnswer}`));
        }
        const ok = runs.filter((r) => !r.error);
        const third = runs[2];
        const heldDown: string[] = [];
        for (const r of regions) if ((await lab.agentStatus(r.pop.name))?.state === "held-down") heldDown.push(r.pop.name);
        const probers = probersFor(lab, regions, 50);
        let servesAfter = true;
        try {
            await steady(probers, regions);
        } catch {
            servesAfter = false;
        } finally {
            await Promise.all(probers.map((p) => p.stop()));
        }
        report.outage = {
            runs, first503: stats(ok.map((r) => r.first503Ms!)), answer503: stats(ok.map((r) => r.answer503Ms!).filter((v) => v !== undefined)),
            recovery: stats(ok.map((r) => r.recoveryMs!)), noAnswerTotal: runs.reduce((n, r) => n + r.noAnswer, 0),
            withdrawals: runs.reduce((n, r) => n + r.withdrawals, 0),
            firstThreeWithinS: third && !third.error ? (third.startedAtMs + OUTAGE_MS + (third.recoveryMs ?? 0)) / 1000 : undefined,
            servesAfter: servesAfter && heldDown.length === 0, heldDown,
        };
    }
    const noRelay = !spec.failover.relay ? `failover.relay is off${spec.mesh.topology === "hub" ? " (a hub mesh has no tunnels between PoPs)" : ""}`
        : regions.length < 2 ? "a single PoP has no peer to relay through" : undefined;
    if (wanted("tunnelCut") && noRelay) report.skipped.push({ id: "tunnelCut", why: `${noRelay}: a PoP without its tunnels withdraws instead` });
    if (wanted("originDown") && lab.design.origins.length < 2) report.skipped.push({ id: "originDown", why: "the config has one origin" });
    if (wanted("tunnelCut") && !noRelay) {
        const runs: TunnelCutRun[] = [];
        for (let i = 0; i < opts.repeats; i++) {
            const r = regions[i % regions.length];
            const run = await tunnelCutRun(lab, r, opts.prometheus);
            runs.push(run);
            logWrapped(opts.log, `tunnels cut ${i + 1}/${opts.repeats} on ${r.pop.name}: ` + (run.error ? `FAILED: ${run.error}`
                : `relayed via ${run.relayedBy} after ${ms(run.rerouteMs)}, ${ms(run.directMs)} -> ${ms(run.relayedMs)} per request; ` +
                  `${run.stayedAnnounced ? "stayed announced" : "NOT announced throughout"}, other PoPs answered ${run.servedByOthers}; ` +
                  `direct again after ${ms(run.recoveryMs)}; failed requests ${run.failed}, ${run.failedAfterCut} of them sent after the cut` +
                  `${run.failures ? ` (${run.failures})` : ""}; answered late ${run.late}, the slowest after ${ms(run.slowestMs)}`));
        }
        const ok = runs.filter((r) => !r.error);
        report.tunnelCut = {
            runs, reroute: stats(ok.map((r) => r.rerouteMs!)),
            added: stats(ok.filter((r) => r.relayedMs !== undefined && r.directMs !== undefined).map((r) => r.relayedMs! - r.directMs!)),
            relayed: stats(ok.filter((r) => r.relayedMs !== undefined).map((r) => r.relayedMs!)),
            failedTotal: runs.reduce((n, r) => n + r.failed, 0),
            failedAfterCutTotal: runs.reduce((n, r) => n + r.failedAfterCut, 0),
            answerMs: cutAnswerMs(lab, lab.stack.spec),
        };
    }
    if (wanted("originDown") && lab.design.origins.length >= 2) {
        const runs: OriginDownRun[] = [];
        for (let i = 0; i < opts.repeats; i++) {
            const run = await originDownRun(lab, opts.prometheus);
            runs.push(run);
            logWrapped(opts.log, `origin down ${i + 1}/${opts.repeats} (${run.origin || "?"}, serving ${run.affected.join(", ") || "-"}): ` + (run.error ? `FAILED: ${run.error}`
                : `served by ${run.servedBy.join(", ")} after ${ms(run.switchMs)}; not announced: ${run.notAnnounced.join(", ") || "none"}; ` +
                  `its paths up again after ${ms(run.recoveryMs)}; failed requests ${run.failed}`));
        }
        const ok = runs.filter((r) => !r.error);
        report.originDown = {
            runs, switchTime: stats(ok.map((r) => r.switchMs!)), recovery: stats(ok.map((r) => r.recoveryMs!)),
            failedTotal: runs.reduce((n, r) => n + r.failed, 0),
        };
    }
    return report;
}

/** What the report's problems list gets from these experiments. */
export function originFailoverProblems(r: OriginFailoverReport): string[] {
    const problems: string[] = [];
    for (const [i, run] of (r.outage?.runs ?? []).entries()) {
        if (run.error) problems.push(`global origin outage run ${i + 1}: ${run.error}`);
        if (run.notAnnounced.length > 0) problems.push(`global origin outage run ${i + 1}: ${run.notAnnounced.join(", ")} withdrew`);
        if (run.withdrawals > 0) problems.push(`global origin outage run ${i + 1}: ${run.withdrawals} withdrawals (flap damping would count them)`);
    }
    if (r.outage && !r.outage.servesAfter) problems.push(`after the global outages the network does not serve (held down: ${r.outage.heldDown.join(", ") || "none"})`);
    for (const [i, run] of (r.tunnelCut?.runs ?? []).entries()) {
        if (run.error) problems.push(`tunnels cut run ${i + 1} (${run.pop}): ${run.error}`);
        else if (!run.stayedAnnounced) problems.push(`tunnels cut run ${i + 1}: ${run.pop} withdrew instead of relaying`);
    }
    for (const [i, run] of (r.originDown?.runs ?? []).entries()) {
        if (run.error) problems.push(`origin down run ${i + 1} (${run.origin}): ${run.error}`);
        if (run.notAnnounced.length > 0) problems.push(`origin down run ${i + 1}: ${run.notAnnounced.join(", ")} withdrew`);
    }
    return problems;
}

function statsText(s: Stats | undefined): string {
    if (!s) return "n/a";
    return s.n === 1 ? `${ms(s.median)} (one run)` : `${ms(s.min)} / ${ms(s.median)} / ${ms(s.max)}`;
}

export function formatOriginFailover(r: OriginFailoverReport | undefined): string[] {
    if (!r || (!r.outage && !r.tunnelCut && !r.originDown && r.skipped.length === 0)) return [];
    const out = wrap("Origin failover (min / median / max; times from the start of the fault's or the repair's command)");
    const line = (text: string) => out.push(...wrap(text, "  ", "    "));
    if (r.outage) {
        const o = r.outage;
        // The first three outages within a short span are what flap damping would count; fewer runs have no such span.
        const span = o.runs.length >= 3 ? `; the first three within ${o.firstThreeWithinS?.toFixed(1) ?? "n/a"} s` : "";
        line(`Global origin outage: every origin's HTTP service frozen for ${OUTAGE_MS / 1000} s, ${o.runs.length === 1 ? "once" : `${o.runs.length} times`}` +
            `${span}. 503 from every region's own PoP after ` +
            `${statsText(o.first503)}; a 503 took ${statsText(o.answer503)}; served again after ${statsText(o.recovery)}; ` +
            `withdrawals ${o.withdrawals}; no answer (caught in flight by the freeze) ${o.noAnswerTotal}; after the last outage: ` +
            (o.servesAfter ? "every region served by its own PoP, none held down" : `NOT serving (held down: ${o.heldDown.join(", ") || "none"})`));
        out.push(...table(["run", "at", "first 503", "503 took", "503s", "no answer", "recovery", "withdrawals", "withdrew / error"],
            o.runs.map((x, i) => [String(i + 1), `+${(x.startedAtMs / 1000).toFixed(1)} s`, ms(x.first503Ms), ms(x.answer503Ms), String(x.answered503),
                String(x.noAnswer), ms(x.recoveryMs), String(x.withdrawals), x.error ? `ERROR: ${x.error}` : x.notAnnounced.join(", ") || "none"]), "    "));
    }
    if (r.tunnelCut) {
        const t = r.tunnelCut;
        line(`A PoP's tunnels to every origin cut (WireGuard silently dropped, origins up): reroute through another PoP ` +
            `${statsText(t.reroute)}; added latency ${statsText(t.added)} (relayed requests ${statsText(t.relayed)}); failed requests ${t.failedTotal}, of them sent after the cut began ${t.failedAfterCutTotal} ` +
            `(failed: no good answer within ${ms(t.answerMs)}; a request nginx passes on to a relay after a connect timeout is late, not lost). ` +
            `Per run: answers from other PoPs, whether the PoP stayed announced, failed (sent after the cut), late, the slowest answer`);
        out.push(...table(["run", "PoP", "reroute", "via", "direct", "relayed", "others", "stayed", "failed", "late", "slowest", "direct again", "error"],
            t.runs.map((x, i) => [String(i + 1), x.pop, ms(x.rerouteMs), x.relayedBy ?? "none", ms(x.directMs), ms(x.relayedMs), String(x.servedByOthers),
                x.stayedAnnounced ? "yes" : "NO", `${x.failed} (${x.failedAfterCut})`, String(x.late), ms(x.slowestMs), ms(x.recoveryMs),
                x.error ? `ERROR: ${x.error}` : x.failures ?? "none"]), "    "));
    }
    if (r.originDown) {
        const d = r.originDown;
        line(`One of two origins down (its HTTP service frozen): every region served from the other after ${statsText(d.switchTime)}; ` +
            `paths up again ${statsText(d.recovery)} after the thaw; failed requests ${d.failedTotal}`);
        out.push(...table(["run", "origin down", "regions it served", "switch", "served by", "failed", "paths up again", "withdrew / error"],
            d.runs.map((x, i) => [String(i + 1), x.origin, x.affected.join(", ") || "none", ms(x.switchMs), x.servedBy.join(", ") || "none",
                String(x.failed), ms(x.recoveryMs), x.error ? `ERROR: ${x.error}` : x.notAnnounced.join(", ") || "none"]), "    "));
    }
    for (const s of r.skipped) line(`${s.id} not run: ${s.why}`);
    out.push("");
    return out;
}
