/**
 * Who may reach what, probed in the lab with plain TCP connects from the namespaces that play
 * each kind of source. A connect ends one of three ways, and the difference is the point: it
 * connects (a listener), it is refused (the host answered with a reset: the firewall let it
 * through, nothing listens, e.g. SSH in the lab), or it times out (the firewall dropped it
 * silently, which is what `policy drop` does). UDP has no answer to tell by, so a UDP probe
 * reads the host firewall's final drop counter instead: it must grow by the packets sent.
 */
import { EXPORTERS } from "../components/core/monitoring/exporters";
import { contains, IpPrefix, parseCidr } from "../components/core/addressing";
import { AnycastSpec, HostSpec, PopSpec } from "../components/core/model";
import { LabRuntime } from "./boot";
import { nsRun, run, sleep } from "./exec";

export type ConnectResult = "connected" | "refused" | "timeout" | string;

export interface ReachProbe {
    protocol: "tcp" | "udp";
    from: string;
    source: string;
    to: string;
    address: string;
    port: number;
    /** What the rule being demonstrated says should happen. */
    expect: "reached" | "dropped";
    rule: string;
    result: ConnectResult;
    /** Set when the result is a second try's (a connect that should succeed timed out at first). */
    retried?: boolean;
    ok: boolean;
}

const CONNECT_TIMEOUT_MS = 1500;
/**
 * A probe that should connect but timed out is tried once more with this much time: on a loaded
 * machine a connect through wireguard-go (a userspace process) can take longer than
 * CONNECT_TIMEOUT_MS. A firewall that drops it drops it again; a drop expected as such is never
 * retried, so the probes that must time out still cost CONNECT_TIMEOUT_MS each.
 */
const RETRY_TIMEOUT_MS = 10_000;

/**
 * TCP connects from inside a namespace, all at once in one process (node's net, so IPv6 needs no
 * tool quirks; one process per source keeps the probes cheap on a busy machine). Prints one
 * result per target, in order.
 */
const CONNECT_SCRIPT = `
const net = require("net");
const targets = JSON.parse(process.argv[1]);
const timeout = Number(process.argv[2]);
const results = new Array(targets.length);
let left = targets.length;
targets.forEach(([host, port], i) => {
    const s = net.connect({ host, port });
    let done = false;
    const finish = (what) => {
        if (done) return;
        done = true;
        s.destroy();
        results[i] = what;
        if (--left === 0) { console.log(JSON.stringify(results)); process.exit(0); }
    };
    s.setTimeout(timeout, () => finish("timeout"));
    s.on("connect", () => finish("connected"));
    s.on("error", (e) => finish(e.code === "ECONNREFUSED" ? "refused" : e.code || e.message));
});
`;

/** `ns` undefined: from this machine itself. */
export async function tcpConnects(ns: string | undefined, targets: Array<[string, number]>, timeoutMs = CONNECT_TIMEOUT_MS): Promise<ConnectResult[]> {
    const args = ["-e", CONNECT_SCRIPT, JSON.stringify(targets), String(timeoutMs)];
    const opts = { allowFail: true, timeoutMs: timeoutMs + 20_000 };
    const res = await (ns === undefined ? run(process.execPath, args, opts) : nsRun(ns, process.execPath, args, opts));
    try {
        return JSON.parse(res.stdout.trim()) as ConnectResult[];
    } catch {
        const why = res.stderr.trim().split("\n")[0] || `exit ${res.code}`;
        return targets.map(() => `probe failed: ${why}`);
    }
}

/** A few UDP datagrams (node's dgram: no tool quirks per family). */
const UDP_SCRIPT = `
const s = require("dgram").createSocket(process.argv[1].includes(":") ? "udp6" : "udp4");
let left = Number(process.argv[3]);
const send = () => s.send(Buffer.from("anycast-lab-probe"), Number(process.argv[2]), process.argv[1], () => (--left > 0 ? send() : s.close()));
send();
`;

/**
 * Send `packets` UDP datagrams from inside a namespace. Most of the time is node starting up,
 * which takes seconds on a loaded machine (as tcpConnects allows): the timeout is generous.
 */
export async function sendUdp(fromNs: string, address: string, port: number, packets: number): Promise<void> {
    await nsRun(fromNs, process.execPath, ["-e", UDP_SCRIPT, address, String(port), String(packets)], { timeoutMs: 30_000 });
}

/** Packets counted by the rendered firewall's last rule (`counter drop comment "everything else"`). */
export async function dropCounter(ns: string): Promise<number> {
    const res = await nsRun(ns, "nft", ["list", "chain", "inet", "anycast", "input"]);
    const m = /counter packets (\d+) bytes \d+ drop comment "everything else"/.exec(res.stdout);
    if (!m) throw new Error(`no "everything else" drop counter in ${ns}'s firewall`);
    return Number(m[1]);
}

