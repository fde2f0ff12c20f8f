/**
 * The failure experiments. Each run: a prober in the target region's client namespace is
 * started first and must see the region served by its own PoP; then the fault goes in, and
 * "failover" is the first good answer from another PoP minus the start of the fault's command;
 * then the repair, and "recovery" is the first good answer from the own PoP again minus the
 * start of the repair's command. Runs rotate over the PoPs, so BIRD's doubling error wait time
 * is not what gets measured five times over, and each run ends by releasing the PoP's flap
 * history (flap damping has its own section).
 *
 * Every bound comes from the config being run (BFD or hold time, error wait, health timers,
 * drain), so a stack with a 9 s hold time gets 9 s plus slack, not the lab stack's figures. A
 * region that is not served by its own PoP before a fault stops all experiments with that reason.
 */
import { confirmMs, isolationMs as agentIsolationMs, isolationRounds, roundMs } from "../components/core/health/timing";
import * as fs from "node:fs";
import * as path from "node:path";
import { AnycastSpec, PopSpec } from "../components/core/model";
import { LabRuntime, nsDir } from "./boot";
import { nowMs, nsRun, sleep, waitFor } from "./exec";
import type { AlertKey, LabPrometheus } from "./monitoring";
import { showProtocols } from "./birdc";
import { sampleSession, sessionChanges } from "./session";
import { failureSummary, Prober, resetsAtPathSwitch } from "./probe";
import type { ExperimentReport, ExperimentRun } from "./report";
import { stats } from "./stats";
import { probeTimeline } from "./timeline";
import { LabRegion } from "./topology";
import { ms, wrap } from "./text";

/** How long a fault may take to be noticed and routed around, and why: from the PoP's config. */
export interface Bounds {
    failoverMs: number;
    recoveryMs: number;
    /** What the bounds were derived from, for the report. */
    basis: string;
    /** Set when the config gives the fault no way to be noticed: the experiment is skipped. */
    skip?: string;
}

interface Experiment {
    id: ExperimentReport["id"];
    title: string;
    fault: string;
    repair: string;
    probeIntervalMs: number;
    /** Put the fault in place; resolves when it is. */
    inject(lab: LabRuntime, r: LabRegion): Promise<void>;
    repairIt(lab: LabRuntime, r: LabRegion): Promise<void>;
    bounds(spec: AnycastSpec, pop: PopSpec): Bounds;
    /**
     * The PoP's BGP session stays up through the fault and the repair: the agent withdraws and
     * announces again by switching BIRD's static protocols, so the session's uptime and the
     * routes the edge offered the PoP must not change (no reset, no route refresh).
     */
    keepsSession?: true;
    /**
     * Holds the fault until its consequences have played out (sessions down, agent withdrawn),
     * so that recovery measures the whole way back, not a blip the protocols never noticed.
     */
    settled(lab: LabRuntime, r: LabRegion, bounds: Bounds): Promise<void>;
    /**
     * The alerts the monitoring origin's Prometheus should fire for this fault (lab/monitoring.ts),
     * and none other. It scrapes over the mesh, so a PoP whose link or tunnels are gone is one it
     * cannot reach, whatever else the PoP would have told.
     */
    alerts(r: LabRegion): AlertKey[];
    /** Alerts the fault may fire as well, depending on how long its consequences last (timers of the config). */
    mayAlso?(r: LabRegion): AlertKey[];
}

/**
 * Slack on every bound: process start-up, route propagation through the emulated Internet, and
 * scheduling on a busy shared machine (stalls of a second or more were measured under load).
 */
export const SLACK_MS = 15_000;
/** WireGuard retries a handshake every 5 s; a tunnel that was cut needs one to come back. */
const WIREGUARD_RETRY_MS = 5_000;

/** How long the health agent takes to notice a broken check (fall) or a good one again (rise). */
export function agentMs(spec: AnycastSpec, checks: number): number {
    return checks * spec.health.interval * 1000 + spec.health.timeout * 1000;
}

/** The agent's timing settings for a spec, as its settings file has them. */
function agentTiming(spec: AnycastSpec): { intervalMs: number; timeoutMs: number; fall: number } {
    return { intervalMs: Math.round(spec.health.interval * 1000), timeoutMs: Math.round(spec.health.timeout * 1000), fall: spec.health.fall };
}

