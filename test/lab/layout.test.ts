/**
 * The lab's layouts (lab/layout.ts): a namespace's paths, the timers for a machine that stalls,
 * the model the lab measures with, and the report's rewrites, all from the layout.
 */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderBirdConfig } from "../../components/core/render/bird";
import { renderAgentSettings } from "../../components/core/render/health";
import { deployedLayout, pathsUnder, PATH_FIELDS } from "../../components/core/render/layout";
import { renderNginxConfig } from "../../components/core/render/nginx";
import { healthIntervalForStalls, minimumBfdDetectMs } from "../../lab/stalls";
import { labLayout, layoutRewrites, renderPopForLab, specAsRun } from "../../lab/layout";
import { labSpec, popRenderInput, TEST_HOST_ADDRESSES } from "../helpers/fixtures";

const DIR = "/run/lab/alab-lax-pop";

describe("lab layout", () => {
    it("on a machine that does not stall: the model as it is, and only the paths differ from a host's", () => {
        const spec = labSpec();
        assert.equal(specAsRun(spec, 0), spec);
        const input = popRenderInput(spec, "lax");
        const rewrites = layoutRewrites("lax", deployedLayout(input), labLayout(input, DIR, 0), 0);
        assert.deepEqual(rewrites.map((r) => r.what), Object.values(PATH_FIELDS).map((f) => f.what), "one entry per path, no timer");
        const state = rewrites.find((r) => r.what === PATH_FIELDS["agent.stateFile"].what)!;
        assert.deepEqual(state, {
            host: "lax", file: "bird.conf, anycast-health.json, (anycast-net.sh: ANYCAST_STATE_FILE)", what: PATH_FIELDS["agent.stateFile"].what,
            from: "/etc/bird/anycast-state.conf", to: `${DIR}/anycast-state.conf`,
        });
    });

    it("on a machine that stalls 700 ms: the health check and BFD timers raised in the layout and in the model alike, each listed", () => {
        const spec = labSpec();
        const asRun = specAsRun(spec, 700);
        assert.ok(asRun.health.timeout * 1000 >= minimumBfdDetectMs(700));
        assert.equal(asRun.health.interval, healthIntervalForStalls(0.1, asRun.health.timeout));
        for (const pop of spec.pops) {
            const input = popRenderInput(spec, pop.name);
            const layout = labLayout(input, DIR, 700);
            const timers = layoutRewrites(pop.name, deployedLayout(input), layout, 700).filter((r) => r.what.includes("machine stalls 700 ms"));
            assert.deepEqual(timers.map((r) => `${r.file}: ${r.from} -> ${r.to}`), [
                "anycast-health.json: 100 ms -> 700 ms",
                "anycast-health.json: 300 ms -> 2600 ms",
                `bird.conf, (the emulated edge): 100 ms x 3 -> ${layout.timers.bfd!.intervalMs} ms x 3`,
            ]);
            const bfd = asRun.pops.find((p) => p.name === pop.name)!.bgp.bfd!;
            assert.ok(bfd.intervalMs * bfd.multiplier >= minimumBfdDetectMs(700));
            // What the PoP's daemons run is what the model the lab measures with (edges, failover bounds) says.
            const ran = popRenderInput(asRun, pop.name);
            const sameTimers = { ...deployedLayout(ran), paths: layout.paths };
            assert.equal(renderBirdConfig(input, layout), renderBirdConfig(ran, sameTimers));
            assert.equal(renderAgentSettings(input, layout), renderAgentSettings(ran, sameTimers));
        }
        // The stack's model is not modified: the report's "configured" values stay the user's.
        assert.equal(spec.pops[0].bgp.bfd!.intervalMs, 100);
        assert.equal(spec.health.timeout, 0.3);
    });

    it("renders a namespace's files from the stack's model, and refuses when that model is not what the stack rendered from", () => {
        const spec = labSpec();
        const input = popRenderInput(spec, "lax");
        const stackFiles = { "bird.conf": renderBirdConfig(input), "nginx.conf": renderNginxConfig(input), "anycast-health.json": renderAgentSettings(input) };
        const layout = labLayout(input, DIR, 700);
        const files = renderPopForLab(spec, "lax", TEST_HOST_ADDRESSES.lax, stackFiles, layout);
        assert.equal(files["nginx.conf"], renderNginxConfig(input, layout));
        assert.ok(files["bird.conf"].includes(`include "${pathsUnder(DIR).agent.stateFile}";`));
        assert.throws(() => renderPopForLab(spec, "lax", TEST_HOST_ADDRESSES.lax, { ...stackFiles, "nginx.conf": `${stackFiles["nginx.conf"]}#` }, layout),
            /PoP lax: nginx\.conf rendered from the stack's model differs/);
        assert.throws(() => renderPopForLab(spec, "lax", TEST_HOST_ADDRESSES.ams, stackFiles, layout), /bird\.conf rendered from the stack's model differs/);
    });
});
