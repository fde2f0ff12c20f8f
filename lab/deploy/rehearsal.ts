/**
 * `anycast lab --deploy --config <stack file>`: the deploy path rehearsed end to end. Fresh
 * Debian 12 hosts boot on this machine (hosts.ts: systemd-nspawn, cloud-init NoCloud, an existing
 * server with a service and nftables table of its own); the stack's real remote commands (plan.ts:
 * the exact create scripts with their stdin, from the real program) run over real SSH in the
 * engine's order (remote.ts); an emulated provider edge (BIRD, in the cloud namespace, at the
 * PoPs' configured neighbour address) takes every PoP's BGP session. Then the checks:
 * - a second deploy with no change runs no command;
 * - a communities change on one PoP re-runs only that PoP's bird.conf push, and its session stays up;
 * - a PoP host reboot ends with it announcing again, with nothing else done;
 * - the existing origin keeps its own nftables table and its service;
 * - every PoP's health agent runs on Debian 12's own nodejs (18.x, installed by the deploy's push),
 *   under systemd, with no child process.
 *
 *
 * With `upgradeFrom` (`--upgrade-from <revision>`), the upgrade instead: the hosts boot with that
 * version's user data and get its deploy (previous.ts), then this version's deploy lands on them
 * as the next `pulumi up` would, and the checks are that every instance keeps its user data, the
 * upgrade replaces nothing and moves no PoP's route or session, every agent is the new one on
 * Debian's nodejs, the lab's report holds, and a deploy after it runs nothing.
 *
 * With `keep` (`--keep`), the hosts stay up when it ends, with the state a stack would hold after
 * this `pulumi up` (KeptRehearsal); redeploy.ts deploys a changed stack file onto them.
 *
 * What the rehearsal changes in the stack, and says so in its report: the hosts' SSH keys (its
 * own deploy key), the BGP password when the stack file has none in plain text, the deployer's
 * address added to adminCidrs (this machine is the deployer), and BFD off (this machine stalls
 * for longer than BFD's detection time; the lab measures BFD).
 */
import { NETWORK_NAME } from "../../stacks/network/stack";
import { sameSince } from "../session";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { canonical, familyOf } from "../../components/core/addressing";
import { readStackValues } from "../../harness/stackrun";
import { runUntracked } from "../exec";
import { EXISTING_SERVICE, existingServerState } from "./existing-host";
import { HostBlueprint } from "./host-blueprint";
import { DeployCloud, teardownOnSignals } from "./hosts";
import { changedCommands, changedInputs, deleteRun, DeployPlan, planDeploy, PlannedCommand, priorOutputsOf, PriorOutputs, removedCommands, UpdateInput, updateRun } from "./plan";
import { planPreviousVersion, PreviousDeploy } from "./previous";
import { formatSteps, RemoteRunReport, runRemoteCommands } from "./remote";
import { edgeBirdc, edgeHasPath, edgeSession, edgeSessions, edgeSocket, edgeTable, startEdge } from "./edge";
import { observe, RehearsalObservations, waitUntil } from "./observe";
import type { KeptFiles, RehearsalCheck, RehearsalPopState, RehearsalReport } from "./rehearsal-report";
import { ensureRootfs } from "./rootfs";
import { AGENT_PROGRAM } from "../../components/core/health/layout";

export interface RehearsalOptions {
    configFile: string;
    log?: (line: string) => void;
    /** How long every PoP may take to announce after the deploy (default 240 s: the machine stalls). */
    announceTimeoutMs?: number;
    /**
     * The upgrade rehearsal: a git revision of pulumi-anycast (e.g. 43c83ba, 0.1.0 with the bash
     * agent). The hosts boot with that version's user data and run its deploy; then this version's
     * deploy lands on them as the next `pulumi up` would (previous.ts).
     */
    upgradeFrom?: string;
    /** Leave the hosts running once they got their deploy, for `anycast status` and another deploy (redeploy.ts). */
    keep?: boolean;
}

const REHEARSAL_PASSWORD = "rehearsal-only-password";

export interface StackValues extends Record<string, unknown> {
    pops: Array<Record<string, unknown> & { name: string; host?: Record<string, unknown>; bgp?: Record<string, unknown>; communities?: string[] }>;
    origin: Record<string, unknown> & { name: string; host?: Record<string, unknown>; port?: number; healthPath?: string };
}

