/**
 * The lab report: its JSON shape (`--json`) and the text a network engineer reads.
 */
import type { Rewrite } from "./boot";
import { summarize, Summary } from "../bench/stats";
import type { ReachProbe } from "./exposure";
import type { FlapDampingReport, PolicyChangeReport, RoutingSafety } from "./routing";
import { formatOriginFailover, OriginFailoverReport } from "./origin-experiments";

export type Stats = Summary;

/** min/median/max of the runs that produced a figure; undefined when none did. */
export function stats(values: number[]): Stats | undefined {
    return values.length === 0 ? undefined : summarize(values);
}

export interface SessionReport {
    pop: string;
    region: string;
    protocol: string;
    neighbor: string;
    neighborAs: string;
    /** BIRD's BGP state (Established, Active, Connect, ...). */
    state: string;
    established: boolean;
    since: string;
    /** Why not established (BIRD's last error), or the last error of an established session. */
    lastError?: string;
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

export interface HttpsResult {
    status?: number;
    servedBy?: string;
    error?: string;
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
    /** What the failed requests met, e.g. "3x timeout, 2x http 502 from sgp". */
    failures?: string;
    error?: string;
}

export interface ExperimentReport {
    id: "crash" | "linkLoss" | "originLoss" | "drain";
    title: string;
    fault: string;
    repair: string;
    probeIntervalMs: number;
    runs: ExperimentRun[];
    failover?: Stats;
    recovery?: Stats;
    failedTotal: number;
}

export interface LabReport {
    ok: boolean;
    config: string;
    startedAt: string;
    durationS: number;
    setupS?: number;
    problems: string[];
    notes: string[];
    rewrites: Rewrite[];
    firewall: string;
    tls: string;
    anycast: { address: string; prefixes: string[]; asn: number; hostname: string };
    topology: Array<{ region: string; pop: string; popAddress: string; edgeNs: string; publicAsn: number; transitAsn: number; client: string }>;
    sessions: SessionReport[];
    transitRoutes: TransitRoute[];
    catchment: CatchmentEntry[];
    https: HttpsCheck[];
    outsider?: { client: string; blocked: boolean; detail: string };
    /** TCP connects from each kind of source to each protected port. */
    exposure: ReachProbe[];
    routing: RoutingSafety;
    policyChange?: PolicyChangeReport;
    flapDamping?: FlapDampingReport;
    experiments: ExperimentReport[];
    /** Origin failover: every origin down, a PoP's tunnels cut, one origin down (lab/origin-experiments.ts). */
    originFailover?: OriginFailoverReport;
    kept: boolean;
    howToPoke?: string[];
}

/** Left-aligned columns; a row is an array of cells. */
export function table(header: string[], rows: string[][], indent = "  "): string[] {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
    const line = (cells: string[]) => indent + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd();
    return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)];
}

export function ms(value: number | undefined): string {
    if (value === undefined) return "-";
    if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
    if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
    return `${Math.round(value)} ms`;
}

function statsText(s: Stats | undefined): string {
    return s ? `${ms(s.min)} / ${ms(s.median)} / ${ms(s.max)}` : "-";
}