/**
 * How long the health agent takes to withdraw a PoP cut off from the mesh whose peers still
 * answer over their public addresses (wg0 down): the agent's own rule
 * (components/core/health/policy.ts: isolationRounds, and confirmMs in a hub mesh).
 */
export function isolationMs(spec: AnycastSpec): number {
    const t = agentTiming(spec);
    if (spec.mesh.topology === "full") return isolationRounds(t) * roundMs(t);
    return t.fall * roundMs(t) + confirmMs(t) + (t.fall + 1) * roundMs(t);
}

/**
 * How long it takes to withdraw a PoP that reaches nobody at all (its link lost): its paths
 * fall, no answer for the agent's isolation time, then `fall` checks more; full mesh only.
 */
export function cutOffMs(spec: AnycastSpec): number {
    const t = agentTiming(spec);
    return t.fall * roundMs(t) + agentIsolationMs(t) + (t.fall + 1) * roundMs(t);
}

/**
 * Whether a PoP cut off from the mesh can tell that from an outage every PoP shares: when another
 * PoP answers, over the mesh or over the public address it gave in its mesh answers. Not with a
 * single PoP (nobody to ask), and not in a hub mesh: the PoPs reach each other only through the
 * hub, which does not forward between them, so no PoP ever hears another (nor learns its public
 * address) and every origin fault counts as global.
 */
export function agentTellsIsolation(spec: AnycastSpec): boolean {
    return spec.pops.length > 1 && spec.mesh.topology !== "hub";
}

/** Why a PoP cannot tell its cut-off from an outage, for the report; undefined when it can. */
export function whyAgentCannotTellIsolation(spec: AnycastSpec): string | undefined {
    if (agentTellsIsolation(spec)) return undefined;
    return spec.pops.length <= 1
        ? "a single PoP cannot tell its own cut-off from an origin outage"
        : "in a hub mesh a PoP cut off from the hub cannot tell that from the hub being down (it hears no other PoP)";
}

/**
 * Whether a PoP that reaches nobody at all withdraws: only in a full mesh, where a fault every PoP
 * shares does not cut a PoP off from the others; in a hub mesh the hub's own fault would.
 */
export function agentTellsCutOff(spec: AnycastSpec): boolean {
    return spec.pops.length > 1 && spec.mesh.topology === "full";
}

/** How long the upstream takes to notice a silent PoP: BFD, else the hold time; undefined: never. */
export function silentDetectionMs(pop: PopSpec): { ms?: number; basis: string } {
    const bfd = pop.bgp.bfd;
    if (bfd) return { ms: bfd.intervalMs * bfd.multiplier, basis: `BFD ${bfd.intervalMs} ms x ${bfd.multiplier}` };
    if (pop.bgp.holdTime > 0) return { ms: pop.bgp.holdTime * 1000, basis: `hold time ${pop.bgp.holdTime} s, no BFD` };
    return { basis: "hold time 0 and no BFD" };
}

/** The PoP's BGP reconnect after an error: its error wait's maximum and a connect retry. */
function reconnectMs(pop: PopSpec): number {
    return (pop.bgp.errorWaitTime[1] + pop.bgp.connectRetryTime) * 1000;
}

const FAULT_TABLE = "anycast_lab_fault";

