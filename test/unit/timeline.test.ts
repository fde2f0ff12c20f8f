/**
 * A run's probes as the report's compact timeline (lab/timeline.ts): the bucket a request falls
 * in, good answers by PoP (and relay), failures, the window's start, and the bucket width growing
 * so that a long run stays small in the JSON.
 */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ProbeSample } from "../../lab/prober";
import { BUCKET_MS, LEAD_MS, MAX_BUCKETS, probeTimeline } from "../../lab/timeline";

const T = 1_765_000_000_000;

function sample(seq: number, sentMs: number, change: Partial<ProbeSample> = {}): ProbeSample {
    return { seq, sent: T + sentMs, done: T + sentMs + 3, ok: true, status: 200, pop: "lax", ...change };
}

describe("probe timeline", () => {
    it("counts each request in the bucket it was sent in: good answers by PoP and relay, failures apart", () => {
        const samples = [
            sample(0, 0), sample(1, 50), sample(2, 120, { pop: "ams" }),
            sample(3, 130, { ok: false, status: undefined, pop: undefined, error: "timeout" }),
            sample(4, 150, { ok: false, status: 502, pop: "ams" }),
            sample(5, 260, { relay: "ams" }), sample(6, 270, { relay: "lax" }),
        ];
        const t = probeTimeline(samples, T + 100, T + 200)!;
        assert.equal(t.bucketMs, BUCKET_MS);
        assert.equal(t.faultAtMs, 100);
        assert.equal(t.repairAtMs, 200);
        assert.deepEqual(t.buckets, [
            { byPop: { lax: 2 }, failed: 0 },
            { byPop: { ams: 1 }, failed: 2 },
            // A PoP named as its own relay was not relayed.
            { byPop: { "lax via ams": 1, lax: 1 }, failed: 0 },
        ]);
    });

    it("starts at most LEAD_MS before the fault, and leaves the repair out when the run never got to it", () => {
        const samples = Array.from({ length: 100 }, (_, i) => sample(i, i * 100));
        const t = probeTimeline(samples, T + 5_000)!;
        assert.equal(t.faultAtMs, LEAD_MS);
        assert.equal("repairAtMs" in t, false);
        assert.equal(t.buckets.length, (9_900 - 3_000) / BUCKET_MS + 1);
        assert.equal(t.buckets.reduce((n, b) => n + (b.byPop.lax ?? 0), 0), 70, "the 30 requests before the window are left out");
        assert.equal(probeTimeline([], T), undefined);
    });

    it("widens the buckets of a long run so that it has at most MAX_BUCKETS, in whole multiples of 100 ms", () => {
        const samples = Array.from({ length: 1_200 }, (_, i) => sample(i, i * 50));
        const t = probeTimeline(samples, T, T + 50_000)!;
        assert.ok(t.buckets.length <= MAX_BUCKETS + 1, `${t.buckets.length} buckets`);
        assert.equal(t.bucketMs % BUCKET_MS, 0);
        assert.equal(t.bucketMs, 200);
        assert.equal(t.buckets.reduce((n, b) => n + (b.byPop.lax ?? 0), 0), 1_200, "every request counted once");
    });
});
