/**
 * The lab's report on the rehearsal's deployed hosts: BGP sessions from both ends, catchment at
 * the emulated edge, HTTPS through each PoP, who may reach what, and one failover experiment.
 * It reuses the lab's own probes (lab/exposure.ts connects and drop counters, lab/measure.ts's
 * curl with the origin-pull certificate, lab/prober.ts) and its report layout (lab/text.ts,
 * lab/report.ts); only what differs on real hosts lives here.
 *
 * What differs from the lab, and why:
 * - one emulated provider edge (BIRD in the cloud namespace) instead of one edge and transit per
 *   region: catchment is the edge's best path for the prefix, with every other PoP's route
 *   present as an alternative; there are no regions whose clients each reach their own PoP;
 * - the clients that play Cloudflare have addresses inside the stack's HTTP sources (Cloudflare's
 *   published ranges unless firewall.httpSources is set, as in the lab); one follows the edge's
 *   best path, and one per PoP is pinned to that PoP by source-address policy routing in the
 *   cloud namespace onto a kernel table the edge fills from that PoP's BGP session alone;
 * - one experiment, proxy loss (nginx stopped on the PoP the edge prefers): the deployed health
 *   agent withdraws, the edge loses that path and the other PoPs serve. The lab's crash, link
 *   loss and drain experiments kill or cut parts of PoPs the lab runs itself; here the PoPs are
 *   whole hosts under systemd, and BFD is off (this machine stalls longer than BFD detects).
 */
import * as path from "node:path";
import { familyOf, nthAddress, parseCidr } from "../../components/core/addressing";
import { AnycastSpec } from "../../components/core/model";
import { PROMETHEUS_LISTEN } from "../../components/core/monitoring/prometheus";
import { shellQuote } from "../../components/core/shell";
import { birdc, parseProtocols, parseRoutes, RouteEntry } from "../birdc";
import { poll, runUntracked, sleep } from "../exec";
import { agentMs, SLACK_MS } from "../experiments";
import { probeExposureOf, probeUdpExposureOf, ProbeSource, ReachProbe } from "../exposure";
import { curlHttps, writeCloudflareSide } from "../measure";
import { failureSummary, probeOnce, Prober } from "../probe";
import { ExperimentReport, ExperimentRun, formatExperiments, formatExposure, HttpsResult, stats } from "../report";
import { ms, table, wrap } from "../text";
import { probeTimeline } from "../timeline";
import { edgeHasPath, edgeKernelTable, edgeProto, edgeTable } from "./edge";
import type { DeployClient } from "./host-blueprint";
import { DeployCloud } from "./hosts";


export interface ObserveContext {
    cloud: DeployCloud;
    spec: AnycastSpec;
    /** Who the rendered firewalls let reach HTTP(S) (the stack run's httpSources). */
    httpSources: string[];
    /** Cloudflare's side: the Origin CA that signed the PoPs' certificate and the origin-pull client certificate. */
    tls: { serverCaPem: string; pullClientCertPem: string; pullClientKeyPem: string };
    edgeSocket: string;
    /** This machine's address: the deployer, inside adminCidrs. */
    deployerAddress: string;
    /** The first line the origin answers GET / with, when the rehearsal knows it. */
    originMarker?: string;
    log: (line: string) => void;
}

/** Prometheus on the monitoring origin, as deployed (anycast:monitoring). */
export interface RehearsalMonitoring {
    origin: string;
    targets: number;
    up: number;
    /** pop/job of the targets not up. */
    down: string[];
    firing: string[];
    /** PoPs whose agent exports a WireGuard handshake. */
    handshakesFrom: number;
    /** ms from the check's start until every target was up. */
    afterMs?: number;
}

export interface RehearsalSession {
    pop: string;
    /** The edge's side: BGP state, since when, routes received and the communities on the prefix. */
    edgeState: string;
    edgeSince: string;
    received?: number;
    communities: string;
    /** The PoP's own BIRD: its BGP protocols. */
    popSide: Array<{ protocol: string; state: string; since: string; exported?: number; imported?: number; lastError?: string }>;
}

