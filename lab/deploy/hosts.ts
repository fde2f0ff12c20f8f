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
 * The network ("the cloud", cloud-network.ts) routes between the hosts and this machine, which
 * reaches every host on IPv4 and IPv6 (the deployer's SSH); an existing server is made in
 * existing-host.ts. Everything a run creates carries the slot in its name (slots.ts). What a
 * host is made from is host-blueprint.ts, a new instance's first-boot files nocloud.ts, and one
 * host's nspawn machine (boot, reboot, SSH wait, stop) nspawn.ts; this file is the cloud: its
 * slot, hosts and clients from creation (or attach) to keep or teardown.
 *
 * A kept rehearsal (`anycast lab --deploy --keep`): `keep` leaves the hosts running when this
 * process ends and records them in the slot; a later process `attach`es to them, to deploy
 * again, and `anycast lab --down` removes them (slots.ts teardownKeptSlots).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { familyOf } from "../../components/core/addressing";
import { CmdResult, hasCommand } from "../exec";
import { acquireLock, pidAlive } from "./lock";
import { KeyFiles, SshConnection, sshRun, SshResult } from "./remote";
import { buildCloudNetwork, wireHost } from "./cloud-network";
import { seedExistingHost } from "./existing-host";
import { checkBlueprint, DeployClient, DeployHost, DeployKey, HostBlueprint, hostAddress } from "./host-blueprint";
import { upstreamNameservers, writeHostIdentity, writeNoCloudSeed } from "./nocloud";
import { consoleTail, HostState, launchNspawn, pid1, resumeStopped, settlesWithin, stopHost, waitForSsh } from "./nspawn";
import { Rootfs, ROOTFS_TOOLS } from "./rootfs";
import {
    cgroupPids, cgroupRoots, DEPLOY_ROOT, destroySlot, ipBatch, keptRecordFile, keptSlots, MAX_SLOTS, NET_LOCK, pssBytes, readOwner,
    removeClientNamespaces, restoreForwardingIfLast, sh, slotLeftovers, slotNames, SlotNames, teardownStaleLocked,
} from "./slots";

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

/** What a kept slot records of its cloud (kept.json, beside what the caller keeps with it). */
interface KeptCloudRecord {
    format: "anycast-kept-rehearsal/1";
    slot: number;
    keptAt: string;
    nextIndex: number;
    hosts: Array<Pick<HostState, "blueprint" | "host" | "index" | "dir" | "cgroups">>;
    /** The caller's own record (the rehearsal's plan and stack values). */
    owner: unknown;
}

/**
 * A set of rehearsal hosts and their network; `DeployCloud.create`, then `addHosts`, finally
 * `teardown`, or `keep` to leave them running and `DeployCloud.attach` in a later process.
 */
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
    private keptAway = false;

    private constructor(readonly rootfs: Rootfs, readonly slot: number, deployKey: DeployKey,
        private readonly log: (line: string) => void, nameservers: string[]) {
        this.names = slotNames(slot);
        this.deployKey = deployKey;
        this.nameservers = nameservers;
    }

    /** Left running by `keep`: no longer this process's to use or tear down. */
    get kept(): boolean {
        return this.keptAway;
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
                await buildCloudNetwork(s);
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

    /**
     * Re-attach to the kept slot (`anycast lab --deploy --keep` run before): its hosts as they
     * were recorded, still running under the nspawn the earlier process started. Returns the
     * cloud and the record its keeper left with it. The slot is this process's until `keep` or
     * `teardown`; a host that stopped since (a reboot nothing restarted) is refused with the way out.
     */
    static async attach(options: DeployCloudOptions): Promise<{ cloud: DeployCloud; record: unknown }> {
        const problem = deployPreconditionProblem();
        if (problem) throw new Error(`deploy hosts: ${problem}`);
        const log = options.log ?? (() => undefined);
        const slots = keptSlots();
        if (slots.length === 0) throw new Error("there is no kept rehearsal to deploy to");
        const slot = slots[0];
        const s = slotNames(slot);
        const release = await acquireLock(NET_LOCK, "the deploy network lock", 60_000, log);
        try {
            const owner = readOwner(s.dir);
            if (owner !== undefined && owner !== process.pid && pidAlive(owner)) {
                throw new Error(`the kept rehearsal in slot ${slot} is in use by process ${owner}: one deploy onto it at a time`);
            }
            fs.writeFileSync(path.join(s.dir, "owner"), String(process.pid));
        } finally {
            release();
        }
        const record = JSON.parse(fs.readFileSync(keptRecordFile(slot), "utf8")) as KeptCloudRecord;
        const keyFile = path.join(s.dir, "deploy_key");
        const cloud = new DeployCloud(options.rootfs, slot, {
            privateKey: fs.readFileSync(keyFile, "utf8"), publicKey: fs.readFileSync(`${keyFile}.pub`, "utf8").trim(), privateKeyFile: keyFile,
        }, log, upstreamNameservers());
        cloud.nextIndex = record.nextIndex;
        for (const h of record.hosts) cloud.hosts.set(h.blueprint.name, { ...h, wanted: "running", exitWaiters: [] });
        const stopped = [...cloud.hosts.values()].filter((st) => !cloud.running(st)).map((st) => st.blueprint.name);
        if (stopped.length > 0) {
            fs.writeFileSync(path.join(s.dir, "owner"), "kept");
            throw new Error(`the kept rehearsal's ${stopped.join(", ")} stopped after the run that kept it (nothing restarts a kept host that ` +
                "rebooted): anycast lab --down, then anycast lab --deploy --keep again");
        }
        // A run stopped halfway (Ctrl-C) left its clients: the checks' tools, made afresh by each run.
        await removeClientNamespaces(s);
        cloud.startWatchdog();
        return { cloud, record: record.owner };
    }

    /**
     * Leave the hosts running after this process ends, and record them (and `owner`, the caller's
     * own record) in the slot for `attach`. The client namespaces go: they are a run's checking
     * tools, not hosts, and a later run makes its own. The cloud is no longer this process's to use.
     */
    async keep(owner: unknown): Promise<void> {
        if (this.tornDown) throw new Error("this rehearsal cloud was torn down");
        for (const c of this.clients.values()) await sh("ip", ["netns", "del", c.netns], { allowFail: true });
        this.clients.clear();
        if (this.watchdog) clearInterval(this.watchdog);
        this.watchdog = undefined;
        // nspawn runs detached, in a session of its own: it outlives this process once nothing here waits for it.
        for (const st of this.hosts.values()) st.child?.unref();
        this.keys.remove();
        const record: KeptCloudRecord = {
            format: "anycast-kept-rehearsal/1", slot: this.slot, keptAt: new Date().toISOString(), nextIndex: this.nextIndex,
            hosts: [...this.hosts.values()].map(({ blueprint, host, index, dir, cgroups }) => ({ blueprint, host, index, dir, cgroups })),
            owner,
        };
        const file = keptRecordFile(this.slot);
        fs.writeFileSync(`${file}.tmp`, JSON.stringify(record), { mode: 0o600 });
        fs.renameSync(`${file}.tmp`, file);
        fs.writeFileSync(path.join(this.names.dir, "owner"), "kept");
        this.tornDown = true;
        this.keptAway = true;
        live.delete(this);
    }

    /** Whether a host's systemd is running (its cgroups hold a PID 1). */
    private running(st: HostState): boolean {
        try {
            pid1(st);
            return true;
        } catch {
            return false;
        }
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
    async addHosts(blueprints: HostBlueprint[], options: { sshTimeoutMs?: number } = {}): Promise<DeployHost[]> {
        if (this.tornDown) throw new Error("this rehearsal cloud was torn down");
        for (const blueprint of blueprints) checkBlueprint(blueprint, this.hosts.has(blueprint.name));
        const states: HostState[] = [];
        for (const blueprint of blueprints) states.push(await this.prepare(blueprint));
        for (const st of states) this.launch(st);
        this.startWatchdog();
        // A limit, not a measure: a new instance's sshd waits for cloud-init's first stages, which
        // took over 90 s on a loaded 2-core machine (the boot-to-SSH time is recorded and printed).
        await Promise.all(states.map((st) => this.waitForSsh(st, options.sshTimeoutMs ?? 300_000)));
        return states.map((st) => st.host);
    }

    /** Overlay, host files, network namespace and cgroups: everything but the boot. */
    private async prepare(blueprint: HostBlueprint): Promise<HostState> {
        const index = this.nextIndex++;
        const s = this.names;
        const dir = path.join(s.dir, "hosts", blueprint.name);
        const rootDir = path.join(dir, "root");
        for (const d of ["upper", "work", "root"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
        const v4 = hostAddress(this.slot, index, blueprint.addresses, 4);
        const v6 = hostAddress(this.slot, index, blueprint.addresses, 6);
        const user = blueprint.kind === "existing" ? (blueprint.existing?.user ?? "root") : "root";
        const host: DeployHost = {
            name: blueprint.name, kind: blueprint.kind, netns: `${s.hostPrefix}${blueprint.name}`, cloudInterface: `h${index}`,
            ipv4: v4?.address, ipv6: v6?.address, prefix4: v4?.prefix, prefix6: v6?.prefix, gateway4: v4?.gateway, gateway6: v6?.gateway,
            user, rootDir, boots: [],
        };
        const st: HostState = {
            blueprint, host, index, dir, cgroups: cgroupRoots().map((r) => path.join(r, host.netns)), wanted: "running", exitWaiters: [],
        };
        // Registered before anything is made, so teardown finds whatever part exists.
        this.hosts.set(blueprint.name, st);

        await sh("mount", ["-t", "overlay", "overlay", "-o",
            `lowerdir=${this.rootfs.dir},upperdir=${path.join(dir, "upper")},workdir=${path.join(dir, "work")}`, rootDir]);
        writeHostIdentity(st, this.nameservers);
        if (blueprint.kind === "new") writeNoCloudSeed(st, this.deployKey.publicKey);
        else await seedExistingHost(st.host.rootDir, st.blueprint.name, st.blueprint.existing ?? {}, st.host.user, this.rootfs, this.deployKey.publicKey);
        await wireHost(this.names, st.host, v4, v6);
        for (const cg of st.cgroups) fs.mkdirSync(cg, { recursive: true });
        return st;
    }

    /** Boot a host (nspawn.ts); when it asks for a reboot, boot it again unless the cloud is going away. */
    private launch(st: HostState): void {
        launchNspawn(st, () => {
            if (this.tornDown) return;
            this.log(`  ${st.blueprint.name}: rebooting`);
            this.launch(st);
        });
    }

    /** Wait until the host accepts the deploy key over SSH. */
    private waitForSsh(st: HostState, timeoutMs: number): Promise<void> {
        const login = async () => (await this.ssh(st.blueprint.name, "true", { timeoutMs: 10_000 }).catch(() => undefined))?.exitCode === 0;
        return waitForSsh(st, timeoutMs, login, this.log);
    }

    /** While this process runs, continue its hosts' processes that job control stopped (nspawn.ts resumeStopped). */
    private startWatchdog(): void {
        if (this.watchdog) return;
        this.watchdog = setInterval(() => {
            const resumed = resumeStopped(this.hosts.values());
            if (resumed > 0 && !this.resumedNoted) {
                this.resumedNoted = true;
                this.log(`  host processes had been stopped from outside (job control); continued ${resumed}`);
            }
        }, 1000);
        this.watchdog.unref();
    }

    /** Run a command inside a host (all its namespaces), as root, from this machine: for checks, not for the deploy. */
    async exec(name: string, argv: string[], options: { input?: string; timeoutMs?: number; allowFail?: boolean } = {}): Promise<CmdResult> {
        const st = this.state(name);
        return sh("nsenter", ["--target", String(pid1(st)), "--mount", "--uts", "--ipc", "--net", "--pid", "--", ...argv], {
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
        if (!st.child) throw new Error(`${name} was booted by an earlier process (a kept rehearsal): this one cannot see it shut down to boot it again`);
        const boots = st.host.boots.length;
        const t0 = Date.now();
        const exited = new Promise<void>((r) => st.exitWaiters.push(r));
        await this.exec(name, ["systemctl", "reboot"], { allowFail: true });
        if (!await settlesWithin(exited, timeoutMs)) throw new Error(`${name} did not shut down within ${timeoutMs / 1000} s`);
        if (st.host.boots.length === boots) {
            throw new Error(`${name}: systemd-nspawn exited with ${st.exited?.code ?? st.exited?.signal}, not the reboot status 133; console:\n${consoleTail(st)}`);
        }
        const downMs = st.host.boots[st.host.boots.length - 1].startedAt - t0;
        await this.waitForSsh(st, timeoutMs);
        return { downMs, bootToSshMs: st.host.boots[st.host.boots.length - 1].sshReadyMs! };
    }

    /** Stop every host and remove everything of this run: processes, cgroups, overlays, namespaces, NAT, files. */
    async teardown(options: { graceMs?: number } = {}): Promise<void> {
        if (this.tornDown) return;
        this.tornDown = true;
        live.delete(this);
        if (this.watchdog) clearInterval(this.watchdog);
        const t0 = Date.now();
        const errors: string[] = [];
        await Promise.all([...this.hosts.values()].map((st) => stopHost(st, options.graceMs ?? 5000).catch((e: Error) => { errors.push(e.message); })));
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

