/**
 * The lab report: its JSON shape (`--json`) and the text a network engineer reads. Every line of
 * the text fits in 100 columns (lab/text.ts), and every table column has a label.
 */
import { AlertsReport, formatAlerts } from "./monitoring";
import type { Rewrite } from "./rewrite";
import type { Summary } from "./stats";
import type { EdgeKind } from "./edge";
import type { ReachProbe } from "./exposure";
import { ms, table, wrap } from "./text";
import { formatOriginFailover, OriginFailoverReport } from "./origin-experiments";
import { DAEMONS, IdleCost } from "./resources";
import type { ProbeTimeline } from "./timeline";

export { ms, table } from "./text";

export type Stats = Summary;

export { stats } from "./stats";

// --- what the routing demonstrations (routing.ts) report -------------------------------------

export interface PopRoutingSafety {
    pop: string;
    /** BIRD's names of the PoP's sessions to its upstream (one per address family). */
    protocol: string;
    /** Routes the upstream offered (a default and the full-ish table) and how many the PoP took. */
    upstreamOffered: number;
    imported: number;
    /** Prefixes the PoP's BIRD exports to the upstream (`show route export`). */
    exported: string[];
    /** Unrelated routes present in the PoP's kernel table (each must be absent from `exported`). */
    unrelatedInKernel: string[];
}

export interface RoutingSafety {
    pops: PopRoutingSafety[];
    /**
     * The origin ASes the Internet sees for our routes: our ASN, or with a private one each
     * upstream's public AS (origin-as.ts).
     */
    origins: number[];
    /**
     * Per transit: every prefix whose AS path ends in one of `origins`, besides the edges' own PoP
     * link networks (those share the origin when our ASN is private): exactly the configured ones.
     */
    transits: Array<{ region: string; originatedByUs: string[] }>;
    configured: string[];
    ok: boolean;
}

export interface PolicyStep {
    step: "apply" | "revert";
    /** What `birdc configure` answered, and how long it took. */
    birdReply: string;
    configureMs: number;
    /** From `birdc configure` until the region's transit held the route with the new attributes. */
    seenAtTransitMs?: number;
    transitAsPath?: string;
    transitCommunities?: string;
    /** Who served the region's client once the transit had the new route. */
    servedBy?: string;
}

export interface PolicyChangeReport {
    pop: string;
    region: string;
    /** The edit, as a user would make it in the stack file. */
    edit: string;
    /** Host -> the artifacts the edited stack renders differently (what `pulumi up` would push). */
    changedFiles: Record<string, string[]>;
    steps: PolicyStep[];
    /** BGP state of both ends, polled through both steps. */
    polls: number;
    notEstablished: number;
    /** Each side's session "since" (last state change) before the change and after the revert. */
    since: Array<{ side: string; before: string; after: string }>;
    /** Every poll Established and neither "since" moved: the session was never reset. */
    sessionKept: boolean;
    error?: string;
}

export interface FlapDampingReport {
    pop: string;
    region: string;
    maxWithdrawalsPerHour: number;
    /** Withdrawals already in the agent's window when the experiment started. */
    withdrawalsBefore: number;
    /** Origin-path flaps (wg0 down, up) it took until the agent held the PoP down. */
    flaps: number;
    heldDown: boolean;
    /** Set when the config gives an origin-path flap no withdrawal to count (a hub mesh): not run. */
    skipped?: string;
    heldReason?: string;
    /** How long the lab watches the held-down PoP while its checks pass: rise + 5 rounds, at least 3 s. */
    watchMs: number;
    /** How long it did (at least watchMs). */
    watchedMs: number;
    healthyWhileHeld: boolean;
    /** When it was not: the agent's first status that broke it (ms into the watch, state, reason). */
    heldBreak?: string;
    /** Most routes the edge had from the PoP during the watch (0: nothing announced). */
    edgeRoutesWhileHeld: number;
    /** Who served the region's client during the watch. */
    servedByWhileHeld: string[];
    /**
     * What the Internet received of this PoP's route from the first flap to the end of the watch:
     * the changes (updates and withdrawals, repeats not counted) the region's transit accepted
     * from the PoP's edge.
     */
    upstream: { announcements: number; withdrawals: number };
    /** RFC 2439 penalty of those (1000 per withdrawal and per re-announcement, no decay). */
    penalty: number;
    suppressThreshold: number;
    /** `anycast-health release` until the region's own PoP served it again. */
    releasedAfterMs?: number;
    error?: string;
}

