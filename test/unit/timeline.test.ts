/**
 * A run's probes as the report's compact timeline (lab/timeline.ts): the bucket a request falls
 * in, good answers by PoP (and relay), failures, the window's start, bucket edges between the
 * probers' schedules, and the bucket width growing so that a long run stays small in the JSON.
 */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ProbeSample } from "../../lab/prober";
import { jsonText, REPORT_WIDTH } from "../../lab/text";
import { BUCKET_MS, LEAD_MS, MAX_BUCKETS, MIN_PER_BUCKET, probeTimeline } from "../../lab/timeline";

const T = 1_765_000_000_000;

function sample(seq: number, sentMs: number, change: Partial<ProbeSample> = {}): ProbeSample {
    return { seq, sent: T + sentMs, done: T + sentMs + 3, ok: true, status: 200, pop: "lax", ...change };
}

describe("probe timeline", () => {
    it("counts each request in the bucket it was sent in: good answers by PoP and relay, failures apart", () => {
        // Every 20 ms from T, one of them 3 ms late; the fault at +100 ms, the repair at +200 ms.
        const samples = [
            sample(0, 0), sample(1, 20), sample(2, 40), sample(3, 60), sample(4, 83),
            sample(5, 100, { pop: "ams" }), sample(6, 120, { ok: false, status: undefined, pop: undefined, error: "timeout" }),
            sample(7, 140, { ok: false, status: 502, pop: "ams" }), sample(8, 160), sample(9, 180),
            sample(10, 200, { relay: "ams" }), sample(11, 220, { relay: "lax" }), sample(12, 240), sample(13, 260), sample(14, 280),
        ];
        const t = probeTimeline([samples], { intervalMs: 20, faultAt: T + 100, repairAt: T + 200 })!;
        assert.equal(t.bucketMs, BUCKET_MS);
        // The edges sit half an interval before the schedule: the late request stays in its bucket.
        assert.equal(t.faultAtMs, 110);
        assert.equal(t.repairAtMs, 210);
        assert.deepEqual(t.buckets, [
            { byPop: { lax: 5 }, failed: 0 },
            { byPop: { ams: 1, lax: 2 }, failed: 2 },
            // A PoP named as its own relay was not relayed.
            { byPop: { "lax via ams": 1, lax: 4 }, failed: 0 },
        ]);
    });

    it("starts about LEAD_MS before the fault, holds five requests a bucket when probes are sparse, and may lack the repair", () => {
        const samples = Array.from({ length: 100 }, (_, i) => sample(i, i * 100));
        const t = probeTimeline([samples], { intervalMs: 100, faultAt: T + 5_000 })!;
        assert.equal(t.bucketMs, MIN_PER_BUCKET * 100);
        assert.equal(t.faultAtMs, LEAD_MS + 50);
        assert.equal("repairAtMs" in t, false);
        assert.deepEqual(t.buckets.map((b) => b.byPop.lax), Array(14).fill(MIN_PER_BUCKET), "the 30 requests before the window left out");
        assert.equal(probeTimeline([[], []], { intervalMs: 20, faultAt: T }), undefined);
    });

    it("puts the edges between several probers' schedules, and widens the buckets of a long run to at most MAX_BUCKETS", () => {
        // Two regions' clients every 50 ms for 200 s, 10 ms apart: edges 30 ms after the first's schedule.
        const a = Array.from({ length: 4_000 }, (_, i) => sample(i, i * 50 + (i % 3)));
        const b = Array.from({ length: 4_000 }, (_, i) => sample(i, 10 + i * 50 + (i % 2), { pop: "ams" }));
        const t = probeTimeline([a, b], { intervalMs: 50, faultAt: T + 60_000, repairAt: T + 120_000 })!;
        assert.ok(t.buckets.length <= MAX_BUCKETS + 1, `${t.buckets.length} buckets`);
        assert.equal(t.bucketMs % (50 * MIN_PER_BUCKET), 0);
        assert.equal(t.bucketMs, 500);
        // Whole buckets only, each with as many of each prober's requests: no drop at the end.
        assert.ok(t.buckets.every((x) => x.byPop.lax === 10 && x.byPop.ams === 10), JSON.stringify(t.buckets.slice(-2)));
        // Those from LEAD_MS before the fault on, each once.
        assert.equal(t.buckets.reduce((n, x) => n + x.byPop.lax + x.byPop.ams, 0), 2 * (200_000 - 58_000) / 50);
    });
});

describe("the report's JSON text", () => {
    it("is the value JSON.stringify gives, with what fits in a line on one line: a bucket a line", () => {
        const samples = Array.from({ length: 50 }, (_, i) => sample(i, i * 20, i % 7 === 0 ? { pop: "ams" } : {}));
        const timeline = probeTimeline([samples], { intervalMs: 20, faultAt: T + 300, repairAt: T + 600 })!;
        const report = { ok: true, when: new Date(T), skipped: undefined, fn: () => 1, list: [1, undefined, "x"], nested: { empty: {}, none: [] },
            long: "y".repeat(120), runs: [{ pop: "lax", timeline }] };
        const text = jsonText(report);
        assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(report)));
        const lines = text.split("\n");
        assert.equal(lines.filter((l) => /^\s*\{"byPop": \{.*\}, "failed": \d+\},?$/.test(l)).length, timeline.buckets.length, text);
        assert.ok(lines.every((l) => l.length <= REPORT_WIDTH || l.includes("y".repeat(120))), "only a string too long for any line is longer");
        assert.match(text, /^\{\n  "ok": true,\n  "when": "2025-12-06T05:46:40.000Z",/);
        assert.equal(jsonText([1, 2]), "[1, 2]");
        assert.equal(jsonText(undefined), "null");
    });
});
