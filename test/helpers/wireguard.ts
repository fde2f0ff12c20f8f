/** The test mesh: fixed keys and the example stacks' members, planned and rendered. */
import { createHash } from "node:crypto";
import {
    MeshMember, WireGuardMeshOptions, wireGuardMeshNodes, renderWireGuardConfig, wgPublicKeyFromPrivate,
} from "../../components/core/render/wireguard";
import { AnycastSpec } from "../../components/core/model";
import { TEST_HOST_ADDRESSES } from "./fixtures";

/** A fixed private key per name, so golden files are stable (test keys only, never deployed). */
export function testPrivateKey(name: string): string {
    return createHash("sha256").update(`pulumi-anycast test key ${name}`).digest().toString("base64");
}

export function membersOf(spec: AnycastSpec): MeshMember[] {
    return [
        { name: spec.origin.name, meshAddress: spec.origin.meshAddress },
        ...spec.pops.map((p) => ({ name: p.name, meshAddress: p.meshAddress })),
    ].map((m) => ({
        ...m,
        endpoint: TEST_HOST_ADDRESSES[m.name]?.ipv6 ?? "2001:db8:ff99::10",
        publicKey: wgPublicKeyFromPrivate(testPrivateKey(m.name)),
    }));
}

export function optionsOf(spec: AnycastSpec, topology: "full" | "hub" = spec.mesh.topology): WireGuardMeshOptions {
    return {
        cidr: spec.mesh.cidr, port: spec.mesh.port, topology, hubName: spec.origin.name, mtu: spec.mesh.mtu,
        persistentKeepalive: spec.mesh.persistentKeepalive,
    };
}

export function renderedNodes(spec: AnycastSpec, topology?: "full" | "hub"): Record<string, string> {
    const nodes = wireGuardMeshNodes(membersOf(spec), optionsOf(spec, topology));
    return Object.fromEntries(Object.entries(nodes).map(([name, node]) =>
        [name, renderWireGuardConfig({ ...node, privateKey: testPrivateKey(name) })]));
}
