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
import { IpAddress, IpPrefix } from "./core/addressing";
import { FailoverSpec, HealthSpec, MeshTopology, OriginEndpoint, PopRenderInput, PopSpec } from "./core/model";
import { renderBirdConfig } from "./core/render/bird";
import { renderBootstrap } from "./core/render/bootstrap";
import { renderCloudInit } from "./core/render/cloudinit";
import { renderAgentSettings, renderHealthAgent, renderHealthUnit } from "./core/render/health";
import { renderNetSetup } from "./core/render/netsetup";
import { renderNginxConfig, renderNginxUpstreams } from "./core/render/nginx";
import { renderExporterDropIn } from "./core/monitoring/exporters";
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
    announcement: PopRenderInput["announcement"];
    /** Where the proxy and the health agent reach the (first) origin through the mesh. */
    origin: OriginEndpoint;
    /** Every origin, first one first (default: [origin]). */
    origins?: OriginEndpoint[];
    /** The other PoPs, which the health agent asks for their view of the origins and relays through. */
    peers?: Array<{ name: string; meshAddress: IpAddress }>;
    /** What happens when origins fail (relay, the 503, a stale cache); default: no relay, no cache. */
    failover?: FailoverSpec;
    /** The mesh network (mesh.cidr): traffic to it must never leave by the uplink when wg0 is down. */
    mesh?: { cidr: IpPrefix; topology?: MeshTopology };
    health: HealthSpec;
    tls: TlsMaterial;
    /** SSH private key (secret) for pushing configs. */
    sshPrivateKey: pulumi.Input<string>;
    /** OpenSSH public keys that may log in: in a new instance's cloud-init, then kept current by a push. */
    sshPublicKeys?: string[];
    /**
     * The session's TCP-MD5 password when it is only known at deploy time (a secret Output);
     * overrides `pop.bgp.password`.
     */
    bgpPassword?: pulumi.Input<string>;
}

