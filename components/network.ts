/**
 * AnycastNetwork: the whole edge as one resource. Origin, PoPs, the WireGuard mesh between
 * them, every host's firewall, the Cloudflare front door and the SSH keys, all as its children.
 *
 *     const network = new AnycastNetwork("anycast", { asn, prefix, pops, origin, mesh, frontDoor,
 *         bgpPassword, sshPrivateKey, sshPublicKeys });
 *
 * With several origins (`origins` instead of `origin`), every PoP reaches each of them over the
 * mesh, and `failover` says what the PoPs do when origins fail (components/core/origins.ts).
 *
 * The args are the `anycast:` stack config without the namespace (README.md, "Config
 * reference", documents every field and its default). `stacks/network` is this one line on top
 * of the stack's config; a program of your own can make the same call.
 *
 * Like pulumi-eks's Cluster: the args are validated (parseAnycastConfig, pure and
 * tested apart) before anything is registered, children are named `<name>-<role>`, and the
 * outputs are typed: the validated spec, each host's addresses and files, DNS names, RPKI
 * states, mesh public keys and the config warnings.
 */
import * as pulumi from "@pulumi/pulumi";
import * as cloudflare from "@pulumi/cloudflare";
import { hasIpv4, IpAddress } from "./core/addressing";
import { ConfigError, parseAnycastConfig } from "./core/config";
import { AnycastSpec, BgpSettings, ConfigIssue, PopSpec, RpkiFinding } from "./core/model";
import { sshAddressOf, sshLoginOf } from "./core/ssh-login";
import { Jsonified, specFromJson, specToJson } from "./core/spec-json";
import { meshPeerNames } from "./core/render/wireguard";
import { popRenderBase } from "./core/render/layout";
import { renderMonitoringBundle, scrapeInputFor } from "./core/monitoring/prometheus";
import { HostFirewall } from "./firewall";
import { CloudflareFrontDoor } from "./frontdoor";
import { Host } from "./host";
import { WireGuardMesh } from "./mesh";
import { Origin } from "./origin";
import { AnycastPoP } from "./pop";

// The args' fields and their doc comments are generated from the config schema (npm run docs).
import { AnycastNetworkArgs } from "./network-args";
export type { AnycastNetworkArgs } from "./network-args";

/** A PoP of the validated model without its BGP password (NetworkSpec). */
export type PublicPopSpec = Omit<PopSpec, "bgp"> & { bgp: Omit<BgpSettings, "password"> };

/** The validated model without secrets: the BGP passwords are `bgpPasswords`, the SSH key stays an input. */
export type NetworkSpec = Omit<AnycastSpec, "bgpPassword" | "sshPrivateKey" | "pops"> & { pops: PublicPopSpec[] };

/**
 * NetworkSpec as the `spec` output holds it: every address and prefix its canonical text, because
 * Pulumi outputs carry plain data only (core/spec-json.ts). `networkSpecFromJson` gives it back typed.
 */
export type NetworkSpecJson = Jsonified<NetworkSpec>;

/** The typed NetworkSpec from the `spec` output's value. */
export function networkSpecFromJson(json: NetworkSpecJson): NetworkSpec {
    return specFromJson<NetworkSpec>(json);
}

/** One host of the network once the cloud has created it. */
export interface NetworkHost {
    name: string;
    role: "pop" | "origin";
    /** Vultr region of a Vultr-created host. */
    region?: string;
    /** Unicast IPv6: BGP source, WireGuard endpoint, SSH target. */
    ipv6: string;
    ipv4?: string;
    meshAddress: string;
    /** A PoP's BGP neighbour. */
    bgpNeighbor?: string;
    /** A PoP taken out by the config (`pops[].drained`): its agent keeps it withdrawn. */
    drained?: boolean;
    /** How the deploy's pushes (and `anycast status`) log in: address, port and user (sudo -n when not root). */
    ssh: { host: string; port: number; user: string };
}

