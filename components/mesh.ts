/**
 * WireGuardMesh: the private network between the origin and every PoP.
 *
 * Keys: 32 random bytes per node from @pulumi/random (a Pulumi secret in state), the public
 * key derived in-program with X25519 (identical to `wg pubkey`), so no key ever has to be
 * generated on, or fetched from, a host. Endpoints are the hosts' unicast addresses, never the
 * anycast one (which would lead to whichever PoP is nearest).
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { IpAddress, IpPrefix } from "./core/addressing";
import { MeshTopology, WireGuardNode } from "./core/model";
import { wireGuardMeshNodes, renderWireGuardConfig, wgPublicKeyFromPrivate } from "./core/render/wireguard";
import { Connection, pushFile } from "./push";

export interface MeshMember {
    name: string;
    /** Mesh address (inside cidr) of this node. */
    meshAddress: IpAddress;
    /** Unicast address other nodes use as its endpoint. */
    endpoint: pulumi.Input<string>;
    /** Where to push wg0.conf. */
    connection: pulumi.Input<Connection>;
    /** Resource name of the member's host: its push is `<host>-push-wg0.conf`, like the host's other files. Default: name. */
    host?: string;
    /** Resources the push must wait for (the host). */
    dependsOn?: pulumi.Resource[];
    /** The SSH login user (the push goes through sudo when it is not root); default root. */
    user?: string;
}

export interface WireGuardMeshArgs {
    cidr: IpPrefix;
    port: number;
    topology: MeshTopology;
    /** The node every spoke peers with in "hub" topology (the origin). */
    hub: string;
    mtu: number;
    persistentKeepalive: number;
    members: MeshMember[];
}

export class WireGuardMesh extends pulumi.ComponentResource {
    /** Public key of each member, by name. */
    readonly publicKeys: pulumi.Output<Record<string, string>>;
    /** Mesh address of each member, by name. */
    readonly addresses: Record<string, string>;
    /** Each member's wg0.conf (secret: it holds the private key). */
    readonly configs: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: WireGuardMeshArgs, opts?: pulumi.ComponentResourceOptions) {
        super("anycast:index:WireGuardMesh", name, {}, opts);
        const privateKeys: Record<string, pulumi.Output<string>> = {};
        for (const m of args.members) {
            privateKeys[m.name] = pulumi.secret(
                new random.RandomBytes(`${name}-${m.name}-key`, { length: 32 }, { parent: this, additionalSecretOutputs: ["base64", "hex"] }).base64);
        }
        this.addresses = Object.fromEntries(args.members.map((m) => [m.name, m.meshAddress.toString()]));
        this.publicKeys = pulumi.all(privateKeys).apply((keys) =>
            Object.fromEntries(Object.entries(keys).map(([n, k]) => [n, wgPublicKeyFromPrivate(k)])));
        // The public keys are not secret, but they are derived from secrets; unwrap explicitly.
        this.publicKeys = pulumi.unsecret(this.publicKeys);

        const endpoints = pulumi.all(Object.fromEntries(args.members.map((m) => [m.name, pulumi.output(m.endpoint)])));
        this.configs = pulumi.secret(pulumi.all([privateKeys, this.publicKeys, endpoints]).apply(([priv, pub, ends]) => {
            const nodes = wireGuardMeshNodes(args.members.map((m) => ({
                name: m.name, meshAddress: m.meshAddress, endpoint: ends[m.name], publicKey: pub[m.name],
            })), {
                cidr: args.cidr, port: args.port, topology: args.topology, hubName: args.hub, mtu: args.mtu,
                persistentKeepalive: args.persistentKeepalive,
            });
            return Object.fromEntries(args.members.map((m) => {
                const node: WireGuardNode = { ...nodes[m.name], privateKey: priv[m.name] };
                return [m.name, renderWireGuardConfig(node)];
            }));
        }));

        for (const m of args.members) {
            pushFile(m.host ?? m.name, { file: "wg0.conf", content: this.configs.apply((c) => c[m.name]) },
                m.connection, { parent: this, dependsOn: m.dependsOn }, m.user);
        }
        this.registerOutputs({ publicKeys: this.publicKeys, addresses: this.addresses });
    }
}
