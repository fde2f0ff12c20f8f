/**
 * What the lab boots: the stack program's rendered hosts, from the same code path as
 * `anycast render` (harness/stackrun.ts runs stacks/network under Pulumi's mocks and reads the
 * AnycastNetwork's outputs). The lab has no renderer of its own for PoP or origin artifacts.
 */
import { AnycastSpec } from "../components/core/model";
import type { RenderedHost, StackRun } from "../harness/stackrun";

export type LabHost = RenderedHost;

/** The part of a stack run the lab uses. */
export interface LabStack {
    /**
     * The model as the lab runs it: the stack's, with the timers of the lab's layouts (lab/layout.ts
     * specAsRun). The emulated edges and the experiments read it.
     */
    spec: AnycastSpec;
    /** The model as the stack program validated it (with its secrets): what every host's files are rendered from. */
    stackSpec: AnycastSpec;
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
    const run: StackRun = await runStack({ configFile });
    return {
        spec: run.spec,
        stackSpec: run.spec,
        hosts: run.hosts,
        originPullClient: run.originPullClient,
        originCaPem: run.originCaPem,
        httpSources: run.httpSources,
        notes: run.notes,
    };
}
