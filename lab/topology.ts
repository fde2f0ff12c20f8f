/**
 * The lab's network design: a pure function from the rendered stack to namespaces, veth links,
 * addresses, routes and ASNs. Nothing here touches the machine, so the design is unit-tested
 * without root (test/lab/topology.test.ts), and `lab/network.ts` only executes it.
 *
 * Shape of the emulated Internet (per region r, 1-based index i):
 *
 *   client-r ── transit-r (AS T_i) ══ eBGP mesh/ring with the other transits
 *                  │ eBGP (the edge's public AS ⇄ T_i)
 *               edge-r  (the emulated provider edge: for Vultr AS 64515 to the PoP, 20473 outward)
 *                  │ eBGP from bgp.neighbor (on the edge) to the PoP's unicast address
 *               pop-r   (runs exactly what the components rendered)
 *
 * A region's own PoP is two AS hops from its transit; every other PoP is at least three, so
 * catchment follows region. The clients play Cloudflare colos: their addresses come from the
 * HTTP sources the rendered firewall allows (Cloudflare's published ranges by default). The
 * origin, the outsider and (when the config names one) the admin network hang off transits like
 * any other customer. A stack that announces an IPv4 prefix gets an IPv4 Internet beside the
 * IPv6 one: IPv4 links, sessions and clients.
 *
 * What the lab cannot build for a config stops designLab with a LabPreconditionError that says why.
 */
import { canonical, contains, familyOf, IpAddress, Family, formatCidr, hasIpv4, nthAddress, overlaps, parseCidr, Cidr } from "../components/core/addressing";
import { AnycastSpec, PopSpec } from "../components/core/model";
import { isPrivateAsn } from "../components/core/origin-as";
import { VULTR_ASN } from "../components/core/vultr";
import { LabPreconditionError } from "./errors";
import { LabHost, LabStack } from "./stack";

/** Every lab namespace starts with this, so teardown finds them all (also from another process). */
export const LAB_NS_PREFIX = "alab-";
/** Per-namespace working directories (configs, sockets, logs, pid files). */
export const LAB_DIR = "/run/anycast-lab";
/** Interface name of a PoP's uplink, as on a Vultr instance. */
export const POP_UPLINK = "enp1s0";
/** Router-to-router links: one /64 (IPv6, documentation space) or /24 (IPv4, RFC 6598) per link. */
const LINK_BLOCK: Record<Family, { block: string; length: number; step: number }> = {
    6: { block: "2001:db8:e000::/40", length: 64, step: 65536 },
    4: { block: "100.64.0.0/10", length: 24, step: 1 },
};
/** The subnet a customer (client, outsider) gets when its block is large enough. */
const CUSTOMER_LENGTH: Record<Family, number> = { 6: 64, 4: 24 };
/** Networks the outsider may take: outside the allowed HTTP sources and admin networks. */
const OUTSIDER_CANDIDATES = ["2001:db8:bad::/64", "2001:db8:bad:1::/64", "3fff:bad::/64", "3fff:bad:1::/64"];
/** Client blocks for a family the firewall's HTTP sources leave empty (routing only, never served). */
const FALLBACK_CLIENT_BLOCK: Record<Family, string> = { 6: "2001:db8:fe00::/40", 4: "198.19.0.0/16" };
/** Documentation ASNs for transits and private upstreams, tried in order (skipping any the deployment uses). */
const ASN_POOL = [64510, 64509, 64508, 64507, 64506, 64505, 64504, 64503, 64502, 64501, 64511,
    65536, 65537, 65538, 65539, 65540, 65541, 65542, 65543, 65544, 65545, 65546, 65547, 65548, 65549, 65550, 65551];
/** A full mesh of transits up to this many regions, a ring beyond (n² links get expensive). */
const FULL_MESH_MAX = 5;
/** How many PoPs the lab builds (namespaces, ASNs and router ids are sized for this). */
export const LAB_MAX_POPS = 8;

export type NsRole = "pop" | "edge" | "transit" | "client" | "origin" | "outsider" | "admin";

export interface IfaceAddress {
    ifname: string;
    /** Address with prefix length. */
    cidr: string;
}

export interface LabNamespace {
    name: string;
    role: NsRole;
    /** Routers forward; hosts do not (a PoP's own anycast-net.sh decides for itself). */
    forwarding: boolean;
    addresses: IfaceAddress[];
    /** `ip route add` argument lists applied after the addresses (the address says the family). */
    routes: string[][];
}

