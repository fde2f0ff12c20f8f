/**
 * AnycastPoP: one point of presence — its host, the BGP session to its upstream (rendered
 * bird.conf), the reverse proxy on the anycast address (nginx.conf + TLS), the health agent
 * that drives the announcement, and the bootstrap that puts the anycast address on `lo`.
 *
 * Every file is pushed with `pushFile` (validated on the host, reloaded in place), so a change
 * of communities, timers or proxy settings never replaces the host, and adding another PoP
 * never touches this one's inputs.
 */
import * as pulumi from "@pulumi/pulumi";
import { FailoverSpec, HealthSpec, OriginEndpoint, PopRenderInput, PopSpec } from "./core/model";
import { renderBirdConfig } from "./core/render/bird";
import { renderCloudInit } from "./core/render/cloudinit";
import { renderHealthAgent, renderHealthEnv, renderHealthUnit } from "./core/render/health";
import { renderNetSetup } from "./core/render/netsetup";
import { NGINX_PATHS, renderNginxConfig, renderNginxUpstreams, TLS_PATHS } from "./core/render/nginx";
import { Host } from "./host";
import { FilePush, pushFile } from "./push";

export interface TlsMaterial {
    /** Certificate chain nginx serves on 443 (Cloudflare Origin CA for Full (strict)). */
    certificatePem: pulumi.Input<string>;
    /** Its private key (a secret). */
    privateKeyPem: pulumi.Input<string>;
    /** CA that signs the client certificate Cloudflare presents (Authenticated Origin Pulls). */
    clientCaPem: pulumi.Input<string>;
}

export interface AnycastPoPArgs {
    /** The PoP, validated (see parseAnycastConfig). `bgp.password` is treated as a secret. */
    pop: PopSpec;
    /** What every PoP announces and serves. */
    deployment: { asn: number; prefixes: string[]; address: string };
    /** Where the proxy and the health agent reach the (first) origin through the mesh. */
    origin: OriginEndpoint;
    /** Every origin, first one first (default: [origin]). */
    origins?: OriginEndpoint[];
    /** The other PoPs, which the health agent asks for their view of the origins and relays through. */
    peers?: Array<{ name: string; meshAddress: string }>;
    /** What happens when origins fail (relay, the 503, a stale cache); default: no relay, no cache. */
    failover?: FailoverSpec;
    /** The mesh network (mesh.cidr): traffic to it must never leave by the uplink when wg0 is down. */
    mesh?: { cidr: string };
    health: HealthSpec;
    tls: TlsMaterial;
    /** SSH private key (secret) for pushing configs. */
    sshPrivateKey: pulumi.Input<string>;
    /** Vultr SSH key ids for a new instance. */
    sshKeyIds?: pulumi.Input<pulumi.Input<string>[]>;
    /** OpenSSH public keys written into cloud-init (for a new instance). */
    sshPublicKeys?: string[];
}

/** The files of a PoP that do not depend on the host's addresses or secrets. */
const STATIC_FILES = {
    "anycast-health": { remotePath: "/usr/local/sbin/anycast-health", mode: "0755" },
    "anycast-health.env": { remotePath: "/etc/anycast/health.env", mode: "0644" },
    "anycast-health.service": { remotePath: "/etc/systemd/system/anycast-health.service", mode: "0644" },
} as const;

