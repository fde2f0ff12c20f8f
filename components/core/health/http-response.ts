/**
 * An HTTP/1.1 response, read from the bytes of one connection: what the agent's checks need of
 * it (RFC 9112): the status, whether the connection may carry another request, and the body
 * when asked for. Pure: the agent's check client (agent/http.ts) feeds it what its socket reads.
 *
 * Why not node:http: a check is one small GET every round, and node's client machinery (agent,
 * streams, IncomingMessage) costs about three times the CPU of the exchange itself; at ten
 * rounds a second that was most of an idle agent's CPU. What is read here is the part of
 * HTTP/1.1 a response to a GET can use: a status line, header fields, interim 1xx responses,
 * and a body framed by Content-Length, by chunked transfer coding, or by the end of the
 * connection.
 */

export interface HttpResponse {
    status: number;
    /** The connection can carry the next request (HTTP/1.1 without `Connection: close`, body framed). */
    keepAlive: boolean;
    /** The body, when the reader keeps it. */
    body?: Buffer;
}

export type ReadResult =
    | { kind: "more" }
    | { kind: "done"; response: HttpResponse }
    | { kind: "error"; detail: string };

const CRLF = Buffer.from("\r\n");
const HEADERS_END = Buffer.from("\r\n\r\n");
/** The status line and header fields together: a check's answer has no business being larger. */
const MAX_HEAD_BYTES = 16 * 1024;

interface Head {
    status: number;
    keepAlive: boolean;
    framing: { kind: "length"; remaining: number } | { kind: "chunked" } | { kind: "close" };
}

/** Reads one response (skipping interim 1xx ones); a new reader for each request. */
export class ResponseReader {
    private buffer: Buffer = Buffer.alloc(0);
    private head?: Head;
    private readonly chunks: Buffer[] = [];
    private bodyBytes = 0;
    /** Within a chunked body: the bytes left of the current chunk (+2 for its CRLF), or undefined between chunks. */
    private chunkLeft?: number;
    private trailers = false;
    private finished?: ReadResult;

    constructor(private readonly opts: { keepBody: boolean; maxBodyBytes: number }) {}

    /** Bytes read from the connection. */
    feed(data: Buffer): ReadResult {
        if (this.finished) return this.finished;
        this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
        return this.settle(this.advance());
    }

    /** The peer closed the connection: a close-delimited body ends here, anything else was cut short. */
    end(): ReadResult {
        if (this.finished) return this.finished;
        if (this.head?.framing.kind === "close") return this.settle(this.done());
        return this.settle({ kind: "error", detail: this.head ? "connection closed within the body" : "connection closed before an answer" });
    }

    private settle(r: ReadResult): ReadResult {
        if (r.kind !== "more") this.finished = r;
        return r;
    }

    private done(): ReadResult {
        const head = this.head!;
        return {
            kind: "done",
            response: { status: head.status, keepAlive: head.keepAlive, ...(this.opts.keepBody ? { body: Buffer.concat(this.chunks) } : {}) },
        };
    }

    private take(bytes: Buffer): ReadResult | undefined {
        this.bodyBytes += bytes.length;
        if (this.bodyBytes > this.opts.maxBodyBytes && this.opts.keepBody) {
            return { kind: "error", detail: `http ${this.head!.status}, body over ${this.opts.maxBodyBytes} bytes` };
        }
        if (this.opts.keepBody) this.chunks.push(bytes);
        return undefined;
    }

    private advance(): ReadResult {
        while (!this.head) {
            const end = this.buffer.indexOf(HEADERS_END);
            if (end < 0) {
                return this.buffer.length > MAX_HEAD_BYTES ? { kind: "error", detail: `no end of the header within ${MAX_HEAD_BYTES} bytes` } : { kind: "more" };
            }
            const head = parseHead(this.buffer.subarray(0, end).toString("latin1"));
            this.buffer = this.buffer.subarray(end + HEADERS_END.length);
            if (typeof head === "string") return { kind: "error", detail: head };
            // 100 Continue, 103 Early Hints: the answer is still to come.
            if (head.status >= 100 && head.status < 200) continue;
            this.head = head;
        }
        const framing = this.head.framing;
        if (framing.kind === "close") {
            const problem = this.take(this.buffer);
            this.buffer = Buffer.alloc(0);
            return problem ?? { kind: "more" };
        }
        if (framing.kind === "length") {
            const part = this.buffer.subarray(0, framing.remaining);
            this.buffer = this.buffer.subarray(part.length);
            framing.remaining -= part.length;
            const problem = this.take(part);
            if (problem) return problem;
            return framing.remaining === 0 ? this.done() : { kind: "more" };
        }
        return this.advanceChunked();
    }

