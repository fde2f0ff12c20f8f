/**
 * The config's one definition: its shapes (zod, pass 1 of validation), each field with its
 * default, what it accepts and what it means. The README's config reference, Pulumi.yaml's config
 * block and AnycastNetworkArgs are generated from it (config-reference.ts, `npm run docs`). The
 * semantic checks (pass 2) are config-routing.ts (the announcement), config-hosts.ts (the mesh and
 * the hosts), origins.ts (origins and failover) and config-service.ts (the rest); config.ts drives.
 */
import { z } from "zod";
import { accepts } from "./config-issues";
import { VULTR_ASN, VULTR_BGP } from "./vultr";
import { defOf, documented, fieldDoc, unwrapped } from "./config-field";
import { RESERVED_POP_PORTS_TEXT } from "./pop-ports";

/** The config namespace: keys are `anycast:<key>`. */
export const NAMESPACE = "anycast";

// ---------------------------------------------------------------------------------------------
// Shapes. Each field is defined here once: its type and validation (zod), what it accepts (the
// phrase its errors end with, `accepts`), its default, and what it means (`documented`). The
// README's config reference, Pulumi.yaml's config block and AnycastNetworkArgs' doc comments are
// generated from these by `npm run docs` (config-reference.ts).
// ---------------------------------------------------------------------------------------------

const name = () => accepts(z.string().regex(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$/),
    "1 to 32 characters of a-z, 0-9 and '-', starting with a letter (it names hosts, files and BIRD protocols)");
const port = accepts(z.number().int().min(1).max(65535), "a port number from 1 to 65535");
const flag = () => accepts(z.boolean(), "true or false");
const positiveInt = accepts(z.number().int().positive(), "a whole number of seconds, 1 or more");
const cidrText = (what: string) => accepts(z.string(), what);

const hostShape = accepts(z.strictObject({
    address: documented(accepts(z.string(), "the server's IPv6 or IPv4 address (SSH, WireGuard and BGP use it)"),
        { type: "address", meaning: "the server's IPv6 (or IPv4) address: SSH, WireGuard and BGP use it" }),
    address4: documented(accepts(z.string(), "the server's IPv4 address, for IPv4 BGP sessions").optional(),
        { type: "address", meaning: "its IPv4 address, for IPv4 BGP sessions and `deploy.sshFamily: ipv4`" }),
    user: documented(accepts(z.string().regex(/^[a-z_][a-z0-9_-]*$/), "a Unix user name such as root or deploy").default("root"),
        { meaning: "the user the pushes log in as (`sudo -n` when not root)" }),
    port: documented(port.default(22), { type: "port", meaning: "its SSH port" }),
}), "{address, address4?, user?, port?} of a server you already run");

const bfdShape = accepts(z.union([
    z.boolean(),
    z.strictObject({
        interval: documented(accepts(z.number().int().min(10).max(10000), "milliseconds from 10 to 10000").default(100),
            { type: "milliseconds", meaning: "BFD's transmit and receive interval" }),
        multiplier: documented(accepts(z.number().int().min(1).max(255), "a count from 1 to 255").default(5),
            { type: "count", meaning: "missed BFD packets before the session is declared down" }),
    }),
]), "true, false or {interval: milliseconds, multiplier: count}");

