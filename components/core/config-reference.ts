/**
 * The config's documentation, generated from its one definition (config-shape.ts): the README's
 * config reference table, Pulumi.yaml's config block and AnycastNetworkArgs' doc comments
 * (components/network-args.ts). `npm run docs` writes all three; test/unit/docs.test.ts fails
 * when a committed copy differs from what this renders.
 */
import { stringify } from "yaml";
import { z } from "zod";
import { defOf, FieldDoc, fieldDoc, presenceOf, unwrapped } from "./config-field";
import { CONFIG_SCHEMA, NAMESPACE } from "./config-shape";

/** One row of the reference: a key (`pops[].bgp.holdTime`), its type, default and meaning. */
export interface ReferenceRow {
    key: string;
    type: string;
    default: string;
    meaning: string;
    /** The top-level key this row belongs to. */
    top: string;
}

type Schema = z.ZodType;

function docOf(schema: Schema, key: string): FieldDoc {
    const doc = fieldDoc(schema);
    if (!doc) throw new Error(`config-shape.ts: ${key} has no documented() meaning; every field needs one`);
    return doc;
}

/** The object shapes directly below a field: its own, its list's elements', or its union's options'. */
function objectsBelow(schema: Schema): Array<Record<string, Schema>> {
    const inner = defOf(unwrapped(schema));
    if (inner.type === "object") return [inner.shape ?? {}];
    if (inner.type === "array" && inner.element) {
        const element = defOf(unwrapped(inner.element));
        return element.type === "object" ? [element.shape ?? {}] : [];
    }
    if (inner.type === "union") {
        return (inner.options ?? []).map((o) => defOf(unwrapped(o))).filter((d) => d.type === "object").map((d) => d.shape ?? {});
    }
    return [];
}

/** Whether the field is a list of objects (its key is written `pops[]`, its fields `pops[].name`). */
function isListOfObjects(schema: Schema): boolean {
    const inner = defOf(unwrapped(schema));
    return inner.type === "array" && !!inner.element && defOf(unwrapped(inner.element)).type === "object";
}

/** The field names directly below a key (an object, a list of objects, or a union with an object). */
export function fieldsOf(schema: Schema): string[] {
    return [...new Set(objectsBelow(schema).flatMap((shape) => Object.keys(shape)))];
}

/** The type as its schema says it, when the doc gives none. */
function derivedType(schema: Schema): string {
    const inner = unwrapped(schema);
    const d = defOf(inner);
    switch (d.type) {
        case "number": return (inner as unknown as { format?: string }).format === "safeint" ? "integer" : "number";
        case "string": return "string";
        case "boolean": return "bool";
        case "enum": {
            const values = Object.values(d.entries ?? {}).map((v) => `\`${v}\``);
            return values.length > 1 ? `${values.slice(0, -1).join(", ")} or ${values[values.length - 1]}` : values.join("");
        }
        case "array": return "list";
        case "object": return "object";
        default: return d.type;
    }
}

/** A default value as the reference writes it: `vc2-1c-1gb`, `[5, 30]`, `{}` for an object of defaults. */
function shownValue(value: unknown): string {
    if (Array.isArray(value)) return `\`[${value.map((v) => JSON.stringify(v)).join(", ")}]\``;
    if (typeof value === "object" && value !== null) return "`{}`";
    return `\`${String(value)}\``;
}

function defaultText(schema: Schema, doc: FieldDoc): string {
    if (doc.default) return doc.default;
    const presence = presenceOf(schema);
    if (presence.kind === "required") return "required";
    if (presence.kind === "optional") return "—";
    return shownValue(presence.value);
}

/** Every documented key, each top-level key followed by the fields below it, depth first. */
export function referenceRows(): ReferenceRow[] {
    const rows: ReferenceRow[] = [];
    const visit = (top: string, key: string, schema: Schema) => {
        const doc = docOf(schema, key);
        const shown = isListOfObjects(schema) ? `${key}[]` : key;
        rows.push({ top, key: shown, type: doc.type ?? (doc.secret ? "secret" : derivedType(schema)), default: defaultText(schema, doc),
            meaning: doc.meaning });
        if (doc.sameAs) return;
        const seen = new Set<string>();
        for (const shape of objectsBelow(schema)) {
            for (const [field, child] of Object.entries(shape)) {
                if (seen.has(field)) continue;
                seen.add(field);
                visit(top, `${shown}.${field}`, child);
            }
        }
    };
    for (const [key, schema] of Object.entries(CONFIG_SCHEMA)) visit(key, key, schema);
    return rows;
}

const cell = (text: string) => text.replace(/\|/g, "\\|");

