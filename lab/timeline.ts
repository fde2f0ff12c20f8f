/**
 * A run's probes as a compact timeline, for the report's JSON and its picture (lab/html.ts): the
 * requests sent in each bucket of time, the good answers counted by the PoP that served them, the
 * failed ones, and when the fault and the repair started. The aggregates of a run (failover,
 * recovery, failed requests) say how long; the timeline shows what the users saw meanwhile.
 *
 * Small on purpose, since it goes into `--json` for every run: buckets of 100 ms (wider for a
 * long run, so that no run has more than MAX_BUCKETS), a PoP named in a bucket only when it
 * answered there, and the window starts at most LEAD_MS before the fault (the wait for a steady
 * state before it is not worth keeping).
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
     * When the fault's command started, ms from the window's start (the first request, or
     * LEAD_MS before the fault when probing started earlier). Bucket i covers
     * [i * bucketMs, (i + 1) * bucketMs) of the same clock.
     */
    faultAtMs: number;
    /** When the repair's command started, on the same clock; absent when the run ended before it. */
    repairAtMs?: number;
    buckets: TimelineBucket[];
}

export const BUCKET_MS = 100;
export const MAX_BUCKETS = 400;
export const LEAD_MS = 2000;

/** What a good answer counts under: its PoP, and the relay when another PoP's tunnels carried it. */
function answeredBy(s: ProbeSample): string {
    const pop = s.pop ?? "unknown";
    return s.relay !== undefined && s.relay !== pop ? `${pop} via ${s.relay}` : pop;
}

/**
 * The timeline of these samples (one prober's, or several regions' together) around a fault that
 * started at epoch ms `faultAt` and a repair at `repairAt`. Requests count in the bucket they
 * were sent in, as the report counts them in the phase they were sent in. Undefined without samples.
 */
export function probeTimeline(samples: readonly ProbeSample[], faultAt: number, repairAt?: number): ProbeTimeline | undefined {
    if (samples.length === 0) return undefined;
    let first = Infinity;
    let last = -Infinity;
    for (const s of samples) {
        first = Math.min(first, s.sent);
        last = Math.max(last, s.sent);
    }
    const start = Math.max(first, faultAt - LEAD_MS);
    const end = Math.max(last, faultAt, repairAt ?? faultAt);
    const span = end - start;
    // Whole multiples of BUCKET_MS, so that runs of one experiment stay comparable at a glance.
    const bucketMs = Math.max(BUCKET_MS, Math.ceil(span / MAX_BUCKETS / BUCKET_MS) * BUCKET_MS);
    const buckets: TimelineBucket[] = Array.from({ length: Math.floor(span / bucketMs) + 1 }, () => ({ byPop: {}, failed: 0 }));
    for (const s of samples) {
        if (s.sent < start) continue;
        const b = buckets[Math.floor((s.sent - start) / bucketMs)];
        if (!s.ok) b.failed++;
        else b.byPop[answeredBy(s)] = (b.byPop[answeredBy(s)] ?? 0) + 1;
    }
    const round = (t: number) => Math.round(t - start);
    return { bucketMs, faultAtMs: round(faultAt), ...(repairAt !== undefined ? { repairAtMs: round(repairAt) } : {}), buckets };
}
