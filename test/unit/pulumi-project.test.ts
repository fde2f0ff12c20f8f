/**
 * Pulumi.yaml and every Pulumi.<stack>.yaml in the repo, held to the Pulumi CLI's own rules
 * (test/helpers/pulumi-cli.ts re-implements them from pulumi/pulumi's sdk/go/common/workspace:
 * project.json, project.go, loaders.go, config.go). This machine has no Pulumi CLI; without this
 * test a Pulumi.yaml the CLI refuses goes unnoticed until a user's first `pulumi preview`.
 *
 * Then the other half: what the CLI hands the program (project defaults merged in, objects as
 * JSON text, secrets decrypted; config.go mergeConfig/createConfigValue, config/map.go Decrypt)
 * must build the same network as the stack file read directly (`anycast validate`, the lab).
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { stringify as toYaml } from "yaml";
import { REPO_ROOT } from "../helpers/golden";
import {
    applyProjectConfig, ConfigMap, loadProject, loadStackConfig, programConfig, PulumiCliError, PulumiProject,
} from "../helpers/pulumi-cli";
import { ConfigError, NAMESPACE, parseAnycastConfig, SECRET_KEYS } from "../../components/core/config";
import { runStack, SECRET_PLACEHOLDERS, StackRun } from "../../harness/stackrun";
import { rawConfigOf } from "../helpers/fixtures";

const PROJECT_FILE = path.join(REPO_ROOT, "Pulumi.yaml");
const STACK_FILES = fs.readdirSync(REPO_ROOT).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f)).sort();
const stackNameOf = (file: string) => file.replace(/^Pulumi\.|\.yaml$/g, "");

/** Our secrets provider in these tests: any ciphertext opens to the placeholder the mock runs use. */
const decrypt = (key: string): string => SECRET_PLACEHOLDERS[key.slice(NAMESPACE.length + 1)] ?? "PLACEHOLDER-secret";

/** What the CLI says about a project text, or "" when it accepts it. */
function cliRefusal(action: () => unknown): string {
    try {
        action();
        return "";
    } catch (e) {
        if (e instanceof PulumiCliError) return e.message;
        throw e;
    }
}

/** `pulumi config set --secret` for each secret the stack file leaves out, as the README's deploy steps do. */
function withSecretsSet(stack: ConfigMap): ConfigMap {
    const out = new Map(stack);
    for (const key of SECRET_KEYS) {
        const full = `${NAMESPACE}:${key}`;
        if (!out.has(full)) out.set(full, { text: "v1:c2VjcmV0LXNldC1ieS1wdWx1bWktY29uZmlnLXNldA==", secure: true, object: false });
    }
    return out;
}

/** The program's view through the CLI, as `values` for runStack (the `anycast:` keys, namespace stripped, still text). */
function anycastValues(config: Record<string, string>): Record<string, string> {
    return Object.fromEntries(Object.entries(config)
        .filter(([k]) => k.startsWith(`${NAMESPACE}:`))
        .map(([k, v]) => [k.slice(NAMESPACE.length + 1), v]));
}

/** Pulumi.yaml as the CLI loads it; a test that needs it fails with the CLI's refusal if it does not load. */
function ourProject(): PulumiProject {
    let project: PulumiProject | undefined;
    const refusal = cliRefusal(() => { project = loadProject(fs.readFileSync(PROJECT_FILE, "utf8")); });
    assert.equal(refusal, "", "the Pulumi CLI refuses Pulumi.yaml");
    return project!;
}

