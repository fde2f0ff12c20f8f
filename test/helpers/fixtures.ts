/**
 * Render inputs for tests, built from the example stacks through the real config parser, so
 * fixtures cannot drift from what a user's config produces.
 */
import * as path from "node:path";
import { readStackValues } from "../../harness/stackrun";
import { parseAnycastConfig } from "../../components/core/config";
import { AnycastSpec, PopRenderInput } from "../../components/core/model";
import { IpPrefix } from "../../components/core/addressing";
import { deployedLayout, HostLayout, pathsUnder, popRenderInput as renderInputOf } from "../../components/core/render/layout";
import type { AgentPaths } from "../../components/core/health/settings";
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
    return renderInputOf(spec, popName, TEST_HOST_ADDRESSES[popName] ?? { ipv6: "2001:db8:ff99::10" });
}

/** The input announcing an IPv4 /24 (198.51.100.0/24) next to its IPv6 prefix. */
export function dualStack(input: PopRenderInput): PopRenderInput {
    return { ...input, announcement: { ...input.announcement, prefixes: [...input.announcement.prefixes, IpPrefix.parse("198.51.100.0/24")] } };
}

/**
 * The layout a real host gets for `input`, with some of the agent's paths elsewhere (a test
 * cannot write /etc or /run): the renderers write them where the test runs its daemons.
 */
export function withAgentPaths(input: PopRenderInput, agent: Partial<AgentPaths>): HostLayout {
    const deployed = deployedLayout(input);
    return { ...deployed, paths: { ...deployed.paths, agent: { ...deployed.paths.agent, ...agent } } };
}

/** Every path of the layout in `dir` (core pathsUnder), the timers as configured. */
export function layoutIn(input: PopRenderInput, dir: string): HostLayout {
    return { ...deployedLayout(input), paths: pathsUnder(dir) };
}
