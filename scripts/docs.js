#!/usr/bin/env node
// `npm run docs`: writes what is generated from the code's own registries:
// - docs/ARTIFACTS.md from the artifact registry (components/core/artifacts.ts);
// - README.md's config reference, Pulumi.yaml's config block and components/network-args.ts
//   from the config schema (components/core/config-shape.ts, rendered by config-reference.ts).
// Runs the compiled code in dist/, so `npm run docs` builds first; a changed network-args.ts is
// compiled on the next build.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { ARTIFACTS_DOC_PATH, renderArtifactsDoc } = require("../dist/components/core/artifacts-doc.js");
const reference = require("../dist/components/core/config-reference.js");

const root = path.join(__dirname, "..");
function write(relative, text) {
    const file = path.join(root, relative);
    const before = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined;
    if (before === text) return console.log(`${relative}: up to date`);
    fs.writeFileSync(file, text);
    console.log(`wrote ${relative}`);
}
const read = (relative) => fs.readFileSync(path.join(root, relative), "utf8");

write(ARTIFACTS_DOC_PATH, renderArtifactsDoc());
write("README.md", reference.withGeneratedPart(read("README.md"), reference.README_REFERENCE_BEGIN, reference.README_REFERENCE_END,
    reference.renderReferenceTable(), "README.md"));
write("Pulumi.yaml", reference.withPulumiConfigBlock(read("Pulumi.yaml")));
write(reference.NETWORK_ARGS_PATH, reference.renderNetworkArgs());
