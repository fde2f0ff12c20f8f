/**
 * The deploy rehearsal end to end (`anycast lab --deploy`; needs root, CI runs as root): the
 * prod example with two PoPs on new instances and its existing origin logged in to as a non-root
 * sudo user, deployed by the stack's real remote commands over SSH to fresh Debian 12 hosts,
 * then the checks (every PoP's agent on Debian's nodejs 18, a no-change deploy, a communities
 * change, a PoP reboot, the existing origin's own table and service). Timings are printed, not asserted: the machine stalls.
 */
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { EXISTING_SERVICE } from "../../lab/deploy/existing-host";
import { deployPreconditionProblem, teardownAllClouds } from "../../lab/deploy/hosts";
import { slotLeftovers, teardownKeptSlots } from "../../lab/deploy/slots";
import { previousVersionProblem } from "../../lab/deploy/previous";
import { formatRedeploy, redeployKept } from "../../lab/deploy/redeploy";
import { NETWORK_NAME } from "../../stacks/network/stack";
import { formatRehearsal, rehearsalJson, rehearseDeploy } from "../../lab/deploy/rehearsal";
import { formatSteps } from "../../lab/deploy/remote";
import { tempDir, which } from "../helpers/tools";

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
const problem = deployPreconditionProblem() ?? (which("bird") && which("birdc") ? undefined : "needs bird and birdc (bash scripts/setup.sh)");
if (problem) console.log(`deploy rehearsal test skipped: ${problem}`);

/** The CLI as a user runs it (bin/anycast.js), in a process of its own. */
function runCli(args: string[], timeoutMs = 120_000): { code: number; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, "bin", "anycast.js"), ...args], { encoding: "utf8", timeout: timeoutMs });
    return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

const log = (line: string) => console.log(`rehearsal:${line.startsWith("  ") ? line.slice(1) : ` ${line}`}`);

