/** The GitHub workflow we ship for users is accepted by action-validator (schema check). */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { REPO_ROOT } from "../helpers/golden";

const VALIDATOR = path.join(REPO_ROOT, "node_modules", ".bin", "action-validator");

function validate(file: string) {
    return spawnSync(VALIDATOR, [file], { encoding: "utf8" });
}

describe("GitHub workflow", () => {
    it("preview.yml passes action-validator", () => {
        const r = validate(path.join(REPO_ROOT, ".github", "workflows", "preview.yml"));
        assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    });

    it("runs pulumi preview with credentials from repository secrets", () => {
        const text = fs.readFileSync(path.join(REPO_ROOT, ".github", "workflows", "preview.yml"), "utf8");
        assert.match(text, /uses: pulumi\/actions@v\d+/);
        assert.match(text, /command: preview/);
        for (const s of ["PULUMI_ACCESS_TOKEN", "VULTR_API_KEY", "CLOUDFLARE_API_TOKEN"]) {
            assert.match(text, new RegExp(`\\$\\{\\{ secrets\\.${s} \\}\\}`));
        }
    });

    it("the validator rejects a broken workflow (so the check above means something)", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-wf-"));
        try {
            const broken = path.join(dir, "broken.yml");
            fs.writeFileSync(broken, "name: x\non: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - usess: nothing\n");
            assert.notEqual(validate(broken).status, 0);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