export async function udpDropped(fromNs: string, toNs: string, address: string, port: number, packets = 3): Promise<string> {
    const before = await dropCounter(toNs);
    await sendUdp(fromNs, address, port, packets);
    // Give the packets time to arrive; the counter only grows.
    let delta = 0;
    for (let i = 0; i < 20 && delta < packets; i++) {
        await sleep(50);
        delta = (await dropCounter(toNs)) - before;
    }
    return delta >= packets ? `dropped (drop counter +${delta})` : `not dropped (drop counter +${delta} of ${packets})`;
}

export function meetsExpectation(expect: ReachProbe["expect"], result: ConnectResult): boolean {
    return expect === "dropped" ? result === "timeout" : result === "connected" || result === "refused";
}

/** What the config says about a source address: may it reach HTTP(S), and SSH? */
export function allowedBy(spec: AnycastSpec, httpSources: string[], address: string): { http: boolean; ssh: boolean } {
    const inside = (list: Array<string | IpPrefix>) => list.some((c) => contains(typeof c === "string" ? parseCidr(c, false) : c, address));
    return { http: inside(httpSources), ssh: spec.firewall.adminCidrs.length === 0 || inside(spec.firewall.adminCidrs) };
}

/** The SSH port of a host: its host.port when it is an existing server, else 22. */
function sshPortOf(host: HostSpec): number {
    return host.kind === "existing" ? host.port : 22;
}

/** Where probes come from: a namespace, or this machine itself (no ns: the rehearsal's deployer). */
export interface ProbeSource {
    ns?: string;
    label: string;
    address: string;
}

export interface ProbeTarget {
    label: string;
    address: string;
}

/** Everything the exposure probes need: the config's expectations, who probes, and what they probe. */
export interface ExposureSetup {
    spec: AnycastSpec;
    /** Who the rendered firewalls let reach HTTP(S) (firewall.httpSources or Cloudflare's ranges). */
    httpSources: string[];
    /** meshPeer: another member of the mesh (the origin), which scrapes the PoP's exporters. */
    sources: { outsider: ProbeSource; client: ProbeSource; pop: ProbeSource; meshPeer: ProbeSource; admin?: ProbeSource };
    /** The PoP whose unicast address is targets.pop and whose mesh address is targets.popMesh. */
    pop: PopSpec;
    targets: { anycast: ProbeTarget; pop: ProbeTarget; popMesh: ProbeTarget; originPublic: ProbeTarget; originMesh: ProbeTarget };
    /** Said after the admin's SSH rule, e.g. why a connect there is refused rather than connected. */
    adminNote?: string;
}

/** The kinds of source the probes come from; the admin source only when the plan has one. */
function labExposureSetup(lab: LabRuntime): ExposureSetup {
    const { design } = lab;
    const spec = lab.stack.spec;
    const r = design.regions[0];
    const o = design.origin;
    const sources: ExposureSetup["sources"] = {
        outsider: { ns: design.outsider.ns, label: `outsider ${design.outsider.address}`, address: design.outsider.address },
        client: { ns: r.client.ns, label: `client ${r.client.address}`, address: r.client.address },
        pop: { ns: r.pop.ns, label: `PoP ${r.pop.name} (mesh peer)`, address: r.pop.address },
        meshPeer: { ns: o.ns, label: `origin ${o.meshAddress} (mesh peer)`, address: o.meshAddress },
    };
    if (design.admin.kind === "origin") {
        sources.admin = { ns: design.origin.ns, label: `origin ${design.origin.address} (admin)`, address: design.origin.address };
    } else if (design.admin.kind === "namespace") {
        sources.admin = { ns: design.admin.client.ns, label: `admin ${design.admin.client.address}`, address: design.admin.client.address };
    }
    return {
        spec, httpSources: design.httpSources, sources, pop: r.pop.spec,
        targets: {
            anycast: { label: "anycast address", address: spec.address.toString() },
            pop: { label: `PoP ${r.pop.name}, unicast`, address: r.pop.address },
            popMesh: { label: `PoP ${r.pop.name}, mesh`, address: r.pop.spec.meshAddress.toString() },
            originPublic: { label: "origin, public", address: o.address },
            originMesh: { label: "origin, mesh", address: o.meshAddress },
        },
        adminNote: "(the lab runs no sshd: refused)",
    };
}

/**
 * The probes for the firewall's rules against the first region's PoP and the origin. Each
 * expectation comes from the config being run: whether a source is inside firewall.httpSources
 * (Cloudflare's ranges by default) or firewall.adminCidrs (empty: SSH open to everyone).
 */
export async function probeExposure(lab: LabRuntime): Promise<ReachProbe[]> {
    return probeExposureOf(labExposureSetup(lab));
}

