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
 * existing-host.ts. Everything a run creates carries the slot in its name (slots.ts).
 *
 * A kept rehearsal (`anycast lab --deploy --keep`): `keep` leaves the hosts running when this
 * process ends and records them in the slot; a later process `attach`es to them, to deploy
 * again, and `anycast lab --down` removes them (slots.ts teardownKeptSlots).
 */
import { ChildProcess, spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as YAML from "yaml";
import { familyOf, formatCidr, nthAddress, parseCidr } from "../../components/core/addressing";
import { CmdResult, hasCommand, poll, rethrow } from "../exec";
import { acquireLock, pidAlive } from "./lock";
import { KeyFiles, SshConnection, sshRun, SshResult } from "./remote";
import { buildCloudNetwork, HostInterfaceAddress, wireHost } from "./cloud-network";
import { ExistingHostState, seedExistingHost } from "./existing-host";
import { EXISTING_HOST_PACKAGES, Rootfs, ROOTFS_TOOLS } from "./rootfs";
import {
    cgroupPids, cgroupRoots, DEPLOY_ROOT, destroyCgroups, destroySlot, ipBatch, keptRecordFile, keptSlots, MAX_SLOTS, NET_LOCK, pssBytes, readOwner,
    removeClientNamespaces, restoreForwardingIfLast, sh, slotLeftovers, slotNames, SlotNames, teardownStaleLocked,
} from "./slots";

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


export interface HostAddressing {
    /** `address/length` for the host, or false for none; default one from the slot's block. */
    ipv4?: string | false;
    ipv6?: string | false;
    /** The host's gateway (held by the cloud namespace); default the first other address of the subnet. */
    gateway4?: string;
    gateway6?: string;
}

/** What a rehearsal host is made from (not core/model.ts HostSpec, a stack's host): its name, kind, user data or existing state, addresses. */
export interface HostBlueprint {
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

interface HostState {
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
            this.pid1(st);
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
        for (const blueprint of blueprints) this.checkBlueprint(blueprint);
        const states: HostState[] = [];
        for (const blueprint of blueprints) states.push(await this.prepare(blueprint));
        for (const st of states) this.launch(st);
        this.startWatchdog();
        // A limit, not a measure: a new instance's sshd waits for cloud-init's first stages, which
        // took over 90 s on a loaded 2-core machine (the boot-to-SSH time is recorded and printed).
        await Promise.all(states.map((st) => this.waitForSsh(st, options.sshTimeoutMs ?? 300_000)));
        return states.map((st) => st.host);
    }

    private checkBlueprint(blueprint: HostBlueprint): void {
        if (!/^[a-z][a-z0-9-]{0,30}$/.test(blueprint.name)) throw new Error(`host name ${JSON.stringify(blueprint.name)}: use 1-31 lower-case letters, digits and dashes, starting with a letter`);
        if (this.hosts.has(blueprint.name)) throw new Error(`a host named ${blueprint.name} exists already`);
        if (blueprint.kind === "existing" && blueprint.userData !== undefined) throw new Error(`${blueprint.name}: an existing host has no user data (cloud-init does not run on it)`);
        if (blueprint.kind === "new" && blueprint.existing !== undefined) throw new Error(`${blueprint.name}: a new instance has no existing state`);
        const user = blueprint.existing?.user;
        if (user !== undefined && !/^[a-z_][a-z0-9_-]{0,30}$/.test(user)) throw new Error(`${blueprint.name}: user ${JSON.stringify(user)} is not a valid user name`);
        for (const p of blueprint.existing?.packages ?? []) {
            if (!EXISTING_HOST_PACKAGES.includes(p)) throw new Error(`${blueprint.name}: package ${p} is not one of the existing-host packages (${EXISTING_HOST_PACKAGES.join(", ")})`);
        }
        if (user !== undefined && user !== "root" && !(blueprint.existing?.packages ?? EXISTING_HOST_PACKAGES).includes("sudo")) {
            throw new Error(`${blueprint.name}: the non-root user ${user} needs the sudo package`);
        }
    }

    private address(index: number, spec: HostAddressing | undefined, family: 4 | 6): HostInterfaceAddress | undefined {
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
    private async prepare(blueprint: HostBlueprint): Promise<HostState> {
        const index = this.nextIndex++;
        const s = this.names;
        const dir = path.join(s.dir, "hosts", blueprint.name);
        const rootDir = path.join(dir, "root");
        for (const d of ["upper", "work", "root"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
        const v4 = this.address(index, blueprint.addresses, 4);
        const v6 = this.address(index, blueprint.addresses, 6);
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
        this.writeHostIdentity(st);
        if (blueprint.kind === "new") this.writeNoCloudSeed(st);
        else await seedExistingHost(st.host.rootDir, st.blueprint.name, st.blueprint.existing ?? {}, st.host.user, this.rootfs, this.deployKey.publicKey);
        await wireHost(this.names, st.host, v4, v6);
        for (const cg of st.cgroups) fs.mkdirSync(cg, { recursive: true });
        return st;
    }

    private writeHostIdentity(st: HostState): void {
        const root = st.host.rootDir;
        const name = st.blueprint.name;
        fs.writeFileSync(path.join(root, "etc", "hostname"), `${name}\n`);
        fs.appendFileSync(path.join(root, "etc", "hosts"), `127.0.1.1\t${name}\n`);
        fs.rmSync(path.join(root, "etc", "resolv.conf"), { force: true });
        fs.writeFileSync(path.join(root, "etc", "resolv.conf"), this.nameservers.map((n) => `nameserver ${n}\n`).join(""));
    }

    /** The NoCloud seed: user data as given, meta-data with an instance id and the instance's SSH keys. */
    private writeNoCloudSeed(st: HostState): void {
        const seed = path.join(st.host.rootDir, "var", "lib", "cloud", "seed", "nocloud");
        fs.mkdirSync(seed, { recursive: true });
        fs.writeFileSync(path.join(seed, "user-data"), st.blueprint.userData ?? "");
        const meta = {
            "instance-id": `${st.blueprint.name}-${crypto.randomBytes(6).toString("hex")}`,
            "local-hostname": st.blueprint.name,
            "public-keys": st.blueprint.sshKeys ?? [this.deployKey.publicKey],
        };
        fs.writeFileSync(path.join(seed, "meta-data"), YAML.stringify(meta));
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
            "--quiet", "--boot", `--directory=${root}`, `--machine=${st.host.netns}`, `--hostname=${st.blueprint.name}`,
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
                    this.log(`  ${st.blueprint.name}: rebooting`);
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
        const loggedIn = await poll(async () => {
            if (!st.child) {
                throw new Error(`${st.blueprint.name}: systemd-nspawn exited (${st.exited?.code ?? st.exited?.signal}) before SSH came up; console:\n${this.consoleTail(st)}`);
            }
            if (!await tcpOpen(address, 22)) return false;
            const r = await this.ssh(st.blueprint.name, "true", { timeoutMs: 10_000 }).catch(() => undefined);
            return r?.exitCode === 0;
        }, deadline - Date.now(), 200, rethrow);
        if (!loggedIn) throw new Error(`${st.blueprint.name}: no SSH login within ${timeoutMs / 1000} s of boot; console:\n${this.consoleTail(st)}`);
        boot.sshReadyMs = Date.now() - boot.startedAt;
        this.log(`  ${st.blueprint.name}: SSH up ${(boot.sshReadyMs / 1000).toFixed(1)} s after boot (${st.host.user}@${address})`);
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
        throw new Error(`${st.blueprint.name} is not running`);
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
        if (!st.child) throw new Error(`${name} was booted by an earlier process (a kept rehearsal): this one cannot see it shut down to boot it again`);
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
