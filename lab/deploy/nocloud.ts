/**
 * A new instance's first-boot files, written into its overlay before it boots: its identity
 * (hostname, hosts, resolv.conf) and cloud-init's NoCloud seed, which hands it its user data and
 * SSH keys exactly as Vultr's metadata service hands them to an instance.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import type { HostState } from "./nspawn";

/** The nameservers hosts use: this machine's, unless they are loopback (a local stub the hosts cannot reach). */
export function upstreamNameservers(): string[] {
    for (const file of ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"]) {
        try {
            const servers = fs.readFileSync(file, "utf8").split("\n")
                .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((s): s is string => s !== undefined)
                .filter((s) => !s.startsWith("127.") && s !== "::1");
            if (servers.length > 0) return servers;
        } catch {
            // not there
        }
    }
    throw new Error("this machine has no non-loopback nameserver in /etc/resolv.conf or /run/systemd/resolve/resolv.conf; the rehearsal's hosts need one to reach the Debian mirror");
}

/** The host's name in its own /etc, and this machine's nameservers in its resolv.conf (cloud-init does not write them here). */
export function writeHostIdentity(st: HostState, nameservers: readonly string[]): void {
    const root = st.host.rootDir;
    const name = st.blueprint.name;
    fs.writeFileSync(path.join(root, "etc", "hostname"), `${name}\n`);
    fs.appendFileSync(path.join(root, "etc", "hosts"), `127.0.1.1\t${name}\n`);
    fs.rmSync(path.join(root, "etc", "resolv.conf"), { force: true });
    fs.writeFileSync(path.join(root, "etc", "resolv.conf"), nameservers.map((n) => `nameserver ${n}\n`).join(""));
}

/** The NoCloud seed: user data as given, meta-data with an instance id and the instance's SSH keys. */
export function writeNoCloudSeed(st: HostState, deployPublicKey: string): void {
    const seed = path.join(st.host.rootDir, "var", "lib", "cloud", "seed", "nocloud");
    fs.mkdirSync(seed, { recursive: true });
    fs.writeFileSync(path.join(seed, "user-data"), st.blueprint.userData ?? "");
    const meta = {
        "instance-id": `${st.blueprint.name}-${crypto.randomBytes(6).toString("hex")}`,
        "local-hostname": st.blueprint.name,
        "public-keys": st.blueprint.sshKeys ?? [deployPublicKey],
    };
    fs.writeFileSync(path.join(seed, "meta-data"), YAML.stringify(meta));
}
