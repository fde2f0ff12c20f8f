/**
 * The Pulumi CLI's rules for Pulumi.yaml and Pulumi.<stack>.yaml, re-implemented from its source
 * so that a test can hold our project file to them without the CLI installed. Every function
 * names the Go function it follows; all of them live in pulumi/pulumi under sdk/go/common/:
 *
 *   workspace/project.go   ValidateProject (name, runtime, then the JSON schema project.json),
 *                          RewriteShorthandConfigValues, Project.Validate, ValidateConfigValue,
 *                          InferFullTypeName, configKeyIsNamespacedByProject
 *   workspace/loaders.go   LoadProjectBytes (the order: schema, rewrite, unmarshal, Validate),
 *                          LoadProjectStackBytes / stackConfigNamespacedWithProject
 *   workspace/config.go    mergeConfig (via ValidateStackConfigAndApplyProjectConfig, run before
 *                          every preview/up), createConfigValue, validateStackConfigValue(s),
 *                          missingStackConfigurationKeysError, parseConfigKey
 *   resource/config/object.go, map.go   how a stack file's YAML value becomes a config Value
 *                          (text, secure, object) and how Map.Decrypt hands it to the program
 *
 * Read at pulumi/pulumi commit 5351d868b25dea431a1cddd35ccf1a41d0985a81 (project.json) and the
 * config.go whose mergeConfig takes (ctx, stackName, project, stackEnv, ...). What the CLI no
 * longer does is not checked either: stack keys that Pulumi.yaml does not declare were rejected
 * only by an early version of ValidateStackConfigAndApplyProjectConfig (removed after
 * pulumi/pulumi#11127, which also rejected provider keys such as aws:region).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import Ajv2020, { ValidateFunction } from "ajv/dist/2020";
import { parse as parseYaml } from "yaml";
import { REPO_ROOT } from "./golden";

/** A config type as project.go's ProjectConfigItemsType. */
export interface ConfigItemsType {
    type: string;
    items?: ConfigItemsType;
}

/** A config declaration as project.go's ProjectConfigType (after the shorthand rewrite). */
export interface ConfigDeclaration {
    type?: string;
    description?: string;
    items?: ConfigItemsType;
    default?: unknown;
    value?: unknown;
    secret?: boolean;
}

export interface PulumiProject {
    name: string;
    config: Record<string, ConfigDeclaration>;
}

/** One stack config value as resource/config keeps it: its string form and two flags. */
export interface ConfigValue {
    /** Plain text, ciphertext (secure), or JSON (object). */
    text: string;
    secure: boolean;
    object: boolean;
}

/** A stack's config map, keys fully namespaced (`anycast:pops`). */
export type ConfigMap = Map<string, ConfigValue>;

/** The CLI refused the project or the stack; `errors` are the CLI's messages. */
export class PulumiCliError extends Error {
    constructor(readonly errors: string[]) {
        super(errors.join("\n"));
        this.name = "PulumiCliError";
    }
}

const SCHEMA_FILE = path.join(REPO_ROOT, "test", "fixtures", "pulumi-project.schema.json");
let compiledSchema: ValidateFunction | undefined;

/**
 * project.json, compiled once with ajv (the JSON-schema validator most of npm uses), draft
 * 2020-12 as the CLI's. Strict about the schema itself (an unknown keyword is a typo), but not
 * ajv's style lints on types and `required` in `then`, which the CLI's validator does not have.
 */
function projectSchema(): ValidateFunction {
    if (!compiledSchema) {
        const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, strictRequired: false });
        compiledSchema = ajv.compile(JSON.parse(fs.readFileSync(SCHEMA_FILE, "utf8")));
    }
    return compiledSchema;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** configKeyIsNamespacedByProject: no namespace, or the project's own. */
function namespacedByProject(projectName: string, key: string): boolean {
    return !key.includes(":") || key.startsWith(`${projectName}:`);
}

/** parseConfigKey: a key without a namespace belongs to the project. */
function fullKey(projectName: string, key: string): string {
    return key.includes(":") ? key : `${projectName}:${key}`;
}

/**
 * isPrimitiveValue in project.go: string, int or bool. A YAML float is not one (it decodes to
 * float64); JavaScript cannot tell 3 from 3.0 after parsing, which no key of ours depends on.
 */
function isPrimitive(v: unknown): boolean {
    return typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isInteger(v));
}

/**
 * LoadProjectBytes: ValidateProject (name, runtime, schema), the shorthand rewrite, then
 * Project.Validate. Throws PulumiCliError with the CLI's messages.
 */
