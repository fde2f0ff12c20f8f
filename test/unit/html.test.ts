/**
 * The lab report's page (lab/html.ts) from a real report (test/helpers/labfixture.ts): it loads
 * nothing, shows every PoP and region, a timeline per run with the fault marked, failed requests
 * marked, a wrong catchment marked, and escapes every name (a hostile PoP name below). The same
 * page in a real browser: test/render/html.test.ts.
 */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderHtml } from "../../lab/html";
import { esc } from "../../lab/svg";
import { ms } from "../../lab/text";
import type { ProbeTimeline } from "../../lab/timeline";
import { fixtureReport } from "../helpers/labfixture";

/** Every tag's attributes: name and value. */
function attributes(html: string): Array<{ tag: string; name: string; value: string }> {
    const out: Array<{ tag: string; name: string; value: string }> = [];
    for (const tag of html.matchAll(/<([a-zA-Z][\w-]*)((?:\s+[^\s=>]+(?:="[^"]*")?)*)\s*\/?>/g)) {
        for (const a of tag[2].matchAll(/([^\s=]+)(?:="([^"]*)")?/g)) out.push({ tag: tag[1].toLowerCase(), name: a[1].toLowerCase(), value: a[2] ?? "" });
    }
    return out;
}

/** The inline SVGs, by the id their title carries. */
function charts(html: string): Map<string, string> {
    const out = new Map<string, string>();
    for (const m of html.matchAll(/<svg [^>]*aria-labelledby="([^"]+)-t [^"]+"[^>]*>[\s\S]*?<\/svg>/g)) out.set(m[1], m[0]);
    return out;
}

const failedIn = (t: ProbeTimeline | undefined) => t?.buckets.reduce((n, b) => n + b.failed, 0) ?? 0;

/** Every string of a value, keys too, passed through `f`. */
function mapStrings<T>(value: T, f: (s: string) => string): T {
    if (typeof value === "string") return f(value) as T;
    if (Array.isArray(value)) return value.map((v) => mapStrings(v, f)) as T;
    if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [f(k), mapStrings(v, f)])) as T;
    return value;
}

describe("the lab report's HTML page", () => {
    const report = fixtureReport();
    const html = renderHtml(report);

    it("the fixture is a real report with timelines, failures and the idle cost", () => {
        assert.equal(report.topology.length, 3);
        assert.ok(report.experiments.length >= 4 && report.experiments.every((e) => e.runs.length === 2 && e.runs.every((r) => r.timeline)));
        assert.ok(report.experiments.some((e) => e.runs.some((r) => failedIn(r.timeline) > 0)), "some run lost requests");
        assert.ok(report.experiments.some((e) => e.runs.some((r) => failedIn(r.timeline) === 0)), "some run lost none");
        assert.ok(report.idleCost && report.originFailover?.outage && report.originFailover.tunnelCut && report.originFailover.originDown);
    });

    it("is self-contained: no script, no stylesheet, font, image or frame to fetch, links only within the page", () => {
        assert.match(html, /^<!DOCTYPE html>\n<html lang="en">/);
        assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">/);
        for (const banned of [/<script/i, /<link/i, /<img/i, /<iframe/i, /<object/i, /<embed/i, /<base/i, /<use/i, /<image/i, /<foreignObject/i,
            /@import/i, /url\(/i, /@font-face/i, /:\/\//, /javascript:/i]) {
            assert.doesNotMatch(html, banned);
        }
        const attrs = attributes(html);
        assert.ok(attrs.length > 1000, `${attrs.length} attributes found: the scan is broken`);
        for (const a of attrs) {
            assert.ok(!["src", "srcset", "poster", "data", "background", "xlink:href", "action", "formaction"].includes(a.name), `${a.tag} ${a.name}=${a.value}`);
            assert.ok(!a.name.startsWith("on"), `no event handler: ${a.tag} ${a.name}`);
        }
        const ids = new Set(attrs.filter((a) => a.name === "id").map((a) => a.value));
        for (const href of attrs.filter((a) => a.name === "href")) {
            assert.match(href.value, /^#/, "a link within the page");
            assert.ok(ids.has(href.value.slice(1)), `${href.value} has a target`);
        }
        assert.equal(html.split("<svg ").length, html.split("</svg>").length, "every chart closed");
    });

    it("shows the verdict, the config, the edge, the duration and each experiment's medians", () => {
        assert.match(html, /<span class="badge ok">OK<\/span>/);
        assert.ok(html.includes(`<dd>${esc(report.config)}</dd>`));
        assert.ok(html.includes("FRR (not the PoPs&#39; BIRD)"));
        assert.ok(html.includes(`${report.durationS.toFixed(0)} s (set-up ${report.setupS!.toFixed(1)} s)`));
        for (const e of report.experiments) {
            assert.ok(html.includes(`<td>${esc(e.title)}</td>`), e.title);
            assert.ok(html.includes(esc(ms(e.failover!.median))) && html.includes(esc(ms(e.recovery!.median))), `${e.title}'s medians`);
        }
    });

    it("every PoP and region appears in the catchment, which is drawn as it was", () => {
        const catchment = charts(html).get("catchment-chart")!;
        assert.ok(catchment, "the catchment chart");
        for (const t of report.topology) {
            assert.ok(catchment.includes(`>${esc(t.pop)}</text>`), `PoP ${t.pop}`);
            assert.ok(catchment.includes(`${esc(t.region)}</text>`), `region ${t.region}`);
            assert.ok(catchment.includes(`>${esc(t.popAddress)}</text>`) && catchment.includes(`>${esc(t.client)}</text>`));
        }
        assert.equal(catchment.match(/class="served"/g)?.length, report.catchment.length);
        assert.doesNotMatch(catchment, /mismatch/);
        assert.match(html, /Every region is served by its own PoP/);
    });

    it("marks a region served by another PoP, or by none", () => {
        const wrong = structuredClone(report);
        wrong.catchment[1].servedBy = wrong.catchment[0].expectedPop;
        delete wrong.catchment[2].servedBy;
        wrong.ok = false;
        const page = renderHtml(wrong);
        const catchment = charts(page).get("catchment-chart")!;
        assert.equal(catchment.match(/class="mismatch"/g)?.length, 2);
        assert.ok(catchment.includes(`NOT its own PoP: expected ${esc(wrong.catchment[1].expectedPop)}`));
        assert.ok(catchment.includes(`no answer (expected ${esc(wrong.catchment[2].expectedPop)})`));
        assert.ok(page.includes(`✗ ${esc(wrong.catchment[1].servedBy!)} (not ${esc(wrong.catchment[1].expectedPop)})`));
        assert.match(page, /2 regions are not served by their own PoP/);
        assert.match(page, /<span class="badge bad">NOT OK<\/span>/);
    });

    it("draws a timeline per run of every experiment, the fault and the repair marked, failed requests in red", () => {
        const all = charts(html);
        const runs = [
            ...report.experiments.flatMap((e) => e.runs.map((r, i) => ({ id: `exp-${e.id}-${i + 1}`, t: r.timeline }))),
            ...report.originFailover!.outage!.runs.map((r, i) => ({ id: `outage-${i + 1}`, t: r.timeline })),
            ...report.originFailover!.tunnelCut!.runs.map((r, i) => ({ id: `tunnel-${i + 1}`, t: r.timeline })),
            ...report.originFailover!.originDown!.runs.map((r, i) => ({ id: `origin-down-${i + 1}`, t: r.timeline })),
        ];
        assert.equal(runs.length, 14);
        for (const { id, t } of runs) {
            const chart = all.get(id);
            assert.ok(chart, `a chart for ${id}`);
            assert.match(chart, /<line [^>]*class="fault"\/>/, `${id}: the fault's start`);
            assert.match(chart, /class="marker-label fault">fault</);
            assert.equal(/<line [^>]*class="repair"\/>/.test(chart), t!.repairAtMs !== undefined, `${id}: the repair's start`);
            assert.match(chart, /class="fault-span"/);
            assert.match(chart, />seconds from the fault<\/text>/);
            assert.match(chart, />requests\/s<\/text>/);
            const lost = failedIn(t);
            assert.equal(/data-series="failed"/.test(chart), lost > 0, `${id}: ${lost} failed requests drawn`);
            assert.equal(/class="failed-tick"/.test(chart), lost > 0, `${id}: ${lost} failed requests ticked`);
            assert.ok(chart.includes(`${lost} failed requests.</desc>`), `${id}: its description counts them`);
            for (const pop of new Set(t!.buckets.flatMap((b) => Object.keys(b.byPop)).map((k) => k.split(" via ")[0]))) {
                assert.ok(chart.includes(`data-series="answered by ${esc(pop)}`), `${id}: ${pop}'s answers`);
            }
        }
        assert.match(html, /answered by lax, relayed by another PoP/, "the tunnel cut's relayed answers have a series");
    });

    it("draws the daemons' CPU and memory per PoP, each bar with its figure", () => {
        const all = charts(html);
        const cpu = all.get("idle-cpu")!;
        const mem = all.get("idle-mem")!;
        assert.match(cpu, />CPU, % of one core<\/text>/);
        assert.match(mem, />resident memory, MiB<\/text>/);
        for (const d of report.idleCost!.daemons) {
            assert.ok(cpu.includes(`>${d.cpuPercent.toFixed(1)} %</text>`), `${d.pop} ${d.daemon} CPU`);
            assert.ok(mem.includes(`>${(d.rssKiB / 1024).toFixed(1)} MiB</text>`), `${d.pop} ${d.daemon} memory`);
        }
        for (const t of report.topology) assert.ok(cpu.includes(`>${esc(t.pop)}</text>`) && mem.includes(`>${esc(t.pop)}</text>`));
    });

    it("escapes every string: a hostile PoP name stays text, in the page and in its charts", () => {
        assert.equal(esc(`<a href="x">Tom & 'Jerry'</a>`), "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
        assert.equal(esc(42), "42");
        const hostile = `</title><script>alert(1)</script><svg onload="x">"' onmouseover='y' &amp;`;
        const page = renderHtml(mapStrings(report, (s) => s.replaceAll("ams", hostile)));
        assert.ok(page.length > html.length);
        assert.doesNotMatch(page, /<script|<svg onload|onmouseover='y'|onmouseover="/);
        assert.ok(!attributes(page).some((a) => a.name.startsWith("on")), "no attribute injected");
        const escaped = esc(hostile);
        assert.equal(escaped, "&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;svg onload=&quot;x&quot;&gt;&quot;&#39; onmouseover=&#39;y&#39; &amp;amp;");
        assert.ok(page.includes(`>${escaped}</text>`), "the name in a chart");
        assert.ok(page.includes(`data-series="answered by ${escaped}"`), "the name in an attribute");
        assert.equal(page.split("<svg ").length, html.split("<svg ").length, "no chart more or less");
        assert.equal(page.split("<title").length - 1, 1 + charts(page).size, "the page's title and one per chart, no more");
    });

    it("renders what a smaller report has: no experiments, no idle cost, a run without a timeline, IPv4 catchment", () => {
        const bare = structuredClone(report);
        bare.experiments = [];
        delete bare.originFailover;
        delete bare.idleCost;
        const page = renderHtml(bare);
        assert.match(page, /No failure experiments in this report/);
        assert.doesNotMatch(page, /id="idle"|href="#idle"|id="origin"|href="#origin"/);
        const ids = new Set(attributes(page).filter((a) => a.name === "id").map((a) => a.value));
        for (const href of attributes(page).filter((a) => a.name === "href")) assert.ok(ids.has(href.value.slice(1)), href.value);

        const older = structuredClone(report);
        delete older.experiments[0].runs[0].timeline;
        older.experiments[0].runs[0].error = "no other PoP served lax within 15 s";
        older.experiments[1] = { ...older.experiments[1], runs: [], skipped: "one PoP: no other PoP can take its traffic over" };
        older.catchment4 = older.catchment.map((c) => ({ region: c.region, client: "198.51.100.9", target: "198.51.100.1", expectedPop: c.expectedPop, arrivedAt: [c.expectedPop] }));
        const shown = renderHtml(older);
        assert.match(shown, /No timeline in this report/);
        assert.match(shown, /ERROR: no other PoP served lax within 15 s/);
        assert.match(shown, /Not run: one PoP: no other PoP can take its traffic over/);
        assert.match(shown, /<th>IPv4 arrived at<\/th>/);
        assert.equal(charts(shown).has(`exp-${older.experiments[0].id}-1`), false);
        assert.ok(charts(shown).has(`exp-${older.experiments[0].id}-2`));
    });

    it("shows which alerts each fault fired, and marks one missing or unexpected", () => {
        assert.ok(report.alerts && report.alerts.checks.length >= 5, "the fixture's alerts");
        assert.match(html, /<section id="alerts">/);
        assert.match(html, /href="#alerts"/);
        for (const c of report.alerts!.checks) for (const a of c.fired) assert.ok(html.includes(`<code>${esc(a)}</code>`), a);
        const wrong = structuredClone(report);
        wrong.alerts!.checks[0] = { ...wrong.alerts!.checks[0], fired: [], missing: ["AnycastBirdUnreachable{pop=lax}"], unexpected: ["<b>x</b>"] };
        const page = renderHtml(wrong);
        assert.match(page, /<b class="bad">missing AnycastBirdUnreachable\{pop=lax\}, unexpected &lt;b&gt;x&lt;\/b&gt;<\/b>/);
        const none = structuredClone(report);
        delete none.alerts;
        assert.doesNotMatch(renderHtml(none), /id="alerts"|href="#alerts"/);
    });

    it("is a pure function of the report", () => {
        assert.equal(renderHtml(fixtureReport()), html);
    });
});