describe("anycast lab --deploy", { skip: problem }, () => {
    const dir = tempDir("rehearsal");
    after(async () => {
        fs.rmSync(dir, { recursive: true, force: true });
        await teardownAllClouds();
        await teardownKeptSlots().catch((e: Error) => console.log(`rehearsal: could not remove the kept hosts: ${e.message}`));
    });

    it("deploys a stack to fresh hosts, every PoP announces, the lab's report holds on them, and the checks hold; " +
        "kept, it takes a drain and an undrain by config, and anycast lab --down removes it", { timeout: 25 * 60_000 }, async () => {
        const doc = parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.prod.yaml"), "utf8")) as { config: Record<string, any> };
        doc.config["anycast:pops"] = doc.config["anycast:pops"].slice(0, 2);
        doc.config["anycast:origin"].host.user = "deployer";
        const file = path.join(dir, "Pulumi.rehearsal.yaml");
        fs.writeFileSync(file, stringify(doc));

        const report = await rehearseDeploy({ configFile: file, log, announceTimeoutMs: 150_000, keep: true });
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

        // Kept: the hosts outlive the rehearsal, and the printed command reads them.
        const kept = report.kept;
        assert.ok(kept, "the report says where the kept hosts' files are");
        assert.match(kept.statusCommand, /^anycast status --outputs \S+ --identity \S+ --known-hosts \S+$/);
        const statusArgs = kept.statusCommand.split(" ").slice(1);
        const status = runCli([...statusArgs, "--json"]);
        assert.equal(status.code, 0, status.stderr);
        assert.deepEqual((JSON.parse(status.stdout) as { pops: Array<{ name: string; state: string }> }).pops.map((p) => [p.name, p.state]),
            [["lax", "announced"], ["ams", "announced"]]);

        // A host it cannot reach is a row with the reason, and the exit code says so.
        const outputs = JSON.parse(fs.readFileSync(kept.outputsFile, "utf8")) as { pops: Record<string, { ssh: { host: string } }> };
        outputs.pops.ams.ssh.host = `fdac:de:${kept.slot.toString(16)}:99::2`;
        const unreachableFile = path.join(dir, "outputs-unreachable.json");
        fs.writeFileSync(unreachableFile, JSON.stringify(outputs));
        const unreachable = runCli(["status", "--outputs", unreachableFile, ...statusArgs.slice(3), "--timeout", "5", "--json"]);
        assert.equal(unreachable.code, 1, unreachable.stdout + unreachable.stderr);
        const rows = (JSON.parse(unreachable.stdout) as { pops: Array<{ name: string; state: string; ok: boolean; why: string }> }).pops;
        assert.deepEqual(rows.map((p) => [p.name, p.ok]), [["lax", true], ["ams", false]]);
        assert.match(rows[1].why, /^ssh root@fdac:de:[0-9a-f]+:99::2 port 22: /, "the reason names the host ssh could not reach");
        assert.doesNotMatch(unreachable.stdout + unreachable.stderr, /\n\s+at /, "no stack trace");

        // Drain by config, deployed onto the kept hosts as a second `pulumi up`: through the CLI, as a user runs it.
        const drainPop = o.catchment.bestPop!;
        const drainedDoc = structuredClone(doc);
        drainedDoc.config["anycast:pops"].find((p: { name: string }) => p.name === drainPop).drained = true;
        const drainedFile = path.join(dir, "Pulumi.drained.yaml");
        fs.writeFileSync(drainedFile, stringify(drainedDoc));
        const jsonFile = path.join(dir, "drain.json");
        const drain = runCli(["lab", "--deploy", "--keep", "--config", drainedFile, "--json", jsonFile], 15 * 60_000);
        for (const line of drain.stdout.split("\n")) log(`  ${line}`);
        assert.equal(drain.code, 0, drain.stderr);
        assert.ok(drain.stdout.split("\n").includes(kept.statusCommand), "it prints the same anycast status command on a line of its own");
        const drained = JSON.parse(fs.readFileSync(jsonFile, "utf8")) as {
            ok: boolean; changed: string[]; transitions: Array<{ pop: string; to: string; gracefulAtMs?: number; withdrawnAtMs?: number }>;
            requests: { total: number; failed: number; failures?: string }; checks: Array<{ name: string; ok: boolean; detail: string }>;
        };
        assert.equal(drained.ok, true);
        assert.deepEqual(drained.changed, [`${NETWORK_NAME}-${drainPop}-push-anycast-health.json`], "only the drained PoP's agent settings");
        const t = drained.transitions.find((x) => x.pop === drainPop)!;
        assert.ok(t.gracefulAtMs !== undefined && t.withdrawnAtMs !== undefined && t.gracefulAtMs <= t.withdrawnAtMs, JSON.stringify(t));
        assert.ok(drained.requests.total > 0);
        // No request lost: its checks fail on any failure but a reset the route change made in flight (resetsAtPathSwitch).
        const drainChecks = drained.checks.filter((c) => / drained by the config/.test(c.name));
        assert.equal(drainChecks.length, 1, drained.checks.map((c) => c.name).join("; "));
        assert.match(drainChecks[0].detail, /; 0 request\(s\) lost/, `no request lost: ${drained.requests.failures}`);
        assert.match(drained.checks.find((c) => /anycast status/.test(c.name))!.detail, new RegExp(`${drainPop} withdrawn \\(drained\\)`));

        // A change of hosts is refused before anything runs.
        const grownDoc = parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.prod.yaml"), "utf8")) as { config: Record<string, any> };
        grownDoc.config["anycast:origin"].host.user = "deployer";
        const grownFile = path.join(dir, "Pulumi.grown.yaml");
        fs.writeFileSync(grownFile, stringify(grownDoc));
        await assert.rejects(redeployKept({ configFile: grownFile, log }), (e: Error) => e.name === "KeptRehearsalRefused" && /changes the hosts/.test(e.message));

        // Undrained: back, unmarked, with nothing else run.
        const back = await redeployKept({ configFile: file, log });
        for (const line of formatRedeploy(back)) log(line);
        for (const c of back.checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
        assert.deepEqual(back.changed, [`${NETWORK_NAME}-${drainPop}-push-anycast-health.json`]);
        assert.ok(back.transitions.find((x) => x.pop === drainPop)?.returnedAtMs !== undefined);
        assert.deepEqual(back.pops.map((p) => [p.name, p.announced]), [["lax", true], ["ams", true]]);

        const down = runCli(["lab", "--down"]);
        assert.equal(down.code, 0, down.stderr);
        assert.match(down.stdout, /removed 1 kept rehearsal/);
        assert.deepEqual(await slotLeftovers(report.slot), [], "the kept rehearsal leaves nothing behind after anycast lab --down");
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