export function loadProject(text: string): PulumiProject {
    const raw = parseYaml(text) as unknown;
    if (!isPlainObject(raw)) throw new PulumiCliError([`expected project to be an object, was '${typeof raw}'`]);
    // ValidateProject: name and runtime first, by hand, then everything else by the schema.
    if (!("name" in raw)) throw new PulumiCliError(["project is missing a 'name' attribute"]);
    if (typeof raw.name !== "string" || raw.name === "") throw new PulumiCliError(["project is missing a non-empty string 'name' attribute"]);
    if (!("runtime" in raw)) throw new PulumiCliError(["project is missing a 'runtime' attribute"]);
    const validate = projectSchema();
    if (!validate(raw)) {
        throw new PulumiCliError((validate.errors ?? []).map((e) => `#${e.instancePath}: ${e.message ?? e.keyword}`));
    }
    const projectName = raw.name;
    // RewriteConfigPathIntoStackConfigDir: a string `config` is the old name of stackConfigDir.
    const configSection = isPlainObject(raw.config) ? raw.config : {};
    // RewriteShorthandConfigValues: `key: value` is a default for the project's own keys, a value for others.
    const config: Record<string, ConfigDeclaration> = {};
    for (const [key, entry] of Object.entries(configSection)) {
        if (isPrimitive(entry) || Array.isArray(entry)) {
            config[key] = namespacedByProject(projectName, key) ? { default: entry } : { value: entry };
        } else {
            config[key] = entry as ConfigDeclaration;
        }
    }
    const errors = validateProject(projectName, config);
    if (errors.length > 0) throw new PulumiCliError(errors);
    return { name: projectName, config };
}

/**
 * Project.Validate's config checks. The CLI stops at the first (in Go's random map order); this
 * returns all of them, so a test names every offending key at once.
 */
export function validateProject(projectName: string, config: Record<string, ConfigDeclaration>): string[] {
    const errors: string[] = [];
    for (const [key, decl] of Object.entries(config)) {
        const hasDefault = decl.default !== undefined && decl.default !== null;
        const hasValue = decl.value !== undefined && decl.value !== null;
        if (hasDefault && hasValue) {
            errors.push(`project config '${key}' cannot have both a 'default' and 'value' attribute`);
            continue;
        }
        const typed = decl.type !== undefined;
        if (namespacedByProject(projectName, key)) {
            if (typed && decl.type === "array" && decl.items === undefined) {
                errors.push(`The configuration key '${key}' declares an array but does not specify the underlying type via the 'items' attribute`);
                continue;
            }
            if (typed && hasDefault && !validateConfigValue(decl.type!, decl.items, decl.default)) {
                errors.push(`The default value specified for configuration key '${key}' is not of the expected type '${inferFullTypeName(decl.type!, decl.items)}'`);
            }
        } else if (typed) {
            errors.push(`Configuration key '${key}' is not namespaced by the project and should not define a type`);
        } else if (hasDefault) {
            errors.push(`Configuration key '${key}' is not namespaced by the project and should not define a default value. Did you mean to use the 'value' attribute instead of 'default'?`);
        } else if (!hasValue) {
            errors.push(`Configuration key '${key}' is namespaced and must provide an attribute 'value'`);
        }
    }
    return errors;
}

/** InferFullTypeName: `array<array<string>>`. */
export function inferFullTypeName(type: string, items?: ConfigItemsType): string {
    return items ? `array<${inferFullTypeName(items.type, items.items)}>` : type;
}

/** strconv.Atoi: an optional sign and decimal digits, within int64 (Go's int on 64-bit). */
function goAtoiParses(text: string): boolean {
    if (!/^[+-]?[0-9]+$/.test(text)) return false;
    const n = BigInt(text);
    return n >= -(2n ** 63n) && n < 2n ** 63n;
}

/**
 * ValidateConfigValue: a string is a string; an integer is a whole number or a string Atoi
 * parses; a boolean is a bool or "true"/"false"; anything else must be an array whose every
 * element matches `items`.
 */
export function validateConfigValue(type: string, items: ConfigItemsType | undefined, value: unknown): boolean {
    if (type === "string") return typeof value === "string";
    if (type === "integer") {
        if (typeof value === "number") return Number.isInteger(value);
        if (typeof value === "string") return goAtoiParses(value);
        return false;
    }
    if (type === "boolean") return typeof value === "boolean" || value === "true" || value === "false";
    if (!Array.isArray(value) || items === undefined) return false;
    return value.every((item) => validateConfigValue(items.type, items.items, item));
}

/** A `{secure: ciphertext}` map: isSecureValue in resource/config/object.go. */
function isSecureMap(v: unknown): v is { secure: string } {
    return isPlainObject(v) && Object.keys(v).length === 1 && typeof v.secure === "string";
}

function containsSecure(v: unknown): boolean {
    if (isSecureMap(v)) return true;
    if (Array.isArray(v)) return v.some(containsSecure);
    if (isPlainObject(v)) return Object.values(v).some(containsSecure);
    return false;
}

/**
 * A stack file's YAML value as a config Value (unmarshalObject + MarshalString): scalars keep
 * their text and are not objects; `{secure: ...}` is secure text; lists and maps are JSON and
 * objects, secure if anything inside is.
 */