export interface RehearsalCatchment {
    prefix: string;
    /** Every route the edge holds for the prefix, the best first. */
    routes: Array<{ pop: string; best: boolean; asPath: string; communities: string }>;
    client: string;
    bestPop?: string;
    servedBy?: string;
    status?: number;
    ms?: number;
    error?: string;
}

export interface RehearsalHttps {
    /** The PoP the client is pinned to. */
    pop: string;
    client: string;
    withCert: HttpsResult;
    withoutCert: HttpsResult;
}

export interface RehearsalObservations {
    /** The anycast address and the front door hostname the clients asked for (SNI and Host). */
    service: { address: string; hostname: string };
    sessions: RehearsalSession[];
    catchment: RehearsalCatchment;
    https: RehearsalHttps[];
    admin: string;
    exposure: ReachProbe[];
    /** When the config has anycast:monitoring. */
    monitoring?: RehearsalMonitoring;
    experiment: ExperimentReport;
    /** The edge's view in the experiment: ms from the fault until the PoP's path left, and from the repair until it was back. */
    edgePath?: { withdrawnMs?: number; backMs?: number; withdrawalsBefore?: number };
    problems: string[];
}

interface Clients {
    catchment: DeployClient;
    pinned: Map<string, DeployClient>;
    outsider: DeployClient;
}

/** The client that follows the edge's best path, as Cloudflare's nearest data centre would. */
export const CATCHMENT_CLIENT = "cf";

/** The n-th address of the stack's first IPv6 HTTP source range: where a client may reach the anycast address from. */
export function httpSourceAddress(httpSources: string[], n: number): string {
    const range = httpSources.find((s) => familyOf(s.split("/")[0]) === 6);
    if (!range) throw new Error("the stack's HTTP sources hold no IPv6 range: no client can reach the (IPv6) anycast address");
    return nthAddress(parseCidr(range, false), n);
}

/** Client addresses inside the stack's IPv6 HTTP sources: one follows the edge, one per PoP is pinned to it. */
async function addClients(ctx: ObserveContext): Promise<Clients> {
    const { cloud, spec } = ctx;
    const at = (n: number) => httpSourceAddress(ctx.httpSources, n);
    const catchment = await cloud.addClient(CATCHMENT_CLIENT, at(0x10));
    const pinned = new Map<string, DeployClient>();
    for (const [i, p] of spec.pops.entries()) {
        const c = await cloud.addClient(`p${i}`, at(0x100 + i));
        pinned.set(p.name, c);
        // The PoP's own kernel table, filled by the edge from that PoP's session only; unreachable when it withdraws.
        await ipBatch6(cloud.cloudNs, [`route add unreachable default table ${edgeKernelTable(i)} metric 4294967295`,
            `rule add from ${c.address} lookup ${edgeKernelTable(i)} priority ${1000 + i}`]);
    }
    const outsider = await cloud.addClient("out", `fdac:de:${cloud.slot.toString(16)}:fe00::2`);
    return { catchment, pinned, outsider };
}

async function ipBatch6(ns: string, commands: string[]): Promise<void> {
    await runUntracked("ip", ["-6", "-n", ns, "-batch", "-"], { input: commands.join("\n") + "\n", timeoutMs: 20_000 });
}

async function edgeBirdc(ctx: ObserveContext, command: string): Promise<string> {
    return birdc(ctx.cloud.cloudNs, ctx.edgeSocket, command, 20_000);
}

async function edgeRoutes(ctx: ObserveContext, prefix: string, table?: string): Promise<RouteEntry[]> {
    try {
        return parseRoutes(await edgeBirdc(ctx, `show route ${prefix}${table ? ` table ${table}` : ""} all`));
    } catch (e) {
        if (/Network not found/.test((e as Error).message)) return [];
        throw e;
    }
}