/** The stack file's values as the rehearsal deploys them, and what it changed to do so (see the header). */
export function rehearsalValues(raw: StackValues, cloud: DeployCloud): { values: StackValues; rewrites: string[]; deployer6: string } {
    const rewrites: string[] = [];
    const s = cloud.names;
    const values = structuredClone(raw);
    values.sshPublicKeys = [cloud.deployKey.publicKey];
    values.sshPrivateKey = cloud.deployKey.privateKey;
    rewrites.push("sshPublicKeys and sshPrivateKey: the rehearsal's own deploy key");
    if (typeof values.bgpPassword !== "string") {
        values.bgpPassword = REHEARSAL_PASSWORD;
        rewrites.push("bgpPassword: a rehearsal password (the stack file holds none in plain text)");
    }
    const firewall = { ...((values.firewall ?? {}) as Record<string, unknown>) };
    const deployer6 = s.uplink6[0];
    firewall.adminCidrs = [...((firewall.adminCidrs as string[] | undefined) ?? []), `${deployer6}/128`, `${s.uplink4[0]}/32`];
    values.firewall = firewall;
    values.deploy = { ...((values.deploy ?? {}) as Record<string, unknown>), deployerAddress: deployer6 };
    rewrites.push(`firewall.adminCidrs: + this machine (${deployer6}, ${s.uplink4[0]}), also deploy.deployerAddress`);
    for (const p of values.pops) {
        if (p.bgp?.bfd) {
            p.bgp = { ...p.bgp, bfd: false };
            rewrites.push(`pops.${p.name}.bgp.bfd: off (this machine stalls longer than BFD detects)`);
        }
    }
    return { values, rewrites, deployer6 };
}

export interface HostLayout {
    /** The PoPs, then the origin, as the stack file lists them. */
    hostsInOrder: Array<{ name: string; role: "pop" | "origin"; raw: Record<string, unknown> & { host?: Record<string, unknown> } }>;
    /** The addresses the cloud gives each new instance (as Vultr's instance outputs would). */
    instanceAddresses: Record<string, { ipv6: string; ipv4: string }>;
    /** Every host's addresses: an existing server keeps the one the stack names. */
    addressing: Record<string, HostBlueprint["addresses"]>;
}

/** Where each host of the stack lives in the slot's cloud. */
export function hostLayout(values: StackValues, s: DeployCloud["names"]): HostLayout {
    const block = (i: number) => ({ ipv6: `fdac:de:${s.slot.toString(16)}:${i.toString(16)}::2`, ipv4: `100.${64 + s.slot}.${i}.2` });
    const hostsInOrder: HostLayout["hostsInOrder"] = [...values.pops.map((p) => ({ name: p.name, role: "pop" as const, raw: p })),
        { name: values.origin.name, role: "origin" as const, raw: values.origin }];
    const instanceAddresses: HostLayout["instanceAddresses"] = {};
    const addressing: HostLayout["addressing"] = {};
    hostsInOrder.forEach((h, k) => {
        const i = k + 1;
        const existing = h.raw.host as { address?: string; address4?: string } | undefined;
        if (existing?.address) {
            const v6 = canonical(existing.address);
            if (familyOf(v6) !== 6) throw new Error(`${h.name}: the rehearsal needs an IPv6 host.address`);
            addressing[h.name] = { ipv6: `${v6}/64`, ipv4: existing.address4 ? `${existing.address4}/24` : `${block(i).ipv4}/24` };
        } else {
            instanceAddresses[h.name] = block(i);
            addressing[h.name] = { ipv6: `${block(i).ipv6}/64`, ipv4: `${block(i).ipv4}/24` };
        }
    });
    return { hostsInOrder, instanceAddresses, addressing };
}

/**
 * What a kept rehearsal records for the next deploy onto it (`anycast lab --deploy --keep`
 * again): what a stack's state would hold after this `pulumi up`. In the slot directory (0700),
 * owner-only, as it holds the deploy key and the BGP password.
 */
export interface KeptRehearsal {
    format: "anycast-rehearsal-kept/1";
    /** The stack file last deployed. */
    configFile: string;
    /** Its values as deployed (rehearsalValues). */
    values: StackValues;
    layout: Pick<HostLayout, "instanceAddresses" | "addressing">;
    /** Each new instance's user data, as it booted (a changed one would replace the instance). */
    userData: Record<string, string>;
    /** The remote commands as the hosts last ran them: the next deploy runs those whose inputs changed. */
    commands: PlannedCommand[];
    /** The provider-generated outputs (keys, certificates): the next deploy keeps them, as a stack's state does. */
    priorOutputs: PriorOutputs;
    /** The stack's outputs (`pulumi stack output --json`), for `anycast status`. */
    outputs: Record<string, unknown>;
    prefix: string;
}

export function keptFiles(cloud: DeployCloud): KeptFiles {
    const dir = cloud.slotDir;
    const outputsFile = path.join(dir, "outputs.json");
    const knownHostsFile = path.join(dir, "known_hosts");
    return {
        slot: cloud.slot, outputsFile, identityFile: cloud.deployKey.privateKeyFile, knownHostsFile,
        statusCommand: `anycast status --outputs ${outputsFile} --identity ${cloud.deployKey.privateKeyFile} --known-hosts ${knownHostsFile}`,
    };
}

