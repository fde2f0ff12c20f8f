/**
 * The lab's report as one self-contained HTML page (`anycast lab --html <file>`), for a
 * postmortem or a pull request: the verdict and key numbers, the catchment, a timeline of each
 * experiment's runs around the fault, and what the daemons cost at idle.
 *
 * A pure function of the report (no I/O): the same JSON that `--json` writes renders the same
 * page. The page loads nothing: inline CSS and SVG, no script, font, image or link to fetch, and
 * a Content-Security-Policy that forbids fetching anything should a string ever slip through.
 * Every string from the report is escaped (lab/svg.ts esc): names come from the user's config.
 */
import type { OriginFailoverReport } from "./origin-experiments";
import type { ExperimentReport, HttpsResult, LabReport } from "./report";
import { DaemonCost, DAEMONS } from "./resources";
import { stats, Summary } from "./stats";
import { catchmentDiagram, groupedBars, peakRate, spanOf, swatch, timelineChart, TimelineSeries } from "./charts";
import { DAEMON_COLOURS, esc, FAILED, FAULT_BAR, niceMax, POP_COLOURS, tint } from "./svg";
import { ms } from "./text";
import type { ProbeTimeline } from "./timeline";

const CSS = `
:root{--ink:#1F2328;--muted:#59636E;--line:#D0D7DE;--bg:#F6F8FA;--ok:#1A7F37;--bad:${FAILED}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",Arial,sans-serif}
main{max-width:1340px;margin:0 auto;padding:20px 24px 40px}
header.top{display:flex;align-items:center;gap:14px;flex-wrap:wrap}
h1{font-size:24px;margin:0}
h2{font-size:18px;margin:0 0 10px}
h3{font-size:15px;margin:18px 0 4px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:14px 0}
nav{font-size:13px;color:var(--muted);margin:6px 0 0}
nav a{color:#0B5CAD;margin-right:14px}
.badge{font-weight:700;font-size:14px;padding:3px 10px;border-radius:999px;color:#fff}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad);color:#fff}
.muted{color:var(--muted)}
.bad{color:var(--bad)}
p{margin:4px 0}
dl.facts{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:4px 16px;margin:12px 0 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{text-align:left;padding:4px 10px;border-bottom:1px solid #EAEEF2;vertical-align:top}
th{color:var(--muted);font-weight:600;border-bottom:1px solid var(--line);white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.problems{border-left:4px solid var(--bad);background:#FFF5F5;padding:8px 14px;margin:12px 0 0}
.problems ul{margin:4px 0;padding-left:20px}
.split{display:grid;grid-template-columns:minmax(0,640px) minmax(0,1fr);gap:20px;align-items:start}
.pair{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:20px}
.runs{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:14px 16px;margin-top:8px}
figure{margin:0}
figcaption{font-size:12.5px;margin:0 0 2px}
figcaption b{font-size:13px}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12.5px;margin:8px 0 2px}
.key{display:inline-flex;align-items:center;gap:6px}
.sw{display:inline-block;width:14px;height:10px;background:var(--c)}
.sw.line{height:0;border-top:2px dashed var(--c);background:none}
svg.chart{display:block;max-width:100%;height:auto}
svg text{font-size:11px;fill:var(--ink)}
svg .tick,svg .axis-label,svg .muted{fill:var(--muted)}
svg .tick{font-size:10.5px;font-variant-numeric:tabular-nums}
svg .marker-label{font-size:10.5px;font-weight:600}
svg .node{font-size:13px;font-weight:600}
svg .small{font-size:10.5px}
svg .bad{fill:var(--bad)}
details{margin-top:6px}summary{cursor:pointer;color:var(--muted)}
footer{color:var(--muted);font-size:12px;margin-top:18px}
@media print{body{background:#fff}section{break-inside:avoid;border-color:#bbb}nav{display:none}}
`;

/** "20 ms (7–26 ms, 5 runs)": the median first, as the key numbers are compared by it. */
function statsText(s: Summary | undefined): string {
    if (!s || s.n === 0) return "n/a";
    return s.n === 1 ? `${ms(s.median)} (one run)` : `${ms(s.median)} (${ms(s.min)}–${ms(s.max)}, ${s.n} runs)`;
}

/** Each PoP's colour, in the topology's order (the same on every chart of the page). */
function popColours(r: LabReport): Map<string, string> {
    const names = [...r.topology.map((t) => t.pop), ...r.catchment.flatMap((c) => (c.servedBy ? [c.servedBy] : []))];
    const colours = new Map<string, string>();
    for (const name of names) if (!colours.has(name)) colours.set(name, POP_COLOURS[colours.size % POP_COLOURS.length]);
    return colours;
}

