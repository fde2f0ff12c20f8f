/**
 * Config shape errors in our own words.
 *
 * zod checks the shape of each `anycast:` key; its issues say what failed in validator terms
 * ("Too big: expected number to be <=3"). Each field of the shapes in config.ts carries, with
 * `accepts()`, the phrase that says what it takes ("0 to 3 extra prepends"), and this module
 * turns an issue into "<value> is out of range: use 0 to 3 extra prepends" under the key
 * `anycast:pops[0].prepend`. Unknown keys get a "did you mean" from the keys the shape knows.
 */
import { z } from "zod";
import type { ConfigIssue } from "./model";
import { didYouMean } from "./suggest";
import { defOf, layers } from "./config-field";

/** Where the checks put what they find: an error stops the deploy, a warning is shown. */
export interface Collector {
    error(key: string, message: string): void;
    warn(key: string, message: string): void;
}

const validity = z.registry<{ valid: string }>();

/** Attach what a field accepts; messages about the field end with "use <valid>". */
export function accepts<T extends z.ZodType>(schema: T, valid: string): T {
    validity.add(schema as z.ZodType, { valid });
    return schema;
}

type Schema = z.ZodType;

/** The schema one path segment below `schema`: an object's field, a list's element, a union's match. */
function child(schema: Schema, segment: PropertyKey): Schema | undefined {
    for (const layer of layers(schema)) {
        const d = defOf(layer);
        if (d.type === "object" && typeof segment === "string") return d.shape?.[segment];
        if (d.type === "array" && typeof segment === "number") return d.element;
        if (d.type === "tuple" && typeof segment === "number") return d.items?.[segment];
        if (d.type === "union") {
            for (const option of d.options ?? []) {
                const found = child(option, segment);
                if (found) return found;
            }
        }
    }
    return undefined;
}

function validOf(schema: Schema): string | undefined {
    for (const layer of layers(schema)) {
        const meta = validity.get(layer);
        if (meta) return meta.valid;
    }
    return undefined;
}

/** Walk `path` down from `root`: the deepest schema reached, and the nearest "accepts" phrase. */
function lookup(root: Schema, path: readonly PropertyKey[]): { schema?: Schema; valid?: string } {
    let schema: Schema | undefined = root;
    let valid = validOf(root);
    for (const segment of path) {
        schema = schema && child(schema, segment);
        if (!schema) break;
        valid = validOf(schema) ?? valid;
    }
    return { schema, valid };
}

/** What `schema` accepts (for "is required: use ..."). */
export function validPhrase(schema: Schema): string {
    return validOf(schema) ?? "see the config reference in README.md";
}

/** Every field path below `root` that has no "accepts" phrase (a test keeps this empty). */
export function fieldsWithoutPhrase(root: Schema, prefix: string): string[] {
    const missing: string[] = [];
    const visit = (schema: Schema, key: string, seen: Set<Schema>) => {
        if (seen.has(schema)) return;
        seen.add(schema);
        if (validOf(schema) === undefined) missing.push(key);
        for (const layer of layers(schema)) {
            const d = defOf(layer);
            if (d.type === "object") for (const [k, s] of Object.entries(d.shape ?? {})) visit(s, `${key}.${k}`, seen);
            if (d.type === "array" && d.element) visit(d.element, `${key}[]`, seen);
        }
    };
    visit(root, prefix, new Set());
    return missing;
}

/** The keys an object shape at `path` knows, for "did you mean". */
function knownKeysAt(root: Schema, path: readonly PropertyKey[]): string[] {
    const { schema } = lookup(root, path);
    for (const layer of schema ? layers(schema) : []) {
        const d = defOf(layer);
        if (d.type === "object") return Object.keys(d.shape ?? {});
        if (d.type === "union") {
            const object = d.options?.find((o) => defOf(o).type === "object");
            if (object) return Object.keys(defOf(object).shape ?? {});
        }
    }
    return [];
}

/** A value as the user wrote it, short enough for one line. */
export function showValue(value: unknown): string {
    const text = typeof value === "string" || (typeof value === "object" && value !== null)
        ? JSON.stringify(value) : String(value);
    return text.length > 48 ? `${text.slice(0, 45)}...` : text;
}

/** Keys whose values never appear in a message. */
export function isSecretKey(key: string): boolean {
    return /(^|[:.])(bgpPassword|sshPrivateKey|password)$/.test(key);
}

/** "unknown key" with a suggestion and the keys that are valid at that level. */
export function unknownKeyMessage(key: string, known: readonly string[]): string {
    const mean = didYouMean(key, known);
    return `is not a known key${mean ? `: ${mean}` : ""} (known keys here: ${[...new Set(known)].join(", ")})`;
}

const TYPE_PHRASES: Record<string, string> = {
    number: "a number", int: "a whole number", string: "a string", boolean: "true or false",
    array: "a list", object: "a map of keys", tuple: "a list",
};

/** One zod issue of the key `anycast:<top>` in our words, under the exact key it concerns. */
export function describeShapeIssue(keyOf: (path: readonly PropertyKey[]) => string, root: Schema,
    issue: z.core.$ZodIssue): ConfigIssue[] {
    const key = keyOf(issue.path);
    const { valid = "see the config reference in README.md" } = lookup(root, issue.path);
    const shown = isSecretKey(key) ? "the value" : showValue(issue.input);
    switch (issue.code) {
        case "unrecognized_keys": {
            const known = knownKeysAt(root, issue.path);
            return issue.keys.map((k) => ({ key: keyOf([...issue.path, k]), message: unknownKeyMessage(k, known) }));
        }
        case "invalid_type":
            if (issue.input === undefined) return [{ key, message: `is required: use ${valid}` }];
            return [{ key, message: `${shown} is not ${TYPE_PHRASES[issue.expected] ?? `a ${issue.expected}`}: use ${valid}` }];
        case "too_big":
        case "too_small": {
            const sized = issue.origin === "array" || issue.origin === "string";
            const problem = !sized ? "is out of range"
                : issue.code === "too_small" && Number(issue.minimum) <= 1 ? "is empty"
                    : issue.code === "too_small" ? "is too short" : "is too long";
            return [{ key, message: `${shown} ${problem}: use ${valid}` }];
        }
        default:
            return [{ key, message: `${shown} is not valid: use ${valid}` }];
    }
}
