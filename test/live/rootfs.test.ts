/**
 * The deploy rehearsal's Debian 12 rootfs (needs root and mmdebstrap; CI has both): built once
 * per recipe from this machine's Debian mirror, or taken from the cache, and holding what a
 * fresh Vultr Debian 12 instance holds and nothing of the machine that built it.
 *
 * The test runner starts this file beside the lab, so the build (minutes of mirror downloads and
 * unpacking on a fresh machine) is done before the files that boot hosts from it start; they find
 * it cached. The build's figures are printed, not asserted.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { deployPreconditionProblem } from "../../lab/deploy/hosts";
import { BASE_PACKAGES, ensureRootfs, EXISTING_HOST_PACKAGES, rootfsVersion, SUITE } from "../../lab/deploy/rootfs";

const skip = deployPreconditionProblem();
if (skip) console.log(`rootfs tests skipped: ${skip}`);

const log = (line: string) => console.log(`rootfs:${line.startsWith("  ") ? line.slice(1) : ` ${line}`}`);

/** Installed packages by name, from the image's dpkg database. */
function installedPackages(root: string): Set<string> {
    const status = fs.readFileSync(path.join(root, "var", "lib", "dpkg", "status"), "utf8");
    const installed = new Set<string>();
    for (const stanza of status.split(/\n\n+/)) {
        const name = /^Package: (\S+)$/m.exec(stanza)?.[1];
        if (name && /^Status: install ok installed$/m.test(stanza)) installed.add(name);
    }
    return installed;
}

describe("the rehearsal's Debian 12 rootfs", { skip }, () => {
    it("is built (or cached) for the current recipe with a fresh instance's packages and nothing host-specific", { timeout: 40 * 60_000 }, async () => {
        const rootfs = await ensureRootfs({ log });
        log(`${rootfs.version}: ${rootfs.builtNow ? "built now" : "cached"}, build took ${rootfs.buildSeconds.toFixed(1)} s, ` +
            `${(rootfs.sizeBytes / 1e6).toFixed(0)} MB, from ${rootfs.mirror}`);
        assert.equal(rootfs.version, rootfsVersion());
        assert.ok(rootfs.version.startsWith(`${SUITE}-`), rootfs.version);

        const osRelease = fs.readFileSync(path.join(rootfs.dir, "etc", "os-release"), "utf8");
        assert.match(osRelease, /^VERSION_ID="12"$/m);
        assert.match(osRelease, /^VERSION_CODENAME=bookworm$/m);

        const installed = installedPackages(rootfs.dir);
        for (const name of BASE_PACKAGES) assert.ok(installed.has(name), `${name} is not installed in the rootfs`);
        // The stand-in for the kernel's WireGuard module, and no kernel image pulled in for it.
        assert.ok(installed.has("anycast-rehearsal-wireguard-modules"));
        assert.deepEqual([...installed].filter((n) => n.startsWith("linux-image")), []);
        // An existing server's packages wait as .deb files; a new instance does not have them.
        const extras = fs.readdirSync(rootfs.extrasDir);
        for (const name of EXISTING_HOST_PACKAGES) {
            assert.ok(!installed.has(name), `${name} belongs to existing hosts only`);
            assert.ok(extras.some((f) => f.startsWith(`${name}_`) && f.endsWith(".deb")), `no ${name} .deb in ${rootfs.extrasDir}`);
        }

        // Each host makes its own machine id and SSH host keys; the image names no machine.
        assert.equal(fs.readFileSync(path.join(rootfs.dir, "etc", "machine-id"), "utf8"), "");
        assert.deepEqual(fs.readdirSync(path.join(rootfs.dir, "etc", "ssh")).filter((n) => n.startsWith("ssh_host_")), []);
        assert.equal(fs.readFileSync(path.join(rootfs.dir, "etc", "resolv.conf"), "utf8"), "");
        // cloud-init reads user data from NoCloud and leaves the network to the rehearsal.
        const cloudCfg = fs.readFileSync(path.join(rootfs.dir, "etc", "cloud", "cloud.cfg.d", "90_anycast_rehearsal.cfg"), "utf8");
        assert.match(cloudCfg, /^datasource_list: \[ NoCloud, None \]$/m);
        assert.match(cloudCfg, /^ {2}config: disabled$/m);
        // The image's apt sources are this machine's mirror, with no stale package lists.
        assert.match(fs.readFileSync(path.join(rootfs.dir, "etc", "apt", "sources.list.d", "debian.sources"), "utf8"), /^Suites: bookworm/m);
        assert.deepEqual(fs.readdirSync(path.join(rootfs.dir, "var", "lib", "apt", "lists")).filter((n) => n !== "partial" && n !== "lock"), []);
    });
});