/** Leave the hosts running with their record, and write the outputs file `anycast status` reads. */
export async function keepRehearsal(cloud: DeployCloud, record: KeptRehearsal): Promise<KeptFiles> {
    const files = keptFiles(cloud);
    fs.writeFileSync(files.outputsFile, JSON.stringify(record.outputs, null, 2) + "\n", { mode: 0o600 });
    await cloud.keep(record);
    return files;
}

/**
 * Run the rehearsal. It tears everything down before it returns or throws, unless `keep`: then
 * the hosts stay up once they got their deploy (the report's `kept` says where their files are).
 */
export async function rehearseDeploy(options: RehearsalOptions): Promise<RehearsalReport> {
    const log = options.log ?? (() => undefined);
    const raw = readStackValues(options.configFile) as StackValues;
    const rootfs = await ensureRootfs({ log });
    teardownOnSignals();
    const cloud = await DeployCloud.create({ rootfs, log });
    const held: Held = {};
    try {
        const report = await rehearse(cloud, raw, options, held, log);
        if (options.keep && held.record) report.kept = await keepRehearsal(cloud, held.record);
        return report;
    } finally {
        if (!cloud.kept) {
            if (held.edgePid !== undefined) {
                try {
                    process.kill(held.edgePid, "SIGTERM");
                } catch {
                    // gone
                }
            }
            if (options.keep && held.record) {
                // The rehearsal failed after the deploy: its hosts are kept as asked, to look at.
                const kept = await keepRehearsal(cloud, held.record);
                log(`  kept for a look, although the rehearsal did not finish: ${kept.statusCommand}`);
            } else {
                await cloud.teardown();
            }
        }
    }
}

/** What the rehearsal made that outlives a throw: the edge's pid, and (once deployed) the kept record. */
interface Held {
    edgePid?: number;
    record?: KeptRehearsal;
}

