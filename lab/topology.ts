/**
 * The lab's network plan: a pure function from the rendered stack to namespaces, veth links,
 * addresses, routes and ASNs. Nothing here touches the machine, so the plan is unit-tested
 * without root (test/lab/topology.test.ts), and `lab/network.ts` only executes it.
 *
 * Shape of the emulated Internet (per region r, 1-based index i):
 *
 *   client-r ── transit-r (AS T_i) ══ eBGP mesh/ring with the other transits
 *                  │ eBGP (AS 20473 ⇄ T_i)
 *               edge-r  (the emulated Vultr edge: AS 64515 to the PoP, 20473 to the Internet)
 *                  │ multihop eBGP from 2001:19f0:ffff::1 (edge lo) to the PoP's unicast
 *               pop-r   (runs exactly what the components rendered)
 *
 * A region's own PoP is two AS hops from its transit ("20473 <our ASN>"); every other PoP is at
 * least three, so catchment follows region. The origin and the outsider client hang off
 * transits like any other customer network.
 */
import { canonical, contains, formatCidr, nthAddress, overlaps, parseCidr, Cidr } from "../components/core/addressing";
import { AnycastSpec, PopSpec } from "../components/core/model";
import { LabHost, LabStack } from "./stack";

/** Every lab namespace starts with this, so teardown finds them all (also from another process). */
export const LAB_NS_PREFIX = "alab-";
/** Per-namespace working directories (configs, sockets, logs, pid files). */
export const LAB_DIR = "/run/anycast-lab";
/** The AS Vultr's edge shows to the Internet; Vultr's route server AS (64515) stays private. */
export const VULTR_PUBLIC_ASN = 20473;
/** Interface name of a PoP's uplink, as on a Vultr instance. */
export const POP_UPLINK = "enp1s0";
/** The block router-to-router links are numbered from (documentation space, one /64 per link). */
const LINK_BLOCK = "2001:db8:e000::/40";
/** Candidate networks for the client outside the allowed HTTP sources. */
const OUTSIDER_CANDIDATES = ["2001:db8:bad::/64", "2001:db8:bad:1::/64", "3fff:bad::/64"];
/** Where the lab's clients live when the config leaves httpSources to Cloudflare's ranges. */
const DEFAULT_CLIENT_BLOCK = "2001:db8:fe00::/40";
/** Documentation ASNs for the transits, tried in order (skipping any the deployment uses). */
const TRANSIT_ASN_POOL = [64510, 64509, 64508, 64507, 64506, 64505, 64504, 64503, 64502, 64501, 64511,
    65536, 65537, 65538, 65539, 65540, 65541, 65542, 65543, 65544, 65545, 65546, 65547, 65548, 65549, 65550, 65551];
/** A full mesh of transits up to this many regions, a ring beyond (n² links get expensive). */
const FULL_MESH_MAX = 5;

export type NsRole = "pop" | "edge" | "transit" | "client" | "origin" | "outsider";

export interface IfaceAddress {
    ifname: string;
    /** Address with prefix length. */
    cidr: string;
}

export interface NamespacePlan {
    name: string;
    role: NsRole;
    /** Routers forward; hosts do not (a PoP's own anycast-net.sh decides for itself). */
    forwarding: boolean;
    addresses: IfaceAddress[];
    /** `ip -6 route add` argument lists applied after the addresses. */
    routes: string[][];
}

export interface LinkPlan {
    a: { ns: string; ifname: string };
    b: { ns: string; ifname: string };
}

export interface BgpPeerPlan {
    /** BIRD protocol name. */
    name: string;
    localAddress: string;
    localAsn: number;
    neighborAddress: string;
    neighborAsn: number;
    /** Region of the transit or PoP on the other side. */
    peerRegion: string;
}

