/**
 * Driving the prober (lab/prober.ts) from the lab: a long-running prober per experiment whose
 * samples are read live, and one-shot requests for the catchment and proxy checks.
 */
import { spawn, ChildProcess } from "node:child_process";
import * as path from "node:path";
import { assertNotAborted, poll, rethrow } from "./exec";
import type { ProbeSample, ProberOptions } from "./prober";

export type { ProbeSample };

export const PROBER_SCRIPT = path.join(__dirname, "prober.js");

export interface Target {
    address: string;
    host: string;
}

export class Prober {
    readonly samples: ProbeSample[] = [];
    private readonly child: ChildProcess;
    private readonly exited: Promise<void>;
    private stderr = "";

    constructor(readonly ns: string, target: Target, intervalMs: number, timeoutMs: number) {
        const opts: ProberOptions = {
            address: target.address, port: 80, host: target.host, path: "/", intervalMs, timeoutMs, count: 0,
            body: false, maxInFlight: Math.max(4, Math.ceil((timeoutMs / intervalMs) * 2)),
        };
        assertNotAborted();
        this.child = spawn("ip", ["netns", "exec", ns, process.execPath, PROBER_SCRIPT, JSON.stringify(opts)], {
            stdio: ["pipe", "pipe", "pipe"],
        });
        let buffer = "";
        this.child.stdout!.on("data", (d: Buffer) => {
            buffer += d.toString();
            let nl: number;
            while ((nl = buffer.indexOf("\n")) >= 0) {
                const line = buffer.slice(0, nl);
                buffer = buffer.slice(nl + 1);
                if (line.startsWith("{")) this.samples.push(JSON.parse(line) as ProbeSample);
            }
        });
        this.child.stderr!.on("data", (d: Buffer) => { this.stderr += d.toString(); });
        this.exited = new Promise((resolve) => this.child.on("close", () => resolve()));
    }

    /** The first sample (by completion time) after `since` that satisfies `pred`. */
    find(since: number, pred: (s: ProbeSample) => boolean): ProbeSample | undefined {
        let best: ProbeSample | undefined;
        for (const s of this.samples) {
            if (s.done >= since && pred(s) && (!best || s.done < best.done)) best = s;
        }
        return best;
    }

    /** Wait until a sample after `since` satisfies `pred`; undefined after the timeout. */
    async waitFor(since: number, pred: (s: ProbeSample) => boolean, timeoutMs: number): Promise<ProbeSample | undefined> {
        return poll(() => this.find(since, pred) ?? this.assertRunning(), timeoutMs, 10, rethrow);
    }

    /** Wait until the last `n` samples after `since` all satisfy `pred` (a stable state). */
    async waitForStreak(since: number, n: number, pred: (s: ProbeSample) => boolean, timeoutMs: number): Promise<boolean> {
        const streak = () => {
            const recent = this.samples.filter((s) => s.done >= since).sort((a, b) => a.done - b.done).slice(-n);
            return recent.length === n && recent.every(pred);
        };
        return (await poll(() => streak() || this.assertRunning(), timeoutMs, 20, rethrow)) ?? false;
    }

    /** Throws once the prober has exited (no sample will come); undefined, "not yet", while it runs. */
    private assertRunning(): undefined {
        if (this.child.exitCode !== null) throw new Error(`prober in ${this.ns} exited: ${this.stderr.trim()}`);
        return undefined;
    }

    between(from: number, to: number): ProbeSample[] {
        return this.samples.filter((s) => s.done >= from && s.done <= to);
    }

    async stop(): Promise<void> {
        this.child.stdin!.end();
        const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
        await this.exited;
        clearTimeout(timer);
    }
}

/** One request from a namespace, with the body (for checks of what the origin received). */
export async function probeOnce(ns: string, target: Target, timeoutMs = 2000, port = 80): Promise<ProbeSample> {
    const opts: ProberOptions = { address: target.address, port, host: target.host, path: "/", intervalMs: 1, timeoutMs, count: 1, body: true, maxInFlight: 1 };
    assertNotAborted();
    return new Promise((resolve, reject) => {
        const child = spawn("ip", ["netns", "exec", ns, process.execPath, PROBER_SCRIPT, JSON.stringify(opts)], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (d: Buffer) => { out += d.toString(); });
        child.stderr.on("data", (d: Buffer) => { err += d.toString(); });
        child.on("close", () => {
            const line = out.split("\n").find((l) => l.startsWith("{"));
            if (line) resolve(JSON.parse(line) as ProbeSample);
            else reject(new Error(`prober in ${ns} gave no answer: ${err.trim()}`));
        });
    });
}

/** "3x timeout, 2x http 502 from sgp": what the failed requests of a phase met. */
export function failureSummary(failed: ProbeSample[]): string | undefined {
    if (failed.length === 0) return undefined;
    const counts = new Map<string, number>();
    for (const s of failed) {
        const what = s.error ?? `http ${s.status}${s.pop ? ` from ${s.pop}` : ""}`;
        counts.set(what, (counts.get(what) ?? 0) + 1);
    }
    return [...counts].map(([what, n]) => `${n}x ${what}`).join(", ");
}

/**
 * The failed requests a route change itself caught: reset (ECONNRESET) between the last answer from
 * one PoP and the first from another. Such a request's handshake reached the PoP the transit
 * used before, its next packets the one it uses now, which knows no such connection and resets
 * it: any anycast route change does that to a request in flight, however the change is made.
 * Every other failure (a timeout, an error status, a reset where the answering PoP did not change)
 * is a request the network lost.
 */
export function resetsAtPathSwitch(samples: readonly ProbeSample[], failed: readonly ProbeSample[]): ProbeSample[] {
    const answered = samples.filter((s) => s.ok && s.pop !== undefined).sort((a, b) => a.sent - b.sent);
    return failed.filter((f) => {
        if (f.error !== "ECONNRESET") return false;
        let before: ProbeSample | undefined;
        let after: ProbeSample | undefined;
        for (const s of answered) {
            if (s.sent < f.sent) before = s;
            else if (s.sent > f.sent) {
                after = s;
                break;
            }
        }
        return before !== undefined && after !== undefined && before.pop !== after.pop;
    });
}
