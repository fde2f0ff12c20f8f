/**
 * HostFirewall: the nftables ruleset of one host, rendered from who may reach what and pushed
 * with a syntax check (`nft -c -f`) before it is loaded. A separate component because the
 * rules name every other mesh member's address, which exists only once all hosts do.
 */
import * as pulumi from "@pulumi/pulumi";
import { renderNftables } from "./core/render/nftables";
import { Connection, pushFile } from "./push";

export interface HostFirewallArgs {
    /** The host's name: its push is `<host>-push-nftables.conf`, like every other file of the host. */
    host: string;
    role: "pop" | "origin";
    /** Anycast service addresses (PoPs). */
    anycastAddresses: string[];
    /** Who may reach HTTP/HTTPS on the anycast address: Cloudflare's ranges, resolved at deploy time. */
    httpSources: pulumi.Input<string[]>;
    bgpNeighbors: string[];
    /** Unicast addresses of the other mesh members (WireGuard is accepted only from them). */
    meshPeerEndpoints: pulumi.Input<pulumi.Input<string>[]>;
    meshPort: number;
    meshCidr: string;
    adminCidrs: string[];
    originPort?: number;
    bfd: boolean;
    connection: pulumi.Input<Connection>;
    dependsOn?: pulumi.Resource[];
}

export class HostFirewall extends pulumi.ComponentResource {
    /** The rendered /etc/nftables.conf. */
    readonly ruleset: pulumi.Output<string>;

    constructor(name: string, args: HostFirewallArgs, opts?: pulumi.ComponentResourceOptions) {
        super("anycast:index:HostFirewall", name, {}, opts);
        this.ruleset = pulumi.all([pulumi.output(args.httpSources), pulumi.output(args.meshPeerEndpoints)])
            .apply(([httpSources, meshPeerEndpoints]) => renderNftables({
                role: args.role,
                anycastAddresses: args.anycastAddresses,
                httpSources,
                bgpNeighbors: args.bgpNeighbors,
                meshPeerEndpoints,
                meshPort: args.meshPort,
                meshCidr: args.meshCidr,
                adminCidrs: args.adminCidrs,
                originPort: args.originPort,
                bfd: args.bfd,
            }));
        pushFile(args.host, { file: "nftables.conf", content: this.ruleset }, args.connection,
            { parent: this, dependsOn: args.dependsOn });
        this.registerOutputs({ ruleset: this.ruleset });
    }
}
