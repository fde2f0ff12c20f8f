/**
 * A Pulumi stack file (`Pulumi.<stack>.yaml`) read as text, with errors a person can act on:
 * `file:line:column`, the offending line and a caret under the spot, never a parser's stack.
 */
import { parseDocument } from "yaml";

/** The stack file cannot be read as a stack file; `message` is ready to print. */
export class StackFileError extends Error {
    constructor(readonly file: string, readonly line: number | undefined, readonly column: number | undefined, detail: string) {
        super(line === undefined ? `${file}: ${detail}` : `${file}:${line}:${column}: ${detail}`);
        this.name = "StackFileError";
    }
}

/** 1-based line and column of a character offset. */
function position(text: string, offset: number): { line: number; column: number } {
    const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
    const line = before.split("\n").length;
    return { line, column: before.length - before.lastIndexOf("\n") };
}

/**
 * Where to point for an error the parser finds only at the end of the input (an unclosed quote
 * or bracket): at the end of the last line with text on it, not at the empty end of the file.
 */
function errorOffset(text: string, offset: number): number {
    if (text.slice(offset).trim() !== "") return offset;
    return text.slice(0, offset).trimEnd().length;
}

/** The line, and a caret under `column`, as an editor shows them. */
function excerpt(text: string, line: number, column: number): string {
    const source = (text.split("\n")[line - 1] ?? "").replace(/\t/g, " ");
    const gutter = String(line).length;
    return `  ${String(line)} | ${source}\n  ${" ".repeat(gutter)} | ${" ".repeat(Math.max(0, column - 1))}^`;
}

/**
 * Parse a stack file's text. Returns its `config:` map (empty when the file has none); throws
 * StackFileError for YAML errors and for a `config:` that is not a map.
 */
export function parseStackFile(text: string, file: string): Record<string, unknown> {
    const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
    const first = doc.errors[0];
    if (first) {
        const { line, column } = position(text, errorOffset(text, first.pos[0]));
        const more = doc.errors.length > 1 ? ` (and ${doc.errors.length - 1} more after it)` : "";
        throw new StackFileError(file, line, column, `invalid YAML: ${first.message}${more}\n${excerpt(text, line, column)}`);
    }
    const data = doc.toJS() as unknown;
    if (data === null || data === undefined) return {};
    if (typeof data !== "object" || Array.isArray(data)) {
        throw new StackFileError(file, undefined, undefined, "is not a stack file: expected a map with a config: key, as `pulumi config set` writes it");
    }
    const config = (data as { config?: unknown }).config;
    if (config === undefined || config === null) return {};
    if (typeof config !== "object" || Array.isArray(config)) {
        throw new StackFileError(file, undefined, undefined, "config: is not a map: expected keys such as anycast:asn under it");
    }
    return config as Record<string, unknown>;
}
