/**
 * Run the real `stacks/network` program under Pulumi's mocks and collect what `pulumi up`
 * would do: every resource with its inputs, and per host every file it would push, exactly
 * as the components rendered it. `anycast render`, `preview`, `lab` and `bench` all start here,
 * so there is one code path from config to artifacts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { AnycastSpec, ConfigIssue } from "../components/core/model";
import { NAMESPACE, SECRET_KEYS } from "../components/core/config";
import { parseStackFile } from "../components/core/stackfile";
import { installMockCloud, isSecretValue, mapSecrets, MockCloud, MockedResource, unwrapSecrets } from "./mockcloud";

/** Stand-ins for secrets that a stack file holds encrypted or not at all. */
export const SECRET_PLACEHOLDERS: Record<string, string> = {
    bgpPassword: "PLACEHOLDER-secret-not-available",
    sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nPLACEHOLDER-secret-not-available\n-----END OPENSSH PRIVATE KEY-----\n",
};

export interface RenderedHost {
    name: string;
    role: "pop" | "origin";
    /** Vultr region of a Vultr-created host. */
    region?: string;
    ipv6: string;
    ipv4?: string;
    /** Artifact name -> exact content pushed (docs/ARTIFACTS.md); cloud-init.yaml for Vultr hosts. */
    files: Record<string, string>;
}

export interface PlannedResource {
    type: string;
    name: string;
    urn: string;
    /** The parent's URN; undefined at the top of the stack. */
    parent?: string;
    /** Inputs with every secret replaced by "[secret]". */
    inputs: Record<string, unknown>;
}

export interface StackRun {
    spec: AnycastSpec;
    hosts: RenderedHost[];
    resources: PlannedResource[];
    /** Raw mock records (inputs and state, secrets wrapped) for callers that need more. */
    mocked: MockedResource[];
    outputs: Record<string, unknown>;
    /** Every resource's URN (the parent type chain shows parentage). */
    urns: string[];
    /** What the run substituted or noticed (placeholders for secrets, warnings). */
    notes: string[];
    warnings: ConfigIssue[];
    /** The CA that played Cloudflare's Origin CA. */
    originCaPem: string;
}

export interface StackRunOptions {
    /** A Pulumi.<stack>.yaml file. */
    configFile?: string;
    /** Or config values directly (`anycast:` keys without the namespace), e.g. from tests/bench. */
    values?: Record<string, unknown>;
    /** Called with the mock cloud before the program runs (tests inspect what was created). */
    onMockCloud?: (cloud: MockCloud) => void;
}

/** Read a stack file into Pulumi's config map format (`ns:key` -> string), noting secrets it cannot use. */
export function loadStackFile(file: string): { config: Record<string, string>; secretKeys: string[]; notes: string[] } {
    const stackConfig = parseStackFile(fs.readFileSync(file, "utf8"), file);
    const config: Record<string, string> = {};
    const secretKeys: string[] = [];
    const notes: string[] = [];
    for (const [key, value] of Object.entries(stackConfig)) {
        if (typeof value === "object" && value !== null && "secure" in value) {
            const short = key.split(":")[1];
            if (key.startsWith(`${NAMESPACE}:`) && SECRET_PLACEHOLDERS[short] !== undefined) {
                config[key] = SECRET_PLACEHOLDERS[short];
                secretKeys.push(key);
                notes.push(`${key} is encrypted (secure:) in ${path.basename(file)}; rendered with a placeholder`);
            }
            continue;
        }
        config[key] = typeof value === "string" ? value : JSON.stringify(value);
        if (SECRET_KEYS.includes(key.split(":")[1] ?? "") && key.startsWith(`${NAMESPACE}:`)) secretKeys.push(key);
    }
    for (const short of SECRET_KEYS) {
        const key = `${NAMESPACE}:${short}`;
        if (config[key] === undefined) {
            config[key] = SECRET_PLACEHOLDERS[short];
            secretKeys.push(key);
            notes.push(`${key} is not set in ${path.basename(file)} (pulumi config set --secret ${key} ...); rendered with a placeholder`);
        }
    }
    return { config, secretKeys, notes };
}

/** The plain `anycast:` values of a stack file, namespace stripped (secure: values left out). */
export function readStackValues(file: string): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(parseStackFile(fs.readFileSync(file, "utf8"), file))) {
        const secure = typeof value === "object" && value !== null && "secure" in value;
        if (key.startsWith(`${NAMESPACE}:`) && !secure) values[key.slice(NAMESPACE.length + 1)] = value;
    }
    return values;
}