export class AnycastPoP extends pulumi.ComponentResource {
    readonly host: Host;
    readonly ipv6: pulumi.Output<string>;
    readonly ipv4: pulumi.Output<string | undefined>;
    /** The BGP neighbour this PoP peers with. */
    readonly bgpNeighbor: string;
    /** Every rendered file by artifact name, exactly as pushed (secret: bird.conf holds the password). */
    readonly files: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: AnycastPoPArgs, opts?: pulumi.ComponentResourceOptions) {
        super("anycast:index:AnycastPoP", name, {}, opts);
        const { pop } = args;
        this.bgpNeighbor = pop.bgp.neighbor;

        // The bootstrap is rendered without host addresses (they do not exist yet) and only
        // runs at first boot; the Host ignores later userData changes (see host.ts).
        const bootstrapInput = (host: PopRenderInput["host"]): PopRenderInput => ({
            deployment: args.deployment, pop, host, origin: args.origin, origins: args.origins, peers: args.peers,
            failover: args.failover, mesh: args.mesh, health: args.health,
            firewall: { adminCidrs: [], meshPeers: [] },
        });
        const netSetupBoot = renderNetSetup(bootstrapInput({ ipv6: "::" }));
        this.host = new Host(name, {
            spec: pop.host,
            sshPrivateKey: args.sshPrivateKey,
            sshKeyIds: args.sshKeyIds,
            userData: pop.host.kind === "vultr"
                ? renderCloudInit({ hostname: name, role: "pop", sshPublicKeys: args.sshPublicKeys ?? [], netSetup: netSetupBoot })
                : undefined,
        }, { parent: this });
        this.ipv6 = this.host.ipv6;
        this.ipv4 = this.host.ipv4;

        const rendered = pulumi.all([this.host.ipv6, this.host.ipv4]).apply(([ipv6, ipv4]) => {
            const input = bootstrapInput({ ipv6, ipv4 });
            return {
                "anycast-net.sh": renderNetSetup(input),
                "bird.conf": renderBirdConfig(input),
                "nginx.conf": renderNginxConfig(input),
                "nginx-upstreams.conf": renderNginxUpstreams(input),
                "anycast-health": renderHealthAgent(),
                "anycast-health.env": renderHealthEnv(input),
                "anycast-health.service": renderHealthUnit(),
            };
        });
        // bird.conf carries the TCP-MD5 password.
        const birdConf = pulumi.secret(rendered.apply((r) => r["bird.conf"]));
        const file = (key: keyof typeof STATIC_FILES | "anycast-net.sh" | "nginx.conf" | "nginx-upstreams.conf") => rendered.apply((r) => r[key]);

        const conn = this.host.connection;
        const push = (p: FilePush, dependsOn: pulumi.Resource[] = []) =>
            pushFile(name, p, conn, { parent: this, dependsOn: [this.host, ...dependsOn] });

        const netSetup = push({
            file: "anycast-net.sh", remotePath: "/usr/local/sbin/anycast-net", mode: "0755",
            content: file("anycast-net.sh"), validate: "bash -n \"$new\"", apply: "/usr/local/sbin/anycast-net",
        });
        const tls = [
            push({ file: "origin.pem", remotePath: TLS_PATHS.certificate, mode: "0644", content: args.tls.certificatePem }),
            push({ file: "origin.key", remotePath: TLS_PATHS.key, mode: "0600", content: pulumi.secret(args.tls.privateKeyPem) }),
            push({ file: "origin-pull-ca.pem", remotePath: TLS_PATHS.clientCa, mode: "0644", content: args.tls.clientCaPem }),
        ];
        const bird = push({
            file: "bird.conf", remotePath: "/etc/bird/bird.conf", mode: "0640", content: birdConf,
            validate: "bird -p -c \"$new\"",
            // `birdc configure` re-evaluates filters without resetting sessions; start BIRD if it is not running.
            apply: "chgrp bird /etc/bird/bird.conf 2>/dev/null || true\n" +
                "if birdc show status >/dev/null 2>&1; then birdc configure; else systemctl enable --now bird; fi",
        }, [netSetup]);
        // The paths to the origins as a starting point; the health agent rewrites the file from its
        // checks. Re-pushed when origins or PoPs change, and the agent restarted with them decides again.
        const upstreams = push({
            file: "nginx-upstreams.conf", remotePath: NGINX_PATHS.upstreams, mode: "0644", content: file("nginx-upstreams.conf"),
            apply: "if systemctl is-active --quiet nginx; then nginx -t -q && systemctl reload nginx; fi",
        });
        const nginx = push({
            file: "nginx.conf", remotePath: "/etc/nginx/nginx.conf", mode: "0644", content: file("nginx.conf"),
            validate: "nginx -t -q -c \"$new\"",
            apply: "systemctl enable nginx >/dev/null 2>&1 || true\nsystemctl reload nginx || systemctl restart nginx",
        }, [netSetup, upstreams, ...tls]);
        const agentFiles = (["anycast-health", "anycast-health.env"] as const).map((key) => push({
            file: key, ...STATIC_FILES[key], content: file(key),
            validate: key === "anycast-health" ? "bash -n \"$new\"" : undefined,
            apply: "systemctl try-restart anycast-health || true",
        }, [bird, nginx]));
        push({
            file: "anycast-health.service", ...STATIC_FILES["anycast-health.service"], content: file("anycast-health.service"),
            apply: "systemctl daemon-reload\nsystemctl enable anycast-health\nsystemctl restart anycast-health",
        }, agentFiles);

        this.files = pulumi.secret(pulumi.all([rendered, birdConf]).apply(([r, b]): Record<string, string> => ({ ...r, "bird.conf": b })));
        this.registerOutputs({ ipv6: this.ipv6, ipv4: this.ipv4, bgpNeighbor: this.bgpNeighbor });
    }
}
