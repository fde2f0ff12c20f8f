/**
 * `anycast-net.sh`, installed as /usr/local/sbin/anycast-net and run at boot by
 * anycast-net.service (and again after every push): the host-side networking BIRD relies on.
 *
 *  - the anycast address as a /128 on `lo` (nginx binds it; BIRD only announces the prefix);
 *  - the static host route to the BGP neighbour via the current default gateway: Vultr's
 *    neighbour is multihop, and once routes are learned the session must not follow them
 *    (`staticRouteToNeighbor` in components/core/model.ts). The gateway is usually a
 *    link-local RA-learned address, so the route carries `dev` too. The route also sets a hop
 *    limit of 255: BIRD 2.0.12 sends multihop BFD with the system default (64) and has no option
 *    to change it, while FRR's bfdd by default drops multihop packets that arrive with a TTL
 *    below 254. BGP is not affected (BIRD sets the session's TTL from `multihop` on its socket),
 *    and the route is the same with or without BFD, so a BFD change never touches the
 *    bootstrap script in userData (which would replace the host);
 *  - accept_ra=2, because forwarding=1 makes Linux ignore router advertisements otherwise and
 *    the default route would silently expire;
 *  - an unreachable route for the mesh network under wg0's own (same prefix, higher metric): when
 *    wg0 is down, the proxy's and the health agent's traffic to the origin fails at once instead
 *    of leaving by the default route, in clear text, and timing out somewhere upstream;
 *  - the BIRD state file with state 0 (withdrawn) if it is missing, so bird.conf's include
 *    always resolves and a fresh host starts withdrawn until the health agent says otherwise.
 *
 * It does not depend on the host's own addresses (the bootstrap copy in cloud-init is
 * rendered before they exist). Every path and address is an environment variable defaulting
 * to the real value, so the lab runs the same script inside a network namespace.
 */
import { hasIpv4 } from "../addressing";
import { ARTIFACTS } from "../artifacts";
import { PopRenderInput } from "../model";
import { BIRD_STATE_FILE, renderBirdStateInclude } from "./bird";

/** Where the script is installed on a PoP (components/core/artifacts.ts). */
export const NET_SETUP_PATH = ARTIFACTS["anycast-net.sh"].remotePath;

/** Metric of the mesh's unreachable route: above the kernel's connected routes (IPv6 256, IPv4 0). */
export const MESH_GUARD_METRIC = 4000;

/**
 * Hop limit of packets to the BGP neighbour: 255, what RFC 5883 multihop BFD senders use and what
 * FRR's default `minimum-ttl 254` expects one hop away. BGP itself is not affected: BIRD sets the
 * session's TTL from `multihop` on its socket.
 */
export const BFD_NEIGHBOR_HOP_LIMIT = 255;

function shellWord(value: string, what: string): string {
    // Every value here is an address, a path or a number; refuse anything that would need quoting.
    if (!/^[A-Za-z0-9_.:/@%+-]+$/.test(value)) throw new Error(`${what} ${JSON.stringify(value)} cannot be written into the shell script`);
    return value;
}

