/** The host layout (components/core/render/layout.ts): the renderers write what it says, and nothing else. */
import { describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { renderBirdConfig } from "../../components/core/render/bird";
import { agentSettings, renderAgentSettings } from "../../components/core/render/health";
import {
    configuredTimers, deployedLayout, DEPLOYED_PATHS, HostLayout, HostPaths, layoutDifferences, PATH_FIELDS, pathsUnder, TIMER_FIELDS,
} from "../../components/core/render/layout";
import { renderNginxConfig } from "../../components/core/render/nginx";
import { DEFAULT_AGENT_PATHS } from "../../components/core/health/layout";
import { cachedInput } from "../helpers/nginx";
import { labSpec, popRenderInput, prodSpec } from "../helpers/fixtures";

const flat = (p: HostPaths): string[] => [...Object.values(p.agent), ...Object.values(p.nginx), ...Object.values(p.tls)];
const everything = (input: ReturnType<typeof popRenderInput>, layout?: HostLayout) =>
    [renderBirdConfig(input, layout), renderNginxConfig(input, layout), renderAgentSettings(input, layout)].join("\n");

describe("host layout", () => {
    test("the default of every renderer is the deployed layout: the same text as passing it", () => {
        for (const input of [popRenderInput(prodSpec(), "lax"), popRenderInput(labSpec(), "ams"), cachedInput()]) {
            assert.equal(everything(input, deployedLayout(input)), everything(input));
        }
        assert.deepEqual(DEPLOYED_PATHS.agent, DEFAULT_AGENT_PATHS);
    });

    test("rendered for a directory, no file names a deployed path, and every path the deployed files name is there in its place", () => {
        const input = cachedInput();
        const deployed = everything(input);
        const moved = everything(input, { ...deployedLayout(input), paths: pathsUnder("/srv/pop") });
        const from = flat(DEPLOYED_PATHS);
        const to = flat(pathsUnder("/srv/pop"));
        for (const [i, p] of from.entries()) {
            assert.ok(!moved.includes(p), `${p} left in a file rendered for /srv/pop`);
            assert.equal(moved.includes(to[i]), deployed.includes(p), `${to[i]} where the deployed files have ${p}`);
        }
    });

    test("timers: the agent's interval and timeout, and BIRD's BFD, come from the layout", () => {
        const input = popRenderInput(labSpec(), "lax");
        const configured = configuredTimers(input);
        assert.ok(configured.bfd, "the lab's lax runs BFD");
        const wide: HostLayout = { paths: DEPLOYED_PATHS, timers: { healthIntervalMs: 700, healthTimeoutMs: 2600, bfd: { intervalMs: 900, multiplier: configured.bfd.multiplier } } };
        const s = agentSettings(input, wide);
        assert.equal(s.intervalMs, 700);
        assert.equal(s.timeoutMs, 2600);
        const bird = renderBirdConfig(input, wide);
        assert.match(bird, new RegExp(`interval 900 ms; multiplier ${configured.bfd.multiplier};`));
        assert.match(bird, new RegExp(`# BFD detects a dead path in ${900 * configured.bfd.multiplier} ms \\(900 ms x ${configured.bfd.multiplier}\\)`));
        const off = renderBirdConfig(input, { paths: DEPLOYED_PATHS, timers: { ...configured, bfd: undefined } });
        assert.ok(!/bfd/i.test(off), "a layout without BFD timers renders no BFD");
    });

    test("layoutDifferences: one entry per field that differs, with what it is and where it lands", () => {
        const input = popRenderInput(labSpec(), "lax");
        const deployed = deployedLayout(input);
        assert.deepEqual(layoutDifferences(deployed, deployed), []);
        const all = layoutDifferences(deployed, { paths: pathsUnder("/srv/pop"), timers: { ...deployed.timers, healthTimeoutMs: deployed.timers.healthTimeoutMs + 1 } });
        assert.deepEqual(all.map((d) => d.field), [...Object.keys(PATH_FIELDS).map((k) => `paths.${k}`), "timers.healthTimeoutMs"]);
        const state = all.find((d) => d.field === "paths.agent.stateFile")!;
        assert.deepEqual({ from: state.from, to: state.to }, { from: DEFAULT_AGENT_PATHS.stateFile, to: "/srv/pop/anycast-state.conf" });
        assert.ok(state.usedBy.includes("bird.conf"));
        const timeout = all.at(-1)!;
        assert.deepEqual({ what: timeout.what, from: timeout.from, to: timeout.to },
            { what: TIMER_FIELDS.healthTimeoutMs.what, from: `${deployed.timers.healthTimeoutMs} ms`, to: `${deployed.timers.healthTimeoutMs + 1} ms` });
        const bfd = layoutDifferences(deployed, { ...deployed, timers: { ...deployed.timers, bfd: undefined } });
        assert.deepEqual(bfd.map((d) => [d.field, d.to]), [["timers.bfd", "off"]]);
    });
});
