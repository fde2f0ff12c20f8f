/**
 * What the health agent reads from outside, before any decision: its settings file (rendered
 * for a PoP, read back on the host) and another PoP's status answer (only the fields that decide).
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { formatAgentSettings, parseAgentSettings } from "../../components/core/health/settings";
import { parsePeerView } from "../../components/core/health/status";
import { agentSettings } from "../../components/core/render/health";
import { popRenderInput, prodSpec } from "../helpers/fixtures";

describe("agent settings and peer views from outside", () => {
    it("a settings file round-trips, and a missing or malformed value names its key", () => {
        const settings = agentSettings(popRenderInput(prodSpec(), "lax"));
        assert.deepEqual(parseAgentSettings(formatAgentSettings(settings)), settings);
        const obj = JSON.parse(formatAgentSettings(settings)) as Record<string, unknown>;
        delete obj.fall;
        assert.throws(() => parseAgentSettings(JSON.stringify(obj)), /\bfall\b/);
        const bad = JSON.parse(formatAgentSettings(settings)) as Record<string, any>;
        bad.listen.port = 70000;
        assert.throws(() => parseAgentSettings(JSON.stringify(bad)), /listen\.port/);
        assert.throws(() => parseAgentSettings("{"), /JSON/);
    });

    it("a peer's answer is read only for the fields that decide, and anything malformed is no view", () => {
        assert.equal(parsePeerView("<html>"), undefined);
        assert.equal(parsePeerView(JSON.stringify({ pop: "ams", seq: 1, state: "announced", proxy_ok: true, direct_up: "1", best_us: 1, age_ms: 0 })), undefined);
        assert.equal(parsePeerView(JSON.stringify({ pop: "ams", seq: 1, state: "bogus", proxy_ok: true, direct_up: 1, best_us: 1, age_ms: 0 })), undefined);
        const v = parsePeerView(JSON.stringify({ pop: "ams", seq: 1, state: "announced", proxy_ok: true, direct_up: 1, best_us: 1, age_ms: 5, public_status_url: "http://evil/x" }));
        assert.deepEqual(v, { pop: "ams", seq: 1, state: "announced", proxyOk: true, directUp: 1, bestUs: 1, ageMs: 5 });
    });
});