async function readSessions(ctx: ObserveContext, prefix: string, problems: string[]): Promise<RehearsalSession[]> {
    const out: RehearsalSession[] = [];
    for (const p of ctx.spec.pops) {
        const edge = parseProtocols(await edgeBirdc(ctx, `show protocols all ${edgeProto(p.name)}`))[0];
        const routes = await edgeRoutes(ctx, prefix, edgeTable(p.name));
        const popRes = await ctx.cloud.exec(p.name, ["birdc", "show", "protocols", "all"], { allowFail: true });
        const popSide = parseProtocols(popRes.stdout).filter((x) => x.proto === "BGP").map((x) => ({
            protocol: x.name, state: x.bgpState ?? x.info, since: x.since, exported: x.routes?.exported, imported: x.routes?.imported, lastError: x.lastError,
        }));
        const s: RehearsalSession = {
            pop: p.name, edgeState: edge?.bgpState ?? edge?.info ?? "unknown", edgeSince: edge?.since ?? "", received: edge?.routes?.imported,
            communities: routes[0]?.communities ?? "", popSide,
        };
        out.push(s);
        if (s.edgeState !== "Established") problems.push(`sessions: the edge's session with ${p.name} is ${s.edgeState}`);
        if (popSide.length === 0 || popSide.some((x) => x.state !== "Established")) {
            problems.push(`sessions: ${p.name}'s BIRD reports ${popSide.map((x) => `${x.protocol} ${x.state}`).join(", ") || `no BGP protocol (${popRes.stderr.trim()})`}`);
        }
        if (popSide.some((x) => (x.imported ?? 0) > 0)) problems.push(`sessions: ${p.name} imported routes from the edge (must be none)`);
        if (routes.length !== 1) problems.push(`sessions: the edge has ${routes.length} routes for ${prefix} from ${p.name}, not 1`);
        // BIRD shows standard communities as (asn,value) under BGP.community (large ones elsewhere).
        const wanted = p.communities.flatMap((c) => (c.kind === "standard" ? [`(${c.asn},${c.value})`] : []));
        const missing = wanted.filter((c) => !s.communities.includes(c));
        if (missing.length > 0) problems.push(`sessions: ${p.name}'s route lacks the configured communities ${missing.join(" ")} at the edge`);
    }
    return out;
}

async function measureCatchment(ctx: ObserveContext, clients: Clients, prefix: string, problems: string[]): Promise<RehearsalCatchment> {
    const routes = await edgeRoutes(ctx, prefix);
    const popOf = (r: RouteEntry) => ctx.spec.pops.find((p) => edgeProto(p.name) === r.from)?.name ?? r.from;
    const sorted = [...routes].sort((a, b) => Number(b.best) - Number(a.best));
    const bestPop = sorted.find((r) => r.best) ? popOf(sorted.find((r) => r.best)!) : undefined;
    const s = await probeOnce(clients.catchment.netns, { address: ctx.spec.address.toString(), host: ctx.spec.frontDoor.hostname }, 3000);
    const c: RehearsalCatchment = {
        prefix, client: clients.catchment.address, bestPop,
        routes: sorted.map((r) => ({ pop: popOf(r), best: r.best, asPath: r.asPath, communities: r.communities })),
        servedBy: s.pop, status: s.status, ms: s.done - s.sent, error: s.error,
    };
    const missing = ctx.spec.pops.map((p) => p.name).filter((n) => !c.routes.some((r) => r.pop === n));
    if (missing.length > 0) problems.push(`catchment: the edge has no path for ${prefix} from ${missing.join(", ")}`);
    if (!bestPop) problems.push(`catchment: the edge has no best path for ${prefix}`);
    if (c.status !== 200 || c.servedBy !== bestPop) {
        problems.push(`catchment: the client got ${c.status ?? c.error} from ${c.servedBy ?? "no PoP"}; the edge's best path is ${bestPop ?? "none"}`);
    }
    return c;
}