export interface SessionReport {
    pop: string;
    region: string;
    family: 4 | 6;
    protocol: string;
    neighbor: string;
    neighborAs: string;
    /** BIRD's BGP state (Established, Active, Connect, ...). */
    state: string;
    established: boolean;
    since: string;
    /** Why not established (BIRD's last error), or the last error of an established session. */
    lastError?: string;
    /** BFD as the edge sees it ("Up", "Down", "off" when the PoP runs none). */
    bfd?: string;
    holdTimer?: string;
    /** Prefixes the PoP exports / the edge accepted from it. */
    exported?: number;
    edgeImported?: number;
    /** Routes the upstream offered the PoP, and how many the PoP imported (must be 0). */
    upstreamOffered?: number;
    popImported?: number;
}

export interface TransitRoute {
    region: string;
    prefix: string;
    transitAsn: number;
    from: string;
    best: boolean;
    asPath: string;
    localPref?: number;
    communities: string;
}

export interface CatchmentEntry {
    region: string;
    client: string;
    expectedPop: string;
    servedBy?: string;
    status?: number;
    ms?: number;
    error?: string;
    origin?: string;
    hostHeader?: string;
    xForwardedFor?: string;
}

/** Where a region's IPv4 packets to the IPv4 prefix arrived (the PoPs serve HTTP on IPv6 only). */
export interface Catchment4Entry {
    region: string;
    client: string;
    target: string;
    expectedPop: string;
    arrivedAt: string[];
}

export interface HttpsResult {
    status?: number;
    servedBy?: string;
    error?: string;
    /** curl's time_total: connect, TLS and the answer. */
    ms?: number;
    /** The first line of the answer's body (a marker of who answered behind the proxy). */
    firstLine?: string;
}

export interface HttpsCheck {
    region: string;
    expectedPop: string;
    /** With Cloudflare's origin-pull client certificate, verifying the PoP's certificate for the hostname. */
    withCert: HttpsResult;
    withoutCert: HttpsResult;
}

export interface ExperimentRun {
    pop: string;
    region: string;
    /** ms from the start of the fault's command to the first good answer from another PoP. */
    failoverMs?: number;
    servedBy?: string;
    failedDuringFailover: number;
    /** ms from the repair to the first good answer from the region's own PoP again. */
    recoveryMs?: number;
    failedDuringRecovery: number;
    requests: number;
    /** What the failed requests met, e.g. "3x timeout, 2x http 502 from sgp"; both phases. */
    failures?: string;
    /** The same for each phase: while the fault lasted, and from the repair until served again. */
    failuresDuringFailover?: string;
    failuresDuringRecovery?: string;
    /** Of the failed requests, those the route change itself reset in flight (lab/probe.ts resetsAtPathSwitch). */
    resetAtPathSwitch?: number;
    /** The bounds this run was held to, from the PoP's config. */
    bounds: { failoverMs: number; recoveryMs: number; basis: string };
    /**
     * For a fault the agent handles by withdrawing (drain, origin loss): the BGP session stayed
     * Established, neither end's uptime restarted and the edge sent the PoP no route again.
     */
    sessionKept?: boolean;
    error?: string;
    /** What the region's client saw from shortly before the fault to the end of the run (lab/timeline.ts). */
    timeline?: ProbeTimeline;
}

export interface ExperimentReport {
    /** proxyLoss: the deploy rehearsal's experiment (lab/deploy/observe.ts). */
    id: "crash" | "linkLoss" | "originLoss" | "drain" | "proxyLoss";
    title: string;
    fault: string;
    repair: string;
    probeIntervalMs: number;
    runs: ExperimentRun[];
    /** Why the experiment did not run (one PoP; no BFD and hold time 0 for link loss). */
    skipped?: string;
    failover?: Stats;
    recovery?: Stats;
    failedTotal: number;
}

