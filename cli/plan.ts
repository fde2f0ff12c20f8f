/**
 * The saved plan (`plan.json`, written by `anycast render` and `anycast preview --json`) and the
 * diff between two plans that `anycast preview --diff` shows.
 *
 * A plan lists every resource the stack declares: URN, parent URN, type, name and inputs, with
 * every secret replaced by "[secret]". So that a change inside a secret (a bird.conf holds the
 * BGP password) still shows, each secret input also gets a fingerprint (and a secret file's
 * content one per line, so a diff can name the lines that change): an HMAC of its value
 * keyed by an scrypt hash of the stack's own secrets. Two plans of the same stack compare
 * equal where the value did not change, and the file reveals nothing that guessing a weak
 * secret offline could confirm quickly.
 *
 * The mock cloud makes real keys and certificates (the lab serves TLS with them), different in
 * each process. Where Pulumi's state would keep them, the plan records each PEM block as
 * `-----BEGIN <TYPE>----- [mock] -----END <TYPE>-----`, and a push's trigger (the hash of its
 * content, components/push.ts) as the hash of that normalized content. A change in what a
 * certificate covers shows on the resource that requests it (hostnames, CSR inputs).
 */
import * as crypto from "node:crypto";
import { isSecretValue } from "../harness/mockcloud";
import type { StackRun } from "../harness/stackrun";
import type { ConfigIssue } from "../components/core/model";
import { sha256 } from "../components/core/digest";

export const PLAN_FORMAT = "anycast-plan/1";

export interface PlanResource {
    urn: string;
    /** The parent's URN; absent for resources at the top of the stack. */
    parent?: string;
    type: string;
    name: string;
    /** A provider-managed resource (false: a component). */
    custom: boolean;
    /** Inputs; every secret is "[secret]". */
    inputs: Record<string, unknown>;
    /** Fingerprint of each secret input, by its path ("stdin", "connection.privateKey"). */
    secrets: Record<string, string>;
    /**
     * A fingerprint per line of each secret input that is a file's content (a bird.conf with its
     * password), so a diff can say which lines change without showing any.
     */
    secretLines?: Record<string, string[]>;
    /**
     * The resource's `ignoreChanges` option: inputs the engine keeps at their old value, so a change
     * to them is no change (a push's `triggers`, an instance's `userData`).
     */
    ignoreChanges?: string[];
}

export interface SavedPlan {
    format: typeof PLAN_FORMAT;
    stack: string;
    notes: string[];
    warnings: ConfigIssue[];
    hosts: Array<{ name: string; role: string; region?: string; ipv6: string; ipv4?: string; files: string[] }>;
    resources: PlanResource[];
}

const PEM = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

function normalizePem(text: string): string {
    return text.replace(PEM, (_m, type: string) => `-----BEGIN ${type}----- [mock] -----END ${type}-----`);
}


/** The fingerprint key: scrypt over the stack's secrets (slow on purpose, once per plan). */
function fingerprintKey(run: StackRun): Buffer {
    // The distinct values, sorted: a new PoP that uses the shared bgpPassword keeps the key.
    const secrets = [...new Set([run.spec.bgpPassword, run.spec.sshPrivateKey, ...run.spec.pops.map((p) => p.bgp.password)])].sort();
    return crypto.scryptSync(JSON.stringify(secrets), `pulumi-anycast plan ${run.spec.asn}`, 32, { N: 1 << 15, maxmem: 64 << 20 });
}