async function checkHttps(ctx: ObserveContext, clients: Clients, problems: string[]): Promise<RehearsalHttps[]> {
    const tlsDir = writeCloudflareSide(path.join(ctx.cloud.slotDir, "cloudflare-side"), ctx.tls);
    const out: RehearsalHttps[] = [];
    for (const p of ctx.spec.pops) {
        const c = clients.pinned.get(p.name)!;
        const h: RehearsalHttps = {
            pop: p.name, client: c.address,
            withCert: await curlHttps(c.netns, ctx.spec.address.toString(), ctx.spec.frontDoor.hostname, tlsDir, true, 5),
            withoutCert: await curlHttps(c.netns, ctx.spec.address.toString(), ctx.spec.frontDoor.hostname, tlsDir, false, 5),
        };
        out.push(h);
        const w = h.withCert;
        if (w.status !== 200 || w.servedBy !== p.name) {
            problems.push(`HTTPS pinned to ${p.name}: ${w.status ?? w.error} from ${w.servedBy ?? "no PoP"}, expected 200 from ${p.name}`);
        } else if (ctx.originMarker !== undefined && w.firstLine !== ctx.originMarker) {
            problems.push(`HTTPS pinned to ${p.name}: the answer's first line is ${JSON.stringify(w.firstLine)}, not the origin's ${JSON.stringify(ctx.originMarker)}`);
        }
        if (h.withoutCert.status === 200) problems.push(`HTTPS pinned to ${p.name}: served without the origin-pull client certificate`);
    }
    return out;
}

async function probeHosts(ctx: ObserveContext, clients: Clients, problems: string[]): Promise<ReachProbe[]> {
    const { cloud, spec } = ctx;
    const pop = spec.pops[0];
    const popHost = cloud.host(pop.name);
    const origin = cloud.host(spec.origin.name);
    const src = (c: DeployClient, label: string): ProbeSource & { ns: string } => ({ ns: c.netns, label: `${label} ${c.address}`, address: c.address });
    const outsider = src(clients.outsider, "outsider");
    const popTarget = { label: `PoP ${pop.name}, unicast`, address: popHost.ipv6! };
    const probes = await probeExposureOf({
        spec, httpSources: ctx.httpSources, pop,
        sources: {
            outsider, client: src(clients.catchment, "client"),
            pop: { ns: popHost.netns, label: `PoP ${pop.name} (mesh peer)`, address: popHost.ipv6! },
            meshPeer: { ns: origin.netns, label: `origin ${spec.origin.meshAddress} (mesh peer)`, address: spec.origin.meshAddress.toString() },
            admin: { label: `deployer ${ctx.deployerAddress}`, address: ctx.deployerAddress },
        },
        targets: {
            anycast: { label: "anycast address", address: spec.address.toString() }, pop: popTarget,
            popMesh: { label: `PoP ${pop.name}, mesh`, address: pop.meshAddress.toString() },
            originPublic: { label: "origin, public", address: origin.ipv6! },
            originMesh: { label: "origin, mesh", address: spec.origin.meshAddress.toString() },
        },
        adminNote: "(the deployer: this machine)",
    });
    probes.push(...await probeUdpExposureOf(outsider, popHost.netns, popTarget, spec.mesh.port));
    for (const p of probes.filter((x) => !x.ok)) problems.push(`exposure: ${p.from} -> ${p.to} ${p.protocol}/${p.port}: ${p.result}, expected ${p.expect} (${p.rule})`);
    return probes;
}

export const PROBE_INTERVAL_MS = 100;
export const PROBE_TIMEOUT_MS = 1500;
const HEALTH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin anycast-health";

/** Poll `check` every `everyMs` until it holds: the time (epoch ms) it first held, undefined after `timeoutMs`. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<number | undefined> {
    return poll(async () => (await check()) && Date.now(), timeoutMs, everyMs);
}

/**
 * Proxy loss on the PoP the edge prefers: `systemctl stop nginx`, then `systemctl start nginx`.
 * The client that follows the edge's best path probes throughout; times count from the start
 * of the fault's and the repair's command, as in the lab's experiments.
 */