export interface LabReport {
    ok: boolean;
    /** Prometheus on the monitoring origin: which alerts each kind of fault fired (lab/monitoring.ts). */
    alerts?: AlertsReport;
    config: string;
    /** The BGP implementation that played the provider edges. */
    edge: EdgeKind;
    startedAt: string;
    durationS: number;
    setupS?: number;
    problems: string[];
    notes: string[];
    rewrites: Rewrite[];
    firewall: string;
    tls: string;
    /** Who played firewall.adminCidrs, and why. */
    admin: string;
    anycast: { address: string; prefixes: string[]; asn: number; hostname: string };
    topology: Array<{ region: string; pop: string; popAddress: string; popAddress4?: string; edgeNs: string; publicAsn: number;
        transitAsn: number; client: string; client4?: string }>;
    sessions: SessionReport[];
    /** Each PoP's daemons' CPU and memory, and the machine's forks, over idle seconds after set-up. */
    idleCost?: IdleCost;
    transitRoutes: TransitRoute[];
    catchment: CatchmentEntry[];
    catchment4?: Catchment4Entry[];
    https: HttpsCheck[];
    outsider?: { client: string; blocked: boolean; expectBlocked: boolean; detail: string };
    /** TCP connects from each kind of source to each protected port. */
    exposure: ReachProbe[];
    routing: RoutingSafety;
    policyChange?: PolicyChangeReport;
    flapDamping?: FlapDampingReport;
    experiments: ExperimentReport[];
    /** Why the experiments stopped before the end. */
    experimentsAborted?: string;
    /** Origin failover: every origin down, a PoP's tunnels cut, one origin down (lab/origin-experiments.ts). */
    originFailover?: OriginFailoverReport;
    kept: boolean;
    howToPoke?: string[];
}

function statsText(s: Stats | undefined): string {
    if (!s) return "n/a";
    return s.n === 1 ? `${ms(s.median)} (one run)` : `${ms(s.min)} / ${ms(s.median)} / ${ms(s.max)}`;
}

function formatHeader(r: LabReport): string[] {
    return [
        ...wrap(`anycast lab report: ${r.config}, ${r.topology.length} PoP${r.topology.length === 1 ? "" : "s"}, ` +
            `AS${r.anycast.asn} announcing ${r.anycast.prefixes.join(", ")}`),
        ...wrap(`anycast address ${r.anycast.address}, clients ask for Host: ${r.anycast.hostname}; ` +
            `provider edges: ${r.edge === "frr" ? "FRR" : "BIRD"}; ran ${r.durationS.toFixed(0)} s` +
            (r.setupS !== undefined ? ` (set-up ${r.setupS.toFixed(1)} s)` : ""), "  ", "    "),
        "",
    ];
}

function formatTopology(r: LabReport): string[] {
    return [
        "Topology (one emulated provider edge and one transit per region; clients play Cloudflare colos)",
        ...table(["region", "PoP", "PoP address", "edge AS", "transit AS", "client"],
            r.topology.map((t) => [t.region, t.pop, [t.popAddress, t.popAddress4].filter((x) => x).join(" "), `AS${t.publicAsn}`,
                `AS${t.transitAsn}`, [t.client, t.client4].filter((x) => x).join(" ")])),
        "",
    ];
}

function formatSessions(r: LabReport): string[] {
    return [
        "BGP sessions (each PoP's BIRD; BFD and the routes it accepted as the edge sees them)",
        ...table(["PoP", "session", "neighbour", "AS", "state", "BFD", "hold", "edge took", "last error"],
            r.sessions.map((s) => [s.pop, s.protocol, s.neighbor, s.neighborAs, s.state, s.bfd ?? "n/a", s.holdTimer ?? "n/a",
                String(s.edgeImported ?? "n/a"), s.lastError ?? "none"])),
        "",
    ];
}

function formatIdleCost(r: LabReport): string[] {
    const c = r.idleCost;
    if (!c) return [];
    const pops = [...new Set(c.daemons.map((d) => d.pop))];
    const cell = (pop: string, daemon: string) => {
        const d = c.daemons.find((x) => x.pop === pop && x.daemon === daemon);
        return d ? `${d.cpuPercent.toFixed(1)}% ${(d.rssKiB / 1024).toFixed(1)} MiB` : "none";
    };
    return [
        ...wrap(`Idle cost: CPU (share of one core) and resident memory of each PoP's daemons over ${(c.sampledMs / 1000).toFixed(0)} s ` +
            "without traffic, after set-up, before the lab's Prometheus (which scrapes every 500 ms) starts"),
        ...table(["PoP", ...DAEMONS], pops.map((pop) => [pop, ...DAEMONS.map((d) => cell(pop, d))])),
        `  processes started on the whole machine: ${c.forksPerSecond.toFixed(1)}/s (the lab's own and anything else running)`,
        "",
    ];
}