describe("Pulumi.yaml under the Pulumi CLI's rules", () => {
    it("loads: the project schema (project.json) and Project.Validate accept it", () => {
        assert.equal(ourProject().name, NAMESPACE, "the config namespace is the project name, so every anycast: key is the project's own");
    });

    for (const file of STACK_FILES) {
        it(`${file}: every required key is set, typed values match, typed secrets are encrypted`, () => {
            const project = ourProject();
            const stack = loadStackConfig(project.name, fs.readFileSync(path.join(REPO_ROOT, file), "utf8"));
            assert.equal(cliRefusal(() => applyProjectConfig(stackNameOf(file), project, stack, decrypt)), "");
        });
    }

    it("a stack that sets only the keys the README calls required is accepted", () => {
        const project = ourProject();
        const required = ["asn", "prefix", "pops", "origin", "mesh", "frontDoor"];
        const prod = rawConfigOf("Pulumi.prod.yaml");
        const text = toYaml({ config: Object.fromEntries(required.map((k) => [`${NAMESPACE}:${k}`, prod[k]])) });
        const stack = withSecretsSet(loadStackConfig(project.name, text));
        assert.equal(cliRefusal(() => applyProjectConfig("minimal", project, stack, decrypt)), "");
    });

    it("every key declared without a default is one our validator requires as well", () => {
        // Otherwise the CLI refuses a stack that the README and `anycast validate` call fine.
        const full = { ...rawConfigOf("Pulumi.prod.yaml"), bgpPassword: "pw", sshPrivateKey: SECRET_PLACEHOLDERS.sshPrivateKey };
        assert.doesNotThrow(() => parseAnycastConfig(full));
        const withoutDefault = Object.entries(ourProject().config).filter(([, d]) => d.default === undefined && d.value === undefined);
        assert.ok(withoutDefault.length > 0);
        for (const [fullKey] of withoutDefault) {
            const key = fullKey.slice(NAMESPACE.length + 1);
            const rest: Record<string, unknown> = { ...full };
            delete rest[key];
            try {
                parseAnycastConfig(rest);
                assert.fail(`${fullKey} has no default in Pulumi.yaml, so the CLI requires it, but our validator accepts a stack without it`);
            } catch (e) {
                if (!(e instanceof ConfigError)) throw e;
                assert.ok(e.issues.some((i) => i.key === fullKey && /required/.test(i.message)), `${fullKey}: ${e.message}`);
            }
        }
    });
});