async function proxyLoss(ctx: ObserveContext, clients: Clients, prefix: string, own: string | undefined):
    Promise<{ report: ExperimentReport; edgePath?: RehearsalObservations["edgePath"] }> {
    const { spec, cloud } = ctx;
    const base = {
        id: "proxyLoss" as const, title: "Proxy loss", fault: "systemctl stop nginx on the PoP the edge prefers",
        repair: "systemctl start nginx", probeIntervalMs: PROBE_INTERVAL_MS,
    };
    if (spec.pops.length < 2 || !own) {
        return { report: { ...base, runs: [], skipped: spec.pops.length < 2 ? "one PoP: no other can take over" : "the edge has no best path", failedTotal: 0 } };
    }
    const popSpec = spec.pops.find((p) => p.name === own)!;
    const bounds = {
        failoverMs: agentMs(spec, spec.health.fall + 1) + SLACK_MS,
        recoveryMs: agentMs(spec, spec.health.rise + 1) + 2 * SLACK_MS,
        basis: `health interval ${spec.health.interval} s, fall ${spec.health.fall}, rise ${spec.health.rise}`,
    };
    const run: ExperimentRun = { pop: own, region: popSpec.host.kind === "vultr" ? popSpec.host.region : "existing host", failedDuringFailover: 0, failedDuringRecovery: 0, requests: 0, bounds };
    const edgePath: RehearsalObservations["edgePath"] = {};
    const prober = new Prober(clients.catchment.netns, { address: spec.address.toString(), host: spec.frontDoor.hostname }, PROBE_INTERVAL_MS, PROBE_TIMEOUT_MS);
    let faultIn = false;
    let withdrawalsBefore = NaN;
    // When the fault's and the repair's commands started (epoch ms), for the run's timeline.
    const at: { fault?: number; repair?: number } = {};
    try {
        if (!await prober.waitForStreak(Date.now(), 5, (s) => s.ok && s.pop === own, 60_000)) {
            const last = prober.samples.slice(-3).map((x) => (x.ok ? `served by ${x.pop}` : x.error ?? `http ${x.status} from ${x.pop ?? "?"}`));
            throw new Error(`before the fault, the client is not served by ${own}, the edge's best path, 5 times in a row within 60 s ` +
                `(last: ${last.join(", ") || "no answers"})`);
        }
        // The agent counts the deploy's own withdrawals (it starts before the origin answers);
        // they are forgotten first, as between the lab's runs, so this measures failover, not damping.
        const before = await cloud.exec(own, ["sh", "-c", `${HEALTH} status`], { allowFail: true });
        withdrawalsBefore = Number(/"withdrawals_last_hour":(\d+)/.exec(before.stdout)?.[1] ?? NaN);
        await cloud.exec(own, ["sh", "-c", `${HEALTH} release`], { allowFail: true });
        const t0 = at.fault = Date.now();
        await cloud.exec(own, ["systemctl", "stop", "nginx"]);
        faultIn = true;
        const gone = await waitUntil(async () => !await edgeHasPath(ctx.cloud, own, prefix), bounds.failoverMs);
        if (gone !== undefined) edgePath.withdrawnMs = gone - t0;
        const moved = await prober.waitFor(t0, (s) => s.ok && s.pop !== own, bounds.failoverMs);
        if (!moved) {
            const last = prober.samples.slice(-3).map((x) => (x.ok ? `served by ${x.pop}` : x.error ?? `http ${x.status} from ${x.pop ?? "?"}`)).join(", ");
            const paths = (await edgeRoutes(ctx, prefix).catch(() => [])).map((r) => `${r.from}${r.best ? " (best)" : ""}`).join(", ");
            throw new Error(`no other PoP served the client within ${bounds.failoverMs / 1000} s (${bounds.basis}); ` +
                `last answers: ${last || "none"}; the edge's paths: ${paths || "none"}`);
        }
        run.failoverMs = moved.done - t0;
        run.servedBy = moved.pop;
        if (gone === undefined) throw new Error(`the edge still has ${own}'s path ${bounds.failoverMs / 1000} s after nginx stopped`);

        const t1 = at.repair = Date.now();
        await cloud.exec(own, ["systemctl", "start", "nginx"]);
        faultIn = false;
        const back = await waitUntil(() => edgeHasPath(ctx.cloud, own, prefix), bounds.recoveryMs);
        if (back !== undefined) edgePath.backMs = back - t1;
        const served = await prober.waitFor(t1, (s) => s.ok && s.pop === own, bounds.recoveryMs);
        if (!served) {
            const status = await cloud.exec(own, ["sh", "-c", `${HEALTH} status; systemctl is-active nginx`], { allowFail: true });
            throw new Error(`${own} did not serve the client again within ${bounds.recoveryMs / 1000} s of the repair (agent: ${status.stdout.replace(/\s+/g, " ").trim()})`);
        }
        run.recoveryMs = served.done - t1;
        await sleep(PROBE_TIMEOUT_MS + 50);
        const failedIn = (from: number, to: number) => prober.samples.filter((s) => !s.ok && s.sent >= from && s.sent < to);
        const faultPhase = failedIn(t0 - PROBE_TIMEOUT_MS, t1);
        const recoveryPhase = failedIn(t1, served.done);
        run.failedDuringFailover = faultPhase.length;
        run.failedDuringRecovery = recoveryPhase.length;
        run.failures = [failureSummary(faultPhase), failureSummary(recoveryPhase)].filter((x) => x).join("; ") || undefined;
    } catch (err) {
        run.error = (err as Error).message.split("\n")[0];
        if (faultIn) await cloud.exec(own, ["systemctl", "start", "nginx"], { allowFail: true });
    } finally {
        await prober.stop();
        run.requests = prober.samples.length;
        if (at.fault !== undefined) run.timeline = probeTimeline([prober.samples], { intervalMs: PROBE_INTERVAL_MS, faultAt: at.fault, repairAt: at.repair });
        // The operator dealt with the fault: the PoP's flap history starts afresh, as after each of the lab's runs.
        await cloud.exec(own, ["sh", "-c", `${HEALTH} release`], { allowFail: true });
    }
    const ok = run.error ? [] : [run];
    return {
        report: {
            ...base, runs: [run], failover: stats(ok.map((x) => x.failoverMs!)), recovery: stats(ok.map((x) => x.recoveryMs!)),
            failedTotal: run.failedDuringFailover + run.failedDuringRecovery,
        },
        edgePath: { ...edgePath, withdrawalsBefore: Number.isNaN(withdrawalsBefore) ? undefined : withdrawalsBefore },
    };
}

