/**
 * The agent's HTTP checks, in process, each with a timeout over the whole exchange: a GET over a
 * plain TCP socket, its answer read by components/core/health/http-response.ts.
 *
 * One CheckClient per target keeps its connection open between rounds for up to maxReuseMs (a
 * second): ten checks a second would otherwise open and close ten connections each. A dead
 * origin, a frozen one and a silently cut tunnel fail a reused connection as they fail a new one
 * (reset, or the timeout); one that stops accepting new connections is seen within the second.
 * A reused connection that the server closed while it was idle fails before any answer arrives:
 * that check is sent again at once on a new connection, within the same timeout, as any client
 * does for a GET.
 *
 * The round-trip sample is the connect time on a new connection (as curl's time_connect was), the
 * time to the answer on a reused one.
 */
import * as net from "node:net";
import { ResponseReader } from "../components/core/health/http-response";

export interface HttpAnswer {
    ok: boolean;
    status?: number;
    /** TCP connect time, µs (0 when there was no connection). */
    connectUs: number;
    /** What the check saw, for logs and the status: "http 200", "timeout after 300 ms", "connect ECONNREFUSED". */
    detail: string;
    body?: string;
}

export interface CheckOptions {
    timeoutMs: number;
    /** Which statuses count as working (default 2xx). */
    accept?: (status: number) => boolean;
    /** Keep the body (up to maxBodyBytes), e.g. a peer's status. */
    body?: boolean;
    maxBodyBytes?: number;
}

/** A check's target, parsed once. */
export interface Target {
    host: string;
    port: number;
    path: string;
    /** The Host field: the URL's host and port as written. */
    authority: string;
    text: string;
}

export function parseTarget(text: string): Target {
    const url = new URL(text);
    if (url.protocol !== "http:") throw new Error(`not an http URL: ${text}`);
    return { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 80), path: `${url.pathname}${url.search}`, authority: url.host, text };
}

const is2xx = (s: number) => s >= 200 && s < 300;

const hrUs = (from: bigint) => Math.max(1, Number((process.hrtime.bigint() - from) / 1000n));

interface Connection {
    socket: net.Socket;
    bornAt: bigint;
    /** Connected (the connect event came), so a failure is not a connect failure. */
    connected: boolean;
    /** The exchange in progress reads here; undefined while the connection is idle. */
    onData?: (data: Buffer) => void;
    onEnd?: () => void;
    onError?: (e: NodeJS.ErrnoException) => void;
}

export class CheckClient {
    private conn?: Connection;
    private readonly request: Buffer;

    constructor(readonly target: Target, private readonly opts: { localAddress?: string; maxReuseMs?: number } = {}) {
        this.request = Buffer.from(`GET ${target.path} HTTP/1.1\r\nHost: ${target.authority}\r\nUser-Agent: anycast-health\r\nAccept: */*\r\n\r\n`, "latin1");
    }

    private open(): Connection {
        const socket = net.connect({ host: this.target.host, port: this.target.port, ...(this.opts.localAddress ? { localAddress: this.opts.localAddress } : {}) });
        socket.setNoDelay(true);
        const conn: Connection = { socket, bornAt: process.hrtime.bigint(), connected: false };
        socket.on("connect", () => { conn.connected = true; });
        socket.on("data", (d: Buffer) => conn.onData?.(d));
        socket.on("end", () => {
            if (this.conn === conn) this.conn = undefined;
            conn.onEnd?.();
        });
        socket.on("error", (e: NodeJS.ErrnoException) => {
            if (this.conn === conn) this.conn = undefined;
            conn.onError?.(e);
        });
        socket.on("close", () => {
            if (this.conn === conn) this.conn = undefined;
            conn.onEnd?.();
        });
        return conn;
    }

    /** Drop the connection (after a failure, or at stop). */
    close(): void {
        this.conn?.socket.destroy();
        this.conn = undefined;
    }

    check(opts: CheckOptions): Promise<HttpAnswer> {
        const started = process.hrtime.bigint();
        return new Promise((resolve) => {
            let settled = false;
            let conn: Connection;
            let reused = false;
            let connectUs = 0;
            let answered = false;
            const timer = setTimeout(() => {
                finish({ ok: false, detail: `timeout after ${opts.timeoutMs} ms${conn.connected ? "" : " (no connection)"}` }, false);
            }, opts.timeoutMs);
            const finish = (a: Omit<HttpAnswer, "connectUs">, keep: boolean) => {
                if (settled) return;
                settled = true;
                clearTimeout(timer);
                conn.onData = conn.onEnd = conn.onError = undefined;
                // In nanoseconds: a whole-millisecond age would keep a connection a fast exchange made within its first millisecond.
                const old = process.hrtime.bigint() - conn.bornAt >= BigInt(this.opts.maxReuseMs ?? 1000) * 1_000_000n;
                if (!keep || old) {
                    conn.socket.destroy();
                    if (this.conn === conn) this.conn = undefined;
                }
                // Over a reused connection there is no connect: the time to the answer stands for the round trip.
                if (connectUs === 0 && a.status !== undefined) connectUs = hrUs(started);
                resolve({ ...a, connectUs });
            };
            const send = () => {
                reused = this.conn !== undefined;
                conn = this.conn ?? this.open();
                this.conn = conn;
                const reader = new ResponseReader({ keepBody: opts.body === true, maxBodyBytes: opts.maxBodyBytes ?? 65536 });
                if (!reused && !conn.connected) conn.socket.once("connect", () => { connectUs = hrUs(started); });
                const failed = (detail: string) => {
                    // The server closed an idle kept-alive connection as this check went out: once more, on a new one.
                    if (reused && !answered && !settled) {
                        conn.onData = conn.onEnd = conn.onError = undefined;
                        conn.socket.destroy();
                        if (this.conn === conn) this.conn = undefined;
                        send();
                        return;
                    }
                    finish({ ok: false, detail }, false);
                };
                const outcome = (r: ReturnType<ResponseReader["feed"]>) => {
                    if (r.kind === "more") return;
                    if (r.kind === "error") return finish({ ok: false, detail: r.detail }, false);
                    const { status, keepAlive, body } = r.response;
                    finish({ ok: (opts.accept ?? is2xx)(status), status, detail: `http ${status}`, ...(body ? { body: body.toString("utf8") } : {}) }, keepAlive);
                };
                conn.onData = (d) => {
                    answered = true;
                    outcome(reader.feed(d));
                };
                conn.onEnd = () => {
                    if (!answered) return failed(conn.connected ? "connection closed before an answer" : "connect closed");
                    outcome(reader.end());
                };
                conn.onError = (e) => failed(`${conn.connected ? "" : "connect "}${e.code ?? e.message}`);
                conn.socket.write(this.request);
            };
            send();
        });
    }
}
