/**
 * The clean Debian 12 (bookworm) root filesystem the deploy rehearsal boots its hosts from, built
 * once with Debian's `mmdebstrap --variant=minbase` and cached. mmdebstrap rather than debootstrap:
 * it resolves the package set with apt in one go and unpacks it in one dpkg run, where debootstrap
 * installs package by package (on a quiet 2-core machine the whole build took 54-59 s beside the
 * fast tier, against 74.7-85 s for debootstrap's; debootstrap took over 20 minutes at load 20).
 *
 * The cache directory is named by a version that hashes the whole recipe (packages, files
 * written, the local packages), so any change to the recipe builds a new rootfs instead of
 * reusing a stale one. A build goes into a temporary directory that is renamed into place only
 * when complete, so an interrupted build never leaves a half-made rootfs that looks usable.
 *
 * Hosts never write into the cached rootfs: each boots from an overlay on top of it (hosts.ts).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sha256 } from "../../components/core/digest";
import { hasCommand, run } from "../exec";
import { debianSources, DebianSources, readAptSources } from "./aptsources";
import { acquireLock } from "./lock";

/** Where built root filesystems are kept between runs (CI builds one per recipe version). */
export const DEFAULT_CACHE_DIR = "/var/cache/pulumi-anycast/rootfs";

export const SUITE = "bookworm";

/**
 * What a fresh Debian 12 cloud instance needs to boot under systemd-nspawn and be deployed to:
 * systemd as PID 1 (with dbus), sshd, iproute2, cloud-init (which needs python3-cffi-backend
 * for its crypto and a generated locale, or its locale module fails), and CA certificates.
 */
export const BASE_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "cloud-init",
    "python3-cffi-backend", "ca-certificates", "locales",
    // The hosts share this machine's kernel, which has no WireGuard module: wg-quick falls back
    // to wireguard-go when `ip link add type wireguard` fails. It plays the kernel's part, like
    // the stand-in package below, so a wg0.conf push runs unchanged.
    "wireguard-go",
];

/**
 * Packages an *existing* server already has (a non-root user logs in and uses sudo; the server
 * keeps a firewall table of its own). They are not in the base, because a new instance does not
 * have them; the build downloads them (with their dependencies) for hosts.ts to install offline
 * into an existing host before it boots.
 */
export const EXISTING_HOST_PACKAGES = ["sudo", "nftables"];

/**
 * A local package standing in for the kernel's WireGuard module. The hosts share this machine's
 * kernel, so installing `wireguard-tools` must not pull in a kernel image through its
 * `wireguard-modules` recommendation (real Debian kernels provide that name; the rehearsal's
 * hosts run wireguard-go instead).
 */
const WIREGUARD_MODULES_CONTROL = [
    "Package: anycast-rehearsal-wireguard-modules",
    "Version: 1.0.0",
    "Architecture: all",
    "Maintainer: pulumi-anycast <dev@pulumi-anycast.invalid>",
    "Provides: wireguard-modules (= 1.0.0)",
    "Section: kernel",
    "Priority: optional",
    "Description: WireGuard is provided by the host kernel (pulumi-anycast deploy rehearsal)",
    " The rehearsal's containers share the host's kernel; this package satisfies",
    " wireguard-tools' wireguard-modules recommendation without a kernel image.",
    "",
].join("\n");

/**
 * cloud-init as the hosts run it: user data comes from the NoCloud seed (as Vultr's comes from
 * its metadata service); the rehearsal network configures the interfaces from outside, like a
 * cloud's DHCP, so cloud-init must not rewrite them; root logs in with the instance's SSH keys
 * as on Vultr's Debian images; the apt sources are the image's own (this machine's mirror); and
 * there is no block device to grow.
 */
const CLOUD_CFG = [
    "# pulumi-anycast deploy rehearsal: a fresh Debian 12 instance, user data from NoCloud.",
    "datasource_list: [ NoCloud, None ]",
    "network:",
    "  config: disabled",
    "disable_root: false",
    "users: []",
    "apt:",
    "  preserve_sources_list: true",
    "growpart:",
    "  mode: 'off'",
    "resize_rootfs: false",
    "",
].join("\n");

const HOSTS_FILE = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n";

/** Bumped by hand when the build steps change in a way the hashed recipe does not show. */
const RECIPE_REVISION = 2;

/** The recipe's version: a changed package list, file or step gives a new cache directory. */
export function rootfsVersion(): string {
    const recipe = JSON.stringify({
        RECIPE_REVISION, SUITE, BASE_PACKAGES, EXISTING_HOST_PACKAGES, WIREGUARD_MODULES_CONTROL, CLOUD_CFG, HOSTS_FILE,
    });
    return `${SUITE}-r${RECIPE_REVISION}-${sha256(recipe).slice(0, 10)}`;
}

export interface Rootfs {
    version: string;
    /** The root filesystem (read-only for hosts: they boot from an overlay on it). */
    dir: string;
    /** The downloaded EXISTING_HOST_PACKAGES with their dependencies (.deb files). */
    extrasDir: string;
    /** The Debian mirror it was built from (this machine's own). */
    mirror: string;
    /** Seconds the build took (the build that made this cache entry, maybe an earlier run). */
    buildSeconds: number;
    /** Bytes on disk of the root filesystem. */
    sizeBytes: number;
    /** True when this call built it; false when it came from the cache. */
    builtNow: boolean;
}

