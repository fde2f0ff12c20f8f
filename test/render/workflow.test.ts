/** The GitHub workflow we ship for users is accepted by action-validator (schema check). */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { parse as parseYaml } from "yaml";
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

    it("on a pull request from a fork (no secrets) runs the offline checks instead of pulumi preview", () => {
        type Step = { id?: string; if?: string; run?: string; uses?: string; env?: Record<string, string> };
        const wf = parseYaml(fs.readFileSync(path.join(REPO_ROOT, ".github", "workflows", "preview.yml"), "utf8")) as { jobs: { preview: { steps: Step[] } } };
        const steps = wf.jobs.preview.steps;
        const check = steps.find((s) => s.id === "credentials");
        assert.ok(check?.run, "a step with id 'credentials' decides whether the secrets are there");
        for (const s of ["PULUMI_ACCESS_TOKEN", "VULTR_API_KEY", "CLOUDFLARE_API_TOKEN"]) assert.equal(check.env?.[s], `\${{ secrets.${s} }}`);
        const pulumi = steps.find((s) => s.uses?.startsWith("pulumi/actions@"));
        assert.equal(pulumi?.if, "steps.credentials.outputs.available == 'true'");
        const offline = steps.find((s) => s.run?.startsWith("npx anycast preview"));
        assert.equal(offline?.if, "steps.credentials.outputs.available != 'true'");
        assert.ok(steps.some((s) => s.run?.includes("anycast validate") && s.if === undefined), "validate runs on every pull request");

        // The check itself, run as GitHub runs it (bash -e): no secrets -> available=false and a notice; all three -> true.
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-wf-"));
        try {
            const runCheck = (secrets: Record<string, string>) => {
                const out = path.join(dir, "output");
                const summary = path.join(dir, "summary");
                fs.writeFileSync(out, "");
                fs.writeFileSync(summary, "");
                const r = spawnSync("bash", ["-e", "-c", check.run!], {
                    encoding: "utf8",
                    env: { PATH: process.env.PATH ?? "", GITHUB_OUTPUT: out, GITHUB_STEP_SUMMARY: summary, ...secrets },
                });
                assert.equal(r.status, 0, r.stderr);
                return { output: fs.readFileSync(out, "utf8"), summary: fs.readFileSync(summary, "utf8"), stdout: r.stdout };
            };
            const fork = runCheck({ PULUMI_ACCESS_TOKEN: "", VULTR_API_KEY: "", CLOUDFLARE_API_TOKEN: "" });
            assert.equal(fork.output, "available=false\n");
            assert.match(fork.stdout, /::notice .*fork/);
            assert.match(fork.summary, /offline anycast preview/);
            const own = runCheck({ PULUMI_ACCESS_TOKEN: "p", VULTR_API_KEY: "v", CLOUDFLARE_API_TOKEN: "c" });
            assert.equal(own.output, "available=true\n");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
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