    private advanceChunked(): ReadResult {
        for (;;) {
            if (this.trailers) {
                // Trailer fields, then an empty line.
                const nl = this.buffer.indexOf(CRLF);
                if (nl < 0) return { kind: "more" };
                const line = this.buffer.subarray(0, nl);
                this.buffer = this.buffer.subarray(nl + 2);
                if (line.length === 0) return this.done();
                continue;
            }
            if (this.chunkLeft === undefined) {
                const nl = this.buffer.indexOf(CRLF);
                if (nl < 0) return this.buffer.length > 1024 ? { kind: "error", detail: "a chunk size line over 1024 bytes" } : { kind: "more" };
                const sizeText = this.buffer.subarray(0, nl).toString("latin1").split(";")[0].trim();
                this.buffer = this.buffer.subarray(nl + 2);
                if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) return { kind: "error", detail: `a malformed chunk size "${sizeText.slice(0, 20)}"` };
                const size = parseInt(sizeText, 16);
                if (size === 0) {
                    this.trailers = true;
                    continue;
                }
                this.chunkLeft = size + 2;
            }
            if (this.buffer.length === 0) return { kind: "more" };
            const dataLeft = this.chunkLeft - 2;
            if (dataLeft > 0) {
                const part = this.buffer.subarray(0, dataLeft);
                this.buffer = this.buffer.subarray(part.length);
                this.chunkLeft -= part.length;
                const problem = this.take(part);
                if (problem) return problem;
                if (this.chunkLeft > 2) return { kind: "more" };
            }
            // The chunk's closing CRLF.
            if (this.buffer.length < 2) return { kind: "more" };
            if (this.buffer[0] !== 0x0d || this.buffer[1] !== 0x0a) return { kind: "error", detail: "a chunk without its CRLF" };
            this.buffer = this.buffer.subarray(2);
            this.chunkLeft = undefined;
        }
    }
}

/** The status line and header fields; a string says what is wrong with them. */
function parseHead(text: string): Head | string {
    const lines = text.split("\r\n");
    const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]);
    if (!m) return `not an HTTP/1.x answer: "${lines[0].slice(0, 40)}"`;
    const http11 = m[1] === "1";
    const status = Number(m[2]);
    let length: number | undefined;
    let chunked = false;
    let connection = "";
    for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon <= 0) return `a malformed header line "${line.slice(0, 40)}"`;
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (name === "content-length") {
            if (!/^\d{1,12}$/.test(value) || (length !== undefined && length !== Number(value))) return `a malformed Content-Length "${value.slice(0, 20)}"`;
            length = Number(value);
        } else if (name === "transfer-encoding") {
            chunked = value.toLowerCase().split(",").map((v) => v.trim()).pop() === "chunked";
            if (!chunked) return `a transfer coding the check does not read: "${value.slice(0, 20)}"`;
        } else if (name === "connection") {
            connection += `,${value.toLowerCase()}`;
        }
    }
    const tokens = connection.split(",").map((t) => t.trim());
    const persistent = http11 ? !tokens.includes("close") : tokens.includes("keep-alive");
    // A response without a body by its status (RFC 9112 6.3): 1xx (skipped by the caller), 204, 304.
    if (status === 204 || status === 304) return { status, keepAlive: persistent, framing: { kind: "length", remaining: 0 } };
    // Transfer-Encoding wins over Content-Length (RFC 9112 6.3, 3).
    if (chunked) return { status, keepAlive: persistent, framing: { kind: "chunked" } };
    if (length !== undefined) return { status, keepAlive: persistent, framing: { kind: "length", remaining: length } };
    return { status, keepAlive: false, framing: { kind: "close" } };
}