interface Manifest {
    version: string;
    mirror: string;
    buildSeconds: number;
    sizeBytes: number;
    builtAt: string;
}

export interface RootfsOptions {
    cacheDir?: string;
    log?: (line: string) => void;
    /** The machine's apt configuration (tests point it elsewhere). */
    sources?: DebianSources;
}

/** Tools the build needs, by command; hosts.ts checks its own. */
export const ROOTFS_TOOLS = ["mmdebstrap", "dpkg-deb", "chroot", "du"];

/** The cached rootfs for the current recipe, building it first when there is none. */
export async function ensureRootfs(options: RootfsOptions = {}): Promise<Rootfs> {
    const cacheDir = options.cacheDir ?? DEFAULT_CACHE_DIR;
    const log = options.log ?? (() => undefined);
    const version = rootfsVersion();
    const finalDir = path.join(cacheDir, version);
    const cached = readCached(finalDir);
    if (cached) return cached;

    const missing = ROOTFS_TOOLS.filter((t) => !hasCommand(t));
    if (missing.length > 0) throw new Error(`building the rehearsal rootfs needs ${missing.join(", ")} (bash scripts/setup.sh installs them)`);
    const sources = options.sources ?? debianSources(readAptSources(), SUITE);

    // One build at a time on this machine; whoever waited finds the cache filled.
    const release = await acquireLock(path.join(cacheDir, ".build.lock"), "the rootfs build", 20 * 60_000, log);
    try {
        const again = readCached(finalDir);
        if (again) return again;
        pruneOldVersions(cacheDir, version, log);
        const manifest = await build(cacheDir, version, sources, log);
        return { ...paths(finalDir), version, mirror: manifest.mirror, buildSeconds: manifest.buildSeconds, sizeBytes: manifest.sizeBytes, builtNow: true };
    } finally {
        release();
    }
}

function paths(versionDir: string): { dir: string; extrasDir: string } {
    return { dir: path.join(versionDir, "rootfs"), extrasDir: path.join(versionDir, "extras") };
}

function readCached(versionDir: string): Rootfs | undefined {
    try {
        const m = JSON.parse(fs.readFileSync(path.join(versionDir, "manifest.json"), "utf8")) as Manifest;
        return { ...paths(versionDir), version: m.version, mirror: m.mirror, buildSeconds: m.buildSeconds, sizeBytes: m.sizeBytes, builtNow: false };
    } catch {
        return undefined;
    }
}

async function chroot(root: string, script: string, timeoutMs = 120_000): Promise<void> {
    await run("chroot", [root, "/bin/sh", "-ec", script], {
        timeoutMs,
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" },
    });
}

/**
 * Everything after mmdebstrap: the WireGuard stand-in package, the locale, cloud-init's
 * configuration, the existing-host packages (downloaded to `extrasDir`), this machine's Debian
 * sources, and nothing host-specific left in the image.
 */
export async function customizeRootfs(root: string, extrasDir: string, sources: DebianSources): Promise<void> {
    // The stand-in for the kernel's WireGuard module, built with dpkg-deb and installed.
    const pkgDir = path.join(path.dirname(root), "wireguard-modules");
    fs.mkdirSync(path.join(pkgDir, "DEBIAN"), { recursive: true });
    fs.writeFileSync(path.join(pkgDir, "DEBIAN", "control"), WIREGUARD_MODULES_CONTROL);
    await run("dpkg-deb", ["--root-owner-group", "--build", pkgDir, path.join(root, "tmp", "wireguard-modules.deb")], { timeoutMs: 60_000 });
    fs.rmSync(pkgDir, { recursive: true, force: true });

    // apt in the chroot (this machine's network) resolves names the way this machine does.
    fs.rmSync(path.join(root, "etc", "resolv.conf"), { force: true });
    fs.copyFileSync("/etc/resolv.conf", path.join(root, "etc", "resolv.conf"));
    fs.writeFileSync(path.join(root, "etc", "locale.gen"), "en_US.UTF-8 UTF-8\n");
    fs.writeFileSync(path.join(root, "etc", "cloud", "cloud.cfg.d", "90_anycast_rehearsal.cfg"), CLOUD_CFG);
    await chroot(root, [
        "dpkg -i /tmp/wireguard-modules.deb",
        "rm -f /tmp/wireguard-modules.deb",
        "locale-gen",
        // Existing hosts' packages, downloaded now against this exact base, installed offline
        // later; the base's own downloads go first, so only these are left in the archive.
        "apt-get clean",
        `apt-get install --download-only --no-install-recommends -y -q ${EXISTING_HOST_PACKAGES.join(" ")}`,
    ].join("\n"), 10 * 60_000);
    const archives = path.join(root, "var", "cache", "apt", "archives");
    for (const f of fs.readdirSync(archives).filter((n) => n.endsWith(".deb"))) {
        fs.renameSync(path.join(archives, f), path.join(extrasDir, f));
    }

    // This machine's Debian mirror (release, updates, security) as the image's own sources.
    fs.rmSync(path.join(root, "etc", "apt", "sources.list"), { force: true });
    fs.writeFileSync(path.join(root, "etc", "apt", "sources.list.d", "debian.sources"), sources.deb822);
    await chroot(root, "apt-get clean\nrm -rf /var/lib/apt/lists/*\nmkdir -p /var/lib/apt/lists/partial");

    // Nothing host-specific stays in the image: every host gets its own machine id (systemd
    // makes one on first boot), SSH host keys (hosts.ts / cloud-init), hostname and resolver.
    for (const name of fs.readdirSync(path.join(root, "etc", "ssh")).filter((n) => n.startsWith("ssh_host_"))) {
        fs.rmSync(path.join(root, "etc", "ssh", name));
    }
    fs.writeFileSync(path.join(root, "etc", "machine-id"), "");
    fs.rmSync(path.join(root, "var", "lib", "dbus", "machine-id"), { force: true });
    fs.writeFileSync(path.join(root, "etc", "hostname"), "debian\n");
    fs.writeFileSync(path.join(root, "etc", "hosts"), HOSTS_FILE);
    fs.rmSync(path.join(root, "etc", "resolv.conf"), { force: true });
    fs.writeFileSync(path.join(root, "etc", "resolv.conf"), "");
}