function table(head: string[], rows: string[][], numeric: number[] = []): string {
    const cell = (tag: string, i: number, v: string) => `<${tag}${numeric.includes(i) ? ' class="num"' : ""}>${v}</${tag}>`;
    return `<table><thead><tr>${head.map((h, i) => cell("th", i, esc(h))).join("")}</tr></thead><tbody>` +
        rows.map((row) => `<tr>${row.map((v, i) => cell("td", i, v)).join("")}</tr>`).join("") + "</tbody></table>";
}

function header(r: LabReport): string {
    const established = r.sessions.filter((s) => s.established).length;
    const facts: Array<[string, string]> = [
        ["config", r.config], ["result", r.ok ? "OK: no problems" : `NOT OK: ${r.problems.length} problem${r.problems.length === 1 ? "" : "s"}`],
        ["provider edges", r.edge === "frr" ? "FRR (not the PoPs' BIRD)" : "BIRD"], ["started", r.startedAt],
        ["anycast", `${r.anycast.address} (${r.anycast.prefixes.join(", ")}, AS${r.anycast.asn})`],
        ["duration", `${r.durationS.toFixed(0)} s${r.setupS !== undefined ? ` (set-up ${r.setupS.toFixed(1)} s)` : ""}`],
        ["hostname", r.anycast.hostname], ["BGP sessions", `${established} of ${r.sessions.length} Established`],
        ["PoPs", r.topology.map((t) => `${t.pop} (${t.region})`).join(", ")], ["kept", r.kept ? "yes: anycast lab --down removes it" : "no: torn down"],
    ];
    const problems = r.problems.length === 0 ? "" :
        `<div class="problems"><b class="bad">Problems</b><ul>${r.problems.map((p) => `<li>${esc(p)}</li>`).join("")}</ul></div>`;
    return `<section id="summary"><header class="top"><h1>anycast lab report</h1>` +
        `<span class="badge ${r.ok ? "ok" : "bad"}">${r.ok ? "OK" : "NOT OK"}</span></header>` +
        `<nav><a href="#summary">summary</a><a href="#catchment">catchment</a><a href="#experiments">experiments</a>` +
        `${r.originFailover ? '<a href="#origin">origin failover</a>' : ""}${r.alerts ? '<a href="#alerts">alerts</a>' : ""}${r.idleCost ? '<a href="#idle">idle cost</a>' : ""}<a href="#notes">notes</a></nav>` +
        `<dl class="facts">${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("")}</dl>${problems}` +
        `<h3>Key numbers</h3>${keyNumbers(r)}</section>`;
}

function keyNumbers(r: LabReport): string {
    const rows: string[][] = r.experiments.map((e) => [esc(e.title), e.skipped ? `skipped: ${esc(e.skipped)}` : String(e.runs.length),
        "another PoP serves / own PoP again", esc(statsText(e.failover)), esc(statsText(e.recovery)), String(e.failedTotal)]);
    const o = r.originFailover;
    if (o?.outage) {
        rows.push(["Every origin down", String(o.outage.runs.length), "503 page from every PoP / served again", esc(statsText(o.outage.first503)),
            esc(statsText(o.outage.recovery)), `${o.outage.noAnswerTotal} no answer`]);
    }
    if (o?.tunnelCut) {
        rows.push(["A PoP's tunnels cut", String(o.tunnelCut.runs.length), "relayed through another PoP / direct again", esc(statsText(o.tunnelCut.reroute)),
            esc(statsText(stats(o.tunnelCut.runs.flatMap((x) => (x.error || x.recoveryMs === undefined ? [] : [x.recoveryMs]))))), String(o.tunnelCut.failedTotal)]);
    }
    if (o?.originDown) {
        rows.push(["One origin down", String(o.originDown.runs.length), "served from the other origin / paths up again", esc(statsText(o.originDown.switchTime)),
            esc(statsText(o.originDown.recovery)), String(o.originDown.failedTotal)]);
    }
    if (rows.length === 0) return '<p class="muted">No experiments ran (--repeats 0).</p>';
    const aborted = r.experimentsAborted ? `<p class="bad">Experiments stopped: ${esc(r.experimentsAborted)}</p>` : "";
    return table(["experiment", "runs", "timed: after the fault / after the repair", "fault → traffic moved (median)", "repair → back (median)", "failed requests"],
        rows, [5]) + aborted;
}