export interface LabLink {
    a: { ns: string; ifname: string };
    b: { ns: string; ifname: string };
}

export interface LabBgpPeer {
    /** BIRD protocol name on this side. */
    name: string;
    family: Family;
    localAddress: string;
    localAsn: number;
    neighborAddress: string;
    neighborAsn: number;
    /** Region of the router on the other side. */
    peerRegion: string;
}

/** One address family of the edge's session with its PoP. */
export interface EdgePopSession {
    family: Family;
    /** The edge's address the PoP dials (bgp.neighbor / neighbor4); BGP and BFD come from it. */
    neighbor: string;
    /** The PoP's unicast address, its session source. */
    popAddress: string;
    /** The PoP's default gateway, held by the edge on the PoP link. */
    gateway: string;
    popNetwork: string;
    /** BIRD protocol name on the BIRD edge. */
    name: string;
}

export interface LabEdge {
    ns: string;
    region: string;
    routerId: string;
    /** The PoP-facing side, as the PoP's config expects it. */
    towardsPop: {
        ifname: string;
        localAsn: number;
        popAsn: number;
        multihop: number;
        password: string;
        bfd?: { intervalMs: number; multiplier: number };
        /**
         * Lowest TTL the edge accepts on multihop BFD packets (FRR's minimum-ttl); undefined keeps
         * FRR's default of 254 (one hop from a sender using 255).
         */
        bfdMinimumTtl?: number;
        sessions: EdgePopSession[];
    };
    towardsTransit: { ifname: string; peers: LabBgpPeer[] };
    /** The AS the transit sees this edge as (20473 for Vultr). */
    publicAsn: number;
    /**
     * The PoP's ASN is private: the edge removes it towards the transit, which sees the route
     * from `publicAsn` alone, as Vultr exports a customer's private ASN (origin-as.ts).
     */
    removesPrivateAsn: boolean;
}

/** A route a transit originates for a customer attached by a host route rather than a subnet. */
export interface CustomerRoute {
    prefix: string;
    ifname: string;
}

export interface LabTransit {
    ns: string;
    region: string;
    asn: number;
    routerId: string;
    /** Interfaces whose connected networks this transit originates (its customers). */
    customerIfaces: string[];
    customerRoutes: CustomerRoute[];
    /** The session with its own region's edge, one per family. */
    edgePeers: LabBgpPeer[];
    transitPeers: LabBgpPeer[];
}

export interface LabClient {
    ns: string;
    region?: string;
    /** Its IPv6 address (always) and IPv4 address (dual-stack labs). */
    address: string;
    address4?: string;
}

export interface LabRegion {
    region: string;
    index: number;
    pop: {
        name: string; ns: string; spec: PopSpec; host: LabHost; address: string; gateway: string; network: string;
        address4?: string; gateway4?: string;
    };
    edge: LabEdge;
    transit: LabTransit;
    client: LabClient;
}

/** An origin: an existing host in its own /64 behind a transit. */
export interface LabOrigin {
    ns: string;
    host: LabHost;
    address: string;
    network: string;
    gateway: string;
    meshAddress: string;
    port: number;
    healthPath: string;
    transitRegion: string;
}

/** Who plays the admin network (firewall.adminCidrs) in the exposure probes. */
export type LabAdmin =
    | { kind: "anyone"; why: string }
    | { kind: "origin"; why: string }
    | { kind: "namespace"; client: LabClient; transitRegion: string; why: string }
    | { kind: "none"; why: string };

export interface LabDesign {
    namespaces: LabNamespace[];
    links: LabLink[];
    regions: LabRegion[];
    transits: LabTransit[];
    /** 6, and 4 when the stack announces an IPv4 prefix. */
    families: Family[];
    /** The first origin (origins[0]). */
    origin: LabOrigin;
    /** Every origin of the stack, each in its own namespace behind a transit. */
    origins: LabOrigin[];
    outsider: LabClient & { transitRegion: string };
    admin: LabAdmin;
    /** The HTTP sources the rendered firewall allows (the clients are inside them). */
    httpSources: string[];
    /** Things the design had to decide that a user should know about. */
    notes: string[];
}

