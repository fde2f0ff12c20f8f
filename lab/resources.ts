/**
 * What each PoP's daemons cost while nothing happens: CPU (share of one core) and resident memory
 * of the health agent, BIRD, nginx (master and workers), wireguard-go and the bird and nginx
 * exporters in each PoP's namespace,
 * and the processes the whole machine started per second, over a few idle seconds. Read from
 * /proc directly, so the sample forks nothing itself. A measure for the report, never a verdict:
 * other work on the machine adds to the forks, and a loaded machine to nothing else.
 */
import * as fs from "node:fs";
import { namespacePids } from "./network";
import { sleep } from "./exec";

export const DAEMONS = ["anycast-health", "bird", "nginx", "wireguard-go", "bird-exporter", "nginx-exporter"] as const;
export type DaemonName = (typeof DAEMONS)[number];

/** A process's name as /proc shows it: the kernel keeps the first 15 bytes of the program's name. */
const COMM: Partial<Record<DaemonName, string>> = {
    "bird-exporter": "prometheus-bird-exporter".slice(0, 15),
    "nginx-exporter": "prometheus-nginx-exporter".slice(0, 15),
};

export interface DaemonCost {
    pop: string;
    daemon: DaemonName;
    processes: number;
    /** Share of one core over the sample, percent. */
    cpuPercent: number;
    /** Resident memory of its processes together, KiB. */
    rssKiB: number;
}

export interface IdleCost {
    sampledMs: number;
    daemons: DaemonCost[];
    /** Processes started on the whole machine per second during the sample (/proc/stat). */
    forksPerSecond: number;
}

/** Linux's USER_HZ, the unit of /proc/<pid>/stat's times, on every architecture Debian ships. */
const CLOCK_TICKS_PER_S = 100;

function readProc(pid: number): { comm: string; ticks: number; rssKiB: number } | undefined {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        // The command name is in parentheses and may hold spaces: the fields follow the last ")".
        const close = stat.lastIndexOf(")");
        const comm = stat.slice(stat.indexOf("(") + 1, close);
        const fields = stat.slice(close + 2).split(" ");
        // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the state (field 3).
        const ticks = Number(fields[11]) + Number(fields[12]);
        const rss = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
        return { comm, ticks, rssKiB: rss ? Number(rss[1]) : 0 };
    } catch {
        return undefined; // exited meanwhile
    }
}

function processesStarted(): number {
    const m = /^processes (\d+)$/m.exec(fs.readFileSync("/proc/stat", "utf8"));
    return m ? Number(m[1]) : 0;
}

/** Sample every PoP's daemons for `ms` of wall time. */
export async function sampleIdleCost(pops: ReadonlyArray<{ name: string; ns: string }>, ms = 5000): Promise<IdleCost> {
    // The pids first (`ip netns pids` forks): the window below forks nothing of its own.
    const members = await Promise.all(pops.map(async (p) => ({ pop: p.name, pids: await namespacePids(p.ns) })));
    const first = new Map<number, number>();
    for (const m of members) for (const pid of m.pids) first.set(pid, readProc(pid)?.ticks ?? 0);
    const forks0 = processesStarted();
    const t0 = performance.now();
    await sleep(ms);
    const elapsedMs = performance.now() - t0;
    const forks = processesStarted() - forks0;
    const daemons: DaemonCost[] = [];
    for (const m of members) {
        for (const daemon of DAEMONS) {
            let ticks = 0;
            let rssKiB = 0;
            let processes = 0;
            for (const pid of m.pids) {
                const now = readProc(pid);
                if (!now || now.comm !== (COMM[daemon] ?? daemon)) continue;
                processes++;
                ticks += now.ticks - (first.get(pid) ?? now.ticks);
                rssKiB += now.rssKiB;
            }
            if (processes === 0) continue;
            daemons.push({ pop: m.pop, daemon, processes, cpuPercent: (ticks / CLOCK_TICKS_PER_S) * 1000 / elapsedMs * 100, rssKiB });
        }
    }
    return { sampledMs: Math.round(elapsedMs), daemons, forksPerSecond: forks / (elapsedMs / 1000) };
}
