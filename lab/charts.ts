/**
 * The report page's three charts, each a pure function to an SVG string (lab/svg.ts draws):
 *
 *  - a run's timeline: requests per second stacked by the PoP that answered, failed requests in
 *    red on top and as ticks under the axis, the time the fault was in place shaded between its
 *    start and the repair's;
 *  - the catchment: each region's client joined to the PoP that served it, a wrong PoP in red
 *    and dashed, with the expected one named;
 *  - grouped bars: a figure per PoP and daemon (the idle cost's CPU and memory).
 */
import type { ProbeTimeline } from "./timeline";
import { AXIS, el, esc, FAILED, FAULT_BAND, FAULT_BAR, GRID, INK, line, n, niceMax, rect, svg, text, ticks } from "./svg";

export interface TimelineSeries {
    label: string;
    colour: string;
    keys: string[];
}

export interface TimelineChartInput {
    id: string;
    /** The chart's accessible name (the page shows its caption as HTML beside it). */
    title: string;
    timeline: ProbeTimeline;
    /** The x axis, seconds from the fault (shared by the runs of an experiment, so they compare). */
    x: [number, number];
    /** Requests per second at the top of the y axis, shared too. */
    yMax: number;
    /** The series in stacking order, bottom first, with their colours and the byPop keys each sums. */
    series: TimelineSeries[];
    width?: number;
    height?: number;
}

/** The highest requests per second (answered and failed together) in a bucket of the timeline. */
export function peakRate(t: ProbeTimeline): number {
    let peak = 0;
    for (const b of t.buckets) peak = Math.max(peak, Object.values(b.byPop).reduce((s, v) => s + v, b.failed));
    return peak * 1000 / t.bucketMs;
}

/** The seconds from the fault that the timeline spans: its first and its last bucket's edges. */
export function spanOf(t: ProbeTimeline): [number, number] {
    return [-t.faultAtMs / 1000, (t.buckets.length * t.bucketMs - t.faultAtMs) / 1000];
}

/**
 * One band per series, bucket by bucket, as a single path: buckets of equal height are merged,
 * so a steady second costs two points rather than twenty.
 */
function bandPath(xs: Array<[number, number]>, lo: number[], hi: number[]): string {
    const runs: Array<{ x0: number; x1: number; lo: number; hi: number }> = [];
    xs.forEach(([x0, x1], i) => {
        const last = runs[runs.length - 1];
        if (last && last.lo === lo[i] && last.hi === hi[i] && Math.abs(last.x1 - x0) < 0.01) last.x1 = x1;
        else runs.push({ x0, x1, lo: lo[i], hi: hi[i] });
    });
    if (runs.every((r) => r.lo === r.hi)) return "";
    const top = runs.flatMap((r) => [`${n(r.x0)},${n(r.hi)}`, `${n(r.x1)},${n(r.hi)}`]);
    const bottom = runs.reverse().flatMap((r) => [`${n(r.x1)},${n(r.lo)}`, `${n(r.x0)},${n(r.lo)}`]);
    return `M${[...top, ...bottom].join("L")}Z`;
}

