/**
 * anycast-net, the PoP's network setup script, run in a network namespace: idempotent, the
 * anycast address on lo, the neighbour routes pinned behind the default gateways, the state file
 * seeded once; and a loud failure without a default route. Its goldens, content and shellcheck
 * are in test/render/netsetup.test.ts.
 */
import { after, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { renderNetSetup } from "../../components/core/render/netsetup";
import { renderBirdStateInclude } from "../../components/core/render/bird";
import { dualStack, labSpec, popRenderInput, prodSpec } from "../helpers/fixtures";
import {
    createNetns, deleteNetns, inNetns, inNetnsOk, needRoot, needTools, runOk, tempDir, uniqueNetnsName, writeExecutable,
} from "../helpers/tools";

const scratch = tempDir("netsetup");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const writeScript = (name: string, text: string): string => writeExecutable(scratch, name, text);

describe("anycast-net in a network namespace", () => {
    test("runs twice (idempotent): address on lo, neighbour routes via the default gateways, state file seeded once", (t) => {
        if (!needRoot(t, "network namespaces")) return;
        if (!needTools(t, "ip", "bash", "sysctl", "awk")) return;
        const pop = uniqueNetnsName("npop");
        const gw = uniqueNetnsName("ngw");
        const dir = tempDir("netsetup-live");
        try {
            createNetns(pop);
            createNetns(gw);
            runOk("ip", ["link", "add", "eth0", "netns", pop, "type", "veth", "peer", "name", "eth0", "netns", gw]);
            inNetnsOk(pop, "ip", ["link", "set", "eth0", "up"]);
            inNetnsOk(gw, "ip", ["link", "set", "eth0", "up"]);
            inNetnsOk(gw, "ip", ["-6", "addr", "add", "fe80::1/64", "dev", "eth0", "nodad"]);
            // Like Vultr: the IPv6 default route points at a link-local gateway.
            inNetnsOk(pop, "ip", ["-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"]);
            inNetnsOk(pop, "ip", ["-4", "addr", "add", "192.0.2.11/24", "dev", "eth0"]);
            inNetnsOk(pop, "ip", ["-4", "route", "add", "default", "via", "192.0.2.1", "dev", "eth0"]);

            const input = dualStack(popRenderInput(prodSpec(), "lax"));
            const script = writeScript("live.sh", renderNetSetup(input));
            const stateFile = path.join(dir, "bird", "anycast-state.conf");
            const env = { ...process.env, ANYCAST_STATE_FILE: stateFile, DEFAULT_ROUTE_WAIT: "3" };
            for (let i = 0; i < 2; i++) {
                const result = inNetns(pop, "bash", [script], { env });
                assert.equal(result.status, 0, `run ${i + 1}:\n${result.stdout}${result.stderr}`);
                if (i === 0) {
                    assert.equal(fs.readFileSync(stateFile, "utf8"), renderBirdStateInclude(0));
                    // The agent's later decision must survive a re-run.
                    fs.writeFileSync(stateFile, renderBirdStateInclude(2));
                }
            }
            const lo = inNetnsOk(pop, "ip", ["-6", "addr", "show", "dev", "lo"]);
            assert.equal(lo.match(/inet6 2001:db8:100::1\/128/g)?.length, 1, lo);
            assert.match(inNetnsOk(pop, "ip", ["-6", "route", "show", "2001:19f0:ffff::1/128"]), /^2001:19f0:ffff::1 via fe80::1 dev eth0/m);
            assert.match(inNetnsOk(pop, "ip", ["-4", "route", "show", "169.254.169.254/32"]), /^169\.254\.169\.254 via 192\.0\.2\.1 dev eth0/m);
            assert.equal(fs.readFileSync(stateFile, "utf8"), renderBirdStateInclude(2));
            // The mesh guard: one unreachable route (not two after the second run), and a tunnel's
            // connected route for the same prefix wins over it while it exists.
            assert.match(inNetnsOk(pop, "ip", ["-4", "route", "show", "10.77.0.0/24"]), /^unreachable 10\.77\.0\.0\/24 metric 4000 *$/m);
            assert.match(inNetns(pop, "ip", ["-4", "route", "get", "10.77.0.1"]).stderr, /No route to host|unreachable/i);
            inNetnsOk(pop, "ip", ["link", "add", "wg0", "type", "veth", "peer", "name", "wg0-peer"]);
            inNetnsOk(pop, "ip", ["-4", "addr", "add", "10.77.0.2/24", "dev", "wg0"]);
            inNetnsOk(pop, "ip", ["link", "set", "wg0", "up"]);
            inNetnsOk(pop, "ip", ["link", "set", "wg0-peer", "up"]);
            assert.match(inNetnsOk(pop, "ip", ["-4", "route", "get", "10.77.0.1"]), /dev wg0/);
            inNetnsOk(pop, "ip", ["link", "del", "wg0"]);
            assert.match(inNetns(pop, "ip", ["-4", "route", "get", "10.77.0.1"]).stderr, /No route to host|unreachable/i);
            for (const key of ["net.ipv6.conf.all.accept_ra", "net.ipv6.conf.eth0.accept_ra"]) {
                assert.equal(inNetnsOk(pop, "sysctl", ["-n", key]).trim(), "2", key);
            }
            assert.equal(fs.readdirSync(path.dirname(stateFile)).length, 1, "no temp files left behind");
            // At boot the surviving decision is reset: nothing is announced before the agent checks.
            const boot = inNetns(pop, "bash", [script, "--boot"], { env });
            assert.equal(boot.status, 0, `${boot.stdout}${boot.stderr}`);
            assert.equal(fs.readFileSync(stateFile, "utf8"), renderBirdStateInclude(0));
            // With multihop BFD (the lab stack) the pinned routes carry hop limit 255, which the
            // kernel applies to BFD's packets (BIRD leaves their TTL to the system).
            const bfd = writeScript("live-bfd.sh", renderNetSetup(dualStack(popRenderInput(labSpec(), "lax"))));
            const withBfd = inNetns(pop, "bash", [bfd], { env });
            assert.equal(withBfd.status, 0, `${withBfd.stdout}${withBfd.stderr}`);
            assert.match(inNetnsOk(pop, "ip", ["-6", "route", "show", "2001:19f0:ffff::1/128"]), /via fe80::1 dev eth0 .*hoplimit 255/);
            assert.match(inNetnsOk(pop, "ip", ["-4", "route", "show", "169.254.169.254/32"]), /via 192\.0\.2\.1 dev eth0 .*hoplimit 255/);
        } finally {
            deleteNetns(pop);
            deleteNetns(gw);
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    test("fails loudly when there is no default route to pin the neighbour behind", (t) => {
        if (!needRoot(t, "network namespaces")) return;
        if (!needTools(t, "ip", "bash", "sysctl", "awk")) return;
        const ns = uniqueNetnsName("nnone");
        const dir = tempDir("netsetup-none");
        try {
            createNetns(ns);
            const script = writeScript("none.sh", renderNetSetup(popRenderInput(prodSpec(), "lax")));
            const result = inNetns(ns, "bash", [script], {
                env: { ...process.env, ANYCAST_STATE_FILE: path.join(dir, "state.conf"), DEFAULT_ROUTE_WAIT: "1" },
            });
            assert.notEqual(result.status, 0);
            assert.match(result.stderr, /no IPv6 default route after 1s/);
        } finally {
            deleteNetns(ns);
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
