/**
 * The small kit the report's page (lab/html.ts) draws with: escaping, SVG elements as strings,
 * nice axis ticks and the palettes. Hand-written rather than a charting package: the page must
 * load nothing (no script, no font, no stylesheet from elsewhere), and three kinds of chart do
 * not need more than this.
 *
 * Inline SVG in an HTML page is parsed by the HTML parser, so one escape serves text and
 * attribute values in both: every string that comes from a report (PoP, region and origin
 * names are the user's config; errors quote tools) goes through `esc`.
 */

/** Text and attribute values, in HTML and inline SVG alike. */
export function esc(value: string | number): string {
    return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** A coordinate: one decimal is finer than a pixel, and keeps the page small. */
export function n(value: number): string {
    return String(Math.round(value * 10) / 10);
}

type Attrs = Record<string, string | number | undefined>;

function attrs(a: Attrs): string {
    return Object.entries(a).filter(([, v]) => v !== undefined)
        .map(([k, v]) => ` ${k}="${typeof v === "number" ? n(v) : esc(v!)}"`).join("");
}

export function el(name: string, a: Attrs, content?: string): string {
    return content === undefined ? `<${name}${attrs(a)}/>` : `<${name}${attrs(a)}>${content}</${name}>`;
}

/** Text at (x, y); `content` is escaped here. */
export function text(x: number, y: number, content: string, a: Attrs = {}): string {
    return el("text", { x, y, ...a }, esc(content));
}

export function line(x1: number, y1: number, x2: number, y2: number, a: Attrs = {}): string {
    return el("line", { x1, y1, x2, y2, ...a });
}

export function rect(x: number, y: number, width: number, height: number, a: Attrs = {}): string {
    return el("rect", { x, y, width: Math.max(0, width), height: Math.max(0, height), ...a });
}

/**
 * An SVG image with its accessible name and description (read out instead of the drawing). No
 * xmlns: the HTML parser puts inline <svg> in the SVG namespace itself.
 */
export function svg(id: string, width: number, height: number, title: string, desc: string, body: string): string {
    return `<svg viewBox="0 0 ${n(width)} ${n(height)}" width="${n(width)}" height="${n(height)}" role="img" ` +
        `aria-labelledby="${esc(id)}-t ${esc(id)}-d" class="chart"><title id="${esc(id)}-t">${esc(title)}</title>` +
        `<desc id="${esc(id)}-d">${esc(desc)}</desc>${body}</svg>`;
}

/** A step of 1, 2 or 5 times a power of ten, giving about `count` ticks over `span`. */
export function niceStep(span: number, count = 5): number {
    if (!(span > 0)) return 1;
    const raw = span / count;
    const power = 10 ** Math.floor(Math.log10(raw));
    const f = raw / power;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

/** Tick values from the first multiple of the step at or above `min` up to `max`. */
export function ticks(min: number, max: number, count = 5): number[] {
    const step = niceStep(max - min, count);
    const out: number[] = [];
    // Rounded to the step's decimals, so 0.30000000000000004 prints as 0.3.
    const decimals = Math.max(0, -Math.floor(Math.log10(step)));
    for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toFixed(decimals)));
    return out;
}

/** The top of an axis from 0: the first tick at or above `max`. */
export function niceMax(max: number, count = 5): number {
    if (!(max > 0)) return 1;
    const step = niceStep(max, count);
    return Math.ceil(max / step - 1e-9) * step;
}

/**
 * One colour per PoP, in the topology's order: Okabe and Ito's colour-blind safe set without its
 * vermillion (red means failed requests here), then two of Paul Tol's; 8 PoPs at most.
 */
export const POP_COLOURS = ["#0072B2", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#332288", "#999933", "#555555"];
/** Failed requests and wrong answers: a red no PoP has, always beside a shape or a word that says so too. */
export const FAILED = "#C62828";
/** The daemons of the idle cost chart (Paul Tol's muted set), not to be read as PoPs. */
export const DAEMON_COLOURS = ["#332288", "#88CCEE", "#44AA99", "#DDCC77"];
/** The time a fault was in place: a pale band behind the data, a stronger bar above it. */
export const FAULT_BAND = "#FFF4D6";
export const FAULT_BAR = "#E3A008";
export const INK = "#1F2328";
export const MUTED = "#59636E";
export const GRID = "#E4E7EB";
export const AXIS = "#8C959F";

/** A colour halfway to white: an answer relayed through another PoP, in its own PoP's colour. */
export function tint(hex: string, amount = 0.5): string {
    const c = parseInt(hex.slice(1), 16);
    const mix = (v: number) => Math.round(v + (255 - v) * amount).toString(16).padStart(2, "0");
    return `#${mix((c >> 16) & 255)}${mix((c >> 8) & 255)}${mix(c & 255)}`;
}