export const bgpShape = accepts(z.strictObject({
    neighbor: documented(accepts(z.string(), `the upstream's IPv6 address (Vultr: ${VULTR_BGP.neighbor})`).default(VULTR_BGP.neighbor),
        { type: "address", meaning: "the BGP neighbour (IPv6)" }),
    neighbor4: documented(accepts(z.string(), `the upstream's IPv4 address (Vultr: ${VULTR_BGP.neighbor4})`).default(VULTR_BGP.neighbor4),
        { type: "address", meaning: "the BGP neighbour of the IPv4 session (with an IPv4 prefix)" }),
    remoteAsn: documented(accepts(z.number().int(), `the upstream's AS number (Vultr: ${VULTR_BGP.remoteAsn})`).default(VULTR_BGP.remoteAsn),
        { meaning: "the upstream's AS" }),
    publicAsn: documented(accepts(z.number().int(), `the public AS the upstream exports routes from (Vultr: ${VULTR_ASN})`).optional(),
        { type: "integer", default: `\`${VULTR_ASN}\` on a Vultr instance, unset on a host`,
            meaning: "the public AS the upstream exports routes from; on an existing host, set it to accept a private `asn` " +
                "(the upstream removes it and becomes the origin the Internet sees, as Vultr does)" }),
    multihop: documented(accepts(z.number().int().min(0).max(255), "a TTL from 0 (directly connected) to 255").default(VULTR_BGP.multihop),
        { meaning: "eBGP multihop TTL; 0 = directly connected" }),
    staticRoute: documented(flag().default(true), { meaning: "a /128 route to the neighbour via the default gateway" }),
    holdTime: documented(accepts(z.number().int(), "0 (no keepalives) or 3 to 65535 seconds").default(9),
        { type: "seconds", meaning: "the BGP hold time (negotiated down to the smaller side's); 0 = no keepalives" }),
    keepaliveTime: documented(accepts(z.number().int(), "seconds, shorter than holdTime (a third of it is usual)").optional(),
        { type: "seconds", default: "`holdTime` ÷ 3", meaning: "the BGP keepalive interval" }),
    errorWaitTime: documented(accepts(z.union([positiveInt, z.tuple([positiveInt, positiveInt])]), "seconds, or [min, max] seconds")
        .default([5, 30]), { type: "seconds or `[min, max]`", meaning: "the wait before reconnecting after a session error (BIRD's own default: 60-300)" }),
    connectRetryTime: documented(accepts(z.number().int().min(1), "seconds, 1 or more").default(5),
        { type: "seconds", meaning: "the wait between connection attempts while the session is down" }),
    bfd: documented(bfdShape.default(false), { type: "bool or `{interval, multiplier}`",
        meaning: "BFD on the session (`true` = 100 ms × 5); only where the peer runs BFD" }),
    password: documented(accepts(z.string(), "the session's TCP-MD5 password").optional(),
        { secret: true, default: "`bgpPassword`", meaning: "this PoP's TCP-MD5 password" }),
}), "{neighbor, remoteAsn, multihop, holdTime, bfd, password, ...}");

/** The Vultr instance fields shared by PoPs and the origins. */
const vultrHostFields = {
    region: documented(accepts(z.string().min(1), "a Vultr region id such as lax, ams or sgp").optional(),
        { default: "none: set `region` or `host`", meaning: "the Vultr region of a new instance, checked against Vultr's list shipped with the package" }),
    plan: documented(accepts(z.string().min(1), "a Vultr plan id such as vc2-1c-1gb").default("vc2-1c-1gb"),
        { meaning: "the new instance's Vultr plan, checked against the shipped list" }),
    osId: documented(accepts(z.number().int().positive(), "a Vultr OS id (a positive whole number; default Debian 12)").optional(),
        { type: "integer", default: "Debian 12", meaning: "the new instance's Vultr OS id" }),
    allowUnknownRegion: documented(flag().default(false),
        { meaning: "accept a `region` that is not in the shipped list (one newer than the package)" }),
    allowUnknownPlan: documented(flag().default(false),
        { meaning: "accept a `plan` that is not in the shipped list (one newer than the package)" }),
    host: documented(hostShape.optional(), { type: "object", meaning: "an existing server, instead of a new Vultr instance" }),
    meshAddress: documented(accepts(z.string(), "an address inside mesh.cidr").optional(),
        { type: "address", default: "planned", meaning: "pin this host's mesh address (inside `mesh.cidr`)" }),
};

export const popShape = accepts(z.strictObject({
    name: documented(name(), { meaning: "`a-z0-9-`: names the host, its files and BIRD protocols" }),
    ...vultrHostFields,
    bgp: documented(bgpShape.default(bgpShape.parse({})), { meaning: "the PoP's BGP session with its upstream" }),
    communities: documented(accepts(z.array(accepts(z.string(), `a community such as "64600:6939" (ASN:VALUE) or "206924:1:2" (large)`)),
        `a list of communities such as ["64600:6939"]`).default([]),
    { meaning: "`ASN:VALUE` or large `ASN:D1:D2` communities on the announcement, e.g. Vultr's `64600:6939` (do not announce to HE)" }),
    prepend: documented(accepts(z.number().int().min(0).max(3), "0 to 3 extra prepends").default(0),
        { type: "0-3", meaning: "extra copies of your ASN on this PoP's announcement (refused with a private `asn`: " +
            "use Vultr's communities, see \"Steering\")" }),
    origins: documented(accepts(z.array(accepts(z.string(), "the name of an origin")), "a list of origin names, most preferred first, such as [origin, origin2]")
        .optional(), { type: "list of origin names", default: "measured",
        meaning: "this PoP's order of preference; unset, the agent prefers the shortest measured mesh round trip, " +
            "and moves only for a path a fifth and 1 ms faster" }),
    drained: documented(accepts(z.boolean(), "true or false").default(false),
        { meaning: "take the PoP out: its agent announces with GRACEFUL_SHUTDOWN for `health.drainSeconds`, then withdraws, " +
            "until set back to `false`; an update of that PoP's agent settings only, nothing replaced" }),
}), "{name, region or host, bgp?, communities?, prepend?, origins?, drained?, ...}");

