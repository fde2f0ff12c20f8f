// The test suite's runner: node's own test runner (node:test's run(), the TAP reporter and its
// closing "# tests / # pass / # fail" counts), over the two tiers:
//
//   fast  dist/test/{unit,render,lab,deploy}: pure tests and the tool checks (bird -p, nginx -t,
//         nft -c, wg, cloud-init schema, shellcheck, systemd-analyze); no daemons, two files at
//         a time. What one runs after every change.
//   live  dist/test/live: network namespaces, daemons, the lab and the deploy rehearsal, one
//         file at a time (two labs, or a lab beside booting hosts, would share the machine's
//         two cores and each other's namespaces).
//
// The whole suite runs the fast tier first and the live tier only when it passed, so a logic
// break fails in a couple of minutes. Beside the fast tier it builds the rehearsal's rootfs
// (live/rootfs.test.js: CPU and downloads, no timing in it, so sharing the machine changes no
// verdict), which the rehearsal files then find cached.
//
// Each tier's TAP output is printed when it ends; while it runs, a line per finished top-level
// test shows progress. The last line sums up both tiers.
//
//   node scripts/run-tests.mjs                     both tiers (npm test)
//   node scripts/run-tests.mjs fast|live           one tier (npm run test:fast, test:live)
//   node scripts/run-tests.mjs dist/test/x ...     only these files or directories, one at a time
import { run } from "node:test";
import { tap } from "node:test/reporters";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const TESTS = path.join(ROOT, "dist", "test");
const LIVE = path.join(TESTS, "live");
/** The live file that runs beside the fast tier, when both tiers run. */
const ROOTFS = path.join(LIVE, "rootfs.test.js");
/**
 * The order of the live tier: the small files first (each proves one thing on the real daemons,
 * in seconds), then the lab on Pulumi.lab.yaml (the full report), the lab on the other configs,
 * and the rehearsal's hosts. A file not listed runs after the small ones, by name.
 */
const LIVE_ORDER = ["lab.test.js", "configs.test.js", "hosts.test.js", "rehearsal.test.js"];

function testFiles(target) {
    if (!fs.existsSync(target)) return [];
    if (fs.statSync(target).isFile()) return [path.resolve(target)];
    return fs.readdirSync(target, { recursive: true })
        .filter((f) => f.endsWith(".test.js"))
        .map((f) => path.join(path.resolve(target), f))
        .sort();
}

if (!fs.existsSync(TESTS)) {
    console.error(`run-tests: ${path.relative(process.cwd(), TESTS)} does not exist: run "npm run build" first`);
    process.exit(2);
}
const relative = (file) => path.relative(TESTS, file);
const isLive = (file) => file.startsWith(LIVE + path.sep);
const all = testFiles(TESTS);
const fastFiles = all.filter((f) => !isLive(f));
const liveFiles = all.filter(isLive).sort((a, b) => {
    const rank = (f) => LIVE_ORDER.indexOf(path.basename(f));
    return rank(a) - rank(b) || a.localeCompare(b);
});

/** The TAP reporter's closing counts ("tests 12", "pass 11", ...), summed over the tiers. */
const COUNTS = ["tests", "suites", "pass", "fail", "cancelled", "skipped", "todo"];
const totals = Object.fromEntries(COUNTS.map((k) => [k, 0]));
const started = Date.now();
const seconds = (since) => ((Date.now() - since) / 1000).toFixed(1);
const clock = () => `+${Math.round((Date.now() - started) / 1000)} s`;
/** The machine's highest 1-minute load seen while the suite ran (BENCHMARKS.md records it). */
let peakLoad = os.loadavg()[0];
const loadTimer = setInterval(() => { peakLoad = Math.max(peakLoad, os.loadavg()[0]); }, 5000).unref();

/** Files through node's runner and the TAP reporter; its output once they end, and whether all passed. */
async function runFiles(name, files, concurrency) {
    const t0 = Date.now();
    console.log(`# ${clock()}: ${name}: starting ${files.length} file(s), ${concurrency} at a time`);
    let failed = false;
    const counts = Object.fromEntries(COUNTS.map((k) => [k, 0]));
    const stream = run({ files, concurrency });
    stream.on("test:diagnostic", (d) => {
        const m = /^(\w+) (\d+)$/.exec(d.message);
        if (d.nesting === 0 && m && COUNTS.includes(m[1])) counts[m[1]] += Number(m[2]);
    });
    const onTopLevel = (verdict) => (d) => {
        if (verdict === "not ok") failed = true;
        if (d.nesting !== 0 || !d.file) return;
        console.log(`# ${clock()}: ${name}: ${verdict} - ${d.name} (${relative(d.file)})`);
    };
    stream.on("test:pass", onTopLevel("ok"));
    stream.on("test:fail", onTopLevel("not ok"));
    const chunks = [];
    for await (const chunk of stream.compose(tap)) chunks.push(chunk);
    for (const k of COUNTS) totals[k] += counts[k];
    const ok = !failed && counts.fail === 0 && counts.cancelled === 0;
    console.log(`# ${clock()}: ${name}: done in ${seconds(t0)} s (${counts.pass} of ${counts.tests} passed); its output:`);
    process.stdout.write(chunks.join(""));
    return { ok, seconds: Number(seconds(t0)), counts };
}

const args = process.argv.slice(2);
const tier = args.length === 1 && ["fast", "live"].includes(args[0]) ? args[0] : undefined;
const lines = [];
let ok = true;
if (args.length > 0 && !tier) {
    const files = [...new Set(args.flatMap(testFiles))];
    if (files.length === 0) {
        console.error(`run-tests: no test files in ${args.join(" ")}`);
        process.exit(2);
    }
    ok = (await runFiles("files", files, 1)).ok;
} else if (tier === "fast") {
    const r = await runFiles("fast tier", fastFiles, 2);
    ok = r.ok;
    lines.push(`fast tier ${r.seconds} s`);
} else if (tier === "live") {
    const r = await runFiles("live tier", liveFiles, 1);
    ok = r.ok;
    lines.push(`live tier ${r.seconds} s`);
} else {
    const rootfs = liveFiles.includes(ROOTFS) ? runFiles("rootfs build (beside the fast tier)", [ROOTFS], 1) : undefined;
    const fast = await runFiles("fast tier", fastFiles, 2);
    lines.push(`fast tier ${fast.seconds} s`);
    const built = rootfs ? await rootfs : undefined;
    if (built) lines.push(`rootfs ${built.seconds} s`);
    if (!fast.ok) {
        ok = false;
        console.log(`# ${clock()}: live tier not run: the fast tier failed (${fast.counts.fail} failed, ${fast.counts.cancelled} cancelled); fix it first`);
    } else {
        const live = await runFiles("live tier", liveFiles.filter((f) => f !== ROOTFS), 1);
        lines.push(`live tier ${live.seconds} s`);
        ok = live.ok && (built?.ok ?? true);
    }
}
clearInterval(loadTimer);
peakLoad = Math.max(peakLoad, os.loadavg()[0]);
const summary = COUNTS.map((k) => `${k} ${totals[k]}`).join(", ");
console.log(`# all tiers: ${summary}, duration ${seconds(started)} s${lines.length ? ` (${lines.join(", ")})` : ""}, peak load ${peakLoad.toFixed(1)}`);
process.exitCode = ok && totals.fail === 0 && totals.cancelled === 0 ? 0 : 1;