/** Everything the report shows, measured on the deployed hosts once every PoP announces. */
/** How long Prometheus on the monitoring origin may take to scrape every target: a limit, not a measure. */
const SCRAPE_LIMIT_MS = 90_000;

/**
 * anycast:monitoring on real hosts: Debian's Prometheus on the origin, started by the deploy's
 * drop-in, scrapes every PoP's agent and exporters over the mesh, and nothing fires at rest.
 */
async function checkPrometheus(ctx: ObserveContext, problems: string[]): Promise<RehearsalMonitoring> {
    const origin = ctx.spec.monitoring!.origin;
    const targets = ctx.spec.pops.length * 3;
    const query = async (expr: string) => {
        // promtool comes with the package, so the check needs nothing the deploy did not install.
        const r = await ctx.cloud.ssh(origin, `promtool query instant -o json http://${PROMETHEUS_LISTEN} ${shellQuote(expr)}`, { timeoutMs: 15_000 });
        if (r.exitCode !== 0) return undefined;
        return JSON.parse(r.stdout) as Array<{ metric: Record<string, string>; value: [number, string] }>;
    };
    const t0 = Date.now();
    let up: Array<{ metric: Record<string, string>; value: [number, string] }> | undefined;
    // Each agent also reads its tunnels' handshakes under systemd (`wg`, from the unit's sandbox).
    let handshakes: string[] = [];
    const at = await waitUntil(async () => {
        up = await query("up").catch(() => undefined);
        handshakes = ((await query("count by (pop) (anycast_wireguard_last_handshake_timestamp_seconds > 0)").catch(() => undefined)) ?? [])
            .map((s) => s.metric.pop);
        return (up?.filter((s) => s.value[1] === "1").length ?? 0) >= targets && ctx.spec.pops.every((p) => handshakes.includes(p.name));
    }, SCRAPE_LIMIT_MS, 1000);
    const upCount = up?.filter((s) => s.value[1] === "1").length ?? 0;
    const down = (up ?? []).filter((s) => s.value[1] !== "1").map((s) => `${s.metric.pop}/${s.metric.job}`);
    const firing = ((await query('ALERTS{alertstate="firing"}').catch(() => undefined)) ?? []).map((s) => `${s.metric.alertname}${s.metric.pop ? `{pop=${s.metric.pop}}` : ""}`);
    const silent = ctx.spec.pops.map((p) => p.name).filter((p) => !handshakes.includes(p));
    if (at === undefined && upCount < targets) problems.push(`monitoring: Prometheus on ${origin} scrapes ${upCount} of ${targets} targets after ${SCRAPE_LIMIT_MS / 1000} s` +
        (down.length ? ` (down: ${down.join(", ")})` : up ? "" : " (it does not answer on its API)"));
    if (at === undefined && silent.length > 0) problems.push(`monitoring: no WireGuard handshake in the /metrics of ${silent.join(", ")}`);
    if (firing.length > 0) problems.push(`monitoring: alerts firing on a healthy network: ${firing.join(", ")}`);
    return { origin, targets, up: upCount, down, firing, handshakesFrom: ctx.spec.pops.length - silent.length,
        ...(at !== undefined ? { afterMs: at - t0 } : {}) };
}

