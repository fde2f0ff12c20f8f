/**
 * An existing server of the rehearsal: a Debian 12 host with a life before us (its own SSH host
 * keys, packages, login user, files, a service and an nftables table of its own), made from the
 * rootfs before its first boot. Cloud-init does not run on it; the deploy must leave what it had.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { shellQuote } from "../../components/core/shell";
import { EXISTING_HOST_PACKAGES, Rootfs } from "./rootfs";
import { sh } from "./slots";

/** What an existing server already has before anything of ours touches it. */
export interface ExistingHostState {
    /** The login user: a non-root user gets NOPASSWD sudo (needs "sudo" in packages); default root. */
    user?: string;
    /** Installed offline before the first boot, a subset of EXISTING_HOST_PACKAGES; default all of them. */
    packages?: string[];
    /** Files written into the host before its first boot (absolute paths). */
    files?: { path: string; content: string; mode?: number }[];
    /** systemd units enabled before the first boot. */
    enableUnits?: string[];
}

/** The service and firewall table an existing server of the rehearsal starts with (they must survive the deploy). */
export const EXISTING_SERVICE = { unit: "site.service", port: 8080, body: "an existing server's own site\n", nftTable: "inet site" };

/**
 * A typical existing server: its own web service (python3's http.server on EXISTING_SERVICE.port,
 * a systemd unit), its own nftables table loaded at boot by nftables.service, sudo and nftables
 * installed, and optionally a non-root login user with sudo.
 */
export function existingServerState(options: { user?: string; port?: number; healthPath?: string } = {}): ExistingHostState {
    const { unit, body, nftTable } = EXISTING_SERVICE;
    const port = options.port ?? EXISTING_SERVICE.port;
    // The site is what the stack's origin serves: its health path answers too.
    const health = options.healthPath && options.healthPath !== "/" ? [{ path: `/srv/site${options.healthPath.split("?")[0]}`, content: "ok\n" }] : [];
    return {
        user: options.user,
        packages: [...EXISTING_HOST_PACKAGES],
        files: [
            { path: "/srv/site/index.html", content: body },
            ...health,
            {
                path: `/etc/systemd/system/${unit}`,
                content: [
                    "[Unit]", "Description=The server's own site (existed before the deploy)", "After=network.target", "",
                    "[Service]", `ExecStart=/usr/bin/python3 -m http.server ${port} --bind :: --directory /srv/site`,
                    "User=nobody", "Restart=always", "", "[Install]", "WantedBy=multi-user.target", "",
                ].join("\n"),
            },
            {
                // Its own table only (no flush ruleset): declared, deleted and redefined, so a reload is idempotent.
                path: "/etc/nftables.conf", mode: 0o755,
                content: [
                    "#!/usr/sbin/nft -f", `table ${nftTable}`, `delete table ${nftTable}`, `table ${nftTable} {`,
                    "  chain input {", "    type filter hook input priority filter; policy accept;",
                    `    tcp dport ${port} counter accept comment "the site"`, "  }", "}", "",
                ].join("\n"),
            },
        ],
        enableUnits: [unit, "nftables.service"],
    };
}

/**
 * An existing server: SSH host keys of its own, its packages, its login user with sudo and
 * the deploy key, its own files and services; cloud-init does not run on it.
 */
export async function seedExistingHost(root: string, name: string, ex: ExistingHostState, user: string, rootfs: Rootfs, deployPublicKey: string): Promise<void> {
    fs.writeFileSync(path.join(root, "etc", "cloud", "cloud-init.disabled"), "");
    // Every key type, as a Debian server has: the RSA key takes seconds of CPU, and over a
    // minute on a loaded 2-core machine (the 60 s default killed it once).
    await sh("ssh-keygen", ["-A", "-f", root], { timeoutMs: 300_000 });
    const packages = ex.packages ?? EXISTING_HOST_PACKAGES;
    const script: string[] = [];
    if (packages.length > 0) {
        const debs = fs.readdirSync(rootfs.extrasDir).filter((f) => f.endsWith(".deb"));
        const wanted = await debsFor(rootfs.extrasDir, packages, debs);
        const tmp = path.join(root, "tmp", "anycast-extras");
        fs.mkdirSync(tmp, { recursive: true });
        for (const f of wanted) fs.copyFileSync(path.join(rootfs.extrasDir, f), path.join(tmp, f));
        // No service may start in a chroot; policy-rc.d says so to the maintainer scripts.
        script.push("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d", "chmod +x /usr/sbin/policy-rc.d",
            "dpkg -i /tmp/anycast-extras/*.deb >/dev/null", "rm -rf /tmp/anycast-extras /usr/sbin/policy-rc.d");
    }
    const home = user === "root" ? "/root" : `/home/${user}`;
    if (user !== "root") {
        script.push(`useradd --create-home --shell /bin/bash ${user}`,
            `printf '%s ALL=(ALL) NOPASSWD:ALL\\n' ${user} > /etc/sudoers.d/90-${user}`, `chmod 0440 /etc/sudoers.d/90-${user}`);
    }
    script.push(`install -d -m 0700 -o ${user} -g ${user} ${home}/.ssh`,
        `printf '%s\\n' ${shellQuote(deployPublicKey)} > ${home}/.ssh/authorized_keys`,
        `chown ${user}:${user} ${home}/.ssh/authorized_keys`, `chmod 0600 ${home}/.ssh/authorized_keys`);
    await sh("chroot", [root, "/bin/sh", "-ec", script.join("\n")], {
        timeoutMs: 120_000, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" },
    });
    for (const f of ex.files ?? []) {
        if (!path.isAbsolute(f.path)) throw new Error(`${name}: file path ${f.path} is not absolute`);
        const target = path.join(root, f.path);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, f.content, { mode: f.mode ?? 0o644 });
        fs.chmodSync(target, f.mode ?? 0o644);
    }
    if ((ex.enableUnits ?? []).length > 0) {
        await sh("chroot", [root, "systemctl", "enable", "--quiet", ...(ex.enableUnits ?? [])], { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
    }
}

/** The downloaded .deb files of `packages` and their dependencies (the extras were downloaded for exactly this base). */
async function debsFor(extrasDir: string, packages: string[], debs: string[]): Promise<string[]> {
    const byName = new Map<string, string>();
    const depends = new Map<string, string[]>();
    for (const f of debs) {
        const out = await sh("dpkg-deb", ["-f", path.join(extrasDir, f), "Package", "Depends", "Pre-Depends"]);
        const fields = Object.fromEntries(out.stdout.split("\n").map((l) => /^([A-Za-z-]+):\s*(.*)$/.exec(l)).filter((m): m is RegExpExecArray => m !== null).map((m) => [m[1], m[2]]));
        byName.set(fields.Package, f);
        const deps = [fields.Depends, fields["Pre-Depends"]].filter(Boolean).join(",").split(",")
            .flatMap((alt) => alt.split("|").map((d) => d.trim().split(/[\s(:]/)[0])).filter((d) => d !== "");
        depends.set(fields.Package, deps);
    }
    const wanted = new Set<string>();
    const add = (p: string) => {
        if (wanted.has(p) || !byName.has(p)) return; // not in extras: the base has it
        wanted.add(p);
        for (const d of depends.get(p) ?? []) add(d);
    };
    for (const p of packages) {
        if (!byName.has(p)) throw new Error(`the rootfs extras have no ${p} package (${extrasDir})`);
        add(p);
    }
    return [...wanted].map((p) => byName.get(p)!);
}
