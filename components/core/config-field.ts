/**
 * What a config field means, attached to its zod shape (config-shape.ts), so that a field's type,
 * default, validation and meaning are written once, in one place. The README's config reference,
 * Pulumi.yaml's config block and AnycastNetworkArgs' doc comments are generated from these
 * (config-reference.ts, `npm run docs`); what a field *accepts* (the phrase its errors end with) is
 * config-issues.ts's `accepts`.
 */
import { z } from "zod";

export interface FieldDoc {
    /** What the field is for, as the config reference says it: a phrase, lower case, no final stop. */
    meaning: string;
    /** The type in the reader's words, where the shape's own type says too little ("seconds", "address"). */
    type?: string;
    /** The default in words, where the value alone would mislead ("the prefix's `::1`", "hold ÷ 3"). */
    default?: string;
    /** A secret: set with `pulumi config set --secret`, never printed, a Pulumi secret in every output. */
    secret?: boolean;
    /**
     * Document this list's elements at another key instead of repeating them (`origins[]` takes
     * what `origin` takes).
     */
    sameAs?: string;
}

const docs = z.registry<FieldDoc>();

/** Attach what a field means. Put it on the outermost schema (after `.default()` or `.optional()`). */
export function documented<T extends z.ZodType>(schema: T, doc: FieldDoc): T {
    // A schema object shared by two fields would carry the second one's meaning for both.
    if (docs.has(schema as z.ZodType)) throw new Error(`config-shape.ts: one schema documented twice ("${doc.meaning}"): give each field its own`);
    docs.add(schema as z.ZodType, doc);
    return schema;
}

type Schema = z.ZodType;
export interface LooseDef {
    type: string;
    innerType?: Schema;
    shape?: Record<string, Schema>;
    element?: Schema;
    items?: Schema[];
    options?: Schema[];
    entries?: Record<string, string>;
    defaultValue?: unknown;
    values?: unknown[];
}
export const defOf = (s: Schema): LooseDef => (s as unknown as { def: LooseDef }).def;

const WRAPPERS = ["optional", "default", "nullable", "prefault"];

/** The schema and the wrappers (optional, default) around it, outermost first. */
export function layers(schema: Schema): Schema[] {
    const out = [schema];
    for (let d = defOf(schema); WRAPPERS.includes(d.type) && d.innerType; d = defOf(d.innerType)) out.push(d.innerType);
    return out;
}

/** The schema under its optional/default wrappers. */
export function unwrapped(schema: Schema): Schema {
    const all = layers(schema);
    return all[all.length - 1];
}

/** The field's doc, from the outermost layer that has one. */
export function fieldDoc(schema: Schema): FieldDoc | undefined {
    for (const layer of layers(schema)) {
        const doc = docs.get(layer);
        if (doc) return doc;
    }
    return undefined;
}

/** How a field may be left out: required, optional (unset), or with a default value. */
export type Presence = { kind: "required" } | { kind: "optional" } | { kind: "default"; value: unknown };

export function presenceOf(schema: Schema): Presence {
    for (const layer of layers(schema)) {
        const d = defOf(layer);
        if (d.type === "default") return { kind: "default", value: d.defaultValue };
        if (d.type === "optional") return { kind: "optional" };
    }
    return { kind: "required" };
}