export async function observe(ctx: ObserveContext, prefix: string): Promise<RehearsalObservations> {
    const problems: string[] = [];
    const log = ctx.log;
    const clients = await addClients(ctx);
    log("  report: reading BGP sessions (the edge and each PoP's BIRD)");
    const sessions = await readSessions(ctx, prefix, problems);
    log("  report: catchment at the edge and HTTP through the anycast address");
    const catchment = await measureCatchment(ctx, clients, prefix, problems);
    log("  report: HTTPS pinned to each PoP, with and without the origin-pull certificate");
    const https = await checkHttps(ctx, clients, problems);
    log("  report: who may reach what on the deployed hosts");
    const exposure = await probeHosts(ctx, clients, problems);
    const monitoring = ctx.spec.monitoring ? await checkPrometheus(ctx, problems) : undefined;
    if (monitoring) log(`  report: Prometheus on ${monitoring.origin}: ${monitoring.up} of ${monitoring.targets} targets up`);
    log(`  report: experiment: proxy loss on ${catchment.bestPop ?? "no PoP"}`);
    const { report: experiment, edgePath } = await proxyLoss(ctx, clients, prefix, catchment.bestPop);
    for (const r of experiment.runs) if (r.error) problems.push(`experiment ${experiment.title} on ${r.pop}: ${r.error}`);
    const admin = `the deployer (this machine, ${ctx.deployerAddress}), added to adminCidrs by the rehearsal`;
    return { service: { address: ctx.spec.address.toString(), hostname: ctx.spec.frontDoor.hostname }, sessions, catchment, https, admin, exposure,
        ...(monitoring ? { monitoring } : {}), experiment, edgePath, problems };
}

