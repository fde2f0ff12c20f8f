/**
 * Who may reach what, probed in the lab with plain TCP connects from the namespaces that play
 * each kind of source. A connect ends one of three ways, and the difference is the point: it
 * connects (a listener), it is refused (the host answered with a reset: the firewall let it
 * through, nothing listens, e.g. SSH in the lab), or it times out (the firewall dropped it
 * silently, which is what `policy drop` does). UDP has no answer to tell by, so a UDP probe
 * reads the host firewall's final drop counter instead: it must grow by the packets sent.
 */
import { LabRuntime } from "./boot";
import { nsRun } from "./exec";

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
    ok: boolean;
}

const CONNECT_TIMEOUT_MS = 1500;

/** A TCP connect from inside a namespace (node's net, so IPv6 needs no tool quirks). */
const CONNECT_SCRIPT = `
const net = require("net");
const [host, port, timeout] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
const done = (what) => { console.log(what); process.exit(0); };
s.setTimeout(Number(timeout), () => done("timeout"));
s.on("connect", () => done("connected"));
s.on("error", (e) => done(e.code === "ECONNREFUSED" ? "refused" : e.code || e.message));
`;

export async function tcpConnect(ns: string, address: string, port: number, timeoutMs = CONNECT_TIMEOUT_MS): Promise<ConnectResult> {
    const res = await nsRun(ns, process.execPath, ["-e", CONNECT_SCRIPT, address, String(port), String(timeoutMs)],
        { allowFail: true, timeoutMs: timeoutMs + 5000 });
    return res.stdout.trim() || res.stderr.trim().split("\n")[0] || `exit ${res.code}`;
}

/** A few UDP datagrams from inside a namespace. */
const UDP_SCRIPT = `
const s = require("dgram").createSocket(process.argv[1].includes(":") ? "udp6" : "udp4");
let left = Number(process.argv[3]);
const send = () => s.send(Buffer.from("anycast-lab-probe"), Number(process.argv[2]), process.argv[1], () => (--left > 0 ? send() : s.close()));
send();
`;

/** Packets counted by the rendered firewall's last rule (`counter drop comment "everything else"`). */
export async function dropCounter(ns: string): Promise<number> {
    const res = await nsRun(ns, "nft", ["list", "chain", "inet", "anycast", "input"]);
    const m = /counter packets (\d+) bytes \d+ drop comment "everything else"/.exec(res.stdout);
    if (!m) throw new Error(`no "everything else" drop counter in ${ns}'s firewall`);
    return Number(m[1]);
}

export async function udpDropped(fromNs: string, toNs: string, address: string, port: number, packets = 3): Promise<string> {
    const before = await dropCounter(toNs);
    await nsRun(fromNs, process.execPath, ["-e", UDP_SCRIPT, address, String(port), String(packets)], { timeoutMs: 5000 });
    // Give the packets time to arrive; the counter only grows.
    let delta = 0;
    for (let i = 0; i < 20 && delta < packets; i++) {
        await new Promise((r) => setTimeout(r, 50));
        delta = (await dropCounter(toNs)) - before;
    }
    return delta >= packets ? `dropped (drop counter +${delta})` : `not dropped (drop counter +${delta} of ${packets})`;
}

export function meetsExpectation(expect: ReachProbe["expect"], result: ConnectResult): boolean {
    return expect === "dropped" ? result === "timeout" : result === "connected" || result === "refused";
}

/** The probes for the rules of issue "Hardening", against the first region's PoP and the origin. */
export async function probeExposure(lab: LabRuntime): Promise<ReachProbe[]> {
    const { plan } = lab;
    const spec = lab.stack.spec;
    const r = plan.regions[0];
    const o = plan.origin;
    const sources = {
        outsider: { ns: plan.outsider.ns, label: `outsider ${plan.outsider.address}` },
        client: { ns: r.client.ns, label: `client ${r.client.address} (an HTTP source)` },
        admin: { ns: o.ns, label: `the origin ${o.address} (in adminCidrs)` },
        pop: { ns: r.pop.ns, label: `PoP ${r.pop.name} (a mesh peer)` },
    };
    const targets = {
        anycast: { label: "anycast address", address: spec.address },
        pop: { label: `PoP ${r.pop.name}, unicast address`, address: r.pop.address },
        originPublic: { label: "the origin, public address", address: o.address },
        originMesh: { label: "the origin, mesh address", address: o.meshAddress },
    };
    type Src = keyof typeof sources;
    type Dst = keyof typeof targets;
    const cases: Array<[Src, Dst, number, ReachProbe["expect"], string]> = [
        ["client", "anycast", 80, "reached", "HTTP on the anycast address from httpSources"],
        ["outsider", "anycast", 80, "dropped", "HTTP only from httpSources (Cloudflare's ranges)"],
        ["outsider", "anycast", 443, "dropped", "HTTPS only from httpSources"],
        ["client", "pop", 80, "dropped", "HTTP only on the anycast address, not the unicast one"],
        ["outsider", "pop", 179, "dropped", "BGP only from the BGP neighbour"],
        ["client", "pop", 179, "dropped", "BGP only from the BGP neighbour"],
        ["admin", "pop", 22, "reached", "SSH from adminCidrs (the lab runs no sshd)"],
        ["outsider", "pop", 22, "dropped", "SSH only from adminCidrs"],
        ["client", "originPublic", 22, "dropped", "SSH only from adminCidrs"],
        ["pop", "originMesh", o.port, "reached", "the origin's service over the mesh"],
        ["pop", "originPublic", o.port, "dropped", "the origin's service only over the mesh"],
        ["outsider", "originPublic", o.port, "dropped", "the origin's service only over the mesh"],
    ];
    return Promise.all(cases.map(async ([src, dst, port, expect, rule]) => {
        const result = await tcpConnect(sources[src].ns, targets[dst].address, port);
        return {
            protocol: "tcp" as const, from: sources[src].label, source: src, to: targets[dst].label, address: targets[dst].address, port, expect, rule, result,
            ok: meetsExpectation(expect, result),
        };
    }));
}

/** WireGuard from outside the mesh: dropped by the PoP's firewall (that the mesh works shows the peers get in). */
export async function probeUdpExposure(lab: LabRuntime): Promise<ReachProbe[]> {
    const r = lab.plan.regions[0];
    const port = lab.stack.spec.mesh.port;
    const result = await udpDropped(lab.plan.outsider.ns, r.pop.ns, r.pop.address, port);
    return [{
        protocol: "udp", from: `outsider ${lab.plan.outsider.address}`, source: "outsider", to: `PoP ${r.pop.name}, unicast address`,
        address: r.pop.address, port, expect: "dropped", rule: "WireGuard only from mesh peers", result, ok: result.startsWith("dropped"),
    }];
}
