/**
 * The nftables ruleset of a PoP or the origin: one table of our own (`inet anycast`), opened
 * only for what the deployment needs, each service only from the sources that use it.
 *
 * The file never flushes the ruleset and touches no other table: it declares, deletes and
 * redefines `inet anycast`, so loading it again replaces exactly our table and leaves Docker's,
 * ufw's or the server's own tables alone. On a host this stack creates, input is default-drop.
 * On an existing server ("guard" mode) the chain's policy is accept, because a drop in any table
 * is final: our table then only drops traffic to the services the deployment adds (BGP, BFD,
 * WireGuard, HTTP(S) on the anycast address, the origin's service port) from sources that do not
 * use them, and leaves SSH and the server's own services to the firewall the server already has.
 *
 * Only the input hook is filtered. Output is free, and forward is left alone because the
 * origin of a hub mesh forwards between spokes over wg0. Address lists may mix IPv4 and
 * IPv6; they are split into one named interval set per family, because an nftables set has
 * one element type.
 */
import { EXPORTERS } from "../monitoring/exporters";
import { Family, IpAddress, IpPrefix } from "../addressing";

/** An element of an address set: an address or a prefix. */
export type AddressOrPrefix = IpAddress | IpPrefix;

export interface NftablesInput {
    role: "pop" | "origin";
    /** Anycast service addresses (a PoP serves HTTP/HTTPS on these only). */
    anycastAddresses: AddressOrPrefix[];
    /** Who may reach HTTP/HTTPS on the anycast addresses (Cloudflare's ranges); ignored on the origin. */
    httpSources: AddressOrPrefix[];
    /** BGP neighbours: TCP 179 (and BFD when enabled) only from them. */
    bgpNeighbors: AddressOrPrefix[];
    /** Unicast addresses of the other mesh members: WireGuard only from them. */
    meshPeerEndpoints: AddressOrPrefix[];
    meshPort: number;
    meshCidr: IpPrefix;
    /** SSH sources; empty means from anywhere (config validation warns about that). */
    adminCidrs: AddressOrPrefix[];
    /** The origin's HTTP port, reachable only over wg0 from the mesh. */
    originPort?: number;
    /** A PoP's relay and status port (failover.relayPort), reachable only over wg0 from the mesh. */
    relayPort?: number;
    /**
     * A PoP's health agent (health.statusPort): its status and metrics from the mesh over wg0, and
     * its status from the other PoPs' own addresses, which ask there when the mesh fails them.
     */
    agent?: { port: number; otherPops: AddressOrPrefix[] };
    bfd: boolean;
    /** SSH port (default 22), for existing hosts whose sshd listens elsewhere. */
    sshPort?: number;
    /**
     * An existing server: guard only the deployment's own services (policy accept), see the
     * file comment. Default false: a host the stack created, default-drop.
     */
    existingHost?: boolean;
}

/** Our table: the only one the ruleset defines, deletes or changes. */
export const NFTABLES_TABLE = "inet anycast";

/** The WireGuard interface name the mesh uses on every host. */
const MESH_INTERFACE = "wg0";

/** The PoP's exporters' ports (components/core/monitoring/exporters.ts), for nft's `{ a, b }`. */
function exporterPortList(): string {
    return Object.values(EXPORTERS).map((e) => e.port).join(", ");
}

/** BFD control (single hop), echo, and multihop control ports (RFC 5881, 5883). */
const BFD_PORTS = [3784, 3785, 4784];

interface FamilySplit {
    4: string[];
    6: string[];
}

/** Addresses or prefixes, canonical, deduplicated, split by family. */
function splitByFamily(list: readonly AddressOrPrefix[]): FamilySplit {
    const out: FamilySplit = { 4: [], 6: [] };
    for (const value of list) {
        // A /32 or /128 is written as the plain address, the way nft lists it back.
        const element = value instanceof IpPrefix && value.length === (value.family === 4 ? 32 : 128) ? value.network.toString() : value.toString();
        if (!out[value.family].includes(element)) out[value.family].push(element);
    }
    return out;
}

function port(value: number, what: string): number {
    if (!Number.isInteger(value) || value < 1 || value > 65535) throw new Error(`${what} ${value} is not a port number`);
    return value;
}

