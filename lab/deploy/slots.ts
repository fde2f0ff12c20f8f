/**
 * The rehearsal's slots: each run of `anycast lab --deploy` owns one numbered slot, and
 * everything it makes on this machine carries the slot in its name (namespaces `acd<n>-*`,
 * cgroups, the uplink, the nft table, the directory `slot-<n>` under DEPLOY_ROOT). So a crashed
 * run is found by name and removed by the next one (teardownStaleSlots), a test can check that
 * nothing is left (slotLeftovers), and a kept slot (`--keep`) is left alone until
 * `anycast lab --down` (teardownKeptSlots).
 *
 * Ownership is a file in the slot directory: `owner` holds the pid of the process that uses the
 * slot; `kept.json` marks a slot kept after its process ended (hosts.ts DeployCloud.keep), with
 * what a later run needs to re-attach to it (DeployCloud.attach).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CmdResult, poll, rethrow, runUntracked } from "../exec";
import { acquireLock, pidAlive } from "./lock";

/** Per-run state (overlays, keys, console logs); one `slot-<n>` directory per running rehearsal. */
export const DEPLOY_ROOT = "/var/tmp/pulumi-anycast-deploy";

/** Namespaces, cgroups, links and the nft table of slot n are named `acd<n>...`. */
export const DEPLOY_PREFIX = "acd";
export const MAX_SLOTS = 64;

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

export function sh(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; allowFail?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<CmdResult> {
    return runUntracked(cmd, args, { timeoutMs: 60_000, ...opts });
}

export async function ipBatch(commands: string[], netns?: string): Promise<void> {
    if (commands.length === 0) return;
    await sh("ip", [...(netns ? ["-n", netns] : []), "-batch", "-"], { input: commands.join("\n") + "\n" });
}

/** PIDs in a cgroup directory and every cgroup below it. */
export function cgroupPids(dir: string): number[] {
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
export async function destroyCgroups(dirs: string[], timeoutMs = 10_000): Promise<number> {
    let killed = 0;
    let pids: number[] = [];
    const emptied = await poll(() => {
        pids = [...new Set(dirs.flatMap(cgroupPids))];
        for (const pid of pids) {
            try {
                process.kill(pid, "SIGKILL");
                killed += 1;
            } catch {
                // gone
            }
        }
        return pids.length === 0 && dirs.every(removeCgroupTree);
    }, timeoutMs, 100, rethrow);
    if (!emptied) throw new Error(`could not empty cgroups ${dirs.join(", ")}: ${pids.join(" ") || "rmdir failed"}`);
    return killed;
}

/** Proportional set size (shared pages split among their users) of processes, in bytes. */
export function pssBytes(pids: number[]): number {
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

export interface SlotNames {
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
export const NET_LOCK = path.join(DEPLOY_ROOT, ".net.lock");

export function readOwner(dir: string): number | undefined {
    try {
        const pid = Number(fs.readFileSync(path.join(dir, "owner"), "utf8").trim());
        return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
        return undefined;
    }
}

export function slotDirs(): number[] {
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
export async function destroySlot(s: SlotNames): Promise<void> {
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

/** This machine forwards the hosts' IPv4 to the mirror; its original setting comes back with the last slot (caller holds NET_LOCK). */
export async function enableForwarding(): Promise<void> {
    const forward = (await sh("sysctl", ["-n", "net.ipv4.ip_forward"])).stdout.trim();
    if (forward !== "1") {
        if (!fs.existsSync(IP_FORWARD_SAVED)) fs.writeFileSync(IP_FORWARD_SAVED, forward);
        await sh("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
    }
}

/** Restore the machine's IPv4 forwarding once no slot needs it any more (caller holds NET_LOCK). */
export async function restoreForwardingIfLast(): Promise<void> {
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

export async function teardownStaleLocked(log: (line: string) => void): Promise<number[]> {
    const removed: number[] = [];
    for (const slot of slotDirs()) {
        const s = slotNames(slot);
        // A kept slot outlives its process on purpose: only `anycast lab --down` removes it.
        if (isKeptSlot(slot)) continue;
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

/** Remove the slot's client namespaces (a kept slot's, left by a run that was stopped before it kept the slot again). */
export async function removeClientNamespaces(s: SlotNames): Promise<void> {
    for (const ns of (await netnsList()).filter((n) => n.startsWith(s.clientPrefix))) await sh("ip", ["netns", "del", ns], { allowFail: true });
}

/** A kept slot's record (DeployCloud.keep writes it; DeployCloud.attach reads it). */
export function keptRecordFile(slot: number): string {
    return path.join(slotNames(slot).dir, "kept.json");
}

export function isKeptSlot(slot: number): boolean {
    return fs.existsSync(keptRecordFile(slot));
}

/** The kept slots, lowest first. */
export function keptSlots(): number[] {
    return slotDirs().filter(isKeptSlot).sort((a, b) => a - b);
}

/**
 * Remove every kept slot (`anycast lab --down`), hosts and all. A slot a live process is
 * re-attached to (a redeploy running) is refused, naming that process: removing its hosts
 * under it would fail it halfway.
 */
export async function teardownKeptSlots(log: (line: string) => void = () => undefined): Promise<number[]> {
    const release = await acquireLock(NET_LOCK, "the deploy network lock", 60_000, log);
    try {
        const removed: number[] = [];
        for (const slot of keptSlots()) {
            const s = slotNames(slot);
            const owner = readOwner(s.dir);
            if (owner !== undefined && owner !== process.pid && pidAlive(owner)) {
                throw new Error(`the kept rehearsal in slot ${slot} is in use by process ${owner} (a deploy onto it is running): let it finish, or stop it first`);
            }
            await destroySlot(s);
            removed.push(slot);
            log(`  removed the kept rehearsal in slot ${slot} (${s.dir})`);
        }
        await restoreForwardingIfLast();
        return removed;
    } finally {
        release();
    }
}