export function renderNetSetup(input: PopRenderInput): string {
    const { pop, announcement } = input;
    if (announcement.address.family !== 6) {
        throw new Error(`anycast address "${announcement.address}" is not an IPv6 address`);
    }
    const hasV4Prefix = hasIpv4(announcement.prefixes);
    const bgp = pop.bgp;
    const hopLimit = ` hoplimit ${BFD_NEIGHBOR_HOP_LIMIT}`;
    const routeV6 = bgp.staticRouteToNeighbor;
    const routeV4 = bgp.staticRouteToNeighbor && hasV4Prefix;
    if (routeV6 && bgp.neighbor.family !== 6) throw new Error(`BGP neighbour "${bgp.neighbor}" is not an IPv6 address`);
    if (routeV4 && bgp.neighbor4.family !== 4) throw new Error(`BGP neighbour "${bgp.neighbor4}" is not an IPv4 address`);
    const stateLine = renderBirdStateInclude(0).trimEnd();
    // The state line goes into single quotes below; it holds none.
    if (stateLine.includes("'")) throw new Error("state include line contains a single quote");

    const lines: string[] = [
        "#!/usr/bin/env bash",
        `# anycast-net for PoP ${shellWord(pop.name, "PoP name")}, rendered by pulumi-anycast. Do not edit.`,
        "# Puts the anycast address on lo, pins the route to the BGP neighbour and seeds BIRD's",
        "# state file. Idempotent: safe at every boot and after every push.",
        "set -euo pipefail",
        "",
        "# Every value can be overridden from the environment (the lab runs this in a namespace).",
        `ANYCAST_ADDRESS="\${ANYCAST_ADDRESS:-${shellWord(announcement.address.toString(), "anycast address")}}"`,
        `ANYCAST_LOOPBACK="\${ANYCAST_LOOPBACK:-lo}"`,
        `ANYCAST_STATE_FILE="\${ANYCAST_STATE_FILE:-${shellWord(BIRD_STATE_FILE, "state file")}}"`,
    ];
    if (routeV6) lines.push(`BGP_NEIGHBOR="\${BGP_NEIGHBOR:-${shellWord(bgp.neighbor.toString(), "BGP neighbour")}}"`);
    const mesh = input.mesh?.cidr;
    if (mesh) lines.push(`MESH_CIDR="\${MESH_CIDR:-${shellWord(mesh.toString(), "mesh CIDR")}}"`);
    if (routeV4) lines.push(`BGP_NEIGHBOR4="\${BGP_NEIGHBOR4:-${shellWord(bgp.neighbor4.toString(), "BGP neighbour")}}"`);
    lines.push(
        "# How long to wait for the default route (router advertisements may still be on their way at boot).",
        `DEFAULT_ROUTE_WAIT="\${DEFAULT_ROUTE_WAIT:-60}"`,
        "",
        "log() { echo \"anycast-net: $*\" >&2; }",
        "",
        "# Prints \"<gateway> <device>\" of the first default route of a family (4 or 6), or nothing.",
        "# Handles plain and multipath (`nexthop via ... dev ...`) routes; the gateway may be link-local.",
        "default_gateway() {",
        "    ip \"-$1\" route show default | awk '",
        "        { for (i = 1; i < NF; i++) { if ($i == \"via\" && gw == \"\") gw = $(i + 1); if ($i == \"dev\" && gw != \"\" && dev == \"\") dev = $(i + 1) } }",
        "        END { if (gw != \"\" && dev != \"\") print gw, dev }'",
        "}",
        "",
        "wait_for_default_gateway() {",
        "    local family=\"$1\" waited=0 found",
        "    while :; do",
        "        found=\"$(default_gateway \"$family\")\"",
        "        if [[ -n \"$found\" ]]; then echo \"$found\"; return 0; fi",
        "        if (( waited >= DEFAULT_ROUTE_WAIT )); then return 1; fi",
        "        sleep 1",
        "        waited=$(( waited + 1 ))",
        "    done",
        "}",
        "",
        "# Router advertisements must keep working even when forwarding is on.",
        "sysctl -q -w net.ipv6.conf.all.accept_ra=2 net.ipv6.conf.default.accept_ra=2",
        "",
        "ip link set dev \"$ANYCAST_LOOPBACK\" up",
        "# replace, not add: a second run must not fail on the existing address. nodad: usable at once;",
        "# otherwise it is tentative until the kernel's DAD work runs, and nginx started right after",
        "# cannot bind it (EADDRNOTAVAIL), which a busy boot does show.",
        "ip -6 addr replace \"$ANYCAST_ADDRESS/128\" dev \"$ANYCAST_LOOPBACK\" nodad",
        "",
    );
    if (routeV6) {
        lines.push(
            "if ! gateway6=\"$(wait_for_default_gateway 6)\"; then",
            "    log \"no IPv6 default route after ${DEFAULT_ROUTE_WAIT}s: cannot pin the route to $BGP_NEIGHBOR\"",
            "    exit 1",
            "fi",
            "read -r via6 dev6 <<< \"$gateway6\"",
            "# The slash form of the name copes with interface names that contain dots (VLANs).",
        "sysctl -q -w \"net/ipv6/conf/$dev6/accept_ra=2\"",
            "# The multihop BGP session must reach the neighbour via the gateway even after routes are learned.",
            "# hoplimit: multihop BFD leaves with TTL 255 (BIRD sends the system default of 64 otherwise).",
            `ip -6 route replace "$BGP_NEIGHBOR/128" via "$via6" dev "$dev6"${hopLimit}`,
            "log \"$ANYCAST_ADDRESS/128 on $ANYCAST_LOOPBACK; $BGP_NEIGHBOR/128 via $via6 dev $dev6\"",
            "",
        );
    } else {
        lines.push("log \"$ANYCAST_ADDRESS/128 on $ANYCAST_LOOPBACK (no static route: bgp.staticRoute is off)\"", "");
    }
    if (routeV4) {
        lines.push(
            "if ! gateway4=\"$(wait_for_default_gateway 4)\"; then",
            "    log \"no IPv4 default route after ${DEFAULT_ROUTE_WAIT}s: cannot pin the route to $BGP_NEIGHBOR4\"",
            "    exit 1",
            "fi",
            "read -r via4 dev4 <<< \"$gateway4\"",
            `ip -4 route replace "$BGP_NEIGHBOR4/32" via "$via4" dev "$dev4"${hopLimit}`,
            "log \"$BGP_NEIGHBOR4/32 via $via4 dev $dev4\"",
            "",
        );
    }
    if (mesh) {
        lines.push(
            "# The mesh only through wg0: wg0's connected route (metric 256) wins while the tunnel is up;",
            "# when it is down this one answers at once (EHOSTUNREACH: nginx returns 502 without waiting,",
            "# the agent sees the origin gone on its next check) and nothing leaves by the uplink unencrypted.",
            `ip -${mesh.family} route replace unreachable "$MESH_CIDR" metric ${MESH_GUARD_METRIC}`,
            "",
        );
    }
    lines.push(
        "# A new host starts withdrawn; the health agent announces after enough good checks.",
        "# After a push, never overwrite an existing file: it holds the agent's current decision.",
        "# At boot (--boot, from anycast-net.service) reset it: a file that survived the reboot would",
        "# make BIRD announce before the agent has checked the proxy or the origin.",
        "if [[ \"${1:-}\" == \"--boot\" || ! -e \"$ANYCAST_STATE_FILE\" ]]; then",
        "    mkdir -p \"$(dirname \"$ANYCAST_STATE_FILE\")\"",
        "    tmp=\"$(mktemp \"$ANYCAST_STATE_FILE.XXXXXX\")\"",
        `    printf '%s\\n' '${stateLine}' > "$tmp"`,
        "    chmod 0644 \"$tmp\"",
        "    mv -f \"$tmp\" \"$ANYCAST_STATE_FILE\"",
        "fi",
        "",
    );
    return lines.join("\n");
}
