/**
 * `anycast lab --deploy --keep --config <changed file>` onto a kept rehearsal: the changed stack
 * deployed onto the same hosts, as a second `pulumi up` would deploy it onto the same servers.
 *
 * - The plan is the real program's again (plan.ts), given what the stack's state would hold: each
 *   instance's addresses, and the keys and certificates the first deploy generated (PriorOutputs).
 * - Only the commands whose inputs changed run (changedCommands: pulumi-command's update runs
 *   `create` again), and the report names them. A removed command runs its delete script, if any.
 * - Refused before anything runs: a change that adds, removes or moves a host, or changes an
 *   instance's user data (Vultr replaces such an instance; the rehearsal does not replace hosts).
 * - While it runs, a client that follows the edge's best path sends requests, and the edge is
 *   watched for every PoP whose `drained` changed: a drain must show GRACEFUL_SHUTDOWN (65535:0)
 *   first and the withdrawal after, with no request lost; an undrain the route back, unmarked.
 * - Then `anycast status` over SSH must read every PoP as the config says, and a deploy after it
 *   must run nothing. The hosts are kept again with the new state, whatever happened.
 */
import * as path from "node:path";
import { NETWORK_NAME } from "../../stacks/network/stack";
import { readStackValues } from "../../harness/stackrun";
import { sleep } from "../exec";
import { failureSummary, Prober, resetsAtPathSwitch } from "../probe";
import { ProbeSample } from "../prober";
import { sameSince } from "../session";
import { ms, table, wrap } from "../text";
import { edgeHasPath, edgeRoute, edgeSessions } from "./edge";
import { DeployCloud } from "./hosts";
import { CATCHMENT_CLIENT, httpSourceAddress, PROBE_INTERVAL_MS, PROBE_TIMEOUT_MS, waitUntil } from "./observe";
import { changedCommands, deleteRun, planDeploy, PlannedCommand, priorOutputsOf, removedCommands, updateRun } from "./plan";
import {
    checkNoChange, checkStatus, diagnose, formatDeploySteps, hostLayout, HostLayout, keepRehearsal, KeptFiles, KeptRehearsal, popStates,
    RehearsalCheck, RehearsalPopState, rehearsalValues, StackValues, updatedByInput,
} from "./rehearsal";
import { runRemoteCommands, RemoteRunReport } from "./remote";
import { ensureRootfs } from "./rootfs";

/** A change the kept rehearsal cannot deploy (it names why, and the way out). */
export class KeptRehearsalRefused extends Error {
    constructor(message: string) {
        super(message);
        this.name = "KeptRehearsalRefused";
    }
}

export interface RedeployOptions {
    configFile: string;
    log?: (line: string) => void;
    /** How long a PoP may take to reach its new state after the deploy (default 240 s: the machine stalls). */
    settleTimeoutMs?: number;
}

/** A PoP whose `pops[].drained` changed, as the edge saw it (ms from the start of the deploy's commands). */
export interface DrainTransition {
    pop: string;
    to: "drained" | "returned";
    /** Drain: when the edge first saw the route marked GRACEFUL_SHUTDOWN, and when it was withdrawn. */
    gracefulAtMs?: number;
    withdrawnAtMs?: number;
    /** Undrain: when the edge had the route again without the mark. */
    returnedAtMs?: number;
    /** The edge's session with the PoP stayed up throughout (the same since). */
    sessionKept: boolean;
}

export interface RedeployReport {
    ok: boolean;
    slot: number;
    configFile: string;
    /** What the stack file was changed to deploy here (rehearsalValues). */
    rewrites: string[];
    /** The commands that ran: the changed ones (and delete scripts of removed ones). */
    run: RemoteRunReport;
    changed: string[];
    removed: string[];
    unchanged: number;
    transitions: DrainTransition[];
    /** The PoPs the deployed config drains (`pops[].drained`). */
    drained: string[];
    /** The client that follows the edge, throughout the deploy. */
    requests: { total: number; failed: number; failures?: string; servedBefore?: string; servedAfter?: string };
    checks: RehearsalCheck[];
    pops: RehearsalPopState[];
    kept: KeptFiles;
}

