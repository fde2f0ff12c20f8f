/**
 * What the lab boots: the stack program's rendered hosts, from the same code path as
 * `anycast render` (cli/stackrun.ts runs stacks/network under Pulumi's mocks). The lab has no
 * renderer of its own for PoP or origin artifacts.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { parseAnycastConfig } from "../components/core/config";
import { AnycastSpec, PopRenderInput } from "../components/core/model";
import { renderBirdConfig } from "../components/core/render/bird";
import { renderHealthAgent, renderHealthEnv } from "../components/core/render/health";
import { renderNetSetup } from "../components/core/render/netsetup";
import { renderNginxConfig } from "../components/core/render/nginx";
import { planWireGuardMesh, renderWireGuardConfig, wgPublicKeyFromPrivate } from "../components/core/render/wireguard";
import type { RenderedHost, StackRun } from "../cli/stackrun";

export type LabHost = RenderedHost;

/** The part of a stack run the lab uses; `mocked` gives the Cloudflare side's client certificate. */
export interface LabStack {
    spec: AnycastSpec;
    hosts: LabHost[];
    /** Cloudflare's Authenticated Origin Pulls client certificate and key, when the stack made one. */
    originPullClient?: { certPem: string; keyPem: string };
    /** The CA that signed the PoPs' origin certificate (plays Cloudflare's Origin CA). */
    originCaPem?: string;
    notes: string[];
}

export async function loadStack(configFile: string): Promise<LabStack> {
    let run: StackRun;
    try {
        // Loaded lazily: the Pulumi SDK is heavy, and `anycast lab --down` does not need it.
        const { runStack } = await import("../cli/stackrun");
        run = await runStack({ configFile });
    } catch (e) {
        // Only a stack program that cannot load yet (a component still missing) falls back;
        // configuration errors and everything else surface as they are.
        if ((e as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND") throw e;
        return renderDirectly(configFile, (e as Error).message.split("\n")[0]);
    }
    return {
        spec: run.spec,
        hosts: run.hosts,
        originPullClient: originPullClientOf(run),
        originCaPem: run.originCaPem,
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

/** The unicast addresses the mocks give the n-th Vultr instance (1-based, creation order). */
function mockAddresses(n: number): { ipv6: string; ipv4: string } {
    return { ipv6: `2001:db8:ff${(0x10 + n).toString(16)}::10`, ipv4: `192.0.2.${10 + n}` };
}

/**
 * Stand-in for the stack run while the stack program cannot load: the same renderers fed the
 * way the components feed them, with the mocks' address plan and fresh keys. TLS material and
 * the firewall are left to the lab (it makes its own certificates; no firewall is applied).
 */
function renderDirectly(configFile: string, why: string): LabStack {
    const doc = parseYaml(fs.readFileSync(configFile, "utf8")) as { config?: Record<string, unknown> };
    const raw: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(doc.config ?? {})) {
        if (key.startsWith("anycast:")) raw[key.slice("anycast:".length)] = value;
    }
    const spec = parseAnycastConfig(raw);
    let instance = 0;
    const addressOf = (host: AnycastSpec["origin"]["host"]) =>
        host.kind === "vultr" ? mockAddresses(++instance) : { ipv6: host.address, ipv4: host.address4 };
    // Creation order of the stack program: the origin, then the PoPs.
    const originAddr = addressOf(spec.origin.host);
    const popAddrs = spec.pops.map((p) => addressOf(p.host));
    const members = [
        { name: spec.origin.name, meshAddress: spec.origin.meshAddress, endpoint: originAddr.ipv6 },
        ...spec.pops.map((p, i) => ({ name: p.name, meshAddress: p.meshAddress, endpoint: popAddrs[i].ipv6 })),
    ].map((m) => {
        const privateKey = randomBytes(32).toString("base64");
        return { ...m, privateKey, publicKey: wgPublicKeyFromPrivate(privateKey) };
    });
    const mesh = planWireGuardMesh(members, {
        cidr: spec.mesh.cidr, port: spec.mesh.port, topology: spec.mesh.topology, hubName: spec.origin.name,
        mtu: spec.mesh.mtu, persistentKeepalive: spec.mesh.persistentKeepalive,
    });
    const wg = (name: string) => renderWireGuardConfig({ ...mesh[name], privateKey: members.find((m) => m.name === name)!.privateKey });
    const hosts: LabHost[] = spec.pops.map((pop, i) => {
        const input: PopRenderInput = {
            deployment: { asn: spec.asn, prefixes: spec.prefixes, address: spec.address },
            pop, host: popAddrs[i],
            origin: { name: spec.origin.name, meshAddress: spec.origin.meshAddress, port: spec.origin.port, healthPath: spec.origin.healthPath },
            health: spec.health,
            firewall: { ...spec.firewall, meshPeers: members.filter((m) => m.name !== pop.name).map((m) => m.endpoint) },
        };
        return {
            name: pop.name, role: "pop", region: pop.host.kind === "vultr" ? pop.host.region : undefined,
            ipv6: popAddrs[i].ipv6, ipv4: popAddrs[i].ipv4,
            files: {
                "bird.conf": renderBirdConfig(input), "anycast-net.sh": renderNetSetup(input),
                "nginx.conf": renderNginxConfig(input), "anycast-health": renderHealthAgent(),
                "anycast-health.env": renderHealthEnv(input), "wg0.conf": wg(pop.name),
            },
        };
    });
    hosts.push({ name: spec.origin.name, role: "origin", ipv6: originAddr.ipv6, ipv4: originAddr.ipv4, files: { "wg0.conf": wg(spec.origin.name) } });
    return {
        spec, hosts,
        notes: [`the stack program could not load (${why}); rendered ${path.basename(configFile)} with the renderers directly, without a firewall`],
    };
}
