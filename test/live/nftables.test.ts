/**
 * The rendered PoP ruleset applied in a network namespace: HTTP to the anycast address from an
 * allowed source, and silently dropped (counted by the final drop) from another. The goldens,
 * the content and `nft -c` are in test/render/nftables.test.ts.
 */
import { after, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { IpPrefix } from "../../components/core/addressing";
import { renderNftables } from "../../components/core/render/nftables";
import { labSpec } from "../helpers/fixtures";
import {
    createNetns, curlFrom, deleteNetns, inNetnsOk, needRoot, needTools, runOk, startHttpServer, tempDir,
    uniqueNetnsName, waitFor,
} from "../helpers/tools";
import { popFirewall } from "../helpers/nftables";

const scratch = tempDir("nft-live");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe("renderNftables applied (live)", () => {
    test("live: HTTP to the anycast address works from an allowed source and not from another", async (t) => {
        if (!needRoot(t, "network namespaces and nft")) return;
        if (!needTools(t, "nft", "ip", "curl")) return;
        const pop = uniqueNetnsName("fwpop");
        const client = uniqueNetnsName("fwcli");
        const servers: ChildProcess[] = [];
        const anycast = "2001:db8:100::1";
        const allowed = "2001:db8:ff00::5";
        const denied = "2001:db8:bad::5";
        try {
            createNetns(pop);
            createNetns(client);
            runOk("ip", ["link", "add", "eth0", "netns", pop, "type", "veth", "peer", "name", "eth0", "netns", client]);
            inNetnsOk(pop, "ip", ["-6", "addr", "add", "2001:db8:ff11::10/64", "dev", "eth0", "nodad"]);
            inNetnsOk(pop, "ip", ["link", "set", "eth0", "up"]);
            inNetnsOk(pop, "ip", ["-6", "addr", "add", `${anycast}/128`, "dev", "lo", "nodad"]);
            inNetnsOk(client, "ip", ["-6", "addr", "add", "2001:db8:ff11::1/64", "dev", "eth0", "nodad"]);
            inNetnsOk(client, "ip", ["link", "set", "eth0", "up"]);
            for (const source of [allowed, denied]) inNetnsOk(client, "ip", ["-6", "addr", "add", `${source}/128`, "dev", "lo", "nodad"]);
            inNetnsOk(client, "ip", ["-6", "route", "add", `${anycast}/128`, "via", "2001:db8:ff11::10"]);
            inNetnsOk(pop, "ip", ["-6", "route", "add", "2001:db8::/32", "via", "2001:db8:ff11::1"]);

            // Loaded before any traffic, so neighbour discovery itself has to pass the ruleset.
            const file = path.join(scratch, "live.conf");
            fs.writeFileSync(file, renderNftables({ ...popFirewall(labSpec(), "lax", ["2001:db8:ff00::/40"]), adminCidrs: [IpPrefix.parse("2001:db8:ffff::/64")] }));
            inNetnsOk(pop, "nft", ["-f", file]);
            servers.push(await startHttpServer(pop, "::", 80, "served-by-pop"));
            servers.push(await startHttpServer(pop, "::", 8080, "must-not-be-reachable"));

            const url = `http://[${anycast}]/`;
            const body = await waitFor("HTTP from the allowed source", 10_000, () => curlFrom(client, url, ["--interface", allowed]));
            assert.equal(body, "served-by-pop");
            const dropsBefore = dropCount(pop);
            assert.equal(curlFrom(client, url, ["--interface", denied]), undefined, "a source outside httpSources must not connect");
            assert.ok(dropCount(pop) > dropsBefore, "the final drop counted the refused SYNs");
            // Same allowed source, a port the ruleset does not open (a server listens there).
            assert.equal(curlFrom(client, `http://[${anycast}]:8080/`, ["--interface", allowed]), undefined);
            // ...and the refusals are the firewall's doing: without the ruleset both connect.
            inNetnsOk(pop, "nft", ["flush", "ruleset"]);
            assert.equal(curlFrom(client, url, ["--interface", denied]), "served-by-pop");
            assert.equal(curlFrom(client, `http://[${anycast}]:8080/`, ["--interface", allowed]), "must-not-be-reachable");
        } finally {
            for (const server of servers) server.kill("SIGTERM");
            deleteNetns(pop);
            deleteNetns(client);
        }
    });
});

/** Packets counted by the ruleset's final `counter drop`. */
function dropCount(ns: string): number {
    const chain = inNetnsOk(ns, "nft", ["list", "chain", "inet", "anycast", "input"]);
    const match = /counter packets (\d+) bytes \d+ drop/.exec(chain);
    if (!match) throw new Error(`no drop counter in:\n${chain}`);
    return Number(match[1]);
}