const experiments: Experiment[] = [
    {
        id: "crash",
        title: "PoP crash",
        fault: "kill -9 the PoP's BIRD",
        repair: "start BIRD again",
        probeIntervalMs: 20,
        async inject(lab, r) {
            const child = lab.popBird.get(r.pop.name);
            if (!child?.pid || child.exitCode !== null) throw new Error(`BIRD of ${r.pop.name} is not running`);
            const exited = new Promise((resolve) => child.once("exit", resolve));
            process.kill(child.pid, "SIGKILL");
            await exited;
        },
        async repairIt(lab, r) {
            lab.startPopBird(r.pop.name);
        },
        bounds: (spec, pop) => ({
            // The kernel closes the dead BIRD's TCP session: the edge withdraws at once.
            failoverMs: SLACK_MS,
            recoveryMs: reconnectMs(pop) + agentMs(spec, spec.health.rise) + SLACK_MS,
            basis: `session closed at once; back within errorWaitTime ${pop.bgp.errorWaitTime[1]} s + rise`,
        }),
        async settled(lab, r, bounds) {
            await edgeSessionDown(lab, r, bounds.failoverMs);
        },
        alerts: (r) => [{ alert: "AnycastBirdUnreachable", pop: r.pop.name }],
        // The restarted BIRD's session takes errorWaitTime and a connect to come back.
        mayAlso: (r) => [{ alert: "AnycastBgpSessionDown", pop: r.pop.name }],
    },
    {
        id: "linkLoss",
        title: "PoP link loss",
        fault: "the edge silently drops everything on the PoP's link (nft, no reset)",
        repair: "delete the drop rule",
        probeIntervalMs: 20,
        async inject(lab, r) {
            const rules = [
                `table inet ${FAULT_TABLE} {`,
                `  chain in { type filter hook prerouting priority -400; policy accept; iifname "${r.edge.towardsPop.ifname}" drop; }`,
                `  chain out { type filter hook postrouting priority -400; policy accept; oifname "${r.edge.towardsPop.ifname}" drop; }`,
                "}",
            ].join("\n");
            await nsRun(r.edge.ns, "nft", ["-f", "-"], { input: rules });
        },
        async repairIt(lab, r) {
            await nsRun(r.edge.ns, "nft", ["delete", "table", "inet", FAULT_TABLE]);
        },
        bounds: (spec, pop) => {
            const detect = silentDetectionMs(pop);
            return {
                failoverMs: (detect.ms ?? 0) + SLACK_MS,
                // BIRD's error wait time (bgp.errorWaitTime) and WireGuard's handshake retry dominate.
                recoveryMs: reconnectMs(pop) + WIREGUARD_RETRY_MS + agentMs(spec, spec.health.rise) + 2 * SLACK_MS,
                basis: `${detect.basis}; back within errorWaitTime ${pop.bgp.errorWaitTime[1]} s + a WireGuard handshake`,
                skip: detect.ms === undefined
                    ? `PoP ${pop.name} has bgp.holdTime 0 and no BFD: a silent link loss is never noticed, there is no failover to measure`
                    : undefined,
            };
        },
        async settled(lab, r, bounds) {
            // Both ends notice (BFD or hold timer), and the agent loses the origin behind the dead link.
            await edgeSessionDown(lab, r, bounds.failoverMs);
            await waitFor(`PoP ${r.pop.name}'s BGP session to go down`, async () =>
                !(await showProtocols(r.pop.ns, lab.birdSocket(r.pop.ns))).some((p) => p.proto === "BGP" && p.bgpState === "Established"),
                bounds.failoverMs, 50);
            // The agent sees the mesh gone, not the session: it withdraws once it counts itself cut off.
            // In a hub mesh it cannot tell that from the hub being down, so it stays announced (a
            // global fault), and the session alone moves the traffic.
            if (!agentTellsCutOff(lab.stack.spec)) return;
            await agentIn(lab, r, ["withdrawn", "held-down"], Math.max(bounds.failoverMs, cutOffMs(lab.stack.spec) + SLACK_MS));
        },
        // The mesh runs over the dead link. Once it is back, the session takes errorWaitTime and a
        // connect: Prometheus may see it down meanwhile.
        alerts: (r) => [{ alert: "AnycastPopUnreachable", pop: r.pop.name }],
        mayAlso: (r) => [{ alert: "AnycastBgpSessionDown", pop: r.pop.name }],
    },
    {
        id: "originLoss",
        title: "Origin unreachable from a PoP",
        fault: "wg-quick down wg0 on the PoP (the health agent withdraws)",
        repair: "wg-quick up wg0",
        probeIntervalMs: 20,
        keepsSession: true,
        async inject(lab, r) {
            await lab.wgDown(r.pop.ns);
        },
        async repairIt(lab, r) {
            await lab.wgUp(r.pop.ns);
        },
        bounds: (spec) => ({
            // With wg0 down no origin answers and the other PoPs only over their public addresses.
            failoverMs: isolationMs(spec) + SLACK_MS,
            recoveryMs: WIREGUARD_RETRY_MS + agentMs(spec, spec.health.rise + 1) + 2 * SLACK_MS,
            basis: `health interval ${spec.health.interval} s, timeout ${spec.health.timeout} s, fall ${spec.health.fall}, rise ${spec.health.rise}`,
            // A lone PoP, or one in a hub mesh, has nobody to ask whether the origin is down for
            // everyone: it counts the fault as global, stays announced and answers 503 (README: Failover).
            skip: !agentTellsIsolation(spec)
                ? `${whyAgentCannotTellIsolation(spec)}: it stays announced and answers 503, so there is no failover to measure`
                : undefined,
        }),
        async settled(lab, r, bounds) {
            await agentIn(lab, r, ["withdrawn", "held-down"], bounds.failoverMs);
        },
        // Its wg0 is down: the withdrawal is the agent's, Prometheus sees a PoP it cannot reach.
        alerts: (r) => [{ alert: "AnycastPopUnreachable", pop: r.pop.name }],
    },
    {
        id: "drain",
        title: "Planned drain",
        fault: "anycast-health drain (GRACEFUL_SHUTDOWN, then withdraw)",
        repair: "anycast-health undrain",
        probeIntervalMs: 50,
        keepsSession: true,
        async inject(lab, r) {
            await lab.agent(r.pop.name, "drain");
        },
        async repairIt(lab, r) {
            await lab.agent(r.pop.name, "undrain");
        },
        bounds: (spec) => ({
            // GRACEFUL_SHUTDOWN moves traffic at once; the withdrawal follows after drainSeconds.
            failoverMs: SLACK_MS,
            recoveryMs: agentMs(spec, spec.health.rise + 1) + 2 * SLACK_MS,
            basis: `GRACEFUL_SHUTDOWN, then withdrawn after drainSeconds ${spec.health.drainSeconds} s`,
        }),
        async settled(lab, r) {
            await agentIn(lab, r, ["withdrawn"], (lab.stack.spec.health.drainSeconds * 1000) + SLACK_MS);
        },
        // An operator's drain is meant: nothing pages.
        alerts: () => [],
    },
];

