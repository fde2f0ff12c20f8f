/**
 * The WireGuard mesh: public keys as `wg pubkey` derives them, the mesh's nodes (full and hub), and
 * the rendered wg-quick files (goldens, layout). The files on wireguard-go are in
 * test/live/wireguard.test.ts.
 */
import { describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { wireGuardMeshNodes, renderWireGuardConfig, wgPublicKeyFromPrivate } from "../../components/core/render/wireguard";
import { IpAddress } from "../../components/core/addressing";
import { WireGuardNode } from "../../components/core/model";
import { assertGolden } from "../helpers/golden";
import { labSpec, prodSpec } from "../helpers/fixtures";
import { needTools, runOk } from "../helpers/tools";
import { membersOf, optionsOf, renderedNodes, testPrivateKey } from "../helpers/wireguard";

describe("wgPublicKeyFromPrivate", () => {
    test("matches `wg pubkey` for keys from `wg genkey`", (t) => {
        if (!needTools(t, "wg")) return;
        for (let i = 0; i < 5; i++) {
            const privateKey = runOk("wg", ["genkey"]).trim();
            const expected = runOk("wg", ["pubkey"], { input: privateKey + "\n" }).trim();
            assert.equal(wgPublicKeyFromPrivate(privateKey), expected);
        }
    });

    test("matches `wg pubkey` for unclamped random bytes (what RandomBytes gives)", (t) => {
        if (!needTools(t, "wg")) return;
        // All-ones bytes are the worst case for clamping: bits 0-2 and 255 set, bit 254 set.
        const privateKey = Buffer.alloc(32, 0xff).toString("base64");
        const expected = runOk("wg", ["pubkey"], { input: privateKey + "\n" }).trim();
        assert.equal(wgPublicKeyFromPrivate(privateKey), expected);
    });

    test("rejects a key that is not 32 bytes of base64", () => {
        assert.throws(() => wgPublicKeyFromPrivate("abc"), /32 bytes/);
        assert.throws(() => wgPublicKeyFromPrivate(Buffer.alloc(31).toString("base64")), /32 bytes/);
    });
});

describe("wireGuardMeshNodes", () => {
    const spec = prodSpec();

    test("full mesh: every node peers with every other, AllowedIPs = the peer's /32", () => {
        const nodes = wireGuardMeshNodes(membersOf(spec), optionsOf(spec, "full"));
        const names = Object.keys(nodes).sort();
        assert.deepEqual(names, ["ams", "lax", "origin", "sgp"]);
        for (const name of names) {
            const peers = nodes[name].peers.map((p) => p.name).sort();
            assert.deepEqual(peers, names.filter((n) => n !== name));
            for (const peer of nodes[name].peers) {
                const address = peer.name === "origin" ? spec.origin.meshAddress : spec.pops.find((p) => p.name === peer.name)!.meshAddress;
                assert.deepEqual(peer.allowedIps, [`${address}/32`]);
            }
        }
        assert.equal(nodes.lax.address, "10.77.0.2/24");
        assert.equal(nodes.origin.address, "10.77.0.1/24");
        assert.equal(nodes.lax.peers.find((p) => p.name === "origin")!.endpoint, "[2001:db8:beef::10]:51820");
    });

    test("IPv6 mesh: AllowedIPs are /128", () => {
        const lab = labSpec();
        const nodes = wireGuardMeshNodes(membersOf(lab), optionsOf(lab, "full"));
        assert.match(nodes.lax.address, /^fd00:a:1::\d+\/64$/);
        for (const peer of nodes.lax.peers) assert.match(peer.allowedIps[0], /^fd00:a:1::\d+\/128$/);
    });

    test("hub: the hub peers with all, spokes only with the hub, routing the whole mesh to it", () => {
        const nodes = wireGuardMeshNodes(membersOf(spec), optionsOf(spec, "hub"));
        assert.deepEqual(nodes.origin.peers.map((p) => p.name).sort(), ["ams", "lax", "sgp"]);
        for (const spoke of ["lax", "ams", "sgp"]) {
            assert.equal(nodes[spoke].peers.length, 1);
            assert.equal(nodes[spoke].peers[0].name, "origin");
            assert.deepEqual(nodes[spoke].peers[0].allowedIps, ["10.77.0.0/24"]);
        }
        assert.deepEqual(nodes.origin.peers.find((p) => p.name === "lax")!.allowedIps, ["10.77.0.2/32"]);
    });

    test("rejects a missing hub, duplicates, and addresses outside the CIDR", () => {
        const members = membersOf(spec);
        assert.throws(() => wireGuardMeshNodes(members, { ...optionsOf(spec, "hub"), hubName: "nope" }), /hubName/);
        assert.throws(() => wireGuardMeshNodes([...members, members[0]], optionsOf(spec)), /twice/);
        assert.throws(() => wireGuardMeshNodes([{ ...members[0], meshAddress: IpAddress.parse("10.78.0.1") }], optionsOf(spec)), /inside/);
        assert.throws(() => wireGuardMeshNodes([{ ...members[0], endpoint: "example.com" }], optionsOf(spec)), /not an IP/);
    });
});

describe("renderWireGuardConfig", () => {
    test("golden files: prod full mesh (origin, lax), prod hub spoke, lab IPv6 mesh", () => {
        const prod = renderedNodes(prodSpec());
        assertGolden("wireguard/prod-origin.conf", prod.origin);
        assertGolden("wireguard/prod-lax.conf", prod.lax);
        assertGolden("wireguard/prod-hub-sgp.conf", renderedNodes(prodSpec(), "hub").sgp);
        assertGolden("wireguard/lab-lax.conf", renderedNodes(labSpec()).lax);
    });

    test("layout: interface block, one commented [Peer] per peer, keepalive only when > 0", () => {
        const node: WireGuardNode = {
            name: "lax", privateKey: testPrivateKey("lax"), address: "10.77.0.2/24", listenPort: 51820, mtu: 1420,
            persistentKeepalive: 0,
            peers: [
                { name: "origin", publicKey: wgPublicKeyFromPrivate(testPrivateKey("origin")), endpoint: "2001:db8:beef::10", allowedIps: ["10.77.0.1/32"] },
                { name: "ams", publicKey: wgPublicKeyFromPrivate(testPrivateKey("ams")), endpoint: "192.0.2.12:51821", allowedIps: ["10.77.0.3/32"] },
            ],
        };
        const text = renderWireGuardConfig(node);
        assert.match(text, /\[Interface\]\nAddress = 10\.77\.0\.2\/24\nListenPort = 51820\nPrivateKey = \S+\nMTU = 1420\n/);
        assert.equal(text.match(/\[Peer\]/g)?.length, 2);
        assert.match(text, /# origin\n\[Peer\]\nPublicKey = \S+\nEndpoint = \[2001:db8:beef::10\]:51820\nAllowedIPs = 10\.77\.0\.1\/32\n/);
        assert.match(text, /Endpoint = 192\.0\.2\.12:51821/);
        assert.ok(!/PersistentKeepalive/.test(text));
        assert.ok(!/PostUp|DNS|Table/.test(text));
        assert.match(renderWireGuardConfig({ ...node, persistentKeepalive: 25 }), /PersistentKeepalive = 25/);
        assert.throws(() => renderWireGuardConfig({ ...node, privateKey: "nope" }), /private key/);
    });
});
