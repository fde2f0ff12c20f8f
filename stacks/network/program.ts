/**
 * The end-to-end network: origin + PoPs + WireGuard mesh + firewalls + Cloudflare front door,
 * composed from the components. `stacks/network/index.ts` runs it from stack config; the
 * `anycast` CLI runs the same function under Pulumi's mocks.
 */
import * as pulumi from "@pulumi/pulumi";
import * as vultr from "@ediri/vultr";
import * as cloudflare from "@pulumi/cloudflare";
import { AnycastSpec } from "../../components/core/model";
import { AnycastPoP } from "../../components/pop";
import { CloudflareFrontDoor } from "../../components/frontdoor";
import { HostFirewall } from "../../components/firewall";
import { Origin } from "../../components/origin";
import { WireGuardMesh } from "../../components/mesh";

export interface NetworkOutputs {
    anycastAddress: string;
    prefixes: string[];
    pops: pulumi.Output<Record<string, { ipv6: string; ipv4?: string; bgpNeighbor: string; meshAddress: string }>>;
    origin: pulumi.Output<{ ipv6: string; meshAddress: string }>;
    mesh: { cidr: string; addresses: Record<string, string>; publicKeys: pulumi.Output<Record<string, string>> };
    dns: { hostname: string; anycastName: string };
    /** Each prefix's RPKI state against anycast:roas (`pulumi stack output rpki`). */
    rpki: AnycastSpec["rpki"];
}

export function deployAnycastNetwork(spec: AnycastSpec): NetworkOutputs {
    const sshPrivateKey = pulumi.secret(spec.sshPrivateKey);
    const sshKeys = spec.sshPublicKeys.map((publicKey, i) =>
        new vultr.SSHKey(`anycast-ssh-${i}`, { name: `anycast-${i}`, sshKey: publicKey }));
    const sshKeyIds = sshKeys.map((k) => k.id);

    const frontDoor = new CloudflareFrontDoor("front-door", { frontDoor: spec.frontDoor, address: spec.address });
    const origin = new Origin(spec.origin.name, {
        origin: spec.origin, sshPrivateKey, sshKeyIds, sshPublicKeys: spec.sshPublicKeys,
    });
    const pops = spec.pops.map((pop) => new AnycastPoP(pop.name, {
        pop,
        deployment: { asn: spec.asn, prefixes: spec.prefixes, address: spec.address },
        origin: {
            name: spec.origin.name, meshAddress: spec.origin.meshAddress, port: spec.origin.port,
            healthPath: spec.origin.healthPath,
        },
        mesh: { cidr: spec.mesh.cidr },
        health: spec.health,
        tls: frontDoor.tls,
        sshPrivateKey,
        sshKeyIds,
        sshPublicKeys: spec.sshPublicKeys,
    }));

    const members = [
        { name: spec.origin.name, meshAddress: spec.origin.meshAddress, host: origin.host },
        ...pops.map((p, i) => ({ name: spec.pops[i].name, meshAddress: spec.pops[i].meshAddress, host: p.host })),
    ];
    const mesh = new WireGuardMesh("mesh", {
        cidr: spec.mesh.cidr, port: spec.mesh.port, topology: spec.mesh.topology, hub: spec.origin.name,
        mtu: spec.mesh.mtu, persistentKeepalive: spec.mesh.persistentKeepalive,
        members: members.map((m) => ({
            name: m.name, meshAddress: m.meshAddress, endpoint: m.host.ipv6, connection: m.host.connection,
            dependsOn: [m.host], user: m.host.user,
        })),
    });

    // HTTP(S) on the anycast address only from Cloudflare (its published ranges at deploy time),
    // unless the config names the sources (the lab does).
    const httpSources: pulumi.Output<string[]> = spec.firewall.httpSources
        ? pulumi.output(spec.firewall.httpSources)
        : cloudflare.getIpRangesOutput().apply((r) => [...r.ipv6Cidrs, ...r.ipv4Cidrs]);
    // Hub topology: spokes only hear from the hub; full mesh: from everyone.
    const peersOf = (name: string) => members
        .filter((m) => m.name !== name && (spec.mesh.topology === "full" || m.name === spec.origin.name || name === spec.origin.name))
        .map((m) => m.host.ipv6);
    const firewallBase = {
        meshPort: spec.mesh.port, meshCidr: spec.mesh.cidr, adminCidrs: spec.firewall.adminCidrs, httpSources,
    };
    pops.forEach((pop, i) => new HostFirewall(`${spec.pops[i].name}-firewall`, {
        ...firewallBase,
        host: spec.pops[i].name,
        role: "pop",
        anycastAddresses: [spec.address],
        bgpNeighbors: [spec.pops[i].bgp.neighbor, ...(spec.prefixes.some((p) => p.includes(".")) ? [spec.pops[i].bgp.neighbor4] : [])],
        meshPeerEndpoints: peersOf(spec.pops[i].name),
        bfd: spec.pops[i].bgp.bfd !== undefined,
        connection: pop.host.connection,
        user: pop.host.user,
        existingHost: spec.pops[i].host.kind === "existing",
        // Last of the host's pushes (its PoP's and its wg0.conf): nothing pushed after it could be cut off.
        dependsOn: [pop.host, pop, mesh],
    }));
    new HostFirewall(`${spec.origin.name}-firewall`, {
        ...firewallBase,
        host: spec.origin.name,
        role: "origin",
        anycastAddresses: [],
        bgpNeighbors: [],
        meshPeerEndpoints: peersOf(spec.origin.name),
        originPort: spec.origin.port,
        bfd: false,
        connection: origin.host.connection,
        user: origin.host.user,
        existingHost: spec.origin.host.kind === "existing",
        dependsOn: [origin.host, origin, mesh],
    });

    return {
        anycastAddress: spec.address,
        prefixes: spec.prefixes,
        pops: pulumi.all(pops.map((p) => pulumi.all([p.ipv6, p.ipv4]))).apply((addrs) =>
            Object.fromEntries(spec.pops.map((pop, i) => [pop.name, {
                ipv6: addrs[i][0], ...(addrs[i][1] ? { ipv4: addrs[i][1] } : {}),
                bgpNeighbor: pop.bgp.neighbor, meshAddress: pop.meshAddress,
            }]))),
        origin: origin.ipv6.apply((ipv6) => ({ ipv6, meshAddress: spec.origin.meshAddress })),
        mesh: { cidr: spec.mesh.cidr, addresses: mesh.addresses, publicKeys: mesh.publicKeys },
        dns: { hostname: frontDoor.hostname, anycastName: frontDoor.anycastName },
        rpki: spec.rpki,
    };
}
