// The test suite's runner: node's own test runner (node:test's run(), TAP on stdout, the usual
// closing "# tests / # pass / # fail" summary), with the files in two phases chosen for wall
// time and for the live tests' timing.
//
// The lab and the deploy rehearsal's hosts are the long files, and both load the machine: the lab
// with its namespaces' daemons, the rehearsal with systemd-nspawn hosts booting and installing
// packages. A lab experiment that shares the machine with booting hosts sees stalls of seconds
// and fails for the machine's sake, not the network's. So:
//
//   phase 1  the lab on Pulumi.lab.yaml (the full report), beside the rehearsal's rootfs build
//            (mostly mirror downloads and disk), the live render tests and the light unit tests;
//   phase 2  the lab on the other configs (wider timers: hold times, no BFD), beside the
//            rehearsal's hosts (their rootfs is built by now) and the CPU-heavy unit tests.
//
// Three files at a time in each phase. The last line sums up both phases.
//
//   node scripts/run-tests.mjs                      every dist/test/**/*.test.js
//   node scripts/run-tests.mjs dist/test/unit ...   only these files or directories
import { run } from "node:test";
import { tap } from "node:test/reporters";
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const TESTS = path.join(ROOT, "dist", "test");
const CONCURRENCY = 3;

/**
 * Files of phase 2, by path under dist/test; every other file runs in phase 1. Within a phase
 * the files listed in START_FIRST start first (the longest), so the short ones fill the slots
 * behind them.
 */
const PHASE_2 = [
    /^lab\/configs\.test\.js$/, /^deploy\/hosts\.test\.js$/, /^deploy\/rehearsal\.test\.js$/,
    /^unit\/(readme-example|package|cli)\.test\.js$/,
];
const START_FIRST = [
    /^lab\/lab\.test\.js$/, /^deploy\/rootfs\.test\.js$/, /^render\//,
    /^lab\/configs\.test\.js$/, /^deploy\/rehearsal\.test\.js$/, /^deploy\/hosts\.test\.js$/,
];

function testFiles(target) {
    const stat = fs.statSync(target);
    if (stat.isFile()) return [path.resolve(target)];
    return fs.readdirSync(target, { recursive: true })
        .filter((f) => f.endsWith(".test.js"))
        .map((f) => path.join(path.resolve(target), f))
        .sort();
}

const targets = process.argv.slice(2);
if (!fs.existsSync(TESTS)) {
    console.error(`run-tests: ${path.relative(process.cwd(), TESTS)} does not exist: run "npm run build" first`);
    process.exit(2);
}
const files = [...new Set((targets.length > 0 ? targets : [TESTS]).flatMap(testFiles))];
const relative = (file) => path.relative(TESTS, file);
const rank = (file) => {
    const i = START_FIRST.findIndex((pattern) => pattern.test(relative(file)));
    return i === -1 ? START_FIRST.length : i;
};
const inPhase2 = (file) => PHASE_2.some((pattern) => pattern.test(relative(file)));
const phases = [
    { name: "phase 1: the lab on Pulumi.lab.yaml, the rootfs build, render and unit tests", files: files.filter((f) => !inPhase2(f)) },
    { name: "phase 2: the lab on other configs, the deploy rehearsal's hosts, CPU-heavy unit tests", files: files.filter(inPhase2) },
].filter((p) => p.files.length > 0);

/** The TAP reporter's closing counts ("tests 12", "pass 11", ...), summed over the phases. */
const COUNTS = ["tests", "suites", "pass", "fail", "cancelled", "skipped", "todo"];
const totals = Object.fromEntries(COUNTS.map((k) => [k, 0]));
const started = Date.now();
let failed = false;

/** One phase through node's runner and the TAP reporter; resolves once its output is written. */
function runPhase(phase) {
    console.log(`# ${phase.name} (${phase.files.length} files)`);
    const stream = run({ files: phase.files.sort((a, b) => rank(a) - rank(b)), concurrency: CONCURRENCY });
    stream.on("test:diagnostic", (d) => {
        const m = /^(\w+) (\d+)$/.exec(d.message);
        if (d.nesting === 0 && m && COUNTS.includes(m[1])) totals[m[1]] += Number(m[2]);
    });
    stream.on("test:fail", () => {
        failed = true;
    });
    const out = stream.compose(tap);
    out.pipe(process.stdout, { end: false });
    return new Promise((resolve, reject) => {
        out.on("end", resolve);
        out.on("error", reject);
    });
}

for (const phase of phases) await runPhase(phase);
const summary = COUNTS.map((k) => `${k} ${totals[k]}`).join(", ");
console.log(`# all phases: ${summary}, duration ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exitCode = failed || totals.fail > 0 || totals.cancelled > 0 ? 1 : 0;
