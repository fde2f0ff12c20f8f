// The test suite's runner: node's own test runner (node:test's run(), TAP on stdout, the usual
// closing "# tests / # pass / # fail" summary), with the files in an order chosen for wall time.
//
// `node --test dir/` sorts files by name, so the two deploy files (which wait on a 5-minute
// debootstrap on a fresh machine) and the lab (about 20 minutes) ended up one after the other.
// Here the slow files start first, side by side, and the many short ones fill the slots behind
// them. Three files at a time: the rootfs build is mostly waiting on the package mirror and disk.
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
 * The order files start in: the two longest first (the rootfs build, then the lab); the live
 * render tests next, while the rootfs build mostly waits on disk and mirror, so that their timing
 * meets the least load; then the deploy rehearsal (it waits for the rootfs), then the rest.
 */
const ORDER = [/^deploy\/hosts\.test\.js$/, /^lab\/lab\.test\.js$/, /^render\//, /^deploy\/rehearsal\.test\.js$/];
const CONCURRENCY = 3;

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
const rank = (file) => {
    const i = ORDER.findIndex((pattern) => pattern.test(path.relative(TESTS, file)));
    return i === -1 ? ORDER.length : i;
};
files.sort((a, b) => rank(a) - rank(b));

let failed = false;
const stream = run({ files, concurrency: CONCURRENCY });
stream.on("test:fail", () => {
    failed = true;
});
stream.compose(tap).pipe(process.stdout);
stream.on("end", () => {
    process.exitCode = failed ? 1 : 0;
});
