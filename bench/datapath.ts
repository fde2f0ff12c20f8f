/**
 * The data path, measured with wrk inside the lab's namespaces (lab addresses only, bounded in
 * time): HTTP to the origin directly over the WireGuard mesh (from a PoP), versus through the
 * anycast address (from a region's client: transit -> emulated Vultr edge -> PoP nginx -> mesh
 * -> origin). Runs alternate between the two paths so drift on a shared machine hits both.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { summarize, Summary } from "../lab/stats";

const execFileAsync = promisify(execFile);

export interface WrkResult {
    rps: number;
    p50Ms: number;
    p99Ms: number;
    errors: number;
}

/** Parse wrk's `--latency` output. */
export function parseWrk(text: string): WrkResult {
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
    const pct = (p: string): number => {
        const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, "m").exec(text);
        if (!m) return NaN;
        const v = Number(m[1]);
        return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
    };
    const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
    const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
    if (!Number.isFinite(rps)) throw new Error(`cannot read wrk output:\n${text}`);
    return { rps, p50Ms: pct("50"), p99Ms: pct("99"), errors };
}

export interface PathTarget {
    /** Network namespace the load generator runs in. */
    ns: string;
    url: string;
    hostHeader?: string;
}

export interface PathFigures {
    rps: Summary;
    p50Ms: Summary;
    p99Ms: Summary;
    errors: number;
}

export interface DataPathFigures {
    direct: PathFigures;
    anycast: PathFigures;
    /** anycast / direct, medians. */
    rpsRatio: number;
    p50Ratio: number;
    seconds: number;
    connections: number;
}

async function wrk(target: PathTarget, seconds: number, connections: number): Promise<WrkResult> {
    const args = ["netns", "exec", target.ns, "wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "2s", "--latency"];
    if (target.hostHeader) args.push("-H", `Host: ${target.hostHeader}`);
    args.push(target.url);
    const { stdout } = await execFileAsync("ip", args, { timeout: (seconds + 10) * 1000 });
    return parseWrk(stdout);
}

function figures(results: WrkResult[]): PathFigures {
    return {
        rps: summarize(results.map((r) => r.rps)),
        p50Ms: summarize(results.map((r) => r.p50Ms)),
        p99Ms: summarize(results.map((r) => r.p99Ms)),
        errors: results.reduce((a, r) => a + r.errors, 0),
    };
}

export async function measureDataPath(direct: PathTarget, anycast: PathTarget, opts: { repeats: number; seconds?: number; connections?: number }): Promise<DataPathFigures> {
    const seconds = opts.seconds ?? 3;
    const connections = opts.connections ?? 8;
    const d: WrkResult[] = [];
    const a: WrkResult[] = [];
    for (let i = 0; i < opts.repeats; i++) {
        d.push(await wrk(direct, seconds, connections));
        a.push(await wrk(anycast, seconds, connections));
    }
    const df = figures(d);
    const af = figures(a);
    return {
        direct: df, anycast: af, seconds, connections,
        rpsRatio: af.rps.median / df.rps.median,
        p50Ratio: af.p50Ms.median / df.p50Ms.median,
    };
}