export class AnycastNetwork extends pulumi.ComponentResource {
    /** The validated model, without secrets, as plain data (addresses and prefixes as text); `networkSpecFromJson` types it. */
    readonly spec: pulumi.Output<NetworkSpecJson>;
    /** Non-fatal findings of validation (also logged as warnings on this resource). */
    readonly warnings: pulumi.Output<ConfigIssue[]>;
    /** Every PoP, then every origin, with the addresses the cloud gave them. */
    readonly hosts: pulumi.Output<NetworkHost[]>;
    /** Host name -> artifact name -> exact content it receives (docs/ARTIFACTS.md). Secret: every host holds a key. */
    readonly files: pulumi.Output<Record<string, Record<string, string>>>;
    readonly anycastAddress: pulumi.Output<string>;
    readonly prefixes: pulumi.Output<string[]>;
    /** The proxied name visitors use and the unproxied AAAA behind it. */
    readonly dns: pulumi.Output<{ hostname: string; anycastName: string }>;
    /** Who the firewalls let reach HTTP(S) on the anycast address: `firewall.httpSources`, or Cloudflare's ranges at deploy time. */
    readonly httpSources: pulumi.Output<string[]>;
    /** Each announced prefix's RPKI state against `roas`, from each origin AS the Internet sees (`originAsn`). */
    readonly rpki: pulumi.Output<Array<Jsonified<RpkiFinding>>>;
    /** WireGuard public key of each host, by name. */
    readonly meshPublicKeys: pulumi.Output<Record<string, string>>;
    /** Each PoP's TCP-MD5 password (secret), for the upstream's side of the session. */
    readonly bgpPasswords: pulumi.Output<Record<string, string>>;
    /**
     * The validated model, typed, with its secrets (secret): for a program that works with the
     * network in process (the harness hands it to the lab and `anycast render`). Not registered as
     * an output: outputs carry plain data (`spec`).
     */
    readonly model: pulumi.Output<AnycastSpec>;
    /** The client certificate Cloudflare presents on origin pulls, and its key (secret). */
    readonly originPullClient: pulumi.Output<{ certPem: string; keyPem: string }>;

    /** The children, for programs that need more than the outputs. */
    readonly pops: AnycastPoP[];
    /** The first origin (the hub of a hub mesh). */
    readonly origin: Origin;
    /** Every origin, in config order. */
    readonly origins: Origin[];
    readonly mesh: WireGuardMesh;
    readonly frontDoor: CloudflareFrontDoor;
    readonly firewalls: HostFirewall[];