export const EXPERIMENT_IDS = experiments.map((e) => e.id);

async function edgeSessionDown(lab: LabRuntime, r: LabRegion, timeoutMs: number): Promise<void> {
    await waitFor(`the edge's session to ${r.pop.name} to go down`, async () =>
        (await lab.edges.session(r))?.established !== true, timeoutMs, 20);
}

async function agentIn(lab: LabRuntime, r: LabRegion, states: string[], timeoutMs: number): Promise<void> {
    await waitFor(`${r.pop.name}'s health agent to reach ${states.join(" or ")}`, async () =>
        states.includes((await lab.agentStatus(r.pop.name))?.state ?? ""), timeoutMs, 20);
}

/** Stops every experiment: the lab is not in a state where a fault can be measured. */
export class ExperimentsAborted extends Error {
    constructor(message: string) {
        super(message);
        this.name = "ExperimentsAborted";
    }
}

/**
 * Before a fault: the PoP's agent announces and its region's client is served by it, within the
 * experiment's recovery bound (the previous run's repair may still be settling). Otherwise no
 * fault on this region can be measured, and repeating runs would only wait out more timeouts.
 */
async function steady(lab: LabRuntime, r: LabRegion, prober: Prober, boundMs: number): Promise<void> {
    // The previous run's repair (maybe on another PoP) may still be settling: give it at least a minute.
    const timeoutMs = Math.max(boundMs, 60_000);
    const agent = await waitFor(`${r.pop.name}'s agent to announce`,
        async () => (await lab.agentStatus(r.pop.name))?.state === "announced", timeoutMs, 50).catch(() => false);
    if (!agent) {
        const s = await lab.agentStatus(r.pop.name);
        throw new ExperimentsAborted(`before the fault, PoP ${r.pop.name}'s agent is ` +
            `${s ? `${s.state} (${s.last_reason})` : "silent (no status file)"}, not announcing, after ${(timeoutMs / 1000).toFixed(0)} s`);
    }
    if (!await prober.waitForStreak(nowMs(), 5, (s) => s.ok && s.pop === r.pop.name, timeoutMs)) {
        const last = prober.samples.slice(-3).map((s) => (s.ok ? `served by ${s.pop}` : s.error ?? `status ${s.status}`)).join(", ");
        throw new ExperimentsAborted(`before the fault, region ${r.region} is not served by its own PoP ${r.pop.name} ` +
            `(last answers: ${last || "none"}), so no failover from it can be measured`);
    }
}

