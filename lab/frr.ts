/**
 * The emulated provider edge as FRR (Debian's `frr`, 8.4 on bookworm), the lab's default: a BGP
 * implementation other than the PoPs' own BIRD, so interop faults show up here and not in
 * production. It plays Vultr's edge from the PoP's config: AS 64515 towards the PoP (the config's
 * remoteAsn) from the configured neighbour address, multihop, TCP-MD5, BFD when the PoP asks for
 * it, GRACEFUL_SHUTDOWN honoured, a default plus a ≥1000-route table offered, the action
 * communities applied, and AS 20473 towards the Internet.
 *
 * Each edge namespace runs its own zebra, bgpd and (with BFD) bfdd with every path explicit
 * (config, pid files, vty sockets and zebra's API socket under the namespace's lab directory), so
 * several FRR instances share this machine without /etc/frr or /run/frr. The config is applied
 * with `vtysh -f`, and state is read with vtysh's JSON output.
 */
import { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { Family } from "../components/core/addressing";
import { VULTR_ASN } from "../components/core/vultr";
import { LabPreconditionError } from "./errors";
import { nsDaemon, nsRun, waitFor } from "./exec";
import { upstreamTable, UPSTREAM_TABLE_SIZE } from "./routers";
import { LabEdge } from "./topology";

/** Where Debian's frr package installs the daemons. */
export const FRR_DAEMON_DIR = "/usr/lib/frr";

const afi = (family: Family) => (family === 6 ? "ipv6 unicast" : "ipv4 unicast");

/** A password FRR's `neighbor PEER password WORD` can hold: one word, no comment character. */
export function frrPasswordProblem(password: string): string | undefined {
    if (/\s/.test(password)) return "contains whitespace, which FRR's `neighbor ... password` cannot hold";
    if (/^[!#]/.test(password)) return "starts with ! or #, which FRR reads as a comment";
    return undefined;
}

function communityLists(transitAsn: number): string[] {
    const lines = [
        "bgp community-list standard GRACEFUL_SHUTDOWN seq 5 permit graceful-shutdown",
        `bgp community-list standard VULTR_NO_EXPORT seq 5 permit ${VULTR_ASN}:6000`,
        // 20473:6001-6003: prepend 1-3x towards every network.
        ...[1, 2, 3].map((n) => `bgp community-list standard VULTR_PREPEND_ALL_${n} seq 5 permit ${VULTR_ASN}:${6000 + n}`),
    ];
    // Standard communities hold 16-bit ASNs: no action community can name a 32-bit transit.
    if (transitAsn <= 65535) {
        lines.push(`bgp community-list standard VULTR_NO_EXPORT seq 10 permit 64600:${transitAsn}`);
        for (const n of [1, 2, 3]) lines.push(`bgp community-list standard VULTR_PREPEND_${n} seq 5 permit ${64600 + n}:${transitAsn}`);
    }
    return lines;
}

/**
 * What the edge learned from the PoP carries this route tag (local to the edge, never sent), so
 * the export towards the transit knows it by where it came from: not by its AS path, which
 * `remove-private-AS` has already emptied when the PoP's ASN is private.
 */
const FROM_POP_TAG = 20473;

/** Towards the Internet: the PoP's network and what the PoP announced, with Vultr's actions applied. */
function toTransitRouteMap(edge: LabEdge, family: Family, transitAsn: number): string[] {
    const name = `TO_TRANSIT${family}`;
    const lines: string[] = [];
    if (family === 6) lines.push(`route-map ${name} permit 5`, " match ipv6 address prefix-list POP_LINK", "exit");
    lines.push(`route-map ${name} deny 10`, " match community VULTR_NO_EXPORT", "exit");
    // The most prepends asked for wins: towards this transit (64601-64603:ASN), then towards all.
    const prepend = (seq: number, list: string, n: number) => [`route-map ${name} permit ${seq}`, ` match tag ${FROM_POP_TAG}`,
        ` match community ${list}`, ` set as-path prepend ${Array(n).fill(edge.publicAsn).join(" ")}`, "exit"];
    for (const n of [3, 2, 1]) {
        if (transitAsn <= 65535) lines.push(...prepend(11 + 2 * (3 - n), `VULTR_PREPEND_${n}`, n));
        lines.push(...prepend(12 + 2 * (3 - n), `VULTR_PREPEND_ALL_${n}`, n));
    }
    lines.push(`route-map ${name} permit 20`, ` match tag ${FROM_POP_TAG}`, "exit");
    return lines;
}

function bfdBlock(edge: LabEdge): string[] {
    const p = edge.towardsPop;
    if (!p.bfd) return [];
    return [
        "bfd",
        " profile pop",
        `  detect-multiplier ${p.bfd.multiplier}`,
        `  receive-interval ${p.bfd.intervalMs}`,
        `  transmit-interval ${p.bfd.intervalMs}`,
        // FRR's default (254) expects multihop packets sent with TTL 255 at most one hop away.
        ...(p.bfdMinimumTtl !== undefined && p.multihop > 0 ? [`  minimum-ttl ${p.bfdMinimumTtl}`] : []),
        " exit",
        "exit",
        "!",
    ];
}

function popNeighbor(edge: LabEdge, address: string, neighbor: string): string[] {
    const p = edge.towardsPop;
    const n = ` neighbor ${address}`;
    return [
        `${n} remote-as ${p.popAsn}`,
        // The PoP peers with the provider's edge AS (Vultr: 64515); the Internet sees the public AS.
        ...(p.localAsn !== edge.publicAsn ? [`${n} local-as ${p.localAsn} no-prepend replace-as`] : []),
        `${n} description PoP ${edge.region}`,
        `${n} update-source ${neighbor}`,
        ...(p.multihop > 0 ? [`${n} ebgp-multihop ${p.multihop}`] : []),
        `${n} password ${p.password}`,
        `${n} timers connect 1`,
        ...(p.bfd ? [`${n} bfd profile pop`] : []),
    ];
}

export function renderEdgeFrr(edge: LabEdge, tableSize = UPSTREAM_TABLE_SIZE): string {
    const p = edge.towardsPop;
    const problem = frrPasswordProblem(p.password);
    if (problem) throw new Error(`the BGP password ${problem}`);
    const lines = [
        `! Emulated provider edge for region ${edge.region}: AS${p.localAsn} towards the PoP, AS${edge.publicAsn} outward.`,
        "! Rendered by the pulumi-anycast lab: part of the emulated cloud, not of the product.",
        "frr defaults traditional",
        `hostname ${edge.ns}`,
        "!",
        ...communityLists(edge.towardsTransit.peers[0].neighborAsn),
        ...p.sessions.filter((s) => s.family === 6).map((s) => `ipv6 prefix-list POP_LINK seq 5 permit ${s.popNetwork}`),
        "!",
        "! RFC 8326: a route marked GRACEFUL_SHUTDOWN is the last resort.",
        "route-map FROM_POP permit 10", " match community GRACEFUL_SHUTDOWN", " set local-preference 0", ` set tag ${FROM_POP_TAG}`, "exit",
        "route-map FROM_POP permit 20", ` set tag ${FROM_POP_TAG}`, "exit",
        "route-map IMPORT_NONE deny 10", "exit",
        ...edge.towardsTransit.peers.flatMap((t) => toTransitRouteMap(edge, t.family, t.neighborAsn)),
        "!",
        ...bfdBlock(edge),
        `router bgp ${edge.publicAsn}`,
        ` bgp router-id ${edge.routerId}`,
        " no bgp ebgp-requires-policy",
        " no bgp network import-check",
        " no bgp default ipv4-unicast",
        // Advertise a route only once zebra has it in the kernel: without it an undrained PoP's
        // route reaches the transit before this edge can forward to it, and a request in that
        // window meets the edge's "no route" (EHOSTUNREACH). Real provider edges behave so.
        " bgp suppress-fib-pending",
        ...p.sessions.flatMap((s) => popNeighbor(edge, s.popAddress, s.neighbor)),
        ...edge.towardsTransit.peers.flatMap((t) => [
            ` neighbor ${t.neighborAddress} remote-as ${t.neighborAsn}`,
            ` neighbor ${t.neighborAddress} description transit ${t.peerRegion}`,
            ` neighbor ${t.neighborAddress} timers connect 1`,
            // No minimum route advertisement interval: the lab measures our side, not batching.
            ` neighbor ${t.neighborAddress} advertisement-interval 0`,
        ]),
        " !",
    ];
    for (const s of p.sessions) {
        const t = edge.towardsTransit.peers.find((x) => x.family === s.family)!;
        lines.push(
            ` address-family ${afi(s.family)}`,
            ...upstreamTable(s.family, tableSize).map((r) => `  network ${r}`),
            ...(s.family === 6 ? [`  network ${s.popNetwork}`] : []),
            `  neighbor ${s.popAddress} activate`,
            `  neighbor ${s.popAddress} default-originate`,
            `  neighbor ${s.popAddress} route-map FROM_POP in`,
            `  neighbor ${s.popAddress} maximum-prefix 1000`,
            `  neighbor ${t.neighborAddress} activate`,
            `  neighbor ${t.neighborAddress} route-map IMPORT_NONE in`,
            `  neighbor ${t.neighborAddress} route-map TO_TRANSIT${s.family} out`,
            // Vultr removes a customer's private ASN and exports from AS20473 alone (origin-as.ts).
            ...(edge.removesPrivateAsn ? [`  neighbor ${t.neighborAddress} remove-private-AS all`] : []),
            " exit-address-family",
        );
    }
    lines.push("exit", "!");
    return lines.join("\n") + "\n";
}

/** The daemons one edge needs: zebra (kernel routes), bgpd, and bfdd when the PoP runs BFD. */
export function frrDaemons(edge: LabEdge): string[] {
    return ["zebra", "bgpd", ...(edge.towardsPop.bfd ? ["bfdd"] : [])];
}

/** FRR's directory inside a namespace's lab directory (owned by the frr user the daemons run as). */
export function frrDir(nsDirectory: string): string {
    return path.join(nsDirectory, "frr");
}

/** `vtysh` against one namespace's daemons. */
export async function vtysh(ns: string, dir: string, commands: string[], timeoutMs = 30_000): Promise<string> {
    const args = ["--vty_socket", dir, ...commands.flatMap((c) => ["-c", c])];
    const res = await nsRun(ns, "vtysh", args, { allowFail: true, timeoutMs });
    if (res.code !== 0) throw new Error(`vtysh ${commands.join("; ")} in ${ns}: ${(res.stderr || res.stdout).trim().split("\n")[0]}`);
    return res.stdout;
}

export async function vtyshJson<T>(ns: string, dir: string, command: string): Promise<T> {
    const out = await vtysh(ns, dir, [`${command} json`]);
    try {
        return JSON.parse(out) as T;
    } catch {
        throw new Error(`vtysh ${command} json in ${ns} gave no JSON: ${out.trim().slice(0, 120)}`);
    }
}

/**
 * Start an edge's FRR daemons in the foreground (so the lab holds their pids and teardown finds
 * them in the namespace), wait for their vty sockets, and apply the config.
 */
export async function startFrrEdge(ns: string, dir: string, edge: LabEdge, config: string): Promise<ChildProcess[]> {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "frr.conf"), config);
    // The daemons drop to the frr user: their directory must be theirs.
    await nsRun(ns, "chown", ["-R", "frr:frr", dir]);
    const children: ChildProcess[] = [];
    for (const daemon of frrDaemons(edge)) {
        const argv = [path.join(FRR_DAEMON_DIR, daemon), "-f", "/dev/null", "--vty_socket", dir, "-i", path.join(dir, `${daemon}.pid`),
            "-z", path.join(dir, "zserv.api"), "--log", `file:${path.join(dir, `${daemon}.log`)}`];
        if (daemon === "bfdd") argv.push("--bfdctl", path.join(dir, "bfdd.sock"));
        const child = nsDaemon(ns, argv, path.join(dir, `${daemon}.stderr.log`), undefined, { controlPlane: true });
        children.push(child);
        await waitFor(`FRR ${daemon} in ${ns} to open its vty socket`, () => {
            if (child.exitCode !== null) {
                throw new LabPreconditionError(`FRR ${daemon} in ${ns} exited (${child.exitCode}): ` +
                    lastLines(path.join(dir, `${daemon}.stderr.log`)));
            }
            return fs.existsSync(path.join(dir, `${daemon}.vty`));
        }, 10_000, 20);
    }
    const applied = await nsRun(ns, "vtysh", ["--vty_socket", dir, "-f", path.join(dir, "frr.conf")], { allowFail: true, timeoutMs: 30_000 });
    const errors = (applied.stdout + applied.stderr).split("\n").filter((l) => /% |error|Unknown command/i.test(l) && !/MPLS/.test(l));
    if (applied.code !== 0 || errors.length > 0) {
        throw new Error(`FRR in ${ns} did not accept its config: ${errors.slice(0, 2).join(" | ") || `vtysh exit ${applied.code}`}`);
    }
    return children;
}

function lastLines(file: string): string {
    try {
        return fs.readFileSync(file, "utf8").trim().split("\n").slice(-2).join(" | ");
    } catch {
        return "no output";
    }
}

/** The fields the lab reads from `show bgp neighbors <peer> json`. */
export interface FrrNeighbor {
    bgpState: string;
    bgpTimerUpEstablishedEpoch?: number;
    lastResetDueTo?: string;
    bgpTimerHoldTimeMsecs?: number;
    peerBfdInfo?: { status?: string };
    addressFamilyInfo?: Record<string, { acceptedPrefixCounter?: number; sentPrefixCounter?: number; defaultSent?: boolean }>;
    messageStats?: { updatesRecv?: number };
}

export async function frrNeighbor(ns: string, dir: string, address: string): Promise<FrrNeighbor | undefined> {
    const all = await vtyshJson<Record<string, FrrNeighbor>>(ns, dir, `show bgp neighbors ${address}`);
    return all[address];
}

export function afiKey(family: Family): string {
    return family === 6 ? "ipv6Unicast" : "ipv4Unicast";
}
