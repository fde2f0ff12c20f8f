import { after, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
    MeshMember, MeshPlanOptions, planWireGuardMesh, renderWireGuardConfig, wgPublicKeyFromPrivate,
} from "../../components/core/render/wireguard";
import { IpAddress, IpPrefix } from "../../components/core/addressing";
import { AnycastSpec, WireGuardNode } from "../../components/core/model";
import { assertGolden } from "../helpers/golden";
import { labSpec, prodSpec, TEST_HOST_ADDRESSES } from "../helpers/fixtures";
import {
    createNetns, curlFrom, deleteNetns, inNetns, startHttpServer, inNetnsOk, needRoot, needTools, runOk, tempDir, uniqueNetnsName, waitFor,
} from "../helpers/tools";

const scratch = tempDir("wg");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A fixed private key per name, so golden files are stable (test keys only, never deployed). */
function testPrivateKey(name: string): string {
    return createHash("sha256").update(`pulumi-anycast test key ${name}`).digest().toString("base64");
}

function membersOf(spec: AnycastSpec): MeshMember[] {
    return [
        { name: spec.origin.name, meshAddress: spec.origin.meshAddress },
        ...spec.pops.map((p) => ({ name: p.name, meshAddress: p.meshAddress })),
    ].map((m) => ({
        ...m,
        endpoint: TEST_HOST_ADDRESSES[m.name]?.ipv6 ?? "2001:db8:ff99::10",
        publicKey: wgPublicKeyFromPrivate(testPrivateKey(m.name)),
    }));
}

function optionsOf(spec: AnycastSpec, topology: "full" | "hub" = spec.mesh.topology): MeshPlanOptions {
    return {
        cidr: spec.mesh.cidr, port: spec.mesh.port, topology, hubName: spec.origin.name, mtu: spec.mesh.mtu,
        persistentKeepalive: spec.mesh.persistentKeepalive,
    };
}

function renderedNodes(spec: AnycastSpec, topology?: "full" | "hub"): Record<string, string> {
    const plan = planWireGuardMesh(membersOf(spec), optionsOf(spec, topology));
    return Object.fromEntries(Object.entries(plan).map(([name, node]) =>
        [name, renderWireGuardConfig({ ...node, privateKey: testPrivateKey(name) })]));
}

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