async function runOnce(lab: LabRuntime, e: Experiment, r: LabRegion, bounds: Bounds, prometheus?: LabPrometheus): Promise<ExperimentRun> {
    const own = r.pop.name;
    const run: ExperimentRun = { pop: own, region: r.region, failedDuringFailover: 0, failedDuringRecovery: 0, requests: 0,
        bounds: { failoverMs: bounds.failoverMs, recoveryMs: bounds.recoveryMs, basis: bounds.basis } };
    const prober = new Prober(r.client.ns, { address: lab.stack.spec.address.toString(), host: lab.stack.spec.frontDoor.hostname },
        e.probeIntervalMs, lab.probeTimeoutMs);
    let faultIn = false;
    // When the fault's and the repair's commands started (epoch ms), for the run's timeline.
    let t0: number | undefined;
    let t1: number | undefined;
    try {
        await steady(lab, r, prober, bounds.recoveryMs);
        const sessionBefore = e.keepsSession ? await sampleSession(lab, r) : undefined;
        // Times count from the start of the fault's and the repair's command: `wg-quick up/down`
        // take a while, and the fault or repair takes effect somewhere inside them.
        const alerts = prometheus?.beginCheck(e.title, own, e.alerts(r), e.mayAlso?.(r));
        t0 = nowMs();
        await e.inject(lab, r);
        faultIn = true;
        const moved = await prober.waitFor(t0, (s) => s.ok && s.pop !== own, bounds.failoverMs);
        if (!moved) throw new Error(`no other PoP served ${r.region} within ${bounds.failoverMs / 1000} s (${bounds.basis})`);
        run.failoverMs = moved.done - t0;
        run.servedBy = moved.pop;
        await e.settled(lab, r, bounds);
        await alerts?.hold();

        t1 = nowMs();
        await e.repairIt(lab, r);
        faultIn = false;
        const back = await prober.waitFor(t1, (s) => s.ok && s.pop === own, bounds.recoveryMs);
        if (!back) throw new Error(`${own} did not serve ${r.region} again within ${bounds.recoveryMs / 1000} s of the repair`);
        run.recoveryMs = back.done - t1;
        // A request belongs to the phase it was sent in; wait until the last ones have finished.
        await sleep(lab.probeTimeoutMs + 50);
        const failedIn = (from: number, to: number) => prober.samples.filter((s) => !s.ok && s.sent >= from && s.sent < to);
        // Requests sent shortly before the fault can be caught by it too.
        const faultPhase = failedIn(t0 - lab.probeTimeoutMs, t1);
        const recoveryPhase = failedIn(t1, back.done);
        run.failedDuringFailover = faultPhase.length;
        run.failedDuringRecovery = recoveryPhase.length;
        run.failuresDuringFailover = failureSummary(faultPhase);
        run.failuresDuringRecovery = failureSummary(recoveryPhase);
        run.failures = [run.failuresDuringFailover, run.failuresDuringRecovery].filter((x) => x).join("; ") || undefined;
        run.resetAtPathSwitch = resetsAtPathSwitch(prober.samples, [...faultPhase, ...recoveryPhase]).length;
        await alerts?.finish();
        if (sessionBefore) {
            const changes = sessionChanges(sessionBefore, await sampleSession(lab, r));
            run.sessionKept = changes.length === 0;
            if (changes.length > 0) throw new Error(`the withdrawal and the announcement touched the BGP session: ${changes.join("; ")}`);
        }
    } catch (err) {
        if (err instanceof ExperimentsAborted) throw err;
        run.error = (err as Error).message.split("\n")[0];
        if (faultIn) await e.repairIt(lab, r).catch(() => undefined);
    } finally {
        await prober.stop();
        run.requests = prober.samples.length;
        if (t0 !== undefined) run.timeline = probeTimeline([prober.samples], { intervalMs: e.probeIntervalMs, faultAt: t0, repairAt: t1 });
        // Each run is a fault the operator has dealt with: forget the PoP's flap history, so the
        // next runs measure failover, not flap damping (which the lab shows on its own).
        await lab.agent(own, "release").catch(() => undefined);
    }
    return run;
}

export interface ExperimentOptions {
    repeats: number;
    /** The lab's Prometheus: each experiment's first run is held for its alerts and checked. */
    prometheus?: LabPrometheus;
    only?: Array<ExperimentReport["id"]>;
    log: (line: string) => void;
}

