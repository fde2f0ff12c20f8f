/**
 * anycast-net, the PoP's network setup script: golden files, its content (neighbour routes, the
 * mesh guard, environment overrides) and shellcheck. Run in a network namespace in
 * test/live/netsetup.test.ts.
 */
import { after, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { renderNetSetup } from "../../components/core/render/netsetup";
import { IpPrefix } from "../../components/core/addressing";
import { assertGolden } from "../helpers/golden";
import { dualStack, labSpec, popRenderInput, prodSpec } from "../helpers/fixtures";
import { needTools, run, tempDir, writeExecutable } from "../helpers/tools";

const scratch = tempDir("netsetup");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const writeScript = (name: string, text: string): string => writeExecutable(scratch, name, text);

describe("renderNetSetup", () => {
    test("golden files", () => {
        assertGolden("netsetup/prod-lax.sh", renderNetSetup(popRenderInput(prodSpec(), "lax")));
        assertGolden("netsetup/prod-lax-dualstack.sh", renderNetSetup(dualStack(popRenderInput(prodSpec(), "lax"))));
    });

    test("does not depend on the host's own addresses (the cloud-init copy is rendered before they exist)", () => {
        const input = popRenderInput(prodSpec(), "lax");
        assert.equal(renderNetSetup({ ...input, host: { ipv6: "::" } }), renderNetSetup(input));
    });

    test("static routes follow bgp.staticRouteToNeighbor and the IPv4 prefix", () => {
        const input = popRenderInput(prodSpec(), "lax");
        const v6only = renderNetSetup(input);
        assert.match(v6only, /ip -6 route replace "\$BGP_NEIGHBOR\/128" via "\$via6" dev "\$dev6"/);
        assert.match(v6only, /BGP_NEIGHBOR="\$\{BGP_NEIGHBOR:-2001:19f0:ffff::1\}"/);
        assert.ok(!/BGP_NEIGHBOR4|ip -4 route replace "\$BGP/.test(v6only));
        assert.match(renderNetSetup(dualStack(input)), /ip -4 route replace "\$BGP_NEIGHBOR4\/32" via "\$via4" dev "\$dev4"/);
        const noRoute = { ...input, pop: { ...input.pop, bgp: { ...input.pop.bgp, staticRouteToNeighbor: false } } };
        assert.ok(!/route replace "\$BGP/.test(renderNetSetup(noRoute)));
        // The mesh guard is independent of the neighbour route, and of the mesh's family.
        assert.match(renderNetSetup(noRoute), /ip -4 route replace unreachable "\$MESH_CIDR" metric 4000/);
        const v6Mesh = renderNetSetup({ ...input, mesh: { cidr: IpPrefix.parse("fd00:a:1::/64") } });
        assert.match(v6Mesh, /MESH_CIDR="\$\{MESH_CIDR:-fd00:a:1::\/64\}"/);
        assert.match(v6Mesh, /ip -6 route replace unreachable "\$MESH_CIDR" metric 4000/);
        assert.ok(!/MESH_CIDR/.test(renderNetSetup({ ...input, mesh: undefined })), "no mesh given, no guard");
        assert.match(renderNetSetup(noRoute), /ip -6 addr replace "\$ANYCAST_ADDRESS\/128"/);
    });

    test("pins the neighbour route with hop limit 255, the same with or without BFD", () => {
        const input = popRenderInput(prodSpec(), "lax");
        const withBfd = (multihop: number, bfd: boolean) => dualStack({ ...input, pop: { ...input.pop,
            bgp: { ...input.pop.bgp, multihop, bfd: bfd ? { intervalMs: 100, multiplier: 3 } : undefined } } });
        const text = renderNetSetup(withBfd(2, true));
        assert.match(text, /ip -6 route replace "\$BGP_NEIGHBOR\/128" via "\$via6" dev "\$dev6" hoplimit 255$/m);
        assert.match(text, /ip -4 route replace "\$BGP_NEIGHBOR4\/32" via "\$via4" dev "\$dev4" hoplimit 255$/m);
        // The script is part of userData: a BFD or multihop change must not change it.
        assert.equal(renderNetSetup(withBfd(0, false)), text);
    });

    test("every path and address has an environment override defaulting to the real value", () => {
        const text = renderNetSetup(popRenderInput(prodSpec(), "lax"));
        assert.match(text, /^ANYCAST_STATE_FILE="\$\{ANYCAST_STATE_FILE:-\/etc\/bird\/anycast-state\.conf\}"$/m);
        assert.match(text, /^ANYCAST_ADDRESS="\$\{ANYCAST_ADDRESS:-2001:db8:100::1\}"$/m);
        assert.match(text, /^set -euo pipefail$/m);
    });

    test("shellcheck finds nothing", (t) => {
        if (!needTools(t, "shellcheck")) return;
        for (const [name, input] of [
            ["prod-lax", popRenderInput(prodSpec(), "lax")],
            ["prod-lax-dualstack", dualStack(popRenderInput(prodSpec(), "lax"))],
            ["lab-lax", popRenderInput(labSpec(), "lax")],
            ["lab-lax-dualstack", dualStack(popRenderInput(labSpec(), "lax"))],
        ] as const) {
            const file = writeScript(`${name}.sh`, renderNetSetup(input));
            const result = run("shellcheck", ["--shell=bash", "--severity=style", file]);
            assert.equal(result.status, 0, `shellcheck ${name}:\n${result.stdout}${result.stderr}`);
        }
    });
});
