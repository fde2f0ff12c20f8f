/**
 * Stack config -> validated AnycastSpec.
 *
 * Two passes, so a user sees every problem at once: zod checks each top-level key's shape on
 * its own (a broken `pops` does not hide a broken `mesh`), then semantic checks run across the
 * keys that parsed (prefix lengths, overlaps, uniqueness, communities, ...). Every issue names
 * its config key the way `pulumi config` spells it (`anycast:pops[1].bgp.holdTime`).
 */
import { z } from "zod";
import {
    contains, familyOf, formatCidr, isIp, isPrivateRange, nthAddress, overlaps, parseCidr, rangeOf,
    usableHosts, Cidr, planMeshAddresses, canonical,
} from "./addressing";
import {
    AnycastSpec, BgpSettings, Community, ConfigIssue, DeploySpec, HostSpec, PopSpec, VULTR_BGP, HealthSpec, RoaSpec, RpkiFinding,
} from "./model";
import { describeRoa, Roa, validateOrigin } from "./rpki";

export const NAMESPACE = "anycast";

/** Thrown when the config has errors; `issues` lists them all. */
export class ConfigError extends Error {
    constructor(readonly issues: ConfigIssue[]) {
        super(`invalid anycast config (${issues.length} error${issues.length === 1 ? "" : "s"}):\n` +
            issues.map((i) => `  - ${i.key}: ${i.message}`).join("\n"));
        this.name = "ConfigError";
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes. Defaults live here, next to the field they belong to, and are documented in README.md.
// ---------------------------------------------------------------------------------------------

const name = z.string().regex(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$/,
    "must be 1-32 characters of a-z, 0-9 and '-', starting with a letter (it names hosts, files and BIRD protocols)");
const port = z.number().int().min(1).max(65535);
const seconds = z.number().positive();

const hostShape = z.strictObject({
    address: z.string(),
    address4: z.string().optional(),
    user: z.string().regex(/^[a-z_][a-z0-9_-]*$/, "must be a Unix user name").default("root"),
    port: port.default(22),
});

const bfdShape = z.union([
    z.boolean(),
    z.strictObject({
        interval: z.number().int().min(10).max(10000).default(100).describe("milliseconds"),
        multiplier: z.number().int().min(1).max(255).default(5),
    }),
]);

const bgpShape = z.strictObject({
    neighbor: z.string().default(VULTR_BGP.neighbor),
    neighbor4: z.string().default(VULTR_BGP.neighbor4),
    remoteAsn: z.number().int().default(VULTR_BGP.remoteAsn),
    multihop: z.number().int().min(0).max(255).default(VULTR_BGP.multihop),
    staticRoute: z.boolean().default(true),
    holdTime: z.number().int().default(9),
    keepaliveTime: z.number().int().optional(),
    errorWaitTime: z.union([z.number().int().positive(), z.tuple([z.number().int().positive(), z.number().int().positive()])])
        .default([5, 30]),
    connectRetryTime: z.number().int().min(1).default(5),
    bfd: bfdShape.default(false),
    password: z.string().optional(),
});

const popShape = z.strictObject({
    name,
    region: z.string().regex(/^[a-z]{3,4}$/, "must be a Vultr region id such as lax, ams or sgp").optional(),
    plan: z.string().min(1).default("vc2-1c-1gb"),
    osId: z.number().int().positive().optional(),
    host: hostShape.optional(),
    bgp: bgpShape.default(bgpShape.parse({})),
    communities: z.array(z.string()).default([]),
    prepend: z.number().int().min(0).max(3).default(0),
    meshAddress: z.string().optional(),
});

const originShape = z.strictObject({
    name,
    host: hostShape.optional(),
    region: z.string().regex(/^[a-z]{3,4}$/, "must be a Vultr region id such as fra").optional(),
    plan: z.string().min(1).default("vc2-1c-1gb"),
    osId: z.number().int().positive().optional(),
    port,
    healthPath: z.string().regex(/^\/[\x21-\x7e]*$/, "must be an absolute URL path without spaces").default("/"),
    meshAddress: z.string().optional(),
});

const meshShape = z.strictObject({
    cidr: z.string(),
    port: port.default(51820),
    topology: z.enum(["full", "hub"]).default("full"),
    mtu: z.number().int().min(1280).max(9000).default(1420),
    persistentKeepalive: z.number().int().min(0).max(3600).default(25),
});

const frontDoorShape = z.strictObject({
    zone: z.string().optional(),
    zoneId: z.string().regex(/^[0-9a-f]{32}$/, "must be a 32-character hex Cloudflare zone id").optional(),
    hostname: z.string(),
    anycastName: z.string().default("anycast"),
    sslMode: z.enum(["strict", "unmanaged"]).default("strict"),
});

const healthShape = z.strictObject({
    interval: seconds.max(60).default(0.2),
    rise: z.number().int().min(1).max(100).default(3),
    fall: z.number().int().min(1).max(100).default(2),
    timeout: seconds.max(30).default(0.5),
    drainSeconds: z.number().min(0).max(3600).default(3),
    maxWithdrawalsPerHour: z.number().int().min(1).max(1000).default(3),
});

const asnNumber = z.number().int().min(0).max(4294967295);

/** A ROA as the RIR portal lists it; maxLength defaults to the prefix's length (RFC 6482). */
const roaShape = z.strictObject({
    prefix: z.string(),
    maxLength: z.number().int().optional(),
    asn: asnNumber,
});

const firewallShape = z.strictObject({
    adminCidrs: z.array(z.string()).default([]),
    httpSources: z.array(z.string()).optional(),
});

const deployShape = z.strictObject({
    sshFamily: z.enum(["auto", "ipv6", "ipv4"]).default("auto"),
    deployerAddress: z.string().optional(),
});

/** Each top-level key, validated on its own so one broken key does not mask the others. */
const topLevel = {
    asn: z.number().int(),
    prefix: z.union([z.string(), z.array(z.string()).min(1)]),
    address: z.string().optional(),
    bgpPassword: z.string().optional(),
    sshPublicKeys: z.array(z.string().regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/,
        "must be an OpenSSH public key line")).default([]),
    pops: z.array(popShape).min(1, "needs at least one PoP"),
    origin: originShape,
    mesh: meshShape,
    frontDoor: frontDoorShape,
    health: healthShape.default(healthShape.parse({})),
    firewall: firewallShape.default(firewallShape.parse({})),
    deploy: deployShape.default(deployShape.parse({})),
    roas: z.array(roaShape).optional(),
} as const;

type TopLevel = { [K in keyof typeof topLevel]: z.output<(typeof topLevel)[K]> };

/** The keys `anycast:` understands, for "unknown key" errors. */
export const CONFIG_KEYS = Object.keys(topLevel);
/** Keys that hold secrets: Pulumi config must mark them secret. */
export const SECRET_KEYS = ["bgpPassword", "sshPrivateKey"];

function keyPath(top: string, path: ReadonlyArray<PropertyKey>): string {
    let key = `${NAMESPACE}:${top}`;
    for (const p of path) key += typeof p === "number" ? `[${p}]` : `.${String(p)}`;
    return key;
}

// ---------------------------------------------------------------------------------------------
// Semantic checks.
// ---------------------------------------------------------------------------------------------

const RESERVED_ASNS: Array<[number, number, string]> = [
    [0, 0, "AS 0 is reserved (RFC 7607)"],
    [23456, 23456, "AS 23456 is AS_TRANS (RFC 6793), not a real ASN"],
    [65535, 65535, "AS 65535 is reserved (RFC 7300)"],
    [65552, 131071, "AS 65552-131071 are reserved by IANA"],
    [4294967295, 4294967295, "AS 4294967295 is reserved (RFC 7300)"],
];

export function isPrivateAsn(asn: number): boolean {
    return (asn >= 64512 && asn <= 65534) || (asn >= 4200000000 && asn <= 4294967294);
}

export function isDocumentationAsn(asn: number): boolean {
    return (asn >= 64496 && asn <= 64511) || (asn >= 65536 && asn <= 65551);
}

function asnProblem(asn: number): string | undefined {
    if (!Number.isInteger(asn) || asn < 0 || asn > 4294967295) return "must be an integer from 1 to 4294967294";
    return RESERVED_ASNS.find(([lo, hi]) => asn >= lo && asn <= hi)?.[2];
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
            throw new Error(`"${text}": both halves of a standard community are 16-bit (0-65535); use a large community ASN:DATA1:DATA2 for 32-bit ASNs`);
        }
        return { kind: "standard", asn: nums[0], value: nums[1] };
    }
    if (nums.some((n) => n > 4294967295)) throw new Error(`"${text}": each part of a large community is 32-bit`);
    return { kind: "large", global: nums[0], data1: nums[1], data2: nums[2] };
}

