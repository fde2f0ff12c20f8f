/**
 * The health agent's HTTP checks: the response reader (pure, on bytes split every way a socket
 * may split them) and the check client against servers on loopback (node's own server, and raw
 * sockets for what node's server would not send). Outcomes only: no test here times anything.
 */
import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { ReadResult, ResponseReader } from "../../components/core/health/http-response";
import { CheckClient, parseTarget } from "../../agent/http";

/** Feeds the text in pieces of `step` bytes; the first result that is not "more" (or the end's). */
function read(text: string, step: number, opts = { keepBody: true, maxBodyBytes: 1024 }, close = false): ReadResult {
    const reader = new ResponseReader(opts);
    const bytes = Buffer.from(text, "latin1");
    for (let i = 0; i < bytes.length; i += step) {
        const r = reader.feed(bytes.subarray(i, i + step));
        if (r.kind !== "more") return r;
    }
    return close ? reader.end() : { kind: "more" };
}

function done(r: ReadResult): { status: number; keepAlive: boolean; body?: string } {
    assert.equal(r.kind, "done", JSON.stringify(r));
    const { response } = r as Extract<ReadResult, { kind: "done" }>;
    return { status: response.status, keepAlive: response.keepAlive, ...(response.body ? { body: response.body.toString("latin1") } : {}) };
}

