/**
 * HostFirewall: the nftables ruleset of one host, rendered from who may reach what and pushed
 * with a syntax check (`nft -c -f`) before it is loaded. A separate component because the
 * rules name every other mesh member's address, which exists only once all hosts do.
 */
import * as pulumi from "@pulumi/pulumi";
import { IpAddress, IpPrefix, parseAddressOrPrefix } from "./core/addressing";
import { AddressOrPrefix, renderNftables } from "./core/render/nftables";
import { Connection, pushFile } from "./push";

export interface HostFirewallArgs {
    /** The host's name: its push is `<host>-push-nftables.conf`, like every other file of the host. */
    host: string;
    role: "pop" | "origin";
    /** Anycast service addresses (PoPs). */
    anycastAddresses: IpAddress[];
    /** Who may reach HTTP/HTTPS on the anycast address: Cloudflare's ranges, resolved at deploy time (text: parsed here). */
    httpSources: pulumi.Input<string[]>;
    bgpNeighbors: IpAddress[];
    /** Unicast addresses of the other mesh members (WireGuard is accepted only from them), as the cloud reports them. */
    meshPeerEndpoints: pulumi.Input<pulumi.Input<string>[]>;
    meshPort: number;
    meshCidr: IpPrefix;
    adminCidrs: IpPrefix[];
    originPort?: number;
    /** A PoP's relay and status port (failover.relayPort), open to the mesh only. */
    relayPort?: number;
    /** A PoP's health agent port (health.statusPort) and the other PoPs' own addresses, which may ask it when the mesh fails. */
    agent?: { port: number; otherPops: pulumi.Input<pulumi.Input<string>[]> };
    bfd: boolean;
    connection: pulumi.Input<Connection>;
    /** The SSH login user (the push goes through sudo when it is not root); default root. */
    user?: string;
    /** An existing server: guard only the deployment's own services, leave its own alone (render/nftables.ts). */
    existingHost?: boolean;
    /**
     * What the push waits for. Pass every other push to the host: the firewall goes last, so a
     * mistake in it cannot cut off the pushes still to come.
     */
    dependsOn?: pulumi.Resource[];
}

/**
 * Addresses and prefixes known only at deploy time (Cloudflare's ranges, the hosts' addresses),
 * which cross Pulumi as text: parsed once, here, before the ruleset is rendered.
 */
function parsed(list: string[], what: string): AddressOrPrefix[] {
    return list.map((text) => {
        try {
            return parseAddressOrPrefix(text);
        } catch (e) {
            throw new Error(`${what}: ${(e as Error).message}`);
        }
    });
}

export class HostFirewall extends pulumi.ComponentResource {
    /** The rendered nftables table (components/core/artifacts.ts says where it goes). */
    readonly ruleset: pulumi.Output<string>;

    constructor(name: string, args: HostFirewallArgs, opts?: pulumi.ComponentResourceOptions) {
        super("anycast:index:HostFirewall", name, {}, opts);
        this.ruleset = pulumi.all([pulumi.output(args.httpSources), pulumi.output(args.meshPeerEndpoints), pulumi.output(args.agent?.otherPops ?? [])])
            .apply(([httpSources, meshPeerEndpoints, otherPops]) => renderNftables({
                role: args.role,
                anycastAddresses: args.anycastAddresses,
                httpSources: parsed(httpSources, "httpSources"),
                bgpNeighbors: args.bgpNeighbors,
                meshPeerEndpoints: parsed(meshPeerEndpoints, "meshPeerEndpoints"),
                meshPort: args.meshPort,
                meshCidr: args.meshCidr,
                adminCidrs: args.adminCidrs,
                originPort: args.originPort,
                relayPort: args.relayPort,
                ...(args.agent ? { agent: { port: args.agent.port, otherPops: parsed(otherPops, "agent.otherPops") } } : {}),
                bfd: args.bfd,
                existingHost: args.existingHost,
            }));
        pushFile(args.host, { file: "nftables.conf", content: this.ruleset }, args.connection,
            { parent: this, dependsOn: args.dependsOn }, args.user);
        this.registerOutputs({ ruleset: this.ruleset });
    }
}
