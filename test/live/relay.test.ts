/**
 * The mesh as a backbone, live: an origin and two PoPs in network namespaces, joined by their
 * rendered WireGuard configs (wireguard-go), each PoP running its rendered nginx.conf and
 * upstream file, the real health agent with its rendered settings, and a BIRD that stands for
 * the upstream session (as in agent.test.ts). Only paths are moved into a temporary directory.
 *
 *  - one PoP's tunnel to the origin cut: it stays announced and serves through the other PoP;
 *  - the origin frozen for everyone (a global fault): both PoPs stay announced and answer 503 at once.
 */
import { after, before, describe, test, TestContext } from "node:test";
import * as assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { AnycastSpec } from "../../components/core/model";
import { renderAgentSettings, renderHealthAgent } from "../../components/core/render/health";
import { HostLayout } from "../../components/core/render/layout";
import { renderBirdConfig } from "../../components/core/render/bird";
import { renderNginxConfig, renderNginxUpstreams } from "../../components/core/render/nginx";
import { wireGuardMeshNodes, renderWireGuardConfig, wgPublicKeyFromPrivate } from "../../components/core/render/wireguard";
import { labSpec, layoutIn, popRenderInput } from "../helpers/fixtures";
import {
    CapturedProcess, createNetns, deleteNetns, inNetns, inNetnsOk, isRoot, needRoot, needTools, pollingDuring, runOk, sleep, spawnCaptured,
    tempDir, uniqueNetnsName, until, which,
} from "../helpers/tools";

const TOOLS = ["ip", "wg", "wg-quick", "wireguard-go", "nginx", "bird", "birdc", "curl", "nft", "openssl"];
const MESH_PORT = 51820;

/** The lab stack cut down to one origin and two PoPs (lax, ams). */
function smallSpec(): AnycastSpec {
    const spec = labSpec();
    spec.origins = [spec.origins[0]];
    spec.origin = spec.origins[0];
    spec.pops = spec.pops.filter((p) => p.name === "lax" || p.name === "ams").map((p) => ({ ...p, originPreference: [] }));
    return spec;
}

interface Node {
    name: string;
    ns: string;
    dir: string;
    underlay: string;
    ifname: string;
}

type Proc = CapturedProcess;

class Backbone {
    readonly spec = smallSpec();
    readonly dir = tempDir("relay");
    readonly tag = process.pid % 10_000;
    readonly router = uniqueNetnsName("rr");
    readonly nodes: Node[];
    readonly procs: Proc[] = [];
    originServer?: Proc;
    readonly agents = new Map<string, Proc>();

    constructor() {
        // nginx's workers (not root) read the agent's status file here, as they read /run/anycast on a PoP.
        fs.chmodSync(this.dir, 0o755);
        const names = [this.spec.origin.name, ...this.spec.pops.map((p) => p.name)];
        this.nodes = names.map((name, i) => {
            const dir = path.join(this.dir, name);
            fs.mkdirSync(dir, { recursive: true });
            return { name, ns: uniqueNetnsName(`r${name.slice(0, 3)}`), dir, underlay: `2001:db8:7${i + 1}::10`, ifname: `wr${name.slice(0, 3)}${this.tag}` };
        });
    }

    node(name: string): Node {
        return this.nodes.find((n) => n.name === name)!;
    }

    spawn(command: string, args: string[]): Proc {
        const proc = spawnCaptured(command, args);
        this.procs.push(proc);
        return proc;
    }