    constructor(name: string, args: AnycastNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        // Validated before super(): a bad config registers nothing, not even this component.
        const validated = validateAnycastNetwork(args);
        super("anycast:index:AnycastNetwork", name, {}, opts);
        const spec = validated.spec;
        for (const w of spec.warnings) void pulumi.log.warn(`${w.key}: ${w.message}`, this);

        this.model = validated.model;
        const secrets = pulumi.secret(validated.secrets);
        this.bgpPasswords = secrets.apply((s) => s.bgpPasswords);
        const sshPrivateKey = secrets.apply((s) => s.sshPrivateKey);
        const child = { parent: this };

        this.frontDoor = new CloudflareFrontDoor(`${name}-front-door`, { frontDoor: spec.frontDoor, address: spec.address }, child);
        // Outputs carry plain data (Pulumi copies objects field by field, without their class):
        // every address and prefix below leaves as its canonical text.
        const monitoring = spec.monitoring
            ? { origin: spec.monitoring.origin, bundle: renderMonitoringBundle(scrapeInputFor(spec)), retentionDays: spec.monitoring.retentionDays }
            : undefined;
        this.origins = spec.origins.map((o) => new Origin(`${name}-${o.name}`, {
            origin: o, sshPrivateKey, sshPublicKeys: spec.sshPublicKeys,
            ...(monitoring?.origin === o.name ? { monitoring } : {}),
        }, child));
        this.origin = this.origins[0];
        // The renderers' input for each PoP comes from one function (core/render/layout.ts), which the lab renders from too.
        this.pops = spec.pops.map((pop) => new AnycastPoP(`${name}-${pop.name}`, {
            ...popRenderBase(spec, pop),
            tls: this.frontDoor.tls,
            sshPrivateKey,
            sshPublicKeys: spec.sshPublicKeys,
            bgpPassword: this.bgpPasswords.apply((p) => p[pop.name]),
        }, child));

        const members = this.membersOf(name, spec);
        this.mesh = this.createMesh(name, spec, members);
        // HTTP(S) on the anycast address only from Cloudflare (its published ranges at deploy
        // time), unless the config names the sources (the lab does).
        this.httpSources = spec.firewall.httpSources
            ? pulumi.output(spec.firewall.httpSources.map(String))
            : cloudflare.getIpRangesOutput({}, { parent: this }).apply((r) => [...r.ipv6Cidrs, ...r.ipv4Cidrs]);
        this.firewalls = this.createFirewalls(name, spec, members);

        this.spec = pulumi.output(specToJson(withoutSecrets(spec)));
        this.warnings = pulumi.output(spec.warnings);
        this.anycastAddress = pulumi.output(spec.address.toString());
        this.prefixes = pulumi.output(spec.prefixes.map(String));
        this.dns = pulumi.output({ hostname: this.frontDoor.hostname, anycastName: this.frontDoor.anycastName });
        this.rpki = pulumi.output(spec.rpki.map((r) => ({ ...r, prefix: r.prefix.toString() })));
        this.meshPublicKeys = this.mesh.publicKeys;
        const pull = this.frontDoor.originPullClient;
        this.originPullClient = pulumi.secret(pulumi.all([pull.certPem, pull.keyPem]).apply(([certPem, keyPem]) => ({ certPem, keyPem })));
        this.hosts = this.hostsOf(spec);
        this.files = this.filesOf(spec);
        this.registerOutputs({
            spec: this.spec, warnings: this.warnings, hosts: this.hosts, files: this.files,
            anycastAddress: this.anycastAddress, prefixes: this.prefixes, dns: this.dns, httpSources: this.httpSources, rpki: this.rpki,
            meshPublicKeys: this.meshPublicKeys, bgpPasswords: this.bgpPasswords, originPullClient: this.originPullClient,
        });
    }

    /** The origins first, then the PoPs. */
    private membersOf(name: string, spec: AnycastSpec): NetworkMember[] {
        return [
            ...spec.origins.map((o, i) => ({ name: o.name, resource: `${name}-${o.name}`, meshAddress: o.meshAddress, host: this.origins[i].host,
                component: this.origins[i], existingHost: o.host.kind === "existing" })),
            ...spec.pops.map((p, i) => ({ name: p.name, resource: `${name}-${p.name}`, meshAddress: p.meshAddress, host: this.pops[i].host,
                component: this.pops[i], existingHost: p.host.kind === "existing" })),
        ];
    }

    private createMesh(name: string, spec: AnycastSpec, members: NetworkMember[]): WireGuardMesh {
        return new WireGuardMesh(`${name}-mesh`, {
            cidr: spec.mesh.cidr, port: spec.mesh.port, topology: spec.mesh.topology, hub: spec.origin.name,
            mtu: spec.mesh.mtu, persistentKeepalive: spec.mesh.persistentKeepalive,
            members: members.map((m) => ({
                name: m.name, host: m.resource, meshAddress: m.meshAddress, endpoint: m.host.ipv6,
                connection: m.host.connection, dependsOn: [m.host], user: m.host.user,
            })),
        }, { parent: this });
    }