export interface ExperimentsResult {
    reports: ExperimentReport[];
    /** Why the experiments stopped early (a region not served by its own PoP before a fault). */
    aborted?: string;
}

function runLine(e: Experiment, i: number, repeats: number, r: LabRegion, x: ExperimentRun): string[] {
    const what = x.error
        ? `FAILED: ${x.error}`
        : `served by ${x.servedBy} after ${ms(x.failoverMs)}, own PoP again after ${ms(x.recoveryMs)}; ` +
          `failed requests ${x.failedDuringFailover} + ${x.failedDuringRecovery}${x.failures ? ` (${x.failures}` +
          `${x.resetAtPathSwitch ? `; ${x.resetAtPathSwitch} reset in flight by the route change` : ""})` : ""}`;
    return wrap(`${e.title} ${i + 1}/${repeats} on ${r.pop.name}: ${what}`, "  ", "      ");
}

function summary(e: Experiment, runs: ExperimentRun[], skipped?: string): ExperimentReport {
    const ok = runs.filter((x) => !x.error);
    return {
        id: e.id, title: e.title, fault: e.fault, repair: e.repair, probeIntervalMs: e.probeIntervalMs, runs, skipped,
        failover: stats(ok.map((x) => x.failoverMs!)), recovery: stats(ok.map((x) => x.recoveryMs!)),
        failedTotal: runs.reduce((n, x) => n + x.failedDuringFailover + x.failedDuringRecovery, 0),
    };
}

export async function runExperiments(lab: LabRuntime, opts: ExperimentOptions): Promise<ExperimentsResult> {
    const reports: ExperimentReport[] = [];
    const spec = lab.stack.spec;
    let rotation = 0;
    for (const e of experiments.filter((x) => !opts.only || opts.only.includes(x.id))) {
        if (lab.design.regions.length < 2) {
            reports.push(summary(e, [], "one PoP: no other PoP can take its traffic over"));
            continue;
        }
        // Only PoPs whose config gives the fault a way to be noticed (link loss needs BFD or a hold time).
        const eligible = lab.design.regions.filter((r) => !e.bounds(spec, r.pop.spec).skip);
        if (eligible.length === 0) {
            reports.push(summary(e, [], e.bounds(spec, lab.design.regions[0].pop.spec).skip));
            continue;
        }
        const runs: ExperimentRun[] = [];
        for (let i = 0; i < opts.repeats; i++) {
            // Continue the rotation across experiments so each PoP gets its share of every kind.
            const r = eligible[rotation++ % eligible.length];
            const bounds = e.bounds(spec, r.pop.spec);
            let x: ExperimentRun;
            try {
                x = await runOnce(lab, e, r, bounds, opts.prometheus);
            } catch (err) {
                if (!(err instanceof ExperimentsAborted)) throw err;
                reports.push(summary(e, runs));
                return { reports, aborted: `${e.title} run ${i + 1} on ${r.pop.name}: ${err.message}` };
            }
            runs.push(x);
            for (const line of runLine(e, i, opts.repeats, r, x)) opts.log(line);
            if (x.error) await dumpDiagnostics(lab, r, opts.log);
        }
        reports.push(summary(e, runs));
    }
    return { reports };
}

/** After a failed run: what the agent and BIRD say, so the report explains itself. */
async function dumpDiagnostics(lab: LabRuntime, r: LabRegion, log: (line: string) => void): Promise<void> {
    const status = await lab.agentStatus(r.pop.name);
    const say = (text: string) => wrap(text, "    ", "      ").forEach((l) => log(l));
    if (status) say(`agent: ${status.state} (${status.last_reason})`);
    const proto = await nsRun(r.pop.ns, "birdc", ["-s", lab.birdSocket(r.pop.ns), "show", "protocols"], { allowFail: true });
    for (const line of proto.stdout.split("\n").filter((l) => / BGP /.test(l))) say(`pop BIRD: ${line.trim().replace(/\s+/g, " ")}`);
    const healthLog = path.join(nsDir(r.pop.ns), "health.log");
    if (fs.existsSync(healthLog)) {
        for (const line of fs.readFileSync(healthLog, "utf8").trim().split("\n").slice(-3)) say(`agent log: ${line}`);
    }
}
