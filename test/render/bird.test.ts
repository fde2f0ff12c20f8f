import { after, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
    AnycastState, BIRD_STATE_FILE, birdIdentifier, renderBirdConfig, renderBirdStateInclude, routerIdFor,
} from "../../components/core/render/bird";
import { IpPrefix } from "../../components/core/addressing";
import { PopRenderInput } from "../../components/core/model";
import { assertGolden } from "../helpers/golden";
import { labSpec, popRenderInput, prodSpec } from "../helpers/fixtures";
import { bfdTimersForStalls, probeStalls } from "../../lab/stalls";
import { sameSince } from "../../lab/session";
import {
    createNetns, deleteNetns, inNetns, inNetnsOk, killPid, needRoot, needTools, readPidFile, run, runOk, tempDir,
    uniqueNetnsName, waitFor,
} from "../helpers/tools";

const scratch = tempDir("bird");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Write a rendered config plus a state include beside it and run `bird -p` on the pair. */
function birdParse(name: string, input: PopRenderInput, state: AnycastState = 0): { status: number | null; output: string } {
    const stateFile = path.join(scratch, `${name}.state.conf`);
    fs.writeFileSync(stateFile, renderBirdStateInclude(state));
    const conf = path.join(scratch, `${name}.conf`);
    fs.writeFileSync(conf, renderBirdConfig(input, { stateFile }));
    const result = run("bird", ["-p", "-c", conf]);
    return { status: result.status, output: result.stdout + result.stderr };
}

/** An input announcing an IPv4 /24 next to the IPv6 /48. */
function dualStack(input: PopRenderInput): PopRenderInput {
    return { ...input, deployment: { ...input.deployment, prefixes: [...input.deployment.prefixes, IpPrefix.parse("198.51.100.0/24")] } };
}

const CASES: Array<[string, () => PopRenderInput]> = [
    ["prod-lax", () => popRenderInput(prodSpec(), "lax")],
    ["prod-ams", () => popRenderInput(prodSpec(), "ams")],
    ["prod-sgp", () => popRenderInput(prodSpec(), "sgp")],
    ["lab-lax", () => popRenderInput(labSpec(), "lax")],
];

describe("renderBirdConfig golden files", () => {
    for (const [name, input] of CASES) {
        test(name, () => {
            const text = renderBirdConfig(input());
            assert.ok(text.includes(`include "${BIRD_STATE_FILE}";`), "the golden keeps the real include path");
            assertGolden(`bird/${name}.conf`, text);
        });
    }
});

describe("bird -p accepts the rendered configs", () => {
    const all: Array<[string, () => PopRenderInput]> = [
        ...CASES,
        ["prod-lax-dualstack", () => dualStack(popRenderInput(prodSpec(), "lax"))],
        ["lab-lax-dualstack", () => dualStack(popRenderInput(labSpec(), "lax"))],
    ];
    for (const [name, input] of all) {
        for (const state of [0, 1, 2] as AnycastState[]) {
            test(`${name} with ANYCAST_STATE=${state}`, (t) => {
                if (!needTools(t, "bird")) return;
                const { status, output } = birdParse(`${name}-${state}`, input(), state);
                assert.equal(status, 0, `bird -p rejected ${name}:\n${output}`);
            });
        }
    }

    test("bird -p rejects a config whose state include is missing (so the check above is real)", (t) => {
        if (!needTools(t, "bird")) return;
        const conf = path.join(scratch, "missing-include.conf");
        fs.writeFileSync(conf, renderBirdConfig(popRenderInput(prodSpec(), "lax"), { stateFile: path.join(scratch, "nonexistent.conf") }));
        assert.notEqual(run("bird", ["-p", "-c", conf]).status, 0);
    });
});

