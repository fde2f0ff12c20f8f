// The test suite's runner: node's own test runner (node:test's run(), the TAP reporter and its
// closing "# tests / # pass / # fail" counts), with the files in four groups scheduled for wall
// time and for the live tests' timing.
//
// The lab and the deploy rehearsal's hosts are the long files, and both load the machine: the lab
// with its namespaces' daemons, the rehearsal with systemd-nspawn hosts booting and installing
// packages. A lab experiment that shares the machine with booting hosts sees stalls of seconds
// and fails for the machine's sake, not the network's. So:
//
//   lab     the lab on Pulumi.lab.yaml (the full report), then on the other configs (wider
//           timers: hold times, no BFD); one lab at a time, as on any machine;
//   rootfs  the rehearsal's rootfs build (debootstrap: CPU-bound here), from the start;
//   render  the live render tests and the unit tests, one file at a time, from the start;
//   deploy  the rehearsal's hosts, once the lab on Pulumi.lab.yaml is done (the rootfs is
//           built by then, or they wait for it), one file at a time: two at once beside a lab
//           loaded the machine past 30 (vtysh took over 10 s, a booting host's SSH over 90 s).
//
// Each group's TAP output is printed when the group ends (three streams at once would interleave);
// while they run, a line per finished top-level test shows progress (node reports a group's files
// in order, so a line can wait for the file before it). The last line sums up all groups.
//
//   node scripts/run-tests.mjs                      every dist/test/**/*.test.js
//   node scripts/run-tests.mjs dist/test/unit ...   only these files or directories
import { run } from "node:test";
import { tap } from "node:test/reporters";
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const TESTS = path.join(ROOT, "dist", "test");

/**
 * The groups, by file path under dist/test. A file belongs to the first group that matches it
 * (the last matches everything); within a group files start in the order of `first`, then by name.
 * `after`: the group starts when that file of another group has finished.
 */
const GROUPS = [
    { name: "lab", concurrency: 1, files: [/^lab\/lab\.test\.js$/, /^lab\/configs\.test\.js$/], first: [/^lab\/lab\.test\.js$/] },
    {
        name: "deploy", concurrency: 1, files: [/^deploy\/hosts\.test\.js$/, /^deploy\/rehearsal\.test\.js$/],
        first: [/^deploy\/rehearsal\.test\.js$/], after: /^lab\/lab\.test\.js$/,
    },
    // The rootfs build (the longest file, CPU-bound) in a lane of its own, beside the others.
    { name: "rootfs", concurrency: 1, files: [/^deploy\/rootfs\.test\.js$/], first: [] },
    {
        name: "render", concurrency: 1, files: [/./],
        // One file at a time: with the labs and the rehearsal beside them, two at once loaded the
        // machine past 25. The CPU-heavy unit tests last, when the lab is on its configs with
        // wider timers.
        first: [/^render\//, /^(?!unit\/(readme-example|package|cli)\.test\.js$)/],
    },
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
const groupOf = (file) => GROUPS.find((g) => g.files.some((p) => p.test(relative(file))));
const rank = (group, file) => {
    const i = group.first.findIndex((p) => p.test(relative(file)));
    return i === -1 ? group.first.length : i;
};

/** The TAP reporter's closing counts ("tests 12", "pass 11", ...), summed over the groups. */
const COUNTS = ["tests", "suites", "pass", "fail", "cancelled", "skipped", "todo"];
const totals = Object.fromEntries(COUNTS.map((k) => [k, 0]));
const started = Date.now();
const clock = () => `+${Math.round((Date.now() - started) / 1000)} s`;
let failed = false;

/** Resolvers of the `after` dependencies: a file's path -> called when it has finished. */
const finished = new Map();
const whenFinished = (pattern) => {
    const file = files.find((f) => pattern.test(relative(f)));
    if (!file) return Promise.resolve();
    if (!finished.has(file)) {
        let resolve;
        const promise = new Promise((r) => { resolve = r; });
        finished.set(file, { promise, resolve });
    }
    return finished.get(file).promise;
};

/** One group through node's runner and the TAP reporter; its output, once it ends. */
async function runGroup(group, groupFiles) {
    if (group.after) await whenFinished(group.after);
    console.log(`# ${clock()}: ${group.name}: starting ${groupFiles.length} file(s), ${group.concurrency} at a time`);
    const stream = run({ files: groupFiles.sort((a, b) => rank(group, a) - rank(group, b)), concurrency: group.concurrency });
    stream.on("test:diagnostic", (d) => {
        const m = /^(\w+) (\d+)$/.exec(d.message);
        if (d.nesting === 0 && m && COUNTS.includes(m[1])) totals[m[1]] += Number(m[2]);
    });
    const onTopLevel = (verdict) => (d) => {
        if (verdict === "not ok") failed = true;
        if (d.nesting !== 0 || !d.file) return;
        console.log(`# ${clock()}: ${group.name}: ${verdict} - ${d.name} (${relative(d.file)})`);
    };
    stream.on("test:pass", onTopLevel("ok"));
    stream.on("test:fail", onTopLevel("not ok"));
    // A file's own completion event (its name is its path) releases the groups waiting on it;
    // the end of its group's stream does too, whatever happened to it.
    stream.on("test:complete", (d) => {
        if (d.nesting === 0 && d.file && d.name === d.file) finished.get(d.file)?.resolve();
    });
    const chunks = [];
    const out = stream.compose(tap);
    for await (const chunk of out) chunks.push(chunk);
    for (const f of groupFiles) finished.get(f)?.resolve();
    return chunks.join("");
}

const plan = GROUPS.map((g) => ({ group: g, files: files.filter((f) => groupOf(f) === g) })).filter((p) => p.files.length > 0);
await Promise.all(plan.map(async ({ group, files: groupFiles }) => {
    const output = await runGroup(group, groupFiles);
    console.log(`# ${clock()}: ${group.name}: done; its output:`);
    process.stdout.write(output);
}));
const summary = COUNTS.map((k) => `${k} ${totals[k]}`).join(", ");
console.log(`# all groups: ${summary}, duration ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exitCode = failed || totals.fail > 0 || totals.cancelled > 0 ? 1 : 0;
