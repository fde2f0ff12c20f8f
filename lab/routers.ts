/**
 * BIRD configs for the lab's own routers: the transits and, with `--edge bird`, the emulated
 * provider edges (lab/frr.ts renders the default FRR edge). These are the "cloud" (what Vultr
 * and the Internet run), not our product, so the lab renders them itself; the PoPs run only
 * what the components rendered.
 */
import { Family } from "../components/core/addressing";
import { PRIVATE_ASN_RANGES } from "../components/core/origin-as";
import { VULTR_ASN } from "../components/core/vultr";
import { LabBgpPeer, LabEdge, LabTransit } from "./topology";

/** Routes the emulated upstream offers each PoP besides a default: a full-ish table (issue 4). */
export const UPSTREAM_TABLE_SIZE = 1000;

/**
 * The upstream table's routes: /48s from 3fff::/20 (RFC 9637 documentation space) and /26s from
 * 198.18.0.0/16 (RFC 2544 benchmarking space; the lab's fallback IPv4 clients use 198.19.0.0/16).
 */
export function upstreamTable(family: Family, size = UPSTREAM_TABLE_SIZE): string[] {
    return Array.from({ length: size }, (_, k) => {
        const i = k + 1;
        if (family === 6) return `3fff:0:${i.toString(16)}::/48`;
        const offset = i * 64;
        return `198.${18 + (offset >> 16)}.${(offset >> 8) & 0xff}.${offset & 0xff}/26`;
    });
}

/** Edge timers: short error wait and connect delays, so the cloud side is never what slows recovery. */
const EDGE_ERROR_WAIT = "1, 2";

const channel = (family: Family) => (family === 6 ? "ipv6" : "ipv4");

