/**
 * The config's checks of the hosts (pass 2 of validation, config.ts): the mesh and its addresses,
 * each PoP's and origin's host (a new Vultr instance or an existing server), and where they may
 * not be (inside the announced prefixes).
 */
import { z } from "zod";
import { IpAddress, IpPrefix, meshAddressesFor } from "./addressing";
import { HostSpec, OriginSpec, PopSpec } from "./model";
import { Collector, showValue } from "./config-issues";
import { VULTR_LISTS_UPDATED, vultrPlanProblem, vultrRegionProblem } from "./vultr";
import { extraOriginMeshAddress } from "./origins";
import { HostFields, NAMESPACE, originShape, Parsed, PopFields, TopLevel } from "./config-shape";
import { bgpSettingsFor, communitiesFor } from "./config-routing";

export interface MeshAddressing {
    cidr?: IpPrefix;
    /** Planned addresses: the first origin's first, then each PoP's in list order (further origins: origins.ts). */
    addresses?: IpAddress[];
}

export function meshAddressing(mesh: TopLevel["mesh"] | undefined, originCount: number, popCount: number, prefixes: IpPrefix[], c: Collector): MeshAddressing {
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
    return { cidr, addresses: meshAddressesFor(cidr, 1 + popCount) };
}

/** A node's mesh address: the explicit one (checked) or the planned one; undefined when either is in error (reported). */
export function meshAddressFor(key: string, explicit: string | undefined, index: number, mesh: MeshAddressing, c: Collector): IpAddress | undefined {
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
export type WithMeshAddressUnchecked<T> = Omit<T, "meshAddress"> & { meshAddress?: IpAddress };

/** A PoP's or the origin's host: a new Vultr instance (region, plan) or an existing server. */
export function hostSpecFor(key: string, raw: HostFields, c: Collector, sshFamily: 4 | 6 = 6): HostSpec | undefined {
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
export function checkVultrIds(key: string, region: string, raw: HostFields, c: Collector): void {
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


export function checkPops(parsed: Parsed, asn: number, originNames: string[], mesh: MeshAddressing, c: Collector,
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

export type OriginFields = z.output<typeof originShape>;

/** Each origin's host and mesh address: the first origin takes the mesh's first address, further ones count down from its end (origins.ts). */
export function checkOrigins(entries: Array<{ key: string; raw: OriginFields }>, mesh: MeshAddressing, c: Collector,
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

export function checkMeshAddressesUnique(origins: Array<{ meshAddress?: IpAddress }>, pops: Array<{ meshAddress?: IpAddress }>, c: Collector): void {
    const addresses = [...origins.map((o) => o.meshAddress), ...pops.map((p) => p.meshAddress)].filter((a): a is IpAddress => !!a);
    const dup = addresses.find((a, i) => addresses.findIndex((b) => b.equals(a)) !== i);
    if (dup) c.error(`${NAMESPACE}:mesh`, `mesh address ${dup} is assigned twice: check the explicit meshAddress settings`);
}

/**
 * Unicast addresses of existing hosts must not be inside the anycast prefix: WireGuard and SSH
 * to them would follow the anycast route to the nearest PoP instead of the host.
 */
export function checkHostsOutsidePrefixes(parsed: Parsed, origins: Array<{ key: string; raw: OriginFields }>, prefixes: IpPrefix[], c: Collector): void {
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
