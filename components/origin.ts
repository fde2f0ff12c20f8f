/**
 * Origin: the server behind the mesh that actually serves the site. Either an existing server
 * (the usual case: the user's current web server) or a new Vultr instance. It joins the mesh
 * (WireGuardMesh pushes its wg0.conf) and gets the host firewall like every PoP.
 */
import * as pulumi from "@pulumi/pulumi";
import { IpAddress } from "./core/addressing";
import { OriginSpec } from "./core/model";
import { renderBootstrap } from "./core/render/bootstrap";
import { renderCloudInit } from "./core/render/cloudinit";
import { MonitoringFile, renderPrometheusDropIn } from "./core/monitoring/prometheus";
import { Host } from "./host";
import { FilePush, pushFile } from "./push";

export interface OriginArgs {
    origin: OriginSpec;
    sshPrivateKey: pulumi.Input<string>;
    /** OpenSSH public keys that may log in: in a new instance's cloud-init, then kept current by a push. */
    sshPublicKeys?: string[];
    /** The monitoring bundle, when `anycast:monitoring` names this origin: Prometheus runs it here. */
    monitoring?: { bundle: Record<MonitoringFile, string>; retentionDays: number };
}

export class Origin extends pulumi.ComponentResource {
    readonly host: Host;
    readonly ipv6: pulumi.Output<string>;
    readonly meshAddress: IpAddress;
    readonly port: number;
    /** What the host receives from this component, by artifact name (its wg0.conf and firewall come from WireGuardMesh and HostFirewall). */
    readonly files: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: OriginArgs, opts?: pulumi.ComponentResourceOptions) {
        super("anycast:index:Origin", name, {}, opts);
        const { origin } = args;
        this.host = new Host(name, {
            spec: origin.host,
            hostname: origin.name,
            sshPrivateKey: args.sshPrivateKey,
            sshPublicKeys: args.sshPublicKeys,
            userData: origin.host.kind === "vultr"
                ? renderCloudInit({ hostname: origin.name, role: "origin", sshPublicKeys: args.sshPublicKeys ?? [] })
                : undefined,
            bootstrap: origin.host.kind === "existing" ? renderBootstrap({ role: "origin" }) : undefined,
        }, { parent: this });
        this.ipv6 = this.host.ipv6;
        this.meshAddress = origin.meshAddress;
        this.port = origin.port;
        this.files = args.monitoring
            ? pulumi.all([this.host.files, pulumi.all(this.pushMonitoring(name, args.monitoring))]).apply(([host, own]) => ({ ...host, ...own }))
            : this.host.files;
        this.registerOutputs({ ipv6: this.ipv6, meshAddress: this.meshAddress.toString(), files: this.files });
    }

    /**
     * Debian's Prometheus with the bundle: the drop-in first (it installs the package, which then
     * starts as configured), the rules next (checked with the package's promtool), the config last.
     */
    private pushMonitoring(name: string, m: NonNullable<OriginArgs["monitoring"]>): Record<string, pulumi.Input<string>> {
        const pushed: Record<string, pulumi.Input<string>> = {};
        const push = (p: FilePush, dependsOn: pulumi.Resource[] = []) => {
            pushed[p.file] = p.content;
            return pushFile(name, p, this.host.connection, { parent: this, dependsOn: [this.host, ...dependsOn] }, this.host.user);
        };
        const dropIn = push({ file: "prometheus.conf", content: renderPrometheusDropIn(m.retentionDays) });
        const rules = push({ file: "alerts.yml", content: m.bundle["alerts.yml"] }, [dropIn]);
        push({ file: "prometheus.yml", content: m.bundle["prometheus.yml"] }, [rules]);
        return pushed;
    }
}
