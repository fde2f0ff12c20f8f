/**
 * A run's probes as a compact timeline, for the report's JSON and its picture (lab/html.ts): the
 * requests sent in each bucket of time, the good answers counted by the PoP that served them, the
 * failed ones, and when the fault and the repair started. The aggregates of a run (failover,
 * recovery, failed requests) say how long; the timeline shows what the users saw meanwhile.
 *
 * Small on purpose, since it goes into `--json` for every run: buckets of 100 ms, or of five
 * requests where the probes are sparser (wider still for a long run, so that no run has more than
 * MAX_BUCKETS), a PoP named in a bucket only when it answered there, and the window starts at most
 * LEAD_MS before the fault (the wait for a steady state before it is not worth keeping).
 */
import type { ProbeSample } from "./prober";

export interface TimelineBucket {
    /**
     * Good answers (HTTP 200) to requests sent in this bucket, by the PoP that served them (its
     * X-Anycast-PoP); an answer relayed through another PoP's tunnels counts as "lax via ams".
     */
    byPop: Record<string, number>;
    /** Requests sent in this bucket that failed: no answer in time, or an answer other than 200. */
    failed: number;
}

export interface ProbeTimeline {
    bucketMs: number;
    /**
     * When the fault's command started, ms from the window's start (just before the first
     * request, or about LEAD_MS before the fault when probing started earlier). Bucket i covers
     * [i * bucketMs, (i + 1) * bucketMs) of the same clock.
     */
    faultAtMs: number;
    /** When the repair's command started, on the same clock; absent when the run ended before it. */
    repairAtMs?: number;
    buckets: TimelineBucket[];
}

/** The narrowest bucket, and the fewest requests of each prober a bucket holds (one more or less is then 20 %). */
export const BUCKET_MS = 100;
export const MIN_PER_BUCKET = 5;
export const MAX_BUCKETS = 400;
export const LEAD_MS = 2000;

export interface TimelineOptions {
    /** How often each prober sends (they all send at this interval). */
    intervalMs: number;
    /** When the fault's command started, epoch ms. */
    faultAt: number;
    /** When the repair's command started, epoch ms; absent when the run did not get to it. */
    repairAt?: number;
}

/** What a good answer counts under: its PoP, and the relay when another PoP's tunnels carried it. */
function answeredBy(s: ProbeSample): string {
    const pop = s.pop ?? "unknown";
    return s.relay !== undefined && s.relay !== pop ? `${pop} via ${s.relay}` : pop;
}

const mod = (a: number, m: number) => ((a % m) + m) % m;

/**
 * Where bucket edges fall within an interval: in the middle of the widest gap between the
 * probers' schedules (each sends every interval from its first request on), so that a request
 * sent a millisecond late stays in its bucket and a steady prober fills every bucket alike.
 */
function edgePhase(probers: ReadonlyArray<readonly ProbeSample[]>, intervalMs: number): number {
    const phases = probers.filter((p) => p.length > 0).map((p) => mod(p[0].sent, intervalMs)).sort((a, b) => a - b);
    let best = { gap: -1, at: 0 };
    phases.forEach((ph, i) => {
        const next = i + 1 < phases.length ? phases[i + 1] : phases[0] + intervalMs;
        if (next - ph > best.gap) best = { gap: next - ph, at: mod(ph + (next - ph) / 2, intervalMs) };
    });
    return best.at;
}

/**
 * The timeline of these probers' samples (one region's, or several regions' together) around a
 * fault and its repair. Requests count in the bucket they were sent in, as the report counts them
 * in the phase they were sent in. Undefined without samples.
 */
export function probeTimeline(probers: ReadonlyArray<readonly ProbeSample[]>, o: TimelineOptions): ProbeTimeline | undefined {
    const samples = probers.flat();
    if (samples.length === 0) return undefined;
    let first = Infinity;
    let last = -Infinity;
    for (const s of samples) {
        first = Math.min(first, s.sent);
        last = Math.max(last, s.sent);
    }
    const from = Math.max(first, o.faultAt - LEAD_MS);
    const start = from - mod(from - edgePhase(probers, o.intervalMs), o.intervalMs);
    // The fault's and the repair's starts are always inside the window.
    const marks = Math.max(o.faultAt, o.repairAt ?? o.faultAt);
    // A whole number of intervals, so that every bucket of a steady prober holds as many requests;
    // wider for a long run, so that no run has more than MAX_BUCKETS.
    const base = o.intervalMs * Math.max(MIN_PER_BUCKET, Math.ceil(BUCKET_MS / o.intervalMs));
    const bucketMs = base * Math.max(1, Math.ceil((Math.max(last, marks) - start) / MAX_BUCKETS / base));
    // Whole buckets only: a last one that probing stopped in would look like a drop in traffic.
    const count = Math.max(Math.floor((last + o.intervalMs - start) / bucketMs), Math.floor((marks - start) / bucketMs) + 1);
    const buckets: TimelineBucket[] = Array.from({ length: count }, () => ({ byPop: {}, failed: 0 }));
    for (const s of samples) {
        const b = buckets[Math.floor((s.sent - start) / bucketMs)];
        if (!b) continue;
        if (!s.ok) b.failed++;
        else b.byPop[answeredBy(s)] = (b.byPop[answeredBy(s)] ?? 0) + 1;
    }
    const at = (t: number) => Math.round(t - start);
    return { bucketMs, faultAtMs: at(o.faultAt), ...(o.repairAt !== undefined ? { repairAtMs: at(o.repairAt) } : {}), buckets };
}
