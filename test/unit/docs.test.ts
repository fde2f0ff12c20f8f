/**
 * The documentation cannot drift from the code: every config key the validator knows is declared
 * in Pulumi.yaml's config schema and has a row in the README's config reference, and nothing else.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { CONFIG_KEYS, NAMESPACE, SECRET_KEYS } from "../../components/core/config";
import { REPO_ROOT } from "../helpers/golden";

const KNOWN = [...new Set([...CONFIG_KEYS, ...SECRET_KEYS])].sort();

describe("docs in sync with the config validator", () => {
    it("Pulumi.yaml declares exactly the keys the validator knows, and tells to set secrets with --secret", () => {
        const project = parseYaml(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8")) as { config: Record<string, { description?: string }> };
        const declared = Object.keys(project.config).filter((k) => k.startsWith(`${NAMESPACE}:`)).map((k) => k.slice(NAMESPACE.length + 1)).sort();
        assert.deepEqual(declared, KNOWN);
        // Not `secret: true`: the CLI would refuse every stack holding one in plain text (see the
        // comment in Pulumi.yaml); the program warns instead (stacks/network/config.ts).
        for (const key of SECRET_KEYS) assert.match(project.config[`${NAMESPACE}:${key}`].description ?? "", /pulumi config set --secret/, key);
    });

    it("the README's config reference has a row for every key, and no row for a key that does not exist", () => {
        const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
        const section = readme.split("## Config reference")[1]?.split("\n## ")[0] ?? "";
        const rows = section.split("\n").filter((l) => l.startsWith("| `"));
        const documented = new Set(rows.map((l) => /^\| `([A-Za-z0-9]+)/.exec(l)?.[1]).filter((k): k is string => !!k));
        assert.deepEqual([...documented].sort(), KNOWN);
    });

    it("Pulumi.prod.yaml and the preview workflow name the Cloudflare token permissions the README lists", () => {
        const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
        const section = readme.split("### 2. Cloudflare")[1]?.split("\n### ")[0] ?? "";
        // README rows: | Zone · DNS · Edit | ... |  ->  "DNS Edit" (the Zone group itself: "Zone Read").
        const listed = section.split("\n").map((l) => /^\| Zone · ([^|]+?) · (Read|Edit) \|/.exec(l)).filter((m): m is RegExpExecArray => !!m)
            .map((m) => `${m[1]} ${m[2]}`).sort();
        assert.ok(listed.length >= 4, `README's Cloudflare permission table not found: ${listed.join(", ")}`);
        const prod = fs.readFileSync(path.join(REPO_ROOT, "Pulumi.prod.yaml"), "utf8");
        const named = /cloudflare:apiToken[^\n]*\n#\s+([^\n]+)/.exec(prod)?.[1].split(",").map((s) => s.trim()).sort();
        assert.deepEqual(named, listed, "Pulumi.prod.yaml's comment on cloudflare:apiToken");
        const workflow = fs.readFileSync(path.join(REPO_ROOT, ".github", "workflows", "preview.yml"), "utf8").replace(/\n#\s+/g, " ");
        for (const p of listed) assert.ok(workflow.includes(p), `preview.yml's secrets comment lacks ${p}`);
    });
});
