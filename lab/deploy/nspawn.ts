/**
 * One rehearsal host as a systemd-nspawn machine (hosts.ts says under which conditions Debian's
 * systemd boots this way): starting nspawn in the host's cgroups and namespace, booting it again
 * when it asks for a reboot, waiting for its SSH, finding its PID 1, continuing it when job
 * control stopped it, and stopping it.
 */
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { shellQuote } from "../../components/core/shell";
import { poll, rethrow } from "../exec";
import type { DeployHost, HostBlueprint } from "./host-blueprint";
import { cgroupPids, destroyCgroups } from "./slots";

/** A booted (or booting) host as this process runs it: its blueprint, overlay, cgroups and nspawn. */
export interface HostState {
    blueprint: HostBlueprint;
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

/**
 * Whether `promise` settles within `ms`. The timer is cleared either way: a pending one would keep
 * the process alive for the rest of `ms` (a test file waited out a 300 s reboot limit this way).
 */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
    try {
        return await Promise.race([promise.then(() => true), timeout]);
    } finally {
        clearTimeout(timer);
    }
}

/**
 * Start nspawn for a host (first boot, or again after a reboot); `rebootAsked` runs when the host
 * asks for a reboot while it is wanted running (the caller boots it again, unless it is tearing down).
 */
export function launchNspawn(st: HostState, rebootAsked: () => void): void {
    const root = st.host.rootDir;
    const args = [
        "--quiet", "--boot", `--directory=${root}`, `--machine=${st.host.netns}`, `--hostname=${st.blueprint.name}`,
        "--register=no", "--keep-unit",
        `--network-namespace-path=/run/netns/${st.host.netns}`, "--capability=CAP_NET_ADMIN",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only",
    ];
    // wireguard-go needs a TUN device (the hosts share a kernel without the WireGuard module).
    if (fs.existsSync("/dev/net/tun")) args.push("--bind=/dev/net/tun");
    const logFd = fs.openSync(path.join(st.dir, "console.log"), "a");
    // The launcher joins the host's cgroups, then becomes nspawn (exec keeps the pid and the cgroups).
    const launcher = `for d in ${st.cgroups.map(shellQuote).join(" ")}; do echo $$ > "$d/cgroup.procs" || exit 97; done; exec systemd-nspawn "$@"`;
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
            if (code === 133 && st.wanted === "running") rebootAsked();
            for (const w of waiters) w();
        });
    } finally {
        fs.closeSync(logFd);
    }
}

/** The last lines of the host's console (for an error that says why it did not come up). */
export function consoleTail(st: HostState, lines = 15): string {
    try {
        return fs.readFileSync(path.join(st.dir, "console.log"), "utf8").split("\n").slice(-lines).join("\n");
    } catch {
        return "(no console log)";
    }
}

/**
 * Wait until the host accepts `login` (an SSH login with the deploy key), at most `timeoutMs` from
 * the start of its current boot; records the time in the boot.
 */
export async function waitForSsh(st: HostState, timeoutMs: number, login: () => Promise<boolean>, log: (line: string) => void): Promise<void> {
    const boot = st.host.boots[st.host.boots.length - 1];
    const deadline = boot.startedAt + timeoutMs;
    const address = st.host.ipv6 ?? st.host.ipv4!;
    const loggedIn = await poll(async () => {
        if (!st.child) {
            throw new Error(`${st.blueprint.name}: systemd-nspawn exited (${st.exited?.code ?? st.exited?.signal}) before SSH came up; console:\n${consoleTail(st)}`);
        }
        if (!await tcpOpen(address, 22)) return false;
        return login();
    }, deadline - Date.now(), 200, rethrow);
    if (!loggedIn) throw new Error(`${st.blueprint.name}: no SSH login within ${timeoutMs / 1000} s of boot; console:\n${consoleTail(st)}`);
    boot.sshReadyMs = Date.now() - boot.startedAt;
    log(`  ${st.blueprint.name}: SSH up ${(boot.sshReadyMs / 1000).toFixed(1)} s after boot (${st.host.user}@${address})`);
}

/** The PID (in this machine's namespace) of the host's systemd. */
export function pid1(st: HostState): number {
    for (const pid of [...new Set(st.cgroups.flatMap(cgroupPids))]) {
        try {
            const m = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
            const ids = m ? m[1].trim().split(/\s+/) : [];
            if (ids.length >= 2 && ids[ids.length - 1] === "1") return pid;
        } catch {
            // exited
        }
    }
    throw new Error(`${st.blueprint.name} is not running`);
}

/**
 * A host's processes run in sessions of their own, away from the process group of whoever
 * started the rehearsal; job control that stops and continues that process group (a
 * supervisor pausing it, Ctrl-Z in a shell) stops nspawn and the hosts too but continues only
 * the group. A stopped nspawn stalls its host entirely (systemd blocks on nspawn's notify
 * socket), so while this process runs, its hosts' stopped processes are continued (DeployCloud's
 * watchdog calls this every second): how many there were.
 */
export function resumeStopped(hosts: Iterable<HostState>): number {
    let resumed = 0;
    for (const st of hosts) {
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
    return resumed;
}

/** Stop one host: an orderly shutdown (nspawn passes SIGTERM on as poweroff), then whatever is left is killed. */
export async function stopHost(st: HostState, graceMs: number): Promise<void> {
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
