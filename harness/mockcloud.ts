/**
 * The cloud, played locally: Pulumi mocks for Vultr, Cloudflare, TLS, random and command.
 *
 * Used by the `anycast` CLI (validate/render/preview/lab/bench) and by the unit tests. It hands
 * out deterministic lab addresses and keys, so a render is reproducible, and it makes real
 * certificates with openssl where nginx will load them (the lab serves TLS with them and its
 * clients verify them, with this module's CA playing Cloudflare's Origin CA).
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import * as pulumi from "@pulumi/pulumi";

/** Cloudflare's published ranges (snapshot); at deploy time the getIpRanges data source gives the live list. */
export const CLOUDFLARE_RANGES_SNAPSHOT = {
    ipv4Cidrs: [
        "173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22", "141.101.64.0/18",
        "108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20", "197.234.240.0/22", "198.41.128.0/17",
        "162.158.0.0/15", "104.16.0.0/13", "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
    ],
    ipv6Cidrs: [
        "2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32", "2405:8100::/32",
        "2a06:98c0::/29", "2c0f:f248::/32",
    ],
};

/** A resource as the mocks saw it. */
export interface MockedResource {
    type: string;
    name: string;
    custom: boolean;
    /** Inputs as the provider would receive them (secrets wrapped: see isSecretValue, unwrapSecrets). */
    inputs: Record<string, unknown>;
    /** Inputs plus what the mock cloud computed (addresses, keys, certificates). */
    state: Record<string, unknown>;
    /** The resource's URN as the mock monitor names it (the same as the engine's). */
    urn: string;
    /** URN of the parent resource ("" for none). */
    parent: string;
    /** The resource's `ignoreChanges` option: inputs whose changes the engine would not act on. */
    ignoreChanges: string[];
}

/** Pulumi's wire marker for a secret value inside deserialized inputs. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

export function isSecretValue(v: unknown): v is { value: unknown } {
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SECRET_SIG] === SECRET_VALUE;
}

/** Replace every secret by `replacement(value)`, recursively. */
export function mapSecrets(v: unknown, replacement: (value: unknown) => unknown): unknown {
    if (isSecretValue(v)) return replacement(v.value);
    if (Array.isArray(v)) return v.map((x) => mapSecrets(x, replacement));
    if (typeof v === "object" && v !== null) {
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapSecrets(x, replacement)]));
    }
    return v;
}

export const unwrapSecrets = (v: unknown): unknown => mapSecrets(v, (x) => unwrapSecrets(x));

/** The value of an Output once known, or its failure (an apply that threw, e.g. a secret that failed validation). */
export function outputValue<T>(o: pulumi.Input<T>): Promise<T> {
    // Output.promise() is the SDK's own (hidden from its typings); apply() never reports a failure.
    return (pulumi.output(o) as unknown as { promise(): Promise<T> }).promise();
}

/** Unicast addresses the mocks give the n-th Vultr instance (1-based): documentation space. */
export function mockInstanceAddresses(n: number): { ipv6: string; ipv4: string; gateway6: string; network6: string } {
    const group = `ff${(0x10 + n).toString(16).padStart(2, "0")}`;
    return { ipv6: `2001:db8:${group}::10`, gateway6: `2001:db8:${group}::1`, network6: `2001:db8:${group}::`, ipv4: `192.0.2.${10 + n}` };
}

