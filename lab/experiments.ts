/**
 * The failure experiments. Each run: a prober in the target region's client namespace is
 * started first and must see the region served by its own PoP; then the fault goes in, and
 * "failover" is the first good answer from another PoP minus the moment the fault was in place;
 * then the repair, and "recovery" is the first good answer from the own PoP again minus the
 * moment of the repair. Runs rotate over the PoPs, so one PoP's flap damping and BIRD's doubling
 * error wait time are not what gets measured five times over.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LabRuntime, nsDir } from "./boot";
import { nowMs, nsRun, waitFor } from "./exec";
import { Prober } from "./probe";
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
    /** For the drain: the window in which lost requests count ends when the agent has withdrawn. */
    faultSettled?(lab: LabRuntime, r: RegionPlan): Promise<void>;
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
        async faultSettled(lab, r) {
            await waitFor(`${r.pop.name}'s agent to finish the drain`, async () => (await lab.agentStatus(r.pop.name))?.state === "withdrawn",
                (lab.stack.spec.health.drainSeconds + 10) * 1000, 50);
        },
        failoverTimeoutMs: 15_000,
        recoveryTimeoutMs: 30_000,
    },
];

export const EXPERIMENT_IDS = experiments.map((e) => e.id);

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
        await e.inject(lab, r);
        faultIn = true;
        const t0 = nowMs();
        const moved = await prober.waitFor(t0, (s) => s.ok && s.pop !== own, e.failoverTimeoutMs);
        if (!moved) throw new Error(`no other PoP served ${r.region} within ${e.failoverTimeoutMs / 1000} s`);
        run.failoverMs = moved.done - t0;
        run.servedBy = moved.pop;
        let windowEnd = moved.done;
        if (e.faultSettled) {
            await e.faultSettled(lab, r);
            // Requests still in flight when the drain completed count too.
            await new Promise((res) => setTimeout(res, PROBE_TIMEOUT_MS + 50));
            windowEnd = nowMs();
        }
        run.failedDuringFailover = prober.between(t0, windowEnd).filter((s) => !s.ok).length;

        await e.repairIt(lab, r);
        faultIn = false;
        const t1 = nowMs();
        const back = await prober.waitFor(t1, (s) => s.ok && s.pop === own, e.recoveryTimeoutMs);
        if (!back) throw new Error(`${own} did not serve ${r.region} again within ${e.recoveryTimeoutMs / 1000} s of the repair`);
        run.recoveryMs = back.done - t1;
        run.failedDuringRecovery = prober.between(t1, back.done).filter((s) => !s.ok).length;
    } catch (err) {
        run.error = (err as Error).message.split("\n")[0];
        if (faultIn) await e.repairIt(lab, r).catch(() => undefined);
    } finally {
        await prober.stop();
        run.requests = prober.samples.length;
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
                : `served by ${x.servedBy} after ${fmt(x.failoverMs)} (${x.failedDuringFailover} failed), own PoP again after ${fmt(x.recoveryMs)} (${x.failedDuringRecovery} failed)`));
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
