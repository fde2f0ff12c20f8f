/**
 * Golden files: rendered text is compared with test/golden/<name>, committed for review.
 * `UPDATE_GOLDEN=1 npm test` rewrites them; the diff is then read like any code change.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

/** The repo root, found from dist/test/helpers or test/helpers alike. */
export const REPO_ROOT = (() => {
    let dir = __dirname;
    while (!fs.existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
    return dir;
})();

export function assertGolden(name: string, actual: string): void {
    const file = path.join(REPO_ROOT, "test", "golden", name);
    if (process.env.UPDATE_GOLDEN === "1" || !fs.existsSync(file)) {
        if (process.env.CI && !fs.existsSync(file)) {
            assert.fail(`golden file test/golden/${name} is missing; run UPDATE_GOLDEN=1 npm test and commit it`);
        }
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, actual);
        return;
    }
    assert.equal(actual, fs.readFileSync(file, "utf8"), `rendered text differs from test/golden/${name} (UPDATE_GOLDEN=1 to accept)`);
}