function openssl(args: string[], cwd: string): void {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * Certificates made with openssl in a private temp dir (removed by `dispose`).
 * Results are cached for the life of the process by resource name and inputs, so that running
 * the stack twice in one process (tests comparing two configs, the bench) sees the same keys and
 * certificates, as a real stack would from its state.
 */
class LocalPki {
    private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-mockpki-"));
    private counter = 0;
    /** Plays Cloudflare's Origin CA: signs the origin certificate requests. */
    readonly originCa: { certPem: string; keyPem: string };

    constructor() {
        const key = this.newKey();
        this.originCa = { keyPem: key, certPem: this.selfSigned(key, "Mock Cloudflare Origin CA (lab)", 3650, true) };
    }

    private file(name: string, content?: string): string {
        const p = path.join(this.dir, `${this.counter}-${name}`);
        if (content !== undefined) fs.writeFileSync(p, content, { mode: 0o600 });
        return p;
    }

    newKey(): string {
        const { privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
        return privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    }

    csr(keyPem: string, commonName: string, dnsNames: string[]): string {
        this.counter++;
        const key = this.file("key.pem", keyPem);
        const out = this.file("req.pem");
        const args = ["req", "-new", "-key", key, "-subj", `/CN=${commonName.replace(/\//g, "_")}`, "-out", out];
        if (dnsNames.length > 0) args.push("-addext", `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(",")}`);
        openssl(args, this.dir);
        return fs.readFileSync(out, "utf8");
    }

    selfSigned(keyPem: string, commonName: string, days: number, ca: boolean): string {
        this.counter++;
        const key = this.file("key.pem", keyPem);
        const out = this.file("cert.pem");
        const args = ["req", "-x509", "-new", "-key", key, "-subj", `/CN=${commonName.replace(/\//g, "_")}`, "-days", String(days), "-out", out];
        if (ca) args.push("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
        openssl(args, this.dir);
        return fs.readFileSync(out, "utf8");
    }

    sign(csrPem: string, caCertPem: string, caKeyPem: string, days: number, usage: "server" | "client"): string {
        this.counter++;
        const csr = this.file("req.pem", csrPem);
        const caCert = this.file("ca.pem", caCertPem);
        const caKey = this.file("ca.key", caKeyPem);
        const ext = this.file("ext.cnf", usage === "server"
            ? "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${ENV::SAN}\n"
            : "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n");
        const out = this.file("cert.pem");
        // Copy the request's SAN into the certificate (what Cloudflare's Origin CA does).
        const san = execFileSync("openssl", ["req", "-in", csr, "-noout", "-text"]).toString()
            .match(/Subject Alternative Name:\s*\n\s*(.+)/)?.[1]?.trim().replace(/, /g, ",") ?? "DNS:localhost";
        execFileSync("openssl", ["x509", "-req", "-in", csr, "-CA", caCert, "-CAkey", caKey, "-CAcreateserial",
            "-days", String(days), "-extfile", ext, "-out", out], { cwd: this.dir, env: { ...process.env, SAN: san }, stdio: ["ignore", "ignore", "pipe"] });
        return fs.readFileSync(out, "utf8");
    }

    dispose(): void {
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

process.once("exit", () => sharedPki?.dispose());

/** Deterministic bytes from a name, so keys and renders are reproducible run to run. */
function bytesFor(name: string, length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0, block = 0; i < length; block++) {
        const h = crypto.createHash("sha256").update(`${name}/${block}`).digest();
        i += h.copy(out, i);
    }
    return out;
}

export interface MockCloud {
    /** Every resource registered so far, in registration order. */
    resources: MockedResource[];
    /** Resolves once registrations have stopped arriving (resources that wait on outputs register late). */
    settled(): Promise<void>;
    /** URNs of everything registered: they encode the parent type chain (parentage checks). */
    urns(): string[];
    /** The CA that played Cloudflare's Origin CA (clients of the lab verify PoPs against it). */
    originCaPem: string;
    dispose(): void;
}

const pkiCache = new Map<string, Record<string, unknown>>();
let sharedPki: LocalPki | undefined;

const plainOf = (v: unknown) => unwrapSecrets(v) as Record<string, unknown>;

/** What the cloud computes for a new resource: the state the provider would return beyond its inputs. */
function computedState(type: string, name: string, plain: Record<string, unknown>, pki: LocalPki, instance: () => number): Record<string, unknown> {
    const subject = (plain.subject ?? {}) as { commonName?: string };
    const days = Math.ceil(Number(plain.validityPeriodHours ?? 24) / 24);
    switch (type) {
        case "vultr:index/instance:Instance": {
            const a = mockInstanceAddresses(instance());
            return { v6MainIp: a.ipv6, mainIp: a.ipv4, v6Network: a.network6, v6NetworkSize: 64, gatewayV4: "192.0.2.1", status: "active", powerStatus: "running" };
        }
        case "random:index/randomBytes:RandomBytes": {
            const b = bytesFor(name, Number(plain.length ?? 32));
            return { base64: b.toString("base64"), hex: b.toString("hex") };
        }
        case "tls:index/privateKey:PrivateKey":
            return { privateKeyPem: pki.newKey() };
        case "tls:index/certRequest:CertRequest":
            return { certRequestPem: pki.csr(String(plain.privateKeyPem), subject.commonName ?? name, (plain.dnsNames as string[] | undefined) ?? []) };
        case "tls:index/selfSignedCert:SelfSignedCert":
            return { certPem: pki.selfSigned(String(plain.privateKeyPem), subject.commonName ?? name, days, !!plain.isCaCertificate) };
        case "tls:index/locallySignedCert:LocallySignedCert": {
            const usage = ((plain.allowedUses as string[]) ?? []).includes("client_auth") ? "client" : "server";
            return { certPem: pki.sign(String(plain.certRequestPem), String(plain.caCertPem), String(plain.caPrivateKeyPem), days, usage) };
        }
        case "cloudflare:index/originCaCertificate:OriginCaCertificate":
            return { certificate: pki.sign(String(plain.csr), pki.originCa.certPem, pki.originCa.keyPem, Number(plain.requestedValidity ?? 365), "server") };
        default:
            return {};
    }
}

/** Data sources: Debian 12's id, a zone id derived from its name, Cloudflare's ranges (snapshot). */
function callResult(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
    const inputs = args.inputs as Record<string, unknown>;
    switch (args.token) {
        case "vultr:index/getOs:getOs":
            return { id: "2136", name: "Debian 12 x64 (bookworm)", arch: "x64", family: "debian", filters: inputs.filters };
        case "cloudflare:index/getZone:getZone": {
            const name = ((inputs.filter ?? {}) as { name?: string }).name ?? "example.com";
            const id = crypto.createHash("md5").update(name).digest("hex");
            return { id, zoneId: id, name, status: "active" };
        }
        case "cloudflare:index/getIpRanges:getIpRanges":
            return { ...CLOUDFLARE_RANGES_SNAPSHOT, jdcloudCidrs: [], etag: "snapshot" };
        default:
            return inputs;
    }
}

/** The registration options the mocks' newResource does not see: parent and ignoreChanges. */
interface RegistrationRequest { getParent(): string; getIgnorechangesList(): string[] }
interface SdkMockMonitor {
    getRegisteredResources(): Map<string, unknown>;
    newUrn(parent: string, type: string, name: string): string;
    registerResource(req: RegistrationRequest, callback: unknown): Promise<void>;
}

/**
 * Install Pulumi mocks for a run (call it before the code under test creates resources) and
 * return what they record. Every run of a process shares one PKI and caches certificates by
 * resource name and inputs, so two runs see the same keys, as a real stack would from its state.
 */
export async function installMockCloud(opts: { project?: string; stack?: string; preview?: boolean } = {}): Promise<MockCloud> {
    const resources: MockedResource[] = [];
    const pki = sharedPki ??= new LocalPki();
    let instances = 0;
    let request: RegistrationRequest | undefined;
    let monitor: SdkMockMonitor | undefined;

    const mocks: pulumi.runtime.Mocks = {
        newResource(args: pulumi.runtime.MockResourceArgs): { id: string | undefined; state: Record<string, unknown> } {
            const inputs = args.inputs as Record<string, unknown>;
            const plain = plainOf(inputs);
            const cacheKey = `${args.type}/${args.name}/${JSON.stringify(plain)}`;
            const pkiType = args.type.startsWith("tls:") || args.type === "cloudflare:index/originCaCertificate:OriginCaCertificate";
            const computed = pkiCache.get(cacheKey) ?? computedState(args.type, args.name, plain, pki, () => ++instances);
            if (pkiType) pkiCache.set(cacheKey, computed);
            const state = { ...inputs, ...computed };
            const parent = request?.getParent() ?? "";
            resources.push({
                type: args.type, name: args.name, custom: args.custom ?? true, inputs, state,
                urn: monitor?.newUrn(parent, args.type, args.name) ?? "", parent, ignoreChanges: request?.getIgnorechangesList() ?? [],
            });
            return { id: args.custom === false ? undefined : `${args.name}-id`, state };
        },
        call: callResult,
    };
    await pulumi.runtime.setMocks(mocks, opts.project ?? "anycast", opts.stack ?? "mock", opts.preview ?? false);
    // The mock monitor is internal to the SDK; its registry is the only place parentage shows, and
    // its requests the only place resource options do. Its registerResource calls newResource
    // synchronously, before its first await, so the request is the one being registered.
    const sdkMonitor = (require("@pulumi/pulumi/runtime/settings") as { getMonitor(): SdkMockMonitor }).getMonitor();
    monitor = sdkMonitor;
    const register = sdkMonitor.registerResource.bind(sdkMonitor);
    sdkMonitor.registerResource = (req, callback) => {
        request = req;
        try {
            return register(req, callback);
        } finally {
            request = undefined;
        }
    };
    return {
        resources,
        settled: () => registrationsSettled(resources),
        urns: () => [...sdkMonitor.getRegisteredResources().keys()],
        originCaPem: pki.originCa.certPem,
        // The PKI lives for the process (see LocalPki); its temp dir goes with the process.
        dispose: () => undefined,
    };
}

async function registrationsSettled(resources: MockedResource[]): Promise<void> {
    // Registrations resolve over several turns of the event loop; settle when the count stops moving.
    let last = -1;
    for (let stable = 0; stable < 5;) {
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setTimeout(r, 5));
        if (resources.length === last) stable++;
        else { stable = 0; last = resources.length; }
    }
}