async function rehearse(cloud: DeployCloud, raw: StackValues, options: RehearsalOptions, held: Held, log: (line: string) => void): Promise<RehearsalReport> {
    {
        const s = cloud.names;
        const { values, rewrites, deployer6 } = rehearsalValues(raw, cloud);
        const { hostsInOrder, instanceAddresses, addressing } = hostLayout(values, s);

        // An upgrade: the earlier version's deploy first; this version's plan keeps its keys and certificates, as a stack's state does.
        const previous = options.upgradeFrom === undefined ? undefined : await planPreviousVersion(options.upgradeFrom, { values, instanceAddresses }, log);
        const replan = (v: StackValues) => planDeploy({ values: v, instanceAddresses, priorOutputs: previous?.priorOutputs });
        const plan = await replan(values);
        for (const n of plan.run.notes) log(`  note: ${n}`);
        const spec = plan.run.spec;

        // The emulated provider edge: every PoP's neighbour address, on the cloud namespace's lo.
        const popAddress = (name: string) => String(addressing[name]!.ipv6).split("/")[0];
        held.edgePid = await startEdge(cloud, spec, values.bgpPassword as string, popAddress);
        log(`  emulated edge: BIRD in ${s.cloudNs} at ${[...new Set(spec.pops.map((p) => p.bgp.neighbor.toString()))].join(", ")} (AS${spec.pops[0].bgp.remoteAsn})`);

        const originPort = spec.origin.port;
        const healthPath = spec.origin.healthPath;
        const blueprints: HostBlueprint[] = hostsInOrder.map((h) => {
            const rendered = plan.run.hosts.find((r) => r.name === h.name)!;
            const isExisting = (h.role === "pop" ? spec.pops.find((p) => p.name === h.name)!.host : spec.origin.host).kind === "existing";
            if (isExisting) {
                const user = String((h.raw.host as { user?: string }).user ?? "root");
                return {
                    name: h.name, kind: "existing",
                    existing: h.role === "origin" ? existingServerState({ user, port: originPort, healthPath }) : existingServerState({ user }),
                    addresses: addressing[h.name],
                };
            }
            return { name: h.name, kind: "new", userData: previous?.userData[h.name] ?? rendered.files["cloud-init.yaml"], addresses: addressing[h.name] };
        });

        // From empty hosts: boot, then the deploy in the engine's order.
        const t0 = Date.now();
        log(`  booting ${blueprints.length} hosts: ${blueprints.map((h) => `${h.name} (${h.kind})`).join(", ")}`);
        await cloud.addHosts(blueprints);
        const bootSeconds = (Date.now() - t0) / 1000;
        if (spec.origin.host.kind === "vultr") {
            // A new origin has no site yet: the user would deploy theirs; the rehearsal starts a stand-in.
            await cloud.exec(spec.origin.name, ["sh", "-c", `mkdir -p /srv/site && echo ok > /srv/site${healthPath === "/" ? "/index.html" : healthPath} && ` +
                `systemd-run --unit=site python3 -m http.server ${originPort} --bind :: --directory /srv/site`]);
        }
        const firstCommands = previous?.commands ?? plan.commands;
        log(`  deploy${previous ? ` of ${previous.version} (${previous.commit.slice(0, 12)})` : ""}: ${firstCommands.length} remote commands`);
        const deploy = await runRemoteCommands(firstCommands, {
            commandTimeoutMs: 10 * 60_000,
            onStep: (event, step) => {
                if (event === "end") log(`    ${step.name}: ${step.status} in ${(step.durationMs / 1000).toFixed(1)} s${step.status === "failed" ? ` (${step.stderr.split("\n").slice(-3).join(" | ")})` : ""}`);
            },
        });
        const deploySeconds = deploy.totalMs / 1000;
        // From here the hosts hold a deploy: a kept rehearsal records it, as a stack's state would.
        const userData = Object.fromEntries(blueprints.filter((h) => h.kind === "new").map((h) => [h.name, h.userData ?? ""]));
        held.record = {
            format: "anycast-rehearsal-kept/1", configFile: path.resolve(options.configFile), values, layout: { instanceAddresses, addressing }, userData,
            commands: firstCommands, priorOutputs: previous?.priorOutputs ?? priorOutputsOf(plan.run), outputs: plan.run.outputs, prefix: spec.prefixes[0].toString(),
        };
        const checks: RehearsalCheck[] = [];
        const announcedAfter: Record<string, number> = {};
        let totalSeconds = NaN;
        const upgrade: RehearsalReport["upgrade"] = previous && { from: previous.revision, commit: previous.commit, version: previous.version, deleted: [] };
        const failedSteps = (d: RemoteRunReport) => d.steps.filter((st) => st.status === "failed").map((st) => `${st.name}: ${st.stderr.split("\n").slice(-2).join(" ")}`).join("; ");
        if (!deploy.ok) {
            checks.push({ name: "the deploy", ok: false, detail: failedSteps(deploy) });
            return { ok: false, slot: s.slot, deploy, upgrade, announcedAfter, totalSeconds, bootSeconds, deploySeconds, checks, rewrites,
                pops: await popStates(cloud, spec.pops.map((p) => p.name), spec.prefixes[0].toString()) };
        }

        const prefix = spec.prefixes[0].toString();
        const timeout = options.announceTimeoutMs ?? 240_000;
        await Promise.all(spec.pops.map(async (p) => {
            if ((await waitUntil(() => edgeHasPath(cloud, p.name, prefix), timeout, 1000)) !== undefined) announcedAfter[p.name] = (Date.now() - t0) / 1000;
        }));
        const missing = spec.pops.filter((p) => announcedAfter[p.name] === undefined).map((p) => p.name);
        totalSeconds = missing.length === 0 ? Math.max(...Object.values(announcedAfter)) : NaN;
        checks.push({
            name: `every PoP announces after the first deploy${previous ? ` (${previous.version})` : ""}`, ok: missing.length === 0,
            detail: missing.length === 0
                ? spec.pops.map((p) => `${p.name} ${announcedAfter[p.name].toFixed(1)} s`).join(", ") + ` from empty hosts`
                : `${missing.join(", ")} not announcing ${timeout / 1000} s after the deploy; ${await diagnose(cloud, missing[0])}`,
        });

        if (previous && upgrade) {
            checks.push(checkUserDataKept(previous, plan, Object.keys(instanceAddresses)));
            if (missing.length > 0) {
                return { ok: false, slot: s.slot, deploy, upgrade, announcedAfter, totalSeconds, bootSeconds, deploySeconds, checks, rewrites,
                    pops: await popStates(cloud, spec.pops.map((p) => p.name), prefix) };
            }
            checks.push(await checkUpgrade(cloud, previous, plan, upgrade, timeout, log));
            // The hosts now run this version's commands, with the keys and certificates they kept.
            held.record = { ...held.record, commands: plan.commands, priorOutputs: priorOutputsOf(plan.run) };
        }

        let observations: RehearsalObservations | undefined;
        if (missing.length < spec.pops.length) {
            observations = await observe({
                cloud, spec, httpSources: plan.run.httpSources, edgeSocket: edgeSocket(cloud), deployerAddress: deployer6, log,
                tls: {
                    serverCaPem: previous?.originCaPem ?? plan.run.originCaPem,
                    pullClientCertPem: plan.run.originPullClient.certPem, pullClientKeyPem: plan.run.originPullClient.keyPem,
                },
                originMarker: spec.origin.host.kind === "existing" ? EXISTING_SERVICE.body.trim() : undefined,
            }, prefix);
        }
        checks.push(await checkAgentRuntime(cloud, spec.pops.map((p) => p.name)));
        checks.push(await checkStatus(cloud, plan.run.outputs));
        checks.push(await checkNoChange(plan, () => replan(values)));
        if (!previous) {
            // A fresh deploy's day-2 changes; the upgrade rehearsal proves the upgrade and leaves these to it.
            checks.push(await checkCommunities(cloud, plan, values, replan, prefix, log));
            checks.push(await checkReboot(cloud, spec.pops[spec.pops.length - 1].name, prefix, timeout, log));
        }
        if (spec.origin.host.kind === "existing") {
            checks.push(await checkExistingOrigin(cloud, spec.origin.name, originPort));
        }
        for (const c of checks) log(`  ${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
        const pops = await popStates(cloud, spec.pops.map((p) => p.name), prefix);
        return { ok: checks.every((c) => c.ok) && (observations?.problems.length ?? 1) === 0, slot: s.slot, deploy, upgrade, announcedAfter, totalSeconds, pops,
            bootSeconds, deploySeconds, observations, checks, rewrites };
    }
}

export async function diagnose(cloud: DeployCloud, pop: string): Promise<string> {
    const sess = await edgeSession(cloud, pop).catch(() => ({ state: "?", since: "" }));
    const script = [
        "echo units: $(systemctl is-active bird nginx anycast-health wg-quick@wg0 anycast-net 2>&1)",
        ". /etc/anycast/health.env 2>/dev/null; echo local: $(curl -s -o /dev/null -w '%{http_code}' -m 3 \"$PROXY_URL\" 2>&1) origin: $(curl -s -o /dev/null -w '%{http_code}' -m 3 \"$ORIGIN_URL\" 2>&1)",
        "echo wg: $(wg show wg0 latest-handshakes 2>&1 | tr '\\n' ' ')",
        "echo state: $(cat /run/anycast/state /var/lib/anycast/state 2>/dev/null | tr '\\n' ' ')",
        "echo bird: $(birdc show route export $(birdc show protocols | awk '$2==\"BGP\"{print $1; exit}') 2>&1 | tail -n +2 | tr '\\n' ' ')",
        "journalctl -u anycast-health -n 4 --no-pager -o cat 2>&1 | tail -4",
    ].join("; ");
    const agent = await cloud.exec(pop, ["sh", "-c", script], { allowFail: true })
        .catch((e: Error) => ({ stdout: e.message }));
    return `edge session ${sess.state}; on ${pop}: ${agent.stdout.replace(/\s+/g, " ").trim()}`;
}

/** Hosts are PoPs before they exist in the cloud; the BIRD config needs their addresses, so they are known up front. */
export async function checkNoChange(plan: DeployPlan, replan: () => Promise<DeployPlan>): Promise<RehearsalCheck> {
    const again = await replan();
    const changed = changedCommands(plan.commands, again.commands);
    const report = await runRemoteCommands(updateRun(changed));
    return {
        name: "a second deploy with no change runs no command", ok: changed.length === 0 && report.steps.length === 0,
        detail: changed.length === 0 ? `0 of ${again.commands.length} commands changed, 0 ran` : `would re-run ${changed.map((c) => c.name).join(", ")}`,
    };
}

async function checkCommunities(cloud: DeployCloud, plan: DeployPlan, values: StackValues,
    replan: (v: StackValues) => Promise<DeployPlan>, prefix: string, log: (l: string) => void): Promise<RehearsalCheck> {
    const name = "a communities change on one PoP re-runs only its bird.conf push, and its session stays up";
    const pop = values.pops[0].name;
    const changedValues = structuredClone(values);
    const community = "64600:64497";
    changedValues.pops[0].communities = [...(changedValues.pops[0].communities ?? []), community];
    const before = await edgeSession(cloud, pop);
    const next = await replan(changedValues);
    const changed = changedCommands(plan.commands, next.commands);
    const expected = [`${NETWORK_NAME}-${pop}-push-bird.conf`];
    const run = await runRemoteCommands(updateRun(changed));
    for (const line of formatSteps(run)) log(line);
    // The new community reaches the edge over the same session.
    const seen = await waitUntil(async () => (await edgeBirdc(cloud, ["show", "route", prefix, "table", edgeTable(pop), "all"])).includes(`(${community.replace(":", ",")})`), 60_000, 1000) !== undefined;
    const after = await edgeSession(cloud, pop);
    const stillAnnouncing = await edgeHasPath(cloud, pop, prefix);
    // Then back to the stack file as it is, so the hosts run what it says (a kept rehearsal deploys onto them again).
    const undo = await runRemoteCommands(updateRun(changedCommands(next.commands, plan.commands)));
    const ok = JSON.stringify(changed.map((c) => c.name)) === JSON.stringify(expected) && run.ok && seen
        && sameSince(before.since, after.since) && /Established/.test(after.state) && stillAnnouncing && undo.ok;
    return {
        name, ok,
        detail: `re-ran ${changed.map((c) => c.name).join(", ") || "nothing"} (${run.ok ? "ok" : "failed"}); community ${community} ${seen ? "seen" : "NOT seen"} at the edge; ` +
            `session ${after.state} since ${after.since} (before: since ${before.since}); undone after (${undo.ok ? "ok" : "FAILED"})`,
    };
}

/**
 * An upgrade keeps every Vultr instance: a changed userData would replace it (Vultr's provider),
 * so this version must render each new instance's cloud-init exactly as the earlier one did.
 */
function checkUserDataKept(previous: PreviousDeploy, plan: DeployPlan, instances: string[]): RehearsalCheck {
    const changed = instances.filter((h) => previous.userData[h] !== plan.run.hosts.find((r) => r.name === h)?.files["cloud-init.yaml"]);
    return {
        name: `every instance keeps ${previous.version}'s user data (a changed one would replace it)`, ok: changed.length === 0,
        detail: changed.length === 0 ? `${instances.join(", ") || "no instance"}: the same cloud-init` : `${changed.join(", ")}: cloud-init differs, so Vultr would replace them`,
    };
}

/**
 * This version's deploy onto hosts an earlier version deployed, as the next `pulumi up` runs it:
 * the commands whose inputs changed (updates: pulumi-command runs `create` again), the new ones,
 * and the removed ones (a Command without a delete script runs nothing on the host). Replaced
 * would be a command whose connection or (not ignored) triggers changed. Then each PoP's agent
 * must be this version, announcing, after enough rounds for rise and fall to have had their say,
 * and the edge must have seen no withdrawal, no changed route and no new session from any PoP.
 */
async function checkUpgrade(cloud: DeployCloud, previous: PreviousDeploy, plan: DeployPlan, upgrade: NonNullable<RehearsalReport["upgrade"]>,
    timeoutMs: number, log: (l: string) => void): Promise<RehearsalCheck> {
    const name = `this version's deploy onto ${previous.version}'s hosts replaces nothing, and no PoP's route or session moves`;
    const spec = plan.run.spec;
    const pops = spec.pops.map((p) => p.name);
    const before = await edgeSessions(cloud, pops);
    const changed = changedCommands(previous.commands, plan.commands);
    const old = new Map(previous.commands.map((c) => [c.name, c]));
    const replaced = changed.filter((c) => {
        const o = old.get(c.name);
        return o !== undefined && (JSON.stringify(o.connection) !== JSON.stringify(c.connection)
            || (!c.ignoreChanges.includes("triggers") && JSON.stringify(o.triggers) !== JSON.stringify(c.triggers)));
    });
    const created = changed.filter((c) => !old.has(c.name));
    const removed = removedCommands(previous.commands, plan.commands);
    log(`  upgrade to this version: ${changed.length - created.length} update(s), ${created.length} new, ${removed.length} removed, ${replaced.length} replaced`);
    const t0 = Date.now();
    const run = await runRemoteCommands(updateRun(changed), {
        commandTimeoutMs: 10 * 60_000,
        onStep: (event, step) => {
            if (event === "end") log(`    ${step.name}: ${step.status} in ${(step.durationMs / 1000).toFixed(1)} s${step.status === "failed" ? ` (${step.stderr.split("\n").slice(-3).join(" | ")})` : ""}`);
        },
    });
    upgrade.run = run;
    // The engine deletes what the program no longer has after its creates and updates.
    const withScript = deleteRun(removed);
    const deletes = withScript.length === 0 ? undefined : await runRemoteCommands(withScript);
    upgrade.deleted = removed.map((c) => c.name);
    const version = String((JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "..", "package.json"), "utf8")) as { version: string }).version);
    // Rounds enough for a wrong decision to show: a withdrawal takes `fall` bad rounds, a return `rise`.
    const rounds = 3 * (spec.health.rise + spec.health.fall);
    const status = async (pop: string) => {
        const out = await cloud.exec(pop, [AGENT_PROGRAM, "status"], { allowFail: true });
        return JSON.parse(out.stdout) as { agent_version?: string; state?: string; seq?: number };
    };
    const settled: Record<string, number | undefined> = {};
    await Promise.all(pops.map(async (pop) => {
        const at = await waitUntil(async () => {
            const st = await status(pop);
            return st.agent_version === version && st.state === "announced" && (st.seq ?? 0) >= rounds;
        }, timeoutMs, 1000);
        settled[pop] = at === undefined ? undefined : (at - t0) / 1000;
    }));
    const after = await edgeSessions(cloud, pops);
    const moved = pops.flatMap((pop) => {
        const [b, a] = [before[pop], after[pop]];
        const out: string[] = [];
        if (a.state !== "Established") out.push(`${pop}: session ${a.state}`);
        if (!sameSince(b.since, a.since)) out.push(`${pop}: session restarted (since ${b.since} -> ${a.since})`);
        if (a.withdraws !== b.withdraws) out.push(`${pop}: ${a.withdraws - b.withdraws} withdrawal(s) at the edge`);
        if (a.updates !== b.updates) out.push(`${pop}: ${a.updates - b.updates} changed route(s) at the edge`);
        return out;
    });
    const unsettled = pops.filter((p) => settled[p] === undefined);
    const ok = run.ok && (deletes?.ok ?? true) && replaced.length === 0 && moved.length === 0 && unsettled.length === 0;
    const names = (cs: PlannedCommand[]) => cs.map((c) => c.name.replace(`${NETWORK_NAME}-`, "")).join(", ") || "none";
    return {
        name, ok,
        detail: [
            `${run.steps.length} command(s) ran (${run.ok ? "ok" : `FAILED: ${run.steps.filter((st) => st.status === "failed").map((st) => st.name).join(", ")}`}) in ${(run.totalMs / 1000).toFixed(1)} s`,
            `updated ${updatedByInput(changed.filter((c) => old.has(c.name)), old)}`,
            `new ${names(created)}`,
            `removed ${names(removed)} (${withScript.length === 0 ? "no delete script: nothing ran on the hosts" : `${withScript.length} delete script(s) ${deletes?.ok ? "ran" : "FAILED"}`})`,
            `replaced ${names(replaced)}`,
            unsettled.length === 0
                ? `agents ${version}, announcing, ${rounds} rounds in: ${pops.map((p) => `${p} ${settled[p]!.toFixed(1)} s`).join(", ")}`
                : `${unsettled.join(", ")}: no agent ${version} announcing ${rounds} rounds in within ${timeoutMs / 1000} s; ${await diagnose(cloud, unsettled[0])}`,
            moved.length === 0 ? "at the edge: no withdrawal, no changed route, every session kept" : `at the edge: ${moved.join("; ")}`,
        ].join("; "),
    };
}

