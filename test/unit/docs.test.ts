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
});
