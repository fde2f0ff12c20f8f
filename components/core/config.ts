/**
 * Stack config -> validated AnycastSpec.
 *
 * Two passes, so a user sees every problem at once: zod checks each top-level key's shape on
 * its own (a broken `pops` does not hide a broken `mesh`), then semantic checks run across the
 * keys that parsed (prefix lengths, overlaps, uniqueness, communities, ...). Every issue names
 * its config key the way `pulumi config` spells it (`anycast:pops[1].bgp.holdTime`), the value,
 * and what would be valid; shape errors are put in those words by config-issues.ts.
 *
 * Every address and prefix is parsed here, once, into the IpAddress and IpPrefix values the spec
 * holds (addressing.ts); nothing downstream parses them again.
 */
import { z } from "zod";
import { IpAddress, IpPrefix, planMeshAddresses } from "./addressing";
import {
    AnycastSpec, BgpSettings, Community, ConfigIssue, DeploySpec, FirewallSpec, HostSpec, OriginSpec, PopSpec, HealthSpec, RoaSpec,
    RpkiFinding,
} from "./model";
import { describeRoa, Roa, validateOrigin } from "./rpki";
import { accepts, describeShapeIssue, showValue, unknownKeyMessage, validPhrase } from "./config-issues";
import { communityProblem, VULTR_ASN, VULTR_BGP, VULTR_LISTS_UPDATED, vultrPlanProblem, vultrRegionProblem } from "./vultr";
import { isDocumentationAsn, isPrivateAsn, OriginSeen, originsSeen, prependAdvice, upstreamName } from "./origin-as";
import { DAMPING_SUPPRESS_THRESHOLD, MAX_SAFE_WITHDRAWALS, worstFlapPenalty } from "./damping";
import { checkFailover, checkOriginPreferences, extraOriginMeshAddress, failoverShape, originEntries } from "./origins";

export { DAMPING_SUPPRESS_THRESHOLD, flapPenalty, worstFlapPenalty } from "./damping";

export const NAMESPACE = "anycast";