export const originShape = accepts(z.strictObject({
    name: documented(name(), { meaning: "`a-z0-9-`: names the host and its files" }),
    ...vultrHostFields,
    port: documented(accepts(z.number().int().min(1).max(65535), "the origin service's port, 1 to 65535"),
        { type: "port", meaning: "the port the origin's service listens on, on its mesh address" }),
    healthPath: documented(accepts(z.string().regex(/^\/[\x21-\x7e]*$/), "an absolute URL path without spaces, such as /healthz").default("/"),
        { meaning: "the path the PoPs' agents check on the origin (a 2xx answer is healthy)" }),
}), "{name, host or region, port, healthPath?}");

/** `failover.staleCache` as an object (`true` stands for its defaults). */
export const staleCacheShape = z.strictObject({
    maxSize: documented(accepts(z.number().int().min(1).max(1_000_000), "megabytes from 1 to 1000000").default(256),
        { type: "megabytes", meaning: "the cache's size on disk" }),
    validSeconds: documented(accepts(z.number().int().min(0).max(31_536_000), "whole seconds from 0 to 31536000").default(0),
        { type: "seconds", meaning: "above 0, responses without caching headers are cached this long too " +
            "(only for pages that are the same for every visitor)" }),
    keepSeconds: documented(accepts(z.number().int().min(1).max(31_536_000), "whole seconds from 1 to 31536000").default(86400),
        { type: "seconds", meaning: "how long a response may be served stale" }),
});

/** `anycast:failover`: what the PoPs do when origins fail (origins.ts checks it). */
export const failoverShape = accepts(z.strictObject({
    relay: documented(accepts(z.boolean(), "true or false (default: true in a full mesh, false in a hub mesh)").optional(),
        { type: "bool", default: "`true` (full mesh)", meaning: "relay through another PoP when this PoP reaches no origin itself; needs `mesh.topology: full`" }),
    relayPort: documented(accepts(z.number().int().min(1).max(65535), `a port number from 1 to 65535, not ${RESERVED_POP_PORTS_TEXT}`).default(8081),
        { type: "port", meaning: "each PoP's relay and status endpoint on its mesh address (open to the mesh only)" }),
    retryAfter: documented(accepts(z.number().int().min(0).max(86400), "whole seconds from 0 to 86400").default(5),
        { type: "seconds", meaning: "`Retry-After` of the 503 every PoP answers while no origin is reachable" }),
    staleCache: documented(accepts(z.union([
        z.boolean(),
        staleCacheShape,
    ]), "true, false or {maxSize: megabytes, validSeconds, keepSeconds}").default(false),
    { type: "bool or `{maxSize, validSeconds, keepSeconds}`",
        meaning: "serve stale content while no origin answers (`true` = every default below); requests with `Authorization` bypass it" }),
}), "{relay?, relayPort?, retryAfter?, staleCache?}");

const meshShape = accepts(z.strictObject({
    cidr: documented(cidrText("a private CIDR such as 10.77.0.0/24 or fd00:77::/64"),
        { type: "CIDR", meaning: "the mesh's private network (RFC 1918 or fd00::/8); the first origin gets its first address" }),
    port: documented(port.default(51820), { type: "port", meaning: "WireGuard's UDP port on every host" }),
    topology: documented(accepts(z.enum(["full", "hub"]), "full (every node peers with every other) or hub (PoPs peer with the origin)").default("full"),
        { meaning: "`full`: every host peers with every other; `hub`: the PoPs peer only with the first origin" }),
    mtu: documented(accepts(z.number().int().min(1280).max(9000), "an MTU from 1280 to 9000").default(1420),
        { meaning: "the tunnels' MTU" }),
    persistentKeepalive: documented(accepts(z.number().int().min(0).max(3600), "seconds from 0 (off) to 3600").default(25),
        { type: "seconds", meaning: "WireGuard's keepalive (0 = off)" }),
}), "{cidr, port?, topology?, mtu?, persistentKeepalive?}");

