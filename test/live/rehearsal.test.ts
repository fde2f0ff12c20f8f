/**
 * The deploy rehearsal end to end (`anycast lab --deploy`; needs root, CI runs as root): the
 * prod example with two PoPs on new instances and its existing origin logged in to as a non-root
 * sudo user, deployed by the stack's real remote commands over SSH to fresh Debian 12 hosts,
 * then the checks (every PoP's agent on Debian's nodejs 18, a no-change deploy, a communities
 * change, a PoP reboot, the existing origin's own table and service). Timings are printed, not asserted: the machine stalls.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { deployPreconditionProblem, EXISTING_SERVICE, slotLeftovers, teardownAllClouds } from "../../lab/deploy/hosts";
import { previousVersionProblem } from "../../lab/deploy/previous";
import { formatRehearsal, rehearsalJson, rehearseDeploy } from "../../lab/deploy/rehearsal";
import { formatSteps } from "../../lab/deploy/remote";
import { tempDir, which } from "../helpers/tools";

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
const problem = deployPreconditionProblem() ?? (which("bird") && which("birdc") ? undefined : "needs bird and birdc (bash scripts/setup.sh)");
if (problem) console.log(`deploy rehearsal test skipped: ${problem}`);

const log = (line: string) => console.log(`rehearsal:${line.startsWith("  ") ? line.slice(1) : ` ${line}`}`);

describe("anycast lab --deploy", { skip: problem }, () => {
    const dir = tempDir("rehearsal");
    after(async () => {
        fs.rmSync(dir, { recursive: true, force: true });
        await teardownAllClouds();
    });

    it("deploys a stack to fresh hosts, every PoP announces, the lab's report holds on them, and the checks hold", { timeout: 25 * 60_000 }, async () => {
        const doc = parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.prod.yaml"), "utf8")) as { config: Record<string, any> };
        doc.config["anycast:pops"] = doc.config["anycast:pops"].slice(0, 2);
        doc.config["anycast:origin"].host.user = "deployer";
        const file = path.join(dir, "Pulumi.rehearsal.yaml");
        fs.writeFileSync(file, stringify(doc));

        const report = await rehearseDeploy({ configFile: file, log, announceTimeoutMs: 150_000 });
        for (const line of formatRehearsal(report)) log(line);
        assert.equal(report.deploy.ok, true, formatSteps(report.deploy).join("\n"));
        for (const c of report.checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
        assert.deepEqual(Object.keys(report.announcedAfter).sort(), ["ams", "lax"]);
        assert.deepEqual(report.checks.map((c) => c.ok), [true, true, true, true, true, true, true]);
        assert.match(report.checks.find((c) => /anycast status/.test(c.name))?.detail ?? "", /^exit 0; lax announced, session Established, [1-9]\d* of \d+ paths up; ams announced, session Established/);
        assert.match(report.checks.find((c) => /Debian's nodejs/.test(c.name))?.detail ?? "", /lax: nodejs \S*deb12\S* \(v18\./);

        // The lab's report on the deployed hosts.
        const o = report.observations;
        assert.ok(o, "the report on the deployed hosts ran");
        assert.deepEqual(o.problems, []);
        for (const s of o.sessions) {
            assert.equal(s.edgeState, "Established", `edge session with ${s.pop}`);
            assert.equal(s.received, 1, `the edge received exactly the prefix from ${s.pop}`);
            assert.ok(s.popSide.length > 0 && s.popSide.every((x) => x.state === "Established" && x.imported === 0), `${s.pop}'s BIRD: ${JSON.stringify(s.popSide)}`);
        }
        assert.match(o.sessions.find((s) => s.pop === "lax")!.communities, /\(64600,6939\)/, "lax's configured community reaches the edge");
        assert.deepEqual(o.catchment.routes.map((r) => r.pop).sort(), ["ams", "lax"], "both PoPs' paths at the edge");
        assert.equal(o.catchment.routes.filter((r) => r.best).length, 1);
        assert.equal(o.catchment.status, 200);
        assert.equal(o.catchment.servedBy, o.catchment.bestPop, "the client that follows the edge is served by its best path");
        assert.deepEqual(o.https.map((h) => h.pop).sort(), ["ams", "lax"]);
        for (const h of o.https) {
            assert.equal(h.withCert.status, 200, `HTTPS pinned to ${h.pop}: ${h.withCert.error ?? ""}`);
            assert.equal(h.withCert.servedBy, h.pop, "answered by the PoP it is pinned to");
            assert.equal(h.withCert.firstLine, EXISTING_SERVICE.body.trim(), "the origin's own answer over the mesh");
            assert.notEqual(h.withoutCert.status, 200, "no answer without the origin-pull client certificate");
        }
        const probe = (from: string, to: string, port: number) => o.exposure.find((p) => p.source === from && p.to.startsWith(to) && p.port === port);
        assert.equal(probe("client", "anycast", 80)?.result, "connected", "an httpSources address reaches the anycast address");
        assert.equal(probe("outsider", "anycast", 443)?.result, "timeout", "an outsider is dropped on 443");
        assert.equal(probe("admin", "PoP", 22)?.result, "connected", "the deployer reaches SSH");
        assert.equal(probe("outsider", "PoP", 22)?.result, "timeout", "an outsider is dropped on SSH");
        assert.ok(o.exposure.some((p) => p.protocol === "udp" && p.ok), "WireGuard from an outsider is dropped");
        for (const p of o.exposure) assert.ok(p.ok, `${p.from} -> ${p.to} ${p.protocol}/${p.port}: ${p.result}, expected ${p.expect}`);
        const run = o.experiment.runs[0];
        assert.ok(run && !run.error, `proxy loss: ${run?.error}`);
        assert.equal(run.pop, o.catchment.bestPop);
        assert.ok(run.servedBy && run.servedBy !== run.pop, "another PoP served while nginx was stopped");
        assert.ok(run.recoveryMs !== undefined && o.edgePath?.withdrawnMs !== undefined && o.edgePath.backMs !== undefined);
        assert.deepEqual(await slotLeftovers(report.slot), [], "the rehearsal leaves nothing behind");
    });

    // The last revision with the bash agent (9fe1bcf^): hosts it deployed take this version's deploy as the next `pulumi up`.
    const BASH_AGENT_REVISION = "43c83ba";
    const upgradeProblem = previousVersionProblem(BASH_AGENT_REVISION);
    if (upgradeProblem) console.log(`upgrade rehearsal skipped: ${upgradeProblem}`);
    it(`upgrades hosts deployed by ${BASH_AGENT_REVISION} (the bash agent) with nothing replaced and no route or session moved`, { timeout: 25 * 60_000, skip: upgradeProblem }, async () => {
        const doc = parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.prod.yaml"), "utf8")) as { config: Record<string, any> };
        doc.config["anycast:pops"] = doc.config["anycast:pops"].slice(0, 2);
        const file = path.join(dir, "Pulumi.upgrade.yaml");
        fs.writeFileSync(file, stringify(doc));

        const report = await rehearseDeploy({ configFile: file, log, announceTimeoutMs: 150_000, upgradeFrom: BASH_AGENT_REVISION });
        for (const line of formatRehearsal(report)) log(line);
        assert.equal(report.deploy.ok, true, formatSteps(report.deploy).join("\n"));
        for (const c of report.checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
        const upgrade = report.checks.find((c) => /replaces nothing/.test(c.name));
        assert.ok(upgrade, "the upgrade check ran");
        assert.match(upgrade.detail, /replaced none/);
        assert.match(upgrade.detail, /no withdrawal, no changed route, every session kept/);
        assert.ok(report.upgrade?.run && report.upgrade.run.steps.length > 0, "the upgrade ran this version's changed commands");
        const json = rehearsalJson(report) as { format: string; ok: boolean; pops: Array<{ name: string; agent: { state?: string; version?: string } }> };
        assert.equal(json.format, "anycast-rehearsal/1");
        assert.equal(json.ok, true);
        const version = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;
        assert.deepEqual(json.pops.map((p) => [p.name, p.agent.state, p.agent.version]).sort(), [["ams", "announced", version], ["lax", "announced", version]]);
        assert.deepEqual(await slotLeftovers(report.slot), [], "the upgrade rehearsal leaves nothing behind");
    });
});