/** The `index`-th subnet of length `length` inside `block`. */
export function subnet(block: string, length: number, index: number): string {
    const b = parseCidr(block, false);
    const bits = b.family === 6 ? 128 : 32;
    if (length < b.length) throw new Error(`${block} is smaller than a /${length}`);
    if (index >= 2 ** (length - b.length)) throw new Error(`${block} has no subnet #${index} of length /${length}`);
    return `${nthAddress(parseCidr(`${b.network}/${b.length}`), BigInt(index) << BigInt(bits - length))}/${length}`;
}

function hostIn(network: string, n: number): string {
    return nthAddress(parseCidr(network), n);
}

/** The host's on-link network: its /64 (IPv6) or /24 (IPv4). */
export function linkNetworkOf(address: string): string {
    const family = familyOf(address);
    return formatCidr(parseCidr(`${canonical(address)}/${CUSTOMER_LENGTH[family]}`, false));
}

/** The host's default gateway: the network's first address, or its second when the host has the first. */
export function gatewayFor(address: string): string {
    const net = linkNetworkOf(address);
    const one = hostIn(net, 1);
    return canonical(address) === one ? hostIn(net, 2) : one;
}

function hostLength(family: Family): number {
    return family === 6 ? 128 : 32;
}

/** A URL host part (IPv6 in brackets, IPv4 as is), for an address the lab holds as text. */
export function urlHost(address: string): string {
    return IpAddress.parse(address).inUrl();
}

/** A region name usable in BIRD protocol names. */
function ident(text: string): string {
    return text.replace(/[^a-zA-Z0-9_]/g, "_");
}

/** A prefix as a range of integers, so the designer's many overlap checks stay cheap. */
interface Range {
    family: Family;
    lo: bigint;
    hi: bigint;
}

function rangeOf(net: string): Range {
    const c: Cidr = parseCidr(net, false);
    const bits = c.family === 6 ? 128 : 32;
    const lo = c.network.toBigInt();
    return { family: c.family, lo, hi: lo + (1n << BigInt(bits - c.length)) - 1n };
}

/** The designer's working state: what is taken, and builders for namespaces and links. */
class DesignBuilder {
    readonly notes: string[] = [];
    readonly namespaces = new Map<string, LabNamespace>();
    readonly links: LabLink[] = [];
    private readonly taken: Range[] = [];
    private readonly linkCounter: Record<Family, number> = { 6: 0, 4: 0 };
    private readonly asns: number[];

    constructor(readonly stack: LabStack, readonly families: Family[]) {
        const spec = stack.spec;
        for (const p of spec.prefixes) this.take(p.toString());
        this.take(spec.mesh.cidr.toString());
        for (const h of stack.hosts) {
            this.take(linkNetworkOf(h.ipv6));
            if (h.ipv4 && families.includes(4)) this.take(linkNetworkOf(h.ipv4));
        }
        const used = new Set<number>([spec.asn, VULTR_ASN, ...spec.pops.flatMap((p) => [p.bgp.remoteAsn, p.bgp.publicAsn ?? 0])]);
        for (const p of spec.pops) {
            for (const c of p.communities) used.add(c.kind === "standard" ? c.value : c.data2);
        }
        this.asns = ASN_POOL.filter((a) => !used.has(a));
    }

    take(net: string): void {
        this.taken.push(rangeOf(net));
    }

    clashes(net: string): boolean {
        const c = rangeOf(net);
        return this.taken.some((t) => t.family === c.family && t.lo <= c.hi && c.lo <= t.hi);
    }

    /** A documentation ASN nobody in the deployment uses. */
    nextAsn(what: string): number {
        const asn = this.asns.shift();
        if (asn === undefined) throw new LabPreconditionError(`the lab ran out of documentation ASNs for ${what}; use fewer PoPs`);
        return asn;
    }

    nextLink(family: Family): string {
        const { block, length, step } = LINK_BLOCK[family];
        for (;;) {
            const net = subnet(block, length, ++this.linkCounter[family] * step);
            if (!this.clashes(net)) {
                this.take(net);
                return net;
            }
        }
    }

    ns(name: string, role: NsRole, forwarding: boolean): LabNamespace {
        const ns: LabNamespace = { name: LAB_NS_PREFIX + name, role, forwarding, addresses: [], routes: [] };
        if (this.namespaces.has(ns.name)) throw new Error(`namespace ${ns.name} made twice (bug)`);
        this.namespaces.set(ns.name, ns);
        return ns;
    }

    get(name: string): LabNamespace {
        const n = this.namespaces.get(name);
        if (!n) throw new Error(`no namespace ${name} (bug)`);
        return n;
    }

