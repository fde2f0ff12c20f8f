/**
 * BIRD configs for the lab's own routers: the emulated Vultr edges and the transits. These are
 * the "cloud" (what Vultr and the Internet run), not our product, so the lab renders them itself;
 * the PoPs run only what the components rendered.
 */
import { EdgePlan, TransitPlan } from "./topology";

/** Routes the emulated upstream offers each PoP besides a default: a full-ish table (issue 4). */
export const UPSTREAM_TABLE_SIZE = 1000;
/** The table's routes come from 3fff::/20 (RFC 9637 documentation space). */
const UPSTREAM_TABLE_BLOCK = "3fff:0";

/** Edge timers: short error wait and connect delays, so the cloud side is never what slows recovery. */
const EDGE_ERROR_WAIT = "1, 2";

function header(what: string, routerId: string, logFile: string): string[] {
    return [
        `# ${what}`,
        "# Rendered by the pulumi-anycast lab: part of the emulated cloud, not of the product.",
        `log "${logFile}" all;`,
        `router id ${routerId};`,
        "",
        "protocol device {",
        "}",
        "",
        "# Only routes learned over BGP go to the kernel; connected networks are there already.",
        "# scan time 1: BIRD 2.0.12 measured here applies a hold-timer expiry's withdrawal only at a later",
        "# wake-up of its loop, ~3 s late with the default scan time; a real router withdraws at once.",
        "protocol kernel {",
        "    scan time 1;",
        "    ipv6 { import none; export where source = RTS_BGP; };",
        "}",
        "",
        "# RFC 8326: a route marked GRACEFUL_SHUTDOWN (65535:0) is the last resort, so traffic leaves",
        "# a draining PoP while its route still exists.",
        "filter honour_graceful_shutdown {",
        "    if (65535, 0) ~ bgp_community then bgp_local_pref = 0;",
        "    accept;",
        "}",
        "",
    ];
}

export function renderEdgeBird(edge: EdgePlan, logFile: string, tableSize = UPSTREAM_TABLE_SIZE): string {
    const p = edge.towardsPop;
    const t = edge.towardsTransit;
    const lines = header(`Emulated Vultr edge for region ${edge.region}: AS${p.localAsn} towards the PoP, AS${edge.publicAsn} towards the Internet.`,
        edge.routerId, logFile);
    lines.push(
        "# The PoP's network, announced to the Internet so its unicast address (WireGuard, SSH) is reachable;",
        "# also the route BGP resolves the PoP's next hop through.",
        `protocol direct pop_link {`,
        `    ipv6;`,
        `    interface "${p.ifname}";`,
        `}`,
        "",
        `# What the upstream offers the PoP: a default route and ${tableSize} more. A PoP must import none of it.`,
        "protocol static upstream_table {",
        "    ipv6;",
        "    route ::/0 unreachable;",
    );
    for (let i = 1; i <= tableSize; i++) lines.push(`    route ${UPSTREAM_TABLE_BLOCK}:${i.toString(16)}::/48 unreachable;`);
    lines.push("}", "");
    if (p.bfd) {
        lines.push(
            "# BFD as the PoP's config asks for it (multihop, UDP 4784).",
            "protocol bfd {",
            `    multihop { min rx interval ${p.bfd.intervalMs} ms; min tx interval ${p.bfd.intervalMs} ms; multiplier ${p.bfd.multiplier}; };`,
            "}",
            "",
        );
    }
    lines.push(
        `protocol bgp pop {`,
        `    description "PoP at ${p.popAddress} (AS${p.popAsn})";`,
        `    local ${p.neighbor} as ${p.localAsn};`,
        `    neighbor ${p.popAddress} as ${p.popAsn};`,
        p.multihop > 0 ? `    multihop ${p.multihop};` : "    direct;",
        `    password "${p.password.replace(/["\\]/g, "")}";`,
        "    # The PoP's hold time wins (BGP negotiates the smaller); the edge reconnects fast after errors.",
        `    error wait time ${EDGE_ERROR_WAIT};`,
        "    error forget time 10;",
        "    connect delay time 1;",
        "    connect retry time 1;",
        p.bfd ? "    bfd on;" : "    # no BFD: the PoP's config does not ask for it",
        "    ipv6 {",
        "        import filter honour_graceful_shutdown;",
        "        import limit 1000 action block;",
        `        export where proto = "upstream_table";`,
        "    };",
        "}",
        "",
        "# Vultr's action communities as their edge applies them towards one neighbour AS.",
        "filter to_internet {",
        `    if proto = "pop_link" then accept;`,
        `    if proto != "pop" then reject;`,
        "    if (20473, 6000) ~ bgp_community then reject;",
        ...vultrActions(t.neighborAsn, t.localAsn),
        "    accept;",
        "}",
        "",
        `protocol bgp ${t.name} {`,
        `    description "transit ${t.peerRegion} (AS${t.neighborAsn})";`,
        `    local ${t.localAddress} as ${t.localAsn};`,
        `    neighbor ${t.neighborAddress} as ${t.neighborAsn};`,
        "    # The edge reaches the Internet by a static default route; it needs no routes from the transit.",
        "    ipv6 { import none; export filter to_internet; };",
        "}",
    );
    return lines.join("\n") + "\n";
}

/** 64600:N (do not announce to N) and 64601-64603:N (prepend 1-3x to N); standard communities hold 16-bit ASNs only. */
function vultrActions(neighborAsn: number, ownAsn: number): string[] {
    if (neighborAsn > 65535) return ["    # the transit's ASN is 32-bit: no standard action community can name it"];
    const prepend = (n: number) => Array.from({ length: n }, () => `bgp_path.prepend(${ownAsn});`).join(" ");
    return [
        `    if (64600, ${neighborAsn}) ~ bgp_community then reject;`,
        ...[1, 2, 3].map((n) => `    if (${64600 + n}, ${neighborAsn}) ~ bgp_community then { ${prepend(n)} }`),
    ];
}

export function renderTransitBird(transit: TransitPlan, logFile: string): string {
    const lines = header(`Transit router for region ${transit.region}, AS${transit.asn}.`, transit.routerId, logFile);
    lines.push(
        "# Customer networks (clients, the origin). Exported by protocol name: a static copy of a",
        "# connected network would lose to the direct route and never be exported.",
        "protocol direct customers {",
        "    ipv6;",
        `    interface ${transit.customerIfaces.map((i) => `"${i}"`).join(", ")};`,
        "}",
        "",
        "filter to_peers {",
        `    if proto = "customers" then accept;`,
        "    if source = RTS_BGP then accept;",
        "    reject;",
        "}",
        "",
        `protocol bgp ${transit.edgePeer.name} {`,
        `    description "Vultr edge ${transit.region} (AS${transit.edgePeer.neighborAsn})";`,
        `    local ${transit.edgePeer.localAddress} as ${transit.edgePeer.localAsn};`,
        `    neighbor ${transit.edgePeer.neighborAddress} as ${transit.edgePeer.neighborAsn};`,
        "    ipv6 { import filter honour_graceful_shutdown; export none; };",
        "}",
    );
    for (const peer of transit.transitPeers) {
        lines.push(
            "",
            `protocol bgp ${peer.name} {`,
            `    description "transit ${peer.peerRegion} (AS${peer.neighborAsn})";`,
            `    local ${peer.localAddress} as ${peer.localAsn};`,
            `    neighbor ${peer.neighborAddress} as ${peer.neighborAsn};`,
            "    ipv6 { import filter honour_graceful_shutdown; export filter to_peers; };",
            "}",
        );
    }
    return lines.join("\n") + "\n";
}
