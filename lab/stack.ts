/**
 * What the lab boots: the stack program's rendered hosts, from the same code path as
 * `anycast render` (harness/stackrun.ts runs stacks/network under Pulumi's mocks). The lab has no
 * renderer of its own for PoP or origin artifacts.
 */
import { AnycastSpec } from "../components/core/model";
import type { RenderedHost, StackRun } from "../harness/stackrun";

export type LabHost = RenderedHost;

/** The part of a stack run the lab uses; `mocked` gives the Cloudflare side's client certificate. */
export interface LabStack {
    spec: AnycastSpec;
    hosts: LabHost[];
    /** Cloudflare's Authenticated Origin Pulls client certificate and key, when the stack made one. */
    originPullClient?: { certPem: string; keyPem: string };
    /** The CA that signed the PoPs' origin certificate (plays Cloudflare's Origin CA). */
    originCaPem?: string;
    /**
     * Who the rendered firewalls let reach HTTP(S) on the anycast address: firewall.httpSources,
     * or Cloudflare's published ranges as the stack resolved them (the mock cloud's snapshot).
     */
    httpSources: string[];
    notes: string[];
}

export async function loadStack(configFile: string): Promise<LabStack> {
    // Loaded lazily: the Pulumi SDK is heavy, and `anycast lab --down` does not need it.
    const { runStack } = await import("../harness/stackrun");
    const { CLOUDFLARE_RANGES_SNAPSHOT: cloudflare } = await import("../harness/mockcloud");
    const run: StackRun = await runStack({ configFile });
    return {
        spec: run.spec,
        hosts: run.hosts,
        originPullClient: originPullClientOf(run),
        originCaPem: run.originCaPem,
        httpSources: run.spec.firewall.httpSources ?? [...cloudflare.ipv6Cidrs, ...cloudflare.ipv4Cidrs],
        notes: run.notes,
    };
}

/** The client certificate Cloudflare would present (the front door creates it; the mocks signed it). */
function originPullClientOf(run: StackRun): { certPem: string; keyPem: string } | undefined {
    const plain = (v: unknown): string | undefined => {
        if (typeof v === "string") return v;
        // Secrets arrive wrapped as { <sig>: ..., value } from the mocks.
        if (v && typeof v === "object" && "value" in v && typeof (v as { value: unknown }).value === "string") {
            return (v as { value: string }).value;
        }
        return undefined;
    };
    const cert = run.mocked.find((r) => r.type === "tls:index/locallySignedCert:LocallySignedCert" && /pull-client-cert$/.test(r.name));
    const key = run.mocked.find((r) => r.type === "tls:index/privateKey:PrivateKey" && /pull-client-key$/.test(r.name));
    const certPem = plain(cert?.state.certPem);
    const keyPem = plain(key?.state.privateKeyPem);
    return certPem && keyPem ? { certPem, keyPem } : undefined;
}
