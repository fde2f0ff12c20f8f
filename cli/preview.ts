/**
 * `anycast preview`, laid out like `pulumi preview`: the resources as a tree by parent (stack →
 * component → resource), a marker per resource (`+` create, `~` update, `+-` replace,
 * `-` delete), and a summary of counts by type. With a previous plan it shows only what
 * changes, each with the inputs that change (secrets as `[secret]`).
 */
import { diffLines } from "./plan";
import type { InputChange, Op, PlanResource, ResourceChange, SavedPlan } from "./plan";
import { OUTPUT_COLUMNS, table, truncate } from "./format";

const MARKER: Record<Op, string> = { create: "+", update: "~", replace: "+-", delete: "-", same: "" };

/** `vultr:index/instance:Instance` -> `vultr:index:Instance`, as the Pulumi CLI shows types. */
export function displayType(type: string): string {
    const parts = type.split(":");
    return parts.length === 3 ? `${parts[0]}:${parts[1].split("/")[0]}:${parts[2]}` : type;
}

/** The inputs worth showing for the resources people check first (hosts, names, zone settings). */
function keyInput(r: PlanResource): string {
    const i = r.inputs;
    const s = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
    switch (r.type) {
        case "vultr:index/instance:Instance":
            return `${s(i.region)} ${s(i.plan)}`;
        case "cloudflare:index/dnsRecord:DnsRecord":
            return `${s(i.type)} ${s(i.name)} -> ${s(i.content)}${i.proxied ? " proxied" : ""}`;
        case "vultr:index/sSHKey:SSHKey":
            return s(i.name);
        case "cloudflare:index/zoneSetting:ZoneSetting":
            return `${s(i.settingId)}=${s(i.value)}`;
        case "cloudflare:index/originCaCertificate:OriginCaCertificate":
            return `${s(i.requestType)} ${s(i.hostnames)}`;
        default:
            return "";
    }
}

/**
 * The lines that differ between two texts (a pushed file's old and new content), at most `max`
 * of them.
 */
export function changedLines(before: string, after: string, max = 8): string[] {
    const out = diffLines(before.split("\n"), after.split("\n")).map((e) => `${e.kind} ${e.line}`);
    return out.length > max ? [...out.slice(0, max), `… ${out.length - max} more changed lines`] : out;
}

/** "lines 3, 7-9": line numbers as ranges. */
function lineRanges(lines: number[]): string {
    const ranges: string[] = [];
    for (let i = 0; i < lines.length;) {
        let j = i;
        while (j + 1 < lines.length && lines[j + 1] === lines[j] + 1) j++;
        ranges.push(i === j ? `${lines[i]}` : `${lines[i]}-${lines[j]}`);
        i = j + 1;
    }
    return `line${lines.length === 1 ? "" : "s"} ${ranges.join(", ")}`;
}

/** Which lines of a secret file change, by number only: "(new lines 41-42 of 120; 1 old line gone)". */
function secretLinesNote(x: InputChange): string {
    const l = x.secretLines;
    if (!l) return "";
    const parts: string[] = [];
    if (l.added.length > 0) parts.push(`new ${lineRanges(l.added)} of ${l.total}`);
    if (l.removed.length > 0) parts.push(`old ${lineRanges(l.removed)} gone`);
    return parts.length > 0 ? ` (${parts.join("; ")})` : "";
}

/** One line under a resource: `indent` (the tree's continuation) then `text`, which wraps. */
interface Detail {
    indent: string;
    text: string;
    /** Continuation lines of `text` start this many columns further in. */
    hang: number;
}

/** How one changed input is shown under its resource: one line, or a line diff for file contents. */
function changeLines(x: InputChange, indent: string): Detail[] {
    const mark = x.replaces ? "+-" : "~ ";
    const forces = x.replaces ? " (forces replacement)" : "";
    if (!x.secret && typeof x.before === "string" && typeof x.after === "string" && (x.before + x.after).includes("\n")) {
        return [{ indent, text: `${mark} ${x.path}:${forces}`, hang: 4 },
            ...changedLines(x.before, x.after).map((l) => ({ indent: `${indent}      `, text: l, hang: 2 }))];
    }
    return [{ indent, text: `${mark} ${x.path}: ${show(x.before, x.secret)} => ${show(x.after, x.secret)}${secretLinesNote(x)}${forces}`, hang: 4 }];
}

