/**
 * WireGuard: the mesh's nodes (who peers with whom, with which AllowedIPs), the wg-quick file of
 * one node, and public keys derived from private keys in-process.
 *
 * The nodes are a pure function of the member list, kept apart from rendering so that the
 * topology rules can be unit tested without keys, and so that the Pulumi component only feeds
 * Outputs into it. The rendered file is plain wg-quick: no PostUp, DNS or Table tricks, so
 * `wg syncconf wg0 <(wg-quick strip wg0)` can apply every change in place.
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import { IpAddress, IpPrefix } from "../addressing";
import { MeshTopology, WireGuardNode, WireGuardPeer } from "../model";

/** One member of the mesh as the nodes need it (no private key: the nodes are not secret). */
export interface MeshMember {
    name: string;
    /** The member's address inside the mesh CIDR. */
    meshAddress: IpAddress;
    /** The member's unicast address (never the anycast one), where the others send its packets. */
    endpoint: string;
    publicKey: string;
}

export interface WireGuardMeshOptions {
    cidr: IpPrefix;
    port: number;
    topology: MeshTopology;
    /** The hub of a "hub" topology (usually the origin); ignored for "full". */
    hubName?: string;
    mtu: number;
    persistentKeepalive: number;
}

export type PublicMeshNode = Omit<WireGuardNode, "privateKey">;

/**
 * `ip:port` the way wg wants it: IPv6 in brackets. The endpoint is a host's unicast address as
 * the cloud reports it at deploy time (text, not part of the validated spec), parsed here.
 */
export function formatEndpoint(address: string, port: number): string {
    const parsed = IpAddress.tryParse(address);
    if (!parsed) throw new Error(`WireGuard endpoint "${address}" is not an IP address`);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`WireGuard port ${port} is not 1-65535`);
    return `${parsed.inUrl()}:${port}`;
}

/**
 * Who peers with whom, the one place this rule lives (the nodes below and the firewalls, which
 * accept WireGuard only from a host's peers, both use it). "full": every node with every other;
 * "hub": the hub with everyone, a spoke only with the hub.
 */
export function meshPeerNames(self: string, members: readonly string[], topology: MeshTopology, hub?: string): string[] {
    return members.filter((m) => m !== self && (topology === "full" || m === hub || self === hub));
}

/**
 * Every member's node, without its private key. "full": each peer's AllowedIPs is its own mesh address. "hub": a spoke routes
 * the whole mesh CIDR to the hub, so spoke-to-spoke traffic crosses the hub (which must forward).
 */
export function wireGuardMeshNodes(members: MeshMember[], opts: WireGuardMeshOptions): Record<string, PublicMeshNode> {
    const cidr = opts.cidr;
    const names = new Set<string>();
    const keys = new Set<string>();
    for (const m of members) {
        if (names.has(m.name)) throw new Error(`mesh member "${m.name}" appears twice`);
        names.add(m.name);
        if (!cidr.contains(m.meshAddress)) {
            throw new Error(`mesh member ${m.name}: ${m.meshAddress} is not an address inside ${cidr}`);
        }
        if (!/^[A-Za-z0-9+/]{43}=$/.test(m.publicKey)) throw new Error(`mesh member ${m.name}: "${m.publicKey}" is not a base64 WireGuard public key`);
        if (keys.has(m.publicKey)) throw new Error(`mesh member ${m.name}: public key is shared with another member`);
        keys.add(m.publicKey);
        formatEndpoint(m.endpoint, opts.port);
    }
    if (opts.topology === "hub") {
        if (!opts.hubName || !names.has(opts.hubName)) {
            throw new Error(`hub topology needs hubName naming a member (got ${JSON.stringify(opts.hubName)}; members: ${[...names].join(", ")})`);
        }
    }

    const peerOf = (m: MeshMember, allowedIps: string[]): WireGuardPeer => ({
        name: m.name,
        publicKey: m.publicKey,
        endpoint: formatEndpoint(m.endpoint, opts.port),
        allowedIps,
    });

    const nodes: Record<string, PublicMeshNode> = {};
    for (const self of members) {
        const peerNames = meshPeerNames(self.name, members.map((m) => m.name), opts.topology, opts.hubName);
        const spoke = opts.topology === "hub" && self.name !== opts.hubName;
        const peers = members.filter((m) => peerNames.includes(m.name))
            .map((m) => peerOf(m, spoke ? [cidr.toString()] : [m.meshAddress.hostPrefix().toString()]));
        nodes[self.name] = {
            name: self.name,
            // The mesh address with the mesh's prefix length, as wg-quick's Address= wants it.
            address: `${self.meshAddress}/${cidr.length}`,
            listenPort: opts.port,
            mtu: opts.mtu,
            persistentKeepalive: opts.persistentKeepalive,
            peers,
        };
    }
    return nodes;
}