describe("planWireGuardMesh", () => {
    const spec = prodSpec();

    test("full mesh: every node peers with every other, AllowedIPs = the peer's /32", () => {
        const plan = planWireGuardMesh(membersOf(spec), optionsOf(spec, "full"));
        const names = Object.keys(plan).sort();
        assert.deepEqual(names, ["ams", "lax", "origin", "sgp"]);
        for (const name of names) {
            const peers = plan[name].peers.map((p) => p.name).sort();
            assert.deepEqual(peers, names.filter((n) => n !== name));
            for (const peer of plan[name].peers) {
                const address = peer.name === "origin" ? spec.origin.meshAddress : spec.pops.find((p) => p.name === peer.name)!.meshAddress;
                assert.deepEqual(peer.allowedIps, [`${address}/32`]);
            }
        }
        assert.equal(plan.lax.address, "10.77.0.2/24");
        assert.equal(plan.origin.address, "10.77.0.1/24");
        assert.equal(plan.lax.peers.find((p) => p.name === "origin")!.endpoint, "[2001:db8:beef::10]:51820");
    });

    test("IPv6 mesh: AllowedIPs are /128", () => {
        const lab = labSpec();
        const plan = planWireGuardMesh(membersOf(lab), optionsOf(lab, "full"));
        assert.match(plan.lax.address, /^fd00:a:1::\d+\/64$/);
        for (const peer of plan.lax.peers) assert.match(peer.allowedIps[0], /^fd00:a:1::\d+\/128$/);
    });

    test("hub: the hub peers with all, spokes only with the hub, routing the whole mesh to it", () => {
        const plan = planWireGuardMesh(membersOf(spec), optionsOf(spec, "hub"));
        assert.deepEqual(plan.origin.peers.map((p) => p.name).sort(), ["ams", "lax", "sgp"]);
        for (const spoke of ["lax", "ams", "sgp"]) {
            assert.equal(plan[spoke].peers.length, 1);
            assert.equal(plan[spoke].peers[0].name, "origin");
            assert.deepEqual(plan[spoke].peers[0].allowedIps, ["10.77.0.0/24"]);
        }
        assert.deepEqual(plan.origin.peers.find((p) => p.name === "lax")!.allowedIps, ["10.77.0.2/32"]);
    });

    test("rejects a missing hub, duplicates, and addresses outside the CIDR", () => {
        const members = membersOf(spec);
        assert.throws(() => planWireGuardMesh(members, { ...optionsOf(spec, "hub"), hubName: "nope" }), /hubName/);
        assert.throws(() => planWireGuardMesh([...members, members[0]], optionsOf(spec)), /twice/);
        assert.throws(() => planWireGuardMesh([{ ...members[0], meshAddress: IpAddress.parse("10.78.0.1") }], optionsOf(spec)), /inside/);
        assert.throws(() => planWireGuardMesh([{ ...members[0], endpoint: "example.com" }], optionsOf(spec)), /not an IP/);
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

    test("wg-quick strip parses every rendered file and wg setconf loads it into a wireguard-go device", (t) => {
        if (!needRoot(t, "network namespaces and TUN devices")) return;
        if (!needTools(t, "wg", "wg-quick", "wireguard-go", "ip")) return;
        const ns = uniqueNetnsName("wg");
        // The UAPI socket lives in the shared /var/run/wireguard, so the name must be unique machine-wide.
        const ifname = `wgt${process.pid % 1_000_000}`;
        const configs = { ...renderedNodes(prodSpec()), "lab-lax": renderedNodes(labSpec()).lax, "hub-sgp": renderedNodes(prodSpec(), "hub").sgp };
        let daemon: ReturnType<typeof spawn> | undefined;
        try {
            createNetns(ns);
            daemon = spawn("ip", ["netns", "exec", ns, "wireguard-go", ifname], {
                env: { ...process.env, WG_PROCESS_FOREGROUND: "1" }, stdio: "ignore",
            });
            const sock = `/var/run/wireguard/${ifname}.sock`;
            const deadline = Date.now() + 10_000;
            while (!fs.existsSync(sock)) {
                if (Date.now() > deadline) throw new Error(`wireguard-go did not create ${sock}`);
                runOk("sleep", ["0.05"]);
            }
            for (const [name, text] of Object.entries(configs)) {
                // wg-quick wants <interface>.conf.
                const file = path.join(scratch, `${ifname}.conf`);
                fs.writeFileSync(file, text, { mode: 0o600 });
                const stripped = runOk("wg-quick", ["strip", file]);
                assert.ok(!/^(Address|MTU)\s*=/m.test(stripped), "strip removes the wg-quick-only keys");
                const strippedFile = path.join(scratch, `${name}.stripped`);
                fs.writeFileSync(strippedFile, stripped, { mode: 0o600 });
                inNetnsOk(ns, "wg", ["setconf", ifname, strippedFile]);
                const dump = inNetnsOk(ns, "wg", ["show", ifname, "dump"]).trim().split("\n");
                const expectedPeers = text.match(/\[Peer\]/g)?.length ?? 0;
                assert.equal(dump.length - 1, expectedPeers, `${name}: peers loaded`);
                // The device stores the clamped private key, so compare what it derives: the public key.
                const [, devicePublicKey, listenPort] = dump[0].split("\t");
                assert.equal(devicePublicKey, wgPublicKeyFromPrivate(/PrivateKey = (\S+)/.exec(text)![1]), `${name}: private key loaded`);
                assert.equal(listenPort, "51820");
                for (const line of dump.slice(1)) {
                    const [publicKey, , endpoint, allowedIps, , , , keepalive] = line.split("\t");
                    const block = text.split("[Peer]").find((b) => b.includes(publicKey));
                    assert.ok(block, `${name}: peer ${publicKey} comes from the file`);
                    assert.ok(block.includes(`Endpoint = ${endpoint}`), `${name}: endpoint ${endpoint}`);
                    assert.ok(block.includes(`AllowedIPs = ${allowedIps.split(",").join(", ")}`), `${name}: allowed ${allowedIps}`);
                    assert.equal(keepalive, "25");
                }
            }
        } finally {
            daemon?.kill("SIGTERM");
            inNetns(ns, "ip", ["link", "del", ifname]);
            deleteNetns(ns);
        }
    });

    test("live: two rendered nodes come up with wg-quick (wireguard-go) and carry HTTP across the mesh", async (t) => {
        if (!needRoot(t, "network namespaces and TUN devices")) return;
        if (!needTools(t, "wg", "wg-quick", "wireguard-go", "ip", "curl")) return;
        const nsA = uniqueNetnsName("wga");
        const nsB = uniqueNetnsName("wgb");
        const tag = process.pid % 100_000;
        const ifA = `wga${tag}`;
        const ifB = `wgb${tag}`;
        const dir = tempDir("wg-live");
        let server: ChildProcess | undefined;
        try {
            createNetns(nsA);
            createNetns(nsB);
            runOk("ip", ["link", "add", "eth0", "netns", nsA, "type", "veth", "peer", "name", "eth0", "netns", nsB]);
            inNetnsOk(nsA, "ip", ["-6", "addr", "add", "2001:db8:77::1/64", "dev", "eth0", "nodad"]);
            inNetnsOk(nsB, "ip", ["-6", "addr", "add", "2001:db8:77::2/64", "dev", "eth0", "nodad"]);
            inNetnsOk(nsA, "ip", ["link", "set", "eth0", "up"]);
            inNetnsOk(nsB, "ip", ["link", "set", "eth0", "up"]);
            const keys = { origin: testPrivateKey("origin"), lax: testPrivateKey("lax") };
            const plan = planWireGuardMesh([
                { name: "origin", meshAddress: IpAddress.parse("10.77.0.1"), endpoint: "2001:db8:77::1", publicKey: wgPublicKeyFromPrivate(keys.origin) },
                { name: "lax", meshAddress: IpAddress.parse("10.77.0.2"), endpoint: "2001:db8:77::2", publicKey: wgPublicKeyFromPrivate(keys.lax) },
            ], { cidr: IpPrefix.parse("10.77.0.0/24"), port: 51820, topology: "full", mtu: 1420, persistentKeepalive: 25 });
            const fileA = path.join(dir, `${ifA}.conf`);
            const fileB = path.join(dir, `${ifB}.conf`);
            fs.writeFileSync(fileA, renderWireGuardConfig({ ...plan.origin, privateKey: keys.origin }), { mode: 0o600 });
            fs.writeFileSync(fileB, renderWireGuardConfig({ ...plan.lax, privateKey: keys.lax }), { mode: 0o600 });
            // No kernel module here: wg-quick falls back to wireguard-go by itself.
            inNetnsOk(nsA, "wg-quick", ["up", fileA]);
            inNetnsOk(nsB, "wg-quick", ["up", fileB]);
            assert.match(inNetnsOk(nsA, "ip", ["link", "show", ifA]), /mtu 1420/);
            // HTTP to the peer's mesh address only works through the tunnel (no other route to 10.77.0.0/24).
            server = await startHttpServer(nsB, "10.77.0.2", 8080, "over-the-mesh");
            // Generous: on a loaded CI machine (the lab boots alongside) wireguard-go can be slow to
            // handshake; say why when it does not work at all.
            const body = await waitFor("HTTP over the mesh", 20_000, () => curlFrom(nsA, "http://10.77.0.2:8080/")).catch((e: Error) => {
                const curl = inNetns(nsA, "curl", ["-sS", "-g", "--max-time", "2", "http://10.77.0.2:8080/"]);
                throw new Error(`${e.message}\ncurl: ${curl.stderr.trim()}\n` +
                    `wg show (A): ${inNetns(nsA, "wg", ["show", ifA]).stdout}\nwg show (B): ${inNetns(nsB, "wg", ["show", ifB]).stdout}`);
            });
            assert.equal(body, "over-the-mesh");
            assert.match(inNetnsOk(nsA, "wg", ["show", ifA, "latest-handshakes"]), /\t[1-9]\d*$/m, "a handshake happened");
        } finally {
            server?.kill("SIGTERM");
            inNetns(nsA, "wg-quick", ["down", path.join(dir, `${ifA}.conf`)]);
            inNetns(nsB, "wg-quick", ["down", path.join(dir, `${ifB}.conf`)]);
            deleteNetns(nsA);
            deleteNetns(nsB);
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
