/**
 * The README's library example ("Using the components in your own stack") compiles against the
 * package as a user imports it (`pulumi-anycast` -> components/index.ts), with TypeScript's
 * strict checks. The snippet is type-checked in memory, exactly as written in the README.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";
import { REPO_ROOT } from "../helpers/golden";

const SECTION = "## Using the components in your own stack";

function readmeExamples(): string[] {
    const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
    const section = readme.split(SECTION)[1]?.split("\n## ")[0] ?? "";
    return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
}

/**
 * TypeScript's errors for each of `sources`, as files of a user's program that depends on this
 * package: one program for all of them, resolved against the package's published declarations
 * (the .d.ts files under dist/, its `types`), which is both what a user compiles against and far quicker to
 * check than the sources behind them.
 */
function typeErrors(sources: string[]): string[][] {
    // Virtual files inside the repo, so @pulumi/* resolve from the repo's node_modules.
    const files = sources.map((_, i) => path.join(REPO_ROOT, "test", `__readme_example_${i}__.ts`));
    const byFile = new Map(files.map((f, i) => [f, sources[i]]));
    const options: ts.CompilerOptions = {
        strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS,
        moduleResolution: ts.ModuleResolutionKind.Node10, esModuleInterop: true, skipLibCheck: true, types: ["node"],
        baseUrl: REPO_ROOT,
        paths: {
            "pulumi-anycast": ["dist/components/index.d.ts"], "pulumi-anycast/core": ["dist/components/core/index.d.ts"],
            "pulumi-anycast/testing": ["dist/harness/testing.d.ts"],
        },
    };
    const host = ts.createCompilerHost(options);
    const { fileExists, readFile, getSourceFile } = host;
    host.fileExists = (f) => byFile.has(f) || fileExists.call(host, f);
    host.readFile = (f) => byFile.get(f) ?? readFile.call(host, f);
    host.getSourceFile = (f, lang, onError, create) =>
        byFile.has(f) ? ts.createSourceFile(f, byFile.get(f)!, lang, true) : getSourceFile.call(host, f, lang, onError, create);
    const program = ts.createProgram(files, options, host);
    const diagnostics = ts.getPreEmitDiagnostics(program);
    return files.map((file) => diagnostics
        .filter((d) => d.file === undefined || d.file.fileName === file)
        .map((d) => {
            const where = d.file && d.start !== undefined ? `line ${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : "";
            return where + ts.flattenDiagnosticMessageText(d.messageText, "\n");
        }));
}

describe("README library example", () => {
    it("compiles against pulumi-anycast with strict type checks", () => {
        const examples = readmeExamples();
        assert.ok(examples.length > 0, `no \`\`\`ts example under "${SECTION}"`);
        typeErrors(examples).forEach((errors, i) => assert.deepEqual(errors, [], `example ${i + 1}`));
    });

    it("gives a Vultr PoP a key the pushes can log in with", () => {
        // Without sshPublicKeys a new instance boots with no key for sshPrivateKey's pair.
        const deploying = readmeExamples().filter((e) => /new (AnycastPoP|AnycastNetwork)\(/.test(e) && !/installMockCloud/.test(e));
        assert.equal(deploying.length, 2, "the AnycastNetwork example and the separate components example");
        for (const example of deploying) assert.match(example, /sshPublicKeys:/);
    });

    it("the check fails on an example that does not compile (so the check above means something)", () => {
        const [errors] = typeErrors([`${readmeExamples()[0]}\nexport const wrong: number = "not a number";\n`]);
        assert.equal(errors.length, 1, errors.join("\n"));
        assert.match(errors[0], /not assignable to type 'number'/);
    });
});