describe("the CLI rules refuse what the CLI refuses (so the checks above can fail)", () => {
    const project = (config: string) => `name: anycast\nruntime: nodejs\nconfig:\n${config}`;

    it("an array type without items (Project.Validate)", () => {
        assert.match(cliRefusal(() => loadProject(project("  anycast:pops:\n    type: array\n"))),
            /The configuration key 'anycast:pops' declares an array but does not specify the underlying type via the 'items' attribute/);
    });

    it("an object type, or a key the declaration does not know (project.json)", () => {
        assert.match(cliRefusal(() => loadProject(project("  anycast:mesh:\n    type: object\n"))), /#\/config\/anycast:mesh/);
        assert.match(cliRefusal(() => loadProject(project("  anycast:mesh:\n    required: true\n"))), /#\/config\/anycast:mesh/);
        assert.match(cliRefusal(() => loadProject(project("  anycast:pops:\n    type: array\n    items: { type: object }\n"))), /#\/config\/anycast:pops/);
    });

    it("a typed default of another type, and a default on another namespace's key (Project.Validate)", () => {
        assert.match(cliRefusal(() => loadProject(project("  anycast:asn:\n    type: integer\n    default: AS64500\n"))),
            /default value specified for configuration key 'anycast:asn' is not of the expected type 'integer'/);
        assert.match(cliRefusal(() => loadProject(project("  vultr:apiKey:\n    default: x\n"))), /not namespaced by the project and should not define a default/);
    });

    it("a stack without a key declared without a default, a typed secret in plain text, a value of the wrong type (mergeConfig)", () => {
        const p = loadProject(project([
            "  anycast:asn:\n    type: integer",
            "  anycast:prefix:\n    description: required, untyped",
            "  anycast:bgpPassword:\n    type: string\n    secret: true",
            "  anycast:sshPublicKeys:\n    type: array\n    items: { type: string }\n    default: []",
        ].join("\n") + "\n"));
        const run = (stackYaml: string) => cliRefusal(() => applyProjectConfig("prod", p, loadStackConfig("anycast", stackYaml), decrypt));
        assert.match(run("config:\n  anycast:asn: 64500\n"), /Stack 'prod' is missing configuration values 'anycast:bgpPassword' and 'anycast:prefix'/);
        assert.match(run("config:\n  anycast:asn: 64500\n  anycast:prefix: x\n  anycast:bgpPassword: plain\n"),
            /Stack 'prod' with configuration key 'anycast:bgpPassword' must be encrypted as it's secret/);
        assert.match(run("config:\n  anycast:asn: AS64500\n  anycast:prefix: x\n  anycast:bgpPassword: { secure: v1:x }\n"),
            /Stack 'prod' with configuration key 'anycast:asn' must be of type 'integer'/);
        assert.match(run("config:\n  anycast:asn: 64500\n  anycast:prefix: x\n  anycast:bgpPassword: { secure: v1:x }\n  anycast:sshPublicKeys: [1, [2]]\n"),
            /must be of type 'array<string>'/);
        assert.equal(run("config:\n  asn: \"64500\"\n  anycast:prefix: x\n  anycast:bgpPassword: { secure: v1:x }\n"), "",
            "a key without a namespace is the project's; an integer may be given as a string Atoi parses");
    });
});

describe("the program reads what the CLI hands it", () => {
    /** The CLI path: Pulumi.yaml's defaults merged, secrets decrypted, everything as the text the SDK gets. */
    async function runThroughCli(stackYaml: string, stackName: string): Promise<StackRun> {
        const project = ourProject();
        const merged = applyProjectConfig(stackName, project, withSecretsSet(loadStackConfig(project.name, stackYaml)), decrypt);
        return runStack({ values: anycastValues(programConfig(merged, decrypt)) });
    }

    for (const file of STACK_FILES) {
        it(`${file}: the program accepts the CLI's config and plans the same network as from the file alone`, async () => {
            const viaCli = await runThroughCli(fs.readFileSync(path.join(REPO_ROOT, file), "utf8"), stackNameOf(file));
            const viaFile = await runStack({ configFile: path.join(REPO_ROOT, file) });
            assert.deepEqual(viaCli.spec, viaFile.spec);
            assert.deepEqual(viaCli.warnings, viaFile.warnings);
            assert.deepEqual(viaCli.resources.map((r) => `${r.type}::${r.name}`).sort(), viaFile.resources.map((r) => `${r.type}::${r.name}`).sort());
        });
    }

    it("every project default means what leaving the key out means (an object default arrives as JSON text)", async () => {
        const prod = rawConfigOf("Pulumi.prod.yaml");
        const required = Object.fromEntries(["asn", "prefix", "pops", "origin", "mesh", "frontDoor"].map((k) => [k, prod[k]]));
        const project = ourProject();
        const stack = withSecretsSet(loadStackConfig(project.name, toYaml({ config: Object.fromEntries(Object.entries(required).map(([k, v]) => [`${NAMESPACE}:${k}`, v])) })));
        const handed = anycastValues(programConfig(applyProjectConfig("minimal", project, stack, decrypt), decrypt));
        // Every declared key reaches the program, the defaulted ones in the CLI's rendering.
        assert.deepEqual(Object.keys(handed).sort(), Object.keys(project.config).map((k) => k.slice(NAMESPACE.length + 1)).sort());
        for (const [key, decl] of Object.entries(project.config)) {
            const short = key.slice(NAMESPACE.length + 1);
            // origin has a default ("" for not set: a stack may set origins instead) and prod sets it.
            if (decl.default === undefined || short in required) continue;
            const expected = typeof decl.default === "string" ? decl.default : JSON.stringify(decl.default);
            if (!SECRET_KEYS.includes(short)) assert.equal(handed[short], expected, key);
        }
        const viaCli = await runStack({ values: handed });
        const withoutDefaults = await runStack({ values: { ...required, bgpPassword: decrypt(`${NAMESPACE}:bgpPassword`), sshPrivateKey: decrypt(`${NAMESPACE}:sshPrivateKey`) } });
        assert.deepEqual(viaCli.spec, withoutDefaults.spec);
        assert.deepEqual(viaCli.warnings, withoutDefaults.warnings);
    });
});