/** Thrown when the config has errors; `issues` lists them all, each once. */
export class ConfigError extends Error {
    constructor(readonly issues: ConfigIssue[]) {
        super(`invalid anycast config (${issues.length} error${issues.length === 1 ? "" : "s"}):\n` +
            issues.map((i) => `  - ${i.key}: ${i.message}`).join("\n"));
        this.name = "ConfigError";
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes. Defaults live here, next to the field they belong to, with what each field accepts;
// both are documented in README.md's config reference.
// ---------------------------------------------------------------------------------------------

const name = accepts(z.string().regex(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$/),
    "1 to 32 characters of a-z, 0-9 and '-', starting with a letter (it names hosts, files and BIRD protocols)");
const port = accepts(z.number().int().min(1).max(65535), "a port number from 1 to 65535");
const flag = () => accepts(z.boolean(), "true or false");
const positiveInt = accepts(z.number().int().positive(), "a whole number of seconds, 1 or more");
const cidrText = (what: string) => accepts(z.string(), what);

const hostShape = accepts(z.strictObject({
    address: accepts(z.string(), "the server's IPv6 or IPv4 address (SSH, WireGuard and BGP use it)"),
    address4: accepts(z.string(), "the server's IPv4 address, for IPv4 BGP sessions").optional(),
    user: accepts(z.string().regex(/^[a-z_][a-z0-9_-]*$/), "a Unix user name such as root or deploy").default("root"),
    port: port.default(22),
}), "{address, address4?, user?, port?} of a server you already run");

const bfdShape = accepts(z.union([
    z.boolean(),
    z.strictObject({
        interval: accepts(z.number().int().min(10).max(10000), "milliseconds from 10 to 10000").default(100),
        multiplier: accepts(z.number().int().min(1).max(255), "a count from 1 to 255").default(5),
    }),
]), "true, false or {interval: milliseconds, multiplier: count}");

const bgpShape = accepts(z.strictObject({
    neighbor: accepts(z.string(), `the upstream's IPv6 address (Vultr: ${VULTR_BGP.neighbor})`).default(VULTR_BGP.neighbor),
    neighbor4: accepts(z.string(), `the upstream's IPv4 address (Vultr: ${VULTR_BGP.neighbor4})`).default(VULTR_BGP.neighbor4),
    remoteAsn: accepts(z.number().int(), `the upstream's AS number (Vultr: ${VULTR_BGP.remoteAsn})`).default(VULTR_BGP.remoteAsn),
    publicAsn: accepts(z.number().int(), `the public AS the upstream exports routes from (Vultr: ${VULTR_ASN})`).optional(),
    multihop: accepts(z.number().int().min(0).max(255), "a TTL from 0 (directly connected) to 255").default(VULTR_BGP.multihop),
    staticRoute: flag().default(true),
    holdTime: accepts(z.number().int(), "0 (no keepalives) or 3 to 65535 seconds").default(9),
    keepaliveTime: accepts(z.number().int(), "seconds, shorter than holdTime (a third of it is usual)").optional(),
    errorWaitTime: accepts(z.union([positiveInt, z.tuple([positiveInt, positiveInt])]), "seconds, or [min, max] seconds")
        .default([5, 30]),
    connectRetryTime: accepts(z.number().int().min(1), "seconds, 1 or more").default(5),
    bfd: bfdShape.default(false),
    password: accepts(z.string(), "the session's TCP-MD5 password").optional(),
}), "{neighbor, remoteAsn, multihop, holdTime, bfd, password, ...}");

/** The Vultr instance fields shared by PoPs and the origin. */
const vultrHostFields = {
    region: accepts(z.string().min(1), "a Vultr region id such as lax, ams or sgp").optional(),
    plan: accepts(z.string().min(1), "a Vultr plan id such as vc2-1c-1gb").default("vc2-1c-1gb"),
    osId: accepts(z.number().int().positive(), "a Vultr OS id (a positive whole number; default Debian 12)").optional(),
    allowUnknownRegion: flag().default(false),
    allowUnknownPlan: flag().default(false),
    host: hostShape.optional(),
    meshAddress: accepts(z.string(), "an address inside mesh.cidr").optional(),
};

const popShape = accepts(z.strictObject({
    name,
    ...vultrHostFields,
    bgp: bgpShape.default(bgpShape.parse({})),
    communities: accepts(z.array(accepts(z.string(), `a community such as "64600:6939" (ASN:VALUE) or "206924:1:2" (large)`)),
        `a list of communities such as ["64600:6939"]`).default([]),
    prepend: accepts(z.number().int().min(0).max(3), "0 to 3 extra prepends").default(0),
    /** Origin names in this PoP's order of preference (origins.ts). */
    origins: accepts(z.array(accepts(z.string(), "the name of an origin")), "a list of origin names, most preferred first, such as [origin, origin2]")
        .optional(),
    /** Taken out by the config: GRACEFUL_SHUTDOWN for health.drainSeconds, then withdrawn. */
    drained: accepts(z.boolean(), "true or false").default(false),
}), "{name, region or host, bgp?, communities?, prepend?, origins?, drained?, ...}");

const originShape = accepts(z.strictObject({
    name,
    ...vultrHostFields,
    port: accepts(z.number().int().min(1).max(65535), "the origin service's port, 1 to 65535"),
    healthPath: accepts(z.string().regex(/^\/[\x21-\x7e]*$/), "an absolute URL path without spaces, such as /healthz").default("/"),
}), "{name, host or region, port, healthPath?}");

const meshShape = accepts(z.strictObject({
    cidr: cidrText("a private CIDR such as 10.77.0.0/24 or fd00:77::/64"),
    port: port.default(51820),
    topology: accepts(z.enum(["full", "hub"]), "full (every node peers with every other) or hub (PoPs peer with the origin)").default("full"),
    mtu: accepts(z.number().int().min(1280).max(9000), "an MTU from 1280 to 9000").default(1420),
    persistentKeepalive: accepts(z.number().int().min(0).max(3600), "seconds from 0 (off) to 3600").default(25),
}), "{cidr, port?, topology?, mtu?, persistentKeepalive?}");

const frontDoorShape = accepts(z.strictObject({
    zone: accepts(z.string(), "the Cloudflare zone's name, such as example.com").optional(),
    zoneId: accepts(z.string().regex(/^[0-9a-f]{32}$/), "a 32-character hex Cloudflare zone id").optional(),
    hostname: accepts(z.string(), "a DNS name such as www (relative to the zone) or www.example.com"),
    anycastName: accepts(z.string(), "a DNS name such as anycast (relative to the zone)").default("anycast"),
    sslMode: accepts(z.enum(["strict", "unmanaged"]), "strict or unmanaged").default("strict"),
}), "{zone or zoneId, hostname, anycastName?, sslMode?}");

const seconds = (max: number) => accepts(z.number().positive().max(max), `seconds, more than 0 and at most ${max}`);
const count = (min: number, max: number) => accepts(z.number().int().min(min).max(max), `a count from ${min} to ${max}`);

const healthShape = accepts(z.strictObject({
    interval: seconds(60).default(0.2),
    rise: count(1, 100).default(3),
    fall: count(1, 100).default(2),
    timeout: seconds(30).default(0.5),
    drainSeconds: accepts(z.number().min(0).max(3600), "seconds from 0 to 3600").default(3),
    maxWithdrawalsPerHour: count(1, 1000).default(3),
    statusPort: accepts(z.number().int().min(1).max(65535), "a port number from 1 to 65535, not 22, 80, 179, 443 or failover.relayPort").default(9180),
}), "{interval, rise, fall, timeout, drainSeconds, maxWithdrawalsPerHour, statusPort}");

const asnNumber = accepts(z.number().int().min(0).max(4294967295), "an AS number from 0 to 4294967295");

/** A ROA as the RIR portal lists it; maxLength defaults to the prefix's length (RFC 6482). */
const roaShape = accepts(z.strictObject({
    prefix: cidrText("the ROA's prefix, such as 2001:db8::/32"),
    maxLength: accepts(z.number().int(), "the ROA's max length, such as 48").optional(),
    asn: asnNumber,
}), "{prefix, maxLength?, asn}");

const cidrList = (what: string) => accepts(z.array(cidrText(`a CIDR such as ${what}`)), `a list of CIDRs such as [${what}]`);

const firewallShape = accepts(z.strictObject({
    adminCidrs: cidrList("203.0.113.0/24").default([]),
    httpSources: cidrList("2400:cb00::/32").optional(),
}), "{adminCidrs?, httpSources?}");

/** Each top-level key, validated on its own so one broken key does not mask the others. */
const deployShape = accepts(z.strictObject({
    sshFamily: accepts(z.enum(["auto", "ipv6", "ipv4"]), "auto, ipv6 or ipv4").default("auto"),
    deployerAddress: accepts(z.string(), "the IPv6 or IPv4 address the hosts see your SSH come from").optional(),
}), "{sshFamily?, deployerAddress?}");

const topLevel = {
    asn: accepts(z.number().int(), "your AS number, a whole number from 1 to 4294967294"),
    prefix: accepts(z.union([z.string(), z.array(z.string()).min(1)]),
        "a prefix such as 2001:db8:100::/48, or a list of prefixes with the IPv6 one first"),
    address: accepts(z.string(), "an IPv6 address inside the prefix, such as 2001:db8:100::1").optional(),
    bgpPassword: accepts(z.string(), "the TCP-MD5 password Vultr gave you (pulumi config set --secret)").optional(),
    sshPublicKeys: accepts(z.array(accepts(z.string().regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/),
        `an OpenSSH public key line such as "ssh-ed25519 AAAA... you@host"`)), "a list of OpenSSH public key lines").default([]),
    pops: accepts(z.array(popShape).min(1), "a list of at least one PoP {name, region or host}"),
    origin: originShape.optional(),
    origins: accepts(z.array(originShape).min(1), "a list of at least one origin {name, host or region, port, healthPath?}").optional(),
    failover: failoverShape.default(failoverShape.parse({})),
    mesh: meshShape,
    frontDoor: frontDoorShape,
    health: healthShape.default(healthShape.parse({})),
    firewall: firewallShape.default(firewallShape.parse({})),
    deploy: deployShape.default(deployShape.parse({})),
    roas: accepts(z.array(roaShape), "a list of ROAs {prefix, maxLength?, asn}").optional(),
    /** Draining every PoP takes the service down: refused unless this says it is meant. */
    allowAllDrained: accepts(z.boolean(), "true or false").default(false),
} as const;

type TopLevel = { [K in keyof typeof topLevel]: z.output<(typeof topLevel)[K]> };
/** The `anycast:` config as a user writes it (namespace stripped, defaults optional): AnycastNetwork's args. */
export type AnycastConfigInput = z.input<z.ZodObject<typeof topLevel>> & { sshPrivateKey?: string };
type PopFields = z.output<typeof popShape>;
/**
 * What pass 1 accepted. `pops` holds each PoP that parsed, by its index (undefined where it did
 * not), so the PoPs without shape errors still get their semantic checks.
 */
type Parsed = Partial<Omit<TopLevel, "pops">> & { pops: Array<PopFields | undefined> };
type HostFields = { region?: string; plan: string; osId?: number; allowUnknownRegion: boolean; allowUnknownPlan: boolean;
    host?: z.output<typeof hostShape> };

/** Keys that hold secrets: Pulumi config must mark them secret. */
export const SECRET_KEYS = ["bgpPassword", "sshPrivateKey"];
/** Every key `anycast:` understands, each once. */
export const CONFIG_KEYS = [...new Set([...Object.keys(topLevel), ...SECRET_KEYS])];

/** Field paths without an "accepts" phrase (test/unit/config.test.ts keeps this list empty). */
export { fieldsWithoutPhrase } from "./config-issues";
/** The shapes, for tests and docs checks that walk every field. */
export const CONFIG_SHAPES: Readonly<Record<string, z.ZodType>> = topLevel;

function keyPath(top: string, path: ReadonlyArray<PropertyKey>): string {
    let key = `${NAMESPACE}:${top}`;
    for (const p of path) key += typeof p === "number" ? `[${p}]` : `.${String(p)}`;
    return key;
}

// ---------------------------------------------------------------------------------------------
// The two passes.
// ---------------------------------------------------------------------------------------------

interface Collector {
    error(key: string, message: string): void;
    warn(key: string, message: string): void;
}

/** Issues in order, each (key, message) once however many checks reach it. */
function collector(): Collector & { errors: ConfigIssue[]; warnings: ConfigIssue[] } {
    const errors: ConfigIssue[] = [];
    const warnings: ConfigIssue[] = [];
    const add = (list: ConfigIssue[]) => (key: string, message: string) => {
        if (!list.some((i) => i.key === key && i.message === message)) list.push({ key, message });
    };
    return { errors, warnings, error: add(errors), warn: add(warnings) };
}

/**
 * Validate raw config values (as read from `anycast:*`) into an AnycastSpec.
 * Throws ConfigError listing every problem; warnings are returned on the spec.
 */
export function parseAnycastConfig(raw: Record<string, unknown>): AnycastSpec {
    const c = collector();
    checkUnknownKeys(raw, c);
    const parsed = parseShapes(raw, c);

    const asn = checkAsn(parsed.asn, c);
    const prefixes = checkPrefixes(parsed.prefix, c);
    const address = checkAddress(parsed.address, prefixes, c);
    const rawOrigins = originEntries({ origin: raw.origin !== undefined, origins: raw.origins !== undefined }, parsed.origin, parsed.origins, c);
    const mesh = planMesh(parsed.mesh, rawOrigins.length, parsed.pops.length, prefixes, c);
    checkBgpPassword(raw, parsed, c);
    const firewall = firewallSpecFor(parsed.firewall);
    const deploy = deploySpecFor(parsed.deploy, parsed.firewall?.adminCidrs ?? [], firewall.spec?.adminCidrs ?? [], c);
    const originNames = rawOrigins.map((o) => o.raw.name);
    const pops = checkPops(parsed, asn ?? 0, originNames, mesh, c, deploy?.sshFamily);
    if (asn !== undefined) checkPrivateAsn(asn, parsed, pops, c);
    const { roas, rpki } = checkRoas(parsed.roas, prefixes, asn, asn === undefined ? [] : originsSeen(asn, pops), c);
    const origins = checkOrigins(rawOrigins, mesh, c, deploy?.sshFamily);
    checkOriginPreferences(parsed.pops.map((p) => p?.origins), originNames, c);
    const failover = parsed.failover && checkFailover(parsed.failover, parsed.mesh?.topology, origins, parsed.pops.length, c);
    checkMeshAddressesUnique(origins, pops, c);
    checkHostsOutsidePrefixes(parsed, rawOrigins, prefixes, c);
    const frontDoor = checkFrontDoor(parsed.frontDoor, c);
    reportFirewall(parsed.firewall, firewall.issues, c);
    checkSshPrivateKey(raw.sshPrivateKey, c);
    checkHealth(parsed.health, failover?.relayPort, c);

    if (c.errors.length > 0) throw new ConfigError(c.errors);
    // Every field below was checked above; the assertions only restate that to the compiler.
    const spec: AnycastSpec = withoutUndefinedFields({
        asn: asn!,
        prefixes,
        address: address!,
        bgpPassword: parsed.bgpPassword ?? "",
        sshPrivateKey: String(raw.sshPrivateKey),
        sshPublicKeys: parsed.sshPublicKeys ?? [],
        pops: pops as PopSpec[],
        origin: origins[0] as OriginSpec,
        origins: origins as OriginSpec[],
        failover: failover!,
        mesh: { ...parsed.mesh!, cidr: mesh.cidr! },
        frontDoor: frontDoor!,
        health: parsed.health!,
        firewall: firewall.spec!,
        deploy: deploy!,
        roas,
        rpki,
        warnings: c.warnings,
    });
    // The first origin is the same object as origins[0] (the copy above made two).
    spec.origin = spec.origins[0];
    return spec;
}

/**
 * The spec without fields whose value is undefined (an optional setting left out), so that it
 * equals its own JSON round trip (spec-json.ts). Only plain objects and arrays are walked; the
 * IpAddress and IpPrefix values are kept as they are.
 */
function withoutUndefinedFields<T>(value: T): T {
    if (Array.isArray(value)) return value.map(withoutUndefinedFields) as T;
    if (value === null || typeof value !== "object" || Object.getPrototypeOf(value) !== Object.prototype) return value;
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, withoutUndefinedFields(v)])) as T;
}

