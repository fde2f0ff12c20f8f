/** What the lab's end-to-end test files check of every report, and when they cannot run. */
import * as assert from "node:assert/strict";
import { checkLabPreconditions, LabReport } from "../../lab/index";
import { formatReport } from "../../lab/report";
import { REPORT_WIDTH } from "../../lab/text";

/** Why the lab cannot run on this machine (not root, a tool missing), or undefined when it can. */
export function labSkipReason(): string | undefined {
    try {
        checkLabPreconditions("frr");
        return undefined;
    } catch (e) {
        return (e as Error).message;
    }
}

/** What every green report has, whatever the config. */
export function assertGreen(report: LabReport): void {
    assert.deepEqual(report.problems, []);
    assert.equal(report.ok, true);
    const long = formatReport(report).split("\n").filter((l) => l.length > REPORT_WIDTH);
    assert.deepEqual(long, [], `report lines over ${REPORT_WIDTH} columns`);
}

/** Every experiment run that ran moved the region to another PoP and back, within the config's bounds. */
export function assertExperiments(report: LabReport, runs: number): void {
    for (const e of report.experiments.filter((x) => !x.skipped)) {
        assert.equal(e.runs.length, runs, e.title);
        for (const [i, r] of e.runs.entries()) {
            assert.equal(r.error, undefined, `${e.id} run ${i + 1} on ${r.pop}`);
            assert.ok(r.servedBy && r.servedBy !== r.pop, `${e.id} run ${i + 1}: served by ${r.servedBy}`);
            assert.ok(r.failoverMs! <= r.bounds.failoverMs, `${e.id} run ${i + 1}: failover ${r.failoverMs} ms (${r.bounds.basis})`);
            assert.ok(r.recoveryMs! <= r.bounds.recoveryMs, `${e.id} run ${i + 1}: recovery ${r.recoveryMs} ms`);
        }
    }
}