/** Deploy a changed stack file onto the kept rehearsal's hosts; they are kept again before it returns or throws. */
export async function redeployKept(options: RedeployOptions): Promise<RedeployReport> {
    const log = options.log ?? (() => undefined);
    const raw = readStackValues(options.configFile) as StackValues;
    const rootfs = await ensureRootfs({ log });
    const { cloud, record } = await DeployCloud.attach({ rootfs, log });
    let kept = record as KeptRehearsal;
    if (kept?.format !== "anycast-rehearsal-kept/1") {
        await cloud.keep(record);
        throw new KeptRehearsalRefused(`the kept rehearsal in slot ${cloud.slot} was kept by another version of anycast: anycast lab --down, then deploy again`);
    }
    try {
        const report = await redeploy(cloud, kept, raw, options, log, (next) => { kept = next; });
        return { ...report, kept: await keepRehearsal(cloud, kept) };
    } finally {
        if (!cloud.kept) await keepRehearsal(cloud, kept);
    }
}

async function redeploy(cloud: DeployCloud, kept: KeptRehearsal, raw: StackValues, options: RedeployOptions, log: (line: string) => void,
    record: (next: KeptRehearsal) => void): Promise<Omit<RedeployReport, "kept">> {
    const { values, rewrites } = rehearsalValues(raw, cloud);
    const layout = hostLayout(values, cloud.names);
    refuseMovedHosts(kept, layout, options.configFile);
    const replan = () => planDeploy({ values, instanceAddresses: kept.layout.instanceAddresses, priorOutputs: kept.priorOutputs });
    const plan = await replan();
    for (const n of plan.run.notes) log(`  note: ${n}`);
    const spec = plan.run.spec;
    refuseReplacedInstances(kept, plan.run.hosts, options.configFile);
    const prefix = kept.prefix;
    const pops = spec.pops.map((p) => p.name);

    const changed = changedCommands(kept.commands, plan.commands);
    const removed = removedCommands(kept.commands, plan.commands);
    const old = new Map(kept.commands.map((c) => [c.name, c]));
    const wasDrained = new Map(kept.values.pops.map((p) => [p.name, p.drained === true]));
    const flips = spec.pops.filter((p) => (p.drained === true) !== (wasDrained.get(p.name) ?? false));
    log(`  deploy onto the kept hosts (slot ${cloud.slot}): ${changed.length} of ${plan.commands.length} commands changed, ${removed.length} removed` +
        (flips.length > 0 ? `; ${flips.map((p) => `${p.name} ${p.drained ? "drained" : "undrained"}`).join(", ")} by the config` : ""));

    // The client that follows the edge's best path (Cloudflare's side) sends requests throughout.
    const client = await cloud.addClient(CATCHMENT_CLIENT, httpSourceAddress(plan.run.httpSources, 0x10));
    const prober = new Prober(client.netns, { address: spec.address.toString(), host: spec.frontDoor.hostname }, PROBE_INTERVAL_MS, PROBE_TIMEOUT_MS);
    const before = await edgeSessions(cloud, pops);
    let run: RemoteRunReport;
    let transitions: DrainTransition[];
    let servedBefore: string | undefined;
    try {
        const streak = await prober.waitForStreak(Date.now(), 5, (x) => x.ok, 60_000);
        servedBefore = streak ? prober.samples.filter((x) => x.ok).slice(-1)[0]?.pop : undefined;
        const t0 = Date.now();
        const timeout = (options.settleTimeoutMs ?? 240_000) + spec.health.drainSeconds * 1000;
        const watching = flips.map((p) => watchEdge(cloud, p.name, p.drained === true ? "drained" : "returned", prefix, t0, timeout));
        run = await runRemoteCommands(updateRun(changed), {
            commandTimeoutMs: 10 * 60_000,
            onStep: (event, step) => {
                if (event === "end") log(`    ${step.name}: ${step.status} in ${(step.durationMs / 1000).toFixed(1)} s`);
            },
        });
        // The engine deletes what the program no longer has after its creates and updates.
        const withScript = deleteRun(removed);
        if (withScript.length > 0) {
            const deletes = await runRemoteCommands(withScript);
            run = { ...run, ok: run.ok && deletes.ok, steps: [...run.steps, ...deletes.steps] };
        }
        transitions = await Promise.all(watching);
        // Requests still in flight when the last PoP settled count too.
        await sleep(PROBE_TIMEOUT_MS + 500);
    } finally {
        await prober.stop();
    }
    const samples = prober.samples;
    const servedAfter = samples.filter((x) => x.ok).slice(-1)[0]?.pop;
    // The hosts hold what ran: a command that failed keeps its last inputs, as the stack's state would.
    const ranOk = new Set(run.steps.filter((st) => st.status === "succeeded").map((st) => st.name));
    const changedNames = new Set(changed.map((c) => c.name));
    const commands = plan.commands.flatMap((c): PlannedCommand[] => {
        if (!changedNames.has(c.name) || ranOk.has(c.name)) return [c];
        const o = old.get(c.name);
        return o ? [o] : [];
    });
    record({ ...kept, configFile: path.resolve(options.configFile), values, commands, priorOutputs: priorOutputsOf(plan.run), outputs: plan.run.outputs });

    const failed = samples.filter((x) => !x.ok);
    const checks: RehearsalCheck[] = [checkRan(run, changed, removed, plan.commands.length, old)];
    const after = await edgeSessions(cloud, pops);
    for (const t of transitions) checks.push(await checkTransition(cloud, t, prefix, samples, failed, spec.health.drainSeconds));
    // Nothing else moves: every other PoP keeps its session and its route at the edge.
    const others = pops.filter((p) => !flips.some((f) => f.name === p));
    const moved = others.flatMap((p) => {
        const [b, a] = [before[p], after[p]];
        return [
            ...(a.state !== "Established" ? [`${p}: session ${a.state}`] : []),
            ...(!sameSince(b.since, a.since) ? [`${p}: session restarted`] : []),
            ...(a.withdraws !== b.withdraws ? [`${p}: ${a.withdraws - b.withdraws} withdrawal(s)`] : []),
        ];
    });
    checks.push({
        name: "the other PoPs keep their sessions and routes at the edge", ok: moved.length === 0,
        detail: moved.length === 0 ? `${others.join(", ") || "no other PoP"}: no withdrawal, every session kept` : moved.join("; "),
    });
    if (flips.length === 0) {
        checks.push({
            name: "no request failed during the deploy", ok: failed.length === 0,
            detail: `${failed.length} of ${samples.length} failed${failed.length > 0 ? ` (${failureSummary(failed)})` : ""}`,
        });
    }
    checks.push(await checkStatus(cloud, plan.run.outputs));
    checks.push(await checkNoChange({ ...plan, commands }, replan));
    for (const c of checks) log(`  ${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
    return {
        ok: checks.every((c) => c.ok), slot: cloud.slot, configFile: options.configFile, rewrites, run,
        changed: changed.map((c) => c.name), removed: removed.map((c) => c.name), unchanged: plan.commands.length - changed.length,
        transitions, drained: spec.pops.filter((p) => p.drained === true).map((p) => p.name), requests: { total: samples.length, failed: failed.length, failures: failureSummary(failed), servedBefore, servedAfter },
        checks, pops: await popStates(cloud, pops, prefix),
    };
}

/** The kept rehearsal deploys onto the same hosts: the same names, kinds and addresses. */
export function refuseMovedHosts(kept: Pick<KeptRehearsal, "layout">, layout: Pick<HostLayout, "addressing" | "instanceAddresses">, file: string): void {
    const describe = (addressing: Record<string, unknown>, instances: Record<string, unknown>) =>
        Object.keys(addressing).sort().map((h) => `${h} (${h in instances ? "instance" : "existing"} ${JSON.stringify(addressing[h])})`);
    const was = describe(kept.layout.addressing, kept.layout.instanceAddresses);
    const now = describe(layout.addressing, layout.instanceAddresses);
    if (JSON.stringify(was) === JSON.stringify(now)) return;
    const names = (xs: string[]) => xs.map((x) => x.split(" ")[0]).join(", ");
    const added = now.filter((x) => !was.includes(x));
    const gone = was.filter((x) => !now.includes(x));
    throw new KeptRehearsalRefused(`${file} changes the hosts: the kept rehearsal has ${names(was)}; ` +
        `${gone.length > 0 ? `no longer as it was: ${names(gone)}; ` : ""}${added.length > 0 ? `new or moved: ${names(added)}; ` : ""}` +
        "a kept rehearsal deploys onto the same hosts (it neither adds, removes nor moves one): anycast lab --down, then anycast lab --deploy --keep --config " + file);
}

/** A changed userData replaces a Vultr instance: the rehearsal would have to, and does not. */
export function refuseReplacedInstances(kept: Pick<KeptRehearsal, "userData">, hosts: Array<{ name: string; files: Record<string, string> }>, file: string): void {
    const replaced = Object.keys(kept.userData).filter((h) => hosts.find((r) => r.name === h)?.files["cloud-init.yaml"] !== kept.userData[h]);
    if (replaced.length === 0) return;
    throw new KeptRehearsalRefused(`${file} changes the user data (cloud-init) of ${replaced.join(", ")}, so Vultr would replace ` +
        `${replaced.length === 1 ? "that instance" : "those instances"}; a kept rehearsal does not replace hosts: anycast lab --down, then anycast lab --deploy --keep --config ${file}`);
}

/**
 * Watch the edge's route from a PoP whose `drained` changed, every 100 ms, until it reached its
 * new state: a drain ends withdrawn, an undrain with the route back and unmarked.
 */
async function watchEdge(cloud: DeployCloud, pop: string, to: DrainTransition["to"], prefix: string, t0: number, timeoutMs: number): Promise<DrainTransition> {
    const t: DrainTransition = { pop, to, sessionKept: false };
    const before = (await edgeSessions(cloud, [pop]))[pop];
    await waitUntil(async () => {
        const r = await edgeRoute(cloud, pop, prefix);
        const at = Date.now() - t0;
        if (to === "returned") {
            if (r.present && !r.graceful) t.returnedAtMs = at;
            return t.returnedAtMs !== undefined;
        }
        if (r.graceful && t.gracefulAtMs === undefined) t.gracefulAtMs = at;
        if (!r.present) t.withdrawnAtMs = at;
        return t.withdrawnAtMs !== undefined;
    }, timeoutMs - (Date.now() - t0), 100);
    const after = (await edgeSessions(cloud, [pop]))[pop];
    t.sessionKept = after.state === "Established" && sameSince(before.since, after.since);
    return t;
}

function checkRan(run: RemoteRunReport, changed: PlannedCommand[], removed: PlannedCommand[], total: number, old: Map<string, PlannedCommand>): RehearsalCheck {
    const ran = run.steps.map((st) => st.name);
    const expected = [...changed, ...deleteRun(removed)].map((c) => c.name);
    const same = JSON.stringify([...ran].sort()) === JSON.stringify([...expected].sort());
    const short = (n: string) => n.replace(`${NETWORK_NAME}-`, "");
    const created = changed.filter((c) => !old.has(c.name));
    return {
        name: "only the commands whose inputs changed ran", ok: run.ok && same,
        detail: [
            `${ran.length} of ${total} ran (${run.ok ? "ok" : `FAILED: ${run.steps.filter((st) => st.status !== "succeeded").map((st) => short(st.name)).join(", ")}`})`,
            `updated ${updatedByInput(changed.filter((c) => old.has(c.name)), old)}`,
            ...(created.length > 0 ? [`new ${created.map((c) => short(c.name)).join(", ")}`] : []),
            ...(removed.length > 0 ? [`removed ${removed.map((c) => short(c.name)).join(", ")}`] : []),
            ...(same ? [] : [`expected ${expected.map(short).join(", ") || "none"}`]),
        ].join("; "),
    };
}

/**
 * A drain by config moves traffic before the withdrawal, so no request is blackholed: no
 * timeout, no error status. A connection the edge's path switch catches between its handshake
 * and its request lands on another PoP, which resets it: that is anycast itself (any route
 * change does it). Such a reset sits between the last answer from one PoP and the first from the
 * other (resetsAtPathSwitch), and is reported, not failed, as in the lab's drain; any other
 * failure is a lost request.
 */
async function checkTransition(cloud: DeployCloud, t: DrainTransition, prefix: string, samples: ProbeSample[], failed: ProbeSample[], drainSeconds: number): Promise<RehearsalCheck> {
    const resets = resetsAtPathSwitch(samples, failed);
    const lost = failed.filter((x) => !resets.includes(x));
    const requests = `${lost.length} request(s) lost${resets.length > 0 ? `, ${resets.length} reset by the path switch` : ""}` +
        `${failed.length > 0 ? ` (${failureSummary(failed)})` : ""}`;
    const session = t.sessionKept ? "its session kept" : "its session NOT kept";
    if (t.to === "drained") {
        const ordered = t.gracefulAtMs !== undefined && t.withdrawnAtMs !== undefined && t.gracefulAtMs <= t.withdrawnAtMs;
        const ok = ordered && t.sessionKept && lost.length === 0;
        return {
            name: `${t.pop} drained by the config: GRACEFUL_SHUTDOWN (65535:0) at the edge, then the withdrawal, no request lost`, ok,
            detail: t.withdrawnAtMs === undefined
                ? `not withdrawn (65535:0 ${t.gracefulAtMs === undefined ? "never seen" : `seen at +${ms(t.gracefulAtMs)}`}); ${await diagnose(cloud, t.pop)}`
                : `65535:0 ${t.gracefulAtMs === undefined ? "NEVER seen" : `at +${ms(t.gracefulAtMs)}`}, withdrawn at +${ms(t.withdrawnAtMs)} ` +
                    `(drainSeconds ${drainSeconds}); ${session}; ${requests}`,
        };
    }
    const ok = t.returnedAtMs !== undefined && t.sessionKept && lost.length === 0;
    return {
        name: `${t.pop} undrained by the config: announced again, unmarked, no request lost`, ok,
        detail: t.returnedAtMs === undefined
            ? `not announced again, unmarked (the edge ${await edgeHasPath(cloud, t.pop, prefix).catch(() => false) ? "has it marked 65535:0" : "has no route from it"}); ${await diagnose(cloud, t.pop)}`
            : `back at the edge at +${ms(t.returnedAtMs)}; ${session}; ${requests}`,
    };
}

/** The report as data (`--json`): as the rehearsal's, with what ran and what the edge saw. */
export function redeployJson(r: RedeployReport): Record<string, unknown> {
    return {
        format: "anycast-rehearsal-redeploy/1", ok: r.ok, slot: r.slot, configFile: r.configFile,
        steps: r.run.steps.map((st) => ({
            name: st.name, host: st.host, status: st.status, startedAtMs: st.startedAtMs, durationMs: st.durationMs,
            ...(st.status === "failed" ? { stderr: st.stderr } : {}),
        })),
        changed: r.changed, removed: r.removed, unchanged: r.unchanged, drained: r.drained, transitions: r.transitions, requests: r.requests,
        pops: r.pops, checks: r.checks, rewrites: r.rewrites, kept: r.kept,
    };
}

export function formatRedeploy(r: RedeployReport): string[] {
    return [
        "deploy onto the kept rehearsal",
        ...r.rewrites.flatMap((w) => wrap(w, "  rewritten for the rehearsal: ", "    ")),
        ...wrap(`${r.changed.length} of ${r.changed.length + r.unchanged} commands changed, ${r.removed.length} removed; ` +
            `a client following the edge sent ${r.requests.total} requests, ${r.requests.failed} failed` +
            `${r.requests.servedBefore ? `; served by ${r.requests.servedBefore} before, ${r.requests.servedAfter ?? "none"} after` : ""}`, "  ", "    "),
        "",
        ...(r.run.steps.length > 0 ? formatDeploySteps(r.run, "The commands that ran") : ["No command ran.", ""]),
        "PoPs at the end",
        ...table(["PoP", "at the edge", "session", "agent"], r.pops.map((p) => [
            p.name, p.announced ? "announced" : r.drained.includes(p.name) ? "withdrawn (drained)" : "NOT announced", `${p.session.state} since ${p.session.since || "?"}`,
            p.agent.error ? `no status: ${p.agent.error}` : `${p.agent.state ?? "?"} (${p.agent.version ?? "no version"})`,
        ])),
        "",
        "Checks",
        ...r.checks.flatMap((c) => wrap(`${c.name}: ${c.detail}`, `  ${c.ok ? "ok  " : "FAIL"} `, "       ")),
        r.ok ? "deploy onto the kept rehearsal passed" : "deploy onto the kept rehearsal FAILED",
    ];
}