const frontDoorShape = accepts(z.strictObject({
    zone: documented(accepts(z.string(), "the Cloudflare zone's name, such as example.com").optional(),
        { default: "`zone` or `zoneId`", meaning: "the Cloudflare zone, by name" }),
    zoneId: documented(accepts(z.string().regex(/^[0-9a-f]{32}$/), "a 32-character hex Cloudflare zone id").optional(),
        { default: "`zone` or `zoneId`", meaning: "the Cloudflare zone, by id" }),
    hostname: documented(accepts(z.string(), "a DNS name such as www (relative to the zone) or www.example.com"),
        { type: "name", meaning: "the proxied CNAME visitors use (relative to the zone, or a full name)" }),
    anycastName: documented(accepts(z.string(), "a DNS name such as anycast (relative to the zone)").default("anycast"),
        { type: "name", meaning: "the unproxied AAAA of the anycast address, which the CNAME points to" }),
    sslMode: documented(accepts(z.enum(["strict", "unmanaged"]), "strict or unmanaged").default("strict"),
        { meaning: "`strict` sets the zone to Full (strict); `unmanaged` leaves it alone" }),
}), "{zone or zoneId, hostname, anycastName?, sslMode?}");

const seconds = (max: number) => accepts(z.number().positive().max(max), `seconds, more than 0 and at most ${max}`);
const count = (min: number, max: number) => accepts(z.number().int().min(min).max(max), `a count from ${min} to ${max}`);

const healthShape = accepts(z.strictObject({
    interval: documented(seconds(60).default(0.2), { type: "seconds", meaning: "the agent's check period" }),
    rise: documented(count(1, 100).default(3), { type: "count", meaning: "good checks in a row to announce" }),
    fall: documented(count(1, 100).default(2), { type: "count", meaning: "bad checks in a row to withdraw" }),
    timeout: documented(seconds(30).default(0.5), { type: "seconds", meaning: "each check's timeout" }),
    drainSeconds: documented(accepts(z.number().min(0).max(3600), "seconds from 0 to 3600").default(3),
        { type: "seconds", meaning: "the GRACEFUL_SHUTDOWN period before a drain withdraws" }),
    maxWithdrawalsPerHour: documented(count(1, 1000).default(3), { type: "count",
        meaning: "flap damping: after this many withdrawals within an hour the PoP stays withdrawn until the oldest is an hour old " +
            "(or `anycast-health release`); above 3 warns, since 4 quick flaps can reach the 6000 penalty at which upstreams " +
            "suppress the prefix (RFC 7196)" }),
    statusPort: documented(accepts(z.number().int().min(1).max(65535), `a port number from 1 to 65535, not ${RESERVED_POP_PORTS_TEXT} or failover.relayPort`).default(9180),
        { type: "port", meaning: "the agent's status and metrics port: `[::1]` for the operator, the mesh address and the PoP's public " +
            "address for the other PoPs' agents only (firewalled to them)" }),
}), "{interval, rise, fall, timeout, drainSeconds, maxWithdrawalsPerHour, statusPort}");

const asnNumber = accepts(z.number().int().min(0).max(4294967295), "an AS number from 0 to 4294967295");

/** A ROA as the RIR portal lists it; maxLength defaults to the prefix's length (RFC 6482). */
const roaShape = accepts(z.strictObject({
    prefix: documented(cidrText("the ROA's prefix, such as 2001:db8::/32"), { type: "CIDR", meaning: "the ROA's prefix" }),
    maxLength: documented(accepts(z.number().int(), "the ROA's max length, such as 48").optional(),
        { type: "integer", default: "the prefix's length", meaning: "the ROA's max length" }),
    asn: documented(asnNumber, { meaning: "the ROA's AS (0: AS0, never valid)" }),
}), "{prefix, maxLength?, asn}");