function checkUnknownKeys(raw: Record<string, unknown>, c: Collector): void {
    for (const key of Object.keys(raw)) {
        if (!CONFIG_KEYS.includes(key)) c.error(`${NAMESPACE}:${key}`, unknownKeyMessage(key, CONFIG_KEYS));
    }
}

/** Pass 1: each key's shape on its own; what parses is returned, the rest reported. */
function parseShapes(raw: Record<string, unknown>, c: Collector): Parsed {
    const parsed: Parsed = { pops: [] };
    for (const [key, schema] of Object.entries(topLevel) as Array<[keyof TopLevel, z.ZodType]>) {
        const value = raw[key];
        if (value === undefined && !(schema instanceof z.ZodOptional) && !(schema instanceof z.ZodDefault)) {
            c.error(`${NAMESPACE}:${key}`, `is required: use ${validPhrase(schema)}`);
            continue;
        }
        const result = schema.safeParse(value, { reportInput: true });
        if (result.success) {
            (parsed as Record<string, unknown>)[key] = result.data;
        } else {
            for (const issue of result.error.issues) {
                for (const i of describeShapeIssue((path) => keyPath(key, path), schema, issue)) c.error(i.key, i.message);
            }
            // The PoPs that are fine on their own (their errors are reported above).
            if (key === "pops" && Array.isArray(value)) parsed.pops = value.map((p) => popShape.safeParse(p).data);
        }
    }
    return parsed;
}

const RESERVED_ASNS: Array<[number, number, string]> = [
    [0, 0, "reserved (RFC 7607)"],
    [23456, 23456, "AS_TRANS (RFC 6793), not a real ASN"],
    [65535, 65535, "reserved (RFC 7300)"],
    [65552, 131071, "in a range IANA reserves (65552-131071)"],
    [4294967295, 4294967295, "reserved (RFC 7300)"],
];

/** Why an AS number cannot be used, as "<asn> is ...", or undefined. */
function asnProblem(asn: number): string | undefined {
    if (!Number.isInteger(asn) || asn < 0 || asn > 4294967295) return `${asn} is out of range: use a whole number from 1 to 4294967294`;
    const reserved = RESERVED_ASNS.find(([lo, hi]) => asn >= lo && asn <= hi)?.[2];
    return reserved && `AS${asn} is ${reserved}`;
}

function checkAsn(asn: number | undefined, c: Collector): number | undefined {
    if (asn === undefined) return undefined;
    const problem = asnProblem(asn);
    if (problem) c.error(`${NAMESPACE}:asn`, problem.includes(": use") ? problem : `${problem}: use your registered ASN`);
    if (isDocumentationAsn(asn)) c.warn(`${NAMESPACE}:asn`, `AS${asn} is a documentation ASN (RFC 5398): fine for the lab only`);
    return asn;
}

