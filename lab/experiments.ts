/**
 * The failure experiments. Each run: a prober in the target region's client namespace is
 * started first and must see the region served by its own PoP; then the fault goes in, and
 * "failover" is the first good answer from another PoP minus the start of the fault's command;
 * then the repair, and "recovery" is the first good answer from the own PoP again minus the
 * start of the repair's command. Runs rotate over the PoPs, so BIRD's doubling error wait time
 * is not what gets measured five times over, and each run ends by releasing the PoP's flap
 * history (flap damping has its own section).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LabRuntime, nsDir } from "./boot";
import { nowMs, nsRun, sleep, waitFor } from "./exec";
import { showProtocols } from "./birdc";
import { Prober, ProbeSample } from "./probe";
import { ExperimentReport, ExperimentRun, stats } from "./report";
import { RegionPlan } from "./topology";

interface Experiment {
    id: ExperimentReport["id"];
    title: string;
    fault: string;
    repair: string;
    probeIntervalMs: number;
    /** Put the fault in place; resolves when it is. */
    inject(lab: LabRuntime, r: RegionPlan): Promise<void>;
    repairIt(lab: LabRuntime, r: RegionPlan): Promise<void>;
    failoverTimeoutMs: number;
    recoveryTimeoutMs: number;
    /**
     * Holds the fault until its consequences have played out (sessions down, agent withdrawn),
     * so that recovery measures the whole way back, not a blip the protocols never noticed.
     */
    settled(lab: LabRuntime, r: RegionPlan): Promise<void>;
}

const PROBE_TIMEOUT_MS = 300;
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
        async settled(lab, r) {
            await edgeSessionDown(lab, r);
        },
        failoverTimeoutMs: 10_000,
        recoveryTimeoutMs: 30_000,
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
        async settled(lab, r) {
            // Both ends notice (BFD or hold timer), and the agent loses the origin behind the dead link.
            await edgeSessionDown(lab, r);
            await waitFor(`PoP ${r.pop.name}'s BGP session to go down`, async () =>
                !(await showProtocols(r.pop.ns, lab.birdSocket(r.pop.ns))).some((p) => p.proto === "BGP" && p.bgpState === "Established"), 20_000, 50);
            await agentIn(lab, r, ["withdrawn", "held-down"], 20_000);
        },
        failoverTimeoutMs: 20_000,
        // BIRD's error wait time (the PoP's bgp.errorWaitTime) and WireGuard's 5 s handshake retry dominate.
        recoveryTimeoutMs: 75_000,
    },
    {
        id: "originLoss",
        title: "Origin unreachable from a PoP",
        fault: "wg-quick down wg0 on the PoP (the health agent withdraws)",
        repair: "wg-quick up wg0",
        probeIntervalMs: 20,
        async inject(lab, r) {
            await lab.wgDown(r.pop.ns);
        },
        async repairIt(lab, r) {
            await lab.wgUp(r.pop.ns);
        },
        async settled(lab, r) {
            await agentIn(lab, r, ["withdrawn", "held-down"], 15_000);
        },
        failoverTimeoutMs: 15_000,
        recoveryTimeoutMs: 30_000,
    },
    {
        id: "drain",
        title: "Planned drain",
        fault: "anycast-health drain (GRACEFUL_SHUTDOWN, then withdraw)",
        repair: "anycast-health undrain",
        probeIntervalMs: 50,
        async inject(lab, r) {
            await lab.agent(r.pop.name, "drain");
        },
        async repairIt(lab, r) {
            await lab.agent(r.pop.name, "undrain");
        },
        async settled(lab, r) {
            await agentIn(lab, r, ["withdrawn"], (lab.stack.spec.health.drainSeconds + 10) * 1000);
        },
        failoverTimeoutMs: 15_000,
        recoveryTimeoutMs: 30_000,
    },
];

export const EXPERIMENT_IDS = experiments.map((e) => e.id);

async function edgeSessionDown(lab: LabRuntime, r: RegionPlan): Promise<void> {
    await waitFor(`the edge's session to ${r.pop.name} to go down`, async () =>
        (await showProtocols(r.edge.ns, lab.birdSocket(r.edge.ns))).find((p) => p.name === "pop")?.bgpState !== "Established", 20_000, 20);
}

async function agentIn(lab: LabRuntime, r: RegionPlan, states: string[], timeoutMs: number): Promise<void> {
    await waitFor(`${r.pop.name}'s health agent to reach ${states.join(" or ")}`, async () =>
        states.includes((await lab.agentStatus(r.pop.name))?.state ?? ""), timeoutMs, 20);
}

/** "3x timeout, 2x http 502 from sgp": what the failed requests of a phase met. */
function failureSummary(failed: ProbeSample[]): string | undefined {
    if (failed.length === 0) return undefined;
    const counts = new Map<string, number>();
    for (const s of failed) {
        const what = s.error ?? `http ${s.status}${s.pop ? ` from ${s.pop}` : ""}`;
        counts.set(what, (counts.get(what) ?? 0) + 1);
    }
    return [...counts].map(([what, n]) => `${n}x ${what}`).join(", ");
}

/** Wait until a PoP is back to normal: its agent announces and its region's client is served by it. */
async function steady(lab: LabRuntime, r: RegionPlan, prober: Prober, timeoutMs: number): Promise<void> {
    await waitFor(`${r.pop.name}'s agent to announce`, async () => (await lab.agentStatus(r.pop.name))?.state === "announced", timeoutMs, 50);
    const since = nowMs();
    if (!await prober.waitForStreak(since, 5, (s) => s.ok && s.pop === r.pop.name, timeoutMs)) {
        const last = prober.samples.slice(-3).map((s) => (s.ok ? `served by ${s.pop}` : s.error ?? `status ${s.status}`)).join(", ");
        throw new Error(`region ${r.region} is not steadily served by its own PoP ${r.pop.name} (last: ${last || "no answers"})`);
    }
}

