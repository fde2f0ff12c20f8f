/**
 * The PoP's bird.conf: golden files for review, its content (export filter, session, BFD,
 * communities, router id, the state include), and `bird -p` on every rendered config. The live
 * BGP session against a peer BIRD is in test/live/bird-session.test.ts.
 */
import { after, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
    AnycastState, BIRD_STATE_FILE, birdIdentifier, renderBirdConfig, renderBirdStateInclude, routerIdFor,
} from "../../components/core/render/bird";
import { PopRenderInput } from "../../components/core/model";
import { assertGolden } from "../helpers/golden";
import { dualStack, labSpec, popRenderInput, prodSpec, withAgentPaths } from "../helpers/fixtures";
import { needTools, run, tempDir } from "../helpers/tools";

const scratch = tempDir("bird");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Write a rendered config plus a state include beside it and run `bird -p` on the pair. */
function birdParse(name: string, input: PopRenderInput, state: AnycastState = 0): { status: number | null; output: string } {
    const stateFile = path.join(scratch, `${name}.state.conf`);
    fs.writeFileSync(stateFile, renderBirdStateInclude(state));
    const conf = path.join(scratch, `${name}.conf`);
    fs.writeFileSync(conf, renderBirdConfig(input, withAgentPaths(input, { stateFile })));
    const result = run("bird", ["-p", "-c", conf]);
    return { status: result.status, output: result.stdout + result.stderr };
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
        const lax = popRenderInput(prodSpec(), "lax");
        fs.writeFileSync(conf, renderBirdConfig(lax, withAgentPaths(lax, { stateFile: path.join(scratch, "nonexistent.conf") })));
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