function catchmentSection(r: LabReport, colours: Map<string, string>): string {
    const v4 = new Map((r.catchment4 ?? []).map((c) => [c.region, c]));
    const rows = r.catchment.map((c) => ({
        region: c.region, client: c.client, expectedPop: c.expectedPop, servedBy: c.servedBy,
        detail: c.status !== undefined ? `${c.status} in ${ms(c.ms)}${c.origin ? ` from ${c.origin}` : ""}` : (c.error ?? "no answer"),
    }));
    const pops = r.topology.map((t) => ({ name: t.pop, address: t.popAddress, colour: colours.get(t.pop)! }));
    const wrong = r.catchment.filter((c) => c.servedBy !== c.expectedPop).length;
    const served = (c: (typeof r.catchment)[number]) => c.servedBy === undefined ? '<span class="bad">✗ nobody</span>'
        : c.servedBy === c.expectedPop ? `✓ ${esc(c.servedBy)}` : `<span class="bad">✗ ${esc(c.servedBy)} (not ${esc(c.expectedPop)})</span>`;
    const https = new Map(r.https.map((h) => [h.region, h]));
    const httpsText = (h: HttpsResult | undefined) => (h === undefined ? "not tried" : h.status !== undefined
        ? `${h.status}${h.servedBy ? ` from ${h.servedBy}` : ""}` : `refused (${h.error ?? "no answer"})`);
    const head = ["region", "served by", "HTTP", "origin", "HTTPS, pull cert", "HTTPS, none", ...(r.catchment4 ? ["IPv4 arrived at"] : [])];
    const body = r.catchment.map((c) => [esc(c.region), served(c), esc(c.status !== undefined ? `${c.status}, ${ms(c.ms)}` : (c.error ?? "failed")),
        esc(c.origin ?? "none"), esc(httpsText(https.get(c.region)?.withCert)), esc(httpsText(https.get(c.region)?.withoutCert)),
        ...(r.catchment4 ? [esc(v4.get(c.region)?.arrivedAt.join(", ") || "no PoP")] : [])]);
    return `<section id="catchment"><h2>Catchment: which PoP each region reaches</h2>` +
        `<p class="muted">GET / on ${esc(r.anycast.address)} (Host: ${esc(r.anycast.hostname)}) from each region's client; ` +
        `the PoP is the answer's X-Anycast-PoP. ${wrong === 0 ? "Every region is served by its own PoP." : `<b class="bad">${wrong === 1 ? "1 region is not served by its own PoP" : `${wrong} regions are not served by their own PoP`}</b> ` +
            "(red and dashed; a dotted line goes to the expected PoP)."}</p>` +
        `<div class="split"><div>${catchmentDiagram("catchment-chart", rows, pops)}</div><div>${table(head, body, [2])}` +
        `<p class="muted">HTTPS: with Cloudflare's origin-pull client certificate, and without it (which the PoP must refuse).</p></div></div></section>`;
}

interface Panel {
    title: string;
    caption: string;
    error?: string;
    timeline?: ProbeTimeline;
}

/**
 * The series of a set of timelines: one per PoP in the page's order, each followed by its answers
 * relayed through other PoPs' tunnels (one series whatever the relay: the captions name it).
 */
function seriesOf(panels: Panel[], colours: Map<string, string>): TimelineSeries[] {
    const keys = new Set(panels.flatMap((p) => p.timeline?.buckets.flatMap((b) => Object.keys(b.byPop)) ?? []));
    const pops = [...colours.keys()];
    const groups = new Map<string, TimelineSeries & { rank: number }>();
    for (const key of keys) {
        const [pop, via] = key.split(" via ");
        const label = via === undefined ? `answered by ${pop}` : `answered by ${pop}, relayed by another PoP`;
        const i = pops.indexOf(pop);
        const base = colours.get(pop) ?? "#8C959F";
        const group = groups.get(label) ?? { label, keys: [], colour: via === undefined ? base : tint(base),
            rank: (i < 0 ? pops.length : i) * 2 + (via === undefined ? 0 : 1) };
        group.keys.push(key);
        groups.set(label, group);
    }
    return [...groups.values()].sort((a, b) => a.rank - b.rank || a.label.localeCompare(b.label))
        .map(({ label, colour, keys: k }) => ({ label, colour, keys: k.sort() }));
}

