/**
 * Text for people and for CI logs: everything the `anycast` command prints fits in
 * OUTPUT_COLUMNS, tables have labelled columns, and long steps report their elapsed time.
 */

/** The widest line any command prints (CI logs and terminals of 100 columns show it unwrapped). */
export const OUTPUT_COLUMNS = 100;

/** Cut `text` to `width` characters, marking the cut with "…". */
export function truncate(text: string, width: number): string {
    if (text.length <= width) return text;
    return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

/**
 * Wrap `text` at word boundaries to `width`, continuation lines indented by `indent` spaces.
 * Lines already in `text` are kept; a word longer than a line is cut.
 */
export function wrap(text: string, indent = 4, width = OUTPUT_COLUMNS): string {
    const out: string[] = [];
    for (const paragraph of text.split("\n")) {
        const lead = /^ */.exec(paragraph)![0];
        let current = lead;
        let first = true;
        for (const word of paragraph.slice(lead.length).split(" ")) {
            if (first) {
                current += word;
                first = false;
            } else if (current.length + 1 + word.length <= width) {
                current += ` ${word}`;
            } else {
                out.push(truncate(current, width));
                current = " ".repeat(indent) + word;
            }
        }
        out.push(truncate(current, width));
    }
    return out.join("\n");
}

export interface Column {
    header: string;
    /** Right-align (numbers). */
    right?: boolean;
    /** This column gives way first when the table is too wide (cut with "…"). */
    shrink?: boolean;
}

/** A table with a header row, columns two spaces apart, at most `width` wide. */
export function table(columns: Column[], rows: string[][], width = OUTPUT_COLUMNS): string[] {
    const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? "").length)));
    const total = () => widths.reduce((a, b) => a + b, 0) + 2 * (columns.length - 1);
    const shrinkable = columns.map((c, i) => (c.shrink ? i : -1)).filter((i) => i >= 0);
    for (const i of shrinkable) {
        const excess = total() - width;
        if (excess > 0) widths[i] = Math.max(columns[i].header.length, widths[i] - excess);
    }
    const cell = (text: string, i: number) => {
        const t = truncate(text, widths[i]);
        return columns[i].right ? t.padStart(widths[i]) : t.padEnd(widths[i]);
    };
    const line = (cells: string[]) => truncate(cells.map(cell).join("  ").trimEnd(), width);
    return [line(columns.map((c) => c.header)), ...rows.map(line)];
}

/** "1.4 s" / "85 ms". */
export function elapsed(ms: number): string {
    return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/**
 * Run one long step, printing a line when it starts and one with its elapsed time when it
 * ends, in the lab's style ("  <what> ..." then "  <what>: done in 1.4 s, <result>").
 */
export async function step<T>(log: (line: string) => void, what: string, run: () => Promise<T>,
    result?: (value: T) => string): Promise<T> {
    const started = Date.now();
    log(truncate(`  ${what} ...`, OUTPUT_COLUMNS));
    const value = await run();
    const detail = result ? `, ${result(value)}` : "";
    log(truncate(`  ${what}: done in ${elapsed(Date.now() - started)}${detail}`, OUTPUT_COLUMNS));
    return value;
}
