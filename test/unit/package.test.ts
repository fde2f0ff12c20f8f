/**
 * The published package (`files` in package.json) holds what an importer needs at run time and
 * nothing else: the entry points of every export and of the `anycast` command, the health agent
 * bundle the renderer reads (dist/agent/anycast-health.js, built from agent/main.ts), and no tests, golden files, source maps or CI files. Then, as a user
 * would: `npm pack`, install the tarball into an empty project, and run a program there that
 * builds a whole network with AnycastNetwork under `pulumi-anycast/testing`.
 */
import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { ARTIFACTS, artifactsFor } from "../../components/core/artifacts";
import { HEALTH_AGENT_FILE } from "../../components/core/render/health";
import { REPO_ROOT } from "../helpers/golden";
import { run, tempDir } from "../helpers/tools";

const scratch = tempDir("package");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const manifest = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
    name: string; version: string; main: string; types: string; bin: Record<string, string>;
    exports: Record<string, { types: string; default: string }>;
};

function npm(args: string[], cwd: string): string {
    // --ignore-scripts: the tests run on the build they were compiled in (prepack/prepare rebuild it for a real publish).
    const result = run("npm", [...args, "--ignore-scripts", "--no-audit", "--no-fund"], { cwd, timeout: 15 * 60_000 });
    assert.equal(result.status, 0, `npm ${args.join(" ")}:\n${result.stderr}`);
    return result.stdout;
}

/** The paths `npm pack` would publish. */
function packedFiles(): string[] {
    const [pack] = JSON.parse(npm(["pack", "--dry-run", "--json"], REPO_ROOT)) as Array<{ files: Array<{ path: string }> }>;
    return pack.files.map((f) => f.path);
}

describe("the published package", () => {
    const files = packedFiles();

    it("holds every entry point, the health agent bundle and nothing from the tests", () => {
        const needed = [
            manifest.main, manifest.types, ...Object.values(manifest.bin),
            ...Object.values(manifest.exports).flatMap((e) => [e.types, e.default]),
            path.relative(REPO_ROOT, HEALTH_AGENT_FILE),
        ].map((p) => p.replace(/^\.\//, ""));
        for (const p of needed) assert.ok(files.includes(p), `${p} is not in the package`);
        assert.deepEqual(Object.keys(manifest.exports).sort(), [".", "./core", "./testing"]);

        const unwanted = files.filter((f) => /^(dist\/)?test\/|golden|(^|\/)\.ci\/|\.map$|\.tsbuildinfo$|^\.github\//.test(f));
        assert.deepEqual(unwanted, [], "tests, golden files, source maps or CI files are packed");
        // Compiled files whose source is gone (a stale dist/) would be published too.
        const bundle = path.relative(REPO_ROOT, HEALTH_AGENT_FILE);
        const stale = files.filter((f) => /^dist\/.*\.js$/.test(f) && f !== bundle)
            .filter((f) => !fs.existsSync(path.join(REPO_ROOT, f.replace(/^dist\//, "").replace(/\.js$/, ".ts"))));
        assert.deepEqual(stale, [], "dist/ holds files without a source: rm -rf dist && npm run build");
    });

    it("installs into an empty project, where a program builds the whole network under pulumi-anycast/testing", () => {
        const started = Date.now();
        npm(["pack", "--pack-destination", scratch], REPO_ROOT);
        const tarball = path.join(scratch, `${manifest.name}-${manifest.version}.tgz`);
        const project = path.join(scratch, "user-program");
        fs.mkdirSync(project);
        fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "user-program", version: "1.0.0", private: true }));
        // The dependencies come from npm's cache when `npm ci` has filled it (CI, every worktree), else the registry.
        npm(["install", "--prefer-offline", tarball], project);
        fs.writeFileSync(path.join(project, "program.js"), `
            const { AnycastNetwork } = require("pulumi-anycast");
            const { renderBirdConfig } = require("pulumi-anycast/core");
            const { installMockCloud, outputValue } = require("pulumi-anycast/testing");
            (async () => {
                const cloud = await installMockCloud({ project: "edge", stack: "test" });
                const network = new AnycastNetwork("anycast", {
                    asn: 64500, prefix: "2001:db8:100::/48",
                    pops: [{ name: "lax", region: "lax" }],
                    origin: { name: "origin", host: { address: "2001:db8:beef::10" }, port: 8080 },
                    mesh: { cidr: "10.77.0.0/24" }, frontDoor: { zone: "example.com", hostname: "www" },
                    bgpPassword: "package-test", sshPublicKeys: [],
                    sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\\nk\\n-----END OPENSSH PRIVATE KEY-----\\n",
                });
                const files = await outputValue(network.files);
                await cloud.settled();
                console.log(JSON.stringify({
                    files: Object.fromEntries(Object.entries(files).map(([host, f]) => [host, Object.keys(f).sort()])),
                    agent: files.lax["anycast-health"],
                    instances: cloud.resources.filter((r) => r.type === "vultr:index/instance:Instance").map((r) => r.parent !== ""),
                    core: typeof renderBirdConfig,
                }));
                cloud.dispose();
            })();`);
        // A limit, not a measure: the whole network under mocks took over 60 s beside the labs.
        const result = run(process.execPath, ["program.js"], { cwd: project, timeout: 300_000 });
        assert.equal(result.status, 0, result.stderr);
        const out = JSON.parse(result.stdout) as { files: Record<string, string[]>; agent: string; instances: boolean[]; core: string };
        const names = (role: "pop" | "origin", createdOnVultr: boolean) => artifactsFor(role, { createdOnVultr }).map((a) => a.name).sort();
        assert.deepEqual(out.files, { lax: names("pop", true), origin: names("origin", false) });
        assert.equal(out.agent, fs.readFileSync(HEALTH_AGENT_FILE, "utf8"), "the installed package renders the agent from its own copy");
        assert.deepEqual(out.instances, [true], "the instance is a child of the network");
        assert.equal(out.core, "function");
        assert.ok(fs.existsSync(path.join(project, "node_modules", ".bin", Object.keys(manifest.bin)[0])), "the anycast command is installed");
        assert.ok(!fs.existsSync(path.join(project, "node_modules", manifest.name, "dist", "test")));
        // The registry names the agent's source; the package ships what the build made of it.
        assert.equal(ARTIFACTS["anycast-health"].source, "agent/main.ts");
        assert.ok(fs.existsSync(path.join(project, "node_modules", manifest.name, path.relative(REPO_ROOT, HEALTH_AGENT_FILE))));
        console.log(`# npm pack + install into an empty project + program: ${((Date.now() - started) / 1000).toFixed(0)} s`);
    });
});