/** ", 100 ms buckets": what the charts of an experiment count in. */
function bucketsText(timelines: ProbeTimeline[]): string {
    const widths = [...new Set(timelines.map((t) => t.bucketMs))].sort((a, b) => a - b);
    return widths.length === 0 ? "" : `, ${widths.map((w) => `${w} ms`).join(" or ")} buckets`;
}

/** One chart per run, sharing their axes so the runs compare at a glance, under one legend. */
function runGrid(id: string, panels: Panel[], colours: Map<string, string>, unit: string): string {
    const timelines = panels.flatMap((p) => (p.timeline ? [p.timeline] : []));
    if (panels.length === 0) return "";
    const series = seriesOf(panels, colours);
    const spans = timelines.map(spanOf);
    const x: [number, number] = spans.length ? [Math.min(...spans.map((s) => s[0])), Math.max(...spans.map((s) => s[1]))] : [0, 1];
    const yMax = niceMax(Math.max(1, ...timelines.map(peakRate)), 4);
    const legend = `<div class="legend">${series.map((s) => swatch(s.colour, s.label)).join("")}` +
        `${swatch(FAILED, "failed (no answer, or not 200)")}${swatch(FAULT_BAR, "fault in place")}` +
        `${swatch("var(--ink)", "fault / repair started", "line")}<span class="key muted">${esc(unit)}${esc(bucketsText(timelines))}</span></div>`;
    const figures = panels.map((p, i) => {
        const chart = p.timeline
            ? timelineChart({ id: `${id}-${i + 1}`, title: `${p.title}: requests per second around the fault`, timeline: p.timeline, x, yMax, series })
            : '<p class="muted">No timeline in this report (written before timelines were recorded, or the run stopped before its fault).</p>';
        return `<figure><figcaption><b>${esc(p.title)}</b> · ${esc(p.caption)}${p.error ? `<br><span class="bad">ERROR: ${esc(p.error)}</span>` : ""}</figcaption>${chart}</figure>`;
    });
    return `${legend}<div class="runs">${figures.join("")}</div>`;
}

function experimentBlock(e: ExperimentReport, colours: Map<string, string>): string {
    const intro = `<h3 id="exp-${esc(e.id)}">${esc(e.title)}</h3><p><span class="muted">fault:</span> ${esc(e.fault)}; ` +
        `<span class="muted">repair:</span> ${esc(e.repair)}; the region's client sends a request every ${e.probeIntervalMs} ms.</p>`;
    if (e.skipped) return `${intro}<p class="muted">Not run: ${esc(e.skipped)}</p>`;
    const kept = e.runs.filter((x) => x.sessionKept !== undefined);
    const summary = `<p>Another PoP served after <b>${esc(statsText(e.failover))}</b>; the own PoP again after <b>${esc(statsText(e.recovery))}</b>; ` +
        `failed requests <b>${e.failedTotal}</b>${kept.length ? `; BGP session kept in ${kept.filter((x) => x.sessionKept).length} of ${kept.length} runs` : ""}.</p>`;
    // The bounds come from each PoP's config; PoPs configured alike share a line.
    const byBasis = new Map<string, string[]>();
    for (const x of e.runs) {
        const basis = `${x.bounds.basis}: failover within ${ms(x.bounds.failoverMs)}, recovery within ${ms(x.bounds.recoveryMs)}`;
        byBasis.set(basis, [...new Set([...(byBasis.get(basis) ?? []), x.pop])]);
    }
    const bases = [...byBasis].map(([basis, pops]) => `Bounds from the config of ${pops.join(", ")}: ${basis}`);
    const panels: Panel[] = e.runs.map((x, i) => ({
        title: `run ${i + 1} · ${x.pop}${x.region !== x.pop ? ` (region ${x.region})` : ""}`,
        caption: x.error ? `${x.requests} requests` : `to ${x.servedBy ?? "nobody"} after ${ms(x.failoverMs)}, back after ${ms(x.recoveryMs)}; ` +
            `failed ${x.failedDuringFailover} + ${x.failedDuringRecovery} of ${x.requests}${x.failures ? ` (${x.failures})` : ""}`,
        error: x.error, timeline: x.timeline,
    }));
    return intro + summary + `<p class="muted">${bases.map(esc).join("; ")}</p>` + runGrid(`exp-${e.id}`, panels, colours, "requests/s from the region's client");
}

