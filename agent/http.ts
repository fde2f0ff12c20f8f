/**
 * One HTTP check, in process, with a timeout over the whole exchange. Checks run every round, so
 * they reuse a kept-alive connection (HttpCheckOptions.agent) for up to a second: ten checks a
 * second would otherwise open and close ten connections each. A dead origin, a frozen one and a
 * silently cut tunnel fail a reused connection as they fail a new one (reset, or the timeout);
 * one that stops accepting new connections is seen within the second. The round-trip sample is
 * the connect time on a new connection (as curl's time_connect was), the time to the answer on a
 * reused one.
 */
import * as http from "node:http";

export interface HttpAnswer {
    ok: boolean;
    status?: number;
    /** TCP connect time, µs (0 when there was no connection). */
    connectUs: number;
    /** What the check saw, for logs and the status: "http 200", "timeout after 300 ms", "connect ECONNREFUSED". */
    detail: string;
    body?: string;
}

export interface HttpCheckOptions {
    timeoutMs: number;
    /** Which statuses count as working (default 2xx). */
    accept?: (status: number) => boolean;
    /** Keep the body (up to maxBodyBytes), e.g. a peer's status. */
    body?: boolean;
    maxBodyBytes?: number;
    /** The local address to send from (the proxy check comes from the anycast address, as nginx's health endpoint wants). */
    localAddress?: string;
    /** A keep-alive agent to reuse connections with; default a fresh connection per check. */
    agent?: http.Agent;
    /** With an agent: a connection older than this is closed after its check (default 1000 ms). */
    maxReuseMs?: number;
}

/** When each socket connected: a kept-alive connection is reused only for maxReuseMs. */
const bornAt = new WeakMap<object, bigint>();

/** A kept-alive agent for one check target: one connection, reused. */
export function checkAgent(): http.Agent {
    return new http.Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 1000 });
}

/** A check's target, parsed once. */
export interface Target {
    host: string;
    port: number;
    path: string;
    text: string;
}

export function parseTarget(text: string): Target {
    const url = new URL(text);
    return { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 80), path: `${url.pathname}${url.search}`, text };
}

const is2xx = (s: number) => s >= 200 && s < 300;

export function httpCheck(target: Target, opts: HttpCheckOptions): Promise<HttpAnswer> {
    return new Promise((resolve) => {
        const started = process.hrtime.bigint();
        let connectUs = 0;
        let settled = false;
        const finish = (a: Omit<HttpAnswer, "connectUs">) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            // A kept-alive socket goes back to its pool once the answer is read, until it is maxReuseMs
            // old; anything else is closed.
            const socket = req.socket;
            const born = socket ? bornAt.get(socket) : undefined;
            const old = born !== undefined && Number((process.hrtime.bigint() - born) / 1_000_000n) > (opts.maxReuseMs ?? 1000);
            if (!opts.agent || !a.ok || old || a.status === undefined) req.destroy();
            // Over a reused connection there is no connect: the time to the answer stands for the round trip.
            if (connectUs === 0 && a.status !== undefined) connectUs = Math.max(1, Number((process.hrtime.bigint() - started) / 1000n));
            resolve({ ...a, connectUs });
        };
        const req = http.request({
            host: target.host,
            port: target.port,
            path: target.path,
            method: "GET",
            agent: opts.agent ?? false,
            headers: opts.agent ? { "user-agent": "anycast-health" } : { "user-agent": "anycast-health", connection: "close" },
            ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        }, (res) => {
            const status = res.statusCode ?? 0;
            const ok = (opts.accept ?? is2xx)(status);
            if (!opts.body) {
                res.resume();
                finish({ ok, status, detail: `http ${status}` });
                return;
            }
            const chunks: Buffer[] = [];
            let size = 0;
            const max = opts.maxBodyBytes ?? 65536;
            res.on("data", (c: Buffer) => {
                size += c.length;
                if (size > max) finish({ ok: false, status, detail: `http ${status}, body over ${max} bytes` });
                else chunks.push(c);
            });
            res.on("end", () => finish({ ok, status, detail: `http ${status}`, body: Buffer.concat(chunks).toString("utf8") }));
            res.on("error", (e) => finish({ ok: false, status, detail: `http ${status}, ${(e as NodeJS.ErrnoException).code ?? e.message}` }));
        });
        req.on("socket", (socket) => {
            // A reused socket is connected already: no connect to time (and no listener left behind on it).
            if (!socket.connecting) return;
            socket.once("connect", () => {
                const now = process.hrtime.bigint();
                bornAt.set(socket, now);
                connectUs = Math.max(1, Number((now - started) / 1000n));
            });
        });
        req.on("error", (e: NodeJS.ErrnoException) => finish({ ok: false, detail: `${connectUs ? "" : "connect "}${e.code ?? e.message}` }));
        const timer = setTimeout(() => finish({ ok: false, detail: `timeout after ${opts.timeoutMs} ms${connectUs ? "" : " (no connection)"}` }), opts.timeoutMs);
        req.end();
    });
}
