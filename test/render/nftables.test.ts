/**
 * The rendered nftables rulesets (a PoP's, an origin's): golden files, what each opens to whom,
 * and `nft -c` on each, in a throwaway namespace (a tool check: nothing is applied). The ruleset
 * applied to real traffic is in test/live/nftables.test.ts.
 */
import { after, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { NftablesInput, renderNftables } from "../../components/core/render/nftables";
import { assertGolden } from "../helpers/golden";
import { labSpec, prodSpec } from "../helpers/fixtures";
import { createNetns, deleteNetns, inNetns, needRoot, needTools, tempDir, uniqueNetnsName } from "../helpers/tools";
import { FRONT_DOOR_SOURCES, originFirewall, popFirewall } from "../helpers/nftables";

const scratch = tempDir("nft");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const CASES: Array<[string, () => NftablesInput]> = [
    ["prod-lax", () => popFirewall(prodSpec(), "lax", FRONT_DOOR_SOURCES)],
    ["prod-origin", () => originFirewall(prodSpec())],
    ["lab-lax", () => popFirewall(labSpec(), "lax", labSpec().firewall.httpSources!)],
];

describe("renderNftables", () => {
    for (const [name, input] of CASES) {
        test(`golden ${name}`, () => assertGolden(`nftables/${name}.conf`, renderNftables(input())));
    }

    test("a PoP opens its relay to the mesh only, and its agent's port to the mesh and the other PoPs only", () => {
        const text = renderNftables(popFirewall(labSpec(), "lax", labSpec().firewall.httpSources!));
        assert.match(text, /^\s+iifname "wg0" ip6 saddr fd00:a:1::\/64 tcp dport 8081 accept comment "relay for the other PoPs, over the mesh only"$/m);
        assert.match(text, /^\s+iifname "wg0" ip6 saddr fd00:a:1::\/64 tcp dport 9180 accept comment "health agent status and metrics, over the mesh"$/m);
        assert.match(text, /^\s+ip6 saddr @other_pops_v6 tcp dport 9180 accept comment "health agent status for the other PoPs when the mesh fails them"$/m);
        assert.equal(text.match(/dport 9180 accept/g)?.length, 2, "the agent's port is open to nobody else");
        assert.match(renderNftables(popFirewall(prodSpec(), "lax", FRONT_DOOR_SOURCES)), /iifname "wg0" ip saddr 10\.77\.0\.0\/24 tcp dport 8081 accept/);
        assert.ok(!renderNftables(originFirewall(prodSpec())).includes("8081"), "not on an origin");
    });

    test("mixed-family lists become one interval set per family", () => {
        const text = renderNftables(popFirewall(prodSpec(), "lax", FRONT_DOOR_SOURCES));
        assert.match(text, /set http_sources_v4 \{\n\s+type ipv4_addr\n\s+flags interval\n\s+auto-merge\n\s+elements = \{ 173\.245\.48\.0\/20, 103\.21\.244\.0\/22 \}/);
        assert.match(text, /set http_sources_v6 \{\n\s+type ipv6_addr\n\s+flags interval\n\s+auto-merge\n\s+elements = \{ 2400:cb00::\/32, 2606:4700::\/32 \}/);
        assert.match(text, /set admin_sources_v4 \{[^}]*198\.51\.100\.0\/24/);
        assert.match(text, /set admin_sources_v6 \{[^}]*2001:db8:beef::\/64/);
        // IPv6-only anycast: HTTP is opened for IPv6 only, even though IPv4 sources exist.
        assert.match(text, /ip6 saddr @http_sources_v6 ip6 daddr @anycast_addresses_v6 tcp dport \{ 80, 443 \} accept/);
        assert.ok(!/ip saddr @http_sources_v4/.test(text));
    });

    test("services are opened only from their sources", () => {
        const text = renderNftables(popFirewall(prodSpec(), "lax", FRONT_DOOR_SOURCES));
        assert.match(text, /policy drop;/);
        assert.match(text, /ip6 saddr @bgp_neighbors_v6 tcp dport 179 accept/);
        assert.match(text, /ip6 saddr @mesh_peers_v6 udp dport 51820 accept/);
        assert.match(text, /counter drop/);
        assert.ok(!/dport \{ 3784/.test(text), "no BFD without bfd");
        assert.match(renderNftables({ ...popFirewall(prodSpec(), "lax", FRONT_DOOR_SOURCES), bfd: true }),
            /ip6 saddr @bgp_neighbors_v6 udp dport \{ 3784, 3785, 4784 \} accept/);
        for (const type of ["packet-too-big", "nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-advert", "echo-request"]) {
            assert.ok(new RegExp(`icmpv6 type \\{[^}]*\\b${type}\\b`).test(text), type);
        }
        assert.ok(text.indexOf("packet-too-big") < text.indexOf("ct state invalid drop"));
    });

    test("origin: its port only over wg0 from the mesh, no HTTP, no BGP", () => {
        const text = renderNftables(originFirewall(prodSpec()));
        assert.match(text, /iifname "wg0" ip saddr 10\.77\.0\.0\/24 tcp dport 8080 accept/);
        assert.ok(!/dport \{ 80, 443 \}/.test(text));
        assert.ok(!/dport 179/.test(text));
    });

    test("SSH: only from admin networks, from anywhere when the list is empty", () => {
        const input = popFirewall(prodSpec(), "lax", FRONT_DOOR_SOURCES);
        assert.ok(!/^\s+tcp dport 22 accept/m.test(renderNftables(input)));
        assert.match(renderNftables({ ...input, adminCidrs: [] }), /^\s+tcp dport 22 accept/m);
        assert.match(renderNftables({ ...input, sshPort: 2222 }), /@admin_sources_v6 tcp dport 2222 accept/);
    });

    test("a PoP without usable HTTP sources is refused instead of closed or opened silently", () => {
        assert.throws(() => renderNftables(popFirewall(prodSpec(), "lax", [])), /httpSources/);
        assert.throws(() => renderNftables(popFirewall(prodSpec(), "lax", ["173.245.48.0/20"])), /httpSources/);
        assert.throws(() => renderNftables(popFirewall(prodSpec(), "lax", ["2001:db8::1/48"])), /host bits/);
    });

    test("nft -c accepts every rendered ruleset", (t) => {
        if (!needRoot(t, "nft -c needs CAP_NET_ADMIN to talk netlink")) return;
        if (!needTools(t, "nft", "ip")) return;
        // Checked inside a throwaway namespace, so not even a parse-time side effect can reach the host.
        const ns = uniqueNetnsName("nftc");
        try {
            createNetns(ns);
            const all: Array<[string, NftablesInput]> = [
                ...CASES.map(([n, f]) => [n, f()] as [string, NftablesInput]),
                ["prod-lax-bfd-open-ssh", { ...popFirewall(prodSpec(), "lax", FRONT_DOOR_SOURCES), bfd: true, adminCidrs: [] }],
                ["lab-origin", originFirewall(labSpec())],
                ["overlapping-sources", popFirewall(prodSpec(), "lax", ["2400:cb00::/32", "2400:cb00:1::/48", "2400:cb00::1"])],
            ];
            for (const [name, input] of all) {
                const file = path.join(scratch, `${name}.conf`);
                fs.writeFileSync(file, renderNftables(input));
                const result = inNetns(ns, "nft", ["-c", "-f", file]);
                assert.equal(result.status, 0, `nft -c ${name}:\n${result.stdout}${result.stderr}`);
            }
            const broken = path.join(scratch, "broken.conf");
            fs.writeFileSync(broken, renderNftables(CASES[0][1]()).replace("tcp dport 179", "tcp dport 179 179"));
            assert.notEqual(inNetns(ns, "nft", ["-c", "-f", broken]).status, 0, "nft -c rejects a broken file");
        } finally {
            deleteNetns(ns);
        }
    });
});