export function formatCommunity(c: Community): string {
    return c.kind === "standard" ? `${c.asn}:${c.value}` : `${c.global}:${c.data1}:${c.data2}`;
}

const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
const LABELS = /^(?=.{1,253}$)[a-z0-9*](?:[a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Resolve a DNS name given relative to the zone ("www") or fully ("www.example.com"). */
function fqdnIn(nameText: string, zone: string | undefined): string | { error: string } {
    const n = nameText.toLowerCase().replace(/\.$/, "");
    if (!LABELS.test(n)) return { error: `"${nameText}" is not a valid DNS name` };
    if (!zone) {
        return DOMAIN.test(n) ? n : { error: `"${nameText}" must be a fully qualified name when only frontDoor.zoneId is given` };
    }
    if (n === zone || n.endsWith(`.${zone}`)) return n;
    if (n.includes(".") && DOMAIN.test(n) && !n.endsWith(`.${zone}`) && n.split(".").length > 2) {
        return { error: `"${nameText}" is not inside the zone ${zone}` };
    }
    return `${n}.${zone}`;
}

interface Collector {
    error(key: string, message: string): void;
    warn(key: string, message: string): void;
}

/** Name of the environment variable that gives the deployer's address when the stack does not (stacks/network/config.ts). */
export const DEPLOYER_ADDRESS_ENV = "ANYCAST_DEPLOYER_ADDRESS";

/**
 * `anycast:deploy`: the SSH family, and the lock-out check. The firewall opens SSH only to
 * adminCidrs on the hosts this stack creates, and every push after the firewall's comes from the
 * deployer, so a deployer outside adminCidrs would lose the hosts in the middle of an update.
 */
function deploySpecFor(raw: z.output<typeof deployShape> | undefined, adminCidrs: string[], c: Collector): DeploySpec | undefined {
    if (!raw) return undefined;
    const key = `${NAMESPACE}:deploy.deployerAddress`;
    let deployerAddress: string | undefined;
    if (raw.deployerAddress !== undefined) {
        if (!isIp(raw.deployerAddress)) {
            c.error(key, `"${raw.deployerAddress}" is not an IP address (set it, or ${DEPLOYER_ADDRESS_ENV}, to the address the hosts see your SSH come from)`);
        } else {
            deployerAddress = canonical(raw.deployerAddress);
        }
    }
    const family: 4 | 6 = raw.sshFamily === "ipv4" ? 4 : raw.sshFamily === "ipv6" ? 6
        : deployerAddress !== undefined ? familyOf(deployerAddress) : 6;
    if (deployerAddress !== undefined) {
        if (familyOf(deployerAddress) !== family) {
            c.error(key, `${deployerAddress} is an IPv${familyOf(deployerAddress)} address, but ${NAMESPACE}:deploy.sshFamily is ${raw.sshFamily}: ` +
                "give the address the hosts see over the family SSH uses");
        } else {
            const cidrs = adminCidrs.flatMap((t) => {
                try {
                    return [parseCidr(t)];
                } catch {
                    return []; // reported on firewall.adminCidrs
                }
            });
            if (adminCidrs.length > 0 && !cidrs.some((cidr) => contains(cidr, deployerAddress!))) {
                c.error(key, `${deployerAddress} is outside ${NAMESPACE}:firewall.adminCidrs (${adminCidrs.join(", ")}): the firewall ` +
                    "would shut this deployer out of every host it creates in the middle of the update; add its network to adminCidrs");
            }
        }
    }
    return { sshFamily: family, deployerAddress };
}

function hostSpecFor(
    key: string, raw: { region?: string; plan: string; osId?: number; host?: z.output<typeof hostShape> },
    sshKeys: string[], c: Collector, sshFamily: 4 | 6 = 6,
): HostSpec | undefined {
    if (raw.region && raw.host) {
        c.error(key, "set either region (a new Vultr instance) or host (an existing server), not both");
        return undefined;
    }
    if (raw.host) {
        const h = raw.host;
        if (!isIp(h.address)) {
            c.error(`${key}.host.address`, `"${h.address}" is not an IP address`);
            return undefined;
        }
        if (h.address4 !== undefined && !(isIp(h.address4) && familyOf(h.address4) === 4)) {
            c.error(`${key}.host.address4`, `"${h.address4}" is not an IPv4 address`);
        }
        if (sshFamily === 4 && familyOf(h.address) !== 4 && h.address4 === undefined) {
            c.error(`${key}.host.address4`, `is required: ${NAMESPACE}:deploy.sshFamily is IPv4, and SSH to this host needs its IPv4 address`);
        }
        return { kind: "existing", address: canonical(h.address), address4: h.address4, user: h.user, port: h.port, sshFamily };
    }
    if (raw.region) return { kind: "vultr", region: raw.region, plan: raw.plan, osId: raw.osId, sshKeys, sshFamily };
    c.error(key, "needs either region (a new Vultr instance) or host (an existing server reached over SSH)");
    return undefined;
}

function bgpSettingsFor(key: string, raw: z.output<typeof bgpShape>, asn: number, password: string | undefined,
    c: Collector): BgpSettings {
    if (!isIp(raw.neighbor) || familyOf(raw.neighbor) !== 6) c.error(`${key}.neighbor`, `"${raw.neighbor}" is not an IPv6 address`);
    if (!isIp(raw.neighbor4) || familyOf(raw.neighbor4) !== 4) c.error(`${key}.neighbor4`, `"${raw.neighbor4}" is not an IPv4 address`);
    const remoteProblem = asnProblem(raw.remoteAsn);
    if (remoteProblem) c.error(`${key}.remoteAsn`, remoteProblem);
    if (raw.remoteAsn === asn) c.error(`${key}.remoteAsn`, `equals our own ASN ${asn}: the upstream session must be eBGP`);
    if (raw.holdTime !== 0 && (raw.holdTime < 3 || raw.holdTime > 65535)) {
        c.error(`${key}.holdTime`, "must be 0 (no keepalives) or 3-65535 seconds (RFC 4271)");
    }
    const keepalive = raw.keepaliveTime ?? Math.max(1, Math.floor(raw.holdTime / 3));
    if (raw.keepaliveTime !== undefined && raw.holdTime !== 0 && raw.keepaliveTime >= raw.holdTime) {
        c.error(`${key}.keepaliveTime`, `must be shorter than holdTime (${raw.holdTime}); a third of it is usual`);
    }
    const errorWait: [number, number] = typeof raw.errorWaitTime === "number"
        ? [raw.errorWaitTime, raw.errorWaitTime] : raw.errorWaitTime;
    if (errorWait[0] > errorWait[1]) c.error(`${key}.errorWaitTime`, "the minimum is larger than the maximum");
    const pw = raw.password ?? password;
    if (pw !== undefined) {
        if (pw.length === 0) c.error(`${key}.password`, "is empty");
        // Linux TCP-MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
        if (Buffer.byteLength(pw) > 80) c.error(raw.password ? `${key}.password` : `${NAMESPACE}:bgpPassword`, "is longer than 80 bytes, the TCP-MD5 key limit");
        if (/[\x00-\x1f"\\]/.test(pw)) c.error(raw.password ? `${key}.password` : `${NAMESPACE}:bgpPassword`, "must not contain quotes, backslashes or control characters (they cannot be written into bird.conf safely)");
    }
    const bfd = raw.bfd === false ? undefined : raw.bfd === true ? { intervalMs: 100, multiplier: 5 }
        : { intervalMs: raw.bfd.interval, multiplier: raw.bfd.multiplier };
    if (bfd && raw.multihop > 0) {
        c.warn(`${key}.bfd`, "BFD over a multihop session needs multihop BFD on the peer too");
    }
    return {
        neighbor: isIp(raw.neighbor) ? canonical(raw.neighbor) : raw.neighbor,
        neighbor4: raw.neighbor4,
        remoteAsn: raw.remoteAsn,
        multihop: raw.multihop,
        staticRouteToNeighbor: raw.staticRoute,
        holdTime: raw.holdTime,
        keepaliveTime: keepalive,
        errorWaitTime: errorWait,
        connectRetryTime: raw.connectRetryTime,
        bfd,
        password: pw ?? "",
    };
}

/**
 * Validate raw config values (as read from `anycast:*`) into an AnycastSpec.
 * Throws ConfigError listing every problem; warnings are returned on the spec.
 */
export function parseAnycastConfig(raw: Record<string, unknown>): AnycastSpec {
    const errors: ConfigIssue[] = [];
    const warnings: ConfigIssue[] = [];
    const c: Collector = {
        error: (key, message) => errors.push({ key, message }),
        warn: (key, message) => warnings.push({ key, message }),
    };

    for (const key of Object.keys(raw)) {
        if (!(key in topLevel) && !SECRET_KEYS.includes(key)) {
            c.error(`${NAMESPACE}:${key}`, `unknown key (known: ${[...CONFIG_KEYS, ...SECRET_KEYS].join(", ")})`);
        }
    }

    // Pass 1: shapes, key by key.
    const parsed: Partial<TopLevel> = {};
    for (const [key, schema] of Object.entries(topLevel)) {
        const value = raw[key];
        if (value === undefined && !(schema instanceof z.ZodOptional) && !(schema instanceof z.ZodDefault)) {
            c.error(`${NAMESPACE}:${key}`, "is required");
            continue;
        }
        const result = (schema as z.ZodType).safeParse(value, { reportInput: true });
        if (result.success) {
            (parsed as Record<string, unknown>)[key] = result.data;
        } else {
            for (const issue of result.error.issues) c.error(keyPath(key, issue.path), describeIssue(issue));
        }
    }

    // Pass 2: meaning, across keys.
    const deploy = deploySpecFor(parsed.deploy, parsed.firewall?.adminCidrs ?? [], c);
    const asn = parsed.asn;
    if (asn !== undefined) {
        const problem = asnProblem(asn);
        if (problem) c.error(`${NAMESPACE}:asn`, problem);
    }

    const prefixes: Cidr[] = [];
    if (parsed.prefix !== undefined) {
        const list = Array.isArray(parsed.prefix) ? parsed.prefix : [parsed.prefix];
        const keyOf = (i: number) => Array.isArray(parsed.prefix) ? `${NAMESPACE}:prefix[${i}]` : `${NAMESPACE}:prefix`;
        list.forEach((text, i) => {
            let p: Cidr;
            try {
                p = parseCidr(text);
            } catch (e) {
                c.error(keyOf(i), (e as Error).message);
                return;
            }
            const limit = p.family === 6 ? 48 : 24;
            if (p.length > limit) {
                c.error(keyOf(i), `/${p.length} is longer than /${limit}, the longest IPv${p.family} prefix the Internet accepts`);
            }
            if (p.family === 6 && p.length < 19) c.error(keyOf(i), `/${p.length} is shorter than any end-site allocation; announce your /48 (or /44 .. /32)`);
            const range = rangeOf(p.network);
            if (range === "documentation") {
                c.warn(keyOf(i), `${text} is a documentation prefix: fine for the lab, never routed on the Internet`);
            } else if (!["unicast", "global"].includes(range)) {
                c.error(keyOf(i), `${text} is ${range} address space, not announceable on the Internet`);
            } else if (asn !== undefined && isPrivateAsn(asn)) {
                c.error(`${NAMESPACE}:asn`, `private ASN ${asn} cannot originate the public prefix ${text}: RPKI/IRR filters drop it; use your registered ASN`);
            }
            if (prefixes.some((q) => overlaps(p, q))) c.error(keyOf(i), `${text} overlaps another configured prefix`);
            prefixes.push(p);
        });
        if (prefixes.length > 0 && prefixes[0].family !== 6) {
            c.error(keyOf(0), "the first prefix must be IPv6: it holds the anycast service address");
        }
    }
    if (asn !== undefined && isDocumentationAsn(asn)) {
        c.warn(`${NAMESPACE}:asn`, `AS${asn} is a documentation ASN (RFC 5398): fine for the lab only`);
    }

    const { roas, rpki } = checkRoas(parsed.roas, prefixes, asn, c);

    let address: string | undefined;
    const v6 = prefixes.find((p) => p.family === 6);
    if (parsed.address !== undefined) {
        if (!isIp(parsed.address) || familyOf(parsed.address) !== 6) {
            c.error(`${NAMESPACE}:address`, `"${parsed.address}" is not an IPv6 address`);
        } else if (v6 && !contains(v6, parsed.address)) {
            c.error(`${NAMESPACE}:address`, `${parsed.address} is outside the prefix ${formatCidr(v6)}`);
        } else if (v6 && canonical(parsed.address) === v6.network) {
            c.error(`${NAMESPACE}:address`, `${parsed.address} is the prefix's network (subnet-router anycast) address; use ::1 or another host address`);
        } else {
            address = canonical(parsed.address);
        }
    } else if (v6) {
        address = nthAddress(v6, 1);
    }

    const communityAsns = new Set<number>();
    const pops: PopSpec[] = [];
    const rawPops = parsed.pops ?? [];
    const originName = parsed.origin?.name;
    const seen = new Map<string, number>();
    const meshNodes = 1 + rawPops.length;
    let meshPlan: string[] | undefined;
    let meshCidr: Cidr | undefined;
    if (parsed.mesh) {
        try {
            meshCidr = parseCidr(parsed.mesh.cidr);
        } catch (e) {
            c.error(`${NAMESPACE}:mesh.cidr`, (e as Error).message);
        }
        if (meshCidr) {
            if (!isPrivateRange(meshCidr)) {
                c.error(`${NAMESPACE}:mesh.cidr`, `${parsed.mesh.cidr} is not private address space (use RFC 1918 or an fd00::/8 unique local prefix)`);
            }
            for (const p of prefixes) {
                if (overlaps(meshCidr, p)) c.error(`${NAMESPACE}:mesh.cidr`, `${parsed.mesh.cidr} overlaps the anycast prefix ${formatCidr(p)}`);
            }
            if (BigInt(meshNodes) > usableHosts(meshCidr)) {
                c.error(`${NAMESPACE}:mesh.cidr`, `${parsed.mesh.cidr} has room for ${usableHosts(meshCidr)} hosts; the origin and ${rawPops.length} PoP(s) need ${meshNodes}`);
            } else {
                meshPlan = planMeshAddresses(parsed.mesh.cidr, meshNodes);
            }
        }
    }

    const meshAddressFor = (key: string, explicit: string | undefined, index: number): string => {
        if (explicit === undefined) return meshPlan?.[index] ?? "";
        if (!isIp(explicit)) {
            c.error(`${key}.meshAddress`, `"${explicit}" is not an IP address`);
        } else if (meshCidr && !contains(meshCidr, explicit)) {
            c.error(`${key}.meshAddress`, `${explicit} is outside mesh.cidr ${formatCidr(meshCidr)}`);
        }
        return isIp(explicit) ? canonical(explicit) : explicit;
    };

    rawPops.forEach((p, i) => {
        const key = `${NAMESPACE}:pops[${i}]`;
        if (seen.has(p.name)) c.error(`${key}.name`, `duplicate PoP name "${p.name}" (also pops[${seen.get(p.name)}])`);
        seen.set(p.name, i);
        if (p.name === originName) c.error(`${key}.name`, `"${p.name}" is also the origin's name`);
        const host = hostSpecFor(key, p, parsed.sshPublicKeys ?? [], c, deploy?.sshFamily);
        const bgp = bgpSettingsFor(`${key}.bgp`, p.bgp, asn ?? 0, parsed.bgpPassword, c);
        const communities: Community[] = [];
        p.communities.forEach((text, j) => {
            try {
                const community = parseCommunity(text);
                if (community.kind === "standard" && community.asn === 20473 && community.value === 6000) {
                    c.error(`${key}.communities[${j}]`, "20473:6000 keeps the route inside AS20473: an anycast prefix announced with it is not reachable from the Internet");
                } else if (community.kind === "standard" && community.asn === 20473 && community.value === 666) {
                    c.error(`${key}.communities[${j}]`, "20473:666 blackholes the prefix: never on an anycast announcement");
                } else if (community.kind === "standard" && community.asn === 65535 && community.value === 0) {
                    c.error(`${key}.communities[${j}]`, "65535:0 (GRACEFUL_SHUTDOWN) is set by the health agent while draining; do not set it statically");
                }
                communityAsns.add(community.kind === "standard" ? community.asn : community.global);
                communities.push(community);
            } catch (e) {
                c.error(`${key}.communities[${j}]`, (e as Error).message);
            }
        });
        const meshAddress = meshAddressFor(key, p.meshAddress, i + 1);
        if (host) pops.push({ name: p.name, host, bgp, communities, prepend: p.prepend, meshAddress });
    });

    const withoutPassword = rawPops.filter((p) => p.bgp.password === undefined).map((p) => p.name);
    if (parsed.bgpPassword === undefined && withoutPassword.length > 0 && !("bgpPassword" in raw && raw.bgpPassword !== undefined)) {
        c.error(`${NAMESPACE}:bgpPassword`, `is required for PoP(s) ${withoutPassword.join(", ")}: pulumi config set --secret ${NAMESPACE}:bgpPassword <the TCP-MD5 password> (or give each PoP bgp.password)`);
    }

    const origin = parsed.origin;
    let originSpec: AnycastSpec["origin"] | undefined;
    if (origin) {
        const host = hostSpecFor(`${NAMESPACE}:origin`, origin, parsed.sshPublicKeys ?? [], c, deploy?.sshFamily);
        const meshAddress = meshAddressFor(`${NAMESPACE}:origin`, origin.meshAddress, 0);
        if (host) originSpec = { name: origin.name, host, port: origin.port, healthPath: origin.healthPath, meshAddress };
    }
    const meshAddresses = [originSpec?.meshAddress, ...pops.map((p) => p.meshAddress)].filter((a): a is string => !!a);
    const dup = meshAddresses.find((a, i) => meshAddresses.indexOf(a) !== i);
    if (dup) c.error(`${NAMESPACE}:mesh`, `mesh address ${dup} is assigned twice (check explicit meshAddress settings)`);

    // Unicast addresses of existing hosts must not be inside the anycast prefix: WireGuard and SSH
    // to them would follow the anycast route to the nearest PoP instead of the host.
    [...rawPops.map((p, i) => ({ key: `${NAMESPACE}:pops[${i}].host.address`, host: p.host })),
        { key: `${NAMESPACE}:origin.host.address`, host: origin?.host }]
        .forEach(({ key, host }) => {
            if (host && isIp(host.address) && prefixes.some((p) => contains(p, host.address))) {
                c.error(key, `${host.address} is inside the anycast prefix; a host's unicast address must be outside it`);
            }
        });

    const fd = parsed.frontDoor;
    let frontDoor: AnycastSpec["frontDoor"] | undefined;
    if (fd) {
        if (!!fd.zone === !!fd.zoneId) c.error(`${NAMESPACE}:frontDoor`, "set exactly one of zone (a name such as example.com) or zoneId");
        const zone = fd.zone?.toLowerCase().replace(/\.$/, "");
        if (zone !== undefined && !DOMAIN.test(zone)) c.error(`${NAMESPACE}:frontDoor.zone`, `"${fd.zone}" is not a domain name such as example.com`);
        const hostname = fqdnIn(fd.hostname, zone);
        const anycastName = fqdnIn(fd.anycastName, zone);
        if (typeof hostname !== "string") c.error(`${NAMESPACE}:frontDoor.hostname`, hostname.error);
        if (typeof anycastName !== "string") c.error(`${NAMESPACE}:frontDoor.anycastName`, anycastName.error);
        if (typeof hostname === "string" && hostname === anycastName) {
            c.error(`${NAMESPACE}:frontDoor.anycastName`, `must differ from hostname: ${hostname} is the proxied CNAME, the anycast name its unproxied AAAA target`);
        }
        if (typeof hostname === "string" && typeof anycastName === "string") {
            frontDoor = { zone, zoneId: fd.zoneId, hostname, anycastName, sslMode: fd.sslMode };
        }
    }

    const firewall = parsed.firewall;
    if (firewall) {
        const cidrList = (key: string, list: string[]) => list.forEach((t, i) => {
            try {
                parseCidr(t);
            } catch (e) {
                c.error(`${NAMESPACE}:firewall.${key}[${i}]`, (e as Error).message);
            }
        });
        cidrList("adminCidrs", firewall.adminCidrs);
        if (firewall.httpSources) cidrList("httpSources", firewall.httpSources);
        if (firewall.adminCidrs.length === 0) {
            c.warn(`${NAMESPACE}:firewall.adminCidrs`, "is empty: SSH is open to the whole Internet on every host");
        }
    }

    const sshPrivateKey = raw.sshPrivateKey;
    if (sshPrivateKey === undefined) {
        c.error(`${NAMESPACE}:sshPrivateKey`, `is required to push configs: pulumi config set --secret ${NAMESPACE}:sshPrivateKey < ~/.ssh/id_ed25519`);
    } else if (typeof sshPrivateKey !== "string" || !/^-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(sshPrivateKey.trim())) {
        c.error(`${NAMESPACE}:sshPrivateKey`, "must be a PEM or OpenSSH private key (-----BEGIN ... PRIVATE KEY-----)");
    }

    const health: HealthSpec | undefined = parsed.health;
    if (health && health.timeout > Math.max(health.interval, 0.05) * 10) {
        c.warn(`${NAMESPACE}:health.timeout`, "is much longer than the interval: a hanging check delays failover");
    }

    if (health && worstFlapPenalty(health.maxWithdrawalsPerHour) >= DAMPING_SUPPRESS_THRESHOLD) {
        c.warn(`${NAMESPACE}:health.maxWithdrawalsPerHour`, `${health.maxWithdrawalsPerHour} withdrawals in quick succession can add up to a route-flap ` +
            `penalty of ${worstFlapPenalty(health.maxWithdrawalsPerHour)}, above the suppress threshold ${DAMPING_SUPPRESS_THRESHOLD} (RFC 7196): ` +
            `upstreams that damp routes would suppress the prefix everywhere; ${MAX_SAFE_WITHDRAWALS} or fewer stays below it`);
    }

    if (errors.length > 0) throw new ConfigError(errors);
    // Every field below was checked above; the assertions only restate that to the compiler.
    return {
        asn: asn!,
        prefixes: prefixes.map(formatCidr),
        address: address!,
        bgpPassword: parsed.bgpPassword ?? "",
        sshPrivateKey: String(sshPrivateKey),
        sshPublicKeys: parsed.sshPublicKeys ?? [],
        pops,
        origin: originSpec!,
        mesh: parsed.mesh!,
        frontDoor: frontDoor!,
        health: parsed.health!,
        firewall: parsed.firewall!,
        deploy: deploy!,
        roas,
        rpki,
        warnings,
    };
}

/**
 * `anycast:roas` against the announced prefixes (RFC 6811 origin validation, see rpki.ts): an
 * announcement the listed ROAs make RPKI-invalid is an error on the ROA's key, since the ROA is
 * what has to change (or the prefix); one no ROA covers is a warning (it still propagates, but
 * networks that accept only RPKI-valid routes drop it).
 */
function checkRoas(raw: TopLevel["roas"], prefixes: Cidr[], asn: number | undefined, c: Collector): { roas: RoaSpec[]; rpki: RpkiFinding[] } {
    if (raw === undefined) {
        const public_ = prefixes.filter((p) => rangeOf(p.network) !== "documentation");
        if (public_.length > 0) {
            c.warn(`${NAMESPACE}:roas`, `is not set, so the RPKI state of ${public_.map(formatCidr).join(", ")} is not checked before deploying; ` +
                "list the ROAs published at your RIR (prefix, maxLength, asn) to catch a max length shorter than the announcement or a wrong ASN");
        }
        return { roas: [], rpki: prefixes.map((p) => ({ prefix: formatCidr(p), state: "unchecked", detail: "anycast:roas not set" })) };
    }
    const roas: Array<Roa | undefined> = raw.map((r, i) => {
        const key = `${NAMESPACE}:roas[${i}]`;
        let prefix: Cidr;
        try {
            prefix = parseCidr(r.prefix);
        } catch (e) {
            c.error(`${key}.prefix`, (e as Error).message);
            return undefined;
        }
        const bits = prefix.family === 6 ? 128 : 32;
        const maxLength = r.maxLength ?? prefix.length;
        if (maxLength < prefix.length || maxLength > bits) {
            c.error(`${key}.maxLength`, `${maxLength} must be from the ROA prefix's length /${prefix.length} to /${bits}`);
            return undefined;
        }
        return { prefix, maxLength, asn: r.asn };
    });
    if (asn === undefined) return { roas: [], rpki: [] };
    const known = roas.filter((r): r is Roa => r !== undefined);
    const rpki: RpkiFinding[] = [];
    for (const [pi, p] of prefixes.entries()) {
        const text = formatCidr(p);
        const prefixKey = prefixes.length > 1 ? `${NAMESPACE}:prefix[${pi}]` : `${NAMESPACE}:prefix`;
        const verdict = validateOrigin(p, asn, known);
        const roaKey = (k: number) => `${NAMESPACE}:roas[${roas.indexOf(known[k])}]`;
        if (verdict.state === "valid") {
            rpki.push({ prefix: text, state: "valid", detail: `ROA ${describeRoa(known[verdict.matchedBy!])}` });
        } else if (verdict.state === "not-found") {
            rpki.push({ prefix: text, state: "not-found", detail: "no listed ROA covers it" });
            c.warn(prefixKey, `no ROA in anycast:roas covers ${text}: the announcement is RPKI NotFound, and networks that accept only RPKI-valid routes drop it; publish a ROA for AS${asn} with max length ≥ ${p.length}`);
        } else {
            rpki.push({ prefix: text, state: "invalid", detail: verdict.mismatches.map((m) => `ROA ${describeRoa(known[m.roa])}: ${m.reason}`).join("; ") });
            const why = `the announcement of ${text} by AS${asn} is RPKI-invalid, and most of the Internet drops RPKI-invalid routes`;
            for (const m of verdict.mismatches) {
                const roa = known[m.roa];
                if (m.reason === "maxLength") {
                    c.error(`${roaKey(m.roa)}.maxLength`, `/${roa.maxLength} is shorter than the announced /${p.length} (${prefixKey}): ${why}; set the ROA's max length to ${p.length} at your RIR`);
                } else if (m.reason === "asn") {
                    c.error(`${roaKey(m.roa)}.asn`, `AS${roa.asn} is not the origin anycast:asn AS${asn}: ${why}; publish a ROA for AS${asn}`);
                } else {
                    c.error(`${roaKey(m.roa)}.asn`, `an AS0 ROA (RFC 6483) says ${formatCidr(roa.prefix)} must never be announced: ${why}; remove it at your RIR`);
                }
            }
        }
    }
    return { roas: known.map((r) => ({ prefix: formatCidr(r.prefix), maxLength: r.maxLength, asn: r.asn })), rpki };
}

/**
 * Route flap damping (RFC 2439) as upstreams that still run it configure it: each withdrawal
 * costs a penalty of 1000 and, on Juniper, so does each re-advertisement; the route is suppressed
 * at the threshold RFC 7196 and RIPE-580 recommend, 6000. The worst case for the health agent is
 * all its allowed withdrawals in quick succession (no decay), each but the last followed by a
 * re-announcement (after the last one it is held down).
 */
export const DAMPING_SUPPRESS_THRESHOLD = 6000;
/** The damping penalty of withdrawals and re-announcements received in quick succession. */
export function flapPenalty(withdrawals: number, reannouncements: number): number {
    return 1000 * (withdrawals + reannouncements);
}
export function worstFlapPenalty(maxWithdrawals: number): number {
    return flapPenalty(maxWithdrawals, maxWithdrawals - 1);
}
/** The most withdrawals an hour whose worst case stays below the threshold (3). */
const MAX_SAFE_WITHDRAWALS = (() => {
    let n = 1;
    while (worstFlapPenalty(n + 1) < DAMPING_SUPPRESS_THRESHOLD) n++;
    return n;
})();

function describeIssue(issue: z.core.$ZodIssue): string {
    switch (issue.code) {
        case "invalid_type":
            return issue.input === undefined ? "is required" : `must be ${issue.expected === "number" ? "a number" : issue.expected === "array" ? "a list" : issue.expected === "object" ? "a map" : `a ${issue.expected}`}`;
        case "unrecognized_keys":
            return `unknown key(s): ${issue.keys.join(", ")}`;
        default:
            return issue.message;
    }
}