function formatTransitRoutes(r: LabReport): string[] {
    const out: string[] = [];
    for (const prefix of r.anycast.prefixes) {
        out.push(`Routes for ${prefix} at each region's transit`);
        out.push(...table(["transit", "best", "AS path", "local-pref", "learned from", "communities"],
            r.transitRoutes.filter((t) => t.prefix === prefix).map((t) => [`${t.region} AS${t.transitAsn}`, t.best ? "yes" : "no",
                t.asPath, String(t.localPref ?? "n/a"), t.from, t.communities || "none"])));
        out.push("");
    }
    return out;
}

function formatCatchment(r: LabReport): string[] {
    const served = (c: CatchmentEntry) => (c.servedBy ? (c.servedBy === c.expectedPop ? `${c.servedBy} (own)` : `${c.servedBy} (NOT ${c.expectedPop})`) : "nobody");
    const out = [
        ...wrap(`Catchment and HTTP through the anycast address (GET / on ${r.anycast.address} from each region's client)`),
        ...table(["region", "client", "served by", "status", "time", "origin", "Host seen", "X-Forwarded-For"],
            r.catchment.map((c) => [c.region, c.client, served(c), c.status !== undefined ? String(c.status) : (c.error ?? "failed"),
                ms(c.ms), c.origin ?? "none", c.hostHeader ?? "none", c.xForwardedFor ?? "none"])),
    ];
    if (r.catchment4) {
        out.push("", "IPv4 catchment (UDP to the IPv4 prefix, counted where it arrives; HTTP is served on IPv6)");
        out.push(...table(["region", "client", "to", "arrived at"],
            r.catchment4.map((c) => [c.region, c.client, c.target, c.arrivedAt.length === 0 ? "no PoP"
                : c.arrivedAt.map((p) => (p === c.expectedPop ? `${p} (own)` : `${p} (NOT ${c.expectedPop})`)).join(", ")])));
    }
    const httpsText = (h: HttpsResult) => (h.status !== undefined ? `${h.status}${h.servedBy ? ` from ${h.servedBy}` : ""}` : `refused: ${h.error}`);
    for (const h of r.https) {
        out.push(...wrap(`HTTPS from ${h.region}: with the origin-pull client certificate ${httpsText(h.withCert)}; ` +
            `without it ${httpsText(h.withoutCert)}`, "  ", "    "));
    }
    if (r.outsider) {
        out.push(...wrap(`outsider ${r.outsider.client}: ${r.outsider.blocked ? "blocked" : "SERVED"} (${r.outsider.detail}); ` +
            `the config says ${r.outsider.expectBlocked ? "blocked" : "served"}`, "  ", "    "));
    }
    out.push("");
    return out;
}

export function formatExposure(r: Pick<LabReport, "exposure" | "admin">): string[] {
    if (r.exposure.length === 0) return [];
    const rules = [...new Set(r.exposure.map((p) => p.rule))];
    return [
        ...wrap("Who may reach what (TCP: connected, refused = the host answered, timeout = the firewall dropped it; " +
            "UDP: the firewall's drop counter). Expected from the config's httpSources and adminCidrs." +
            (r.exposure.some((p) => p.retried) ? " 2nd try: a connect that should succeed timed out at first (a slow machine) and was tried again." : "")),
        ...wrap(`admin source: ${r.admin}`, "  ", "    "),
        ...table(["from", "to", "port", "expected", "result", "verdict", "rule"],
            r.exposure.map((p) => [p.from, `${p.to} ${p.address}`, `${p.protocol}/${p.port}`, p.expect,
                p.retried ? `${p.result} (2nd try)` : p.result, p.ok ? "ok" : "WRONG",
                String(rules.indexOf(p.rule) + 1)])),
        ...rules.flatMap((rule, i) => wrap(rule, `  rule ${i + 1}: `, "    ")),
        "",
    ];
}

