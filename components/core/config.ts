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
import { AnycastSpec, ConfigIssue, DeploySpec, FirewallSpec, HostSpec, MeshTopology, MonitoringSpec, OriginSpec, PopSpec, HealthSpec } from "./model";
import { Collector, describeShapeIssue, showValue, unknownKeyMessage, validPhrase } from "./config-issues";
import { VULTR_LISTS_UPDATED, vultrPlanProblem, vultrRegionProblem } from "./vultr";
import { originsSeen } from "./origin-as";
import { DAMPING_SUPPRESS_THRESHOLD, MAX_SAFE_WITHDRAWALS, worstFlapPenalty } from "./damping";
import { checkFailover, checkOriginPreferences, extraOriginMeshAddress, originEntries } from "./origins";
import { popPortHolder } from "./pop-ports";
import { CONFIG_KEYS, deployShape, HostFields, keyPath, NAMESPACE, originShape, Parsed, PopFields, popShape, topLevel, TopLevel } from "./config-shape";
import {
    bgpSettingsFor, checkAddress, checkAsn, checkBgpPassword, checkPrefixes, checkPrivateAsn, checkRoas, communitiesFor,
} from "./config-routing";

export { CONFIG_KEYS, CONFIG_SHAPES, SECRET_KEYS } from "./config-shape";
export type { AnycastConfigInput } from "./config-shape";
export { formatCommunity, parseCommunity } from "./config-routing";
/** Field paths without an "accepts" phrase (test/unit/config.test.ts keeps this list empty). */
export { fieldsWithoutPhrase } from "./config-issues";
export { DAMPING_SUPPRESS_THRESHOLD, flapPenalty, worstFlapPenalty } from "./damping";

export { NAMESPACE } from "./config-shape";

/** Thrown when the config has errors; `issues` lists them all, each once. */
export class ConfigError extends Error {
    constructor(readonly issues: ConfigIssue[]) {
        super(`invalid anycast config (${issues.length} error${issues.length === 1 ? "" : "s"}):\n` +
            issues.map((i) => `  - ${i.key}: ${i.message}`).join("\n"));
        this.name = "ConfigError";
    }
}


// ---------------------------------------------------------------------------------------------
// The two passes.
// ---------------------------------------------------------------------------------------------


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
    const monitoring = parsed.monitoring && checkMonitoring(parsed.monitoring, originNames, parsed.mesh?.topology, c);

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
        ...(monitoring ? { monitoring } : {}),
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

/**
 * `anycast:monitoring`: Prometheus scrapes the PoPs over the mesh, the only network their agents
 * and exporters answer on, so it runs on an origin that has a tunnel to every PoP.
 */
function checkMonitoring(m: NonNullable<TopLevel["monitoring"]>, originNames: string[], topology: MeshTopology | undefined,
    c: Collector): MonitoringSpec | undefined {
    const key = `${NAMESPACE}:monitoring.origin`;
    if (!originNames.includes(m.origin)) {
        c.error(key, `${showValue(m.origin)} is not an origin of this stack (${originNames.join(", ") || "none"}): Prometheus must run on a host ` +
            "in the mesh, because the PoPs' agents and exporters answer over the mesh only; name one of the origins");
        return undefined;
    }
    if (topology === "hub" && m.origin !== originNames[0]) {
        c.error(key, `${showValue(m.origin)} has no tunnel to the PoPs in a hub mesh (only the hub ${originNames[0]} has): ` +
            `use ${originNames[0]}, or mesh.topology full`);
        return undefined;
    }
    return { origin: m.origin, scrapeInterval: m.scrapeInterval, retentionDays: m.retentionDays, alertmanagers: m.alertmanagers };
}

function checkHealth(health: HealthSpec | undefined, relayPort: number | undefined, c: Collector): void {
    if (!health) return;
    const holder = popPortHolder(health.statusPort);
    if (holder) {
        c.error(`${NAMESPACE}:health.statusPort`, `${health.statusPort} is taken on the PoPs (${holder}): use another port, such as the default 9180`);
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