async function runOnce(lab: LabRuntime, e: Experiment, r: RegionPlan): Promise<ExperimentRun> {
    const own = r.pop.name;
    const run: ExperimentRun = { pop: own, region: r.region, failedDuringFailover: 0, failedDuringRecovery: 0, requests: 0 };
    const prober = new Prober(r.client.ns, { address: lab.stack.spec.address, host: lab.stack.spec.frontDoor.hostname },
        e.probeIntervalMs, PROBE_TIMEOUT_MS);
    let faultIn = false;
    try {
        await steady(lab, r, prober, 90_000);
        // Times count from the start of the fault's and the repair's command: `wg-quick up/down`
        // take a while, and the fault or repair takes effect somewhere inside them.
        const t0 = nowMs();
        await e.inject(lab, r);
        faultIn = true;
        const moved = await prober.waitFor(t0, (s) => s.ok && s.pop !== own, e.failoverTimeoutMs);
        if (!moved) throw new Error(`no other PoP served ${r.region} within ${e.failoverTimeoutMs / 1000} s`);
        run.failoverMs = moved.done - t0;
        run.servedBy = moved.pop;
        await e.settled(lab, r);

        const t1 = nowMs();
        await e.repairIt(lab, r);
        faultIn = false;
        const back = await prober.waitFor(t1, (s) => s.ok && s.pop === own, e.recoveryTimeoutMs);
        if (!back) throw new Error(`${own} did not serve ${r.region} again within ${e.recoveryTimeoutMs / 1000} s of the repair`);
        run.recoveryMs = back.done - t1;
        // A request belongs to the phase it was sent in; wait until the last ones have finished.
        await sleep(PROBE_TIMEOUT_MS + 50);
        const failedIn = (from: number, to: number) => prober.samples.filter((s) => !s.ok && s.sent >= from && s.sent < to);
        // Requests sent shortly before the fault can be caught by it too.
        const faultPhase = failedIn(t0 - PROBE_TIMEOUT_MS, t1);
        const recoveryPhase = failedIn(t1, back.done);
        run.failedDuringFailover = faultPhase.length;
        run.failedDuringRecovery = recoveryPhase.length;
        run.failures = [failureSummary(faultPhase), failureSummary(recoveryPhase)].filter((x) => x).join("; ") || undefined;
    } catch (err) {
        run.error = (err as Error).message.split("\n")[0];
        if (faultIn) await e.repairIt(lab, r).catch(() => undefined);
    } finally {
        await prober.stop();
        run.requests = prober.samples.length;
        // Each run is a fault the operator has dealt with: forget the PoP's flap history, so the
        // next runs measure failover, not flap damping (which the lab shows on its own).
        await lab.agent(own, "release").catch(() => undefined);
    }
    return run;
}

export interface ExperimentOptions {
    repeats: number;
    only?: Array<ExperimentReport["id"]>;
    log: (line: string) => void;
}

export async function runExperiments(lab: LabRuntime, opts: ExperimentOptions): Promise<ExperimentReport[]> {
    const reports: ExperimentReport[] = [];
    const regions = lab.plan.regions;
    let rotation = 0;
    for (const e of experiments.filter((x) => !opts.only || opts.only.includes(x.id))) {
        const runs: ExperimentRun[] = [];
        for (let i = 0; i < opts.repeats; i++) {
            // Continue the rotation across experiments so each PoP gets its share of every kind.
            const r = regions[rotation++ % regions.length];
            const x = await runOnce(lab, e, r);
            runs.push(x);
            opts.log(`  ${e.title} ${i + 1}/${opts.repeats} on ${r.pop.name}: ` + (x.error
                ? `FAILED: ${x.error}`
                : `served by ${x.servedBy} after ${fmt(x.failoverMs)}, own PoP again after ${fmt(x.recoveryMs)}; ` +
                  `failed requests ${x.failedDuringFailover} + ${x.failedDuringRecovery}${x.failures ? ` (${x.failures})` : ""}`));
            if (x.error) await dumpDiagnostics(lab, r, opts.log);
        }
        const ok = runs.filter((x) => !x.error);
        reports.push({
            id: e.id, title: e.title, fault: e.fault, repair: e.repair, probeIntervalMs: e.probeIntervalMs, runs,
            failover: stats(ok.map((x) => x.failoverMs!)), recovery: stats(ok.map((x) => x.recoveryMs!)),
            failedTotal: runs.reduce((n, x) => n + x.failedDuringFailover + x.failedDuringRecovery, 0),
        });
    }
    return reports;
}

function fmt(v: number | undefined): string {
    return v === undefined ? "-" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`;
}

/** After a failed run: what the agent and BIRD say, so the report explains itself. */
async function dumpDiagnostics(lab: LabRuntime, r: RegionPlan, log: (line: string) => void): Promise<void> {
    const status = await lab.agentStatus(r.pop.name);
    if (status) log(`    agent: ${status.state} (${status.last_reason})`);
    const proto = await nsRun(r.pop.ns, "birdc", ["-s", lab.birdSocket(r.pop.ns), "show", "protocols"], { allowFail: true });
    for (const line of proto.stdout.split("\n").filter((l) => / BGP /.test(l))) log(`    pop BIRD: ${line.trim()}`);
    const healthLog = path.join(nsDir(r.pop.ns), "health.log");
    if (fs.existsSync(healthLog)) {
        for (const line of fs.readFileSync(healthLog, "utf8").trim().split("\n").slice(-3)) log(`    agent log: ${line}`);
    }
}
