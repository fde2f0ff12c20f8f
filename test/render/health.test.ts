/**
 * The health agent's artifacts: goldens for its settings and unit, the bundled program, its
 * settings check, and `systemd-analyze verify` on the unit. The agent against a real BIRD is in
 * test/live/agent.test.ts; its decisions, on a fake clock, in test/unit/health-policy.test.ts.
 */
import { test, describe } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
    agentSettings, renderAgentSettings, renderHealthAgent, renderHealthUnit, HEALTH_AGENT_FILE, HEALTH_PATHS,
} from "../../components/core/render/health";
import { ARTIFACTS } from "../../components/core/artifacts";
import { renderBirdConfig } from "../../components/core/render/bird";
import { HEALTH_ENDPOINT } from "../../components/core/render/nginx";
import { parseAgentSettings } from "../../components/core/health/settings";
import { DEFAULT_AGENT_PATHS } from "../../components/core/health/layout";
import { assertGolden, REPO_ROOT } from "../helpers/golden";
import { labSpec, popRenderInput, prodSpec } from "../helpers/fixtures";
import { needTools, run, tempDir } from "../helpers/tools";

describe("health agent artifacts", () => {
    test("golden: settings lab lax", () => assertGolden("health/lab-lax.json", renderAgentSettings(popRenderInput(labSpec(), "lax"))));
    test("golden: settings prod ams", () => assertGolden("health/prod-ams.json", renderAgentSettings(popRenderInput(prodSpec(), "ams"))));
    test("golden: unit", () => assertGolden("health/anycast-health.service", renderHealthUnit()));

    test("the agent is the bundle the build makes, one file for node without npm packages", () => {
        assert.equal(HEALTH_AGENT_FILE, path.join(REPO_ROOT, "dist", "agent", "anycast-health.js"));
        const program = renderHealthAgent();
        assert.ok(program.startsWith("#!/usr/bin/node\n"));
        // Only node's own modules: Debian's nodejs runs it with nothing beside it.
        const required = [...program.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]);
        assert.ok(required.length > 0);
        for (const name of required) assert.match(name, /^node:/, `the agent requires ${name}`);
        const version = run(process.execPath, [HEALTH_AGENT_FILE, "version"]);
        assert.equal(version.status, 0, version.stderr);
        assert.match(version.stdout, /^anycast-health \d+\.\d+\.\d+ \(node /);
    });

    test("settings: the URLs the agent checks, bracketing only IPv6; every peer's status on health.statusPort", () => {
        const lab = agentSettings(popRenderInput(labSpec(), "lax"));
        assert.equal(lab.proxyUrl, `http://[2001:db8:100::1]${HEALTH_ENDPOINT}`);
        assert.deepEqual(lab.origins.map((o) => o.name), ["origin", "origin2"]);
        assert.deepEqual(lab.origins.map((o) => o.url), ["http://[fd00:a:1::1]:8080/healthz", "http://[fd00:a:1:0:ffff:ffff:ffff:ffff]:8080/healthz"]);
        assert.deepEqual(lab.peers.map((p) => p.statusUrl), ["http://[fd00:a:1::3]:9180/status", "http://[fd00:a:1::4]:9180/status"]);
        assert.deepEqual(lab.peers.map((p) => p.relayServer), ["[fd00:a:1::3]:8081", "[fd00:a:1::4]:8081"]);
        assert.equal(lab.relay, true);
        assert.equal(lab.intervalMs, 100);
        assert.deepEqual(lab.bird, { announce: ["lax_anycast6"], drain: ["lax_drain6"], sessions: ["lax_upstream6"] });
        assert.deepEqual(lab.paths, DEFAULT_AGENT_PATHS);
        assert.deepEqual(lab.originPreference, []);
        assert.deepEqual(agentSettings(popRenderInput(labSpec(), "sgp")).originPreference, ["origin2", "origin"]);
        const prod = agentSettings(popRenderInput(prodSpec(), "ams"));
        assert.deepEqual(prod.origins.map((o) => o.url), ["http://10.77.0.1:8080/healthz"]);
        assert.equal(prod.drainMs, 10_000);
        const single = agentSettings({ ...popRenderInput(prodSpec(), "ams"), peers: [] });
        assert.deepEqual(single.peers, []);
        assert.equal(single.relay, false);
    });

    test("settings: the renderer refuses what the agent would refuse, naming the key", () => {
        const input = popRenderInput(labSpec(), "lax");
        input.origins = [{ ...input.origins![0], healthPath: "/x y" }];
        assert.throws(() => renderAgentSettings(input), /origins\[0\]\.url: must be an http:\/\/ URL/);
    });

    test("settings: a missing or malformed value stops the agent with one line naming the key", () => {
        const good = agentSettings(popRenderInput(labSpec(), "lax"));
        const dir = tempDir("health-settings");
        try {
            const cases: Array<[string, unknown, RegExp]> = [
                ["timeoutMs", undefined, /^anycast-health: .*: timeoutMs: must be a whole number from 10 to 30000, missing\n$/],
                ["rise", "3", /^anycast-health: .*: rise: must be a whole number from 1 to 100, got "3"\n$/],
                ["meshTopology", "ring", /: meshTopology: must be one of full, hub, got "ring"\n$/],
                ["paths", { ...good.paths, birdSocket: "run/bird.ctl" }, /: paths\.birdSocket: must be an absolute path/],
                ["intervalMss", 100, /: intervalMss: is not a setting the agent knows/],
            ];
            for (const [key, value, expected] of cases) {
                const broken: Record<string, unknown> = { ...good };
                if (value === undefined) delete broken[key];
                else broken[key] = value;
                const file = path.join(dir, `${key}.json`);
                fs.writeFileSync(file, JSON.stringify(broken));
                for (const args of [["check", file], ["run"]]) {
                    const result = run(process.execPath, [HEALTH_AGENT_FILE, ...args], { env: { ...process.env, ANYCAST_HEALTH_SETTINGS: file } });
                    assert.equal(result.status, 2, `${key} ${args[0]}: ${result.stderr}`);
                    assert.match(result.stderr, expected);
                }
            }
            const missing = run(process.execPath, [HEALTH_AGENT_FILE, "status"], { env: { ...process.env, ANYCAST_HEALTH_SETTINGS: path.join(dir, "none.json") } });
            assert.equal(missing.status, 2);
            assert.match(missing.stderr, /cannot read the settings file .*none\.json/);
            const ok = run(process.execPath, [HEALTH_AGENT_FILE, "check", writeJson(dir, "good.json", good)]);
            assert.equal(ok.status, 0, ok.stderr);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    test("the settings file's path is the artifact's, and the unit names both files", () => {
        assert.equal(HEALTH_PATHS.settings, ARTIFACTS["anycast-health.json"].remotePath);
        assert.equal(HEALTH_PATHS.program, ARTIFACTS["anycast-health"].remotePath);
        assert.match(renderHealthUnit(), new RegExp(`^Environment=ANYCAST_HEALTH_SETTINGS=${HEALTH_PATHS.settings}$`, "m"));
        assert.match(renderHealthUnit(), /^ReadWritePaths=\/etc\/bird \/etc\/anycast -\/run\/bird$/m);
        assert.equal(DEFAULT_AGENT_PATHS.upstreamsFile, ARTIFACTS["nginx-upstreams.conf"].remotePath);
    });

    test("systemd-analyze verify accepts the unit", (t) => {
        if (!needTools(t, "systemd-analyze")) return;
        const dir = tempDir("health-unit");
        try {
            // verify insists that ExecStart exists; and the real unit name may be masked on a dev machine.
            const program = path.join(dir, "anycast-health");
            fs.writeFileSync(program, renderHealthAgent(), { mode: 0o755 });
            const unit = path.join(dir, "anycast-health-verify.service");
            fs.writeFileSync(unit, renderHealthUnit().replace(HEALTH_PATHS.program, program));
            const result = run("systemd-analyze", ["verify", unit]);
            assert.equal(result.status, 0, result.stderr);
            // It only warns (exit 0) on unknown keys or bad values, so any output about our file is a failure.
            assert.equal(result.stderr.split("\n").filter((l) => l.includes(unit)).join("\n"), "");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

function writeJson(dir: string, name: string, value: unknown): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, JSON.stringify(value));
    return file;
}

const INPUT = popRenderInput(labSpec(), "lax");

test("bird.conf's protocol names are the ones the agent's settings switch", () => {
    const conf = renderBirdConfig(INPUT);
    const s = parseAgentSettings(renderAgentSettings(INPUT));
    for (const name of [...s.bird.announce, ...s.bird.drain]) assert.match(conf, new RegExp(`^protocol static ${name} \\{$`, "m"));
    for (const name of s.bird.sessions) assert.match(conf, new RegExp(`^protocol bgp ${name} \\{$`, "m"));
});