function formatRouting(r: LabReport): string[] {
    const g = r.routing;
    const out = wrap(`Routing safety (configured: ${g.configured.join(", ")}): ` +
        (g.ok ? "exactly the configured prefixes leave each PoP; nothing imported" : "NOT SAFE"));
    out.push(...table(["PoP", "sessions", "offered", "imported", "exported", "unrelated kernel routes (not exported)"],
        g.pops.map((p) => [p.pop, p.protocol, String(p.upstreamOffered), String(p.imported), p.exported.join(", ") || "none",
            p.unrelatedInKernel.join(", ") || "none"])));
    // With a private ASN the transits see the upstreams' public ASes as the origin, not ours.
    const from = g.origins.map((a) => `AS${a}`).join(" or ");
    for (const t of g.transits) out.push(...wrap(`transit ${t.region} knows from ${from}: ${t.originatedByUs.join(", ") || "nothing"}`, "  ", "    "));
    out.push("");
    return out;
}

export function formatExperiments(r: Pick<LabReport, "experiments" | "experimentsAborted">): string[] {
    if (r.experiments.length === 0 && !r.experimentsAborted) return [];
    const out = [
        ...wrap("Experiments (min / median / max; times from the start of the fault's or the repair's command; a request " +
            "counts in the phase it was sent in; the fault is held until sessions and agents have reacted)"),
        ...table(["experiment", "runs", "failover: another PoP serves", "recovery: own PoP again", "failed requests"],
            r.experiments.map((e) => [e.title, e.skipped ? "skipped" : String(e.runs.length), statsText(e.failover), statsText(e.recovery),
                String(e.failedTotal)])),
    ];
    if (r.experimentsAborted) out.push(...wrap(`ABORTED: ${r.experimentsAborted}`, "  ", "    "));
    for (const e of r.experiments) {
        out.push("");
        out.push(...wrap(`${e.title}: fault = ${e.fault}; repair = ${e.repair}; client probes every ${e.probeIntervalMs} ms`));
        if (e.skipped) {
            out.push(...wrap(`skipped: ${e.skipped}`, "  ", "    "));
            continue;
        }
        const bases = [...new Set(e.runs.map((x) => `${x.pop}: ${x.bounds.basis}, bounds ${ms(x.bounds.failoverMs)} / ${ms(x.bounds.recoveryMs)}`))];
        for (const b of bases) out.push(...wrap(`bounds (failover / recovery) from the config, ${b}`, "  ", "    "));
        out.push(...table(["run", "PoP", "failover", "served by", "lost (fault)", "recovery", "lost (recovery)", "requests"],
            e.runs.map((x, i) => [String(i + 1), x.pop, ms(x.failoverMs), x.servedBy ?? "nobody", String(x.failedDuringFailover),
                ms(x.recoveryMs), String(x.failedDuringRecovery), String(x.requests)]), "    "));
        const kept = e.runs.filter((x) => x.sessionKept === true).length;
        if (e.runs.some((x) => x.sessionKept !== undefined)) {
            out.push(...wrap(`BGP session to the edge (${e.runs.length} runs): kept in ${kept} (Established throughout, ` +
                "uptime not restarted, no route sent to the PoP again: no route refresh)", "    ", "      "));
        }
        e.runs.forEach((x, i) => {
            if (x.error) out.push(...wrap(`run ${i + 1} ERROR: ${x.error}`, "    ", "      "));
            else if (x.failures) out.push(...wrap(`run ${i + 1} failed requests met: ${x.failures}`, "    ", "      "));
        });
    }
    out.push("");
    return out;
}

function formatPolicyChange(p: PolicyChangeReport): string[] {
    const out = wrap(`Routing policy change on ${p.pop} without a session reset: ` +
        (p.error ? `FAILED: ${p.error}` : p.sessionKept ? "session kept" : "SESSION RESET"));
    out.push(...wrap(`edit: ${p.edit}`, "  ", "    "));
    out.push(...wrap(`the stack program re-rendered: ${Object.entries(p.changedFiles).map(([h, f]) => `${h}: ${f.join(", ")}`).join("; ") || "nothing"}`,
        "  ", "    "));
    out.push(...table(["step", "birdc configure", "took", "transit saw it after", "transit AS path", "communities", "region served by"],
        p.steps.map((s) => [s.step, s.birdReply, ms(s.configureMs), ms(s.seenAtTransitMs), s.transitAsPath ?? "n/a", s.transitCommunities || "none",
            s.servedBy ?? "nobody"])));
    for (const s of p.since) out.push(...wrap(`${s.side}: session up since ${s.before} before, ${s.after} after`, "  ", "    "));
    out.push(...wrap(`BGP state polled ${p.polls} times on both ends through both steps: ${p.notEstablished} not Established`, "  ", "    "));
    out.push("");
    return out;
}