function valuesToConfig(values: Record<string, unknown>): { config: Record<string, string>; secretKeys: string[] } {
    const config: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) config[`${NAMESPACE}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    return { config, secretKeys: SECRET_KEYS.map((k) => `${NAMESPACE}:${k}`).filter((k) => k in config) };
}

function awaitOutput<T>(o: pulumi.Input<T>): Promise<T> {
    return new Promise((resolve) => pulumi.output(o).apply((v) => { resolve(v as T); return v; }));
}

const PROGRAM = path.join(__dirname, "..", "stacks", "network", "index.js");

/** Run stacks/network under mocks. Throws ConfigError (from the program) on invalid config. */
export async function runStack(opts: StackRunOptions): Promise<StackRun> {
    let loaded: { config: Record<string, string>; secretKeys: string[]; notes: string[] };
    if (opts.configFile) loaded = loadStackFile(opts.configFile);
    else loaded = { ...valuesToConfig(opts.values ?? {}), notes: [] };

    const cloud = await installMockCloud({ stack: opts.configFile ? path.basename(opts.configFile).replace(/^Pulumi\.|\.yaml$/g, "") : "mock" });
    opts.onMockCloud?.(cloud);
    try {
        pulumi.runtime.setAllConfig(loaded.config, loaded.secretKeys);
        // The program validates and builds at module load, as under `pulumi up`: load it fresh.
        delete require.cache[require.resolve(PROGRAM)];
        const warnings: ConfigIssue[] = [];
        const originalWarn = pulumi.log.warn;
        (pulumi.log as { warn: typeof pulumi.log.warn }).warn = async (msg: string) => {
            const m = /^([^ ]+): (.*)$/s.exec(msg);
            warnings.push(m ? { key: m[1], message: m[2] } : { key: "", message: msg });
        };
        let program: Record<string, unknown>;
        try {
            program = require(PROGRAM) as Record<string, unknown>;
        } finally {
            (pulumi.log as { warn: typeof pulumi.log.warn }).warn = originalWarn;
        }
        const outputs: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(program)) outputs[k] = unwrapSecrets(await awaitOutput(v as pulumi.Input<unknown>));
        // Wait until every registration has reached the mocks (pushes depend on late outputs).
        await waitForRegistrations(cloud.resources);

        const { parseAnycastConfig } = await import("../components/core/config");
        const { readStackConfig } = await import("../stacks/network/config");
        const spec = parseAnycastConfig(readStackConfig().values);
        const hosts = collectHosts(spec, cloud.resources, outputs);
        const resources = cloud.resources.map((r) => ({ type: r.type, name: r.name, urn: r.urn, parent: r.parent, inputs: redact(r.inputs) }));
        return {
            spec, hosts, resources, mocked: [...cloud.resources], outputs, urns: cloud.urns(), notes: loaded.notes, warnings,
            originCaPem: cloud.originCaPem,
        };
    } finally {
        cloud.dispose();
    }
}

async function waitForRegistrations(resources: MockedResource[]): Promise<void> {
    // Registrations resolve over several turns of the event loop; settle when the count stops moving.
    let last = -1;
    for (let stable = 0; stable < 5;) {
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setTimeout(r, 5));
        if (resources.length === last) stable++;
        else { stable = 0; last = resources.length; }
    }
}

/** Secrets become "[secret]"; long file contents pushed on stdin are summarised. */
export function redact(inputs: Record<string, unknown>): Record<string, unknown> {
    return mapSecrets(inputs, () => "[secret]") as Record<string, unknown>;
}

const PUSH = /^(.+)-push-(.+)$/;

function collectHosts(spec: AnycastSpec, resources: MockedResource[], outputs: Record<string, unknown>): RenderedHost[] {
    const pops = (outputs.pops ?? {}) as Record<string, { ipv6: string; ipv4?: string }>;
    const origin = (outputs.origin ?? {}) as { ipv6: string };
    const hosts: RenderedHost[] = [
        ...spec.pops.map((p): RenderedHost => ({
            name: p.name, role: "pop", region: p.host.kind === "vultr" ? p.host.region : undefined,
            ipv6: pops[p.name]?.ipv6, ipv4: pops[p.name]?.ipv4, files: {},
        })),
        {
            name: spec.origin.name, role: "origin",
            region: spec.origin.host.kind === "vultr" ? spec.origin.host.region : undefined,
            ipv6: origin.ipv6, ipv4: spec.origin.host.kind === "existing" ? spec.origin.host.address4 : undefined, files: {},
        },
    ];
    const byName = new Map(hosts.map((h) => [h.name, h]));
    for (const r of resources) {
        if (r.type === "command:remote:Command") {
            const m = PUSH.exec(r.name);
            const host = m && byName.get(m[1]);
            if (host && m) host.files[m[2]] = String(unwrapSecrets(r.inputs.stdin));
        } else if (r.type === "vultr:index/instance:Instance") {
            const host = byName.get(r.name.replace(/-instance$/, ""));
            const userData = unwrapSecrets(r.inputs.userData);
            if (host && typeof userData === "string") host.files["cloud-init.yaml"] = userData;
        }
    }
    return hosts;
}

export { isSecretValue };