export interface EdgePlan {
    ns: string;
    region: string;
    routerId: string;
    /** The PoP-facing side, as the PoP's config expects it. */
    towardsPop: {
        ifname: string;
        /** The PoP's default gateway, held by the edge on the PoP link. */
        gateway: string;
        popNetwork: string;
        /** The BGP neighbour address the PoP dials (Vultr: 2001:19f0:ffff::1), on the edge's lo. */
        neighbor: string;
        localAsn: number;
        popAddress: string;
        popAsn: number;
        multihop: number;
        password: string;
        bfd?: { intervalMs: number; multiplier: number };
    };
    towardsTransit: BgpPeerPlan & { ifname: string };
    /** The AS the transit sees this edge as (20473 for Vultr). */
    publicAsn: number;
}

export interface TransitPlan {
    ns: string;
    region: string;
    asn: number;
    routerId: string;
    /** Interfaces whose connected networks this transit originates (its customers). */
    customerIfaces: string[];
    edgePeer: BgpPeerPlan;
    transitPeers: BgpPeerPlan[];
}

export interface ClientPlan {
    ns: string;
    region?: string;
    network: string;
    address: string;
}

export interface RegionPlan {
    region: string;
    index: number;
    pop: { name: string; ns: string; spec: PopSpec; host: LabHost; address: string; gateway: string; network: string };
    edge: EdgePlan;
    transit: TransitPlan;
    client: ClientPlan;
}

