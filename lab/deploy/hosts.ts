/**
 * Fresh Debian 12 hosts on this machine for the deploy rehearsal: each one boots the cached
 * rootfs (rootfs.ts) with systemd-nspawn, systemd as PID 1, in a network namespace of its own,
 * from an overlay of its own (its own /etc, /run, /var and everything apt installs), and gets its
 * user data through cloud-init's NoCloud datasource exactly as a Vultr instance gets its userData.
 *
 * Only these conditions boot Debian 12's systemd under nspawn here (measured):
 * - `--register=no --keep-unit`, with the launcher first moved into a cgroup of its own in every
 *   hierarchy systemd uses (`/sys/fs/cgroup/{systemd,unified}/<name>` on a hybrid layout,
 *   `/sys/fs/cgroup/<name>` on a unified one): there is no systemd/machined on the machine to
 *   create a scope for it;
 * - `--network-namespace-path=` with `--capability=CAP_NET_ADMIN` and
 *   `SYSTEMD_NSPAWN_API_VFS_WRITABLE=network` (the host configures its own firewall and routes).
 * machinectl cannot see such machines (not registered), so stopping one means signalling
 * nspawn and then killing whatever is left in its cgroup.
 *
 * The network ("the cloud"): per run a namespace `acd<slot>-cloud` routes between the hosts —
 * each host is a veth `enp1s0` (the interface name of a Vultr instance) whose other end, in the
 * cloud namespace, holds the host's gateway addresses — and this machine, over an uplink veth.
 * IPv4 from the hosts leaves through this machine with nft masquerade (apt reaches the Debian
 * mirror that way); this machine reaches every host on IPv4 and IPv6 (the deployer's SSH).
 * Everything a run creates carries the slot in its name, so a crashed run is found and removed
 * by the next one (teardownStaleSlots) and a test can check that nothing is left (slotLeftovers).
 */
import { ChildProcess, spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as YAML from "yaml";
import { contains, familyOf, formatCidr, nthAddress, parseCidr } from "../../components/core/addressing";
import { CmdResult, hasCommand, runUntracked } from "../exec";
import { acquireLock, pidAlive } from "./lock";
import { KeyFiles, SshConnection, sshRun, SshResult } from "./remote";
import { EXISTING_HOST_PACKAGES, Rootfs, ROOTFS_TOOLS } from "./rootfs";

/** Per-run state (overlays, keys, console logs); one `slot-<n>` directory per running rehearsal. */
export const DEPLOY_ROOT = "/var/tmp/pulumi-anycast-deploy";
/**
 * Whether `promise` settles within `ms`. The timer is cleared either way: a pending one would keep
 * the process alive for the rest of `ms` (a test file waited out a 300 s reboot limit this way).
 */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
    try {
        return await Promise.race([promise.then(() => true), timeout]);
    } finally {
        clearTimeout(timer);
    }
}

/** Namespaces, cgroups, links and the nft table of slot n are named `acd<n>...`. */
export const DEPLOY_PREFIX = "acd";
const MAX_SLOTS = 64;
/** The interface a host sees, named as on a Vultr instance. */
export const HOST_INTERFACE = "enp1s0";

export interface HostAddressing {
    /** `address/length` for the host, or false for none; default one from the slot's block. */
    ipv4?: string | false;
    ipv6?: string | false;
    /** The host's gateway (held by the cloud namespace); default the first other address of the subnet. */
    gateway4?: string;
    gateway6?: string;
}

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

export interface HostSpec {
    /** The machine and host name: lower case letters, digits and dashes. */
    name: string;
    /** "new": a fresh instance running its user data; "existing": a server with a life before us. */
    kind: "new" | "existing";
    /** A new instance's cloud-init user data (Vultr's userData); absent means none. */
    userData?: string;
    /** A new instance's SSH keys (Vultr's sshKeyIds, NoCloud meta-data public-keys); default the run's deploy key. */
    sshKeys?: string[];
    existing?: ExistingHostState;
    addresses?: HostAddressing;
}

export interface BootRecord {
    /** Epoch ms when nspawn was started. */
    startedAt: number;
    /** Milliseconds from start until SSH accepted the deploy key (undefined until then). */
    sshReadyMs?: number;
}

export interface DeployHost {
    name: string;
    kind: "new" | "existing";
    /** The host's network namespace (add links to it to wire the host into a lab). */
    netns: string;
    /** The veth end in the cloud namespace that faces this host. */
    cloudInterface: string;
    ipv4?: string;
    ipv6?: string;
    prefix4?: string;
    prefix6?: string;
    gateway4?: string;
    gateway6?: string;
    /** The SSH login user (root on new instances). */
    user: string;
    /** The overlay's mount point: the host's root filesystem as seen from this machine. */
    rootDir: string;
    /** Every boot so far, the current one last. */
    boots: BootRecord[];
}

/** A client namespace of the slot (addClient). */
export interface DeployClient {
    name: string;
    netns: string;
    address: string;
    /** The veth end in the cloud namespace that faces this client. */
    cloudInterface: string;
}

export interface DeployKey {
    privateKey: string;
    /** The authorized_keys line. */
    publicKey: string;
    privateKeyFile: string;
}

/** Why deploy hosts cannot run on this machine, or undefined when they can. */
export function deployPreconditionProblem(): string | undefined {
    if (typeof process.getuid !== "function" || process.getuid() !== 0) return "needs root (network namespaces, overlay mounts, systemd-nspawn)";
    const tools = ["systemd-nspawn", ...ROOTFS_TOOLS, "ssh", "ssh-keygen", "nft", "ip", "nsenter", "mount", "umount", "sysctl"];
    const missing = tools.filter((t) => !hasCommand(t));
    if (missing.length > 0) return `needs ${missing.join(", ")} (bash scripts/setup.sh installs them)`;
    if (!fs.readFileSync("/proc/filesystems", "utf8").includes("\toverlay")) return "needs overlayfs in the kernel";
    if (cgroupRoots().length === 0) return "needs a cgroup hierarchy systemd-nspawn can use (/sys/fs/cgroup unified, or hybrid with systemd)";
    return undefined;
}

