/**
 * The deploy rehearsal end to end (`anycast lab --deploy`; needs root, CI runs as root): the
 * prod example with two PoPs on new instances and its existing origin logged in to as a non-root
 * sudo user, deployed by the stack's real remote commands over SSH to fresh Debian 12 hosts,
 * then the four checks (no-change deploy, a communities change, a PoP reboot, the existing
 * origin's own table and service). Timings are printed, not asserted: the machine stalls.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { deployPreconditionProblem, slotLeftovers, teardownAllClouds } from "../../lab/deploy/hosts";
import { formatRehearsal, rehearseDeploy } from "../../lab/deploy/rehearsal";
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

    it("deploys a stack to fresh hosts, every PoP announces, and the four checks hold", { timeout: 25 * 60_000 }, async () => {
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
        assert.deepEqual(report.checks.map((c) => c.ok), [true, true, true, true, true]);
        assert.deepEqual(await slotLeftovers(report.slot), [], "the rehearsal leaves nothing behind");
    });
});
