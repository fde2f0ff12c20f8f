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

/** TypeScript's errors for `source` as a file of a user's program that depends on this package. */
function typeErrors(source: string): string[] {
    // A virtual file inside the repo, so @pulumi/* resolve from the repo's node_modules.
    const file = path.join(REPO_ROOT, "test", "__readme_example__.ts");
    const options: ts.CompilerOptions = {
        strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS,
        moduleResolution: ts.ModuleResolutionKind.Node10, esModuleInterop: true, skipLibCheck: true, types: ["node"],
        baseUrl: REPO_ROOT,
        paths: { "pulumi-anycast": ["components/index.ts"], "pulumi-anycast/core": ["components/core/index.ts"] },
    };
    const host = ts.createCompilerHost(options);
    const { fileExists, readFile, getSourceFile } = host;
    host.fileExists = (f) => f === file || fileExists.call(host, f);
    host.readFile = (f) => (f === file ? source : readFile.call(host, f));
    host.getSourceFile = (f, lang, onError, create) =>
        f === file ? ts.createSourceFile(f, source, lang, true) : getSourceFile.call(host, f, lang, onError, create);
    const program = ts.createProgram([file], options, host);
    return ts.getPreEmitDiagnostics(program)
        .filter((d) => d.file === undefined || d.file.fileName === file)
        .map((d) => {
            const where = d.file && d.start !== undefined ? `line ${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : "";
            return where + ts.flattenDiagnosticMessageText(d.messageText, "\n");
        });
}

describe("README library example", () => {
    it("compiles against pulumi-anycast with strict type checks", () => {
        const examples = readmeExamples();
        assert.ok(examples.length > 0, `no \`\`\`ts example under "${SECTION}"`);
        for (const example of examples) assert.deepEqual(typeErrors(example), []);
    });

    it("gives a Vultr PoP a key the pushes can log in with", () => {
        // Without sshKeyIds/sshPublicKeys the instance boots with no key for sshPrivateKey's pair.
        for (const example of readmeExamples().filter((e) => /new AnycastPoP\(/.test(e))) {
            assert.match(example, /sshKeyIds:/);
            assert.match(example, /sshPublicKeys:/);
        }
    });

    it("the check fails on an example that does not compile (so the check above means something)", () => {
        const errors = typeErrors(`${readmeExamples()[0]}\nexport const wrong: number = "not a number";\n`);
        assert.equal(errors.length, 1, errors.join("\n"));
        assert.match(errors[0], /not assignable to type 'number'/);
    });
});