const CGROUP2_MAGIC = 0x63677270;

/** The hierarchies a launcher must be moved into: unified, or (hybrid/legacy) name=systemd plus unified if mounted. */
export function cgroupRoots(): string[] {
    try {
        if (fs.statfsSync("/sys/fs/cgroup").type === CGROUP2_MAGIC) return ["/sys/fs/cgroup"];
    } catch {
        return [];
    }
    const roots: string[] = [];
    if (fs.existsSync("/sys/fs/cgroup/systemd/cgroup.procs")) roots.push("/sys/fs/cgroup/systemd");
    try {
        if (fs.statfsSync("/sys/fs/cgroup/unified").type === CGROUP2_MAGIC) roots.push("/sys/fs/cgroup/unified");
    } catch {
        // no unified hierarchy (legacy layout)
    }
    return roots.length > 0 && roots[0].endsWith("systemd") ? roots : [];
}

function sh(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; allowFail?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<CmdResult> {
    return runUntracked(cmd, args, { timeoutMs: 60_000, ...opts });
}

async function ipBatch(commands: string[], netns?: string): Promise<void> {
    if (commands.length === 0) return;
    await sh("ip", [...(netns ? ["-n", netns] : []), "-batch", "-"], { input: commands.join("\n") + "\n" });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** PIDs in a cgroup directory and every cgroup below it. */
function cgroupPids(dir: string): number[] {
    const out: number[] = [];
    const walk = (d: string) => {
        try {
            for (const l of fs.readFileSync(path.join(d, "cgroup.procs"), "utf8").split("\n")) if (/^\d+$/.test(l)) out.push(Number(l));
            for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
        } catch {
            // removed meanwhile
        }
    };
    walk(dir);
    return [...new Set(out)];
}

/** Remove a cgroup tree (children first); true when it is gone. */
function removeCgroupTree(dir: string): boolean {
    if (!fs.existsSync(dir)) return true;
    try {
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
        fs.rmdirSync(dir);
        return true;
    } catch {
        return false;
    }
}

/** Kill everything in the cgroups (SIGKILL, repeated while processes appear) and remove them. */
async function destroyCgroups(dirs: string[], timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let killed = 0;
    for (;;) {
        const pids = [...new Set(dirs.flatMap(cgroupPids))];
        for (const pid of pids) {
            try {
                process.kill(pid, "SIGKILL");
                killed += 1;
            } catch {
                // gone
            }
        }
        if (pids.length === 0 && dirs.every(removeCgroupTree)) return killed;
        if (Date.now() > deadline) throw new Error(`could not empty cgroups ${dirs.join(", ")}: ${pids.join(" ") || "rmdir failed"}`);
        await sleep(100);
    }
}

/** Proportional set size (shared pages split among their users) of processes, in bytes. */
function pssBytes(pids: number[]): number {
    let total = 0;
    for (const pid of pids) {
        try {
            const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
            if (m) total += Number(m[1]) * 1024;
        } catch {
            // exited or a kernel thread
        }
    }
    return total;
}

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

interface SlotNames {
    slot: number;
    dir: string;
    cloudNs: string;
    uplink: string;
    nftTable: string;
    /** Prefix of every host namespace and cgroup of the slot. */
    hostPrefix: string;
    /** Prefix of the slot's client namespaces (addClient: Cloudflare's side, an outsider). */
    clientPrefix: string;
    block4: string;
    block6: string;
    uplink4: [string, string];
    uplink6: [string, string];
}

export function slotNames(slot: number): SlotNames {
    const p = `${DEPLOY_PREFIX}${slot}`;
    const second = 64 + slot; // 100.64.0.0/10 (shared address space): never this machine's own
    const v6 = `fdac:de:${slot.toString(16)}`;
    return {
        slot, dir: path.join(DEPLOY_ROOT, `slot-${slot}`), cloudNs: `${p}-cloud`, uplink: `${p}up`, nftTable: p,
        hostPrefix: `${p}-h-`,
        clientPrefix: `${p}-c-`,
        block4: `100.${second}.0.0/16`, block6: `${v6}::/48`,
        uplink4: [`100.${second}.255.1`, `100.${second}.255.2`],
        uplink6: [`${v6}:ffff::1`, `${v6}:ffff::2`],
    };
}

const IP_FORWARD_SAVED = path.join(DEPLOY_ROOT, "ip_forward.saved");
const NET_LOCK = path.join(DEPLOY_ROOT, ".net.lock");

function readOwner(dir: string): number | undefined {
    try {
        const pid = Number(fs.readFileSync(path.join(dir, "owner"), "utf8").trim());
        return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
        return undefined;
    }
}

function slotDirs(): number[] {
    try {
        return fs.readdirSync(DEPLOY_ROOT).map((n) => /^slot-(\d+)$/.exec(n)?.[1]).filter((s): s is string => s !== undefined).map(Number);
    } catch {
        return [];
    }
}

async function netnsList(): Promise<string[]> {
    const out = await sh("ip", ["netns", "list"], { allowFail: true });
    return out.stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) => n !== "");
}

function mountsUnder(dir: string): string[] {
    const lines = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n");
    // mountinfo field 5 is the mount point (octal-escaped spaces are not in our paths).
    return lines.map((l) => l.split(" ")[4]).filter((m): m is string => m !== undefined && (m === dir || m.startsWith(dir + "/")));
}

function slotCgroups(s: SlotNames): string[] {
    const out: string[] = [];
    for (const root of cgroupRoots()) {
        try {
            for (const n of fs.readdirSync(root)) if (n.startsWith(s.hostPrefix)) out.push(path.join(root, n));
        } catch {
            // no such hierarchy
        }
    }
    return out;
}