    link(a: LabNamespace, aIf: string, b: LabNamespace, bIf: string): void {
        this.links.push({ a: { ns: a.name, ifname: aIf }, b: { ns: b.name, ifname: bIf } });
    }

    /** A router-to-router link with one /64 (and /24) per family; returns each side's addresses. */
    routerLink(a: LabNamespace, aIf: string, b: LabNamespace, bIf: string): Array<{ family: Family; a: string; b: string }> {
        this.link(a, aIf, b, bIf);
        return this.families.map((family) => {
            const net = this.nextLink(family);
            const len = LINK_BLOCK[family].length;
            const [aAddr, bAddr] = [hostIn(net, 1), hostIn(net, 2)];
            a.addresses.push({ ifname: aIf, cidr: `${aAddr}/${len}` });
            b.addresses.push({ ifname: bIf, cidr: `${bAddr}/${len}` });
            return { family, a: aAddr, b: bAddr };
        });
    }

    /**
     * Attach a customer host (`ns`, interface eth0) to a transit, with an address inside `block`.
     * A block of a /64 (/24) or more gives the customer a subnet of its own; a smaller one (an
     * admin's /128 or /32) puts just the address on eth0, reached through a link network and a
     * host route the transit originates.
     */
    attachCustomer(customer: LabNamespace, transit: LabTransit, ifname: string, block: string, nth: number): string {
        const b = parseCidr(block, false);
        const family = b.family;
        const len = CUSTOMER_LENGTH[family];
        const tr = this.get(transit.ns);
        const subnets = b.length <= len ? 2 ** Math.min(30, len - b.length) : 0;
        for (let k = nth; k < subnets; k++) {
            const net = subnet(formatCidr(b), len, k);
            if (this.clashes(net)) continue;
            this.take(net);
            const address = hostIn(net, 16);
            customer.addresses.push({ ifname: "eth0", cidr: `${address}/${len}` });
            customer.routes.push([family === 6 ? "::/0" : "0.0.0.0/0", "via", hostIn(net, 1), "dev", "eth0"]);
            tr.addresses.push({ ifname, cidr: `${hostIn(net, 1)}/${len}` });
            if (!transit.customerIfaces.includes(ifname)) transit.customerIfaces.push(ifname);
            return address;
        }
        // No subnet of its own in the block: an address of the block (a different one per
        // customer while the block has them), reached through a link network and a host route.
        const size = 2 ** Math.min(30, hostLength(family) - b.length);
        const address = size <= 2 ? b.network.toString() : hostIn(formatCidr(b), 1 + ((16 + nth) % (size - 2)));
        const link = this.nextLink(family);
        const gateway = hostIn(link, 1);
        customer.addresses.push({ ifname: "eth0", cidr: `${address}/${hostLength(family)}` });
        customer.routes.push([gateway, "dev", "eth0"], [family === 6 ? "::/0" : "0.0.0.0/0", "via", gateway, "dev", "eth0"]);
        tr.addresses.push({ ifname, cidr: `${gateway}/${LINK_BLOCK[family].length}` });
        const prefix = `${address}/${hostLength(family)}`;
        tr.routes.push([prefix, "dev", ifname]);
        transit.customerRoutes.push({ prefix, ifname });
        return address;
    }
}

/** One region per PoP: its Vultr region, or the PoP's name for an existing host; never twice. */
function regionNames(spec: AnycastSpec): string[] {
    const names: string[] = [];
    spec.pops.forEach((pop, i) => {
        const candidates = [pop.host.kind === "vultr" ? pop.host.region : pop.name, pop.name, `${pop.name}-${i + 1}`];
        names.push(candidates.find((c) => !names.includes(c))!);
    });
    return names;
}

