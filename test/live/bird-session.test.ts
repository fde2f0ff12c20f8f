/**
 * The rendered PoP bird.conf in a live BGP session against a peer BIRD playing Vultr's route
 * server: announce, drain and withdraw without resetting the session. The goldens, the content
 * and `bird -p` are in test/render/bird.test.ts.
 */
import { describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { AnycastState, renderBirdConfig, renderBirdStateInclude } from "../../components/core/render/bird";
import { labSpec, popRenderInput, withAgentPaths } from "../helpers/fixtures";
import { bfdTimersForStalls, probeStalls } from "../../lab/stalls";
import { sameSince } from "../../lab/session";
import {
    createNetns, deleteNetns, inNetns, inNetnsOk, killPid, needRoot, needTools, readPidFile, runOk, tempDir,
    uniqueNetnsName, waitFor,
} from "../helpers/tools";

/**
 * Live: the rendered lab PoP config against a small peer BIRD playing Vultr's route server
 * (AS 64515, multihop, same TCP-MD5 password, multihop BFD), in two namespaces joined by a veth.
 */
describe("live BGP session against a peer BIRD", () => {
    test("announce, drain and withdraw follow ANYCAST_STATE without resetting the session", async (t) => {
        if (!needRoot(t, "network namespaces and BIRD sockets")) return;
        if (!needTools(t, "bird", "birdc", "ip")) return;
        const popNs = uniqueNetnsName("bpop");
        const peerNs = uniqueNetnsName("bpeer");
        const dir = tempDir("bird-live");
        const pidFiles = [path.join(dir, "pop.pid"), path.join(dir, "peer.pid")];
        try {
            createNetns(popNs);
            createNetns(peerNs);
            runOk("ip", ["link", "add", "pop0", "netns", popNs, "type", "veth", "peer", "name", "edge0", "netns", peerNs]);
            const spec = labSpec();
            const rendered = popRenderInput(spec, "lax");
            // BFD timers this machine keeps up (lab/stalls.ts): a shared VM that stops for longer
            // than the detection time makes both ends declare the session dead.
            const configured = rendered.pop.bgp.bfd!;
            const stalls = probeStalls(1500);
            const bfd = bfdTimersForStalls(configured, stalls.maxMs) ?? configured;
            if (bfd !== configured) {
                console.log(`bird live: this machine stalled ${stalls.maxMs} ms; BFD ${configured.intervalMs} ms -> ${bfd.intervalMs} ms x ${bfd.multiplier}`);
            }
            const input = { ...rendered, pop: { ...rendered.pop, bgp: { ...rendered.pop.bgp, bfd } } };
            const popAddr = input.host.ipv6;
            const edgeAddr = "2001:db8:ff11::1";
            inNetnsOk(popNs, "ip", ["-6", "addr", "add", `${popAddr}/64`, "dev", "pop0", "nodad"]);
            inNetnsOk(popNs, "ip", ["link", "set", "pop0", "up"]);
            inNetnsOk(popNs, "ip", ["-6", "addr", "add", `${spec.address}/128`, "dev", "lo", "nodad"]);
            inNetnsOk(popNs, "ip", ["-6", "route", "add", `${input.pop.bgp.neighbor}/128`, "via", edgeAddr]);
            inNetnsOk(peerNs, "ip", ["-6", "addr", "add", `${edgeAddr}/64`, "dev", "edge0", "nodad"]);
            inNetnsOk(peerNs, "ip", ["link", "set", "edge0", "up"]);
            inNetnsOk(peerNs, "ip", ["-6", "addr", "add", `${input.pop.bgp.neighbor}/128`, "dev", "lo", "nodad"]);

            // The PoP config as rendered, rendered with its include path in the scratch
            // directory, plus static routes the export filter must NOT let out: a more-specific
            // of the anycast prefix and a foreign /48.
            const stateFile = path.join(dir, "anycast-state.conf");
            const setState = (state: AnycastState) => fs.writeFileSync(stateFile, renderBirdStateInclude(state));
            setState(0);
            const popConf = path.join(dir, "pop.conf");
            fs.writeFileSync(popConf, renderBirdConfig(input, withAgentPaths(input, { stateFile })) + [
                "protocol static leak_test6 {",
                "    ipv6 { import all; };",
                "    route 2001:db8:100:1::/64 blackhole;",
                "    route 2001:db8:200::/48 blackhole;",
                "}",
                "",
            ].join("\n"));
            const peerConf = path.join(dir, "peer.conf");
            fs.writeFileSync(peerConf, [
                "router id 10.255.0.1;",
                "timeformat protocol iso long ms;",
                "protocol device {}",
                // Makes the PoP's address (the BGP next hop) resolvable, so received routes are valid.
                "protocol direct { ipv6; interface \"edge0\"; }",
                `protocol bfd { multihop { interval ${bfd.intervalMs} ms; multiplier ${bfd.multiplier}; }; }`,
                "protocol bgp pop_lax {",
                `    local ${input.pop.bgp.neighbor} as ${input.pop.bgp.remoteAsn};`,
                `    neighbor ${popAddr} as ${spec.asn};`,
                `    multihop ${input.pop.bgp.multihop};`,
                `    password "${input.pop.bgp.password}";`,
                "    bfd on;",
                "    ipv6 { import all; export none; };",
                "}",
                "",
            ].join("\n"));
            const popSock = path.join(dir, "pop.ctl");
            const peerSock = path.join(dir, "peer.ctl");
            inNetnsOk(popNs, "bird", ["-c", popConf, "-s", popSock, "-P", pidFiles[0]]);
            inNetnsOk(peerNs, "bird", ["-c", peerConf, "-s", peerSock, "-P", pidFiles[1]]);
            const peerc = (...args: string[]) => runOk("birdc", ["-s", peerSock, ...args]);
            const popc = (...args: string[]) => runOk("birdc", ["-s", popSock, ...args]);

            const since = await waitFor("the BGP session to be Established", 30_000, () => {
                const line = peerc("show", "protocols", "pop_lax").split("\n").find((l) => l.startsWith("pop_lax"));
                return line && /Established/.test(line) ? line.split(/\s+/).slice(4, 6).join(" ") : undefined;
            });
            const routes = () => peerc("show", "route", "all", "protocol", "pop_lax");
            const received = () => (routes().match(/^\S+\/\d+/gm) ?? []);

            // State 0: the session is up and nothing is announced.
            await new Promise((resolve) => setTimeout(resolve, 500));
            assert.deepEqual(received(), []);

            // Multihop BFD between the two is up (the rendered protocol bfd and `bfd on` work).
            await waitFor("the multihop BFD session to be Up", 15_000, () =>
                /\bUp\b/.test(peerc("show", "bfd", "sessions")) ? true : undefined);

            setState(2);
            popc("configure");
            const announced = await waitFor("the prefix to be announced", 10_000, () => {
                const r = received();
                return r.length > 0 ? r : undefined;
            });
            await new Promise((resolve) => setTimeout(resolve, 300));
            assert.deepEqual(received(), ["2001:db8:100::/48"], "exactly the configured prefix, no leak");
            assert.deepEqual(announced, ["2001:db8:100::/48"]);
            // The leak test is only meaningful if the extra routes really sit in the PoP's table.
            const popTable = popc("show", "route");
            assert.ok(popTable.includes("2001:db8:100:1::/64") && popTable.includes("2001:db8:200::/48"), popTable);
            assert.ok(!/65535,\s*0/.test(routes()), "no GRACEFUL_SHUTDOWN while announced");

            setState(1);
            popc("configure");
            await waitFor("GRACEFUL_SHUTDOWN on the route", 10_000, () =>
                /BGP\.community:.*\(65535,0\)/.test(routes()) ? true : undefined);

            setState(0);
            popc("configure");
            await waitFor("the withdraw", 10_000, () => received().length === 0 ? true : undefined);

            const after = peerc("show", "protocols", "pop_lax").split("\n").find((l) => l.startsWith("pop_lax")) ?? "";
            assert.match(after, /Established/);
            const sinceAfter = after.split(/\s+/).slice(4, 6).join(" ");
            assert.ok(sameSince(since, sinceAfter), `the session never reset across three reconfigures (since ${since}, then ${sinceAfter})`);
            const popProtocols = inNetns(popNs, "birdc", ["-s", popSock, "show", "protocols"]).stdout;
            assert.match(popProtocols, /lax_upstream6\s+BGP\s+---\s+up\s+.*Established/);
        } finally {
            for (const f of pidFiles) killPid(readPidFile(f));
            deleteNetns(popNs);
            deleteNetns(peerNs);
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