async function slotNftTables(s: SlotNames): Promise<string[]> {
    const out = await sh("nft", ["list", "tables"], { allowFail: true });
    return out.stdout.split("\n").map((l) => l.trim()).filter((l) => l === `table ip ${s.nftTable}`);
}

/** The slot's namespaces: the cloud, its hosts and its clients. */
function isSlotNamespace(s: SlotNames, n: string): boolean {
    return n === s.cloudNs || n.startsWith(s.hostPrefix) || n.startsWith(s.clientPrefix);
}

/**
 * What is left of a slot on this machine: namespaces, mounts, processes (in its cgroups or
 * namespaces), cgroups, the nft table, the uplink and the state directory. Empty after teardown.
 */
export async function slotLeftovers(slot: number): Promise<string[]> {
    const s = slotNames(slot);
    const left: string[] = [];
    const nss = (await netnsList()).filter((n) => isSlotNamespace(s, n));
    left.push(...nss.map((n) => `namespace ${n}`));
    for (const ns of nss) {
        const pids = await sh("ip", ["netns", "pids", ns], { allowFail: true });
        left.push(...pids.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p)).map((p) => `process ${p} in ${ns}`));
    }
    left.push(...mountsUnder(s.dir).map((m) => `mount ${m}`));
    for (const cg of slotCgroups(s)) {
        left.push(`cgroup ${cg}`);
        left.push(...cgroupPids(cg).map((p) => `process ${p} in ${cg}`));
    }
    left.push(...(await slotNftTables(s)).map((t) => `nft ${t}`));
    const link = await sh("ip", ["link", "show", s.uplink], { allowFail: true });
    if (link.code === 0) left.push(`link ${s.uplink}`);
    if (fs.existsSync(s.dir)) left.push(`directory ${s.dir}`);
    return left;
}

/**
 * Remove everything of a slot by name (whoever made it, whatever state it is in): processes,
 * cgroups, mounts, namespaces, the nft table, the state directory. Safe to repeat.
 */
async function destroySlot(s: SlotNames): Promise<void> {
    await destroyCgroups(slotCgroups(s));
    for (const m of mountsUnder(s.dir).sort((a, b) => b.length - a.length)) {
        const r = await sh("umount", [m], { allowFail: true });
        if (r.code !== 0) await sh("umount", ["-l", m], { allowFail: true });
    }
    for (const ns of (await netnsList()).filter((n) => isSlotNamespace(s, n))) {
        const pids = await sh("ip", ["netns", "pids", ns], { allowFail: true });
        for (const p of pids.stdout.split(/\s+/).filter((x) => /^\d+$/.test(x))) {
            try {
                process.kill(Number(p), "SIGKILL");
            } catch {
                // gone
            }
        }
        await sh("ip", ["netns", "del", ns], { allowFail: true });
    }
    // The uplink goes with the cloud namespace (a veth pair dies with either end); this is for a half-made slot.
    await sh("ip", ["link", "del", s.uplink], { allowFail: true });
    for (const t of await slotNftTables(s)) await sh("nft", ["delete", ...t.split(" ")], { allowFail: true });
    fs.rmSync(s.dir, { recursive: true, force: true });
}

/** Restore the machine's IPv4 forwarding once no slot needs it any more (caller holds NET_LOCK). */
async function restoreForwardingIfLast(): Promise<void> {
    if (slotDirs().length > 0 || !fs.existsSync(IP_FORWARD_SAVED)) return;
    const saved = fs.readFileSync(IP_FORWARD_SAVED, "utf8").trim();
    if (/^[01]$/.test(saved)) await sh("sysctl", ["-q", "-w", `net.ipv4.ip_forward=${saved}`], { allowFail: true });
    fs.rmSync(IP_FORWARD_SAVED, { force: true });
}

/** Tear down every slot whose owning process is gone (a crash, a kill -9). Returns the slots removed. */
export async function teardownStaleSlots(log: (line: string) => void = () => undefined): Promise<number[]> {
    const release = await acquireLock(NET_LOCK, "the deploy network lock", 60_000, log);
    try {
        return await teardownStaleLocked(log);
    } finally {
        release();
    }
}

async function teardownStaleLocked(log: (line: string) => void): Promise<number[]> {
    const removed: number[] = [];
    for (const slot of slotDirs()) {
        const s = slotNames(slot);
        const owner = readOwner(s.dir);
        if (owner !== undefined && owner !== process.pid && pidAlive(owner)) continue;
        if (owner === process.pid) continue;
        // A slot directory without an owner file older than a minute is a creation that died.
        if (owner === undefined && Date.now() - fs.statSync(s.dir).mtimeMs < 60_000) continue;
        await destroySlot(s);
        removed.push(slot);
        log(`  removed the leftovers of an earlier rehearsal (slot ${slot}, owner ${owner ?? "unknown"} gone)`);
    }
    await restoreForwardingIfLast();
    return removed;
}

interface HostState {
    spec: HostSpec;
    host: DeployHost;
    index: number;
    dir: string;
    cgroups: string[];
    child?: ChildProcess;
    /** What we want: a running host restarts after a reboot; a stopped one stays down. */
    wanted: "running" | "stopped";
    exited?: { code: number | null; signal: NodeJS.Signals | null };
    /** Resolved at each exit of nspawn (the current boot's end). */
    exitWaiters: (() => void)[];
}

export interface DeployCloudOptions {
    rootfs: Rootfs;
    log?: (line: string) => void;
}

const live = new Set<DeployCloud>();

/** Tear down every cloud of this process (signal handlers, test `after` hooks). */
export async function teardownAllClouds(): Promise<void> {
    await Promise.allSettled([...live].map((c) => c.teardown()));
}

let signalsInstalled = false;

/**
 * On Ctrl-C (SIGINT) or SIGTERM: tear every cloud of this process down, then exit with the
 * signal's status. Installed once; the caller's own cleanup should not race it.
 */