export function formatReport(r: LabReport): string {
    const out: string[] = [];
    out.push(`anycast lab report: ${r.config}, ${r.topology.length} PoPs, AS${r.anycast.asn} announcing ${r.anycast.prefixes.join(", ")}`);
    out.push(`  anycast address ${r.anycast.address}, clients ask for Host: ${r.anycast.hostname}; ran ${r.durationS.toFixed(0)} s` +
        (r.setupS !== undefined ? ` (set-up ${r.setupS.toFixed(1)} s)` : ""));
    out.push("");
    out.push("Topology (one emulated Vultr edge and one transit per region)");
    out.push(...table(["region", "PoP", "PoP address", "edge AS to Internet", "transit AS", "client"],
        r.topology.map((t) => [t.region, t.pop, t.popAddress, `AS${t.publicAsn}`, `AS${t.transitAsn}`, t.client])));
    out.push("");
    out.push("BGP sessions (each PoP's BIRD: show protocols all; edge side for routes accepted)");
    out.push(...table(["PoP", "protocol", "neighbour", "state", "BFD", "hold", "exported", "edge accepted", "upstream offered/imported", "last error"],
        r.sessions.map((s) => [s.pop, s.protocol, `${s.neighbor} AS${s.neighborAs}`, s.state, s.bfd ?? "-", s.holdTimer ?? "-",
            String(s.exported ?? "-"), String(s.edgeImported ?? "-"),
            s.upstreamOffered !== undefined ? `${s.upstreamOffered}/${s.popImported ?? "-"}` : "-", s.lastError ?? ""])));
    out.push("");
    out.push(`Routes for ${r.anycast.prefixes[0]} at each region's transit (* = best)`);
    out.push(...table(["transit", "", "AS path", "local-pref", "learned from", "communities"],
        r.transitRoutes.map((t) => [`${t.region} AS${t.transitAsn}`, t.best ? "*" : "", t.asPath, String(t.localPref ?? "-"), t.from, t.communities])));
    out.push("");
    out.push(`Catchment and HTTP through the anycast address (GET http://[${r.anycast.address}]/ from each region's client)`);
    out.push(...table(["region", "client", "served by", "status", "time", "origin answer", "Host seen by origin", "X-Forwarded-For"],
        r.catchment.map((c) => [c.region, c.client, c.servedBy ? (c.servedBy === c.expectedPop ? `${c.servedBy} (own)` : `${c.servedBy} (NOT own ${c.expectedPop})`) : "-",
            c.status !== undefined ? String(c.status) : (c.error ?? "failed"), ms(c.ms), c.origin ?? "-", c.hostHeader ?? "-", c.xForwardedFor ?? "-"])));
    const httpsText = (h: HttpsResult) => h.status !== undefined ? `${h.status}${h.servedBy ? ` from ${h.servedBy}` : ""}` : `refused: ${h.error}`;
    out.push(...r.https.map((h) => `  HTTPS from ${h.region}: with the origin-pull client certificate ${httpsText(h.withCert)}; without it ${httpsText(h.withoutCert)}`));
    if (r.outsider) out.push(`  outsider ${r.outsider.client} (outside firewall.httpSources): ${r.outsider.blocked ? "blocked" : "SERVED"} (${r.outsider.detail})`);
    out.push("");
    out.push(...formatExposure(r));
    out.push(...formatRouting(r));
    if (r.experiments.length > 0) {
        out.push("Experiments (min / median / max; times from the start of the fault's or the repair's command;");
        out.push("a request counts in the phase it was sent in; the fault is held until sessions and agents have reacted)");
        out.push(...table(["experiment", "runs", "failover: served by another PoP", "recovery: own PoP serves again", "failed requests"],
            r.experiments.map((e) => [e.title, String(e.runs.length), statsText(e.failover), statsText(e.recovery), String(e.failedTotal)])));
        const median = (id: ExperimentReport["id"]) => r.experiments.find((e) => e.id === id)?.failover?.median;
        const verdict = (v: number | undefined) => (v === undefined ? "not measured" : `${ms(v)} ${v < 1000 ? "(met)" : "(NOT met)"}`);
        out.push(`  Target: median failover under 1 s (the seeds saw ~5 s on the Internet; BFD set-ups ~0.6 s):` +
            ` PoP crash ${verdict(median("crash"))}, link loss ${verdict(median("linkLoss"))}`);
        for (const e of r.experiments) {
            out.push("");
            out.push(`${e.title}: fault = ${e.fault}; repair = ${e.repair}; client probes every ${e.probeIntervalMs} ms`);
            out.push(...table(["run", "PoP", "failover", "served by", "failed in fault", "recovery", "failed in recovery", "requests", "failed requests met / error"],
                e.runs.map((x, i) => [String(i + 1), x.pop, ms(x.failoverMs), x.servedBy ?? "-", String(x.failedDuringFailover),
                    ms(x.recoveryMs), String(x.failedDuringRecovery), String(x.requests), x.error ? `ERROR: ${x.error}` : (x.failures ?? "")]), "    "));
        }
        out.push("");
    }
    out.push(...formatOriginFailover(r.originFailover));
    if (r.policyChange) out.push(...formatPolicyChange(r.policyChange));
    if (r.flapDamping) out.push(...formatFlapDamping(r.flapDamping));
    out.push(`Firewall: ${r.firewall}`);
    out.push(`TLS: ${r.tls}`);
    if (r.rewrites.length > 0) {
        out.push("Paths the lab rewrote (a namespace needs its own directory; nothing else was changed):");
        const byWhat = new Map<string, string[]>();
        for (const w of r.rewrites) {
            const key = `${w.file}: ${w.what} ${w.from} -> ${w.to.replace(/alab-[a-z0-9-]+-pop/, "<ns>")}`;
            byWhat.set(key, [...(byWhat.get(key) ?? []), w.host]);
        }
        for (const [what, hosts] of byWhat) out.push(`  ${what}  (${hosts.join(", ")})`);
    }
    for (const n of r.notes) out.push(`Note: ${n}`);
    if (r.problems.length > 0) {
        out.push("");
        out.push("PROBLEMS:");
        for (const p of r.problems) out.push(`  - ${p}`);
    }
    if (r.howToPoke) {
        out.push("");
        out.push(...r.howToPoke);
    }
    out.push("");
    out.push(r.ok ? "Result: OK" : "Result: NOT OK (see problems above)");
    return out.join("\n");
}

