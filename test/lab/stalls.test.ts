/**
 * The lab's answer to a machine that stops: BFD and health check timers raised only when the
 * stalls need it (how the PoPs' layouts carry them: test/lab/layout.test.ts).
 */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sameSince } from "../../lab/session";
import { bfdTimersForStalls, healthIntervalForStalls, healthTimeoutForStalls, minimumBfdDetectMs, probeStalls } from "../../lab/stalls";

describe("BFD timers for a stalling machine", () => {
    it("keeps timers whose detection time outlasts the stalls", () => {
        assert.equal(bfdTimersForStalls({ intervalMs: 100, multiplier: 3 }, 0), undefined);
        assert.equal(bfdTimersForStalls({ intervalMs: 300, multiplier: 3 }, 100), undefined);
    });

    it("raises the interval in 50 ms steps, keeping the multiplier", () => {
        const raised = bfdTimersForStalls({ intervalMs: 100, multiplier: 3 }, 700)!;
        assert.equal(raised.multiplier, 3);
        assert.equal(raised.intervalMs % 50, 0);
        assert.ok(raised.intervalMs * 3 >= minimumBfdDetectMs(700));
        assert.ok((raised.intervalMs - 50) * 3 < minimumBfdDetectMs(700), "the smallest step that is enough");
    });

    it("raises a health check timeout shorter than the stalls allow, in 0.1 s steps", () => {
        assert.equal(healthTimeoutForStalls(2, 300), undefined);
        const raised = healthTimeoutForStalls(0.3, 700)!;
        assert.ok(raised * 1000 >= minimumBfdDetectMs(700) && (raised - 0.1) * 1000 < minimumBfdDetectMs(700));
        assert.equal(Math.round(raised * 10), raised * 10);
    });

    it("checks at most four times per raised timeout, and leaves the interval alone when the timeout stays", () => {
        assert.equal(healthIntervalForStalls(0.1, undefined), undefined);
        assert.equal(healthIntervalForStalls(0.1, 2.6), 0.7);
        assert.equal(healthIntervalForStalls(0.2, 2.2), 0.6);
        assert.equal(healthIntervalForStalls(1, 2.6), undefined, "a configured interval that is long enough stays");
    });

    it("measures stalls as a non-negative number of ms", () => {
        const probe = probeStalls(100, 5);
        assert.ok(probe.samples > 0 && probe.maxMs >= 0 && probe.durationMs >= 100);
    });
});

describe("a session's 'since' before and after a change", () => {
    it("is the same across the daemons' own jitter: FRR's epoch seconds, BIRD's milliseconds", () => {
        assert.ok(sameSince("1795361420", "1795361421"));
        assert.ok(sameSince("17:27:00.394", "17:27:00.395"));
        assert.ok(sameSince("2026-11-22 15:30:19.780", "2026-11-22 15:30:19.781"));
    });
    it("moves on a reset", () => {
        assert.ok(!sameSince("1795361420", "1795361425"));
        assert.ok(!sameSince("17:27:00.394", "17:27:03.100"));
        assert.ok(!sameSince("2026-11-22 15:30:19.780", "2026-11-22 15:30:24.000"));
        assert.ok(!sameSince("?", "17:27:00.394"));
    });
});