const cidrList = (what: string) => accepts(z.array(cidrText(`a CIDR such as ${what}`)), `a list of CIDRs such as [${what}]`);

const firewallShape = accepts(z.strictObject({
    adminCidrs: documented(cidrList("203.0.113.0/24").default([]),
        { type: "list of CIDRs", default: "`[]` (warns: SSH open)", meaning: "who may SSH to the hosts" }),
    httpSources: documented(cidrList("2400:cb00::/32").optional(),
        { type: "list of CIDRs", default: "Cloudflare's ranges", meaning: "who may reach 80/443 on the anycast address" }),
}), "{adminCidrs?, httpSources?}");

/** host:port, with an IPv6 address in brackets. */
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

const monitoringShape = accepts(z.strictObject({
    origin: documented(accepts(z.string().min(1), "the name of an origin, whose host runs Prometheus"),
        { type: "origin name", meaning: "the origin whose host runs Debian's Prometheus (in a hub mesh, the hub)" }),
    scrapeInterval: documented(accepts(z.number().min(1).max(300), "seconds from 1 to 300").default(15),
        { type: "seconds", meaning: "between scrapes and rule evaluations; the alerts' `for` is counted in scrapes" }),
    retentionDays: documented(count(1, 3650).default(15), { type: "days", meaning: "how long Prometheus keeps samples" }),
    alertmanagers: documented(accepts(z.array(accepts(z.string().regex(HOST_PORT), "host:port, such as alertmanager.example.com:9093 or [2001:db8::9]:9093")),
        "a list of host:port").default([]), { type: "list of `host:port`", meaning: "the Alertmanagers to send the alerts to" }),
}), "{origin, scrapeInterval?, retentionDays?, alertmanagers?}");

export const deployShape = accepts(z.strictObject({
    sshFamily: documented(accepts(z.enum(["auto", "ipv6", "ipv4"]), "auto, ipv6 or ipv4").default("auto"),
        { meaning: "the address family the pushes' SSH uses on every host: `auto` takes the family of `deploy.deployerAddress`, " +
            "else IPv6; GitHub-hosted runners have no IPv6, so use `ipv4` there (an existing host then needs `host.address4`)" }),
    deployerAddress: documented(accepts(z.string(), "the IPv6 or IPv4 address the hosts see your SSH come from").optional(),
        { type: "address", default: "unset, or `$ANYCAST_DEPLOYER_ADDRESS`",
            meaning: "the address the hosts see your SSH come from; validation fails when it is outside `firewall.adminCidrs`, " +
                "before anything is created" }),
}), "{sshFamily?, deployerAddress?}");

