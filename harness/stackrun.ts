/**
 * Run the real `stacks/network` program under Pulumi's mocks and collect what `pulumi up`
 * would do: every resource with its inputs, and from the AnycastNetwork the validated model (typed,
 * with its secrets), its warnings and per host every file it would receive, exactly as the components
 * rendered it. `anycast render`, `preview`, `lab` and `bench` all start here, so there is one
 * code path from config to artifacts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { AnycastSpec, ConfigIssue } from "../components/core/model";
import { NAMESPACE, SECRET_KEYS } from "../components/core/config";
import { parseStackFile } from "../components/core/stackfile";
import { AnycastNetwork } from "../components/network";
import { deployNetworkStack, NetworkStack } from "../stacks/network/stack";
import { installMockCloud, isSecretValue, mapSecrets, MockCloud, MockedResource, outputValue } from "./mockcloud";

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
    /** The client certificate and key the front door made for Cloudflare's origin pulls. */
    originPullClient: { certPem: string; keyPem: string };
    /** Who the rendered firewalls let reach HTTP(S) on the anycast address (AnycastNetwork.httpSources). */
    httpSources: string[];
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

/** Run stacks/network under mocks. Throws ConfigError (from AnycastNetwork) on invalid config. */
export async function runStack(opts: StackRunOptions): Promise<StackRun> {
    const loaded = opts.configFile ? loadStackFile(opts.configFile) : { ...valuesToConfig(opts.values ?? {}), notes: [] };
    const cloud = await installMockCloud({ stack: opts.configFile ? path.basename(opts.configFile).replace(/^Pulumi\.|\.yaml$/g, "") : "mock" });
    opts.onMockCloud?.(cloud);
    pulumi.runtime.setAllConfig(loaded.config, loaded.secretKeys);
    const { result: stack, messages: sdkWarnings } = capturingSdkWarnings(() => deployNetworkStack());
    const [outputs, network] = await Promise.all([stackOutputValues(stack), networkValues(stack.network)]);
    // Wait until every registration has reached the mocks (pushes depend on late outputs).
    await cloud.settled();
    return {
        // The component's own typed model, with its secrets: not rebuilt from the plain-data `spec` output.
        spec: network.model,
        hosts: network.hosts.map((h): RenderedHost => ({
            name: h.name, role: h.role, ...(h.region ? { region: h.region } : {}), ipv6: h.ipv6, ...(h.ipv4 ? { ipv4: h.ipv4 } : {}),
            files: network.files[h.name] ?? {},
        })),
        resources: cloud.resources.map((r) => ({
            type: r.type, name: r.name, urn: r.urn, ...(r.parent ? { parent: r.parent } : {}), inputs: redact(r.inputs),
        })),
        mocked: [...cloud.resources],
        outputs,
        urns: cloud.urns(),
        notes: loaded.notes,
        warnings: [...stack.configWarnings, ...network.warnings, ...otherSdkWarnings(sdkWarnings, [...stack.configWarnings, ...network.warnings])],
        originCaPem: cloud.originCaPem,
        originPullClient: network.originPullClient,
        httpSources: network.httpSources,
    };
}

/**
 * Under mocks the SDK prints each warning to stderr itself; the runner returns them structured
 * instead (StackRun.warnings), and the CLI prints them once. Only the network's own warnings are
 * taken out of the SDK's way: any other warning logged while the program is built (the SDK's, a
 * provider's) is kept and returned as an `other` warning, never dropped.
 */
function capturingSdkWarnings<T>(build: () => T): { result: T; messages: string[] } {
    const log = pulumi.log as { warn: typeof pulumi.log.warn };
    const original = log.warn;
    const messages: string[] = [];
    log.warn = async (msg: string) => {
        messages.push(msg);
    };
    try {
        return { result: build(), messages };
    } finally {
        log.warn = original;
    }
}

/** The captured SDK warnings that are not one of the stack's own (those are returned structured already). */
export function otherSdkWarnings(messages: string[], own: ConfigIssue[]): ConfigIssue[] {
    const known = new Set(own.map((w) => `${w.key}: ${w.message}`));
    return messages.filter((m) => !known.has(m)).map((message) => ({ key: "pulumi", message }));
}

async function stackOutputValues(stack: NetworkStack): Promise<Record<string, unknown>> {
    const { mesh, ...rest } = stack.outputs;
    const values: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(rest)) values[k] = await outputValue(v as pulumi.Output<unknown>);
    values.mesh = await outputValue(pulumi.output(mesh));
    return values;
}

async function networkValues(network: AnycastNetwork) {
    const [model, hosts, files, warnings, originPullClient, httpSources] = await Promise.all([
        typedValue(network.model), outputValue(network.hosts), outputValue(network.files), outputValue(network.warnings),
        outputValue(network.originPullClient), outputValue(network.httpSources),
    ]);
    return { model, hosts, files, warnings, originPullClient, httpSources };
}

/**
 * An Output's value as it is, classes and all. outputValue goes through pulumi.output(), which
 * copies every object of the value field by field (an IpAddress would lose its methods).
 */
function typedValue<T>(o: pulumi.Output<T>): Promise<T> {
    // Output.promise() is the SDK's own (hidden from its typings), as in outputValue.
    return (o as unknown as { promise(): Promise<T> }).promise();
}

/** Secrets become "[secret]". */
export function redact(inputs: Record<string, unknown>): Record<string, unknown> {
    return mapSecrets(inputs, () => "[secret]") as Record<string, unknown>;
}

export { isSecretValue };