    async setUp(): Promise<void> {
        createNetns(this.router);
        inNetnsOk(this.router, "sysctl", ["-qw", "net.ipv6.conf.all.forwarding=1"]);
        this.nodes.forEach((n, i) => {
            createNetns(n.ns);
            const veth = `rr${i}${this.tag}`;
            runOk("ip", ["link", "add", veth, "netns", this.router, "type", "veth", "peer", "name", "eth0", "netns", n.ns]);
            inNetnsOk(this.router, "ip", ["-6", "addr", "add", `2001:db8:7${i + 1}::1/64`, "dev", veth, "nodad"]);
            inNetnsOk(this.router, "ip", ["link", "set", veth, "up"]);
            inNetnsOk(n.ns, "ip", ["-6", "addr", "add", `${n.underlay}/64`, "dev", "eth0", "nodad"]);
            inNetnsOk(n.ns, "ip", ["link", "set", "eth0", "up"]);
            inNetnsOk(n.ns, "ip", ["-6", "route", "add", "default", "via", `2001:db8:7${i + 1}::1`]);
        });

        // The mesh: the rendered wg-quick files, a full mesh as the lab stack has it.
        const keys = Object.fromEntries(this.nodes.map((n) => [n.name, randomBytes(32).toString("base64")]));
        const meshAddress = (name: string) => name === this.spec.origin.name ? this.spec.origin.meshAddress : this.spec.pops.find((p) => p.name === name)!.meshAddress;
        const nodes = wireGuardMeshNodes(this.nodes.map((n) => ({
            name: n.name, meshAddress: meshAddress(n.name), endpoint: n.underlay, publicKey: wgPublicKeyFromPrivate(keys[n.name]),
        })), { cidr: this.spec.mesh.cidr, port: MESH_PORT, topology: "full", mtu: this.spec.mesh.mtu, persistentKeepalive: this.spec.mesh.persistentKeepalive });
        for (const n of this.nodes) {
            // wg-quick names the interface after the file; the name must be unique on the machine.
            const file = path.join(n.dir, `${n.ifname}.conf`);
            fs.writeFileSync(file, renderWireGuardConfig({ ...nodes[n.name], privateKey: keys[n.name] }), { mode: 0o600 });
            inNetnsOk(n.ns, "wg-quick", ["up", file]);
        }

        const origin = this.node(this.spec.origin.name);
        this.originServer = this.spawn("ip", ["netns", "exec", origin.ns, process.execPath, "-e", `
            require("node:http").createServer((req, res) => {
                res.setHeader("x-origin", ${JSON.stringify(origin.name)});
                res.end(req.url === ${JSON.stringify(this.spec.origin.healthPath)} ? "ok\\n" : "hello from the origin\\n");
            }).listen(${this.spec.origin.port}, ${JSON.stringify(this.spec.origin.meshAddress)}, () => console.log("listening"));`]);
        await until("the origin listening", 30_000, () => this.originServer!.out.includes("listening"));

        for (const pop of this.spec.pops) this.bootPop(pop.name);
        for (const pop of this.spec.pops) {
            await until(`${pop.name} announced and reaching the origin`, 30_000, () => {
                const s = this.status(pop.name);
                return s?.state === "announced" && s.direct_up === 1;
            }).catch((e: Error) => {
                throw new Error(`${e.message}\n${this.diagnose(pop.name)}`);
            });
        }
    }

    bootPop(name: string): void {
        const n = this.node(name);
        const input = popRenderInput(this.spec, name);
        const at = (file: string) => path.join(n.dir, file);
        inNetnsOk(n.ns, "ip", ["addr", "add", `${this.spec.address}/128`, "dev", "lo", "nodad"]);

        // BIRD with the rendered bird.conf (its upstream never answers here): the agent switches its static protocols.
        // Every file rendered for this PoP's directory (its layout), with a check timeout longer than
        // this machine's stalls (the lab widens it the same way, lab/stalls.ts).
        const f = (file: string) => path.join(n.dir, file);
        const inDir = layoutIn(input, n.dir);
        const layout: HostLayout = {
            paths: { ...inDir.paths, agent: { ...inDir.paths.agent, controlDir: f("run") }, tls: { certificate: f("tls.pem"), key: f("tls.key"), clientCa: f("tls.pem") } },
            timers: { ...inDir.timers, healthTimeoutMs: 2000 },
        };
        fs.writeFileSync(at("anycast-state.conf"), "define ANYCAST_STATE = 0;\n");
        fs.writeFileSync(at("bird.conf"), renderBirdConfig(input, layout));
        this.spawn("ip", ["netns", "exec", n.ns, "bird", "-f", "-c", at("bird.conf"), "-s", at("bird.ctl")]);

        runOk("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f("tls.key"),
            "-out", f("tls.pem"), "-days", "2", "-subj", "/CN=relay-test"]);
        fs.writeFileSync(f("nginx.conf"), renderNginxConfig(input, layout));
        fs.writeFileSync(f("nginx-upstreams.conf"), renderNginxUpstreams(input));
        this.spawn("ip", ["netns", "exec", n.ns, "nginx", "-p", n.dir + "/", "-c", f("nginx.conf"), "-g", "daemon off;"]);