export class AnycastPoP extends pulumi.ComponentResource {
    readonly host: Host;
    readonly ipv6: pulumi.Output<string>;
    readonly ipv4: pulumi.Output<string | undefined>;
    /** The BGP neighbour this PoP peers with. */
    readonly bgpNeighbor: IpAddress;
    /**
     * Every file the host receives, by artifact name, exactly as pushed (and its cloud-init.yaml);
     * secret as a whole, since bird.conf holds the password and origin.key is a private key.
     */
    readonly files: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: AnycastPoPArgs, opts?: pulumi.ComponentResourceOptions) {
        super("anycast:index:AnycastPoP", name, {}, opts);
        this.bgpNeighbor = args.pop.bgp.neighbor;
        this.host = this.createHost(name, args);
        this.ipv6 = this.host.ipv6;
        this.ipv4 = this.host.ipv4;
        const pushed = this.pushFiles(name, args, this.renderFiles(args));
        this.files = pulumi.secret(pulumi.all([this.host.files, pulumi.all(pushed)]).apply(([host, own]) => ({ ...host, ...own })));
        this.registerOutputs({ ipv6: this.ipv6, ipv4: this.ipv4, bgpNeighbor: this.bgpNeighbor.toString(), files: this.files });
    }

    private createHost(name: string, args: AnycastPoPArgs): Host {
        const { pop } = args;
        // The bootstrap is rendered without host addresses (they do not exist yet) and only
        // runs at first boot; the Host ignores later userData changes (see host.ts).
        const netSetupBoot = renderNetSetup(renderInput(args, { ipv6: "::" }));
        return new Host(name, {
            spec: pop.host,
            hostname: pop.name,
            sshPrivateKey: args.sshPrivateKey,
            sshPublicKeys: args.sshPublicKeys,
            userData: pop.host.kind === "vultr"
                ? renderCloudInit({ hostname: pop.name, role: "pop", sshPublicKeys: args.sshPublicKeys ?? [], netSetup: netSetupBoot })
                : undefined,
            bootstrap: pop.host.kind === "existing" ? renderBootstrap({ role: "pop" }) : undefined,
        }, { parent: this });
    }

    /** The files rendered from the host's addresses; bird.conf apart, as a secret (it carries the TCP-MD5 password). */
    private renderFiles(args: AnycastPoPArgs): RenderedPoPFiles {
        const addresses = pulumi.all([this.host.ipv6, this.host.ipv4]);
        const rendered = addresses.apply(([ipv6, ipv4]) => {
            const input = renderInput(args, { ipv6, ipv4 });
            return {
                "anycast-net.sh": renderNetSetup(input),
                "nginx.conf": renderNginxConfig(input),
                "nginx-upstreams.conf": renderNginxUpstreams(input),
                "anycast-health": renderHealthAgent(),
                "anycast-health.json": renderAgentSettings(input),
                "anycast-health.service": renderHealthUnit(),
            };
        });
        const birdConf = pulumi.secret(pulumi.all([addresses, args.bgpPassword]).apply(([[ipv6, ipv4], password]) => {
            const input = renderInput(args, { ipv6, ipv4 });
            return renderBirdConfig(password === undefined ? input : { ...input, pop: { ...input.pop, bgp: { ...input.pop.bgp, password } } });
        }));
        return { file: (key) => rendered.apply((r) => r[key]), birdConf };
    }

    /**
     * Push every file in dependency order; returns what was pushed, by artifact name. Paths, modes,
     * checks, reloads and which files are secret come from components/core/artifacts.ts.
     */
    private pushFiles(name: string, args: AnycastPoPArgs, { file, birdConf }: RenderedPoPFiles): Record<string, pulumi.Input<string>> {
        const conn = this.host.connection;
        const pushed: Record<string, pulumi.Input<string>> = {};
        const push = (p: FilePush, dependsOn: pulumi.Resource[] = []) => {
            pushed[p.file] = p.content;
            return pushFile(name, p, conn, { parent: this, dependsOn: [this.host, ...dependsOn] }, this.host.user);
        };

        const netSetup = push({ file: "anycast-net.sh", content: file("anycast-net.sh") });
        const tls = [
            push({ file: "origin.pem", content: args.tls.certificatePem }),
            push({ file: "origin.key", content: args.tls.privateKeyPem }),
            push({ file: "origin-pull-ca.pem", content: args.tls.clientCaPem }),
        ];
        // BIRD reaches its neighbour over the route anycast-net pins; nginx binds the anycast address
        // it puts on lo and needs the TLS files; the agent checks nginx and drives BIRD.
        const bird = push({ file: "bird.conf", content: birdConf }, [netSetup]);
        // The paths to the origins as a starting point, before the nginx.conf that includes them; from
        // then on the health agent rewrites the file from its checks (re-pushed when origins or PoPs
        // change, and the agent, restarted with its new settings, decides again).
        const upstreams = push({ file: "nginx-upstreams.conf", content: file("nginx-upstreams.conf") }, [netSetup]);
        const nginx = push({ file: "nginx.conf", content: file("nginx.conf") }, [netSetup, upstreams, ...tls]);
        // The program, then its settings (checked on the host by that program), then the unit. A host
        // upgraded from an older agent keeps it running until its new settings are in place.
        const program = push({ file: "anycast-health", content: file("anycast-health") }, [bird, nginx]);
        const settings = push({ file: "anycast-health.json", content: file("anycast-health.json") }, [program]);
        const unit = push({ file: "anycast-health.service", content: file("anycast-health.service") }, [settings]);
        // The exporters beside BIRD and nginx, on the mesh address (they bind it once wg0 is up).
        // After the agent: a host's package installs queue for apt, and serving comes before
        // being watched (the rehearsal's first deploy announced 20 s later the other way round).
        push({ file: "bird-exporter.conf", content: renderExporterDropIn("bird", args.pop.meshAddress) }, [bird, unit]);
        push({ file: "nginx-exporter.conf", content: renderExporterDropIn("nginx", args.pop.meshAddress) }, [nginx, unit]);
        return pushed;
    }
}

interface RenderedPoPFiles {
    file(key: "anycast-net.sh" | "nginx.conf" | "nginx-upstreams.conf" | "anycast-health" | "anycast-health.json" | "anycast-health.service"): pulumi.Output<string>;
    birdConf: pulumi.Output<string>;
}

/** What the renderers need for this PoP on a host with these addresses. */
function renderInput(args: AnycastPoPArgs, host: PopRenderInput["host"]): PopRenderInput {
    return {
        announcement: args.announcement, pop: args.pop, host, origin: args.origin, origins: args.origins, peers: args.peers,
        failover: args.failover, mesh: args.mesh, health: args.health,
    };
}
