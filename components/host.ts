/**
 * A machine of the deployment: a new Vultr instance, or an existing server reached over SSH
 * (for providers without a Pulumi provider, like the seeds' BuyVM or v.ps hosts).
 *
 * The Vultr instance's `userData` is the bootstrap cloud-init only. Vultr replaces an instance
 * when `userData`, `hostname`, `osId`, `region` or `sshKeyIds` change, so nothing that changes
 * with the deployment (PoP list, BIRD/nginx/WireGuard settings, SSH keys) may flow into those
 * inputs. SSH keys in particular are pushed (see core/render/sshkeys.ts), never passed as Vultr
 * key ids.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as vultr from "@ediri/vultr";
import { HostSpec } from "./core/model";
import { sshAddressOf, sshLoginOf } from "./core/ssh-login";
import { renderAuthorizedKeys } from "./core/render/sshkeys";
import { renderBootstrap, renderCloudInitWait } from "./core/render/bootstrap";
import { asRoot, Connection, pushFile, sha256 } from "./push";

/** Debian 12: the OS the bootstrap and the pushed configs are written and tested for. */
export const DEFAULT_OS_NAME = "Debian 12 x64 (bookworm)";

export interface HostArgs {
    spec: HostSpec;
    /** The machine's host name (Vultr hostname and label). Default: the resource name. */
    hostname?: string;
    /** Bootstrap cloud-init for a new instance (ignored for existing hosts). */
    userData?: pulumi.Input<string>;
    /**
     * OpenSSH public keys that may log in, kept current on the host by a push of
     * /etc/anycast/authorized_keys (a key change updates access in place, never replaces the
     * host). Default: none managed (the host's authorized_keys is left alone).
     */
    sshPublicKeys?: string[];
    /** Private key (a Pulumi secret) used to push configs over SSH. */
    sshPrivateKey: pulumi.Input<string>;
    /** An existing server's bootstrap (renderBootstrap): run as root before any push (ignored for new instances). */
    bootstrap?: string;
}

export class Host extends pulumi.ComponentResource {
    /** The host's own unicast IPv6: BGP source, WireGuard endpoint, SSH target. */
    readonly ipv6: pulumi.Output<string>;
    /** Its unicast IPv4, when it has one. */
    readonly ipv4: pulumi.Output<string | undefined>;
    /** The SSH connection the config pushes use. */
    readonly connection: pulumi.Output<Connection>;
    /** The Vultr instance, for a Vultr-created host. */
    readonly instance?: vultr.Instance;
    /** What this component gives the host: `cloud-init.yaml` (new instances), `authorized_keys`. */
    readonly files: pulumi.Output<Record<string, string>>;
    /** The SSH login user: pushes run through sudo when it is not root. */
    readonly user: string;
    /**
     * The host is ready for pushes: cloud-init finished on a new instance, the bootstrap ran on an
     * existing server. A child of the Host, so every push that depends on the Host waits for it.
     */
    readonly ready: command.remote.Command;

    constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("anycast:index:Host", name, {}, opts);
        const spec = args.spec;
        const { user, port } = sshLoginOf(spec);
        if (spec.kind === "vultr") {
            this.instance = this.vultrInstance(name, spec, args);
            this.ipv6 = this.instance.v6MainIp;
            this.ipv4 = this.instance.mainIp.apply((ip) => ip || undefined);
        } else {
            this.ipv6 = pulumi.output(spec.address.toString());
            this.ipv4 = pulumi.output(spec.address4?.toString());
        }
        this.user = user;
        // SSH over the family the deployer can reach (anycast:deploy.sshFamily): CI runners often have no IPv6.
        const sshAddress = pulumi.all([this.ipv6, this.ipv4]).apply(([v6, v4]) => sshAddressOf(spec, v6, v4));
        this.connection = pulumi.all([sshAddress, pulumi.secret(args.sshPrivateKey)]).apply(([host, privateKey]) => ({
            host,
            port,
            user,
            privateKey,
            // A new instance takes a while to accept SSH: keep dialling instead of failing the update.
            dialErrorLimit: 30,
            perDialTimeout: 20,
        }));
        // An existing server without a role-specific bootstrap gets what every mesh member needs.
        const readyScript = spec.kind === "vultr" ? renderCloudInitWait() : args.bootstrap ?? renderBootstrap({ role: "origin" });
        this.ready = new command.remote.Command(`${name}-ready`, {
            connection: this.connection,
            create: asRoot(readyScript, user),
            // Runs again only when the script changes (new packages, a new unit), never on a plain update.
            triggers: [sha256(readyScript)],
            logging: "stderr",
        }, { parent: this, dependsOn: this.instance ? [this.instance] : [] });

        const files: Record<string, pulumi.Input<string>> = {};
        if (spec.kind === "vultr" && args.userData !== undefined) files["cloud-init.yaml"] = args.userData;
        if (args.sshPublicKeys !== undefined) {
            files["authorized_keys"] = renderAuthorizedKeys(args.sshPublicKeys);
            pushFile(name, { file: "authorized_keys", content: files["authorized_keys"] }, this.connection,
                { parent: this, dependsOn: [this.ready] }, user);
        }
        this.files = pulumi.all(files);
        this.registerOutputs({ ipv6: this.ipv6, ipv4: this.ipv4, files: this.files });
    }

    private vultrInstance(name: string, spec: Extract<HostSpec, { kind: "vultr" }>, args: HostArgs): vultr.Instance {
        const hostname = args.hostname ?? name;
        const osId = spec.osId !== undefined ? pulumi.output(spec.osId)
            : vultr.getOsOutput({ filters: [{ name: "name", values: [DEFAULT_OS_NAME] }] }, { parent: this })
                // getOs returns the id as a string; Instance.osId is a number.
                .apply((os) => Number(os.id));
        return new vultr.Instance(`${name}-instance`, {
            region: spec.region,
            plan: spec.plan,
            osId,
            hostname,
            label: `anycast-${hostname}`,
            enableIpv6: true,
            userData: args.userData,
            activationEmail: false,
            backups: "disabled",
            tags: ["anycast"],
        }, {
            parent: this,
            // userData is the first-boot bootstrap only; everything after that is pushed (SSH
            // keys included). Without this, editing a bootstrap detail or a key would replace a
            // serving PoP.
            ignoreChanges: ["userData"],
        });
    }
}
