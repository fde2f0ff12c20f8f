// Bundles the health agent (agent/main.ts and the pure core it imports) into one JavaScript file,
// dist/agent/anycast-health.js, which the deploy pushes to /usr/local/sbin/anycast-health. The
// hosts run it with Debian 12's own nodejs (18.x): target node18, no npm packages at run time
// (the bundle fails if the agent imports one), CommonJS so it runs without a package.json.
import * as esbuild from "esbuild";
import { readFileSync, chmodSync } from "node:fs";
import { builtinModules } from "node:module";

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const outfile = new URL("../dist/agent/anycast-health.js", import.meta.url).pathname;

const noPackages = {
    name: "no-npm-packages",
    setup(build) {
        build.onResolve({ filter: /^[^./]/ }, (args) => {
            const bare = args.path.replace(/^node:/, "");
            if (args.path.startsWith("node:") || builtinModules.includes(bare)) return { path: args.path, external: true };
            return { errors: [{ text: `the health agent imports the npm package "${args.path}" (from ${args.importer}): it must run on Debian's nodejs alone` }] };
        });
    },
};

await esbuild.build({
    entryPoints: [new URL("../agent/main.ts", import.meta.url).pathname],
    bundle: true,
    platform: "node",
    target: "node18",
    format: "cjs",
    outfile,
    banner: { js: "#!/usr/bin/node\n// anycast-health: the pulumi-anycast health agent (one file, built by scripts/bundle-agent.mjs from agent/ and components/core/health/)." },
    define: { AGENT_VERSION: JSON.stringify(version) },
    legalComments: "none",
    logLevel: "warning",
    plugins: [noPackages],
});
chmodSync(outfile, 0o755);