export function timelineChart(c: TimelineChartInput): string {
    const W = c.width ?? 420;
    const H = c.height ?? 200;
    const m = { l: 46, r: 14, t: 24, b: 44 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const [x0, x1] = c.x;
    const t = c.timeline;
    const sx = (s: number) => m.l + ((Math.min(Math.max(s, x0), x1) - x0) / (x1 - x0 || 1)) * pw;
    const sy = (v: number) => m.t + ph - (Math.min(v, c.yMax) / c.yMax) * ph;
    const perS = 1000 / t.bucketMs;
    const fault = 0;
    const repair = t.repairAtMs !== undefined ? (t.repairAtMs - t.faultAtMs) / 1000 : undefined;
    const parts: string[] = [];

    // The fault in place: shaded from its start to the repair's (or to the end: never repaired).
    const bandEnd = repair ?? x1;
    parts.push(rect(sx(fault), m.t, sx(bandEnd) - sx(fault), ph, { fill: FAULT_BAND }));
    for (const v of ticks(0, c.yMax, 4)) {
        parts.push(line(m.l, sy(v), m.l + pw, sy(v), { stroke: GRID }));
        parts.push(text(m.l - 6, sy(v) + 4, String(v), { "text-anchor": "end", class: "tick" }));
    }
    for (const v of ticks(x0, x1, 6)) {
        parts.push(line(sx(v), m.t + ph, sx(v), m.t + ph + 4, { stroke: AXIS }));
        parts.push(text(sx(v), m.t + ph + 25, String(v), { "text-anchor": "middle", class: "tick" }));
    }

    // Stacked bands, PoPs first and failed requests on top: the total height is what was sent.
    const xs = t.buckets.map((_, i): [number, number] =>
        [sx((i * t.bucketMs - t.faultAtMs) / 1000), sx(((i + 1) * t.bucketMs - t.faultAtMs) / 1000)]);
    const base = t.buckets.map(() => 0);
    const layers = [...c.series.map((s) => ({ colour: s.colour, key: s.label, value: (i: number) => s.keys.reduce((v, k) => v + (t.buckets[i].byPop[k] ?? 0), 0) })),
        { colour: FAILED, key: "failed", value: (i: number) => t.buckets[i].failed }];
    for (const layer of layers) {
        const lo = base.map((v) => sy(v));
        t.buckets.forEach((_, i) => { base[i] += layer.value(i) * perS; });
        const d = bandPath(xs, lo, base.map((v) => sy(v)));
        // Crisp edges: neighbouring bands meet on whole pixels, without anti-aliased seams between them.
        if (d) parts.push(el("path", { d, fill: layer.colour, "shape-rendering": "crispEdges", "data-series": layer.key }));
    }

    // Failed requests once more as ticks under the axis: even one is seen, colour or not.
    let strip: { from: number; to: number } | undefined;
    const flush = () => {
        if (strip) parts.push(rect(xs[strip.from][0], m.t + ph + 5, Math.max(2, xs[strip.to][1] - xs[strip.from][0]), 6, { fill: FAILED, class: "failed-tick" }));
        strip = undefined;
    };
    t.buckets.forEach((b, i) => {
        if (b.failed === 0) flush();
        else if (strip) strip.to = i;
        else strip = { from: i, to: i };
    });
    flush();

    parts.push(line(m.l, m.t + ph, m.l + pw, m.t + ph, { stroke: AXIS }));
    parts.push(line(m.l, m.t, m.l, m.t + ph, { stroke: AXIS }));
    // The span once more as a bar along the top, where the stacked bands do not cover it.
    parts.push(rect(sx(fault), m.t - 4, Math.max(2, sx(bandEnd) - sx(fault)), 4, { fill: FAULT_BAR, class: "fault-span" }));
    const marker = (s: number, label: string, cls: string, anchor: string) => {
        parts.push(line(sx(s), m.t - 4, sx(s), m.t + ph, { stroke: INK, "stroke-width": 1.5, "stroke-dasharray": "5 3", class: cls }));
        parts.push(text(sx(s) + (anchor === "end" ? -3 : 3), m.t - 8, label, { "text-anchor": anchor, class: `marker-label ${cls}` }));
    };
    // The labels lean away from each other, so a quick repair does not write over the fault's.
    marker(fault, "fault", "fault", "end");
    if (repair !== undefined) marker(repair, "repair", "repair", "start");
    parts.push(text(m.l + pw / 2, H - 4, "seconds from the fault", { "text-anchor": "middle", class: "axis-label" }));
    parts.push(text(12, m.t + ph / 2, "requests/s", { "text-anchor": "middle", class: "axis-label",
        transform: `rotate(-90 12 ${n(m.t + ph / 2)})` }));
    const failed = t.buckets.reduce((s, b) => s + b.failed, 0);
    const desc = `Requests per second by answering PoP from ${x0} s to ${x1} s around the fault; ` +
        `fault at 0 s${repair !== undefined ? `, repair at ${repair.toFixed(2)} s` : ", no repair"}; ${failed} failed requests.`;
    return svg(c.id, W, H, c.title, desc, parts.join(""));
}

export interface CatchmentRow {
    region: string;
    client: string;
    expectedPop: string;
    /** Undefined: nobody answered. */
    servedBy?: string;
    /** A short verdict beside the line, e.g. "200 in 12 ms". */
    detail: string;
}

/** Regions on the left, PoPs on the right, a line from each region to the PoP that served it. */
export function catchmentDiagram(id: string, rows: CatchmentRow[], pops: Array<{ name: string; address: string; colour: string }>): string {
    const W = 640;
    const rowH = 46;
    const top = 34;
    const H = top + Math.max(rows.length, pops.length) * rowH + 10;
    const lx = 230;
    const rx = 470;
    const yOf = (i: number) => top + i * rowH + rowH / 2;
    const parts: string[] = [
        text(20, 18, "region (its client plays a Cloudflare colo)", { class: "axis-label" }),
        text(rx + 14, 18, "PoP that served it", { class: "axis-label" }),
    ];
    const popIndex = new Map(pops.map((p, i) => [p.name, i]));
    rows.forEach((r, i) => {
        const y = yOf(i);
        const to = r.servedBy !== undefined ? popIndex.get(r.servedBy) : undefined;
        const own = r.servedBy === r.expectedPop;
        if (!own && popIndex.has(r.expectedPop)) {
            // Where it should have gone: a faint dotted line, so the wrong one stands out.
            parts.push(line(lx, y, rx, yOf(popIndex.get(r.expectedPop)!), { stroke: AXIS, "stroke-width": 1.5, "stroke-dasharray": "2 4" }));
        }
        if (to !== undefined) {
            parts.push(line(lx, y, rx, yOf(to), own
                ? { stroke: pops[to].colour, "stroke-width": 3, class: "served" }
                : { stroke: FAILED, "stroke-width": 3, "stroke-dasharray": "8 5", class: "mismatch" }));
        } else {
            parts.push(line(lx, y, lx + 60, y, { stroke: FAILED, "stroke-width": 3, "stroke-dasharray": "8 5", class: "mismatch" }));
        }
        parts.push(el("circle", { cx: lx, cy: y, r: 6, fill: INK }));
        parts.push(text(20, y - 3, `${own ? "✓" : "✗"} ${r.region}`, { class: own ? "node" : "node bad" }));
        parts.push(text(20, y + 13, r.client, { class: "small muted" }));
        const verdict = own ? r.detail : r.servedBy === undefined ? `no answer (expected ${r.expectedPop})` : `NOT its own PoP: expected ${r.expectedPop}`;
        // Beside the line, on the side it does not go to: above it unless it climbs to a PoP above.
        const climbs = to !== undefined && yOf(to) < y;
        parts.push(text(lx + 12, climbs ? y + 16 : y - 8, verdict, { class: own ? "small muted" : "small bad" }));
    });
    pops.forEach((p, i) => {
        const y = yOf(i);
        parts.push(el("circle", { cx: rx, cy: y, r: 7, fill: p.colour }));
        parts.push(text(rx + 14, y - 3, p.name, { class: "node" }));
        parts.push(text(rx + 14, y + 13, p.address, { class: "small muted" }));
    });
    const wrong = rows.filter((r) => r.servedBy !== r.expectedPop);
    const desc = rows.map((r) => `${r.region} served by ${r.servedBy ?? "nobody"}${r.servedBy === r.expectedPop ? "" : ` (expected ${r.expectedPop})`}`).join("; ") +
        (wrong.length ? `. ${wrong.length} region(s) not served by their own PoP.` : ". Every region served by its own PoP.");
    return svg(id, W, H, "Catchment: which PoP each region's client reached", desc, parts.join(""));
}

export interface BarGroup {
    label: string;
    bars: Array<{ key: string; value: number; colour: string; text: string }>;
}

/** Horizontal bars in groups (one group per PoP), an axis from 0 with its unit. */
export function groupedBars(id: string, title: string, unit: string, groups: BarGroup[], width = 600): string {
    const barH = 13;
    const gap = 3;
    const groupGap = 14;
    // Room on the left for the group's name and each bar's own (the colours only repeat them).
    const m = { l: 176, r: 86, t: 12, b: 40 };
    const heights = groups.map((g) => g.bars.length * (barH + gap) - gap);
    const ph = heights.reduce((s, h) => s + h, 0) + groupGap * Math.max(0, groups.length - 1);
    const H = m.t + ph + m.b;
    const pw = width - m.l - m.r;
    const max = niceMax(Math.max(0, ...groups.flatMap((g) => g.bars.map((b) => b.value))), 5);
    const sx = (v: number) => m.l + (v / max) * pw;
    const parts: string[] = [];
    for (const v of ticks(0, max, 5)) {
        parts.push(line(sx(v), m.t, sx(v), m.t + ph, { stroke: GRID }));
        parts.push(text(sx(v), m.t + ph + 16, String(v), { "text-anchor": "middle", class: "tick" }));
    }
    let y = m.t;
    groups.forEach((g, gi) => {
        parts.push(text(4, y + heights[gi] / 2 + 4, g.label, { class: "node" }));
        if (gi > 0) parts.push(line(4, y - groupGap / 2, m.l + pw, y - groupGap / 2, { stroke: GRID }));
        for (const b of g.bars) {
            parts.push(text(m.l - 8, y + barH - 2, b.key, { "text-anchor": "end", class: "small muted" }));
            parts.push(rect(m.l, y, Math.max(1, sx(b.value) - m.l), barH, { fill: b.colour, "data-series": b.key }));
            parts.push(text(sx(b.value) + 5, y + barH - 2, b.text, { class: "small" }));
            y += barH + gap;
        }
        y += groupGap - gap;
    });
    parts.push(line(m.l, m.t + ph, m.l + pw, m.t + ph, { stroke: AXIS }));
    parts.push(text(m.l + pw / 2, H - 4, unit, { "text-anchor": "middle", class: "axis-label" }));
    const desc = groups.map((g) => `${g.label}: ${g.bars.map((b) => `${b.key} ${b.text}`).join(", ")}`).join("; ");
    return svg(id, width, H, title, desc, parts.join(""));
}

/** A legend's swatch in HTML: the colour and the word, never the colour alone. */
export function swatch(colour: string, label: string, shape: "box" | "line" | "dash" = "box"): string {
    return `<span class="key"><span class="sw ${shape}" style="--c:${esc(colour)}"></span>${esc(label)}</span>`;
}