function experimentsSection(r: LabReport, colours: Map<string, string>): string {
    const body = r.experiments.length === 0 && !r.experimentsAborted
        ? '<p class="muted">No failure experiments in this report.</p>'
        : r.experiments.map((e) => experimentBlock(e, colours)).join("") +
          (r.experimentsAborted ? `<p class="bad">Stopped: ${esc(r.experimentsAborted)}</p>` : "");
    return `<section id="experiments"><h2>Failure experiments: what the region's client saw</h2>` +
        `<p class="muted">Each chart is one run: requests per second by the PoP that answered, stacked, with failed requests in red on top and ` +
        `as ticks under the axis. Time 0 is the start of the fault's command; the shaded span lasts until the repair's command started. ` +
        `A request counts in the bucket it was sent in (100 ms, or five requests' worth where they are sparser).</p>${body}</section>`;
}

function originSection(o: OriginFailoverReport | undefined, colours: Map<string, string>): string {
    if (!o || (!o.outage && !o.tunnelCut && !o.originDown && o.skipped.length === 0)) return "";
    const blocks: string[] = [];
    if (o.outage) {
        const x = o.outage;
        blocks.push(`<h3>Every origin down (each origin's HTTP service frozen)</h3><p>503 page from every region's own PoP after <b>${esc(statsText(x.first503))}</b>; ` +
            `served again after <b>${esc(statsText(x.recovery))}</b>; withdrawals ${x.withdrawals}; no answer ${x.noAnswerTotal}; after the last outage ` +
            `${x.servesAfter ? "every region served by its own PoP" : `<b class="bad">NOT serving (held down: ${esc(x.heldDown.join(", ") || "none")})</b>`}. ` +
            `The 503 page is what a PoP should answer here; it counts as failed in red.</p>` +
            runGrid("outage", x.runs.map((run, i) => ({
                title: `run ${i + 1} · +${(run.startedAtMs / 1000).toFixed(1)} s`, error: run.error, timeline: run.timeline,
                caption: `503 after ${ms(run.first503Ms)}, served again after ${ms(run.recoveryMs)}; ${run.answered503} × 503, ${run.noAnswer} no answer; ` +
                    `withdrew: ${run.notAnnounced.join(", ") || "none"}`,
            })), colours, "requests/s from every region's client together"));
    }
    if (o.tunnelCut) {
        const x = o.tunnelCut;
        blocks.push(`<h3>A PoP's tunnels to every origin cut (WireGuard dropped, origins up)</h3><p>Relayed through another PoP after ` +
            `<b>${esc(statsText(x.reroute))}</b>, adding ${esc(statsText(x.added))} per request; failed requests <b>${x.failedTotal}</b>.</p>` +
            runGrid("tunnel", x.runs.map((run, i) => ({
                title: `run ${i + 1} · ${run.pop}`, error: run.error, timeline: run.timeline,
                caption: `via ${run.relayedBy ?? "none"} after ${ms(run.rerouteMs)} (${ms(run.directMs)} → ${ms(run.relayedMs)} per request), direct again after ` +
                    `${ms(run.recoveryMs)}; ${run.stayedAnnounced ? "stayed announced" : "NOT announced throughout"}; failed ${run.failed}`,
            })), colours, "requests/s from the region's client"));
    }
    if (o.originDown) {
        const x = o.originDown;
        blocks.push(`<h3>One of two origins down (its HTTP service frozen)</h3><p>Every region served from the other after <b>${esc(statsText(x.switchTime))}</b>; ` +
            `paths up again ${esc(statsText(x.recovery))} after the thaw; failed requests <b>${x.failedTotal}</b>.</p>` +
            runGrid("origin-down", x.runs.map((run, i) => ({
                title: `run ${i + 1} · ${run.origin || "?"} down`, error: run.error, timeline: run.timeline,
                caption: `it served ${run.affected.join(", ") || "none"}; switched after ${ms(run.switchMs)}, paths up after ${ms(run.recoveryMs)}; failed ${run.failed}`,
            })), colours, "requests/s from every region's client together"));
    }
    for (const s of o.skipped) blocks.push(`<p class="muted">${esc(s.id)} not run: ${esc(s.why)}</p>`);
    return `<section id="origin"><h2>Origin failover</h2><p class="muted">As above: 0 is the start of the fault's command (the freeze, the cut), ` +
        "the shaded span lasts until the repair (the thaw, the tunnels back).</p>" + blocks.join("") + "</section>";
}