/** The TCP probes of `setup`, each with the rule it demonstrates and the verdict. */
export async function probeExposureOf(setup: ExposureSetup): Promise<ReachProbe[]> {
    const { spec, sources, targets } = setup;
    type Src = keyof ExposureSetup["sources"];
    type Dst = keyof ExposureSetup["targets"];
    const may = (src: Src) => allowedBy(spec, setup.httpSources, sources[src]!.address);
    const expect = (yes: boolean): ReachProbe["expect"] => (yes ? "reached" : "dropped");
    const popSsh = sshPortOf(setup.pop.host);
    const originSsh = sshPortOf(spec.origin.host);
    const port = spec.origin.port;
    const httpRule = spec.firewall.httpSources ? "HTTP(S) on the anycast address from firewall.httpSources"
        : "HTTP(S) on the anycast address from Cloudflare's ranges";
    const sshRule = spec.firewall.adminCidrs.length === 0 ? "SSH from anywhere (adminCidrs is empty)" : "SSH only from adminCidrs";
    // On an existing server our table guards only the deployment's services (render/nftables.ts):
    // SSH and its other ports stay with the server's own firewall.
    const leftAlone = "an existing server's SSH and other ports: left to its own firewall";
    const popExisting = setup.pop.host.kind === "existing";
    const originExisting = spec.origin.host.kind === "existing";
    const sshExpect = (src: Src, existing: boolean): ReachProbe["expect"] => (existing ? "reached" : expect(may(src).ssh));
    const cases: Array<[Src, Dst, number, ReachProbe["expect"], string]> = [
        ["client", "anycast", 80, expect(may("client").http), httpRule],
        ["outsider", "anycast", 80, expect(may("outsider").http), httpRule],
        ["outsider", "anycast", 443, expect(may("outsider").http), httpRule],
        ["client", "pop", 80, popExisting ? "reached" : "dropped", popExisting ? leftAlone : "HTTP only on the anycast address, not the unicast one"],
        ["outsider", "pop", 179, "dropped", "BGP only from the BGP neighbour"],
        ["client", "pop", 179, "dropped", "BGP only from the BGP neighbour"],
        ["outsider", "pop", popSsh, sshExpect("outsider", popExisting), popExisting ? leftAlone : sshRule],
        ["client", "originPublic", originSsh, sshExpect("client", originExisting), originExisting ? leftAlone : sshRule],
        ["pop", "originMesh", port, "reached", "the origin's service over the mesh"],
        ["pop", "originPublic", port, "dropped", "the origin's service only over the mesh"],
        ["outsider", "originPublic", port, "dropped", "the origin's service only over the mesh"],
        ...(Object.values(EXPORTERS).flatMap((e): Array<[Src, Dst, number, ReachProbe["expect"], string]> => [
            ["meshPeer", "popMesh", e.port, "reached", `the ${e.job} exporter over the mesh`],
            ["outsider", "pop", e.port, "dropped", `the ${e.job} exporter only over the mesh`],
            ["client", "pop", e.port, "dropped", `the ${e.job} exporter only over the mesh`],
        ])),
    ];
    if (sources.admin) {
        cases.splice(6, 0, ["admin", "pop", popSsh, "reached", `${popExisting ? leftAlone : sshRule}${setup.adminNote ? ` ${setup.adminNote}` : ""}`]);
    }
    const results = new Map<number, ConnectResult>();
    /** Connects for the cases at `indices`, one process per source. */
    const probe = async (indices: number[], timeoutMs: number) => {
        for (const src of Object.keys(sources) as Src[]) {
            const mine = indices.filter((i) => cases[i][0] === src);
            if (mine.length === 0) continue;
            const got = await tcpConnects(sources[src]!.ns, mine.map((i) => [targets[cases[i][1]].address, cases[i][2]]), timeoutMs);
            mine.forEach((i, k) => results.set(i, got[k]));
        }
    };
    await probe(cases.map((_, i) => i), CONNECT_TIMEOUT_MS);
    const retried = cases.map((_, i) => i).filter((i) => cases[i][3] === "reached" && results.get(i) === "timeout");
    await probe(retried, RETRY_TIMEOUT_MS);
    return cases.map(([src, dst, p, expected, rule], i) => {
        const result = results.get(i)!;
        return {
            protocol: "tcp" as const, from: sources[src]!.label, source: src, to: targets[dst].label, address: targets[dst].address,
            port: p, expect: expected, rule, result, ok: meetsExpectation(expected, result),
            ...(retried.includes(i) ? { retried: true } : {}),
        };
    });
}

/** WireGuard from outside the mesh: dropped by the PoP's firewall (that the mesh works shows the peers get in). */
export async function probeUdpExposure(lab: LabRuntime): Promise<ReachProbe[]> {
    const r = lab.design.regions[0];
    return probeUdpExposureOf({ ns: lab.design.outsider.ns, label: `outsider ${lab.design.outsider.address}`, address: lab.design.outsider.address },
        r.pop.ns, { label: `PoP ${r.pop.name}, unicast`, address: r.pop.address }, lab.stack.spec.mesh.port);
}

/** UDP to the mesh port from an outsider, counted by the firewall in the PoP's namespace `popNs`. */
export async function probeUdpExposureOf(from: ProbeSource & { ns: string }, popNs: string, to: ProbeTarget, port: number): Promise<ReachProbe[]> {
    const result = await udpDropped(from.ns, popNs, to.address, port);
    return [{
        protocol: "udp", from: from.label, source: "outsider", to: to.label,
        address: to.address, port, expect: "dropped", rule: "WireGuard only from mesh peers", result, ok: result.startsWith("dropped"),
    }];
}