/** Each top-level key, validated on its own so one broken key does not mask the others. */
export const topLevel = {
    asn: documented(accepts(z.number().int(), "your AS number, a whole number from 1 to 4294967294"),
        { meaning: "your ASN (the origin of the announcement), or the private ASN Vultr assigned you (see \"BGP at Vultr\")" }),
    prefix: documented(accepts(z.union([z.string(), z.array(z.string()).min(1)]),
        "a prefix such as 2001:db8:100::/48, or a list of prefixes with the IPv6 one first"),
    { type: "string or list", meaning: "the prefix announced from every PoP, or a list of them: IPv6 first, ≤ /48 (IPv4 ≤ /24)" }),
    address: documented(accepts(z.string(), "an IPv6 address inside the prefix, such as 2001:db8:100::1").optional(),
        { type: "address", default: "the prefix's `::1`", meaning: "the anycast service address (a /128 on every PoP's `lo`)" }),
    bgpPassword: documented(accepts(z.string(), "the TCP-MD5 password Vultr gave you (pulumi config set --secret)").optional(),
        { secret: true, default: "required, unless every PoP sets `bgp.password`",
            meaning: "the TCP-MD5 password of the BGP sessions, from the BGP page of my.vultr.com (≤ 80 bytes, no quotes or backslashes)" }),
    sshPublicKeys: documented(accepts(z.array(accepts(z.string().regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/),
        `an OpenSSH public key line such as "ssh-ed25519 AAAA... you@host"`)), "a list of OpenSSH public key lines").default([]),
    { meaning: "OpenSSH public keys that may log in to every host: a new instance's cloud-init, then a pushed, managed block in the " +
        "login user's `authorized_keys` (a change never replaces an instance; a removed key is revoked)" }),
    pops: documented(accepts(z.array(popShape).min(1), "a list of at least one PoP {name, region or host}"),
        { meaning: "the points of presence, in mesh-address order (append new ones at the end)" }),
    origin: documented(originShape.optional(), { type: "object", default: "set `origin` or `origins`",
        meaning: "the origin server behind the mesh (one), as stacks have always had it" }),
    origins: documented(accepts(z.array(originShape).min(1), "a list of at least one origin {name, host or region, port, healthPath?}").optional(),
        { sameAs: "origin", type: "list of what `origin` takes", default: "set `origin` or `origins`",
            meaning: "several origins: the first takes the mesh's first address (and is the hub of a hub mesh), further ones count down " +
                "from the end of `mesh.cidr`, so appending a PoP moves no origin; each PoP prefers the nearest and fails over to the others" }),
    failover: documented(failoverShape.default(failoverShape.parse({})), { meaning: "what the PoPs do when origins fail" }),
    mesh: documented(meshShape, { meaning: "the WireGuard mesh between the PoPs and the origins" }),
    frontDoor: documented(frontDoorShape, { meaning: "the Cloudflare records in front of the network" }),
    health: documented(healthShape.default(healthShape.parse({})), { meaning: "the health agent's timing, flap damping and status port" }),
    firewall: documented(firewallShape.default(firewallShape.parse({})), { meaning: "who may reach the hosts" }),
    deploy: documented(deployShape.default(deployShape.parse({})), { meaning: "how the deploy's pushes reach the hosts" }),
    roas: documented(accepts(z.array(roaShape), "a list of ROAs {prefix, maxLength?, asn}").optional(),
        { default: "unchecked (warns for a public prefix)", meaning: "the ROAs published at your RIR; an announcement they make RPKI-invalid " +
            "(RFC 6811: max length shorter than the prefix, another ASN, AS0) is an error, one they do not cover a warning" }),
    monitoring: documented(monitoringShape.optional(), { type: "object", default: "none",
        meaning: "Prometheus on an origin, scraping every PoP's agent and exporters over the mesh with the bundle's alert rules " +
            "(`anycast render` writes the bundle to `monitoring/` either way); see \"Monitoring\"" }),
    /** Draining every PoP takes the service down: refused unless this says it is meant. */
    allowAllDrained: documented(accepts(z.boolean(), "true or false").default(false),
        { meaning: "allow `pops[].drained` on every PoP at once (the prefix withdrawn everywhere: the service is down)" }),
} as const;

/**
 * `anycast:sshPrivateKey`: a key of the config, but not of the shapes the pass-1 parse walks
 * (config.ts checks it on its own, and it never enters the plain spec).
 */
export const sshPrivateKeyShape = documented(accepts(z.string(), "an OpenSSH private key (pulumi config set --secret anycast:sshPrivateKey < key)"),
    { secret: true, meaning: "the private key the config pushes log in with (`pulumi config set --secret anycast:sshPrivateKey < ~/.ssh/id_ed25519`)" });

/** Every `anycast:` key, in the order the reference documents them. */
export const CONFIG_SCHEMA: Readonly<Record<string, z.ZodType>> = (() => {
    const { asn, prefix, address, bgpPassword, ...rest } = topLevel;
    return { asn, prefix, address, bgpPassword, sshPrivateKey: sshPrivateKeyShape, ...rest };
})();

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
export const SECRET_KEYS = Object.keys(CONFIG_SCHEMA).filter((k) => fieldDoc(CONFIG_SCHEMA[k])?.secret);
/** Every key `anycast:` understands, each once. */
export const CONFIG_KEYS = Object.keys(CONFIG_SCHEMA);

/**
 * Keys whose value is text even when it looks like JSON (a password "12345" stays a string): the
 * Pulumi CLI hands every value to the program as text, and stacks/network/config.ts decodes it.
 */
export const TEXT_KEYS = CONFIG_KEYS.filter((k) => defOf(unwrapped(CONFIG_SCHEMA[k])).type === "string");

export function keyPath(top: string, path: ReadonlyArray<PropertyKey>): string {
    let key = `${NAMESPACE}:${top}`;
    for (const p of path) key += typeof p === "number" ? `[${p}]` : `.${String(p)}`;
    return key;
}
