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
    inputs: Record<string, unknown>;
    state: Record<string, unknown>;
    /** The resource's URN as the mock monitor names it. */
    urn: string;
    /** The parent's URN; undefined for a resource at the top of the stack. */
    parent?: string;
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
    resources: MockedResource[];
    /** URNs of everything registered: they encode the parent type chain (parentage checks). */
    urns(): string[];
    /** The CA that played Cloudflare's Origin CA (clients of the lab verify PoPs against it). */
    originCaPem: string;
    dispose(): void;
}

/** The parts of the SDK's mock monitor (runtime/mocks.js) used here. */
interface MockMonitor {
    getRegisteredResources(): Map<string, unknown>;
    newUrn(parent: string, type: string, name: string): string;
    registerResource(req: { getType(): string; getName(): string; getParent(): string }, callback: unknown): unknown;
}

/** Install Pulumi mocks for a run; returns what they record. */
const pkiCache = new Map<string, Record<string, unknown>>();
let sharedPki: LocalPki | undefined;

export async function installMockCloud(opts: { project?: string; stack?: string; preview?: boolean } = {}): Promise<MockCloud> {
    const resources: MockedResource[] = [];
    sharedPki ??= new LocalPki();
    const pki = sharedPki;
    let instances = 0;
    const unwrapped = (v: unknown) => unwrapSecrets(v) as Record<string, unknown>;

    // MockResourceArgs carries no parent; the monitor's request does (see the wrapper below).
    const parents = new Map<string, string>();
    let monitor: MockMonitor | undefined;
    const mocks: pulumi.runtime.Mocks = {
        newResource(args: pulumi.runtime.MockResourceArgs): { id: string | undefined; state: Record<string, unknown> } {
            const parent = parents.get(`${args.type}::${args.name}`) || undefined;
            const lineage = { parent, urn: monitor?.newUrn(parent ?? "", args.type, args.name) ?? "" };
            const inputs = args.inputs as Record<string, unknown>;
            const plain = unwrapped(inputs);
            let state: Record<string, unknown> = { ...inputs };
            const cacheKey = `${args.type}/${args.name}/${JSON.stringify(plain)}`;
            const cached = pkiCache.get(cacheKey);
            if (cached) {
                resources.push({ type: args.type, name: args.name, custom: args.custom ?? true, inputs, state: { ...state, ...cached }, ...lineage });
                return { id: `${args.name}-id`, state: { ...state, ...cached } };
            }
            switch (args.type) {
                case "vultr:index/instance:Instance": {
                    const a = mockInstanceAddresses(++instances);
                    state = { ...state, v6MainIp: a.ipv6, mainIp: a.ipv4, v6Network: a.network6, v6NetworkSize: 64, gatewayV4: "192.0.2.1", status: "active", powerStatus: "running" };
                    break;
                }
                case "random:index/randomBytes:RandomBytes": {
                    const b = bytesFor(args.name, Number(plain.length ?? 32));
                    state = { ...state, base64: b.toString("base64"), hex: b.toString("hex") };
                    break;
                }
                case "tls:index/privateKey:PrivateKey":
                    state = { ...state, privateKeyPem: pki.newKey() };
                    break;
                case "tls:index/certRequest:CertRequest": {
                    const subject = (plain.subject ?? {}) as { commonName?: string };
                    state = { ...state, certRequestPem: pki.csr(String(plain.privateKeyPem), subject.commonName ?? args.name, (plain.dnsNames as string[] | undefined) ?? []) };
                    break;
                }
                case "tls:index/selfSignedCert:SelfSignedCert": {
                    const subject = (plain.subject ?? {}) as { commonName?: string };
                    const days = Math.ceil(Number(plain.validityPeriodHours ?? 24) / 24);
                    state = { ...state, certPem: pki.selfSigned(String(plain.privateKeyPem), subject.commonName ?? args.name, days, !!plain.isCaCertificate) };
                    break;
                }
                case "tls:index/locallySignedCert:LocallySignedCert": {
                    const days = Math.ceil(Number(plain.validityPeriodHours ?? 24) / 24);
                    const usage = ((plain.allowedUses as string[]) ?? []).includes("client_auth") ? "client" : "server";
                    state = { ...state, certPem: pki.sign(String(plain.certRequestPem), String(plain.caCertPem), String(plain.caPrivateKeyPem), days, usage) };
                    break;
                }
                case "cloudflare:index/originCaCertificate:OriginCaCertificate":
                    state = { ...state, certificate: pki.sign(String(plain.csr), pki.originCa.certPem, pki.originCa.keyPem, Number(plain.requestedValidity ?? 365), "server") };
                    break;
            }
            if (args.type.startsWith("tls:") || args.type === "cloudflare:index/originCaCertificate:OriginCaCertificate") {
                pkiCache.set(cacheKey, state);
            }
            resources.push({ type: args.type, name: args.name, custom: args.custom ?? true, inputs, state, ...lineage });
            return { id: args.custom === false ? undefined : `${args.name}-id`, state };
        },
        call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
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
        },
    };
    await pulumi.runtime.setMocks(mocks, opts.project ?? "anycast", opts.stack ?? "mock", opts.preview ?? false);
    // The mock monitor is internal to the SDK; only its requests carry each resource's parent.
    const mockMonitor = (require("@pulumi/pulumi/runtime/settings") as { getMonitor(): MockMonitor }).getMonitor();
    monitor = mockMonitor;
    const registerResource = mockMonitor.registerResource.bind(mockMonitor);
    mockMonitor.registerResource = (req, callback) => {
        parents.set(`${req.getType()}::${req.getName()}`, req.getParent());
        return registerResource(req, callback);
    };
    return {
        resources,
        urns: () => [...mockMonitor.getRegisteredResources().keys()],
        originCaPem: pki.originCa.certPem,
        // The PKI lives for the process (see LocalPki); its temp dir goes with the process.
        dispose: () => undefined,
    };
}