export interface OriginPlan {
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

export interface LabPlan {
    namespaces: NamespacePlan[];
    links: LinkPlan[];
    regions: RegionPlan[];
    transits: TransitPlan[];
    /** The first origin (origins[0]). */
    origin: OriginPlan;
    /** Every origin of the stack, each in its own namespace behind a transit. */
    origins: OriginPlan[];
    outsider: ClientPlan & { transitRegion: string };
    /** Client network block inside the allowed HTTP sources. */
    clientBlock: string;
    /** Things the plan had to decide that a user should know about. */
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

function network64(address: string): string {
    return formatCidr(parseCidr(`${canonical(address)}/64`, false));
}

function gatewayFor(address: string): string {
    const net = network64(address);
    const one = hostIn(net, 1);
    return canonical(address) === one ? hostIn(net, 2) : one;
}

function regionOf(pop: PopSpec): string {
    return pop.host.kind === "vultr" ? pop.host.region : pop.name;
}

export function planLab(stack: LabStack): LabPlan {
    const spec: AnycastSpec = stack.spec;
    const notes: string[] = [];
    const hostByName = new Map(stack.hosts.map((h) => [h.name, h]));
    const taken: Cidr[] = [...spec.prefixes.map((p) => parseCidr(p)), parseCidr(spec.mesh.cidr)];
    for (const h of stack.hosts) taken.push(parseCidr(network64(h.ipv6)));
    const clashes = (net: string) => taken.some((t) => overlaps(t, parseCidr(net)));

    // One region per PoP. Two PoPs in one Vultr region would share an edge in reality; in the lab
    // each gets its own edge named after the PoP so that each has its own client to measure from.
    const regionNames: string[] = [];
    for (const pop of spec.pops) {
        const r = regionOf(pop);
        regionNames.push(regionNames.includes(r) ? pop.name : r);
    }

    const httpSources = spec.firewall.httpSources;
    const clientBlock = httpSources?.find((s) => parseCidr(s).family === 6 && parseCidr(s).length <= 64) ?? DEFAULT_CLIENT_BLOCK;
    if (!httpSources) notes.push(`firewall.httpSources is not set (Cloudflare's ranges at deploy time): lab clients use ${DEFAULT_CLIENT_BLOCK}`);
    const clientNets: string[] = [];
    {
        const block = parseCidr(clientBlock);
        // Prefer one /48 per region (2001:db8:fe01::/64, ...fe02::/64 for a /40), falling back to /64s.
        const step = block.length <= 48 ? 48 : 64;
        for (let k = 1; clientNets.length < spec.pops.length; k++) {
            const net = subnet(subnet(clientBlock, step, k), 64, 0);
            if (!clashes(net)) {
                clientNets.push(net);
                taken.push(parseCidr(net));
            }
        }
    }
    const outsiderNet = OUTSIDER_CANDIDATES.find((n) => !clashes(n) && !(httpSources ?? [clientBlock]).some((s) => overlaps(parseCidr(s), parseCidr(n))));
    if (!outsiderNet) throw new Error(`no network for the outsider client outside firewall.httpSources (tried ${OUTSIDER_CANDIDATES.join(", ")})`);
    taken.push(parseCidr(outsiderNet));

    let linkCounter = 0;
    const nextLinkNet = (): string => {
        for (;;) {
            // One /48 per link (2001:db8:e001::/64, e002::/64, ...): readable in traceroutes.
            const net = subnet(LINK_BLOCK, 64, ++linkCounter * 65536);
            if (!clashes(net)) return net;
        }
    };

    const usedAsns = new Set<number>([spec.asn, VULTR_PUBLIC_ASN, ...spec.pops.map((p) => p.bgp.remoteAsn)]);
    for (const p of spec.pops) {
        for (const c of p.communities) usedAsns.add(c.kind === "standard" ? c.value : c.data2);
    }
    const transitAsns = TRANSIT_ASN_POOL.filter((a) => !usedAsns.has(a));
    if (transitAsns.length < spec.pops.length) throw new Error(`the lab has ASNs for ${transitAsns.length} transits, ${spec.pops.length} needed`);

    const namespaces = new Map<string, NamespacePlan>();
    const ns = (name: string, role: NsRole, forwarding: boolean): NamespacePlan => {
        const plan = { name: LAB_NS_PREFIX + name, role, forwarding, addresses: [], routes: [] };
        namespaces.set(plan.name, plan);
        return plan;
    };
    const links: LinkPlan[] = [];
    const link = (a: NamespacePlan, aIf: string, b: NamespacePlan, bIf: string) => {
        links.push({ a: { ns: a.name, ifname: aIf }, b: { ns: b.name, ifname: bIf } });
    };

    const regions: RegionPlan[] = [];
    spec.pops.forEach((popSpec, i) => {
        const region = regionNames[i];
        const host = hostByName.get(popSpec.name);
        if (!host) throw new Error(`the stack rendered no host for PoP ${popSpec.name}`);
        const index = i + 1;
        const popNs = ns(`${region}-pop`, "pop", false);
        const edgeNs = ns(`${region}-edge`, "edge", true);
        const trNs = ns(`${region}-tr`, "transit", true);
        const cliNs = ns(`${region}-cli`, "client", false);

        const popAddress = canonical(host.ipv6);
        const popNetwork = network64(popAddress);
        const gateway = gatewayFor(popAddress);
        popNs.addresses.push({ ifname: POP_UPLINK, cidr: `${popAddress}/64` });
        popNs.routes.push(["::/0", "via", gateway, "dev", POP_UPLINK]);
        edgeNs.addresses.push({ ifname: "to-pop", cidr: `${gateway}/64` });
        edgeNs.addresses.push({ ifname: "lo", cidr: `${canonical(popSpec.bgp.neighbor)}/128` });
        link(popNs, POP_UPLINK, edgeNs, "to-pop");

        const edgeLink = nextLinkNet();
        const trEdgeAddr = hostIn(edgeLink, 1);
        const edgeTrAddr = hostIn(edgeLink, 2);
        edgeNs.addresses.push({ ifname: "to-tr", cidr: `${edgeTrAddr}/64` });
        trNs.addresses.push({ ifname: "to-edge", cidr: `${trEdgeAddr}/64` });
        edgeNs.routes.push(["::/0", "via", trEdgeAddr, "dev", "to-tr"]);
        link(edgeNs, "to-tr", trNs, "to-edge");

        const clientNet = clientNets[i];
        const clientAddr = hostIn(clientNet, 0x10);
        cliNs.addresses.push({ ifname: "eth0", cidr: `${clientAddr}/64` });
        cliNs.routes.push(["::/0", "via", hostIn(clientNet, 1), "dev", "eth0"]);
        trNs.addresses.push({ ifname: "to-cli", cidr: `${hostIn(clientNet, 1)}/64` });
        link(cliNs, "eth0", trNs, "to-cli");

        // A Vultr PoP talks to AS 64515 and is seen by the Internet behind 20473; an existing host's
        // upstream is built from its own bgp settings (private upstream ASNs are hidden the same way).
        const isVultrNeighbor = popSpec.bgp.remoteAsn === 64515;
        const publicAsn = isVultrNeighbor || isPrivate(popSpec.bgp.remoteAsn) ? VULTR_PUBLIC_ASN : popSpec.bgp.remoteAsn;
        const transitAsn = transitAsns[i];
        const edge: EdgePlan = {
            ns: edgeNs.name, region, routerId: `198.51.100.${10 + index}`, publicAsn,
            towardsPop: {
                ifname: "to-pop", gateway, popNetwork, neighbor: canonical(popSpec.bgp.neighbor),
                localAsn: popSpec.bgp.remoteAsn, popAddress, popAsn: spec.asn, multihop: popSpec.bgp.multihop,
                password: popSpec.bgp.password, bfd: popSpec.bgp.bfd,
            },
            towardsTransit: {
                name: `tr_${ident(region)}`, ifname: "to-tr", localAddress: edgeTrAddr, localAsn: publicAsn,
                neighborAddress: trEdgeAddr, neighborAsn: transitAsn, peerRegion: region,
            },
        };
        if (popSpec.bgp.multihop === 0) {
            notes.push(`PoP ${popSpec.name}: bgp.multihop is 0 but the lab's upstream is one hop away on lo; the session may not come up`);
        }
        const transit: TransitPlan = {
            ns: trNs.name, region, asn: transitAsn, routerId: `198.51.100.${100 + index}`,
            customerIfaces: ["to-cli"],
            edgePeer: {
                name: `edge_${ident(region)}`, localAddress: trEdgeAddr, localAsn: transitAsn,
                neighborAddress: edgeTrAddr, neighborAsn: publicAsn, peerRegion: region,
            },
            transitPeers: [],
        };
        regions.push({
            region, index,
            pop: { name: popSpec.name, ns: popNs.name, spec: popSpec, host, address: popAddress, gateway, network: popNetwork },
            edge, transit, client: { ns: cliNs.name, region, network: clientNet, address: clientAddr },
        });
    });

    // Transit interconnection: eBGP between neighbouring transits.
    const transits = regions.map((r) => r.transit);
    const pairs: Array<[number, number]> = [];
    if (transits.length <= FULL_MESH_MAX) {
        for (let a = 0; a < transits.length; a++) for (let b = a + 1; b < transits.length; b++) pairs.push([a, b]);
    } else {
        for (let a = 0; a < transits.length; a++) pairs.push([a, (a + 1) % transits.length]);
        notes.push(`${transits.length} regions: transits form a ring rather than a full mesh`);
    }
    for (const [a, b] of pairs) {
        const ta = transits[a];
        const tb = transits[b];
        const net = nextLinkNet();
        const aAddr = hostIn(net, 1);
        const bAddr = hostIn(net, 2);
        const aIf = `to-${ident(tb.region)}`.slice(0, 15);
        const bIf = `to-${ident(ta.region)}`.slice(0, 15);
        namespaces.get(ta.ns)!.addresses.push({ ifname: aIf, cidr: `${aAddr}/64` });
        namespaces.get(tb.ns)!.addresses.push({ ifname: bIf, cidr: `${bAddr}/64` });
        link(namespaces.get(ta.ns)!, aIf, namespaces.get(tb.ns)!, bIf);
        ta.transitPeers.push({ name: `tr_${ident(tb.region)}`, localAddress: aAddr, localAsn: ta.asn,
            neighborAddress: bAddr, neighborAsn: tb.asn, peerRegion: tb.region });
        tb.transitPeers.push({ name: `tr_${ident(ta.region)}`, localAddress: bAddr, localAsn: tb.asn,
            neighborAddress: aAddr, neighborAsn: ta.asn, peerRegion: ta.region });
    }

    // The origins: existing hosts, each in its own /64. The first behind the first region's transit,
    // further ones behind the last regions' (so that origins and PoPs are spread over the map).
    const origins: OriginPlan[] = spec.origins.map((o, k) => {
        const originHost = hostByName.get(o.name);
        if (!originHost) throw new Error(`the stack rendered no host for the origin ${o.name}`);
        const originNs = ns(k === 0 ? "origin" : `origin${k + 1}`, "origin", false);
        const originAddress = canonical(originHost.ipv6);
        const originNet = network64(originAddress);
        const originGw = gatewayFor(originAddress);
        const originTransit = transits[k === 0 ? 0 : (transits.length - (k % transits.length)) % transits.length];
        const ifname = k === 0 ? "to-origin" : `to-origin${k + 1}`;
        originNs.addresses.push({ ifname: "eth0", cidr: `${originAddress}/64` });
        originNs.routes.push(["::/0", "via", originGw, "dev", "eth0"]);
        namespaces.get(originTransit.ns)!.addresses.push({ ifname, cidr: `${originGw}/64` });
        originTransit.customerIfaces.push(ifname);
        link(originNs, "eth0", namespaces.get(originTransit.ns)!, ifname);
        return {
            ns: originNs.name, host: originHost, address: originAddress, network: originNet, gateway: originGw,
            meshAddress: o.meshAddress, port: o.port, healthPath: o.healthPath, transitRegion: originTransit.region,
        };
    });

    // The outsider: a client outside httpSources, behind the last transit.
    const outsiderNs = ns("outsider", "outsider", false);
    const outsiderTransit = transits[transits.length - 1];
    const outsiderAddr = hostIn(outsiderNet, 0x10);
    outsiderNs.addresses.push({ ifname: "eth0", cidr: `${outsiderAddr}/64` });
    outsiderNs.routes.push(["::/0", "via", hostIn(outsiderNet, 1), "dev", "eth0"]);
    namespaces.get(outsiderTransit.ns)!.addresses.push({ ifname: "to-outsider", cidr: `${hostIn(outsiderNet, 1)}/64` });
    outsiderTransit.customerIfaces.push("to-outsider");
    link(outsiderNs, "eth0", namespaces.get(outsiderTransit.ns)!, "to-outsider");

    for (const h of stack.hosts) {
        if (h.ipv4) {
            notes.push("the lab emulates the IPv6 Internet only: IPv4 addresses and sessions are not built");
            break;
        }
    }
    if (spec.prefixes.some((p) => parseCidr(p).family === 4)) {
        notes.push("IPv4 prefixes are announced by the config, but the lab has no IPv4 upstream: their sessions stay down");
    }
    for (const r of regions) {
        if (!contains(parseCidr(clientBlock), r.client.address)) throw new Error("client outside its block (bug)");
    }

    return {
        namespaces: [...namespaces.values()], links, regions, transits,
        origin: origins[0], origins,
        outsider: { ns: outsiderNs.name, network: outsiderNet, address: outsiderAddr, transitRegion: outsiderTransit.region },
        clientBlock, notes,
    };
}

function isPrivate(asn: number): boolean {
    return (asn >= 64512 && asn <= 65534) || (asn >= 4200000000 && asn <= 4294967294);
}

/** A region name usable in BIRD protocol names and interface names. */
function ident(text: string): string {
    return text.replace(/[^a-zA-Z0-9_]/g, "_");
}