function checkPrefixes(prefix: TopLevel["prefix"] | undefined, c: Collector): IpPrefix[] {
    const prefixes: IpPrefix[] = [];
    if (prefix === undefined) return prefixes;
    const list = Array.isArray(prefix) ? prefix : [prefix];
    const keyOf = (i: number) => Array.isArray(prefix) ? `${NAMESPACE}:prefix[${i}]` : `${NAMESPACE}:prefix`;
    list.forEach((text, i) => {
        let p: IpPrefix;
        try {
            p = IpPrefix.parse(text);
        } catch (e) {
            c.error(keyOf(i), `${(e as Error).message}: use a prefix such as 2001:db8:100::/48`);
            return;
        }
        const limit = p.family === 6 ? 48 : 24;
        if (p.length > limit) {
            c.error(keyOf(i), `/${p.length} is longer than /${limit}, the longest IPv${p.family} prefix the Internet accepts: announce the /${limit} that holds it`);
        }
        if (p.family === 6 && p.length < 19) c.error(keyOf(i), `/${p.length} is shorter than any end-site allocation: announce your /48 (or /44 .. /32)`);
        const range = p.network.range();
        if (range === "documentation") {
            c.warn(keyOf(i), `${text} is a documentation prefix: fine for the lab, never routed on the Internet`);
        } else if (!["unicast", "global"].includes(range)) {
            c.error(keyOf(i), `${text} is ${range} address space, not announceable on the Internet: use the prefix your RIR assigned`);
        }
        if (prefixes.some((q) => p.overlaps(q))) c.error(keyOf(i), `${text} overlaps another configured prefix: list each prefix once`);
        prefixes.push(p);
    });
    if (prefixes.length > 0 && prefixes[0].family !== 6) {
        c.error(keyOf(0), `${prefixes[0]} is IPv4, but the first prefix must be IPv6: it holds the anycast service address`);
    }
    return prefixes;
}

function checkAddress(text: string | undefined, prefixes: IpPrefix[], c: Collector): IpAddress | undefined {
    const v6 = prefixes.find((p) => p.family === 6);
    if (text === undefined) return v6?.nth(1);
    const key = `${NAMESPACE}:address`;
    const use = v6 ? `use an address inside ${v6}, such as ${v6.nth(1)}` : "use an IPv6 address inside the prefix";
    const address = IpAddress.tryParse(text);
    if (address?.family !== 6) c.error(key, `"${text}" is not an IPv6 address: ${use}`);
    else if (v6 && !v6.contains(address)) c.error(key, `${text} is outside the prefix ${v6}: ${use}`);
    else if (v6 && address.equals(v6.network)) c.error(key, `${text} is the prefix's network (subnet-router anycast) address: ${use}`);
    else return address;
    return undefined;
}

interface MeshPlan {
    cidr?: IpPrefix;
    /** Planned addresses: the first origin's first, then each PoP's in list order (further origins: origins.ts). */
    addresses?: IpAddress[];
}

function planMesh(mesh: TopLevel["mesh"] | undefined, originCount: number, popCount: number, prefixes: IpPrefix[], c: Collector): MeshPlan {
    if (!mesh) return {};
    const key = `${NAMESPACE}:mesh.cidr`;
    let cidr: IpPrefix;
    try {
        cidr = IpPrefix.parse(mesh.cidr);
    } catch (e) {
        c.error(key, `${(e as Error).message}: use a private CIDR such as 10.77.0.0/24 or fd00:77::/64`);
        return {};
    }
    if (!cidr.isPrivate()) {
        c.error(key, `${mesh.cidr} is not private address space: use RFC 1918 (such as 10.77.0.0/24) or an fd00::/8 unique local prefix`);
    }
    for (const p of prefixes) {
        if (cidr.overlaps(p)) c.error(key, `${mesh.cidr} overlaps the anycast prefix ${p}: use private address space outside it`);
    }
    const nodes = Math.max(1, originCount) + popCount;
    if (BigInt(nodes) > cidr.usableHosts()) {
        const origins = originCount > 1 ? `${originCount} origins` : "the origin";
        c.error(key, `${mesh.cidr} has room for ${cidr.usableHosts()} hosts; ${origins} and ${popCount} PoP(s) need ${nodes}: use a larger CIDR`);
        return { cidr };
    }
    return { cidr, addresses: planMeshAddresses(cidr, 1 + popCount) };
}

/** A node's mesh address: the explicit one (checked) or the planned one; undefined when either is in error (reported). */
function meshAddressFor(key: string, explicit: string | undefined, index: number, mesh: MeshPlan, c: Collector): IpAddress | undefined {
    if (explicit === undefined) return mesh.addresses?.[index];
    const use = mesh.cidr ? `use an address inside ${mesh.cidr}, or leave it out to have one planned` : "use an address inside mesh.cidr";
    const address = IpAddress.tryParse(explicit);
    if (!address) {
        c.error(`${key}.meshAddress`, `"${explicit}" is not an IP address: ${use}`);
        return undefined;
    }
    if (mesh.cidr && !mesh.cidr.contains(address)) c.error(`${key}.meshAddress`, `${explicit} is outside mesh.cidr ${mesh.cidr}: ${use}`);
    return address;
}

/** A PoP or origin whose mesh address may be missing while the config has errors. */
type WithMeshAddressUnchecked<T> = Omit<T, "meshAddress"> & { meshAddress?: IpAddress };

/** Name of the environment variable that gives the deployer's address when the stack does not (stacks/network/config.ts). */
export const DEPLOYER_ADDRESS_ENV = "ANYCAST_DEPLOYER_ADDRESS";

/**
 * `anycast:deploy`: the SSH family, and the lock-out check. The firewall opens SSH only to
 * adminCidrs on the hosts this stack creates, and every push after the firewall's comes from the
 * deployer, so a deployer outside adminCidrs would lose the hosts in the middle of an update.
 */
function deploySpecFor(raw: z.output<typeof deployShape> | undefined, adminTexts: string[], adminCidrs: IpPrefix[],
    c: Collector): DeploySpec | undefined {
    if (!raw) return undefined;
    const key = `${NAMESPACE}:deploy.deployerAddress`;
    let deployerAddress: IpAddress | undefined;
    if (raw.deployerAddress !== undefined) {
        deployerAddress = IpAddress.tryParse(raw.deployerAddress);
        if (!deployerAddress) {
            c.error(key, `"${raw.deployerAddress}" is not an IP address (set it, or ${DEPLOYER_ADDRESS_ENV}, to the address the hosts see your SSH come from)`);
        }
    }
    const family: 4 | 6 = raw.sshFamily === "ipv4" ? 4 : raw.sshFamily === "ipv6" ? 6 : deployerAddress?.family ?? 6;
    if (deployerAddress !== undefined) {
        if (deployerAddress.family !== family) {
            c.error(key, `${deployerAddress} is an IPv${deployerAddress.family} address, but ${NAMESPACE}:deploy.sshFamily is ${raw.sshFamily}: ` +
                "give the address the hosts see over the family SSH uses");
        } else if (adminTexts.length > 0 && !adminCidrs.some((cidr) => cidr.contains(deployerAddress!))) {
            // adminCidrs that do not parse are reported on firewall.adminCidrs.
            c.error(key, `${deployerAddress} is outside ${NAMESPACE}:firewall.adminCidrs (${adminTexts.join(", ")}): the firewall ` +
                "would shut this deployer out of every host it creates in the middle of the update; add its network to adminCidrs");
        }
    }
    return { sshFamily: family, deployerAddress };
}

