/**
 * Render inputs for tests, built from the example stacks through the real config parser, so
 * fixtures cannot drift from what a user's config produces.
 */
import * as path from "node:path";
import { readStackValues } from "../../harness/stackrun";
import { parseAnycastConfig } from "../../components/core/config";
import { AnycastSpec, PopRenderInput } from "../../components/core/model";
import { IpPrefix } from "../../components/core/addressing";
import { REPO_ROOT } from "./golden";

/** Raw `anycast:*` values of a stack file (relative to the repo), with the namespace stripped. */
export function rawConfigOf(stackFile: string): Record<string, unknown> {
    return readStackValues(path.join(REPO_ROOT, stackFile));
}

/** Stands in for the SSH key a real stack holds as a secret. */
export const TEST_SSH_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n";

/** The prod example, with the secrets it deliberately lacks filled in with test values. */
export function prodSpec(): AnycastSpec {
    return parseAnycastConfig({ ...rawConfigOf("Pulumi.prod.yaml"), bgpPassword: "test-bgp-password", sshPrivateKey: TEST_SSH_PRIVATE_KEY });
}

export function labSpec(): AnycastSpec {
    return parseAnycastConfig({ ...rawConfigOf("Pulumi.lab.yaml"), sshPrivateKey: TEST_SSH_PRIVATE_KEY });
}

/** Fixed unicast addresses standing in for what Vultr would assign (documentation space). */
export const TEST_HOST_ADDRESSES: Record<string, { ipv6: string; ipv4?: string }> = {
    lax: { ipv6: "2001:db8:ff11::10", ipv4: "192.0.2.11" },
    ams: { ipv6: "2001:db8:ff12::10", ipv4: "192.0.2.12" },
    sgp: { ipv6: "2001:db8:ff13::10", ipv4: "192.0.2.13" },
    origin: { ipv6: "2001:db8:beef::10" },
};

export function popRenderInput(spec: AnycastSpec, popName: string): PopRenderInput {
    const pop = spec.pops.find((p) => p.name === popName);
    if (!pop) throw new Error(`no PoP ${popName}`);
    return {
        deployment: { asn: spec.asn, prefixes: spec.prefixes, address: spec.address },
        pop,
        host: TEST_HOST_ADDRESSES[popName] ?? { ipv6: "2001:db8:ff99::10" },
        origin: {
            name: spec.origin.name, meshAddress: spec.origin.meshAddress, port: spec.origin.port,
            healthPath: spec.origin.healthPath,
        },
        origins: spec.origins.map((o) => ({ name: o.name, meshAddress: o.meshAddress, port: o.port, healthPath: o.healthPath })),
        peers: spec.pops.filter((p) => p.name !== popName).map((p) => ({ name: p.name, meshAddress: p.meshAddress })),
        failover: spec.failover,
        mesh: { cidr: spec.mesh.cidr, topology: spec.mesh.topology },
        health: spec.health,
    };
}

/** The input announcing an IPv4 /24 (198.51.100.0/24) next to its IPv6 prefix. */
export function dualStack(input: PopRenderInput): PopRenderInput {
    return { ...input, deployment: { ...input.deployment, prefixes: [...input.deployment.prefixes, IpPrefix.parse("198.51.100.0/24")] } };
}