describe("renderBirdConfig content", () => {
    const lax = () => popRenderInput(prodSpec(), "lax");

    test("the export filter matches exactly the configured prefixes, no more-specifics", () => {
        const text = renderBirdConfig(lax());
        assert.match(text, /if !\(net ~ \[ 2001:db8:100::\/48 \]\) then reject;/);
        const sets = text.match(/net ~ \[[^\]]*\]/g) ?? [];
        assert.equal(sets.length, 1);
        assert.ok(!sets[0].includes("+") && !sets[0].includes("{"), `prefix set allows more-specifics: ${sets[0]}`);
        // The announcement is switched by the static protocols, never by the filter: a filter that read
        // ANYCAST_STATE would change on every state change, and a changed filter makes the peer resend its routes.
        assert.doesNotMatch(text, /filter[^}]*ANYCAST_STATE/s);
        assert.match(text, /protocol static lax_anycast6 \{\n\s+disabled \(ANYCAST_STATE - 2\);/);
        assert.match(text, /protocol static lax_drain6 \{\n\s+disabled \(ANYCAST_STATE - 1\);\n.*\n\s+route 2001:db8:100::\/48 blackhole \{ bgp_community\.add\(\(65535, 0\)\); \};/);
    });

    test("the session matches Vultr's facts", () => {
        const text = renderBirdConfig(lax());
        assert.match(text, /local 2001:db8:ff11::10 as 64500;/);
        assert.match(text, /neighbor 2001:19f0:ffff::1 as 64515;/);
        assert.match(text, /multihop 2;/);
        assert.match(text, /password "test-bgp-password";/);
        assert.match(text, /import none;/);
        assert.match(text, /export limit 1 action block;/);
        assert.ok(!/protocol kernel/.test(text), "nothing goes to the kernel");
    });

    test("multihop 0 means a direct session: no multihop line", () => {
        const input = lax();
        input.pop = { ...input.pop, bgp: { ...input.pop.bgp, multihop: 0 } };
        assert.ok(!/multihop/.test(renderBirdConfig(input)));
    });

    test("prepend=1 produces exactly one prepend of our ASN; prepend=0 none", () => {
        const sgp = renderBirdConfig(popRenderInput(prodSpec(), "sgp"));
        assert.equal(sgp.match(/bgp_path\.prepend\(64500\);/g)?.length, 1);
        assert.equal(renderBirdConfig(lax()).match(/bgp_path\.prepend/g), null);
        const three = lax();
        three.pop = { ...three.pop, prepend: 3 };
        assert.equal(renderBirdConfig(three).match(/bgp_path\.prepend\(64500\);/g)?.length, 3);
    });

    test("communities: Vultr action communities explained, large communities via bgp_large_community", () => {
        const input = lax();
        input.pop = {
            ...input.pop,
            communities: [
                ...input.pop.communities,
                { kind: "standard", asn: 64602, value: 174 },
                { kind: "large", global: 206924, data1: 1, data2: 2 },
            ],
        };
        const text = renderBirdConfig(input);
        assert.match(text, /bgp_community\.add\(\(64600, 6939\)\);\s+# Vultr: do not announce to AS6939/);
        assert.match(text, /bgp_community\.add\(\(64602, 174\)\);\s+# Vultr: prepend 2x when announcing to AS174/);
        assert.match(text, /bgp_large_community\.add\(\(206924, 1, 2\)\);/);
    });

    test("BFD appears only when configured, multihop BFD for a multihop session", () => {
        const prod = renderBirdConfig(lax());
        assert.ok(!/bfd/i.test(prod), "prod has no BFD");
        const lab = renderBirdConfig(popRenderInput(labSpec(), "lax"));
        assert.match(lab, /bfd on;/);
        assert.match(lab, /protocol bfd lax_bfd \{\n\s+multihop \{ interval 100 ms; multiplier 3; \};/);
        const direct = popRenderInput(labSpec(), "lax");
        direct.pop = { ...direct.pop, bgp: { ...direct.pop.bgp, multihop: 0 } };
        assert.match(renderBirdConfig(direct), /interface "\*" \{ interval 100 ms; multiplier 3; \};/);
    });

    test("an IPv4 session only with an IPv4 prefix, sourced from the host's IPv4", () => {
        assert.ok(!/ipv4/.test(renderBirdConfig(lax())));
        const text = renderBirdConfig(dualStack(lax()));
        assert.match(text, /protocol bgp lax_upstream4 \{/);
        assert.match(text, /local 192\.0\.2\.11 as 64500;/);
        assert.match(text, /neighbor 169\.254\.169\.254 as 64515;/);
        assert.match(text, /if !\(net ~ \[ 198\.51\.100\.0\/24 \]\) then reject;/);
        assert.match(text, /route 198\.51\.100\.0\/24 blackhole;/);
        const noV4 = dualStack(lax());
        noV4.host = { ipv6: noV4.host.ipv6 };
        assert.throws(() => renderBirdConfig(noV4), /no IPv4 address/);
    });

    test("hold time 0 omits the keepalive time BIRD would reject", () => {
        const input = lax();
        input.pop = { ...input.pop, bgp: { ...input.pop.bgp, holdTime: 0, keepaliveTime: 1 } };
        const text = renderBirdConfig(input);
        assert.match(text, /hold time 0;/);
        assert.ok(!/keepalive time \d/.test(text));
    });

    test("passwords that bird.conf cannot hold verbatim are refused", () => {
        for (const bad of ['a"b', "a\\b", "a\nb", ""]) {
            const input = lax();
            input.pop = { ...input.pop, bgp: { ...input.pop.bgp, password: bad } };
            assert.throws(() => renderBirdConfig(input), /password/, JSON.stringify(bad));
        }
    });

    test("protocol names are BIRD identifiers", () => {
        assert.equal(birdIdentifier("los-angeles-2"), "los_angeles_2");
        const input = lax();
        input.pop = { ...input.pop, name: "los-angeles" };
        const text = renderBirdConfig(input);
        assert.match(text, /protocol bgp los_angeles_upstream6 \{/);
        assert.match(text, /filter los_angeles_export6/);
    });

    test("router id: the IPv4 when known, else the low 32 bits of the IPv6, never 0", () => {
        assert.equal(routerIdFor({ ipv6: "2001:db8::1", ipv4: "192.0.2.7" }), "192.0.2.7");
        assert.equal(routerIdFor({ ipv6: "2001:db8::c0a8:102" }), "192.168.1.2");
        assert.equal(routerIdFor({ ipv6: "2001:db8:ff11::10" }), "0.0.0.16");
        const hashed = routerIdFor({ ipv6: "2001:db8:1::" });
        assert.notEqual(hashed, "0.0.0.0");
        assert.equal(routerIdFor({ ipv6: "2001:db8:1::" }), hashed, "deterministic");
        assert.notEqual(routerIdFor({ ipv6: "2001:db8:2::" }), hashed);
    });

    test("the state include is one define line per state", () => {
        assert.match(renderBirdStateInclude(0), /^define ANYCAST_STATE = 0;/);
        assert.match(renderBirdStateInclude(2), /^define ANYCAST_STATE = 2;/);
        assert.throws(() => renderBirdStateInclude(3 as AnycastState));
    });
});

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

            // The PoP config as rendered, with only the include path moved into the scratch
            // directory, plus static routes the export filter must NOT let out: a more-specific
            // of the anycast prefix and a foreign /48.
            const stateFile = path.join(dir, "anycast-state.conf");
            const setState = (state: AnycastState) => fs.writeFileSync(stateFile, renderBirdStateInclude(state));
            setState(0);
            const popConf = path.join(dir, "pop.conf");
            fs.writeFileSync(popConf, renderBirdConfig(input, { stateFile }) + [
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