/** RFC 8410 PKCS#8 header for a raw 32-byte X25519 private key. */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

function decodeKey(base64: string, what: string): Buffer {
    const raw = Buffer.from(base64, "base64");
    if (raw.length !== 32 || raw.toString("base64") !== base64) throw new Error(`${what} is not 32 bytes of base64`);
    return raw;
}

/**
 * The public key of a base64 WireGuard private key, as `wg pubkey` prints it. X25519 clamps
 * the scalar itself, so the unclamped random bytes Pulumi generates give the same key as wg.
 */
export function wgPublicKeyFromPrivate(base64: string): string {
    const raw = decodeKey(base64, "WireGuard private key");
    const privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
    const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
    // The SPKI DER of an X25519 key ends with the raw 32-byte public key.
    return Buffer.from(spki.subarray(spki.length - 32)).toString("base64");
}

function assertSingleLine(value: string, what: string): void {
    if (/[\r\n]/.test(value)) throw new Error(`${what} must be a single line`);
}

/** One node's /etc/wireguard/wg0.conf in wg-quick format. */
export function renderWireGuardConfig(node: WireGuardNode): string {
    decodeKey(node.privateKey, `WireGuard private key of ${node.name}`);
    // The node is text (tests and other programs write it by hand): checked before it is written.
    IpPrefix.parse(node.address, false);
    assertSingleLine(node.name, "node name");
    const lines = [
        `# WireGuard mesh interface of ${node.name}, rendered by pulumi-anycast. Do not edit.`,
        "[Interface]",
        `Address = ${node.address}`,
        `ListenPort = ${node.listenPort}`,
        `PrivateKey = ${node.privateKey}`,
        `MTU = ${node.mtu}`,
    ];
    for (const peer of node.peers) {
        assertSingleLine(peer.name, "peer name");
        decodeKey(peer.publicKey, `public key of peer ${peer.name}`);
        for (const ip of peer.allowedIps) IpPrefix.parse(ip);
        lines.push(
            "",
            `# ${peer.name}`,
            "[Peer]",
            `PublicKey = ${peer.publicKey}`,
            `Endpoint = ${endpointText(peer.endpoint, node.listenPort)}`,
            `AllowedIPs = ${peer.allowedIps.join(", ")}`,
        );
        if (node.persistentKeepalive > 0) lines.push(`PersistentKeepalive = ${node.persistentKeepalive}`);
    }
    return lines.join("\n") + "\n";
}

/**
 * A peer endpoint as written in the file. The planner produces `ip:port` ("[v6]:port") already;
 * a bare IP is accepted too and gets this node's listen port, because the whole mesh listens
 * on one port.
 */
function endpointText(endpoint: string, defaultPort: number): string {
    if (IpAddress.tryParse(endpoint)) return formatEndpoint(endpoint, defaultPort);
    const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(endpoint);
    if (bracketed && IpAddress.tryParse(bracketed[1])?.family === 6) return formatEndpoint(bracketed[1], Number(bracketed[2]));
    const v4 = /^([\d.]+):(\d{1,5})$/.exec(endpoint);
    if (v4 && IpAddress.tryParse(v4[1])) return formatEndpoint(v4[1], Number(v4[2]));
    throw new Error(`WireGuard endpoint "${endpoint}" is neither an IP address nor ip:port / [ipv6]:port`);
}