/** Checks that stop the lab before anything is built: what it cannot emulate, and why. */
function checkEmulatable(stack: LabStack, families: Family[]): void {
    const spec = stack.spec;
    if (spec.pops.length > LAB_MAX_POPS) {
        throw new LabPreconditionError(`the lab builds at most ${LAB_MAX_POPS} PoPs, the config has ${spec.pops.length}: ` +
            `rehearse a stack file with ${LAB_MAX_POPS} or fewer of them`);
    }
    for (const h of stack.hosts) {
        if (!h.ipv6 || familyOf(h.ipv6) !== 6) {
            throw new LabPreconditionError(`${h.role} ${h.name} has no IPv6 address (${h.ipv6 ?? "none"}); ` +
                "the lab's Internet and the mesh run over IPv6: give the host an IPv6 host.address");
        }
        if (families.includes(4) && h.role === "pop" && !h.ipv4) {
            throw new LabPreconditionError(`PoP ${h.name} has no IPv4 address for the IPv4 prefix's session: set its host.address4`);
        }
    }
    for (const pop of spec.pops) {
        const host = stack.hosts.find((h) => h.name === pop.name);
        if (!host) throw new LabPreconditionError(`the stack rendered no host for PoP ${pop.name}`);
        const neighbors: Array<[string, string]> = [[pop.bgp.neighbor.toString(), host.ipv6]];
        if (families.includes(4)) neighbors.push([pop.bgp.neighbor4.toString(), host.ipv4!]);
        for (const [neighbor, own] of neighbors) {
            if (familyOf(neighbor) === 6 && contains(parseCidr("fe80::/10"), neighbor)) {
                throw new LabPreconditionError(`PoP ${pop.name}: bgp.neighbor ${neighbor} is link-local; the lab emulates ` +
                    "neighbours with global addresses only: use the upstream's global address");
            }
            if (canonical(neighbor) === canonical(own)) {
                throw new LabPreconditionError(`PoP ${pop.name}: the BGP neighbour ${neighbor} is the host's own address`);
            }
            if (pop.bgp.multihop === 0 && !contains(parseCidr(linkNetworkOf(own)), neighbor)) {
                throw new LabPreconditionError(`PoP ${pop.name}: bgp.multihop is 0 (a directly connected neighbour) but ` +
                    `${neighbor} is outside the host's network ${linkNetworkOf(own)}, so the session cannot come up: ` +
                    "set bgp.multihop (Vultr: 2) or the neighbour on the host's network");
            }
        }
    }
}

/** The client blocks per family: the firewall's HTTP sources (the clients play Cloudflare colos). */
function clientBlocks(design: DesignBuilder, httpSources: string[]): Record<Family, string[]> {
    const blocks: Record<Family, string[]> = { 6: [], 4: [] };
    for (const s of httpSources) blocks[parseCidr(s, false).family].push(formatCidr(parseCidr(s, false)));
    for (const family of design.families) {
        if (blocks[family].length === 0) {
            blocks[family] = [FALLBACK_CLIENT_BLOCK[family]];
            design.notes.push(`the firewall allows HTTP from no IPv${family} source: IPv${family} clients take ` +
                `${FALLBACK_CLIENT_BLOCK[family]} (for routing only)`);
        }
    }
    return blocks;
}

/** Region i's client block: the sources in turn, so clients spread over the ranges like colos do. */
function clientBlockFor(blocks: string[], i: number): { block: string; nth: number } {
    return { block: blocks[i % blocks.length], nth: 1 + Math.floor(i / blocks.length) };
}

function designPopLink(b: DesignBuilder, popNs: LabNamespace, edgeNs: LabNamespace, pop: PopSpec, host: LabHost): EdgePopSession[] {
    b.link(popNs, POP_UPLINK, edgeNs, "to-pop");
    const sessions: EdgePopSession[] = [];
    for (const family of b.families) {
        const address = canonical(family === 6 ? host.ipv6 : host.ipv4!);
        const neighbor = (family === 6 ? pop.bgp.neighbor : pop.bgp.neighbor4).toString();
        const network = linkNetworkOf(address);
        const len = CUSTOMER_LENGTH[family];
        const gateway = gatewayFor(address);
        popNs.addresses.push({ ifname: POP_UPLINK, cidr: `${address}/${len}` });
        popNs.routes.push([family === 6 ? "::/0" : "0.0.0.0/0", "via", gateway, "dev", POP_UPLINK]);
        edgeNs.addresses.push({ ifname: "to-pop", cidr: `${gateway}/${len}` });
        // The neighbour lives on the PoP's network when it is in it (a direct session), else on
        // the edge's lo, a hop away as on Vultr.
        if (contains(parseCidr(network), neighbor)) {
            if (neighbor !== gateway) edgeNs.addresses.push({ ifname: "to-pop", cidr: `${neighbor}/${len}` });
        } else {
            edgeNs.addresses.push({ ifname: "lo", cidr: `${neighbor}/${hostLength(family)}` });
        }
        sessions.push({ family, neighbor, popAddress: address, gateway, popNetwork: network, name: family === 6 ? "pop" : "pop4" });
    }
    return sessions;
}