const INPUT_WORDS: Record<UpdateInput, string> = { create: "script", stdin: "content", environment: "environment", triggers: "triggers" };

/** The updated commands grouped by which inputs changed ("create" alone: the push script itself, its content the same). */
export function updatedByInput(updated: PlannedCommand[], old: Map<string, PlannedCommand>): string {
    const groups = new Map<string, string[]>();
    for (const c of updated) {
        const key = changedInputs(old.get(c.name)!, c).map((k) => INPUT_WORDS[k]).join(" and ");
        groups.set(key, [...(groups.get(key) ?? []), c.name.replace(`${NETWORK_NAME}-`, "")]);
    }
    return groups.size === 0 ? "none" : [...groups].map(([k, ns]) => `${ns.length} for a changed ${k} (${ns.join(", ")})`).join(", ");
}

async function checkReboot(cloud: DeployCloud, pop: string, prefix: string, timeoutMs: number, log: (l: string) => void): Promise<RehearsalCheck> {
    const t0 = Date.now();
    const r = await cloud.reboot(pop);
    log(`  ${pop} rebooted: down ${(r.downMs / 1000).toFixed(1)} s, boot to SSH ${(r.bootToSshMs / 1000).toFixed(1)} s`);
    const back = (await waitUntil(() => edgeHasPath(cloud, pop, prefix), timeoutMs, 1000)) !== undefined;
    const seconds = (Date.now() - t0) / 1000;
    return {
        name: "a PoP host reboot ends with it announcing again, unaided", ok: back,
        detail: back ? `${pop} announcing ${seconds.toFixed(1)} s after the reboot began` : `${pop} not announcing ${timeoutMs / 1000} s after boot; ${await diagnose(cloud, pop)}`,
    };
}