    /** Each host's nftables ruleset: WireGuard only from its mesh peers, BGP only from its neighbours, the relay port only from the mesh. */
    private createFirewalls(name: string, spec: AnycastSpec, members: NetworkMember[]): HostFirewall[] {
        const names = members.map((m) => m.name);
        const peersOf = (self: string) => meshPeerNames(self, names, spec.mesh.topology, spec.origin.name)
            .map((peer) => members.find((m) => m.name === peer)!.host.ipv6);
        const dualStack = hasIpv4(spec.prefixes);
        const common = { meshPort: spec.mesh.port, meshCidr: spec.mesh.cidr, adminCidrs: spec.firewall.adminCidrs, httpSources: this.httpSources };
        return members.map((m) => {
            const pop = spec.pops.find((p) => p.name === m.name);
            const origin = spec.origins.find((o) => o.name === m.name);
            return new HostFirewall(`${m.resource}-firewall`, {
                ...common,
                host: m.resource,
                role: pop ? "pop" : "origin",
                anycastAddresses: pop ? [spec.address] : [],
                bgpNeighbors: pop ? [pop.bgp.neighbor, ...(dualStack ? [pop.bgp.neighbor4] : [])] : [],
                meshPeerEndpoints: peersOf(m.name),
                originPort: origin?.port,
                relayPort: pop ? spec.failover.relayPort : undefined,
                agent: pop ? { port: spec.health.statusPort, otherPops: members.filter((o) => o.name !== m.name && spec.pops.some((p) => p.name === o.name)).map((o) => o.host.ipv6) } : undefined,
                bfd: pop ? pop.bgp.bfd !== undefined : false,
                connection: m.host.connection,
                user: m.host.user,
                existingHost: m.existingHost,
                // Last of the host's pushes (its component's and its wg0.conf): a mistake in the
                // firewall cannot cut the deployer off from pushes still to come.
                dependsOn: [m.host, m.component, this.mesh],
            }, { parent: this });
        });
    }

    private hostsOf(spec: AnycastSpec): pulumi.Output<NetworkHost[]> {
        const regionOf = (h: PopSpec["host"]) => (h.kind === "vultr" ? { region: h.region } : {});
        const entry = (host: Host, hostSpec: PopSpec["host"], fixed: Omit<NetworkHost, "ipv6" | "ipv4" | "ssh">) =>
            pulumi.all([host.ipv6, host.ipv4]).apply(([ipv6, ipv4]): NetworkHost => ({ ...fixed, ipv6, ...(ipv4 ? { ipv4 } : {}),
                ssh: { host: sshAddressOf(hostSpec, ipv6, ipv4), ...sshLoginOf(hostSpec) } }));
        return pulumi.all([
            ...spec.pops.map((p, i) => entry(this.pops[i].host, p.host, {
                name: p.name, role: "pop", ...regionOf(p.host), meshAddress: p.meshAddress.toString(), bgpNeighbor: p.bgp.neighbor.toString(),
                drained: p.drained,
            })),
            ...spec.origins.map((o, i) => entry(this.origins[i].host, o.host, {
                name: o.name, role: "origin", ...regionOf(o.host), meshAddress: o.meshAddress.toString(),
            })),
        ]);
    }

    private filesOf(spec: AnycastSpec): pulumi.Output<Record<string, Record<string, string>>> {
        const hostFiles = (own: pulumi.Output<Record<string, string>>, host: string, i: number) =>
            pulumi.all([own, this.mesh.configs, this.firewalls[i].ruleset]).apply(([files, wg, nft]): Record<string, string> =>
                ({ ...files, "wg0.conf": wg[host], "nftables.conf": nft }));
        // Firewalls are in member order: the origins first, then the PoPs.
        const n = spec.origins.length;
        const byHost: Record<string, pulumi.Output<Record<string, string>>> = {
            ...Object.fromEntries(spec.pops.map((p, i) => [p.name, hostFiles(this.pops[i].files, p.name, n + i)])),
            ...Object.fromEntries(spec.origins.map((o, i) => [o.name, hostFiles(this.origins[i].files, o.name, i)])),
        };
        return pulumi.secret(pulumi.all(byHost) as pulumi.Output<Record<string, Record<string, string>>>);
    }
}

interface NetworkMember {
    name: string;
    /** The resource name of the member's component and host (`<network>-<name>`). */
    resource: string;
    meshAddress: IpAddress;
    host: Host;
    /** The member's own component (its PoP or the origin): the firewall push waits for its pushes. */
    component: pulumi.Resource;
    existingHost: boolean;
}

