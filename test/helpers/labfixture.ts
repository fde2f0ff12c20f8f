/**
 * A real lab report for tests of what is made from one: test/fixtures/lab-run.json is the
 * `--json` of `npm run lab` on Pulumi.lab.yaml, trimmed to two runs of each experiment (their
 * summaries recomputed over those two) and a few rewrites and exposure probes. Its `alerts` (what
 * the lab's Prometheus fired for each kind of fault) are from a later run of the same config.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { LabReport } from "../../lab/report";
import { REPO_ROOT } from "./golden";

export const LAB_REPORT_FIXTURE = path.join(REPO_ROOT, "test", "fixtures", "lab-run.json");

export function fixtureReport(): LabReport {
    return JSON.parse(fs.readFileSync(LAB_REPORT_FIXTURE, "utf8")) as LabReport;
}
