/**
 * The network stack: the stack's `anycast:` config -> one AnycastNetwork -> the stack outputs.
 * `index.ts` (the Pulumi program) runs it at load, as `pulumi up` does; the harness
 * (harness/stackrun.ts) runs the same function under Pulumi's mocks.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConfigIssue, RpkiFinding } from "../../components/core/model";
import { Jsonified } from "../../components/core/spec-json";
import { AnycastNetwork, AnycastNetworkArgs } from "../../components/network";
import { RawConfig, readStackConfig } from "./config";

/** Where SSH logs in to a host: address, port, user. */
export interface SshTarget {
    host: string;
    port: number;
    user: string;
}

/** What `pulumi stack output` shows. */
export interface NetworkStackOutputs {
    anycastAddress: pulumi.Output<string>;
    prefixes: pulumi.Output<string[]>;
    /** Each PoP: addresses, BGP neighbour, mesh address, whether the config drains it, and the SSH login `anycast status` uses. */
    pops: pulumi.Output<Record<string, { ipv6: string; ipv4?: string; bgpNeighbor: string; meshAddress: string; drained: boolean; ssh: SshTarget }>>;
    /** The first origin (the only one of a stack with `anycast:origin`). */
    origin: pulumi.Output<{ ipv6: string; meshAddress: string; ssh: SshTarget }>;
    /** Every origin by name. */
    origins: pulumi.Output<Record<string, { ipv6: string; meshAddress: string; ssh: SshTarget }>>;
    mesh: { cidr: pulumi.Output<string>; addresses: pulumi.Output<Record<string, string>>; publicKeys: pulumi.Output<Record<string, string>> };
    dns: pulumi.Output<{ hostname: string; anycastName: string }>;
    /** Each prefix's RPKI state against anycast:roas (`pulumi stack output rpki`). */
    rpki: pulumi.Output<Array<Jsonified<RpkiFinding>>>;
}

export interface NetworkStack {
    network: AnycastNetwork;
    outputs: NetworkStackOutputs;
    /** Findings about the stack's config itself (secrets in plain text); the network's own are `network.warnings`. */
    configWarnings: ConfigIssue[];
}

/** The name of the network in the stack: its children are `anycast-<role>` (anycast-lax, anycast-mesh, ...). */
export const NETWORK_NAME = "anycast";

/** Build the stack's network from its config. Throws ConfigError, before any resource exists, on invalid config. */
export function deployNetworkStack(raw: RawConfig = readStackConfig()): NetworkStack {
    // The values are still unvalidated: AnycastNetwork validates every key before it registers anything.
    const network = new AnycastNetwork(NETWORK_NAME, raw.values as unknown as AnycastNetworkArgs);
    for (const w of raw.warnings) void pulumi.log.warn(`${w.key}: ${w.message}`);
    return { network, outputs: stackOutputs(network), configWarnings: raw.warnings };
}

export function stackOutputs(network: AnycastNetwork): NetworkStackOutputs {
    const pops = network.hosts.apply((hosts) => Object.fromEntries(hosts.filter((h) => h.role === "pop").map((h) => [h.name, {
        ipv6: h.ipv6, ...(h.ipv4 ? { ipv4: h.ipv4 } : {}), bgpNeighbor: h.bgpNeighbor!, meshAddress: h.meshAddress, drained: h.drained ?? false, ssh: h.ssh,
    }])));
    const origins = network.hosts.apply((hosts) => Object.fromEntries(hosts.filter((h) => h.role === "origin").map((h) => [h.name, {
        ipv6: h.ipv6, meshAddress: h.meshAddress, ssh: h.ssh,
    }])));
    const origin = pulumi.all([origins, network.spec]).apply(([all, s]) => all[s.origin.name]);
    const meshAddresses = network.spec.apply((s) => Object.fromEntries(
        [...s.origins, ...s.pops].map((h) => [h.name, h.meshAddress])));
    return {
        anycastAddress: network.anycastAddress,
        prefixes: network.prefixes,
        pops,
        origin,
        origins,
        mesh: { cidr: network.spec.apply((s) => s.mesh.cidr), addresses: meshAddresses, publicKeys: network.meshPublicKeys },
        dns: network.dns,
        rpki: network.rpki,
    };
}