// ---------------------------------------------------------------------------------------------
// README.md: the table between two markers in "Config reference".
// ---------------------------------------------------------------------------------------------

export const README_REFERENCE_BEGIN = "<!-- config reference: generated by `npm run docs` from components/core/config-shape.ts; edit the schema, not this table -->";
export const README_REFERENCE_END = "<!-- end of the generated config reference -->";

export function renderReferenceTable(): string {
    return [
        "| key | type | default | meaning |",
        "|---|---|---|---|",
        ...referenceRows().map((r) => `| \`${r.key}\` | ${cell(r.type)} | ${cell(r.default)} | ${cell(r.meaning)} |`),
    ].join("\n");
}

/** Text with its generated part (between `begin` and `end`, each on its own line) replaced. */
export function withGeneratedPart(text: string, begin: string, end: string, generated: string, file: string): string {
    const from = text.indexOf(`${begin}\n`);
    const to = text.indexOf(`\n${end}`);
    if (from < 0 || to < from) throw new Error(`${file} lacks the markers of its generated part (${begin} ... ${end})`);
    return `${text.slice(0, from + begin.length + 1)}${generated}${text.slice(to)}`;
}

// ---------------------------------------------------------------------------------------------
// Pulumi.yaml: the `config:` block, from a marker comment to the end of the file.
// ---------------------------------------------------------------------------------------------

export const PULUMI_CONFIG_BEGIN = "# Generated by `npm run docs` from components/core/config-shape.ts (edit the schema, not below).";

