/**
 * Text layout for the lab's report and progress lines: every line fits in REPORT_WIDTH columns
 * (a terminal, a CI log, a pull-request comment). Tables have a label on every column and wrap
 * their widest cells instead of running off the right edge; prose wraps at word boundaries with
 * a hanging indent.
 */

/** The widest line the lab prints. */
export const REPORT_WIDTH = 100;

/** Break `text` into pieces of at most `width` characters, at spaces where it can. */
export function wrapCell(text: string, width: number): string[] {
    if (width < 1) throw new Error(`cannot wrap to width ${width}`);
    const out: string[] = [];
    let line = "";
    for (const word of text.split(" ")) {
        let w = word;
        // A word longer than the width (an address, a path) is cut where it must be.
        while (w.length > width) {
            if (line) {
                out.push(line);
                line = "";
            }
            out.push(w.slice(0, width));
            w = w.slice(width);
        }
        if (!line) line = w;
        else if (line.length + 1 + w.length <= width) line += ` ${w}`;
        else {
            out.push(line);
            line = w;
        }
    }
    out.push(line);
    return out;
}

/**
 * A paragraph: the first line starts with `first`, continuation lines with `rest` (a hanging
 * indent), each at most `width` columns.
 */
export function wrap(text: string, first = "", rest = first + "  ", width = REPORT_WIDTH): string[] {
    const room = Math.max(10, width - Math.max(first.length, rest.length));
    return wrapCell(text, room).map((line, i) => (i === 0 ? first : rest) + line);
}

/** The longest unbreakable word in a cell: a column narrower than that cuts words. */
function longestWord(text: string): number {
    return Math.max(0, ...text.split(" ").map((w) => w.length));
}

/**
 * Column widths that fit `room`: each column's natural width, then the widest columns shrink
 * together (never below the next widest, so no one column takes all the cuts), first down to
 * their longest word, then to the longest word of their label, then to a few characters.
 */
function fitWidths(header: string[], rows: string[][], room: number): number[] {
    const cells = (i: number) => [header[i], ...rows.map((r) => r[i] ?? "")];
    const widths = header.map((_, i) => Math.max(...cells(i).map((c) => c.length)));
    const total = () => widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
    const floors = [
        header.map((_, i) => Math.max(...cells(i).map(longestWord))),
        header.map((h) => Math.max(4, longestWord(h))),
        header.map(() => 4),
    ];
    for (const floor of floors) {
        while (total() > room) {
            const shrinkable = widths.map((w, i) => i).filter((i) => widths[i] > floor[i]);
            if (shrinkable.length === 0) break;
            const widest = shrinkable.reduce((a, b) => (widths[b] > widths[a] ? b : a));
            const next = Math.max(0, ...shrinkable.filter((i) => i !== widest).map((i) => widths[i]));
            const target = Math.max(floor[widest], widths[widest] - (total() - room), Math.min(next, widths[widest] - 1));
            widths[widest] = target;
        }
    }
    return widths;
}

/**
 * A table with a label on every column: header, a rule, rows. Cells too wide for `width` wrap
 * onto continuation lines within their column.
 */
export function table(header: string[], rows: string[][], indent = "  ", width = REPORT_WIDTH): string[] {
    const unlabelled = header.findIndex((h) => h.trim() === "");
    if (unlabelled >= 0) throw new Error(`table column ${unlabelled + 1} has no label`);
    const widths = fitWidths(header, rows, width - indent.length);
    const render = (cells: string[]): string[] => {
        const wrapped = widths.map((w, i) => wrapCell(cells[i] ?? "", w));
        const height = Math.max(...wrapped.map((c) => c.length));
        return Array.from({ length: height }, (_, line) => indent + wrapped
            .map((c, i) => (i === widths.length - 1 ? (c[line] ?? "") : (c[line] ?? "").padEnd(widths[i])))
            .join("  ").trimEnd());
    };
    return [...render(header), indent + widths.map((w) => "-".repeat(w)).join("  "), ...rows.flatMap(render)];
}

/** A duration for people: ms below a second, seconds with two decimals below ten, one above. */
export function ms(value: number | undefined): string {
    if (value === undefined) return "n/a";
    if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
    if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
    return `${Math.round(value)} ms`;
}

/**
 * JSON as people read it (`--json`): two spaces of indent, but an object or array whose one-line
 * form fits within `width` columns stays on one line, so a report's many small records (a
 * timeline's buckets above all) take a line each rather than six. The same value as
 * JSON.stringify gives; only the whitespace differs.
 */
export function jsonText(value: unknown, width = REPORT_WIDTH): string {
    type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
    // JSON.stringify's own rules (toJSON, undefined and functions left out or null) first.
    const plain = JSON.parse(JSON.stringify(value) ?? "null") as Json;
    const oneLine = (v: Json): string => {
        if (v === null || typeof v !== "object") return JSON.stringify(v);
        if (Array.isArray(v)) return `[${v.map(oneLine).join(", ")}]`;
        return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${oneLine(x)}`).join(", ")}}`;
    };
    const write = (v: Json, indent: string, lead: number): string => {
        if (v === null || typeof v !== "object") return JSON.stringify(v);
        const flat = oneLine(v);
        const entries: Array<[string, Json]> = Array.isArray(v) ? v.map((x) => ["", x]) : Object.entries(v);
        if (entries.length === 0 || indent.length + lead + flat.length <= width) return flat;
        const inner = indent + "  ";
        const lines = entries.map(([k, x]) => {
            const key = Array.isArray(v) ? "" : `${JSON.stringify(k)}: `;
            return inner + key + write(x, inner, key.length);
        });
        return `${Array.isArray(v) ? "[" : "{"}\n${lines.join(",\n")}\n${indent}${Array.isArray(v) ? "]" : "}"}`;
    };
    return write(plain, "", 0);
}