/**
 * The AS the Internet sees the PoP's upstream as: the config's (Vultr's 20473, or an existing
 * host's bgp.publicAsn), else a public remote AS itself, else a stand-in.
 */
function publicAsnFor(b: DesignBuilder, pop: PopSpec): number {
    if (pop.bgp.publicAsn !== undefined) return pop.bgp.publicAsn;
    const remote = pop.bgp.remoteAsn;
    if (!isPrivateAsn(remote)) return remote;
    const stand = b.nextAsn(`PoP ${pop.name}'s upstream`);
    b.notes.push(`PoP ${pop.name}'s upstream AS${remote} is private: the lab shows it to the Internet as AS${stand}`);
    return stand;
}

function designEdgeBfd(b: DesignBuilder, pop: PopSpec): { bfd?: LabEdge["towardsPop"]["bfd"]; bfdMinimumTtl?: number } {
    if (!pop.bgp.bfd) return {};
    if (pop.bgp.multihop > 0 && !pop.bgp.staticRouteToNeighbor) {
        // anycast-net.sh raises the hop limit on its pinned route to the neighbour; without that
        // route BIRD 2.0.12 sends multihop BFD with the system default of 64.
        b.notes.push(`PoP ${pop.name}: bgp.staticRoute is off, so its multihop BFD packets leave with TTL 64; ` +
            "the emulated edge accepts them with minimum-ttl 64, as a real peer must be told to (README, Failover)");
        return { bfd: pop.bgp.bfd, bfdMinimumTtl: 64 };
    }
    return { bfd: pop.bgp.bfd };
}

function designRegion(b: DesignBuilder, pop: PopSpec, i: number, region: string, clients: Record<Family, string[]>): LabRegion {
    const spec = b.stack.spec;
    const host = b.stack.hosts.find((h) => h.name === pop.name)!;
    const index = i + 1;
    const popNs = b.ns(`${region}-pop`, "pop", false);
    const edgeNs = b.ns(`${region}-edge`, "edge", true);
    const trNs = b.ns(`${region}-tr`, "transit", true);
    const cliNs = b.ns(`${region}-cli`, "client", false);

    const sessions = designPopLink(b, popNs, edgeNs, pop, host);
    const publicAsn = publicAsnFor(b, pop);
    const transitAsn = b.nextAsn(`the transit of ${region}`);
    const ends = b.routerLink(edgeNs, "to-tr", trNs, "to-edge");
    const transit: LabTransit = {
        ns: trNs.name, region, asn: transitAsn, routerId: `198.51.100.${100 + index}`,
        customerIfaces: [], customerRoutes: [], transitPeers: [],
        edgePeers: ends.map((e) => ({
            name: `edge_${ident(region)}${e.family === 4 ? "4" : ""}`, family: e.family, localAddress: e.b, localAsn: transitAsn,
            neighborAddress: e.a, neighborAsn: publicAsn, peerRegion: region,
        })),
    };
    // The edge reaches the Internet by static defaults through its transit; it imports nothing.
    for (const e of ends) edgeNs.routes.push([e.family === 6 ? "::/0" : "0.0.0.0/0", "via", e.b, "dev", "to-tr"]);
    const edge: LabEdge = {
        ns: edgeNs.name, region, routerId: `198.51.100.${10 + index}`, publicAsn, removesPrivateAsn: isPrivateAsn(spec.asn),
        towardsPop: {
            ifname: "to-pop", localAsn: pop.bgp.remoteAsn, popAsn: spec.asn, multihop: pop.bgp.multihop,
            password: pop.bgp.password, ...designEdgeBfd(b, pop), sessions,
        },
        towardsTransit: {
            ifname: "to-tr",
            peers: ends.map((e) => ({
                name: `tr_${ident(region)}${e.family === 4 ? "4" : ""}`, family: e.family, localAddress: e.a, localAsn: publicAsn,
                neighborAddress: e.b, neighborAsn: transitAsn, peerRegion: region,
            })),
        },
    };

    const client: LabClient = { ns: cliNs.name, region, address: "" };
    for (const family of b.families) {
        const { block, nth } = clientBlockFor(clients[family], i);
        const address = b.attachCustomer(cliNs, transit, "to-cli", block, nth);
        if (family === 6) client.address = address;
        else client.address4 = address;
    }
    b.link(cliNs, "eth0", trNs, "to-cli");
    const v6 = sessions.find((s) => s.family === 6)!;
    const v4 = sessions.find((s) => s.family === 4);
    return {
        region, index, edge, transit, client,
        pop: { name: pop.name, ns: popNs.name, spec: pop, host, address: v6.popAddress, gateway: v6.gateway, network: v6.popNetwork,
            address4: v4?.popAddress, gateway4: v4?.gateway },
    };
}