        fs.writeFileSync(f("anycast-health.json"), renderAgentSettings(input, layout));
        fs.writeFileSync(f("anycast-health"), renderHealthAgent(), { mode: 0o755 });
        this.agents.set(name, this.spawn("ip", ["netns", "exec", n.ns, "env", `ANYCAST_HEALTH_SETTINGS=${f("anycast-health.json")}`, f("anycast-health"), "run"]));
    }

    /** `until`, and on a timeout what every PoP's agent and nginx said. */
    async until(what: string, timeoutMs: number, check: () => boolean, pollMs = 20): Promise<void> {
        await until(what, timeoutMs, check, pollMs).catch((e: Error) => {
            throw new Error([e.message, ...this.spec.pops.map((p) => this.diagnose(p.name))].join("\n"));
        });
    }

    /** What a failed wait shows: the PoP's agent status and the last lines its agent and nginx wrote. */
    diagnose(pop: string): string {
        const tail = (text: string) => text.trim().split("\n").slice(-15).join("\n");
        const errorLog = path.join(this.node(pop).dir, "nginx-error.log");
        return [`${pop} status: ${JSON.stringify(this.status(pop))}`, `${pop} agent:`, tail(this.agents.get(pop)?.err ?? "") + tail(this.agents.get(pop)?.out ?? ""),
            `${pop} nginx error log:`, tail(fs.existsSync(errorLog) ? fs.readFileSync(errorLog, "utf8") : "")].join("\n");
    }

    status(pop: string): Record<string, unknown> | undefined {
        try {
            return JSON.parse(fs.readFileSync(path.join(this.node(pop).dir, "health.json"), "utf8")) as Record<string, unknown>;
        } catch {
            return undefined;
        }
    }

    announced(pop: string): boolean {
        return /^define ANYCAST_STATE = 2;/.test(fs.readFileSync(path.join(this.node(pop).dir, "anycast-state.conf"), "utf8"));
    }

    /** A visitor's request to the anycast address, from inside the PoP's namespace. */
    get(pop: string): { status: number; headers: string; ms: number } {
        const r = inNetns(this.node(pop).ns, "curl", ["-sg", "-o", "/dev/null", "-D", "-", "-w", "time=%{time_total}", "--max-time", "10",
            "-H", `Host: ${this.spec.frontDoor.hostname}`, `http://[${this.spec.address}]/`]);
        const headers = r.stdout.toLowerCase();
        return { status: Number(headers.split(" ")[1]), headers, ms: Math.round(Number(/time=([\d.]+)/.exec(r.stdout)?.[1] ?? "NaN") * 1000) };
    }

    /** Silently drop WireGuard between a PoP and the origin (both ways), or lift that. */
    cut(pop: string, cut: boolean): void {
        const n = this.node(pop);
        if (!cut) {
            inNetnsOk(n.ns, "nft", ["delete", "table", "inet", "relay_test_cut"]);
            return;
        }
        const origin = this.node(this.spec.origin.name).underlay;
        inNetnsOk(n.ns, "nft", ["-f", "-"], {
            input: `table inet relay_test_cut {
                chain out { type filter hook output priority -400; ip6 daddr ${origin} udp dport ${MESH_PORT} drop; };
                chain in { type filter hook input priority -400; ip6 saddr ${origin} udp sport ${MESH_PORT} drop; };
            }\n`,
        });
    }

    /** Fails the test if a PoP leaves "announced" while `during` runs. */
    async staysAnnounced<T>(pops: string[], during: () => Promise<T>): Promise<T> {
        const left = new Set<string>();
        try {
            return await pollingDuring(() => {
                for (const pop of pops) if (!this.announced(pop)) left.add(pop);
            }, 10, during);
        } finally {
            assert.deepEqual([...left], [], "left announced");
        }
    }

    async tearDown(): Promise<void> {
        for (const p of this.procs) {
            if (!p.exited) {
                p.child.kill("SIGCONT");
                p.child.kill("SIGTERM");
            }
        }
        await until("processes to exit", 5000, () => this.procs.every((p) => p.exited)).catch(() => {
            for (const p of this.procs) if (!p.exited) p.child.kill("SIGKILL");
        });
        for (const n of this.nodes) {
            inNetns(n.ns, "wg-quick", ["down", path.join(n.dir, `${n.ifname}.conf`)]);
            deleteNetns(n.ns);
        }
        deleteNetns(this.router);
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}


