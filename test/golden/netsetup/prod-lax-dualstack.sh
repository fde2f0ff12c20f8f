#!/usr/bin/env bash
# anycast-net for PoP lax, rendered by pulumi-anycast. Do not edit.
# Puts the anycast address on lo, pins the route to the BGP neighbour and seeds BIRD's
# state file. Idempotent: safe at every boot and after every push.
set -euo pipefail

# Every value can be overridden from the environment (the lab runs this in a namespace).
ANYCAST_ADDRESS="${ANYCAST_ADDRESS:-2001:db8:100::1}"
ANYCAST_LOOPBACK="${ANYCAST_LOOPBACK:-lo}"
ANYCAST_STATE_FILE="${ANYCAST_STATE_FILE:-/etc/bird/anycast-state.conf}"
BGP_NEIGHBOR="${BGP_NEIGHBOR:-2001:19f0:ffff::1}"
MESH_CIDR="${MESH_CIDR:-10.77.0.0/24}"
BGP_NEIGHBOR4="${BGP_NEIGHBOR4:-169.254.169.254}"
# How long to wait for the default route (router advertisements may still be on their way at boot).
DEFAULT_ROUTE_WAIT="${DEFAULT_ROUTE_WAIT:-60}"

log() { echo "anycast-net: $*" >&2; }

# Prints "<gateway> <device>" of the first default route of a family (4 or 6), or nothing.
# Handles plain and multipath (`nexthop via ... dev ...`) routes; the gateway may be link-local.
default_gateway() {
    ip "-$1" route show default | awk '
        { for (i = 1; i < NF; i++) { if ($i == "via" && gw == "") gw = $(i + 1); if ($i == "dev" && gw != "" && dev == "") dev = $(i + 1) } }
        END { if (gw != "" && dev != "") print gw, dev }'
}

wait_for_default_gateway() {
    local family="$1" waited=0 found
    while :; do
        found="$(default_gateway "$family")"
        if [[ -n "$found" ]]; then echo "$found"; return 0; fi
        if (( waited >= DEFAULT_ROUTE_WAIT )); then return 1; fi
        sleep 1
        waited=$(( waited + 1 ))
    done
}

# Router advertisements must keep working even when forwarding is on.
sysctl -q -w net.ipv6.conf.all.accept_ra=2 net.ipv6.conf.default.accept_ra=2

ip link set dev "$ANYCAST_LOOPBACK" up
# replace, not add: a second run must not fail on the existing address. nodad: usable at once;
# otherwise it is tentative until the kernel's DAD work runs, and nginx started right after
# cannot bind it (EADDRNOTAVAIL), which a busy boot does show.
ip -6 addr replace "$ANYCAST_ADDRESS/128" dev "$ANYCAST_LOOPBACK" nodad

if ! gateway6="$(wait_for_default_gateway 6)"; then
    log "no IPv6 default route after ${DEFAULT_ROUTE_WAIT}s: cannot pin the route to $BGP_NEIGHBOR"
    exit 1
fi
read -r via6 dev6 <<< "$gateway6"
# The slash form of the name copes with interface names that contain dots (VLANs).
sysctl -q -w "net/ipv6/conf/$dev6/accept_ra=2"
# The multihop BGP session must reach the neighbour via the gateway even after routes are learned.
# hoplimit: multihop BFD leaves with TTL 255 (BIRD sends the system default of 64 otherwise).
ip -6 route replace "$BGP_NEIGHBOR/128" via "$via6" dev "$dev6" hoplimit 255
log "$ANYCAST_ADDRESS/128 on $ANYCAST_LOOPBACK; $BGP_NEIGHBOR/128 via $via6 dev $dev6"

if ! gateway4="$(wait_for_default_gateway 4)"; then
    log "no IPv4 default route after ${DEFAULT_ROUTE_WAIT}s: cannot pin the route to $BGP_NEIGHBOR4"
    exit 1
fi
read -r via4 dev4 <<< "$gateway4"
ip -4 route replace "$BGP_NEIGHBOR4/32" via "$via4" dev "$dev4" hoplimit 255
log "$BGP_NEIGHBOR4/32 via $via4 dev $dev4"

# The mesh only through wg0: wg0's connected route (metric 256) wins while the tunnel is up;
# when it is down this one answers at once (EHOSTUNREACH: nginx returns 502 without waiting,
# the agent sees the origin gone on its next check) and nothing leaves by the uplink unencrypted.
ip -4 route replace unreachable "$MESH_CIDR" metric 4000

# A new host starts withdrawn; the health agent announces after enough good checks.
# After a push, never overwrite an existing file: it holds the agent's current decision.
# At boot (--boot, from anycast-net.service) reset it: a file that survived the reboot would
# make BIRD announce before the agent has checked the proxy or the origin.
if [[ "${1:-}" == "--boot" || ! -e "$ANYCAST_STATE_FILE" ]]; then
    mkdir -p "$(dirname "$ANYCAST_STATE_FILE")"
    tmp="$(mktemp "$ANYCAST_STATE_FILE.XXXXXX")"
    printf '%s\n' 'define ANYCAST_STATE = 0;   # 0 = withdrawn, 1 = draining (announce with GRACEFUL_SHUTDOWN 65535:0), 2 = announced' > "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$ANYCAST_STATE_FILE"
fi