function formatFlapDamping(f: FlapDampingReport): string[] {
    if (f.skipped) return [...wrap(`Flap damping on ${f.pop}: not run: ${f.skipped}`), ""];
    const out = wrap(`Flap damping on ${f.pop} (health.maxWithdrawalsPerHour ${f.maxWithdrawalsPerHour}): ` +
        (f.error ? `FAILED: ${f.error}` : f.heldDown ? "held down" : "NOT HELD DOWN"));
    const line = (text: string) => out.push(...wrap(text, "  ", "    "));
    line(`${f.flaps} origin-path flaps (wg0 down/up; ${f.withdrawalsBefore} withdrawals already counted) until: ${f.heldReason ?? "n/a"}`);
    line(`watched ${ms(f.watchedMs)} held down with passing checks: ${f.healthyWhileHeld ? "healthy throughout" : `NOT healthy/held throughout (${f.heldBreak})`}; ` +
        `routes the edge had from it: ${f.edgeRoutesWhileHeld}; region ${f.region} served by ${f.servedByWhileHeld.join(", ") || "nobody"}`);
    line(`the Internet (the region's transit) received ${f.upstream.withdrawals} withdrawals and ${f.upstream.announcements} ` +
        `announcements: damping penalty ${f.penalty} ${f.penalty < f.suppressThreshold ? "<" : ">="} ${f.suppressThreshold} (RFC 7196 suppress threshold)`);
    line(`anycast-health release: own PoP serves ${f.region} again after ${ms(f.releasedAfterMs)}`);
    out.push("");
    return out;
}

function formatRewrites(r: LabReport): string[] {
    if (r.rewrites.length === 0) return [];
    const timers = r.rewrites.some((w) => w.what.includes("machine stalls"));
    const out = [timers
        ? "What the lab rewrote (a namespace needs its own paths; timers outlast this machine's stalls):"
        : "Paths the lab rewrote (a namespace needs its own directory; nothing else was changed):"];
    const byWhat = new Map<string, string[]>();
    for (const w of r.rewrites) {
        const key = `${w.file}: ${w.what} ${w.from} -> ${w.to.replace(/alab-[a-z0-9_-]+-pop/, "<ns>")}`;
        byWhat.set(key, [...(byWhat.get(key) ?? []), w.host]);
    }
    for (const [what, hosts] of byWhat) out.push(...wrap(`${what} (${hosts.join(", ")})`, "  ", "    "));
    return out;
}

export function formatReport(r: LabReport): string {
    const out: string[] = [
        ...formatHeader(r), ...formatTopology(r), ...formatSessions(r), ...formatIdleCost(r), ...formatTransitRoutes(r), ...formatCatchment(r),
        ...formatExposure(r), ...formatRouting(r), ...formatExperiments(r), ...formatOriginFailover(r.originFailover),
    ];
    if (r.policyChange) out.push(...formatPolicyChange(r.policyChange));
    if (r.flapDamping) out.push(...formatFlapDamping(r.flapDamping));
    if (r.alerts) out.push("", ...formatAlerts(r.alerts).flatMap((l) => wrap(l.trimStart(), l.startsWith("  ") ? "  " : "", "      ")));
    out.push(...wrap(`Firewall: ${r.firewall}`), ...wrap(`TLS: ${r.tls}`), ...formatRewrites(r));
    for (const n of r.notes) out.push(...wrap(n, "Note: ", "  "));
    if (r.problems.length > 0) {
        out.push("", "PROBLEMS:");
        for (const p of r.problems) out.push(...wrap(p, "  - ", "    "));
    }
    if (r.howToPoke) out.push("", ...r.howToPoke.flatMap((l) => wrap(l.trimStart(), l.startsWith("  ") ? "  " : "", "      ")));
    out.push("", r.ok ? "Result: OK" : "Result: NOT OK (see problems above)");
    return out.join("\n");
}