/** Inputs with PEM blocks normalized and secrets replaced; secret fingerprints collected by path. */
function planInputs(type: string, raw: Record<string, unknown>, key: Buffer): Pick<PlanResource, "inputs" | "secrets" | "secretLines"> {
    const secrets: Record<string, string> = {};
    const secretLines: Record<string, string[]> = {};
    const hmac = (text: string, digits: number) => crypto.createHmac("sha256", key).update(text).digest("hex").slice(0, digits);
    const walk = (v: unknown, path: string): unknown => {
        if (isSecretValue(v)) {
            const plain = walk(v.value, path);
            secrets[path] = hmac(JSON.stringify(plain), 24);
            if (typeof plain === "string" && plain.includes("\n")) secretLines[path] = plain.split("\n").map((l) => hmac(l, 12));
            return "[secret]";
        }
        if (typeof v === "string") return normalizePem(v);
        if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}[${i}]`));
        if (typeof v === "object" && v !== null) {
            return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, path ? `${path}.${k}` : k)]));
        }
        return v;
    };
    const inputs = walk(type === "command:remote:Command" ? retrigger(raw) : raw, "") as Record<string, unknown>;
    return { inputs, secrets, ...(Object.keys(secretLines).length > 0 ? { secretLines } : {}) };
}

/** A push's trigger is sha256(stdin) (components/push.ts); recompute it over the normalized stdin. */
function retrigger(raw: Record<string, unknown>): Record<string, unknown> {
    const unwrap = (v: unknown): unknown => (isSecretValue(v) ? v.value : v);
    const rewrap = (original: unknown, value: unknown) => (isSecretValue(original) ? { ...original, value } : value);
    const stdin = unwrap(raw.stdin);
    const triggers = unwrap(raw.triggers);
    if (typeof stdin !== "string" || !Array.isArray(triggers)) return raw;
    const normalized = sha256(normalizePem(stdin));
    const updated = triggers.map((t) => (unwrap(t) === sha256(stdin) ? rewrap(t, normalized) : t));
    // The whole list is a secret when the content is one (a secret Output in a list).
    return { ...raw, triggers: rewrap(raw.triggers, updated) };
}

/** The plan of a stack run. */
export function buildPlan(run: StackRun, stack: string): SavedPlan {
    const key = fingerprintKey(run);
    return {
        format: PLAN_FORMAT,
        stack,
        notes: run.notes,
        warnings: run.warnings,
        hosts: run.hosts.map((h) => ({ name: h.name, role: h.role, region: h.region, ipv6: h.ipv6, ipv4: h.ipv4, files: Object.keys(h.files).sort() })),
        resources: run.mocked.map((r) => ({
            urn: r.urn, ...(r.parent ? { parent: r.parent } : {}), type: r.type, name: r.name, custom: r.custom,
            ...planInputs(r.type, r.inputs, key),
            ...(r.ignoreChanges.length > 0 ? { ignoreChanges: [...r.ignoreChanges] } : {}),
        })),
    };
}

/** Read a plan written by `anycast render` or `anycast preview --json`; throws with what is wrong. */
export function parsePlan(text: string, file: string): SavedPlan {
    let data: unknown;
    try {
        data = JSON.parse(text);
    } catch (e) {
        throw new Error(`${file} is not JSON (${(e as Error).message}): give the plan.json that anycast render or anycast preview --json wrote`);
    }
    const plan = data as Partial<SavedPlan>;
    if (plan.format !== PLAN_FORMAT || !Array.isArray(plan.resources)) {
        throw new Error(`${file} is not an ${PLAN_FORMAT} plan: write one with anycast render --out <dir> or anycast preview --json <file>`);
    }
    return plan as SavedPlan;
}

// ---------------------------------------------------------------------------------------------
// Diff.
// ---------------------------------------------------------------------------------------------

export type Op = "create" | "update" | "replace" | "delete" | "same";

export interface InputChange {
    path: string;
    before?: unknown;
    after?: unknown;
    secret: boolean;
    /** This input cannot change in place: the resource is replaced. */
    replaces: boolean;
    /**
     * For a secret file's content: the lines that change, by number (in the new file for added
     * lines, in the old one for removed lines), never their text.
     */
    secretLines?: { added: number[]; removed: number[]; total: number };
}

/** One line of a line diff: added (`+`, numbered in the new text) or removed (`-`, in the old). */
export interface LineEdit {
    kind: "+" | "-";
    line: string;
    /** 1-based line number in the text it belongs to. */
    at: number;
}

/** The lines that differ between two texts' lines, from their longest common subsequence. */
export function diffLines(a: readonly string[], b: readonly string[]): LineEdit[] {
    const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
    for (let i = a.length - 1; i >= 0; i--) {
        for (let j = b.length - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
    const out: LineEdit[] = [];
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
        if (i < a.length && j < b.length && a[i] === b[j]) {
            i++;
            j++;
        } else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) {
            out.push({ kind: "+", line: b[j], at: ++j });
        } else {
            out.push({ kind: "-", line: a[i], at: ++i });
        }
    }
    return out;
}

export interface ResourceChange {
    op: Op;
    /** The resource as it is now (as it was, for a delete). */
    resource: PlanResource;
    changes: InputChange[];
}

/**
 * Inputs that force a new resource, by type (the providers' schemas): a Command is replaced when its
 * connection or triggers change (a changed script or stdin is an update, which runs `create` again); a Vultr instance is rebuilt for a new region, OS, user
 * data, hostname or SSH keys; the TLS and random providers replace on any change.
 */
const REPLACED_ON: Array<[RegExp, (path: string) => boolean]> = [
    [/^command:remote:Command$/, (p) => /^(connection|triggers)\b/.test(p)],
    [/^vultr:index\/instance:Instance$/, (p) => /^(region|osId|userData|hostname|sshKeyIds)\b/.test(p)],
    [/^cloudflare:index\/dnsRecord:DnsRecord$/, (p) => /^zoneId\b/.test(p)],
    [/^cloudflare:index\/zoneSetting:ZoneSetting$/, (p) => /^(zoneId|settingId)\b/.test(p)],
    [/^cloudflare:index\/originCaCertificate:OriginCaCertificate$/, () => true],
    [/^(tls|random):/, () => true],
];

function forcesReplacement(type: string, path: string): boolean {
    return REPLACED_ON.some(([t, inputs]) => t.test(type) && inputs(path));
}

/** Leaf values by path ("connection.host", "triggers[0]"). */
function leaves(v: unknown, path = "", out = new Map<string, unknown>()): Map<string, unknown> {
    if (Array.isArray(v) && v.length > 0) v.forEach((x, i) => leaves(x, `${path}[${i}]`, out));
    else if (typeof v === "object" && v !== null && Object.keys(v).length > 0) {
        for (const [k, x] of Object.entries(v)) leaves(x, path ? `${path}.${k}` : k, out);
    } else out.set(path, v);
    return out;
}

/** Whether an `ignoreChanges` entry ("triggers", "connection.host") covers an input's path ("triggers[0]"). */
function ignored(path: string, ignoreChanges: readonly string[] = []): boolean {
    return ignoreChanges.some((k) => path === k || path.startsWith(`${k}.`) || path.startsWith(`${k}[`));
}

function inputChanges(before: PlanResource, after: PlanResource): InputChange[] {
    const a = leaves(before.inputs);
    const b = leaves(after.inputs);
    const changes: InputChange[] = [];
    for (const path of [...new Set([...a.keys(), ...b.keys()])].sort()) {
        // The engine keeps an ignored input's old value: no change, and nothing replaced for it.
        if (ignored(path, after.ignoreChanges)) continue;
        const secret = path in after.secrets || path in before.secrets;
        const changed = secret
            ? before.secrets[path] !== after.secrets[path]
            : JSON.stringify(a.get(path)) !== JSON.stringify(b.get(path));
        if (changed) {
            const linesBefore = before.secretLines?.[path];
            const linesAfter = after.secretLines?.[path];
            const edits = linesBefore && linesAfter ? diffLines(linesBefore, linesAfter) : undefined;
            changes.push({
                path, before: a.get(path), after: b.get(path), secret, replaces: forcesReplacement(after.type, path),
                ...(edits && linesAfter ? { secretLines: {
                    added: edits.filter((e) => e.kind === "+").map((e) => e.at),
                    removed: edits.filter((e) => e.kind === "-").map((e) => e.at),
                    total: linesAfter.length,
                } } : {}),
            });
        }
    }
    return changes;
}

/** What applying `after` to a stack in the state of `before` would do, resource by resource. */
export function diffPlans(before: SavedPlan, after: SavedPlan): ResourceChange[] {
    const old = new Map(before.resources.map((r) => [r.urn, r]));
    const result: ResourceChange[] = after.resources.map((r) => {
        const prior = old.get(r.urn);
        if (!prior) return { op: "create", resource: r, changes: [] };
        const changes = inputChanges(prior, r);
        const op: Op = changes.length === 0 ? "same" : changes.some((c) => c.replaces) ? "replace" : "update";
        return { op, resource: r, changes };
    });
    const now = new Set(after.resources.map((r) => r.urn));
    for (const r of before.resources) if (!now.has(r.urn)) result.push({ op: "delete", resource: r, changes: [] });
    return result;
}