export function teardownOnSignals(): void {
    if (signalsInstalled) return;
    signalsInstalled = true;
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
        process.once(sig, () => {
            void teardownAllClouds().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
        });
    }
}

/** A set of rehearsal hosts and their network; `DeployCloud.create`, then `addHosts`, finally `teardown`. */
export class DeployCloud {
    readonly names: SlotNames;
    readonly deployKey: DeployKey;
    private readonly hosts = new Map<string, HostState>();
    private readonly nameservers: string[];
    private readonly keys = new KeyFiles();
    private tornDown = false;
    private nextIndex = 1;
    private readonly clients = new Map<string, DeployClient>();
    private watchdog?: NodeJS.Timeout;
    private resumedNoted = false;

    private constructor(readonly rootfs: Rootfs, readonly slot: number, deployKey: DeployKey,
        private readonly log: (line: string) => void, nameservers: string[]) {
        this.names = slotNames(slot);
        this.deployKey = deployKey;
        this.nameservers = nameservers;
    }

    get slotDir(): string {
        return this.names.dir;
    }

    /** The namespace that routes between the hosts and to this machine. */
    get cloudNs(): string {
        return this.names.cloudNs;
    }

    static async create(options: DeployCloudOptions): Promise<DeployCloud> {
        const problem = deployPreconditionProblem();
        if (problem) throw new Error(`deploy hosts: ${problem}`);
        const log = options.log ?? (() => undefined);
        const nameservers = upstreamNameservers();
        fs.mkdirSync(DEPLOY_ROOT, { recursive: true, mode: 0o700 });
        const release = await acquireLock(NET_LOCK, "the deploy network lock", 60_000, log);
        let slot = -1;
        try {
            // A killed run's last commands (an `ip` it had started) may still land on its slot's
            // names after the slot was removed: take another number while one is free.
            const removed = await teardownStaleLocked(log);
            const order = [...Array(MAX_SLOTS).keys()].sort((a, b) => Number(removed.includes(a)) - Number(removed.includes(b)));
            for (const n of order) {
                if (slot >= 0) break;
                try {
                    fs.mkdirSync(slotNames(n).dir, { mode: 0o700 });
                    slot = n;
                } catch (e) {
                    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
                }
            }
            if (slot < 0) throw new Error(`all ${MAX_SLOTS} rehearsal slots under ${DEPLOY_ROOT} are in use`);
            const s = slotNames(slot);
            fs.writeFileSync(path.join(s.dir, "owner"), String(process.pid));
            try {
                await DeployCloud.buildNetwork(s);
            } catch (e) {
                await destroySlot(s);
                await restoreForwardingIfLast();
                throw e;
            }
        } finally {
            release();
        }
        const s = slotNames(slot);
        const keyFile = path.join(s.dir, "deploy_key");
        await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `pulumi-anycast-rehearsal-${slot}`, "-f", keyFile]);
        const cloud = new DeployCloud(options.rootfs, slot, {
            privateKey: fs.readFileSync(keyFile, "utf8"),
            publicKey: fs.readFileSync(`${keyFile}.pub`, "utf8").trim(),
            privateKeyFile: keyFile,
        }, log, nameservers);
        live.add(cloud);
        return cloud;
    }

    /** The cloud namespace, its uplink to this machine, routes, and NAT for the hosts' IPv4. */
    private static async buildNetwork(s: SlotNames): Promise<void> {
        // This machine forwards the hosts' IPv4 to the mirror; its original setting comes back with the last slot.
        const forward = (await sh("sysctl", ["-n", "net.ipv4.ip_forward"])).stdout.trim();
        if (forward !== "1") {
            if (!fs.existsSync(IP_FORWARD_SAVED)) fs.writeFileSync(IP_FORWARD_SAVED, forward);
            await sh("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
        }
        await sh("ip", ["netns", "add", s.cloudNs]);
        await sh("ip", ["netns", "exec", s.cloudNs, "sysctl", "-q", "-w",
            "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]);
        await ipBatch([
            `link add ${s.uplink} type veth peer name uplink netns ${s.cloudNs}`,
            `addr add ${s.uplink4[0]}/30 dev ${s.uplink}`,
            `addr add ${s.uplink6[0]}/64 dev ${s.uplink} nodad`,
            `link set ${s.uplink} up`,
            `route add ${s.block4} via ${s.uplink4[1]}`,
            `route add ${s.block6} via ${s.uplink6[1]}`,
        ]);
        await ipBatch([
            "link set lo up",
            `addr add ${s.uplink4[1]}/30 dev uplink`,
            `addr add ${s.uplink6[1]}/64 dev uplink nodad`,
            "link set uplink up",
            `route add default via ${s.uplink4[0]}`,
        ], s.cloudNs);
        // No IPv6 default route in the cloud: hosts' IPv6 to the outside fails at once, so apt
        // falls back to IPv4 (through NAT) without waiting for a timeout.
        await sh("nft", ["-f", "-"], {
            input: [
                `table ip ${s.nftTable} {`,
                "  chain postrouting {",
                "    type nat hook postrouting priority srcnat; policy accept;",
                `    ip saddr ${s.block4} oifname != "${s.uplink}" masquerade`,
                "  }",
                "}",
                "",
            ].join("\n"),
        });
    }

    /**
     * A client namespace behind the cloud (IPv6 only, like the service): `address` on its eth0,
     * its default route into the cloud namespace, which routes `address` back to it. The cloud
     * forwards its packets like any other, so what reaches a host from it is judged by the
     * host's firewall on `address` alone. Removed with the slot.
     */
    async addClient(name: string, address: string): Promise<DeployClient> {
        if (this.tornDown) throw new Error("this rehearsal cloud was torn down");
        if (!/^[a-z][a-z0-9-]{0,20}$/.test(name)) throw new Error(`client name ${JSON.stringify(name)}: use lower-case letters, digits and dashes`);
        if (this.clients.has(name)) throw new Error(`a client named ${name} exists already`);
        if (familyOf(address) !== 6) throw new Error(`client ${name}: ${address} is not an IPv6 address`);
        const s = this.names;
        const client: DeployClient = { name, netns: `${s.clientPrefix}${name}`, address, cloudInterface: `c${this.clients.size + 1}` };
        this.clients.set(name, client);
        await sh("ip", ["netns", "add", client.netns]);
        await ipBatch([`link add ${client.cloudInterface} type veth peer name eth0 netns ${client.netns}`,
            `link set ${client.cloudInterface} up`, `addr add fe80::1/64 dev ${client.cloudInterface} nodad`,
            `route add ${address}/128 dev ${client.cloudInterface}`], s.cloudNs);
        await ipBatch(["link set lo up", "link set eth0 up", `addr add ${address}/128 dev eth0 nodad`,
            "addr add fe80::2/64 dev eth0 nodad", "route add default via fe80::1 dev eth0"], client.netns);
        return client;
    }

    host(name: string): DeployHost {
        const h = this.hosts.get(name);
        if (!h) throw new Error(`no rehearsal host named ${name}`);
        return h.host;
    }

    allHosts(): DeployHost[] {
        return [...this.hosts.values()].map((h) => h.host);
    }

    /** The SSH connection a Pulumi program would use for this host (IPv6 unless asked for IPv4 or it has none). */
    connection(name: string, family?: 4 | 6): SshConnection {
        const h = this.host(name);
        const want = family ?? (h.ipv6 ? 6 : 4);
        const address = want === 6 ? h.ipv6 : h.ipv4;
        if (!address) throw new Error(`${name} has no IPv${want} address`);
        return { host: address, port: 22, user: h.user, privateKey: this.deployKey.privateKey };
    }

    /** Run a command on a host over SSH as its login user, with the deploy key. */
    ssh(name: string, command: string, options: { stdin?: string; timeoutMs?: number; family?: 4 | 6 } = {}): Promise<SshResult> {
        const conn = this.connection(name, options.family);
        return sshRun({ ...conn, dialErrorLimit: 0 }, this.keys.file(conn.privateKey), command, { stdin: options.stdin, timeoutMs: options.timeoutMs ?? 60_000 });
    }

    /**
     * Prepare and boot hosts (in parallel), resolving when every one accepts SSH. Hosts are
     * prepared one after another (quick file and network work) and boot together.
     */
    async addHosts(specs: HostSpec[], options: { sshTimeoutMs?: number } = {}): Promise<DeployHost[]> {
        if (this.tornDown) throw new Error("this rehearsal cloud was torn down");
        for (const spec of specs) this.checkSpec(spec);
        const states: HostState[] = [];
        for (const spec of specs) states.push(await this.prepare(spec));
        for (const st of states) this.launch(st);
        this.startWatchdog();
        // A limit, not a measure: a new instance's sshd waits for cloud-init's first stages, which
        // took over 90 s on a loaded 2-core machine (the boot-to-SSH time is recorded and printed).
        await Promise.all(states.map((st) => this.waitForSsh(st, options.sshTimeoutMs ?? 300_000)));
        return states.map((st) => st.host);
    }

    private checkSpec(spec: HostSpec): void {
        if (!/^[a-z][a-z0-9-]{0,30}$/.test(spec.name)) throw new Error(`host name ${JSON.stringify(spec.name)}: use 1-31 lower-case letters, digits and dashes, starting with a letter`);
        if (this.hosts.has(spec.name)) throw new Error(`a host named ${spec.name} exists already`);
        if (spec.kind === "existing" && spec.userData !== undefined) throw new Error(`${spec.name}: an existing host has no user data (cloud-init does not run on it)`);
        if (spec.kind === "new" && spec.existing !== undefined) throw new Error(`${spec.name}: a new instance has no existing state`);
        const user = spec.existing?.user;
        if (user !== undefined && !/^[a-z_][a-z0-9_-]{0,30}$/.test(user)) throw new Error(`${spec.name}: user ${JSON.stringify(user)} is not a valid user name`);
        for (const p of spec.existing?.packages ?? []) {
            if (!EXISTING_HOST_PACKAGES.includes(p)) throw new Error(`${spec.name}: package ${p} is not one of the existing-host packages (${EXISTING_HOST_PACKAGES.join(", ")})`);
        }
        if (user !== undefined && user !== "root" && !(spec.existing?.packages ?? EXISTING_HOST_PACKAGES).includes("sudo")) {
            throw new Error(`${spec.name}: the non-root user ${user} needs the sudo package`);
        }
    }

    private address(index: number, spec: HostAddressing | undefined, family: 4 | 6): { address: string; prefix: string; gateway: string; length: number } | undefined {
        const given = family === 4 ? spec?.ipv4 : spec?.ipv6;
        if (given === false) return undefined;
        let text = given;
        if (text === undefined) {
            text = family === 4 ? `100.${64 + this.slot}.${index}.2/24` : `fdac:de:${this.slot.toString(16)}:${index.toString(16)}::2/64`;
        }
        const [address, len] = text.split("/");
        if (!address || !len || familyOf(address) !== family) throw new Error(`host address ${text}: expected an IPv${family} address/length`);
        const prefix = parseCidr(text, false);
        let gateway = family === 4 ? spec?.gateway4 : spec?.gateway6;
        if (!gateway) {
            gateway = nthAddress(prefix, 1);
            if (gateway === address) gateway = nthAddress(prefix, 2);
        }
        return { address, prefix: formatCidr(prefix), gateway, length: prefix.length };
    }

    /** Overlay, host files, network namespace and cgroups: everything but the boot. */
    private async prepare(spec: HostSpec): Promise<HostState> {
        const index = this.nextIndex++;
        const s = this.names;
        const dir = path.join(s.dir, "hosts", spec.name);
        const rootDir = path.join(dir, "root");
        for (const d of ["upper", "work", "root"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
        const v4 = this.address(index, spec.addresses, 4);
        const v6 = this.address(index, spec.addresses, 6);
        const user = spec.kind === "existing" ? (spec.existing?.user ?? "root") : "root";
        const host: DeployHost = {
            name: spec.name, kind: spec.kind, netns: `${s.hostPrefix}${spec.name}`, cloudInterface: `h${index}`,
            ipv4: v4?.address, ipv6: v6?.address, prefix4: v4?.prefix, prefix6: v6?.prefix, gateway4: v4?.gateway, gateway6: v6?.gateway,
            user, rootDir, boots: [],
        };
        const st: HostState = {
            spec, host, index, dir, cgroups: cgroupRoots().map((r) => path.join(r, host.netns)), wanted: "running", exitWaiters: [],
        };
        // Registered before anything is made, so teardown finds whatever part exists.
        this.hosts.set(spec.name, st);

        await sh("mount", ["-t", "overlay", "overlay", "-o",
            `lowerdir=${this.rootfs.dir},upperdir=${path.join(dir, "upper")},workdir=${path.join(dir, "work")}`, rootDir]);
        this.writeHostIdentity(st);
        if (spec.kind === "new") this.writeNoCloudSeed(st);
        else await this.seedExistingHost(st);
        await this.buildHostNetwork(st, v4, v6);
        for (const cg of st.cgroups) fs.mkdirSync(cg, { recursive: true });
        return st;
    }

    private writeHostIdentity(st: HostState): void {
        const root = st.host.rootDir;
        const name = st.spec.name;
        fs.writeFileSync(path.join(root, "etc", "hostname"), `${name}\n`);
        fs.appendFileSync(path.join(root, "etc", "hosts"), `127.0.1.1\t${name}\n`);
        fs.rmSync(path.join(root, "etc", "resolv.conf"), { force: true });
        fs.writeFileSync(path.join(root, "etc", "resolv.conf"), this.nameservers.map((n) => `nameserver ${n}\n`).join(""));
    }

    /** The NoCloud seed: user data as given, meta-data with an instance id and the instance's SSH keys. */
    private writeNoCloudSeed(st: HostState): void {
        const seed = path.join(st.host.rootDir, "var", "lib", "cloud", "seed", "nocloud");
        fs.mkdirSync(seed, { recursive: true });
        fs.writeFileSync(path.join(seed, "user-data"), st.spec.userData ?? "");
        const meta = {
            "instance-id": `${st.spec.name}-${crypto.randomBytes(6).toString("hex")}`,
            "local-hostname": st.spec.name,
            "public-keys": st.spec.sshKeys ?? [this.deployKey.publicKey],
        };
        fs.writeFileSync(path.join(seed, "meta-data"), YAML.stringify(meta));
    }

    /**
     * An existing server: SSH host keys of its own, its packages, its login user with sudo and
     * the deploy key, its own files and services; cloud-init does not run on it.
     */
    private async seedExistingHost(st: HostState): Promise<void> {
        const root = st.host.rootDir;
        const ex = st.spec.existing ?? {};
        fs.writeFileSync(path.join(root, "etc", "cloud", "cloud-init.disabled"), "");
        // Every key type, as a Debian server has: the RSA key takes seconds of CPU, and over a
        // minute on a loaded 2-core machine (the 60 s default killed it once).
        await sh("ssh-keygen", ["-A", "-f", root], { timeoutMs: 300_000 });
        const packages = ex.packages ?? EXISTING_HOST_PACKAGES;
        const script: string[] = [];
        if (packages.length > 0) {
            const debs = fs.readdirSync(this.rootfs.extrasDir).filter((f) => f.endsWith(".deb"));
            const wanted = await this.debsFor(packages, debs);
            const tmp = path.join(root, "tmp", "anycast-extras");
            fs.mkdirSync(tmp, { recursive: true });
            for (const f of wanted) fs.copyFileSync(path.join(this.rootfs.extrasDir, f), path.join(tmp, f));
            // No service may start in a chroot; policy-rc.d says so to the maintainer scripts.
            script.push("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d", "chmod +x /usr/sbin/policy-rc.d",
                "dpkg -i /tmp/anycast-extras/*.deb >/dev/null", "rm -rf /tmp/anycast-extras /usr/sbin/policy-rc.d");
        }
        const user = st.host.user;
        const home = user === "root" ? "/root" : `/home/${user}`;
        if (user !== "root") {
            script.push(`useradd --create-home --shell /bin/bash ${user}`,
                `printf '%s ALL=(ALL) NOPASSWD:ALL\\n' ${user} > /etc/sudoers.d/90-${user}`, `chmod 0440 /etc/sudoers.d/90-${user}`);
        }
        script.push(`install -d -m 0700 -o ${user} -g ${user} ${home}/.ssh`,
            `printf '%s\\n' '${this.deployKey.publicKey}' > ${home}/.ssh/authorized_keys`,
            `chown ${user}:${user} ${home}/.ssh/authorized_keys`, `chmod 0600 ${home}/.ssh/authorized_keys`);
        await sh("chroot", [root, "/bin/sh", "-ec", script.join("\n")], {
            timeoutMs: 120_000, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" },
        });
        for (const f of ex.files ?? []) {
            if (!path.isAbsolute(f.path)) throw new Error(`${st.spec.name}: file path ${f.path} is not absolute`);
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
    private async debsFor(packages: string[], debs: string[]): Promise<string[]> {
        const byName = new Map<string, string>();
        const depends = new Map<string, string[]>();
        for (const f of debs) {
            const out = await sh("dpkg-deb", ["-f", path.join(this.rootfs.extrasDir, f), "Package", "Depends", "Pre-Depends"]);
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
            if (!byName.has(p)) throw new Error(`the rootfs extras have no ${p} package (${this.rootfs.extrasDir})`);
            add(p);
        }
        return [...wanted].map((p) => byName.get(p)!);
    }

    private async buildHostNetwork(st: HostState, v4: ReturnType<DeployCloud["address"]>, v6: ReturnType<DeployCloud["address"]>): Promise<void> {
        const s = this.names;
        const ns = st.host.netns;
        const cif = st.host.cloudInterface;
        await sh("ip", ["netns", "add", ns]);
        await ipBatch([`link add ${cif} type veth peer name ${HOST_INTERFACE} netns ${ns}`], s.cloudNs);
        const inHost = ["link set lo up", `link set ${HOST_INTERFACE} up`];
        const inCloud = [`link set ${cif} up`];
        const onMachine: string[] = [];
        if (v4) {
            inHost.push(`addr add ${v4.address}/${v4.length} dev ${HOST_INTERFACE}`, `route add default via ${v4.gateway}`);
            inCloud.push(`addr add ${v4.gateway}/${v4.length} dev ${cif}`);
            if (!contains(parseCidr(s.block4), v4.address)) onMachine.push(`route add ${v4.prefix} via ${s.uplink4[1]}`);
        }
        if (v6) {
            inHost.push(`addr add ${v6.address}/${v6.length} dev ${HOST_INTERFACE} nodad`, `route add default via ${v6.gateway}`);
            inCloud.push(`addr add ${v6.gateway}/${v6.length} dev ${cif} nodad`);
            if (!contains(parseCidr(s.block6), v6.address)) onMachine.push(`route add ${v6.prefix} via ${s.uplink6[1]}`);
        }
        await ipBatch(inCloud, s.cloudNs);
        await ipBatch(inHost, ns);
        await ipBatch(onMachine);
        if (v4 && !contains(parseCidr(s.block4), v4.address)) {
            await sh("nft", ["add", "rule", "ip", s.nftTable, "postrouting", "ip", "saddr", v4.prefix, "oifname", "!=", s.uplink, "masquerade"]);
        }
    }

    /**
     * A host's processes run in sessions of their own, away from the process group of whoever
     * started the rehearsal; job control that stops and continues that process group (a
     * supervisor pausing it, Ctrl-Z in a shell) stops nspawn and the hosts too but continues only
     * the group. A stopped nspawn stalls its host entirely (systemd blocks on nspawn's notify
     * socket), so while this process runs, its hosts' stopped processes are continued.
     */
    private startWatchdog(): void {
        if (this.watchdog) return;
        this.watchdog = setInterval(() => {
            let resumed = 0;
            for (const st of this.hosts.values()) {
                for (const pid of [...new Set(st.cgroups.flatMap(cgroupPids))]) {
                    try {
                        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
                        if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "T") {
                            process.kill(pid, "SIGCONT");
                            resumed += 1;
                        }
                    } catch {
                        // exited
                    }
                }
            }
            if (resumed > 0 && !this.resumedNoted) {
                this.resumedNoted = true;
                this.log(`  host processes had been stopped from outside (job control); continued ${resumed}`);
            }
        }, 1000);
        this.watchdog.unref();
    }

    /** Start nspawn for a host (first boot, or again after a reboot). */
    private launch(st: HostState): void {
        const root = st.host.rootDir;
        const args = [
            "--quiet", "--boot", `--directory=${root}`, `--machine=${st.host.netns}`, `--hostname=${st.spec.name}`,
            "--register=no", "--keep-unit",
            `--network-namespace-path=/run/netns/${st.host.netns}`, "--capability=CAP_NET_ADMIN",
            "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only",
        ];
        // wireguard-go needs a TUN device (the hosts share a kernel without the WireGuard module).
        if (fs.existsSync("/dev/net/tun")) args.push("--bind=/dev/net/tun");
        const logFd = fs.openSync(path.join(st.dir, "console.log"), "a");
        // The launcher joins the host's cgroups, then becomes nspawn (exec keeps the pid and the cgroups).
        const launcher = `for d in ${st.cgroups.map((c) => `'${c}'`).join(" ")}; do echo $$ > "$d/cgroup.procs" || exit 97; done; exec systemd-nspawn "$@"`;
        try {
            const child = spawn("/bin/sh", ["-c", launcher, "sh", ...args], {
                detached: true, stdio: ["ignore", logFd, logFd],
                env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", SYSTEMD_NSPAWN_API_VFS_WRITABLE: "network" },
            });
            st.child = child;
            st.exited = undefined;
            st.host.boots.push({ startedAt: Date.now() });
            child.on("error", () => undefined);
            child.on("exit", (code, signal) => {
                st.exited = { code, signal };
                st.child = undefined;
                const waiters = st.exitWaiters.splice(0);
                // 133: the container asked for a reboot (as systemd-nspawn@.service restarts it).
                if (code === 133 && st.wanted === "running" && !this.tornDown) {
                    this.log(`  ${st.spec.name}: rebooting`);
                    this.launch(st);
                }
                for (const w of waiters) w();
            });
        } finally {
            fs.closeSync(logFd);
        }
    }

    private consoleTail(st: HostState, lines = 15): string {
        try {
            return fs.readFileSync(path.join(st.dir, "console.log"), "utf8").split("\n").slice(-lines).join("\n");
        } catch {
            return "(no console log)";
        }
    }

    private async waitForSsh(st: HostState, timeoutMs: number): Promise<void> {
        const boot = st.host.boots[st.host.boots.length - 1];
        const deadline = boot.startedAt + timeoutMs;
        const address = st.host.ipv6 ?? st.host.ipv4!;
        for (;;) {
            if (!st.child) {
                throw new Error(`${st.spec.name}: systemd-nspawn exited (${st.exited?.code ?? st.exited?.signal}) before SSH came up; console:\n${this.consoleTail(st)}`);
            }
            if (await tcpOpen(address, 22)) {
                const r = await this.ssh(st.spec.name, "true", { timeoutMs: 10_000 }).catch(() => undefined);
                if (r?.exitCode === 0) {
                    boot.sshReadyMs = Date.now() - boot.startedAt;
                    this.log(`  ${st.spec.name}: SSH up ${(boot.sshReadyMs / 1000).toFixed(1)} s after boot (${st.host.user}@${address})`);
                    return;
                }
            }
            if (Date.now() > deadline) {
                throw new Error(`${st.spec.name}: no SSH login within ${timeoutMs / 1000} s of boot; console:\n${this.consoleTail(st)}`);
            }
            await sleep(200);
        }
    }

    /** The PID (in this machine's namespace) of the host's systemd. */
    private pid1(st: HostState): number {
        for (const pid of [...new Set(st.cgroups.flatMap(cgroupPids))]) {
            try {
                const m = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
                const ids = m ? m[1].trim().split(/\s+/) : [];
                if (ids.length >= 2 && ids[ids.length - 1] === "1") return pid;
            } catch {
                // exited
            }
        }
        throw new Error(`${st.spec.name} is not running`);
    }

    /** Run a command inside a host (all its namespaces), as root, from this machine: for checks, not for the deploy. */
    async exec(name: string, argv: string[], options: { input?: string; timeoutMs?: number; allowFail?: boolean } = {}): Promise<CmdResult> {
        const st = this.state(name);
        return sh("nsenter", ["--target", String(this.pid1(st)), "--mount", "--uts", "--ipc", "--net", "--pid", "--", ...argv], {
            timeoutMs: options.timeoutMs ?? 60_000, allowFail: options.allowFail, input: options.input,
            env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
        });
    }

    private state(name: string): HostState {
        const st = this.hosts.get(name);
        if (!st) throw new Error(`no rehearsal host named ${name}`);
        return st;
    }

    /**
     * Wait for cloud-init to finish on a new instance (`cloud-init status --wait`, as a deploy
     * would) and report when it did, counted from the start of the host's first boot.
     */
    async waitForCloudInit(name: string, timeoutMs = 300_000): Promise<{ status: string; exitCode: number; secondsSinceBoot: number }> {
        const st = this.state(name);
        const r = await this.exec(name, ["cloud-init", "status", "--wait"], { timeoutMs, allowFail: true });
        const status = /status:\s*(\S+)/.exec(r.stdout)?.[1] ?? r.stdout.trim();
        return { status, exitCode: r.code, secondsSinceBoot: (Date.now() - st.host.boots[0].startedAt) / 1000 };
    }

    /** Memory of a host's processes (PSS, shared pages split), in bytes. */
    memoryBytes(name: string): number {
        return pssBytes([...new Set(this.state(name).cgroups.flatMap(cgroupPids))]);
    }

    /**
     * Reboot a host from inside (`systemctl reboot`): systemd shuts down, nspawn exits with the
     * reboot status and is started again on the same overlay and namespace. Resolves when SSH
     * accepts the deploy key again.
     */
    async reboot(name: string, timeoutMs = 300_000): Promise<{ downMs: number; bootToSshMs: number }> {
        const st = this.state(name);
        const boots = st.host.boots.length;
        const t0 = Date.now();
        const exited = new Promise<void>((r) => st.exitWaiters.push(r));
        await this.exec(name, ["systemctl", "reboot"], { allowFail: true });
        if (!await settlesWithin(exited, timeoutMs)) throw new Error(`${name} did not shut down within ${timeoutMs / 1000} s`);
        if (st.host.boots.length === boots) {
            throw new Error(`${name}: systemd-nspawn exited with ${st.exited?.code ?? st.exited?.signal}, not the reboot status 133; console:\n${this.consoleTail(st)}`);
        }
        const downMs = st.host.boots[st.host.boots.length - 1].startedAt - t0;
        await this.waitForSsh(st, timeoutMs);
        return { downMs, bootToSshMs: st.host.boots[st.host.boots.length - 1].sshReadyMs! };
    }

    /** Stop one host: an orderly shutdown (nspawn passes SIGTERM on as poweroff), then whatever is left is killed. */
    private async stopHost(st: HostState, graceMs: number): Promise<void> {
        st.wanted = "stopped";
        const child = st.child;
        if (child?.pid) {
            const exited = new Promise<void>((r) => st.exitWaiters.push(r));
            try {
                process.kill(child.pid, "SIGTERM");
                process.kill(child.pid, "SIGCONT"); // a stopped nspawn would not act on it
            } catch {
                // gone already
            }
            await settlesWithin(exited, graceMs);
        }
        await destroyCgroups(st.cgroups);
    }

    /** Stop every host and remove everything of this run: processes, cgroups, overlays, namespaces, NAT, files. */
    async teardown(options: { graceMs?: number } = {}): Promise<void> {
        if (this.tornDown) return;
        this.tornDown = true;
        live.delete(this);
        if (this.watchdog) clearInterval(this.watchdog);
        const t0 = Date.now();
        const errors: string[] = [];
        await Promise.all([...this.hosts.values()].map((st) => this.stopHost(st, options.graceMs ?? 5000).catch((e: Error) => { errors.push(e.message); })));
        this.keys.remove();
        const stoppedMs = Date.now() - t0;
        const release = await acquireLock(NET_LOCK, "the deploy network lock", 60_000, this.log);
        try {
            await destroySlot(this.names);
            await restoreForwardingIfLast();
        } finally {
            release();
        }
        this.log(`  teardown: hosts stopped in ${(stoppedMs / 1000).toFixed(1)} s, the rest removed in ${((Date.now() - t0 - stoppedMs) / 1000).toFixed(1)} s`);
        const left = await slotLeftovers(this.slot);
        if (left.length > 0 || errors.length > 0) throw new Error(`rehearsal teardown left: ${[...errors, ...left].join("; ")}`);
    }
}

function tcpOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
    return new Promise((resolve) => {
        const sock = net.connect({ host, port });
        const done = (ok: boolean) => {
            sock.destroy();
            resolve(ok);
        };
        sock.setTimeout(timeoutMs, () => done(false));
        sock.once("connect", () => done(true));
        sock.once("error", () => done(false));
    });
}
