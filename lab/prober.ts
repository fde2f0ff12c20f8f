/**
 * The lab's client: runs inside a client namespace and requests the anycast address over and
 * over, each request on a fresh TCP connection (so every request follows the current routing),
 * writing one JSON line per answered or failed request to stdout:
 *
 *   {"seq":12,"sent":1712345678901.2,"done":1712345678904.9,"ok":true,"status":200,"pop":"lax"}
 *
 * Requests are started every `interval` ms whether or not earlier ones have finished: a request
 * stuck on a dead PoP must not stop the clock, so failover resolution is the interval, not the
 * timeout. `count` 1 with `body` prints the answer too (catchment and proxy checks).
 *
 *   node prober.js '<json options>'     options: see ProberOptions
 */
import * as http from "node:http";

export interface ProberOptions {
    /** Anycast address to connect to. */
    address: string;
    port: number;
    /** Host header (the proxied hostname, as Cloudflare sends it). */
    host: string;
    path: string;
    intervalMs: number;
    timeoutMs: number;
    /** Stop after this many requests (0: until SIGTERM or stdin closes). */
    count: number;
    /** Include the response body in the output line. */
    body: boolean;
    /** At most this many requests in flight. */
    maxInFlight: number;
}

export interface ProbeSample {
    seq: number;
    /** Epoch ms when the request was started. */
    sent: number;
    /** Epoch ms when it was answered or failed. */
    done: number;
    ok: boolean;
    status?: number;
    pop?: string;
    /** The origin that answered (the lab origin's x-origin header). */
    origin?: string;
    /** The PoP the answer was relayed through, if any (X-Anycast-Relay). */
    relay?: string;
    error?: string;
    body?: string;
}

const now = () => performance.timeOrigin + performance.now();

function probe(opts: ProberOptions, seq: number, emit: (s: ProbeSample) => void): Promise<void> {
    return new Promise((resolve) => {
        const sent = now();
        let finished = false;
        const finish = (s: Omit<ProbeSample, "seq" | "sent" | "done">) => {
            if (finished) return;
            finished = true;
            emit({ seq, sent, done: now(), ...s });
            resolve();
        };
        const req = http.request({
            host: opts.address, port: opts.port, path: opts.path, method: "GET", agent: false,
            headers: { host: opts.host, "user-agent": "anycast-lab-prober" }, timeout: opts.timeoutMs,
        }, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
                const pop = res.headers["x-anycast-pop"];
                const origin = res.headers["x-origin"];
                const relay = res.headers["x-anycast-relay"];
                finish({
                    ok: res.statusCode === 200, status: res.statusCode,
                    pop: typeof pop === "string" ? pop : undefined,
                    ...(typeof origin === "string" ? { origin } : {}),
                    ...(typeof relay === "string" ? { relay } : {}),
                    body: opts.body ? Buffer.concat(chunks).toString() : undefined,
                });
            });
            res.on("error", (e) => finish({ ok: false, status: res.statusCode, error: e.message }));
        });
        // The whole request, not only idle time, is bounded by the timeout.
        const timer = setTimeout(() => { req.destroy(new Error("timeout")); }, opts.timeoutMs);
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.code ?? e.message }));
        req.on("close", () => clearTimeout(timer));
        req.end();
    });
}

async function main(): Promise<void> {
    const opts = JSON.parse(process.argv[2] ?? "{}") as ProberOptions;
    let stopping = false;
    const stop = () => { stopping = true; };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    if (opts.count === 0) {
        // An endless prober stops when the lab closes its stdin, so it cannot outlive the lab.
        process.stdin.on("end", stop);
        process.stdin.on("error", stop);
        process.stdin.resume();
    }
    const emit = (s: ProbeSample) => process.stdout.write(JSON.stringify(s) + "\n");
    const inFlight = new Set<Promise<void>>();
    let seq = 0;
    let next = now();
    while (!stopping && (opts.count === 0 || seq < opts.count)) {
        if (inFlight.size < opts.maxInFlight) {
            const p = probe(opts, seq++, emit);
            inFlight.add(p);
            void p.then(() => inFlight.delete(p));
        }
        next += opts.intervalMs;
        const wait = next - now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        else next = now();
    }
    await Promise.all(inFlight);
    process.exit(0);
}

if (require.main === module) void main();