/** A PoP's or the origin's host: a new Vultr instance (region, plan) or an existing server. */
function hostSpecFor(key: string, raw: HostFields, c: Collector, sshFamily: 4 | 6 = 6): HostSpec | undefined {
    if (raw.region && raw.host) {
        c.error(key, "has both region and host: set region (a new Vultr instance) or host (an existing server), not both");
        return undefined;
    }
    if (raw.host) {
        const h = raw.host;
        const address = IpAddress.tryParse(h.address);
        if (!address) {
            c.error(`${key}.host.address`, `"${h.address}" is not an IP address: use the server's IPv6 or IPv4 address`);
            return undefined;
        }
        const address4 = h.address4 === undefined ? undefined : IpAddress.tryParse(h.address4);
        if (h.address4 !== undefined && address4?.family !== 4) {
            c.error(`${key}.host.address4`, `"${h.address4}" is not an IPv4 address: use the server's IPv4 address, or leave it out`);
        }
        if (sshFamily === 4 && address.family !== 4 && h.address4 === undefined) {
            c.error(`${key}.host.address4`, `is required: ${NAMESPACE}:deploy.sshFamily is IPv4, and SSH to this host needs its IPv4 address`);
        }
        return { kind: "existing", address, address4, user: h.user, port: h.port, sshFamily };
    }
    if (raw.region) {
        checkVultrIds(key, raw.region, raw, c);
        return { kind: "vultr", region: raw.region, plan: raw.plan, osId: raw.osId, sshFamily };
    }
    c.error(key, "has neither region nor host: set either region (a new Vultr instance) or host (an existing server reached over SSH)");
    return undefined;
}

/** Region and plan against the lists shipped in the package, unless the user vouches for them. */
function checkVultrIds(key: string, region: string, raw: HostFields, c: Collector): void {
    const short = key.slice(NAMESPACE.length + 1);
    const newer = (what: string, flag: string) =>
        ` (a ${what} newer than this package's list of ${VULTR_LISTS_UPDATED}? set ${short}.${flag}: true)`;
    if (raw.allowUnknownRegion) {
        if (!/^[a-z]{3,4}$/.test(region)) {
            c.error(`${key}.region`, `${showValue(region)} does not look like a Vultr region id: use 3 or 4 lowercase letters such as lax`);
        }
    } else {
        const problem = vultrRegionProblem(region);
        // With a near match the typo is likelier than a region newer than the list.
        if (problem) c.error(`${key}.region`, `${showValue(region)} ${problem}${problem.includes("did you mean") ? "" : newer("region", "allowUnknownRegion")}`);
    }
    const planProblem = raw.allowUnknownPlan ? undefined : vultrPlanProblem(raw.plan);
    if (planProblem) c.error(`${key}.plan`, `${showValue(raw.plan)} ${planProblem}${planProblem.includes("did you mean") ? "" : newer("plan", "allowUnknownPlan")}`);
}