describe("the agent's HTTP response reader", () => {
    for (const step of [1, 2, 7, 1000]) {
        it(`reads Content-Length, chunked and close-delimited bodies, in pieces of ${step} byte(s)`, () => {
            assert.deepEqual(done(read("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello", step)), { status: 200, keepAlive: true, body: "hello" });
            assert.deepEqual(done(read("HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Trailer: y\r\n\r\n", step)),
                { status: 503, keepAlive: true, body: "wikipedia" });
            assert.deepEqual(done(read("HTTP/1.0 200 OK\r\n\r\nuntil the end", step, undefined, true)), { status: 200, keepAlive: false, body: "until the end" });
            assert.deepEqual(done(read("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", step)), { status: 204, keepAlive: true, body: "" });
        });
    }

    it("keeps the connection only where HTTP/1.1 allows it", () => {
        assert.equal(done(read("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 100)).keepAlive, false);
        assert.equal(done(read("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 100)).keepAlive, true);
        assert.equal(done(read("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 100)).keepAlive, false);
        assert.equal(done(read("HTTP/1.1 200 OK\r\nconnection: Keep-Alive, Close\r\ncontent-length: 0\r\n\r\n", 100)).keepAlive, false);
    });

    it("does not keep a body it was not asked for, and reads it to its end all the same", () => {
        const r = done(read("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 2, { keepBody: false, maxBodyBytes: 1 }));
        assert.deepEqual(r, { status: 200, keepAlive: true });
    });

    it("says what is wrong with an answer it cannot read, never throws", () => {
        const error = (text: string, close = false) => {
            const r = read(text, 3, undefined, close);
            assert.equal(r.kind, "error", JSON.stringify(r));
            return (r as Extract<ReadResult, { kind: "error" }>).detail;
        };
        assert.match(error("SSH-2.0-OpenSSH_9.2\r\n\r\n"), /not an HTTP\/1.x answer: "SSH-2.0/);
        assert.match(error("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), /malformed Content-Length/);
        assert.match(error("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), /malformed Content-Length/);
        assert.match(error("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), /malformed header line/);
        assert.match(error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), /transfer coding/);
        assert.match(error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), /malformed chunk size/);
        assert.match(error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY"), /chunk without its CRLF/);
        assert.match(error("HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + "a".repeat(2000)), /body over 1024 bytes/);
        assert.match(error("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true), /connection closed within the body/);
        assert.match(error("", true), /connection closed before an answer/);
        assert.match(error(`HTTP/1.1 200 OK\r\nX: ${"a".repeat(20000)}`), /no end of the header/);
    });
});

/** A loopback server whose handler is the test's; closed after the suite. */
async function serve(handler: http.RequestListener): Promise<{ url: string; server: http.Server; connections: () => number }> {
    let connections = 0;
    const server = http.createServer(handler);
    server.on("connection", () => connections++);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    return { url: `http://127.0.0.1:${port}/healthz`, server, connections: () => connections };
}

async function rawServer(answer: (socket: net.Socket, request: string) => void): Promise<{ url: string; server: net.Server }> {
    const server = net.createServer((socket) => {
        let seen = "";
        socket.on("data", (d) => {
            seen += d.toString("latin1");
            const end = seen.indexOf("\r\n\r\n");
            if (end >= 0) {
                const request = seen.slice(0, end);
                seen = seen.slice(end + 4);
                answer(socket, request);
            }
        });
        socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    return { url: `http://127.0.0.1:${port}/status`, server };
}

describe("the agent's check client, on loopback", () => {
    const servers: Array<http.Server | net.Server> = [];
    const clients: CheckClient[] = [];
    const client = (url: string, opts?: { maxReuseMs?: number }) => {
        const c = new CheckClient(parseTarget(url), opts);
        clients.push(c);
        return c;
    };
    after(() => {
        for (const c of clients) c.close();
        for (const s of servers) s.close();
    });

    it("asks with a Host field and GET, keeps one connection across checks, and reads the body when asked", async () => {
        const seen: string[] = [];
        const s = await serve((req, res) => {
            seen.push(`${req.method} ${req.url} ${req.headers.host} ${req.headers["user-agent"]}`);
            res.end(JSON.stringify({ n: seen.length }));
        });
        servers.push(s.server);
        const c = client(s.url, { maxReuseMs: 60_000 });
        for (let i = 1; i <= 5; i++) {
            const a = await c.check({ timeoutMs: 30_000, body: true });
            assert.equal(a.ok, true, a.detail);
            assert.equal(a.status, 200);
            assert.equal(a.body, JSON.stringify({ n: i }));
            assert.ok(a.connectUs > 0);
        }
        assert.equal(s.connections(), 1, "one kept-alive connection for five checks");
        assert.equal(seen[0], `GET /healthz ${new URL(s.url).host} anycast-health`);
    });

    it("a connection older than maxReuseMs is closed after its check: the next one connects anew", async () => {
        const s = await serve((_req, res) => res.end("ok"));
        servers.push(s.server);
        const c = client(s.url, { maxReuseMs: 0 });
        for (let i = 0; i < 3; i++) assert.equal((await c.check({ timeoutMs: 30_000 })).ok, true);
        assert.equal(s.connections(), 3);
    });

    it("a server that closes its idle kept-alive connection costs no failed check: sent again on a new one", async () => {
        const s = await serve((_req, res) => res.end("ok"));
        s.server.keepAliveTimeout = 1;
        servers.push(s.server);
        const c = client(s.url, { maxReuseMs: 60_000 });
        for (let i = 0; i < 4; i++) {
            const a = await c.check({ timeoutMs: 30_000 });
            assert.equal(a.ok, true, `check ${i + 1}: ${a.detail}`);
            // Long past the server's keep-alive timeout: it has closed the connection by now.
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
    });

    it("a status outside 2xx fails the check unless accept says otherwise; a chunked body is read", async () => {
        const s = await rawServer((socket) => socket.write("HTTP/1.1 503 Nope\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
        servers.push(s.server);
        const c = client(s.url);
        const a = await c.check({ timeoutMs: 30_000, body: true });
        assert.deepEqual([a.ok, a.status, a.detail, a.body], [false, 503, "http 503", "abc"]);
        assert.equal((await c.check({ timeoutMs: 30_000, accept: (st) => st === 503 })).ok, true);
    });

    it("a server that never answers fails the check at its timeout; one that refuses fails it at once; neither throws", async () => {
        const s = await rawServer(() => undefined);
        servers.push(s.server);
        const a = await client(s.url).check({ timeoutMs: 200 });
        assert.deepEqual([a.ok, a.detail], [false, "timeout after 200 ms"]);
        const closed = await rawServer(() => undefined);
        const port = (closed.server.address() as net.AddressInfo).port;
        await new Promise<void>((resolve) => closed.server.close(() => resolve()));
        const refused = await client(`http://127.0.0.1:${port}/`).check({ timeoutMs: 30_000 });
        assert.deepEqual([refused.ok, refused.detail, refused.connectUs], [false, "connect ECONNREFUSED", 0]);
    });

    it("an answer that is not HTTP, or cut short, fails the check with what was wrong", async () => {
        const s = await rawServer((socket) => socket.end("SSH-2.0-OpenSSH_9.2\r\n\r\n"));
        servers.push(s.server);
        const a = await client(s.url).check({ timeoutMs: 30_000 });
        assert.equal(a.ok, false);
        assert.match(a.detail, /not an HTTP\/1.x answer/);
        const cut = await rawServer((socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"));
        servers.push(cut.server);
        const b = await client(cut.url).check({ timeoutMs: 30_000, body: true });
        assert.deepEqual([b.ok, b.detail], [false, "connection closed within the body"]);
    });
});
