/**
 * The documentation cannot drift from the code. The config reference in README.md, Pulumi.yaml's
 * config block and AnycastNetworkArgs (components/network-args.ts) are generated from the config
 * schema (components/core/config-shape.ts) by `npm run docs`: each committed copy must be exactly
 * what the schema renders, every field must carry a meaning, and the generated files must say what
 * the schema says (the keys, their defaults, the secrets). Also: the script that refreshes the
 * shipped Vultr lists passes shellcheck, and the Cloudflare permissions agree across the docs.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { documented } from "../../components/core/config-field";
import { CONFIG_KEYS, CONFIG_SCHEMA, NAMESPACE, SECRET_KEYS } from "../../components/core/config";
import {
    fieldsOf, NETWORK_ARGS_PATH, README_REFERENCE_BEGIN, README_REFERENCE_END, referenceRows, renderNetworkArgs, renderReferenceTable,
    withGeneratedPart, withPulumiConfigBlock,
} from "../../components/core/config-reference";
import { REPO_ROOT } from "../helpers/golden";
import { needTools, run } from "../helpers/tools";

const read = (file: string) => fs.readFileSync(path.join(REPO_ROOT, file), "utf8");
const STALE = "is stale: run `npm run docs` and commit it";

function readmeReference(): string {
    return read("README.md").split("## Config reference")[1]?.split("\n## ")[0] ?? "";
}

type ProjectConfig = Record<string, { type?: string; description?: string; default?: unknown }>;
const projectConfig = (text = read("Pulumi.yaml")) => (parseYaml(text) as { config: ProjectConfig }).config;

describe("docs generated from the config schema", () => {
    it("README.md's config reference, Pulumi.yaml's config block and network-args.ts are what `npm run docs` writes", () => {
        const readme = read("README.md");
        assert.equal(readme, withGeneratedPart(readme, README_REFERENCE_BEGIN, README_REFERENCE_END, renderReferenceTable(), "README.md"),
            `README.md's config reference ${STALE}`);
        const project = read("Pulumi.yaml");
        assert.equal(project, withPulumiConfigBlock(project), `Pulumi.yaml's config block ${STALE}`);
        assert.equal(read(NETWORK_ARGS_PATH), renderNetworkArgs(), `${NETWORK_ARGS_PATH} ${STALE}`);
    });

    it("every field below every key has a meaning, and the reference has a row for each", () => {
        // referenceRows throws on a field without documented(); the rows then cover every field.
        const rows = referenceRows().map((r) => r.key);
        for (const key of CONFIG_KEYS) assert.ok(rows.includes(key) || rows.includes(`${key}[]`), `no row for ${key}`);
        assert.ok(rows.includes("pops[].bgp.holdTime") && rows.includes("failover.staleCache.keepSeconds") && rows.includes("pops[].host.user"),
            "nested fields, also inside lists and unions, have rows");
        assert.equal(new Set(rows).size, rows.length, "each key once");
        const table = readmeReference();
        for (const key of rows) assert.ok(table.includes(`| \`${key}\` |`), `README's reference lacks ${key}`);
    });

    it("Pulumi.yaml declares exactly the keys the validator knows, with the defaults its rules need", () => {
        const config = projectConfig();
        const declared = Object.keys(config).filter((k) => k.startsWith(`${NAMESPACE}:`)).map((k) => k.slice(NAMESPACE.length + 1));
        assert.deepEqual(declared.sort(), [...CONFIG_KEYS].sort());
        // Not `secret: true`: the CLI would refuse every stack holding one in plain text (see the
        // comment in Pulumi.yaml); the program warns instead (stacks/network/config.ts).
        for (const key of SECRET_KEYS) {
            assert.match(config[`${NAMESPACE}:${key}`].description ?? "", /pulumi config set --secret/, key);
            assert.equal(config[`${NAMESPACE}:${key}`].default, "", `${key}: secrets default to "" (the program reports them missing)`);
        }
        // The keys our validation requires have no default, so the CLI reports them missing too.
        for (const key of ["asn", "prefix", "pops", "mesh", "frontDoor"]) assert.ok(!("default" in config[`${NAMESPACE}:${key}`]), key);
        assert.deepEqual(config[`${NAMESPACE}:health`].default, {});
        assert.deepEqual(config[`${NAMESPACE}:sshPublicKeys`].default, []);
        assert.equal(config[`${NAMESPACE}:allowAllDrained`].default, false);
        assert.equal(config[`${NAMESPACE}:roas`].default, "");
        assert.equal(config[`${NAMESPACE}:asn`].type, "integer");
        assert.equal(config[`${NAMESPACE}:pops`].type, undefined, "structured keys are untyped");
        for (const [key, schema] of Object.entries(CONFIG_SCHEMA)) {
            const description = config[`${NAMESPACE}:${key}`].description ?? "";
            for (const field of fieldsOf(schema)) assert.match(description, new RegExp(`\\b${field}\\b`), `${key}'s description names ${field}`);
        }
    });

    it("a schema shared by two fields cannot carry one meaning for both (documented() refuses the second)", () => {
        const shared = z.string();
        documented(shared, { meaning: "the first field" });
        assert.throws(() => documented(shared, { meaning: "the second field" }), /documented twice \("the second field"\)/);
    });

    it("AnycastNetworkArgs has a field per key, optional exactly where the config has a default", () => {
        const text = read(NETWORK_ARGS_PATH);
        for (const key of CONFIG_KEYS) assert.match(text, new RegExp(`readonly ${key}\\??: `), key);
        assert.match(text, /readonly asn: Config\["asn"\];/);
        assert.match(text, /readonly health\?: Config\["health"\];/);
        assert.match(text, /readonly sshPrivateKey: pulumi\.Input<string>;/);
        assert.match(text, /readonly bgpPassword\?: pulumi\.Input<string>;/);
        assert.match(text, /- `bgp\.holdTime` \(seconds; `9`\)/, "nested fields are documented with their type and default");
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