/** A BGP session password, wherever it is set; reported once, under the key that sets it. */
function checkPassword(key: string, pw: string, c: Collector): void {
    const use = "use the TCP-MD5 password from your provider";
    if (pw.length === 0) c.error(key, `is empty: ${use}`);
    // Linux TCP-MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
    if (Buffer.byteLength(pw) > 80) c.error(key, `is ${Buffer.byteLength(pw)} bytes, longer than 80 bytes, the TCP-MD5 key limit: ${use}, at most 80 bytes`);
    if (/[\x00-\x1f"\\]/.test(pw)) {
        c.error(key, "contains quotes, backslashes or control characters, which bird.conf cannot hold safely: use a password without them");
    }
}

function checkBgpPassword(raw: Record<string, unknown>, parsed: Parsed, c: Collector): void {
    if (parsed.bgpPassword !== undefined) {
        checkPassword(`${NAMESPACE}:bgpPassword`, parsed.bgpPassword, c);
        return;
    }
    const withoutPassword = parsed.pops.filter((p) => p && p.bgp.password === undefined).map((p) => p!.name);
    if (withoutPassword.length > 0 && raw.bgpPassword === undefined) {
        c.error(`${NAMESPACE}:bgpPassword`, `is required for PoP(s) ${withoutPassword.join(", ")}: ` +
            `pulumi config set --secret ${NAMESPACE}:bgpPassword <the TCP-MD5 password> (or give each PoP bgp.password)`);
    }
}

function bgpSettingsFor(key: string, raw: z.output<typeof bgpShape>, asn: number, password: string | undefined,
    onVultr: boolean, c: Collector): BgpSettings {
    const neighbor = IpAddress.tryParse(raw.neighbor);
    const neighbor4 = IpAddress.tryParse(raw.neighbor4);
    if (neighbor?.family !== 6) {
        c.error(`${key}.neighbor`, `"${raw.neighbor}" is not an IPv6 address: use the upstream's IPv6 address (Vultr: ${VULTR_BGP.neighbor})`);
    }
    if (neighbor4?.family !== 4) {
        c.error(`${key}.neighbor4`, `"${raw.neighbor4}" is not an IPv4 address: use the upstream's IPv4 address (Vultr: ${VULTR_BGP.neighbor4})`);
    }
    const remoteProblem = asnProblem(raw.remoteAsn);
    if (remoteProblem) c.error(`${key}.remoteAsn`, `${remoteProblem}: use the upstream's AS number (Vultr: ${VULTR_BGP.remoteAsn})`);
    if (raw.remoteAsn === asn) {
        c.error(`${key}.remoteAsn`, `${asn} equals our own anycast:asn, but the upstream session must be eBGP: use the upstream's AS number (Vultr: ${VULTR_BGP.remoteAsn})`);
    }
    const publicAsn = publicAsnFor(key, raw.publicAsn, onVultr, c);
    checkTimers(key, raw, c);
    if (raw.password !== undefined) checkPassword(`${key}.password`, raw.password, c);
    const bfd = raw.bfd === false ? undefined : raw.bfd === true ? { intervalMs: 100, multiplier: 5 }
        : { intervalMs: raw.bfd.interval, multiplier: raw.bfd.multiplier };
    if (bfd && raw.multihop > 0) c.warn(`${key}.bfd`, "BFD over a multihop session needs multihop BFD on the peer too");
    return {
        // Both are checked above; a spec is only returned without errors.
        neighbor: neighbor!,
        neighbor4: neighbor4!,
        remoteAsn: raw.remoteAsn,
        publicAsn,
        multihop: raw.multihop,
        staticRouteToNeighbor: raw.staticRoute,
        holdTime: raw.holdTime,
        keepaliveTime: raw.keepaliveTime ?? Math.max(1, Math.floor(raw.holdTime / 3)),
        errorWaitTime: typeof raw.errorWaitTime === "number" ? [raw.errorWaitTime, raw.errorWaitTime] : raw.errorWaitTime,
        connectRetryTime: raw.connectRetryTime,
        bfd,
        password: raw.password ?? password ?? "",
    };
}

/** A Vultr instance's upstream is AS20473; an existing host's is what its config says, if anything. */
function publicAsnFor(key: string, raw: number | undefined, onVultr: boolean, c: Collector): number | undefined {
    if (raw === undefined) return onVultr ? VULTR_ASN : undefined;
    const problem = asnProblem(raw);
    if (problem) c.error(`${key}.publicAsn`, `${problem}: use the public AS your provider exports routes from`);
    else if (isPrivateAsn(raw)) c.error(`${key}.publicAsn`, `AS${raw} is private (RFC 6996), but this is the AS the Internet sees: use your provider's public AS`);
    else if (onVultr && raw !== VULTR_ASN) {
        c.error(`${key}.publicAsn`, `AS${raw} is not Vultr's: a Vultr instance's upstream exports from AS${VULTR_ASN}; leave bgp.publicAsn out`);
    }
    return raw;
}

/**
 * A private anycast:asn works only where every PoP's upstream removes it on export and sends the
 * route on from its own public AS (origin-as.ts): anywhere else the private ASN reaches the
 * Internet, which drops paths holding one. And a prepend of it is removed with it.
 */
function checkPrivateAsn(asn: number, parsed: Parsed, pops: ReadonlyArray<{ name: string; bgp: { publicAsn?: number } }>, c: Collector): void {
    if (!isPrivateAsn(asn)) return;
    const indexOf = (name: string) => parsed.pops.findIndex((p) => p?.name === name);
    const keeping = pops.filter((p) => p.bgp.publicAsn === undefined);
    if (keeping.length > 0) {
        const which = keeping.map((p) => `${p.name} (pops[${indexOf(p.name)}])`).join(", ");
        c.error(`${NAMESPACE}:asn`, `private ASN ${asn} would reach the Internet from PoP${keeping.length === 1 ? "" : "s"} ${which}, ` +
            "on an existing host whose upstream is not known to remove it, and networks drop routes whose AS path holds a private ASN " +
            `(RFC 6996). A private ASN works where the upstream removes it and exports the route from its own public AS, as Vultr does ` +
            `(AS${VULTR_ASN}): if this host's provider does, set bgp.publicAsn to that AS; otherwise use a registered ASN`);
    }
    for (const p of pops) {
        const i = indexOf(p.name);
        const prepend = parsed.pops[i]?.prepend ?? 0;
        if (prepend === 0 || p.bgp.publicAsn === undefined) continue;
        c.error(`${NAMESPACE}:pops[${i}].prepend`, `${prepend} extra copies of private AS${asn} are removed with it by ` +
            `${upstreamName(p.bgp.publicAsn)} before any other network sees the route; ${prependAdvice(prepend, p.bgp.publicAsn)}`);
    }
}

function checkTimers(key: string, raw: z.output<typeof bgpShape>, c: Collector): void {
    if (raw.holdTime !== 0 && (raw.holdTime < 3 || raw.holdTime > 65535)) {
        c.error(`${key}.holdTime`, `${raw.holdTime} is out of range: use 0 (no keepalives) or 3 to 65535 seconds (RFC 4271)`);
    }
    if (raw.keepaliveTime !== undefined && raw.holdTime !== 0 && raw.keepaliveTime >= raw.holdTime) {
        c.error(`${key}.keepaliveTime`, `${raw.keepaliveTime} is not shorter than holdTime ${raw.holdTime}: ` +
            `use less, a third of it is usual (${Math.max(1, Math.floor(raw.holdTime / 3))})`);
    }
    if (Array.isArray(raw.errorWaitTime) && raw.errorWaitTime[0] > raw.errorWaitTime[1]) {
        c.error(`${key}.errorWaitTime`, `${showValue(raw.errorWaitTime)} has its minimum above its maximum: use [min, max] with min ≤ max`);
    }
}

/** Parse "64600:6939" (standard) or "206924:1:2" (large) communities. */
export function parseCommunity(text: string): Community {
    const parts = text.split(":");
    if (!parts.every((p) => /^\d+$/.test(p)) || (parts.length !== 2 && parts.length !== 3)) {
        throw new Error(`"${text}" is not a community: use ASN:VALUE (standard) or ASN:DATA1:DATA2 (large)`);
    }
    const nums = parts.map(Number);
    if (parts.length === 2) {
        if (nums.some((n) => n > 65535)) {
            throw new Error(`"${text}" does not fit a standard community, whose halves are 16-bit (0-65535): use a large community ASN:DATA1:DATA2 for 32-bit ASNs`);
        }
        return { kind: "standard", asn: nums[0], value: nums[1] };
    }
    if (nums.some((n) => n > 4294967295)) throw new Error(`"${text}" does not fit a large community: use 32-bit parts (0-4294967295)`);
    return { kind: "large", global: nums[0], data1: nums[1], data2: nums[2] };
}

export function formatCommunity(c: Community): string {
    return c.kind === "standard" ? `${c.asn}:${c.value}` : `${c.global}:${c.data1}:${c.data2}`;
}

function communitiesFor(key: string, texts: string[], c: Collector): Community[] {
    const communities: Community[] = [];
    texts.forEach((text, j) => {
        try {
            const community = parseCommunity(text);
            const problem = communityProblem(community);
            if (problem) c.error(`${key}.communities[${j}]`, `${text} ${problem}`);
            else communities.push(community);
        } catch (e) {
            c.error(`${key}.communities[${j}]`, (e as Error).message);
        }
    });
    return communities;
}

function checkPops(parsed: Parsed, asn: number, originNames: string[], mesh: MeshPlan, c: Collector,
    sshFamily?: 4 | 6): Array<WithMeshAddressUnchecked<PopSpec>> {
    const pops: Array<WithMeshAddressUnchecked<PopSpec>> = [];
    const seen = new Map<string, number>();
    parsed.pops.forEach((p, i) => {
        if (!p) return;
        const key = `${NAMESPACE}:pops[${i}]`;
        const first = seen.get(p.name);
        if (first !== undefined) c.error(`${key}.name`, `"${p.name}" is a duplicate PoP name (also pops[${first}]): give each PoP its own name`);
        seen.set(p.name, i);
        if (originNames.includes(p.name)) c.error(`${key}.name`, `"${p.name}" is also an origin's name: give the PoP another name`);
        const host = hostSpecFor(key, p, c, sshFamily);
        const bgp = bgpSettingsFor(`${key}.bgp`, p.bgp, asn, parsed.bgpPassword, p.host === undefined, c);
        const communities = communitiesFor(key, p.communities, c);
        const meshAddress = meshAddressFor(key, p.meshAddress, i + 1, mesh, c);
        if (host) pops.push({ name: p.name, host, bgp, communities, prepend: p.prepend, meshAddress, originPreference: p.origins ?? [], drained: p.drained });
    });
    const parsedPops = parsed.pops.filter((p): p is PopFields => p !== undefined);
    if (parsedPops.length === parsed.pops.length && parsedPops.every((p) => p.drained) && parsed.allowAllDrained !== true) {
        c.error(`${NAMESPACE}:allowAllDrained`, `every PoP has drained: true (${parsedPops.map((p) => p.name).join(", ")}), which withdraws ` +
            "the prefix everywhere and takes the service down: undrain one, or set anycast:allowAllDrained to true if that is what you mean");
    }
    return pops;
}

type OriginFields = z.output<typeof originShape>;

/** Each origin's host and mesh address: the first origin takes the mesh's first address, further ones count down from its end (origins.ts). */
function checkOrigins(entries: Array<{ key: string; raw: OriginFields }>, mesh: MeshPlan, c: Collector,
    sshFamily?: 4 | 6): Array<WithMeshAddressUnchecked<OriginSpec>> {
    const origins: Array<WithMeshAddressUnchecked<OriginSpec>> = [];
    entries.forEach(({ key, raw: o }, k) => {
        const host = hostSpecFor(key, o, c, sshFamily);
        const meshAddress = k === 0 || o.meshAddress !== undefined ? meshAddressFor(key, o.meshAddress, 0, mesh, c)
            : mesh.cidr && mesh.addresses ? extraOriginMeshAddress(mesh.cidr, k) : undefined;
        if (host) origins.push({ name: o.name, host, port: o.port, healthPath: o.healthPath, meshAddress });
    });
    return origins;
}

function checkMeshAddressesUnique(origins: Array<{ meshAddress?: IpAddress }>, pops: Array<{ meshAddress?: IpAddress }>, c: Collector): void {
    const addresses = [...origins.map((o) => o.meshAddress), ...pops.map((p) => p.meshAddress)].filter((a): a is IpAddress => !!a);
    const dup = addresses.find((a, i) => addresses.findIndex((b) => b.equals(a)) !== i);
    if (dup) c.error(`${NAMESPACE}:mesh`, `mesh address ${dup} is assigned twice: check the explicit meshAddress settings`);
}

/**
 * Unicast addresses of existing hosts must not be inside the anycast prefix: WireGuard and SSH
 * to them would follow the anycast route to the nearest PoP instead of the host.
 */
function checkHostsOutsidePrefixes(parsed: Parsed, origins: Array<{ key: string; raw: OriginFields }>, prefixes: IpPrefix[], c: Collector): void {
    const hosts = [
        ...parsed.pops.map((p, i) => ({ key: `${NAMESPACE}:pops[${i}].host.address`, host: p?.host })),
        ...origins.map(({ key, raw }) => ({ key: `${key}.host.address`, host: raw.host })),
    ];
    for (const { key, host } of hosts) {
        const address = host && IpAddress.tryParse(host.address);
        if (host && address && prefixes.some((p) => p.contains(address))) {
            c.error(key, `${host.address} is inside the anycast prefix: use the host's own unicast address, outside it`);
        }
    }
}

const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
const LABELS = /^(?=.{1,253}$)[a-z0-9*](?:[a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Resolve a DNS name given relative to the zone ("www") or fully ("www.example.com"). */
function fqdnIn(nameText: string, zone: string | undefined): string | { error: string } {
    const n = nameText.toLowerCase().replace(/\.$/, "");
    if (!LABELS.test(n)) return { error: `"${nameText}" is not a valid DNS name: use letters, digits and '-' in dot-separated labels, such as www` };
    if (!zone) {
        return DOMAIN.test(n) ? n : { error: `"${nameText}" is not fully qualified: use a full name such as www.example.com when only frontDoor.zoneId is given` };
    }
    if (n === zone || n.endsWith(`.${zone}`)) return n;
    if (n.includes(".") && DOMAIN.test(n) && !n.endsWith(`.${zone}`) && n.split(".").length > 2) {
        return { error: `"${nameText}" is not inside the zone ${zone}: use a name in ${zone}, such as www or www.${zone}` };
    }
    return `${n}.${zone}`;
}

function checkFrontDoor(fd: TopLevel["frontDoor"] | undefined, c: Collector): AnycastSpec["frontDoor"] | undefined {
    if (!fd) return undefined;
    const key = `${NAMESPACE}:frontDoor`;
    if (!!fd.zone === !!fd.zoneId) {
        c.error(key, `has ${fd.zone ? "both zone and zoneId" : "neither zone nor zoneId"}: set exactly one of zone (a name such as example.com) or zoneId`);
    }
    const zone = fd.zone?.toLowerCase().replace(/\.$/, "");
    if (zone !== undefined && !DOMAIN.test(zone)) c.error(`${key}.zone`, `"${fd.zone}" is not a domain name: use the zone's name, such as example.com`);
    const hostname = fqdnIn(fd.hostname, zone);
    const anycastName = fqdnIn(fd.anycastName, zone);
    if (typeof hostname !== "string") c.error(`${key}.hostname`, hostname.error);
    if (typeof anycastName !== "string") c.error(`${key}.anycastName`, anycastName.error);
    if (typeof hostname !== "string" || typeof anycastName !== "string") return undefined;
    if (hostname === anycastName) {
        c.error(`${key}.anycastName`, `${anycastName} must differ from hostname: ${hostname} is the proxied CNAME, the anycast name its unproxied AAAA target; use another name, such as anycast`);
    }
    return { zone, zoneId: fd.zoneId, hostname, anycastName, sslMode: fd.sslMode };
}

/** The firewall's lists parsed (the valid entries), and what is wrong with the others, reported later by reportFirewall. */
function firewallSpecFor(firewall: TopLevel["firewall"] | undefined): { spec?: FirewallSpec; issues: ConfigIssue[] } {
    if (!firewall) return { issues: [] };
    const issues: ConfigIssue[] = [];
    const parse = (key: string, list: string[]) => list.flatMap((t, i) => {
        try {
            return [IpPrefix.parse(t)];
        } catch (e) {
            issues.push({ key: `${NAMESPACE}:firewall.${key}[${i}]`, message: `${(e as Error).message}: use a CIDR such as 203.0.113.0/24 or 2001:db8::/32` });
            return [];
        }
    });
    const adminCidrs = parse("adminCidrs", firewall.adminCidrs);
    const httpSources = firewall.httpSources && parse("httpSources", firewall.httpSources);
    return { spec: { adminCidrs, httpSources }, issues };
}

function reportFirewall(firewall: TopLevel["firewall"] | undefined, issues: ConfigIssue[], c: Collector): void {
    if (!firewall) return;
    for (const i of issues) c.error(i.key, i.message);
    if (firewall.adminCidrs.length === 0) {
        c.warn(`${NAMESPACE}:firewall.adminCidrs`, "is empty: SSH is open to the whole Internet on every host");
    }
}

function checkSshPrivateKey(key: unknown, c: Collector): void {
    const name = `${NAMESPACE}:sshPrivateKey`;
    if (key === undefined) {
        c.error(name, `is required to push configs: pulumi config set --secret ${name} < ~/.ssh/id_ed25519`);
    } else if (typeof key !== "string" || !/^-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.trim())) {
        c.error(name, `is not a private key: use a PEM or OpenSSH private key (-----BEGIN ... PRIVATE KEY-----), set with pulumi config set --secret ${name} < ~/.ssh/id_ed25519`);
    }
}

/** Ports a PoP already uses for SSH, HTTP, BGP and HTTPS. */
const TAKEN_POP_PORTS = [22, 80, 179, 443];

function checkHealth(health: HealthSpec | undefined, relayPort: number | undefined, c: Collector): void {
    if (!health) return;
    if (TAKEN_POP_PORTS.includes(health.statusPort)) {
        c.error(`${NAMESPACE}:health.statusPort`, `${health.statusPort} is taken on the PoPs (SSH, HTTP, BGP or HTTPS): use another port, such as the default 9180`);
    } else if (health.statusPort === relayPort) {
        c.error(`${NAMESPACE}:health.statusPort`, `${health.statusPort} is failover.relayPort too: the agent's status and the relay need a port each (default 9180 and 8081)`);
    }
    if (health.timeout > Math.max(health.interval, 0.05) * 10) {
        c.warn(`${NAMESPACE}:health.timeout`, "is much longer than the interval: a hanging check delays failover");
    }
    const penalty = worstFlapPenalty(health.maxWithdrawalsPerHour);
    if (penalty >= DAMPING_SUPPRESS_THRESHOLD) {
        c.warn(`${NAMESPACE}:health.maxWithdrawalsPerHour`, `${health.maxWithdrawalsPerHour} withdrawals in quick succession can add up to a route-flap ` +
            `penalty of ${penalty}, above the suppress threshold ${DAMPING_SUPPRESS_THRESHOLD} (RFC 7196): ` +
            `upstreams that damp routes would suppress the prefix everywhere; ${MAX_SAFE_WITHDRAWALS} or fewer stays below it`);
    }
}

/**
 * `anycast:roas` against the announced prefixes (RFC 6811 origin validation, see rpki.ts), from
 * each origin the Internet sees (origin-as.ts: our ASN, or for a private one each upstream's
 * public AS): an announcement the listed ROAs make RPKI-invalid is an error on the ROA's key,
 * since the ROA is what has to change (or the prefix); one no ROA covers is a warning (it still
 * propagates, but networks that accept only RPKI-valid routes drop it).
 */
function checkRoas(raw: TopLevel["roas"], prefixes: IpPrefix[], asn: number | undefined, origins: OriginSeen[],
    c: Collector): { roas: RoaSpec[]; rpki: RpkiFinding[] } {
    const findings = (finding: (p: IpPrefix, i: number, o: OriginSeen) => Omit<RpkiFinding, "prefix" | "originAsn" | "pops">) =>
        prefixes.flatMap((p, i) => origins.map((o) => ({ prefix: p, originAsn: o.asn,
            ...(asn !== undefined && o.asn !== asn ? { pops: o.pops } : {}), ...finding(p, i, o) })));
    if (raw === undefined) {
        const public_ = prefixes.filter((p) => p.network.range() !== "documentation");
        if (public_.length > 0) {
            c.warn(`${NAMESPACE}:roas`, `is not set, so the RPKI state of ${public_.join(", ")} is not checked before deploying; ` +
                "list the ROAs published at your RIR (prefix, maxLength, asn) to catch a max length shorter than the announcement or a wrong ASN");
        }
        return { roas: [], rpki: findings(() => ({ state: "unchecked", detail: "anycast:roas not set" })) };
    }
    const roas = parseRoas(raw, c);
    if (asn === undefined) return { roas: [], rpki: [] };
    const known = roas.filter((r): r is Roa => r !== undefined);
    const rpki = findings((p, i, o) => rpkiFinding(p, prefixes.length > 1 ? `${NAMESPACE}:prefix[${i}]` : `${NAMESPACE}:prefix`,
        asn, o, known, (k) => `${NAMESPACE}:roas[${roas.indexOf(known[k])}]`, c));
    return { roas: known.map((r) => ({ prefix: r.prefix, maxLength: r.maxLength, asn: r.asn })), rpki };
}

/** The listed ROAs, each parsed or reported (undefined keeps the indexes of the list). */
function parseRoas(raw: NonNullable<TopLevel["roas"]>, c: Collector): Array<Roa | undefined> {
    return raw.map((r, i) => {
        const key = `${NAMESPACE}:roas[${i}]`;
        let prefix: IpPrefix;
        try {
            prefix = IpPrefix.parse(r.prefix);
        } catch (e) {
            c.error(`${key}.prefix`, `${(e as Error).message}: use the ROA's prefix as your RIR lists it`);
            return undefined;
        }
        const bits = prefix.family === 6 ? 128 : 32;
        const maxLength = r.maxLength ?? prefix.length;
        if (maxLength < prefix.length || maxLength > bits) {
            c.error(`${key}.maxLength`, `${maxLength} is out of range: use a max length from the ROA prefix's length /${prefix.length} to /${bits}`);
            return undefined;
        }
        return { prefix, maxLength, asn: r.asn };
    });
}

/** One prefix's RPKI state from one origin against the ROAs; an invalid one is an error on the ROA that makes it so. */
function rpkiFinding(p: IpPrefix, prefixKey: string, asn: number, origin: OriginSeen, known: Roa[], roaKey: (k: number) => string,
    c: Collector): Pick<RpkiFinding, "state" | "detail"> {
    const text = p.toString();
    const o = origin.asn;
    const verdict = validateOrigin(p, o, known);
    if (verdict.state === "valid") return { state: "valid", detail: `ROA ${describeRoa(known[verdict.matchedBy!])}` };
    // With a private ASN, say whose origin the Internet sees, and why it is not ours.
    const seen = o === asn ? "" : ` (anycast:asn AS${asn} is private: ${upstreamName(o)} removes it on export for ` +
        `PoP${origin.pops.length === 1 ? "" : "s"} ${origin.pops.join(", ")})`;
    if (verdict.state === "not-found") {
        c.warn(prefixKey, `no ROA in anycast:roas covers ${text}${o === asn ? "" : ` from AS${o}`}${seen}: the announcement is RPKI NotFound, and networks that accept only RPKI-valid routes drop it; publish a ROA for AS${o} with max length ≥ ${p.length}`);
        return { state: "not-found", detail: "no listed ROA covers it" };
    }
    const why = `the announcement of ${text} by AS${o}${seen} is RPKI-invalid, and most of the Internet drops RPKI-invalid routes`;
    for (const m of verdict.mismatches) {
        const roa = known[m.roa];
        if (m.reason === "maxLength") {
            c.error(`${roaKey(m.roa)}.maxLength`, `/${roa.maxLength} is shorter than the announced /${p.length} (${prefixKey}): ${why}; set the ROA's max length to ${p.length} at your RIR`);
        } else if (m.reason === "asn") {
            const origin_ = o === asn ? `the origin anycast:asn AS${asn}` : `the origin AS${o}`;
            c.error(`${roaKey(m.roa)}.asn`, `AS${roa.asn} is not ${origin_}: ${why}; publish a ROA for AS${o}`);
        } else {
            c.error(`${roaKey(m.roa)}.asn`, `an AS0 ROA (RFC 6483) says ${roa.prefix} must never be announced: ${why}; remove it at your RIR`);
        }
    }
    return { state: "invalid", detail: verdict.mismatches.map((m) => `ROA ${describeRoa(known[m.roa])}: ${m.reason}`).join("; ") };
}