/** A value as the diff shows it; a sha256 (a push's trigger) by its first 12 digits. */
function show(v: unknown, secret: boolean): string {
    if (secret) return "[secret]";
    if (v === undefined) return "(none)";
    if (typeof v === "string" && /^[0-9a-f]{64}$/.test(v)) return `sha256:${v.slice(0, 12)}…`;
    return typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
}

/** A detail as lines within `width`: wrapped at spaces (or cut where a word is too long). */
function detailLines(d: Detail, lead: string, width: number): string[] {
    const room = width - lead.length - d.indent.length;
    const rest = room - d.hang;
    if (d.text.length <= room || rest < 16) return [truncate(`${lead}${d.indent}${d.text}`, width)];
    const out: string[] = [];
    let text = d.text;
    let limit = room;
    while (text.length > limit) {
        const space = text.lastIndexOf(" ", limit);
        const cut = space > limit / 2 ? space : limit;
        out.push(text.slice(0, cut).trimEnd());
        text = text.slice(cut).trimStart();
        limit = rest;
    }
    out.push(text);
    return out.map((t, i) => `${lead}${d.indent}${i === 0 ? "" : " ".repeat(d.hang)}${t}`);
}

interface Node {
    change: ResourceChange;
    children: Node[];
}

/** The resources as a tree under a stack node, children in registration order. */
function treeOf(changes: ResourceChange[], stack: string): Node {
    const stackResource: PlanResource = {
        urn: "", type: "pulumi:pulumi:Stack", name: `anycast-${stack}`, custom: false, inputs: {}, secrets: {},
    };
    const root: Node = { change: { op: "same", resource: stackResource, changes: [] }, children: [] };
    const byUrn = new Map(changes.map((c) => [c.resource.urn, { change: c, children: [] as Node[] }]));
    for (const node of byUrn.values()) {
        const parent = node.change.resource.parent ? byUrn.get(node.change.resource.parent) : undefined;
        (parent ?? root).children.push(node);
    }
    return root;
}

/** Keep only nodes that change or have a changing descendant (diff view). */
function prune(node: Node): Node | undefined {
    const children = node.children.map(prune).filter((n): n is Node => !!n);
    if (node.change.op === "same" && children.length === 0) return undefined;
    return { ...node, children };
}

/** Ops of a whole tree: the stack is "create" when everything in it is created. */
function rootOp(changes: ResourceChange[]): Op {
    if (changes.length > 0 && changes.every((c) => c.op === "create")) return "create";
    return "same";
}

interface Row {
    marker: string;
    tree: string;
    name: string;
    plan: string;
    info: string;
    /** Where lines under this row start (the tree's continuation plus an indent). */
    detailIndent: string;
    details: Detail[];
}

function rowsOf(node: Node, withDiff: boolean, prefix = "", childPrefix = ""): Row[] {
    const c = node.change;
    const r = c.resource;
    // Against a previous plan, the changed inputs are listed under the resource; a new one shows
    // its key inputs, as in a first preview.
    const info = !withDiff || c.op === "create" ? keyInput(r) : "";
    const detailIndent = `${childPrefix}${node.children.length > 0 ? "│  " : "   "}`;
    const details = withDiff ? c.changes.flatMap((x) => changeLines(x, detailIndent)) : [];
    const rows: Row[] = [{
        marker: MARKER[c.op], tree: `${prefix}${displayType(r.type)}`, name: r.name,
        plan: c.op === "same" ? "" : c.op, info, detailIndent, details,
    }];
    node.children.forEach((child, i) => {
        const last = i === node.children.length - 1;
        rows.push(...rowsOf(child, withDiff, `${childPrefix}${last ? "└─ " : "├─ "}`, `${childPrefix}${last ? "   " : "│  "}`));
    });
    return rows;
}

/**
 * The tree as lines of at most OUTPUT_COLUMNS: marker, type, name, plan and info columns. Type
 * and name are never cut while they fit: when the widest of them leave no room for the Plan
 * column, it goes (the marker says the same, and a legend above the tree says how), and only
 * past that are they cut with "…".
 */