/** The report's sections, in the lab's layout (every line within 100 columns). */
export function formatObservations(o: RehearsalObservations): string[] {
    const out: string[] = [];
    out.push("BGP sessions (the emulated provider edge and each PoP's own BIRD)");
    out.push(...table(["PoP", "edge state", "since", "received", "communities at the edge", "PoP's BIRD", "exported", "imported"],
        o.sessions.map((s) => [s.pop, s.edgeState, s.edgeSince, String(s.received ?? "n/a"), s.communities || "none",
            s.popSide.map((x) => `${x.protocol} ${x.state} since ${x.since}`).join(", ") || "none",
            s.popSide.map((x) => String(x.exported ?? "n/a")).join(", "), s.popSide.map((x) => String(x.imported ?? "n/a")).join(", ")])));
    out.push("");
    const c = o.catchment;
    out.push(...wrap(`Catchment at the edge for ${c.prefix} (one emulated edge: its best path, the others are alternatives)`));
    out.push(...table(["PoP", "best", "AS path", "communities"], c.routes.map((r) => [r.pop, r.best ? "yes" : "no", r.asPath, r.communities || "none"])));
    out.push(...wrap(`client ${c.client} (follows the edge) GET / on ${o.service.address}: ` +
        `${c.status ?? c.error ?? "failed"} from ${c.servedBy ?? "no PoP"} in ${ms(c.ms)}; the edge's best path is ${c.bestPop ?? "none"}`, "  ", "    "));
    out.push("");
    out.push(...wrap(`HTTPS through each PoP (https://${o.service.hostname}/ on ${o.service.address}, SNI ${o.service.hostname}; ` +
        "each client pinned to one PoP by source-address routing at the edge)"));
    const res = (h: HttpsResult) => (h.status !== undefined ? String(h.status) : `refused: ${h.error}`);
    out.push(...table(["pinned to", "client", "with cert", "answered by", "time", "origin's answer", "without cert"],
        o.https.map((h) => [h.pop, h.client, res(h.withCert), h.withCert.servedBy ?? "none", ms(h.withCert.ms), h.withCert.firstLine ?? "none",
            res(h.withoutCert)])));
    out.push("");
    out.push(...formatExposure({ exposure: o.exposure, admin: o.admin }));
    if (o.monitoring) {
        const m = o.monitoring;
        out.push(...wrap(`Monitoring: Prometheus on ${m.origin} (Debian's package, the deploy's drop-in) scrapes ${m.up} of ${m.targets} ` +
            `targets over the mesh${m.afterMs !== undefined ? ` (all up ${ms(m.afterMs)} into the check)` : ""}` +
            `; ${m.handshakesFrom} of ${m.targets / 3} agents export their tunnels' handshakes` +
            `${m.down.length ? `; down: ${m.down.join(", ")}` : ""}; firing: ${m.firing.length ? m.firing.join(", ") : "none"}`), "");
    }
    out.push(...formatExperiments({ experiments: [o.experiment] }));
    if (o.edgePath && o.experiment.runs.length > 0) {
        out.push(...wrap(`at the edge: ${o.experiment.runs[0].pop}'s path gone ${ms(o.edgePath.withdrawnMs)} after the fault, ` +
            `back ${ms(o.edgePath.backMs)} after the repair; the agent's withdrawals from the deploy ` +
            `(${o.edgePath.withdrawalsBefore ?? "unknown"}) were released before the fault`, "  ", "    "), "");
    }
    out.push(...wrap("Not run here (the lab runs them): per-region catchment through transits, IPv4 catchment, routing safety " +
        "against a full upstream table, PoP crash, link loss, drain, the policy change and flap damping. The rehearsal " +
        "has one provider edge and no transits, and BFD is off on this stalling machine.", "Note: ", "  "));
    if (o.problems.length > 0) {
        out.push("", "PROBLEMS:");
        for (const p of o.problems) out.push(...wrap(p, "  - ", "    "));
    }
    return out;
}