export function renderNftables(input: NftablesInput): string {
    const meshPort = port(input.meshPort, "meshPort");
    const sshPort = port(input.sshPort ?? 22, "sshPort");
    const mesh = input.meshCidr;
    const sets: string[] = [];
    const rules: string[] = [];

    /** Declares `<name>_v4`/`<name>_v6` for the non-empty families; returns which exist. */
    const declare = (name: string, list: readonly AddressOrPrefix[]): FamilySplit => {
        const split = splitByFamily(list);
        for (const family of [6, 4] as const) {
            if (split[family].length === 0) continue;
            sets.push(
                `    set ${name}_v${family} {`,
                `        type ipv${family}_addr`,
                // interval: prefixes as elements; auto-merge: overlapping user input is merged, not an error.
                "        flags interval",
                "        auto-merge",
                `        elements = { ${split[family].join(", ")} }`,
                "    }",
                "",
            );
        }
        return split;
    };
    const ipOf = (family: Family) => (family === 6 ? "ip6" : "ip");

    const neighbors = declare("bgp_neighbors", input.bgpNeighbors);
    const meshPeers = declare("mesh_peers", input.meshPeerEndpoints);
    const admins = declare("admin_sources", input.adminCidrs);
    const otherPops = declare("other_pops", input.role === "pop" ? input.agent?.otherPops ?? [] : []);
    let anycast: FamilySplit = { 4: [], 6: [] };
    let http: FamilySplit = { 4: [], 6: [] };
    if (input.role === "pop") {
        anycast = declare("anycast_addresses", input.anycastAddresses);
        http = declare("http_sources", input.httpSources);
    }

    for (const family of [6, 4] as const) {
        if (neighbors[family].length === 0) continue;
        rules.push(`        ${ipOf(family)} saddr @bgp_neighbors_v${family} tcp dport 179 accept comment "BGP from the neighbours only"`);
        if (input.bfd) {
            rules.push(`        ${ipOf(family)} saddr @bgp_neighbors_v${family} udp dport { ${BFD_PORTS.join(", ")} } accept comment "BFD"`);
        }
    }
    for (const family of [6, 4] as const) {
        if (meshPeers[family].length === 0) continue;
        rules.push(`        ${ipOf(family)} saddr @mesh_peers_v${family} udp dport ${meshPort} accept comment "WireGuard from mesh members"`);
    }
    const meshIp = ipOf(mesh.family);
    const meshIcmp = mesh.family === 6 ? "ipv6-icmp" : "icmp";
    rules.push(`        iifname "${MESH_INTERFACE}" ${meshIp} saddr ${mesh} meta l4proto ${meshIcmp} accept comment "ICMP inside the mesh"`);
    if (input.role === "pop") {
        let httpRules = 0;
        for (const family of [6, 4] as const) {
            if (anycast[family].length === 0 || http[family].length === 0) continue;
            rules.push(`        ${ipOf(family)} saddr @http_sources_v${family} ${ipOf(family)} daddr @anycast_addresses_v${family} tcp dport { 80, 443 } accept comment "HTTP(S) on the anycast address from the front door"`);
            httpRules++;
        }
        if (httpRules === 0) {
            // An empty list would silently close the site; "from anywhere" would bypass Cloudflare.
            throw new Error("a PoP firewall needs httpSources of the same family as an anycast address (resolve Cloudflare's ranges first)");
        }
        if (input.relayPort !== undefined) {
            rules.push(`        iifname "${MESH_INTERFACE}" ${meshIp} saddr ${mesh} tcp dport ${port(input.relayPort, "relayPort")} accept comment "relay for the other PoPs, over the mesh only"`);
        }
        if (input.agent) {
            const agentPort = port(input.agent.port, "agent status port");
            rules.push(`        iifname "${MESH_INTERFACE}" ${meshIp} saddr ${mesh} tcp dport ${agentPort} accept comment "health agent status and metrics, over the mesh"`);
            for (const family of [6, 4] as const) {
                if (otherPops[family].length === 0) continue;
                rules.push(`        ${ipOf(family)} saddr @other_pops_v${family} tcp dport ${agentPort} accept comment "health agent status for the other PoPs when the mesh fails them"`);
            }
        }
        const exporterPorts = exporterPortList();
        rules.push(`        iifname "${MESH_INTERFACE}" ${meshIp} saddr ${mesh} tcp dport { ${exporterPorts} } accept comment "the bird and nginx exporters, over the mesh only"`);
    } else if (input.originPort !== undefined) {
        rules.push(`        iifname "${MESH_INTERFACE}" ${meshIp} saddr ${mesh} tcp dport ${port(input.originPort, "originPort")} accept comment "the origin service, over the mesh only"`);
    }
    const guard = input.existingHost === true;
    if (guard) {
        // SSH stays with the server's own firewall: cutting it off there would lock its admins out.
    } else if (input.adminCidrs.length === 0) {
        rules.push(`        tcp dport ${sshPort} accept comment "SSH from anywhere: firewall.adminCidrs is empty"`);
    } else {
        for (const family of [6, 4] as const) {
            if (admins[family].length === 0) continue;
            rules.push(`        ${ipOf(family)} saddr @admin_sources_v${family} tcp dport ${sshPort} accept comment "SSH from admin networks"`);
        }
    }

    // Guard mode: what the accept rules above did not let through is dropped only for our services.
    const guarded: string[] = [];
    if (guard) {
        if (input.bgpNeighbors.length > 0) {
            guarded.push(`        tcp dport 179 counter drop comment "BGP from anyone else"`);
            if (input.bfd) guarded.push(`        udp dport { ${BFD_PORTS.join(", ")} } counter drop comment "BFD from anyone else"`);
        }
        guarded.push(`        udp dport ${meshPort} counter drop comment "WireGuard from outside the mesh"`);
        // The origin's service is the deployment's too: the PoPs reach it over the mesh, and
        // nobody else may reach it around the front door.
        if (input.role === "origin" && input.originPort !== undefined) {
            guarded.push(`        tcp dport ${port(input.originPort, "originPort")} counter drop comment "the origin service from anyone but the mesh"`);
        }
        if (input.role === "pop") {
            guarded.push(`        tcp dport { ${exporterPortList()} } counter drop comment "the exporters from anyone but the mesh"`);
        }
        if (input.role === "pop" && input.agent) {
            guarded.push(`        tcp dport ${input.agent.port} counter drop comment "the health agent from anyone but the mesh and the other PoPs"`);
        }
        for (const family of [6, 4] as const) {
            if (anycast[family].length === 0) continue;
            guarded.push(`        ${ipOf(family)} daddr @anycast_addresses_v${family} tcp dport { 80, 443 } counter drop comment "HTTP(S) on the anycast address from anyone but the front door"`);
        }
    }

    return [
        "#!/usr/sbin/nft -f",
        `# nftables table of a${input.role === "origin" ? "n origin" : " PoP"} host, rendered by pulumi-anycast. Do not edit.`,
        guard
            ? "# An existing server: only the deployment's own services are guarded; SSH and the server's services are left to its own tables."
            : "# Input is default-drop; output and forward are not filtered (a hub origin forwards over wg0).",
        "# Only this table is replaced (declared, deleted, redefined): the ruleset is never flushed, other tables stay.",
        `table ${NFTABLES_TABLE}`,
        `delete table ${NFTABLES_TABLE}`,
        "",
        `table ${NFTABLES_TABLE} {`,
        ...sets,
        "    chain input {",
        `        type filter hook input priority filter; policy ${guard ? "accept" : "drop"};`,
        "",
        "        ct state established,related accept",
        "        iif \"lo\" accept",
        ...(guard ? [] : [
            "        # Ahead of the invalid-state drop: neighbour discovery and router advertisements keep the link and",
            "        # the default route (and so the BGP session) alive; packet-too-big keeps PMTU discovery",
            "        # working, which matters with a 1420-byte tunnel behind the proxy.",
            "        icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept",
            "        ip6 saddr fe80::/10 icmpv6 type { mld-listener-query, mld-listener-report, mld2-listener-report } accept",
            "        icmp type { destination-unreachable, time-exceeded, parameter-problem, echo-request } accept",
            "        ct state invalid drop",
        ]),
        "",
        ...rules,
        "",
        ...(guard ? guarded : ["        counter drop comment \"everything else\""]),
        "    }",
        "}",
        "",
    ].join("\n");
}

/** Where the ruleset is installed: a path of our own, never the distribution's /etc/nftables.conf. */
export const NFTABLES_PATH = "/etc/anycast/nftables.conf";
export const FIREWALL_UNIT = "anycast-firewall.service";

/**
 * The boot unit that loads our table: ours rather than Debian's nftables.service, whose
 * /etc/nftables.conf belongs to the server (and flushes the whole ruleset by default).
 */
export function renderFirewallUnit(): string {
    return [
        "[Unit]",
        "Description=The pulumi-anycast nftables table (inet anycast only)",
        "Wants=network-pre.target",
        "Before=network-pre.target",
        "After=nftables.service",
        "DefaultDependencies=no",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        `ExecStart=/usr/sbin/nft -f ${NFTABLES_PATH}`,
        `ExecReload=/usr/sbin/nft -f ${NFTABLES_PATH}`,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ].join("\n");
}