function treeLines(root: Node, withDiff: boolean): string[] {
    const rows = rowsOf(root, withDiff);
    const typeNeed = Math.max(4, ...rows.map((r) => r.tree.length));
    const nameNeed = Math.max(4, ...rows.map((r) => r.name.length));
    const planW = 7;
    const markerW = 4;
    const withPlan = markerW + typeNeed + 2 + nameNeed + 2 + planW <= OUTPUT_COLUMNS;
    const rest = OUTPUT_COLUMNS - markerW - 2 - (withPlan ? 2 + planW : 0);
    // Past the limit the name gives way first, down to 24 columns, then the type.
    const nameW = Math.min(nameNeed, Math.max(24, rest - typeNeed));
    const typeW = Math.min(typeNeed, rest - nameW);
    const fixed = markerW + typeW + 2 + nameW + (withPlan ? 2 + planW : 0) + 2;
    const line = (marker: string, tree: string, name: string, plan: string, info: string) =>
        truncate(`${` ${marker}`.padEnd(markerW)}${truncate(tree, typeW).padEnd(typeW)}  ${truncate(name, nameW).padEnd(nameW)}  ` +
            `${withPlan ? `${plan.padEnd(planW)}  ` : ""}${info}`, OUTPUT_COLUMNS).trimEnd();
    // Info that does not fit at the end of its line goes on the next one, under the type.
    const room = OUTPUT_COLUMNS - fixed;
    const out: string[] = [];
    if (!withPlan) out.push("    (+ create, ~ update, +- replace, - delete)");
    out.push(line("", "Type", "Name", "Plan", room >= 8 && rows.some((r) => r.info) ? "Info" : ""));
    for (const r of rows) {
        const inline = r.info.length <= room;
        out.push(line(r.marker, r.tree, r.name, r.plan, inline ? r.info : ""));
        if (!inline) out.push(truncate(`    ${r.detailIndent}${r.info}`, OUTPUT_COLUMNS));
        for (const d of r.details) out.push(...detailLines(d, "    ", OUTPUT_COLUMNS));
    }
    return out;
}

/** Counts by type: one column per kind of change that occurs. */
function typeSummary(changes: ResourceChange[], withDiff: boolean): string[] {
    const ops: Array<[Op, string]> = [["create", "+ create"], ["update", "~ update"], ["replace", "+- replace"],
        ["delete", "- delete"], ["same", "unchanged"]];
    const present = ops.filter(([op]) => changes.some((c) => c.op === op));
    // Against a previous plan, only the types with a change get a row (the total counts all).
    const types = [...new Set(changes.filter((c) => !withDiff || c.op !== "same").map((c) => displayType(c.resource.type)))].sort();
    const rows = types.map((t) => [t, ...present.map(([op]) =>
        String(changes.filter((c) => c.op === op && displayType(c.resource.type) === t).length))]);
    rows.push(["total", ...present.map(([op]) => String(changes.filter((c) => c.op === op).length))]);
    return table(["Type", ...present.map(([, label]) => label)], rows, "    ");
}

/** "3 to create, 1 to replace" (kinds that occur, in Pulumi's order), or "no changes". */
export function countsLine(changes: ResourceChange[]): string {
    const words: Array<[Op, string]> = [["create", "to create"], ["update", "to update"], ["replace", "to replace"],
        ["delete", "to delete"], ["same", "unchanged"]];
    const parts = words.map(([op, w]) => [changes.filter((c) => c.op === op).length, w] as const)
        .filter(([n]) => n > 0).map(([n, w]) => `${n} ${w}`);
    return parts.length > 0 ? parts.join(", ") : "no resources";
}

/**
 * The preview: the tree (every resource, or with a previous plan only what changes) and the
 * counts by type. `changes` comes from diffPlans, or marks every resource "create".
 */
export function formatPreview(plan: SavedPlan, changes: ResourceChange[], withDiff: boolean): string {
    const tree = treeOf(changes, plan.stack);
    tree.change = { ...tree.change, op: withDiff ? "same" : rootOp(changes) };
    const shown = withDiff ? prune(tree) : tree;
    const lines: string[] = [];
    if (shown) lines.push(...treeLines(shown, withDiff));
    else lines.push("    no changes: every resource is as in the previous plan");
    const unchanged = changes.filter((c) => c.op === "same").length;
    if (withDiff && unchanged > 0 && shown) lines.push(`    (${unchanged} unchanged resources not shown)`);
    lines.push("", "Resources:", ...typeSummary(changes, withDiff), "", `    ${countsLine(changes)}`);
    return lines.join("\n");
}

/** Every resource of a plan as a creation (a first `pulumi up`). */
export function allCreated(plan: SavedPlan): ResourceChange[] {
    return plan.resources.map((resource) => ({ op: "create" as const, resource, changes: [] }));
}