/**
 * The agent as a Vultr Debian 12 host runs it: Debian's nodejs package (its version carries
 * "deb12"; bookworm ships 18.x), the unit active, and no process under it (checks run in-process).
 */
async function checkAgentRuntime(cloud: DeployCloud, pops: string[]): Promise<RehearsalCheck> {
    const seen: string[] = [];
    let ok = true;
    for (const pop of pops) {
        const out = async (argv: string[]) => (await cloud.exec(pop, argv, { allowFail: true })).stdout.trim();
        const pkg = await out(["dpkg-query", "-W", "-f=${Version}", "nodejs"]);
        const node = await out(["node", "--version"]);
        const active = await out(["systemctl", "is-active", "anycast-health"]);
        const pid = await out(["systemctl", "show", "-p", "MainPID", "--value", "anycast-health"]);
        const children = (await out(["ps", "--no-headers", "-o", "pid", "--ppid", pid || "0"])).split("\n").filter((l) => l.trim() !== "").length;
        const good = /deb12/.test(pkg) && /^v18\./.test(node) && active === "active" && children === 0;
        ok &&= good;
        seen.push(`${pop}: nodejs ${pkg || "NOT INSTALLED"} (${node || "no node"}), anycast-health ${active}, ${children} child process(es)`);
    }
    return { name: "every PoP's agent runs on Debian's nodejs 18 under systemd, forking nothing", ok, detail: seen.join("; ") };
}

