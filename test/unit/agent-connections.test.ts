/**
 * The agent's abort of the connections to a path that went down (agent/connections.ts), with the
 * real `ss -K` on loopback: a kept-alive connection to that address and port is aborted, one to
 * another port is left alone, and a failing `ss` is reported once, not thrown.
 */
import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as net from "node:net";
import { abortArgs, ConnectionAborter } from "../../agent/connections";

const isRoot = process.getuid?.() === 0;

async function listen(): Promise<{ server: net.Server; port: number }> {
    const server = net.createServer((socket) => socket.on("error", () => undefined));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { server, port: (server.address() as net.AddressInfo).port };
}

async function connect(port: number): Promise<net.Socket> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    return socket;
}

describe("the agent's connection abort", () => {
    const servers: net.Server[] = [];
    const sockets: net.Socket[] = [];
    after(() => {
        for (const s of sockets) s.destroy();
        for (const s of servers) s.close();
    });

    it("asks ss for the TCP connections to exactly that address and port", () => {
        assert.deepEqual(abortArgs("[fd00:a:1::1]:8080"), ["-K", "-t", "dst", "[fd00:a:1::1]:8080"]);
        assert.deepEqual(abortArgs("10.77.0.1:8080"), ["-K", "-t", "dst", "10.77.0.1:8080"]);
    });

    it("aborts a kept-alive connection to the path that went down, and no other", { skip: isRoot ? false : "needs root (CAP_NET_ADMIN for ss -K): CI runs it" }, async () => {
        const down = await listen();
        const up = await listen();
        servers.push(down.server, up.server);
        const victim = await connect(down.port);
        const bystander = await connect(up.port);
        sockets.push(victim, bystander);
        const closed = new Promise<string>((resolve) => victim.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message)).once("close", () => resolve("closed")));
        const logs: string[] = [];
        const n = await new ConnectionAborter((l) => logs.push(l)).abort([`127.0.0.1:${down.port}`]);
        // Only the client's end matches `dst 127.0.0.1:<port>`: the server's end has that port as its source.
        assert.ok(n >= 1, `aborted ${n}; ${logs.join("; ")}`);
        assert.match(await closed, /ECONNABORTED|ECONNRESET|closed/);
        assert.equal(bystander.destroyed, false, "the connection to a path still up stays");
        assert.deepEqual(logs, []);
    });

    it("reports a failing ss once, as a line, and resolves with none aborted", async () => {
        const logs: string[] = [];
        const aborter = new ConnectionAborter((l) => logs.push(l));
        // Not an address ss can filter on: it fails, as it would on a kernel without SOCK_DESTROY.
        assert.equal(await aborter.abort(["not-an-address:x"]), 0);
        assert.equal(await aborter.abort(["not-an-address:x"]), 0);
        assert.equal(logs.length, 1, logs.join("\n"));
        assert.match(logs[0], /^cannot abort the connections to not-an-address:x: .* \(nginx waits for its timeouts instead\)$/);
    });
});
