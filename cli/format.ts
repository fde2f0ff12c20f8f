/**
 * Text for people and for CI logs: everything the `anycast` command prints fits in
 * OUTPUT_COLUMNS, tables have labelled columns, and long steps report their elapsed time. The
 * layout itself is the lab report's (lab/text.ts), so the command and the lab print alike.
 */
import { ms, REPORT_WIDTH, table as labelledTable, wrap as wrapParagraph } from "../lab/text";

/** The widest line any command prints (CI logs and terminals of 100 columns show it unwrapped). */
export const OUTPUT_COLUMNS = REPORT_WIDTH;

/** Cut `text` to `width` characters, marking the cut with "…". */
export function truncate(text: string, width: number): string {
    if (text.length <= width) return text;
    return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

/**
 * Wrap `text` at word boundaries to OUTPUT_COLUMNS, continuation lines indented by `indent`
 * spaces. Lines already in `text` are kept, each with its own leading spaces.
 */
export function wrap(text: string, indent = 4): string {
    return text.split("\n").flatMap((paragraph) => {
        const lead = /^ */.exec(paragraph)![0];
        return wrapParagraph(paragraph.slice(lead.length), lead, " ".repeat(Math.max(indent, lead.length)), OUTPUT_COLUMNS);
    }).join("\n");
}

/**
 * A progress sink whose every line fits OUTPUT_COLUMNS: a longer line wraps at word boundaries
 * with a hanging indent, the others pass as they are (a table row keeps its spacing).
 */
export function fitting(sink: (line: string) => void): (text: string) => void {
    return (text) => {
        for (const line of text.split("\n")) sink(line.length <= OUTPUT_COLUMNS ? line : wrap(line));
    };
}

/** A table with a label on every column, indented by `indent`, within OUTPUT_COLUMNS. */
export function table(header: string[], rows: string[][], indent = ""): string[] {
    return labelledTable(header, rows, indent, OUTPUT_COLUMNS);
}

/** "85 ms", "1.40 s", "12.3 s": as the lab reports durations. */
export const elapsed = ms;

/**
 * Run one long step, printing a line when it starts and one with its elapsed time when it
 * ends, in the lab's style ("  <what> ..." then "  <what>: done in 1.40 s, <result>").
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