/** eBGP between neighbouring transits: a full mesh for a few regions, a ring beyond. */
function connectTransits(b: DesignBuilder, transits: LabTransit[]): void {
    const pairs: Array<[number, number]> = [];
    if (transits.length <= FULL_MESH_MAX) {
        for (let a = 0; a < transits.length; a++) for (let c = a + 1; c < transits.length; c++) pairs.push([a, c]);
    } else {
        for (let a = 0; a < transits.length; a++) pairs.push([a, (a + 1) % transits.length]);
        b.notes.push(`${transits.length} regions: transits form a ring rather than a full mesh`);
    }
    for (const [ai, ci] of pairs) {
        const [ta, tb] = [transits[ai], transits[ci]];
        const aIf = `tr-${ident(tb.region)}`.length <= 15 ? `tr-${ident(tb.region)}` : `tr-r${ci + 1}`;
        const bIf = `tr-${ident(ta.region)}`.length <= 15 ? `tr-${ident(ta.region)}` : `tr-r${ai + 1}`;
        for (const e of b.routerLink(b.get(ta.ns), aIf, b.get(tb.ns), bIf)) {
            const suffix = e.family === 4 ? "4" : "";
            ta.transitPeers.push({ name: `tr_${ident(tb.region)}${suffix}`, family: e.family, localAddress: e.a, localAsn: ta.asn,
                neighborAddress: e.b, neighborAsn: tb.asn, peerRegion: tb.region });
            tb.transitPeers.push({ name: `tr_${ident(ta.region)}${suffix}`, family: e.family, localAddress: e.b, localAsn: tb.asn,
                neighborAddress: e.a, neighborAsn: ta.asn, peerRegion: ta.region });
        }
    }
}

/**
 * The origins: existing hosts, each in its own /64. The first behind the first region's transit,
 * further ones behind the last regions' transits, so that origins and PoPs spread over the map.
 */
function designOrigins(b: DesignBuilder, transits: LabTransit[]): LabOrigin[] {
    const networks = new Map<string, string>();
    return b.stack.spec.origins.map((o, k) => {
        const host = b.stack.hosts.find((h) => h.name === o.name);
        if (!host) throw new LabPreconditionError(`the stack rendered no host for the origin ${o.name}`);
        const address = canonical(host.ipv6);
        const network = linkNetworkOf(address);
        const other = networks.get(network);
        if (other) {
            throw new LabPreconditionError(`origins ${other} and ${o.name} share the network ${network}; the lab puts each origin ` +
                "behind a transit of its own: give them host.address values in different /64s");
        }
        networks.set(network, o.name);
        const transit = transits[k === 0 ? 0 : (transits.length - (k % transits.length)) % transits.length];
        const ns = b.ns(k === 0 ? "origin" : `origin${k + 1}`, "origin", false);
        const ifname = k === 0 ? "to-origin" : `to-origin${k + 1}`;
        const gateway = gatewayFor(address);
        ns.addresses.push({ ifname: "eth0", cidr: `${address}/64` });
        ns.routes.push(["::/0", "via", gateway, "dev", "eth0"]);
        b.get(transit.ns).addresses.push({ ifname, cidr: `${gateway}/64` });
        transit.customerIfaces.push(ifname);
        b.link(ns, "eth0", b.get(transit.ns), ifname);
        return { ns: ns.name, host, address, network, gateway, meshAddress: o.meshAddress.toString(),
            port: o.port, healthPath: o.healthPath, transitRegion: transit.region };
    });
}