/** A reference phrase as plain text for Pulumi.yaml (no Markdown backticks). */
const plain = (text: string) => text.replace(/`/g, "");
const sentence = (text: string) => `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;

/** The Pulumi CLI's type of a key, where it has one: it types only strings, integers, booleans and lists of those. */
function cliType(schema: Schema): Record<string, unknown> {
    const inner = unwrapped(schema);
    const d = defOf(inner);
    if (d.type === "number" && (inner as unknown as { format?: string }).format === "safeint") return { type: "integer" };
    if (d.type === "string") return { type: "string" };
    if (d.type === "boolean") return { type: "boolean" };
    if (d.type === "array" && d.element && defOf(unwrapped(d.element)).type === "string") return { type: "array", items: { type: "string" } };
    return {};
}

/**
 * The project default: none for a required key, so that the CLI itself reports it missing (the
 * secrets excepted: the program reports those, with the command that sets them); `{}` for an object
 * of defaults; the value for a list or a flag; and "", read as "not set", for a key whose absence no
 * value can express.
 */
function cliDefault(schema: Schema, doc: FieldDoc): { default?: unknown } {
    const presence = presenceOf(schema);
    if (presence.kind === "required") return doc.secret ? { default: "" } : {};
    if (presence.kind === "optional") return { default: "" };
    const value = presence.value;
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return { default: {} };
    return { default: value };
}

function cliDescription(schema: Schema, doc: FieldDoc): string {
    const parts = [sentence(plain(doc.meaning))];
    const fields = fieldsOf(schema);
    if (fields.length > 0) parts.push(`Fields: ${fields.join(", ")}.`);
    if (doc.secret) parts.push("Secret: set it with pulumi config set --secret.");
    const presence = presenceOf(schema);
    const { default: value } = cliDefault(schema, doc);
    if (presence.kind === "required" && doc.secret) parts.push("Required.");
    else if (value === "") parts.push(`Empty (the default) means not set${doc.default ? ` (${plain(doc.default)})` : ""}.`);
    else if (typeof value === "object" && value !== null && !Array.isArray(value)) parts.push("{} (the default) means every default.");
    else if (value !== undefined) parts.push(`Default: ${JSON.stringify(value)}.`);
    return parts.join(" ");
}

/** Pulumi.yaml from its marker on: the comment on the CLI's rules, then every `anycast:` key. */
export function renderPulumiConfigBlock(): string {
    const entries = Object.entries(CONFIG_SCHEMA);
    const untyped = entries.filter(([, s]) => !("type" in cliType(s))).map(([k]) => k);
    const emptyMeansUnset = entries.filter(([, s]) => cliDefault(s, fieldDoc(s)!).default === "").map(([k]) => k);
    const config: Record<string, unknown> = {};
    for (const [key, schema] of entries) {
        const doc = docOf(schema, key);
        config[`${NAMESPACE}:${key}`] = { ...cliType(schema), description: cliDescription(schema, doc), ...cliDefault(schema, doc) };
    }
    const rule = (text: string) => wrap(text, "# - ", "#   ", 100);
    const comment = [
        ...wrap("The Pulumi CLI checks them before every preview and update (test/unit/pulumi-project.test.ts holds this " +
            "file to the CLI's rules):", "# ", "# ", 100),
        ...rule("A key without a `default` is required: the CLI stops with \"Stack 'prod' is missing configuration value ...\" " +
            "if the stack file lacks it. Only the keys our own validation also requires have none."),
        ...rule(`The CLI types only string, integer, boolean and arrays of those. The structured keys (${untyped.join(", ")}) ` +
            "are untyped; `anycast validate` and the program check their shape and name the offending key."),
        ...rule("The CLI hands a default to the program as if the stack had set it: `{}` arrives as \"{}\" and means " +
            `"all defaults"; "" means "not set", for keys whose absence no value can express (${emptyMeansUnset.join(", ")}).`),
        ...rule("No key is declared `secret: true`: the CLI would then refuse every stack holding it in plain text (the lab's " +
            "throwaway password). Set secrets with `pulumi config set --secret`; the program warns, naming the key, when one " +
            "is stored in plain text."),
    ];
    return [...comment, stringify({ config }, { lineWidth: 0 }).trimEnd()].join("\n") + "\n";
}

/** Pulumi.yaml with its generated part replaced: the hand-written head (name, runtime, main) is kept. */
export function withPulumiConfigBlock(text: string): string {
    const at = text.indexOf(`${PULUMI_CONFIG_BEGIN}\n`);
    if (at < 0) throw new Error(`Pulumi.yaml lacks the marker of its generated part: ${PULUMI_CONFIG_BEGIN}`);
    return `${text.slice(0, at + PULUMI_CONFIG_BEGIN.length + 1)}${renderPulumiConfigBlock()}`;
}

// ---------------------------------------------------------------------------------------------
// components/network-args.ts: AnycastNetworkArgs, a field per key, its doc comment from the schema.
// ---------------------------------------------------------------------------------------------

export const NETWORK_ARGS_PATH = "components/network-args.ts";

/** Words wrapped into doc-comment lines of at most `width` columns. */
function wrap(text: string, first: string, rest: string, width = 110): string[] {
    const lines: string[] = [];
    let line = first;
    for (const word of text.split(/\s+/).filter(Boolean)) {
        const atStart = line === first || line === rest;
        if (!atStart && line.length + 1 + word.length > width) {
            lines.push(line);
            line = rest + word;
        } else {
            line += (atStart ? "" : " ") + word;
        }
    }
    lines.push(line);
    return lines;
}

function argsField(key: string, schema: Schema, rows: ReferenceRow[]): string[] {
    const doc = docOf(schema, key);
    const own = rows.find((r) => r.top === key && (r.key === key || r.key === `${key}[]`))!;
    const presence = presenceOf(schema);
    const optional = presence.kind !== "required";
    const text = [sentence(doc.meaning)];
    if (optional) text.push(`Default: ${own.default}.`);
    if (doc.secret) text.push("A plain string, kept secret from here on, or a secret Output.");
    const comment = [...wrap(text.join(" "), "     * ", "     * ")];
    const below = rows.filter((r) => r.top === key && r !== own);
    if (doc.sameAs) comment.push("     *", ...wrap(`Each takes the fields of \`${doc.sameAs}\`.`, "     * ", "     * "));
    if (below.length > 0) {
        comment.push("     *");
        const prefix = own.key;
        for (const r of below) {
            comment.push(...wrap(`- \`${r.key.slice(prefix.length + 1)}\` (${r.type}; ${r.default}): ${r.meaning}`, "     * ", "     *   "));
        }
    }
    const type = doc.secret ? "pulumi.Input<string>" : `Config["${key}"]`;
    return ["    /**", ...comment, "     */", `    readonly ${key}${optional ? "?" : ""}: ${type};`];
}

export function renderNetworkArgs(): string {
    const rows = referenceRows();
    const fields = Object.entries(CONFIG_SCHEMA).flatMap(([key, schema]) => argsField(key, schema, rows));
    return [
        "/*",
        " * Generated by `npm run docs` from the config schema (components/core/config-shape.ts): edit the",
        " * schema, not this file. test/unit/docs.test.ts fails when the two differ.",
        " */",
        "import type * as pulumi from \"@pulumi/pulumi\";",
        "import type { AnycastConfigInput as Config } from \"./core/config\";",
        "",
        "/**",
        " * The stack config's shape without the `anycast:` prefix, with the same defaults (README.md,",
        " * \"Config reference\"). Everything but the secrets is a plain value: it decides which resources",
        " * exist, and it is validated before any of them is registered.",
        " */",
        "export interface AnycastNetworkArgs {",
        ...fields,
        "}",
        "",
    ].join("\n");
}
