/**
 * The registry of pushed files (components/core/artifacts.ts): docs/ARTIFACTS.md is what it
 * generates, its facts hold together, and the push script it builds behaves as documented on a
 * real shell: a file that fails its check never replaces the live one.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
    ARTIFACT_NAMES, ARTIFACTS, allArtifacts, artifact, artifactsFor, PushedArtifact, pushScript,
} from "../../components/core/artifacts";
import { ARTIFACTS_DOC_PATH, renderArtifactsDoc } from "../../components/core/artifacts-doc";
import { renderHealthAgent } from "../../components/core/render/health";
import { REPO_ROOT } from "../helpers/golden";
import { needTools, run, tempDir } from "../helpers/tools";

const pushed = allArtifacts().filter((a): a is PushedArtifact => a.delivery === "push");

describe("artifact registry", () => {
    it("docs/ARTIFACTS.md is exactly what the registry generates (`npm run docs` rewrites it)", () => {
        const committed = fs.readFileSync(path.join(REPO_ROOT, ARTIFACTS_DOC_PATH), "utf8");
        assert.equal(committed, renderArtifactsDoc(), `${ARTIFACTS_DOC_PATH} is stale: run \`npm run docs\` and commit it`);
    });

    it("the doc states each file's path, mode, check and reload as the pushes run them", () => {
        const doc = renderArtifactsDoc();
        for (const a of pushed) {
            assert.ok(doc.includes(`| \`${a.name}\` | \`${a.remotePath}\` | ${a.owner}:${a.group} ${a.mode} |`), a.name);
            if (a.validate) assert.ok(doc.includes("```sh\n" + a.validate + "\n```"), `${a.name}: validate`);
            if (a.apply) assert.ok(doc.includes("```sh\n" + a.apply + "\n```"), `${a.name}: apply`);
            assert.ok(doc.includes("```sh\n" + pushScript(a) + "\n```"), `${a.name}: push script`);
        }
        assert.doesNotMatch(doc, /sourced/, "the env file is read as data, never sourced");
        assert.doesNotMatch(doc, /nginx -s reload/);
    });

    it("names every artifact once, under its own name", () => {
        assert.deepEqual(Object.keys(ARTIFACTS).sort(), [...ARTIFACT_NAMES].sort());
        for (const name of ARTIFACT_NAMES) assert.equal(ARTIFACTS[name].name, name);
        assert.equal(new Set(pushed.map((a) => a.remotePath)).size, pushed.length, "two artifacts share a path");
        assert.throws(() => artifact("bird.cfg"), /"bird.cfg" is not an artifact/);
    });

    it("keeps its facts consistent: absolute paths, octal modes, secrets owner-only, checks on $new", () => {
        for (const a of allArtifacts()) {
            assert.ok(a.roles.length > 0, `${a.name}: no host gets it`);
            assert.ok(a.description.length > 20 && !a.description.includes("\n"), `${a.name}: one-line description`);
            assert.ok(fs.existsSync(path.join(REPO_ROOT, a.source)), `${a.name}: source ${a.source} does not exist`);
        }
        for (const a of pushed) {
            assert.match(a.remotePath, /^\/[A-Za-z0-9._/-]+$/, a.name);
            assert.match(a.mode, /^0[0-7]{3}$/, a.name);
            assert.match(a.owner, /^[a-z_][a-z0-9_-]*$/, a.name);
            assert.match(a.group, /^[a-z_][a-z0-9_-]*$/, a.name);
            if (a.secret) assert.equal(parseInt(a.mode, 8) & 0o007, 0, `${a.name} is secret but readable by others`);
            if (a.validate) assert.match(a.validate, /"\$new"/, `${a.name}: the check must look at the new file`);
        }
        assert.deepEqual(artifactsFor("origin", { createdOnVultr: false }).map((a) => a.name), ["wg0.conf", "nftables.conf", "authorized_keys"]);
        assert.deepEqual(artifactsFor("origin", { createdOnVultr: true }).map((a) => a.name), ["cloud-init.yaml", "wg0.conf", "nftables.conf", "authorized_keys"]);
    });

    it("shellcheck accepts every push script", (t) => {
        if (!needTools(t, "shellcheck")) return;
        for (const a of pushed) {
            const result = run("shellcheck", ["--shell=bash", "-"], { input: pushScript(a) });
            assert.equal(result.status, 0, `${a.name}:\n${result.stdout}${result.stderr}`);
        }
    });

    it("a push installs a file that passes its check with the registry's mode, and keeps the live file when the check fails", (t) => {
        if (!needTools(t, "bash", "install")) return;
        const dir = tempDir("artifact-push");
        try {
            // The agent's real push (check: node runs the new file's `version`), relocated into a temporary directory,
            // owned by whoever runs the test; its package step is left out (it is the host's apt, not the push's mechanics).
            const live = path.join(dir, "sbin", "anycast-health");
            const agent = ARTIFACTS["anycast-health"];
            const relocated: PushedArtifact = {
                ...agent, packages: undefined, remotePath: live, owner: String(process.getuid!()), group: String(process.getgid!()), apply: `echo applied >${dir}/applied`,
            };
            const push = (content: string) => run("bash", ["-c", pushScript(relocated)], { input: content });

            const good = push(renderHealthAgent());
            assert.equal(good.status, 0, good.stderr);
            assert.equal(fs.readFileSync(live, "utf8"), renderHealthAgent());
            assert.equal((fs.statSync(live).mode & 0o777).toString(8), agent.mode.replace(/^0/, ""));
            assert.equal(fs.readFileSync(path.join(dir, "applied"), "utf8"), "applied\n");
            fs.rmSync(path.join(dir, "applied"));

            const bad = push("#!/usr/bin/node\nif (\n");
            assert.notEqual(bad.status, 0, "a program that does not parse must fail its push");
            assert.equal(fs.readFileSync(live, "utf8"), renderHealthAgent(), "the live file was replaced by one that failed its check");
            assert.equal(fs.existsSync(path.join(dir, "applied")), false, "applied after a failed check");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