/** A client outside the HTTP sources and admin networks when there is room, behind the last transit. */
function designOutsider(b: DesignBuilder, transit: LabTransit, httpSources: string[]): LabDesign["outsider"] {
    const spec = b.stack.spec;
    const inside = (net: string, list: Array<string | Cidr>) =>
        list.some((s) => overlaps(typeof s === "string" ? parseCidr(s, false) : s, parseCidr(net)));
    const free = OUTSIDER_CANDIDATES.filter((n) => !b.clashes(n));
    const net = free.find((n) => !inside(n, httpSources) && !inside(n, spec.firewall.adminCidrs)) ?? free[0];
    if (!net) throw new LabPreconditionError(`the lab found no network for its outsider client (tried ${OUTSIDER_CANDIDATES.join(", ")})`);
    if (inside(net, httpSources) || inside(net, spec.firewall.adminCidrs)) {
        b.notes.push(`the allowed sources cover all of ${OUTSIDER_CANDIDATES.join(", ")}: the outsider ${net} is inside them`);
    }
    const ns = b.ns("outsider", "outsider", false);
    b.link(ns, "eth0", b.get(transit.ns), "to-outsider");
    const address = b.attachCustomer(ns, transit, "to-outsider", net, 0);
    return { ns: ns.name, address, transitRegion: transit.region };
}

/** Who plays firewall.adminCidrs: nobody needs to (empty: SSH open), the origin, or a host of its own. */
function designAdmin(b: DesignBuilder, transit: LabTransit, originAddress: string): LabAdmin {
    const cidrs = b.stack.spec.firewall.adminCidrs;
    if (cidrs.length === 0) return { kind: "anyone", why: "firewall.adminCidrs is empty: SSH is open to every source" };
    if (cidrs.some((c) => contains(c, originAddress))) {
        return { kind: "origin", why: `the origin ${originAddress} is inside firewall.adminCidrs` };
    }
    const v6 = cidrs.filter((c) => c.family === 6);
    const block = v6.find((p) => {
        return p.length > CUSTOMER_LENGTH[6] || [0, 1, 2, 3].some((k) => !b.clashes(subnet(formatCidr(p), CUSTOMER_LENGTH[6], k)));
    });
    if (!block) {
        return { kind: "none", why: "firewall.adminCidrs has no IPv6 network the lab can place a host in, and the lab reaches hosts over IPv6" };
    }
    const ns = b.ns("admin", "admin", false);
    b.link(ns, "eth0", b.get(transit.ns), "to-admin");
    const address = b.attachCustomer(ns, transit, "to-admin", block.toString(), 0);
    return { kind: "namespace", client: { ns: ns.name, address }, transitRegion: transit.region,
        why: `an admin host at ${address} inside firewall.adminCidrs ${block}` };
}

export function designLab(stack: LabStack): LabDesign {
    const spec: AnycastSpec = stack.spec;
    const families: Family[] = hasIpv4(spec.prefixes) ? [6, 4] : [6];
    checkEmulatable(stack, families);
    const b = new DesignBuilder(stack, families);
    const httpSources = stack.httpSources;
    const clients = clientBlocks(b, httpSources);
    const names = regionNames(spec);
    const regions = spec.pops.map((pop, i) => designRegion(b, pop, i, names[i], clients));
    const transits = regions.map((r) => r.transit);
    connectTransits(b, transits);
    const origins = designOrigins(b, transits);
    const origin = origins[0];
    const outsider = designOutsider(b, transits[transits.length - 1], httpSources);
    const admin = designAdmin(b, transits[Math.min(1, transits.length - 1)], origin.address);
    if (isPrivateAsn(spec.asn)) {
        const seen = [...new Set(regions.map((r) => r.edge.publicAsn))].map((a) => `AS${a}`).join(", ");
        b.notes.push(`anycast:asn AS${spec.asn} is private: each edge removes it towards its transit, as Vultr does, ` +
            `so the transits see the prefix originated by ${seen}`);
    }
    if (families.includes(4)) {
        b.notes.push("IPv4: the PoPs' IPv4 sessions, routes and catchment are emulated; HTTP is served on the " +
            "IPv6 anycast address only (Cloudflare reaches the PoPs over IPv6), so IPv4 catchment is measured " +
            "by where a client's IPv4 packets to the prefix arrive");
    }
    return {
        namespaces: [...b.namespaces.values()], links: b.links, regions, transits, families, origin, origins, outsider, admin,
        httpSources, notes: b.notes,
    };
}

/** The transit's BIRD protocol name for its own edge's session of a family. */
export function edgePeerName(transit: LabTransit, family: Family = 6): string {
    const peer = transit.edgePeers.find((p) => p.family === family);
    if (!peer) throw new Error(`transit ${transit.region} has no IPv${family} edge session`);
    return peer.name;
}