/**
 * `anycast status` as a user runs it after `pulumi up`: the stack's outputs in a file, the deploy
 * key, real SSH to every PoP. Every PoP reads announced as it should, with its session
 * Established and a path to the origin up.
 */
export async function checkStatus(cloud: DeployCloud, outputs: Record<string, unknown>): Promise<RehearsalCheck> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-status-"));
    try {
        const file = path.join(dir, "outputs.json");
        fs.writeFileSync(file, JSON.stringify(outputs));
        const key = path.join(dir, "deploy-key");
        fs.writeFileSync(key, cloud.deployKey.privateKey.endsWith("\n") ? cloud.deployKey.privateKey : `${cloud.deployKey.privateKey}\n`, { mode: 0o600 });
        const cli = path.join(__dirname, "..", "..", "..", "bin", "anycast.js");
        const args = ["status", "--outputs", file, "--identity", key, "--known-hosts", path.join(dir, "known_hosts"), "--json"];
        const r = await runUntracked(process.execPath, [cli, ...args], { timeoutMs: 120_000, allowFail: true });
        let pops: Array<{ name: string; state: string; drained: boolean; ok: boolean; why: string; session: { state: string } | null; paths: Array<{ up: boolean }> }>;
        try {
            pops = (JSON.parse(r.stdout) as { pops: typeof pops }).pops;
        } catch {
            return { name: "anycast status over SSH", ok: false, detail: `exit ${r.code}, no JSON: ${(r.stderr || r.stdout).trim().split("\n").slice(-2).join(" ")}` };
        }
        const ok = r.code === 0 && pops.length > 0 && pops.every((p) => p.ok && p.session?.state === "Established" && p.paths.some((x) => x.up));
        return {
            name: "anycast status over SSH: every PoP as the config says (announced, or drained), session Established, a path up", ok,
            detail: `exit ${r.code}; ` + pops.map((p) => `${p.name} ${p.state}${p.drained ? " (drained)" : ""}, session ${p.session?.state ?? "unknown"}, ` +
                `${p.paths.filter((x) => x.up).length} of ${p.paths.length} paths up${p.ok ? "" : ` (${p.why})`}`).join("; "),
        };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

async function checkExistingOrigin(cloud: DeployCloud, origin: string, port: number): Promise<RehearsalCheck> {
    const [family, table] = EXISTING_SERVICE.nftTable.split(" ");
    const tables = await cloud.exec(origin, ["nft", "list", "tables"], { allowFail: true });
    const own = (await cloud.exec(origin, ["nft", "list", "table", family, table], { allowFail: true })).code === 0;
    const ours = tables.stdout.includes("table inet anycast");
    const active = (await cloud.exec(origin, ["systemctl", "is-active", EXISTING_SERVICE.unit], { allowFail: true })).stdout.trim();
    const h = cloud.host(origin);
    // From inside the host: the origin's service port is the mesh's only (the firewall guards it on an existing server too).
    const curl = await runUntracked("ip", ["netns", "exec", h.netns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", `http://[::1]:${port}/`],
        { timeoutMs: 15_000, allowFail: true });
    const ok = own && ours && active === "active" && curl.stdout === "200";
    return {
        name: "the existing origin keeps its own nftables table and its service", ok,
        detail: `table ${EXISTING_SERVICE.nftTable} ${own ? "kept" : "GONE"} beside inet anycast (${ours ? "loaded" : "missing"}); ` +
            `${EXISTING_SERVICE.unit} ${active}; its site answers on the host itself with HTTP ${curl.stdout || "nothing"}`,
    };
}

/** Every PoP's final state: the edge's route and session, and its agent's own word. */
export async function popStates(cloud: DeployCloud, pops: string[], prefix: string): Promise<RehearsalPopState[]> {
    return Promise.all(pops.map(async (name): Promise<RehearsalPopState> => {
        const out = await cloud.exec(name, [AGENT_PROGRAM, "status"], { allowFail: true }).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message }));
        let agent: RehearsalPopState["agent"];
        try {
            const st = JSON.parse(out.stdout) as { state?: string; agent_version?: string };
            agent = { state: st.state, version: st.agent_version };
        } catch {
            agent = { error: (out.stderr || out.stdout).trim().split("\n").slice(-1)[0] || `anycast-health status exited ${out.code}` };
        }
        return { name, announced: await edgeHasPath(cloud, name, prefix).catch(() => false), session: await edgeSession(cloud, name).catch(() => ({ state: "unknown", since: "" })), agent };
    }));
}

export type { PlannedCommand };
// The report's shape and its text have a file of their own; the CLI and the redeploy find them here too.
export { formatDeploySteps, formatRehearsal, rehearsalJson } from "./rehearsal-report";
export type { KeptFiles, RehearsalCheck, RehearsalPopState, RehearsalReport } from "./rehearsal-report";
