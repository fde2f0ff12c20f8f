/**
 * `#cloud-config` user data for Vultr-created hosts: first-boot bootstrap only.
 *
 * Vultr replaces an instance when its userData changes, so nothing here may depend on the
 * rest of the deployment: no peer list, no BIRD/nginx/WireGuard setting, nothing that adding a
 * PoP would touch. It installs packages, sets the sysctls that keep router advertisements
 * working, authorises SSH keys and (on a PoP) installs and starts anycast-net, whose content is
 * the caller's responsibility to keep host-independent (renderNetSetup is). Everything else
 * is pushed over SSH afterwards and reloaded in place.
 */
import { stringify } from "yaml";
import { ARTIFACTS } from "../artifacts";
import { NET_SETUP_PATH } from "./netsetup";

export interface CloudInitInput {
    hostname: string;
    role: "pop" | "origin";
    sshPublicKeys: string[];
    /** The rendered anycast-net.sh; when given, it is installed with its systemd unit and started. */
    netSetup?: string;
}

/** Packages per role. nginx-light is enough: the PoP proxy needs no extra modules. */
export const CLOUD_INIT_PACKAGES: Record<CloudInitInput["role"], string[]> = {
    pop: ["bird2", "wireguard-tools", "nginx-light", "nftables", "curl"],
    origin: ["wireguard-tools", "nftables"],
};

export const NET_SETUP_UNIT = "anycast-net.service";
export const SYSCTL_FILE = "/etc/sysctl.d/90-anycast.conf";

export const SYSCTL_CONTENT = [
    "# pulumi-anycast: keep accepting router advertisements even if forwarding is turned on,",
    "# or the RA-learned default route (and with it the BGP session) expires.",
    "net.ipv6.conf.all.accept_ra = 2",
    "net.ipv6.conf.default.accept_ra = 2",
    "",
].join("\n");

/** anycast-net's boot unit (cloud-init installs it on created PoPs, the bootstrap on existing ones). */
export function renderNetSetupUnit(): string {
    return [
        "[Unit]",
        "Description=Anycast address on lo and static route to the BGP neighbour (pulumi-anycast)",
        "Wants=network-online.target",
        "After=network-online.target",
        // BIRD's session is sourced from the host and needs the pinned route; nginx binds the anycast address.
        "Before=bird.service nginx.service",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        `ExecStart=${NET_SETUP_PATH} --boot`,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ].join("\n");
}

export function renderCloudInit(input: CloudInitInput): string {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(input.hostname)) {
        throw new Error(`hostname "${input.hostname}" is not a valid host name label`);
    }
    for (const key of input.sshPublicKeys) {
        if (/[\r\n]/.test(key) || !/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/.test(key)) {
            throw new Error(`"${key.slice(0, 40)}..." is not an OpenSSH public key line`);
        }
    }

    const writeFiles: Array<Record<string, string>> = [
        { path: SYSCTL_FILE, owner: "root:root", permissions: "0644", content: SYSCTL_CONTENT },
    ];
    // Only our file: `sysctl --system` would also re-apply every other file, and fail on any key a host cannot set.
    const runcmd: string[][] = [["sysctl", "-p", SYSCTL_FILE]];
    if (input.netSetup !== undefined) {
        // The same file, path, owner and mode as its push (components/core/artifacts.ts).
        const netSetupFile = ARTIFACTS["anycast-net.sh"];
        if (!input.netSetup.startsWith("#!")) throw new Error("netSetup must be a script starting with #!");
        writeFiles.push(
            {
                path: NET_SETUP_PATH, owner: `${netSetupFile.owner}:${netSetupFile.group}`, permissions: netSetupFile.mode,
                content: input.netSetup,
            },
            { path: `/etc/systemd/system/${NET_SETUP_UNIT}`, owner: "root:root", permissions: "0644", content: renderNetSetupUnit() },
        );
        runcmd.push(["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", NET_SETUP_UNIT]);
    }

    const config: Record<string, unknown> = {
        hostname: input.hostname,
        package_update: true,
        packages: CLOUD_INIT_PACKAGES[input.role],
        write_files: writeFiles,
        runcmd,
    };
    if (input.sshPublicKeys.length > 0) config.ssh_authorized_keys = input.sshPublicKeys;
    // lineWidth 0: never fold long lines (an SSH key or a script line must stay one line).
    return "#cloud-config\n" + stringify(config, { lineWidth: 0 });
}
