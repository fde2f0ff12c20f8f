/**
 * The rehearsal's cloud network: per slot a namespace `acd<slot>-cloud` routes between the hosts
 * (each host a veth `enp1s0`, as on a Vultr instance, whose other end in the cloud namespace holds
 * the host's gateway addresses) and this machine, over an uplink veth. IPv4 from the hosts leaves
 * through this machine with nft masquerade (apt reaches the Debian mirror that way).
 */
import { contains, parseCidr } from "../../components/core/addressing";
import { enableForwarding, ipBatch, sh, SlotNames } from "./slots";

/** The interface a host sees, named as on a Vultr instance. */
export const HOST_INTERFACE = "enp1s0";

/** One address of a host's interface, with its subnet and the gateway the cloud holds. */
export interface HostInterfaceAddress {
    address: string;
    prefix: string;
    gateway: string;
    length: number;
}

/** The cloud namespace, its uplink to this machine, routes, and NAT for the hosts' IPv4. */
export async function buildCloudNetwork(s: SlotNames): Promise<void> {
    await enableForwarding();
    await sh("ip", ["netns", "add", s.cloudNs]);
    await sh("ip", ["netns", "exec", s.cloudNs, "sysctl", "-q", "-w",
        "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
        "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]);
    await ipBatch([
        `link add ${s.uplink} type veth peer name uplink netns ${s.cloudNs}`,
        `addr add ${s.uplink4[0]}/30 dev ${s.uplink}`,
        `addr add ${s.uplink6[0]}/64 dev ${s.uplink} nodad`,
        `link set ${s.uplink} up`,
        `route add ${s.block4} via ${s.uplink4[1]}`,
        `route add ${s.block6} via ${s.uplink6[1]}`,
    ]);
    await ipBatch([
        "link set lo up",
        `addr add ${s.uplink4[1]}/30 dev uplink`,
        `addr add ${s.uplink6[1]}/64 dev uplink nodad`,
        "link set uplink up",
        `route add default via ${s.uplink4[0]}`,
    ], s.cloudNs);
    // No IPv6 default route in the cloud: hosts' IPv6 to the outside fails at once, so apt
    // falls back to IPv4 (through NAT) without waiting for a timeout.
    await sh("nft", ["-f", "-"], {
        input: [
            `table ip ${s.nftTable} {`,
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            `    ip saddr ${s.block4} oifname != "${s.uplink}" masquerade`,
            "  }",
            "}",
            "",
        ].join("\n"),
    });
}

export async function wireHost(s: SlotNames, host: { netns: string; cloudInterface: string }, v4: HostInterfaceAddress | undefined, v6: HostInterfaceAddress | undefined): Promise<void> {
    const ns = host.netns;
    const cif = host.cloudInterface;
    await sh("ip", ["netns", "add", ns]);
    await ipBatch([`link add ${cif} type veth peer name ${HOST_INTERFACE} netns ${ns}`], s.cloudNs);
    const inHost = ["link set lo up", `link set ${HOST_INTERFACE} up`];
    const inCloud = [`link set ${cif} up`];
    const onMachine: string[] = [];
    if (v4) {
        inHost.push(`addr add ${v4.address}/${v4.length} dev ${HOST_INTERFACE}`, `route add default via ${v4.gateway}`);
        inCloud.push(`addr add ${v4.gateway}/${v4.length} dev ${cif}`);
        if (!contains(parseCidr(s.block4), v4.address)) onMachine.push(`route add ${v4.prefix} via ${s.uplink4[1]}`);
    }
    if (v6) {
        inHost.push(`addr add ${v6.address}/${v6.length} dev ${HOST_INTERFACE} nodad`, `route add default via ${v6.gateway}`);
        inCloud.push(`addr add ${v6.gateway}/${v6.length} dev ${cif} nodad`);
        if (!contains(parseCidr(s.block6), v6.address)) onMachine.push(`route add ${v6.prefix} via ${s.uplink6[1]}`);
    }
    await ipBatch(inCloud, s.cloudNs);
    await ipBatch(inHost, ns);
    await ipBatch(onMachine);
    if (v4 && !contains(parseCidr(s.block4), v4.address)) {
        await sh("nft", ["add", "rule", "ip", s.nftTable, "postrouting", "ip", "saddr", v4.prefix, "oifname", "!=", s.uplink, "masquerade"]);
    }
}
