/**
 * The rehearsal's report sections (lab/deploy/observe.ts, formatObservations): the lab's layout
 * (every line within 100 columns, labelled tables), each section present, and problems listed.
 * The measurements themselves run in test/deploy/rehearsal.test.ts against deployed hosts.
 */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatObservations, RehearsalObservations } from "../../lab/deploy/observe";
import { REPORT_WIDTH } from "../../lab/text";

function observations(problems: string[]): RehearsalObservations {
    const bounds = { failoverMs: 16_000, recoveryMs: 32_000, basis: "health interval 0.2 s, fall 2, rise 3" };
    return {
        service: { address: "2001:db8:100::1", hostname: "www.example.com" },
        sessions: ["lax", "ams"].map((pop) => ({
            pop, edgeState: "Established", edgeSince: "19:01:02.345", received: 1, communities: pop === "lax" ? "(64600,6939) (64600,64497)" : "",
            popSide: [{ protocol: "vultr6", state: "Established", since: "19:01:02.301", exported: 1, imported: 0 }],
        })),
        catchment: {
            prefix: "2001:db8:100::/48", client: "2400:cb00::10", bestPop: "lax", servedBy: "lax", status: 200, ms: 12.5,
            routes: [{ pop: "lax", best: true, asPath: "64500", communities: "(64600,6939)" }, { pop: "ams", best: false, asPath: "64500", communities: "" }],
        },
        https: ["lax", "ams"].map((pop, i) => ({
            pop, client: `2400:cb00::${100 + i}`,
            withCert: { status: 200, servedBy: pop, ms: 23.4, firstLine: "an existing server's own site" },
            withoutCert: { status: 400, servedBy: pop },
        })),
        admin: "the deployer (this machine, fdac:de:0:ffff::1), added to adminCidrs by the rehearsal",
        exposure: [{
            protocol: "tcp", from: "outsider fdac:de:0:fe00::2", source: "outsider", to: "anycast address", address: "2001:db8:100::1",
            port: 443, expect: "dropped", rule: "HTTP(S) on the anycast address from Cloudflare's ranges", result: "timeout", ok: true,
        }],
        experiment: {
            id: "proxyLoss", title: "Proxy loss", fault: "systemctl stop nginx on the PoP the edge prefers", repair: "systemctl start nginx",
            probeIntervalMs: 100, failedTotal: 3,
            runs: [{ pop: "lax", region: "lax", failoverMs: 1400, servedBy: "ams", failedDuringFailover: 3, recoveryMs: 2100,
                failedDuringRecovery: 0, requests: 120, failures: "3x http 502 from lax", bounds }],
        },
        edgePath: { withdrawnMs: 1300, backMs: 1900 },
        problems,
    };
}

describe("the rehearsal's report sections", () => {
    it("fit 100 columns and carry every section", () => {
        const lines = formatObservations(observations([]));
        for (const l of lines) assert.ok(l.length <= REPORT_WIDTH, `too wide (${l.length}): ${l}`);
        const text = lines.join("\n");
        for (const heading of ["BGP sessions", "Catchment at the edge", "HTTPS through each PoP", "Who may reach what", "Proxy loss", "Not run here"]) {
            assert.ok(text.includes(heading), `section ${heading}`);
        }
        assert.match(text, /lax's path gone 1\.30 s after the fault, back 1\.90 s after the repair/);
        assert.doesNotMatch(text, /PROBLEMS/);
    });

    it("lists the problems it was given", () => {
        const text = formatObservations(observations(["HTTPS pinned to ams: 502 from ams, expected 200 from ams"])).join("\n");
        assert.match(text, /PROBLEMS:\n {2}- HTTPS pinned to ams: 502/);
    });
});
