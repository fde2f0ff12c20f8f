/** Firewall inputs for tests: a PoP's and an origin's, from the example stacks. */
import { parseAddressOrPrefix } from "../../components/core/addressing";
import { AddressOrPrefix, NftablesInput } from "../../components/core/render/nftables";
import { AnycastSpec } from "../../components/core/model";
import { TEST_HOST_ADDRESSES } from "./fixtures";

/** A few of Cloudflare's published ranges, standing in for what the stack fetches at deploy time. */
export const FRONT_DOOR_SOURCES = ["173.245.48.0/20", "103.21.244.0/22", "2400:cb00::/32", "2606:4700::/32"];

/** Sources as text (Cloudflare's ranges arrive so at deploy time; components/firewall.ts parses them) or parsed. */
const sourcesOf = (list: ReadonlyArray<string | AddressOrPrefix>): AddressOrPrefix[] =>
    list.map((s) => (typeof s === "string" ? parseAddressOrPrefix(s) : s));

export function popFirewall(spec: AnycastSpec, popName: string, httpSources: ReadonlyArray<string | AddressOrPrefix>): NftablesInput {
    const pop = spec.pops.find((p) => p.name === popName)!;
    const others = [spec.origin.name, ...spec.pops.map((p) => p.name)].filter((n) => n !== popName);
    return {
        role: "pop",
        anycastAddresses: [spec.address],
        httpSources: sourcesOf(httpSources),
        bgpNeighbors: [pop.bgp.neighbor],
        meshPeerEndpoints: sourcesOf(others.map((n) => TEST_HOST_ADDRESSES[n].ipv6)),
        meshPort: spec.mesh.port,
        meshCidr: spec.mesh.cidr,
        adminCidrs: spec.firewall.adminCidrs,
        relayPort: spec.failover.relayPort,
        agent: { port: spec.health.statusPort, otherPops: sourcesOf(spec.pops.filter((p) => p.name !== popName).map((p) => TEST_HOST_ADDRESSES[p.name].ipv6)) },
        bfd: pop.bgp.bfd !== undefined,
    };
}

export function originFirewall(spec: AnycastSpec): NftablesInput {
    return {
        role: "origin",
        anycastAddresses: [],
        httpSources: [],
        bgpNeighbors: [],
        meshPeerEndpoints: sourcesOf(spec.pops.map((p) => TEST_HOST_ADDRESSES[p.name].ipv6)),
        meshPort: spec.mesh.port,
        meshCidr: spec.mesh.cidr,
        adminCidrs: spec.firewall.adminCidrs,
        originPort: spec.origin.port,
        bfd: false,
    };
}