export function configValueOf(v: unknown): ConfigValue {
    if (typeof v === "string") return { text: v, secure: false, object: false };
    if (typeof v === "number" || typeof v === "boolean") return { text: JSON.stringify(v), secure: false, object: false };
    if (isSecureMap(v)) return { text: v.secure, secure: true, object: false };
    return { text: JSON.stringify(v ?? null), secure: containsSecure(v), object: true };
}

/** createConfigValue: how a project default reaches the stack's config (plain, never secure). */
export function projectDefaultValue(v: unknown): ConfigValue {
    if (isPrimitive(v)) return { text: String(v), secure: false, object: false };
    return { text: JSON.stringify(v), secure: false, object: true };
}

/** LoadProjectStackBytes: the `config:` map, keys without a namespace given the project's. */
export function loadStackConfig(projectName: string, text: string): ConfigMap {
    const doc = parseYaml(text) as { config?: Record<string, unknown> } | null;
    const map: ConfigMap = new Map();
    for (const [key, value] of Object.entries(doc?.config ?? {})) map.set(fullKey(projectName, key), configValueOf(value));
    return map;
}

/** formatMissingKeys: 'a' / 'a' and 'b' / 'a', 'b' and 'c' (sorted). */
function formatMissingKeys(keys: string[]): string {
    if (keys.length === 1) return `'${keys[0]}'`;
    const sorted = [...keys].sort();
    return sorted.map((k, i) => (i === sorted.length - 1 ? `and '${k}'` : i === sorted.length - 2 ? `'${k}' ` : `'${k}', `)).join("");
}

/**
 * ValidateStackConfigAndApplyProjectConfig (mergeConfig with validate=true), run by the CLI
 * before every preview and update: a project key the stack does not set takes the project's
 * value or default; without either it is missing (all missing keys in one error). Then every
 * explicitly typed key is checked: secret ones must be secure, and the (decrypted) value must
 * match the type. Untyped keys are not checked at all. Returns the merged map; throws
 * PulumiCliError with the CLI's message otherwise.
 *
 * `decrypt` stands in for the stack's secrets provider (a test has no passphrase).
 */
export function applyProjectConfig(
    stackName: string, project: PulumiProject, stack: ConfigMap, decrypt: (key: string, ciphertext: string) => string,
): ConfigMap {
    const merged: ConfigMap = new Map(stack);
    const keys = Object.keys(project.config).sort();
    const missing: string[] = [];
    for (const key of keys) {
        const decl = project.config[key];
        const full = fullKey(project.name, key);
        const found = merged.has(full);
        const hasDefault = decl.default !== undefined && decl.default !== null;
        const hasValue = decl.value !== undefined && decl.value !== null;
        if (!found && !hasDefault && !hasValue && full.split(":")[0] === project.name) {
            missing.push(key);
            continue;
        }
        if (!found && (hasDefault || hasValue)) merged.set(full, projectDefaultValue(hasDefault ? decl.default : decl.value));
    }
    if (missing.length > 0) {
        throw new PulumiCliError([`Stack '${stackName}' is missing configuration value${missing.length > 1 ? "s" : ""} ${formatMissingKeys(missing)}`]);
    }
    for (const key of keys) {
        const decl = project.config[key];
        if (decl.type === undefined) continue;
        const full = fullKey(project.name, key);
        const value = merged.get(full) ?? { text: "", secure: false, object: false };
        if (decl.secret && !value.secure) {
            throw new PulumiCliError([`Stack '${stackName}' with configuration key '${key}' must be encrypted as it's secret`]);
        }
        const text = decryptedText(full, value, decrypt);
        const content: unknown = value.object ? JSON.parse(text) : text;
        if (!validateConfigValue(decl.type, decl.items, content)) {
            throw new PulumiCliError([`Stack '${stackName}' with configuration key '${key}' must be of type '${inferFullTypeName(decl.type, decl.items)}'`]);
        }
    }
    return merged;
}

/** Value.Value(decrypter): plain text as is, secure text decrypted, objects as JSON with their secure parts decrypted. */
function decryptedText(key: string, value: ConfigValue, decrypt: (key: string, ciphertext: string) => string): string {
    if (!value.secure) return value.text;
    if (!value.object) return decrypt(key, value.text);
    const open = (v: unknown): unknown => {
        if (isSecureMap(v)) return decrypt(key, v.secure);
        if (Array.isArray(v)) return v.map(open);
        if (isPlainObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, open(x)]));
        return v;
    };
    return JSON.stringify(open(JSON.parse(value.text)));
}

/**
 * Map.Decrypt: the `key -> string` map the engine hands the program (the Node SDK's
 * runtime.allConfig()): plain values as text, objects as JSON text, secrets decrypted.
 */
export function programConfig(merged: ConfigMap, decrypt: (key: string, ciphertext: string) => string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, value] of merged) out[key] = decryptedText(key, value, decrypt);
    return out;
}

/** The keys of a program config map that the CLI marks secret (secure values), for runtime.setAllConfig. */
export function secretKeysOf(merged: ConfigMap): string[] {
    return [...merged].filter(([, v]) => v.secure).map(([k]) => k);
}