function idleSection(r: LabReport): string {
    const c = r.idleCost;
    if (!c) return "";
    const pops = [...new Set(c.daemons.map((d) => d.pop))];
    const colour = (d: DaemonCost["daemon"]) => DAEMON_COLOURS[DAEMONS.indexOf(d)] ?? "#8C959F";
    const groups = (value: (d: DaemonCost) => number, fmt: (v: number) => string) => pops.map((pop) => ({
        label: pop,
        bars: DAEMONS.flatMap((daemon) => c.daemons.filter((d) => d.pop === pop && d.daemon === daemon)
            .map((d) => ({ key: daemon, value: value(d), colour: colour(daemon), text: fmt(value(d)) }))),
    }));
    const cpu = groupedBars("idle-cpu", "CPU of each PoP's daemons at idle", "CPU, % of one core",
        groups((d) => d.cpuPercent, (v) => `${v.toFixed(1)} %`));
    const mem = groupedBars("idle-mem", "Resident memory of each PoP's daemons at idle", "resident memory, MiB",
        groups((d) => d.rssKiB / 1024, (v) => `${v.toFixed(1)} MiB`));
    return `<section id="idle"><h2>Idle cost of the daemons</h2><p class="muted">Each PoP's daemons over ${(c.sampledMs / 1000).toFixed(0)} s ` +
        `without traffic after set-up, before the lab's Prometheus (500 ms scrapes) starts (from /proc; nginx is its master and workers together). The whole machine started ` +
        `${c.forksPerSecond.toFixed(1)} processes/s meanwhile (the lab's own and anything else running).</p>` +
        `<div class="pair"><figure><figcaption><b>CPU</b></figcaption>${cpu}</figure>` +
        `<figure><figcaption><b>Memory</b></figcaption>${mem}</figure></div></section>`;
}

/** Which alerts each kind of fault fired on the lab's Prometheus, against what it should have. */
function alertsSection(r: LabReport): string {
    const a = r.alerts;
    if (!a) return "";
    const list = (xs: readonly string[]) => (xs.length ? xs.map((x) => `<code>${esc(x)}</code>`).join(" ") : "nothing");
    const rows = a.checks.map((c) => {
        const ok = c.missing.length === 0 && c.unexpected.length === 0;
        return [esc(`${c.experiment}${c.pop ? ` on ${c.pop}` : ""}`), list(c.fired),
            list(c.expected) + (c.allowed ? ` <span class="muted">(may fire: ${c.allowed.map(esc).join(", ")})</span>` : ""),
            c.firedAfterMs !== undefined && c.expected.length ? `${(c.firedAfterMs / 1000).toFixed(1)} s` : "",
            ok ? "ok" : `<b class="bad">${esc([...c.missing.map((m) => `missing ${m}`), ...c.unexpected.map((u) => `unexpected ${u}`)].join(", "))}</b>`];
    });
    return `<section id="alerts"><h2>Alerts: what Prometheus paged for each fault</h2><p class="muted">Prometheus on ${esc(a.where)}, ` +
        `scraping ${a.targets} targets over the mesh every ${a.scrapeIntervalMs} ms with the rendered rules (each <code>for</code> counted ` +
        `in scrapes). Each kind of fault is held once until its alerts fire. Before any fault: ${list(a.atRest)}.</p>` +
        table(["Fault", "Fired", "Expected", "All fired after", "Verdict"], rows, [3]) + "</section>";
}

function notesSection(r: LabReport): string {
    const items = [`Firewall: ${r.firewall}`, `TLS: ${r.tls}`, `Admin source: ${r.admin}`, ...r.notes,
        ...(r.rewrites.length ? [`The lab rewrote ${r.rewrites.length} setting${r.rewrites.length === 1 ? "" : "s"} of the rendered files (paths a namespace needs; timers on a stalling machine): the text report lists them.`] : [])];
    return `<section id="notes"><h2>Notes</h2><details open><summary>${items.length} notes from the lab</summary><ul>` +
        `${items.map((i) => `<li>${esc(i)}</li>`).join("")}</ul></details></section>`;
}

export function renderHtml(r: LabReport): string {
    const colours = popColours(r);
    const title = `anycast lab: ${r.ok ? "OK" : "NOT OK"}, ${r.config}, ${r.startedAt}`;
    return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" +
        // Nothing may be fetched: no script, image, font, frame or stylesheet from anywhere.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">" +
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">" +
        `<title>${esc(title)}</title><style>${CSS}</style></head><body><main>` +
        header(r) + catchmentSection(r, colours) + experimentsSection(r, colours) + originSection(r.originFailover, colours) +
        alertsSection(r) + idleSection(r) + notesSection(r) +
        `<footer>Written by anycast lab --html from the lab's report (the same data as --json). Self-contained: nothing on this page is loaded from elsewhere.</footer>` +
        "</main></body></html>\n";
}