function formatExposure(r: LabReport): string[] {
    if (r.exposure.length === 0) return [];
    const out = ["Who may reach what (TCP: connected, refused = the host answered, timeout = the firewall dropped it; UDP: the firewall's drop counter)"];
    out.push(...table(["from", "to", "port", "rule", "expected", "result", ""],
        r.exposure.map((p) => [p.from, `${p.to} ${p.address}`, `${p.protocol}/${p.port}`, p.rule, p.expect, p.result, p.ok ? "ok" : "WRONG"])));
    out.push("");
    return out;
}

function formatRouting(r: LabReport): string[] {
    const g = r.routing;
    const out = [`Routing safety (configured: ${g.configured.join(", ")}): ${g.ok ? "exactly the configured prefixes leave each PoP; nothing imported" : "NOT SAFE"}`];
    out.push(...table(["PoP", "session", "upstream offered", "imported", "exported", "unrelated kernel routes (not exported)"],
        g.pops.map((p) => [p.pop, p.protocol, String(p.upstreamOffered), String(p.imported), p.exported.join(", ") || "none", p.unrelatedInKernel.join(", ") || "none"])));
    for (const t of g.transits) out.push(`  transit ${t.region} knows from AS${r.anycast.asn}: ${t.originatedByUs.join(", ") || "nothing"}`);
    out.push("");
    return out;
}

function formatPolicyChange(p: PolicyChangeReport): string[] {
    const out = [`Routing policy change on ${p.pop} without a session reset: ${p.error ? `FAILED: ${p.error}` : p.sessionKept ? "session kept" : "SESSION RESET"}`];
    out.push(`  edit: ${p.edit}`);
    out.push(`  the stack program re-rendered: ${Object.entries(p.changedFiles).map(([h, f]) => `${h}: ${f.join(", ")}`).join("; ") || "nothing"}`);
    out.push(...table(["step", "birdc configure", "took", "transit saw it after", "transit AS path", "communities", "region served by"],
        p.steps.map((s) => [s.step, s.birdReply, ms(s.configureMs), ms(s.seenAtTransitMs), s.transitAsPath ?? "-", s.transitCommunities || "-", s.servedBy ?? "-"])));
    for (const s of p.since) out.push(`  ${s.side}: session up since ${s.before} before, ${s.after} after`);
    out.push(`  BGP state polled ${p.polls} times on both ends through both steps: ${p.notEstablished} not Established`);
    out.push("");
    return out;
}

function formatFlapDamping(f: FlapDampingReport): string[] {
    const out = [`Flap damping on ${f.pop} (health.maxWithdrawalsPerHour ${f.maxWithdrawalsPerHour}): ` +
        (f.error ? `FAILED: ${f.error}` : f.heldDown ? "held down" : "NOT HELD DOWN")];
    out.push(`  ${f.flaps} origin-path flaps (wg0 down/up; ${f.withdrawalsBefore} withdrawals already counted) until: ${f.heldReason ?? "-"}`);
    out.push(`  watched ${ms(f.watchedMs)} held down with passing checks: ${f.healthyWhileHeld ? "healthy throughout" : "NOT healthy/held throughout"}; ` +
        `routes the edge had from it: ${f.edgeRoutesWhileHeld}; region ${f.region} served by ${f.servedByWhileHeld.join(", ") || "-"}`);
    out.push(`  the upstream received ${f.upstream.withdrawals} withdrawals and ${f.upstream.announcements} announcements: damping penalty ${f.penalty} ` +
        `${f.penalty < f.suppressThreshold ? "<" : ">="} ${f.suppressThreshold} (RFC 7196 suppress threshold)`);
    out.push(`  anycast-health release: own PoP serves ${f.region} again after ${ms(f.releasedAfterMs)}`);
    out.push("");
    return out;
}