/** What the constructor validated, and the secrets as the children consume them. */
export interface ValidatedNetwork {
    spec: AnycastSpec;
    /** The validated model with the secrets' real values, once they are known (AnycastNetwork.model). */
    model: pulumi.Output<AnycastSpec>;
    secrets: pulumi.Output<{ sshPrivateKey: string; bgpPasswords: Record<string, string> }>;
}

/** Stand-ins that pass validation, for secrets whose value is only known at deploy time. */
const DEFERRED = {
    bgpPassword: "deferred-secret",
    sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\ndeferred-secret\n-----END OPENSSH PRIVATE KEY-----\n",
};

/**
 * Validate the args (parseAnycastConfig: every rule lives there). A ConfigError lists every
 * problem by its `anycast:` key.
 *
 * Validation needs the secrets' plain values (the password's length and characters, the key's
 * form). A plain string, which is what stacks/network passes, is validated with everything else,
 * here, before any resource exists, and is kept secret from then on. A secret Output (e.g. from
 * `config.requireSecret`) has no value until the deployment runs: the rest is validated here
 * with a stand-in, and the same function validates the real value inside the apply that every
 * push and every bird.conf depend on. A bad value then fails the update with the same message
 * naming the key, as a pulumi.RunError (no stack trace), before anything is pushed; resources
 * that do not depend on it (instances, DNS records) may exist by then.
 */
export function validateAnycastNetwork(args: AnycastNetworkArgs): ValidatedNetwork {
    // Known now: anything but an Output or a promise (a wrong type is the validator's to report).
    const known = (v: pulumi.Input<string> | undefined): v is string | undefined =>
        !pulumi.Output.isInstance(v) && !(v instanceof Promise);
    const { bgpPassword, sshPrivateKey, ...plain } = args;
    const raw = (pw: string | undefined, key: string | undefined): Record<string, unknown> =>
        ({ ...plain, ...(pw !== undefined ? { bgpPassword: pw } : {}), ...(key !== undefined ? { sshPrivateKey: key } : {}) });
    const spec = parseAnycastConfig(raw(known(bgpPassword) ? bgpPassword : DEFERRED.bgpPassword,
        known(sshPrivateKey) ? sshPrivateKey : DEFERRED.sshPrivateKey));
    const secretsOf = (s: AnycastSpec) => ({
        sshPrivateKey: s.sshPrivateKey,
        bgpPasswords: Object.fromEntries(s.pops.map((p) => [p.name, p.bgp.password])),
    });
    // The typed model (a secret: it holds them) leaves as an apply's result, which keeps its
    // classes; pulumi.output(spec) would copy every object field by field.
    if (known(bgpPassword) && known(sshPrivateKey)) {
        return { spec, model: pulumi.secret(true).apply(() => spec), secrets: pulumi.output(secretsOf(spec)) };
    }
    const model = pulumi.secret(pulumi.all([bgpPassword, sshPrivateKey])).apply(([pw, key]) => {
        try {
            return parseAnycastConfig(raw(pw, key));
        } catch (e) {
            throw e instanceof ConfigError ? deployTimeConfigError(e) : e;
        }
    });
    return { spec, model, secrets: model.apply(secretsOf) };
}

/**
 * A config error found at deploy time, as the Pulumi CLI should print it: a RunError (its
 * message, no stack trace). The SDK's serializer prefixes the message of an error raised inside
 * an input with `error serializing property "..."` once for every property and resource it
 * passes through (runtime/rpc.js); the message is kept as written, so the user reads the key.
 */
function deployTimeConfigError(e: ConfigError): pulumi.RunError {
    const err = new pulumi.RunError(e.message);
    Object.defineProperty(err, "message", { get: () => e.message, set: () => undefined, configurable: true });
    return err;
}

/** The spec without its secrets (the BGP passwords and the SSH private key). */
export function withoutSecrets(spec: AnycastSpec): NetworkSpec {
    const { bgpPassword: _password, sshPrivateKey: _key, pops, ...rest } = spec;
    return {
        ...rest,
        pops: pops.map(({ bgp: { password: _popPassword, ...bgp }, ...pop }) => ({ ...pop, bgp })),
    };
}