async function build(cacheDir: string, version: string, sources: DebianSources, log: (line: string) => void): Promise<Manifest> {
    fs.mkdirSync(cacheDir, { recursive: true });
    const tmp = path.join(cacheDir, `.build-${version}-${process.pid}`);
    fs.rmSync(tmp, { recursive: true, force: true });
    const { dir: root, extrasDir } = paths(tmp);
    fs.mkdirSync(extrasDir, { recursive: true });
    const started = Date.now();
    try {
        log(`  building the Debian ${SUITE} rootfs (mmdebstrap --variant=minbase, once per recipe ${version})`);
        // mmdebstrap creates the target itself and refuses a non-empty one.
        fs.rmSync(root, { recursive: true, force: true });
        await run("mmdebstrap", [
            "--variant=minbase", `--include=${BASE_PACKAGES.join(",")}`, "--components=main",
            // Keep the package lists: customizeRootfs downloads the existing-host packages with
            // apt against them, then removes them itself.
            "--skip=cleanup/apt/lists",
            SUITE, root, sources.mirror,
        // Generous: a base build on a loaded machine has taken over 20 minutes (31 s when quiet).
        ], { timeoutMs: 60 * 60_000 });
        const baseSeconds = (Date.now() - started) / 1000;
        log(`  mmdebstrap: ${baseSeconds.toFixed(1)} s`);

        await customizeRootfs(root, extrasDir, sources);

        const du = await run("du", ["-sx", "--block-size=1", root], { timeoutMs: 120_000 });
        const sizeBytes = Number(du.stdout.split(/\s+/)[0]);
        const buildSeconds = Math.round((Date.now() - started) / 100) / 10;
        const manifest: Manifest = { version, mirror: sources.mirror, buildSeconds, sizeBytes, builtAt: new Date().toISOString() };
        fs.writeFileSync(path.join(tmp, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
        fs.renameSync(tmp, path.join(cacheDir, version));
        log(`  rootfs built in ${buildSeconds.toFixed(1)} s (mmdebstrap ${baseSeconds.toFixed(1)} s), ${(sizeBytes / 1e6).toFixed(0)} MB`);
        return manifest;
    } catch (e) {
        await unmountUnder(tmp);
        fs.rmSync(tmp, { recursive: true, force: true });
        throw e;
    }
}

/**
 * Unmount whatever an interrupted mmdebstrap left mounted in the build (its /proc, /sys), deepest
 * first, so removing the build never descends into this machine's /proc.
 */
async function unmountUnder(dir: string): Promise<void> {
    const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4])
        .filter((m): m is string => m !== undefined && m.startsWith(dir + "/")).sort((a, b) => b.length - a.length);
    for (const m of mounts) {
        const r = await run("umount", [m], { timeoutMs: 30_000, allowFail: true });
        if (r.code !== 0) await run("umount", ["-l", m], { timeoutMs: 30_000, allowFail: true });
    }
}

/**
 * Remove the rootfs of earlier recipes, except one still in use as an overlay's lower layer
 * (a rehearsal running from another checkout).
 */
function pruneOldVersions(cacheDir: string, keep: string, log: (line: string) => void): void {
    const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8");
    for (const name of fs.readdirSync(cacheDir)) {
        // A .build-* directory other than a finished rename is a build that was interrupted
        // (the caller holds the build lock, so no build is running).
        if (name === keep || name === ".build.lock") continue;
        const dir = path.join(cacheDir, name);
        if (mounts.includes(dir)) continue;
        fs.rmSync(dir, { recursive: true, force: true });
        log(`  removed ${name.startsWith(".build-") ? "an interrupted build" : "the rootfs of an earlier recipe"}: ${name}`);
    }
}
