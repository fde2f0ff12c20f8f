/**
 * The bootstrap of an existing server: what cloud-init does for a host this stack creates
 * (components/core/render/cloudinit.ts), as one idempotent script the deploy runs over SSH before
 * any push to that host. It installs the role's packages (only those missing, so a second run
 * changes nothing and needs no mirror), sets the sysctls, and on a PoP installs and enables
 * anycast-net's boot unit, so the anycast address and the neighbour route come back after a
 * reboot. It never starts, stops or reconfigures anything the server already runs.
 */
import { CLOUD_INIT_PACKAGES, NET_SETUP_UNIT, SYSCTL_CONTENT, SYSCTL_FILE, renderNetSetupUnit } from "./cloudinit";
import { shellQuote } from "../shell";

export interface BootstrapInput {
    role: "pop" | "origin";
}


export function renderBootstrap(input: BootstrapInput): string {
    const packages = CLOUD_INIT_PACKAGES[input.role];
    const lines = [
        "#!/bin/bash",
        "# Bootstrap of an existing server, rendered by pulumi-anycast; safe to run again.",
        "set -euo pipefail",
        "export DEBIAN_FRONTEND=noninteractive",
        `packages=(${packages.join(" ")})`,
        "missing=()",
        "for p in \"${packages[@]}\"; do",
        "    dpkg-query -W -f '${Status}' \"$p\" 2>/dev/null | grep -q 'ok installed' || missing+=(\"$p\")",
        "done",
        "if [ ${#missing[@]} -gt 0 ]; then",
        "    echo \"installing ${missing[*]}\" >&2",
        // Another apt run (unattended-upgrades) may hold the lock for a while after boot.
        "    apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null",
        "    apt-get -q -y -o DPkg::Lock::Timeout=300 install \"${missing[@]}\" >/dev/null",
        "fi",
        `printf '%s' ${shellQuote(SYSCTL_CONTENT)} > ${SYSCTL_FILE}`,
        `sysctl -q -p ${SYSCTL_FILE}`,
    ];
    if (input.role === "pop") {
        lines.push(
            `printf '%s' ${shellQuote(renderNetSetupUnit())} > /etc/systemd/system/${NET_SETUP_UNIT}`,
            "systemctl daemon-reload",
            // Enabled for the next boot; the anycast-net.sh push installs the script and runs it now.
            `systemctl enable ${NET_SETUP_UNIT} >/dev/null 2>&1`,
        );
    }
    lines.push("echo ready", "");
    return lines.join("\n");
}

/**
 * What a host the stack created runs before any push: waits for its first-boot cloud-init
 * (Vultr reports an instance active while cloud-init is still installing packages). Exit 2
 * (cloud-init 23.4+: done with recoverable errors, such as a deprecated key) still means the
 * packages are in; an error shows cloud-init's own account of it.
 */
export function renderCloudInitWait(): string {
    return [
        "#!/bin/bash",
        "# Waits for cloud-init's first boot to finish, rendered by pulumi-anycast.",
        "set -u",
        "if ! command -v cloud-init >/dev/null; then echo 'cloud-init is not installed: not a host this stack created' >&2; exit 1; fi",
        "cloud-init status --wait >/dev/null",
        "status=$?",
        "if [ \"$status\" -ne 0 ] && [ \"$status\" -ne 2 ]; then",
        "    cloud-init status --long >&2",
        "    exit \"$status\"",
        "fi",
        "echo ready",
        "",
    ].join("\n");
}
