/**
 * The config's shapes (zod), pass 1 of validation: each field with its default and what it
 * accepts, in the words the README's config reference uses. The semantic checks are in
 * config.ts (hosts, mesh, service) and config-routing.ts (the announcement).
 */
import { z } from "zod";
import { accepts } from "./config-issues";
import { VULTR_ASN, VULTR_BGP } from "./vultr";
import { failoverShape } from "./origins";
import { RESERVED_POP_PORTS_TEXT } from "./pop-ports";

/** The config namespace: keys are `anycast:<key>`. */
export const NAMESPACE = "anycast";

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

export const bgpShape = accepts(z.strictObject({
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

export const popShape = accepts(z.strictObject({
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

export const originShape = accepts(z.strictObject({
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
    statusPort: accepts(z.number().int().min(1).max(65535), `a port number from 1 to 65535, not ${RESERVED_POP_PORTS_TEXT} or failover.relayPort`).default(9180),
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

/** host:port, with an IPv6 address in brackets. */
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

const monitoringShape = accepts(z.strictObject({
    origin: accepts(z.string().min(1), "the name of an origin, whose host runs Prometheus"),
    scrapeInterval: accepts(z.number().min(1).max(300), "seconds from 1 to 300").default(15),
    retentionDays: count(1, 3650).default(15),
    alertmanagers: accepts(z.array(accepts(z.string().regex(HOST_PORT), "host:port, such as alertmanager.example.com:9093 or [2001:db8::9]:9093")),
        "a list of host:port").default([]),
}), "{origin, scrapeInterval?, retentionDays?, alertmanagers?}");

/** Each top-level key, validated on its own so one broken key does not mask the others. */
export const deployShape = accepts(z.strictObject({
    sshFamily: accepts(z.enum(["auto", "ipv6", "ipv4"]), "auto, ipv6 or ipv4").default("auto"),
    deployerAddress: accepts(z.string(), "the IPv6 or IPv4 address the hosts see your SSH come from").optional(),
}), "{sshFamily?, deployerAddress?}");

export const topLevel = {
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
    monitoring: monitoringShape.optional(),
    /** Draining every PoP takes the service down: refused unless this says it is meant. */
    allowAllDrained: accepts(z.boolean(), "true or false").default(false),
} as const;

export type TopLevel = { [K in keyof typeof topLevel]: z.output<(typeof topLevel)[K]> };
/** The `anycast:` config as a user writes it (namespace stripped, defaults optional): AnycastNetwork's args. */
export type AnycastConfigInput = z.input<z.ZodObject<typeof topLevel>> & { sshPrivateKey?: string };
export type PopFields = z.output<typeof popShape>;
/**
 * What pass 1 accepted. `pops` holds each PoP that parsed, by its index (undefined where it did
 * not), so the PoPs without shape errors still get their semantic checks.
 */
export type Parsed = Partial<Omit<TopLevel, "pops">> & { pops: Array<PopFields | undefined> };
export type HostFields = { region?: string; plan: string; osId?: number; allowUnknownRegion: boolean; allowUnknownPlan: boolean;
    host?: z.output<typeof hostShape> };

/** Keys that hold secrets: Pulumi config must mark them secret. */
export const SECRET_KEYS = ["bgpPassword", "sshPrivateKey"];
/** Every key `anycast:` understands, each once. */
export const CONFIG_KEYS = [...new Set([...Object.keys(topLevel), ...SECRET_KEYS])];

/** The shapes, for tests and docs checks that walk every field. */
export const CONFIG_SHAPES: Readonly<Record<string, z.ZodType>> = topLevel;

export function keyPath(top: string, path: ReadonlyArray<PropertyKey>): string {
    let key = `${NAMESPACE}:${top}`;
    for (const p of path) key += typeof p === "number" ? `[${p}]` : `.${String(p)}`;
    return key;
}
