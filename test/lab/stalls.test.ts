/**
 * The lab's answer to a machine that stops: BFD timers raised only when the stalls need it, in the
 * spec and in the PoP's bird.conf together, each change listed.
 */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderBirdConfig } from "../../components/core/render/bird";
import { sameSince } from "../../lab/session";
import { LabStack } from "../../lab/stack";
import { renderAgentSettings } from "../../components/core/render/health";
import { adaptStackToStalls, bfdTimersForStalls, healthIntervalForStalls, healthTimeoutForStalls, minimumBfdDetectMs, probeStalls } from "../../lab/stalls";
import { labSpec, popRenderInput, TEST_HOST_ADDRESSES } from "../helpers/fixtures";

function labStackWithBird(): LabStack {
    const spec = labSpec();
    const hosts = spec.pops.map((p) => ({
        name: p.name, role: "pop" as const, ...TEST_HOST_ADDRESSES[p.name],
        files: {
            "bird.conf": renderBirdConfig(popRenderInput(spec, p.name)),
            "anycast-health.json": renderAgentSettings(popRenderInput(spec, p.name)),
        },
    }));
    return { spec, hosts, notes: [], httpSources: spec.firewall.httpSources!.map(String) };
}

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

    it("changes nothing in the stack on a machine that does not stall", () => {
        const stack = labStackWithBird();
        const { stack: same, rewrites } = adaptStackToStalls(stack, 0);
        assert.equal(same, stack);
        assert.deepEqual(rewrites, []);
    });

    it("rewrites the spec and every PoP's bird.conf together, and lists each change", () => {
        const stack = labStackWithBird();
        const { stack: adapted, rewrites } = adaptStackToStalls(stack, 700);
        assert.deepEqual(rewrites.map((r) => `${r.host} ${r.file}`), ["lax", "ams", "sgp"]
            .flatMap((p) => [`${p} bird.conf (and the emulated edge)`, `${p} anycast-health.json`, `${p} anycast-health.json`]));
        assert.ok(adapted.spec.health.timeout * 1000 >= minimumBfdDetectMs(700));
        assert.equal(adapted.spec.health.interval, healthIntervalForStalls(0.1, adapted.spec.health.timeout));
        assert.deepEqual(rewrites.filter((r) => r.host === "lax" && r.file === "anycast-health.json").map((r) => `${r.from} -> ${r.to}`),
            ["300 ms -> 2600 ms", "100 ms -> 700 ms"]);
        for (const pop of adapted.spec.pops) {
            const bfd = pop.bgp.bfd!;
            assert.ok(bfd.intervalMs * bfd.multiplier >= minimumBfdDetectMs(700));
            const conf = adapted.hosts.find((h) => h.name === pop.name)!.files["bird.conf"];
            // What the PoP's BIRD runs is what the spec (edges, failover bounds) says.
            assert.equal(conf, renderBirdConfig(popRenderInput(adapted.spec, pop.name)));
            const settings = adapted.hosts.find((h) => h.name === pop.name)!.files["anycast-health.json"];
            assert.equal(settings, renderAgentSettings(popRenderInput(adapted.spec, pop.name)));
        }
        // The input is not modified: the report's "configured" values stay the user's.
        assert.equal(stack.spec.pops[0].bgp.bfd!.intervalMs, 100);
        assert.equal(stack.spec.health.timeout, 0.3);
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
