/**
 * Executes a LabDesign's network part (namespaces, veth links, addresses, routes, sysctls) and
 * tears every lab namespace down again, processes first.
 */
import * as fs from "node:fs";
import { nsRun, poll, run, runUntracked, sleep } from "./exec";
import { LAB_DIR, LAB_NS_PREFIX, LabDesign, LabNamespace } from "./topology";

/** Lab namespaces present on this machine (from this run or a kept/crashed earlier one). */
export async function labNamespaces(): Promise<string[]> {
    const out = await runUntracked("ip", ["netns", "list"], { allowFail: true });
    return out.stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) => n.startsWith(LAB_NS_PREFIX));
}

/** PIDs of every process inside a namespace. */
export async function namespacePids(ns: string): Promise<number[]> {
    const out = await runUntracked("ip", ["netns", "pids", ns], { allowFail: true });
    return out.stdout.split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number);
}

function killAll(pids: number[], signal: NodeJS.Signals): void {
    for (const pid of pids) {
        try {
            process.kill(pid, signal);
        } catch {
            // already gone
        }
    }
}

/**
 * Kill every process in the lab's namespaces (TERM, then KILL after a grace period), delete the
 * namespaces and the working directory. Safe to call any number of times, from any process.
 */
export async function teardownNetwork(log: (line: string) => void = () => undefined): Promise<{ namespaces: number; processes: number }> {
    const namespaces = await labNamespaces();
    const pidsByNs = await Promise.all(namespaces.map((ns) => namespacePids(ns)));
    const pids = [...new Set(pidsByNs.flat())].filter((p) => p !== process.pid);
    if (pids.length > 0) {
        killAll(pids, "SIGTERM");
        let alive = pids;
        await poll(() => (alive = alive.filter((p) => { try { process.kill(p, 0); return true; } catch { return false; } })).length === 0, 2000, 50);
        if (alive.length > 0) {
            killAll(alive, "SIGKILL");
            await sleep(100);
        }
    }
    // A process can fork between the listing and the signal (the health agent runs each check in
    // a subshell), and its new child was in no list: list again until the namespaces are empty.
    for (let round = 0; round < 20; round++) {
        const late = [...new Set((await Promise.all(namespaces.map((ns) => namespacePids(ns)))).flat())].filter((p) => p !== process.pid);
        if (late.length === 0) break;
        killAll(late, "SIGKILL");
        await sleep(100);
    }
    for (const ns of namespaces) await runUntracked("ip", ["netns", "del", ns], { allowFail: true });
    fs.rmSync(LAB_DIR, { recursive: true, force: true });
    if (namespaces.length > 0) log(`  removed ${namespaces.length} namespaces, stopped ${pids.length} processes`);
    return { namespaces: namespaces.length, processes: pids.length };
}

async function batch(ns: string | undefined, commands: string[]): Promise<void> {
    if (commands.length === 0) return;
    const args = ns ? ["-n", ns, "-batch", "-"] : ["-batch", "-"];
    await run("ip", args, { input: commands.join("\n") + "\n" });
}

async function sysctls(ns: LabNamespace): Promise<void> {
    const values = [
        // No duplicate address detection: addresses are usable at once (nobody else has them).
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
        "net.ipv6.conf.all.accept_ra=0",
        "net.ipv6.conf.default.accept_ra=0",
    ];
    if (ns.forwarding) values.push("net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.forwarding=1");
    // Always explicit: a new namespace inherits IPv4 forwarding from the machine's own setting
    // (net.core.devconf_inherit_init_net = 0), which differs between machines.
    values.push(`net.ipv4.ip_forward=${ns.forwarding ? 1 : 0}`);
    await nsRun(ns.name, "sysctl", ["-q", "-w", ...values]);
}

/** Build namespaces, links, addresses and routes. */
export async function buildNetwork(design: LabDesign): Promise<void> {
    fs.mkdirSync(LAB_DIR, { recursive: true });
    for (const ns of design.namespaces) {
        await run("ip", ["netns", "add", ns.name]);
        fs.mkdirSync(`${LAB_DIR}/${ns.name}`, { recursive: true });
    }
    await Promise.all(design.namespaces.map((ns) => sysctls(ns)));
    // Both ends are created directly in their namespaces, so they get the namespace's sysctls.
    await batch(undefined, design.links.map((l) =>
        `link add name ${l.a.ifname} netns ${l.a.ns} type veth peer name ${l.b.ifname} netns ${l.b.ns}`));
    await Promise.all(design.namespaces.map((ns) => {
        const ifaces = new Set(design.links.flatMap((l) => [l.a, l.b]).filter((e) => e.ns === ns.name).map((e) => e.ifname));
        return batch(ns.name, [
            "link set lo up",
            ...ns.addresses.map((a) => `addr add ${a.cidr} dev ${a.ifname} nodad`),
            ...[...ifaces].map((i) => `link set ${i} up`),
        ]);
    }));
    await Promise.all(design.namespaces.map((ns) => batch(ns.name, ns.routes.map((r) => `route add ${r.join(" ")}`))));
}