describe("the mesh as a backbone (live: an origin and two PoPs, rendered WireGuard, nginx and agents)", () => {
    const canRun = isRoot() && TOOLS.every((t) => which(t) !== undefined);
    const net = canRun ? new Backbone() : undefined;
    let setUpError: Error | undefined;
    before(async () => {
        if (!net) return;
        try {
            await net.setUp();
        } catch (e) {
            setUpError = e as Error;
        }
    }, { timeout: 120_000 });
    after(async () => {
        await net?.tearDown();
    });
    const skip = (t: TestContext): boolean => {
        if (net) {
            if (setUpError) throw setUpError;
            return false;
        }
        if (needRoot(t, "network namespaces, WireGuard, nginx and BIRD")) needTools(t, ...TOOLS);
        return true;
    };

    test("a PoP whose tunnel to the origin is cut stays announced and serves through the other PoP", async (t) => {
        if (skip(t) || !net) return;
        // Steady state first: served over lax's own tunnel. (One slow answer on a loaded machine
        // makes nginx's passive check use the relay backup for fail_timeout, so wait it out.)
        let before: ReturnType<Backbone["get"]> | undefined;
        await net.until("lax serving over its own tunnel", 20_000, () => {
            before = net.get("lax");
            return before.status === 200 && !/^x-anycast-relay:/m.test(before.headers);
        }, 100);
        assert.match(before!.headers, /^x-origin: origin$/m);

        const rerouteMs = await net.staysAnnounced(["lax", "ams"], async () => {
            const t0 = Date.now();
            net.cut("lax", true);
            let relayed: ReturnType<Backbone["get"]> | undefined;
            await net.until("lax serving through ams", 30_000, () => {
                relayed = net.get("lax");
                return relayed.status === 200 && /^x-anycast-relay: ams$/m.test(relayed.headers);
            }, 50);
            const ms = Date.now() - t0;
            assert.match(relayed!.headers, /^x-anycast-pop: lax$/m, "the visitor's PoP serves");
            assert.match(relayed!.headers, /^x-origin: origin$/m);
            // nginx's passive check can move a request before the agent's checks have counted
            // `fall` failures (each waits the check timeout): the agent follows.
            await net.until("lax's agent relaying through ams", 20_000, () => net.status("lax")?.primary === "via ams");
            const s = net.status("lax")!;
            assert.equal(s.healthy, true);
            assert.equal(s.direct_up, 0);
            // Held a while: still relayed, still announced.
            await sleep(1500);
            assert.match(net.get("lax").headers, /^x-anycast-relay: ams$/m);
            net.cut("lax", false);
            await net.until("lax back on its own tunnel", 20_000, () => !/^x-anycast-relay:/m.test(net.get("lax").headers), 100);
            return ms;
        });
        console.log(`relay: lax's tunnel to the origin cut -> served through ams after ${rerouteMs} ms (request loop every 50 ms)`);
        assert.equal(net.status("lax")!.withdrawals_last_hour, 0);
    });

    test("the origin frozen for everyone: both PoPs stay announced and answer 503 at once, then serve again", async (t) => {
        if (skip(t) || !net) return;
        const origin = net.originServer!.child;
        await net.staysAnnounced(["lax", "ams"], async () => {
            origin.kill("SIGSTOP");
            try {
                for (const pop of ["lax", "ams"]) {
                    await net.until(`${pop} answering 503`, 20_000, () => net.get(pop).status === 503, 100);
                    await net.until(`${pop}: fault global`, 10_000, () => net.status(pop)?.fault === "global");
                }
                const answers = ["lax", "ams", "lax", "ams"].map((pop) => ({ pop, ...net.get(pop) }));
                for (const a of answers) {
                    assert.equal(a.status, 503, a.pop);
                    assert.match(a.headers, /^retry-after: 5$/m);
                    assert.match(a.headers, new RegExp(`^x-anycast-pop: ${a.pop}$`, "m"));
                }
                console.log(`relay: origin frozen -> 503 from both PoPs in ${answers.map((a) => `${a.ms} ms`).join(", ")}`);
                await sleep(1000);
            } finally {
                origin.kill("SIGCONT");
            }
            for (const pop of ["lax", "ams"]) await net.until(`${pop} serving again`, 20_000, () => net.get(pop).status === 200, 100);
        });
        for (const pop of ["lax", "ams"]) assert.equal(net.status(pop)!.withdrawals_last_hour, 0, `${pop}: no withdrawal, no damping`);
    });
});
