/**
 * The documentation cannot drift from the code: every config key the validator knows is declared
 * in Pulumi.yaml's config schema and has a row in the README's config reference, and nothing else;
 * every field of the nested shapes is named in the reference and in its key's Pulumi.yaml
 * description; and the script that refreshes the shipped Vultr lists passes shellcheck.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { CONFIG_KEYS, CONFIG_SHAPES, NAMESPACE, SECRET_KEYS } from "../../components/core/config";
import { REPO_ROOT } from "../helpers/golden";
import { needTools, run } from "../helpers/tools";

const KNOWN = [...new Set([...CONFIG_KEYS, ...SECRET_KEYS])].sort();

function readmeReference(): string {
    const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
    return readme.split("## Config reference")[1]?.split("\n## ")[0] ?? "";
}

/** The field names directly under a key's shape (an object, or a list of objects). */
function fieldsOf(schema: z.ZodType): string[] {
    type Def = { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType>; element?: z.ZodType };
    let def = (schema as unknown as { def: Def }).def;
    while (def.innerType && ["optional", "default"].includes(def.type)) def = (def.innerType as unknown as { def: Def }).def;
    if (def.type === "array" && def.element) def = (def.element as unknown as { def: Def }).def;
    return def.type === "object" ? Object.keys(def.shape ?? {}) : [];
}

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
        const rows = readmeReference().split("\n").filter((l) => l.startsWith("| `"));
        const documented = new Set(rows.map((l) => /^\| `([A-Za-z0-9]+)/.exec(l)?.[1]).filter((k): k is string => !!k));
        assert.deepEqual([...documented].sort(), KNOWN);
    });

    it("every nested field is named in the README's reference and in its key's Pulumi.yaml description", () => {
        const reference = readmeReference();
        const project = parseYaml(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8")) as { config: Record<string, { description?: string }> };
        for (const [key, schema] of Object.entries(CONFIG_SHAPES)) {
            const description = project.config[`${NAMESPACE}:${key}`]?.description ?? "";
            for (const field of fieldsOf(schema)) {
                assert.match(reference, new RegExp(`\\b${field}\\b`), `README's config reference names ${key}.${field}`);
                assert.match(description, new RegExp(`\\b${field}\\b`), `Pulumi.yaml's description of ${NAMESPACE}:${key} names ${field}`);
            }
        }
    });

    it("scripts/refresh-vultr-lists.sh passes shellcheck", (t) => {
        if (!needTools(t, "shellcheck")) return;
        const result = run("shellcheck", [path.join(REPO_ROOT, "scripts", "refresh-vultr-lists.sh")]);
        assert.equal(result.status, 0, result.stdout + result.stderr);
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