function header(what: string, routerId: string, logFile: string, families: Family[]): string[] {
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
        ...families.flatMap((f) => [
            `protocol kernel kernel${f} {`,
            "    scan time 1;",
            `    ${channel(f)} { import none; export where source = RTS_BGP; };`,
            "}",
        ]),
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

function familiesOf(edge: LabEdge): Family[] {
    return edge.towardsPop.sessions.map((s) => s.family);
}

export function renderEdgeBird(edge: LabEdge, logFile: string, tableSize = UPSTREAM_TABLE_SIZE): string {
    const p = edge.towardsPop;
    const families = familiesOf(edge);
    const lines = header(`Emulated provider edge for region ${edge.region}: AS${p.localAsn} towards the PoP, ` +
        `AS${edge.publicAsn} towards the Internet.`, edge.routerId, logFile, families);
    lines.push(
        "# The PoP's network, announced to the Internet so its unicast address (WireGuard, SSH) is reachable;",
        "# also the route BGP resolves the PoP's next hop through. IPv4 PoP networks stay local.",
        "protocol direct pop_link {",
        "    ipv6;",
        `    interface "${p.ifname}";`,
        "}",
        "",
    );
    if (families.includes(4)) {
        lines.push(
            "# The IPv4 link network too, or a multihop IPv4 session's next hop (the PoP's address) does",
            "# not resolve and its routes stay unreachable. Never exported (to_internet4 takes only the PoP's).",
            "protocol direct pop_link4 {",
            "    ipv4;",
            `    interface "${p.ifname}";`,
            "}",
            "",
        );
    }
    for (const family of families) {
        lines.push(
            `# What the upstream offers the PoP: a default route and ${tableSize} more. A PoP must import none of it.`,
            `protocol static upstream_table${family} {`,
            `    ${channel(family)};`,
            `    route ${family === 6 ? "::/0" : "0.0.0.0/0"} unreachable;`,
            ...upstreamTable(family, tableSize).map((r) => `    route ${r} unreachable;`),
            "}",
            "",
        );
    }
    if (p.bfd) {
        const timers = `min rx interval ${p.bfd.intervalMs} ms; min tx interval ${p.bfd.intervalMs} ms; multiplier ${p.bfd.multiplier};`;
        lines.push(
            "# BFD as the PoP's config asks for it (multihop on UDP 4784 for a multihop session).",
            "protocol bfd {",
            p.multihop > 0 ? `    multihop { ${timers} };` : `    interface "${p.ifname}" { ${timers} };`,
            "}",
            "",
        );
    }
    for (const s of p.sessions) {
        lines.push(
            `protocol bgp ${s.name} {`,
            `    description "PoP at ${s.popAddress} (AS${p.popAsn})";`,
            `    local ${s.neighbor} as ${p.localAsn};`,
            `    neighbor ${s.popAddress} as ${p.popAsn};`,
            p.multihop > 0 ? `    multihop ${p.multihop};` : "    direct;",
            `    password "${p.password.replace(/["\\]/g, "")}";`,
            "    # The PoP's hold time wins (BGP negotiates the smaller); the edge reconnects fast after errors.",
            `    error wait time ${EDGE_ERROR_WAIT};`,
            "    error forget time 10;",
            "    connect delay time 1;",
            "    connect retry time 1;",
            p.bfd ? "    bfd on;" : "    # no BFD: the PoP's config does not ask for it",
            `    ${channel(s.family)} {`,
            "        import filter honour_graceful_shutdown;",
            "        import limit 1000 action block;",
            `        export where proto = "upstream_table${s.family}";`,
            "    };",
            "}",
            "",
        );
    }
    const fromPop = p.sessions.map((s) => `proto = "${s.name}"`).join(" || ");
    for (const t of edge.towardsTransit.peers) {
        lines.push(
            `# Vultr's action communities as their edge applies them towards AS${t.neighborAsn}.`,
            `filter to_internet${t.family} {`,
            t.family === 6 ? `    if proto = "pop_link" then accept;` : "    # IPv4 PoP networks are not announced.",
            `    if !(${fromPop}) then reject;`,
            `    if (${VULTR_ASN}, 6000) ~ bgp_community then reject;`,
            ...(edge.removesPrivateAsn ? [
                "    # Vultr removes a customer's private ASN and exports from AS20473 alone (origin-as.ts).",
                `    bgp_path.delete([${PRIVATE_ASN_RANGES.map(([first, last]) => `${first}..${last}`).join(", ")}]);`,
            ] : []),
            ...vultrActions(t.neighborAsn, t.localAsn),
            "    accept;",
            "}",
            "",
            `protocol bgp ${t.name} {`,
            `    description "transit ${t.peerRegion} (AS${t.neighborAsn})";`,
            `    local ${t.localAddress} as ${t.localAsn};`,
            `    neighbor ${t.neighborAddress} as ${t.neighborAsn};`,
            "    # The edge reaches the Internet by a static default route; it needs no routes from the transit.",
            `    ${channel(t.family)} { import none; export filter to_internet${t.family}; };`,
            "}",
            "",
        );
    }
    return lines.join("\n");
}

/**
 * 64600:N (do not announce to N), 64601-64603:N (prepend 1-3x to N), 20473:6001-6003 (prepend
 * 1-3x to all); standard communities hold 16-bit ASNs only. The most prepends asked for wins.
 */
function vultrActions(neighborAsn: number, ownAsn: number): string[] {
    const prepend = (n: number) => Array.from({ length: n }, () => `bgp_path.prepend(${ownAsn});`).join(" ");
    const towards = (n: number) => (neighborAsn > 65535 ? "" : `(${64600 + n}, ${neighborAsn}) ~ bgp_community || `);
    return [
        ...(neighborAsn > 65535 ? ["    # the transit's ASN is 32-bit: no standard action community can name it"]
            : [`    if (64600, ${neighborAsn}) ~ bgp_community then reject;`]),
        ...[3, 2, 1].map((n, i) => `    ${i === 0 ? "if" : "else if"} ${towards(n)}(${VULTR_ASN}, ${6000 + n}) ~ bgp_community then { ${prepend(n)} }`),
    ];
}

function transitSession(peer: LabBgpPeer, description: string, exportFilter: string): string[] {
    return [
        "",
        `protocol bgp ${peer.name} {`,
        `    description "${description}";`,
        `    local ${peer.localAddress} as ${peer.localAsn};`,
        `    neighbor ${peer.neighborAddress} as ${peer.neighborAsn};`,
        `    ${channel(peer.family)} { import filter honour_graceful_shutdown; export ${exportFilter}; };`,
        "}",
    ];
}

export function renderTransitBird(transit: LabTransit, logFile: string): string {
    const families = transit.edgePeers.map((p) => p.family);
    const lines = header(`Transit router for region ${transit.region}, AS${transit.asn}.`, transit.routerId, logFile, families);
    lines.push(
        "# Customer networks (clients, the origin). Exported by protocol name: a static copy of a",
        "# connected network would lose to the direct route and never be exported.",
        "protocol direct customers {",
        ...families.map((f) => `    ${channel(f)};`),
        `    interface ${transit.customerIfaces.map((i) => `"${i}"`).join(", ")};`,
        "}",
    );
    for (const family of families) {
        const routes = transit.customerRoutes.filter((r) => (r.prefix.includes(":") ? 6 : 4) === family);
        if (routes.length === 0) continue;
        lines.push(
            "",
            "# Customers attached by a host route (an address smaller than a subnet of its own).",
            `protocol static customer_hosts${family} {`,
            `    ${channel(family)};`,
            ...routes.map((r) => `    route ${r.prefix} via "${r.ifname}";`),
            "}",
        );
    }
    lines.push(
        "",
        "filter to_peers {",
        `    if proto = "customers" || proto ~ "customer_hosts*" then accept;`,
        "    if source = RTS_BGP then accept;",
        "    reject;",
        "}",
    );
    for (const peer of transit.edgePeers) {
        lines.push(...transitSession(peer, `provider edge ${transit.region} (AS${peer.neighborAsn})`, "none"));
    }
    for (const peer of transit.transitPeers) {
        lines.push(...transitSession(peer, `transit ${peer.peerRegion} (AS${peer.neighborAsn})`, "filter to_peers"));
    }
    return lines.join("\n") + "\n";
}
