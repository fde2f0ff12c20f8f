#!/usr/bin/env node
// `npm run docs`: writes docs/ARTIFACTS.md from the artifact registry (components/core/artifacts.ts).
// Runs the compiled code in dist/, so `npm run docs` builds first.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { ARTIFACTS_DOC_PATH, renderArtifactsDoc } = require("../dist/components/core/artifacts-doc.js");

const file = path.join(__dirname, "..", ARTIFACTS_DOC_PATH);
fs.writeFileSync(file, renderArtifactsDoc());
console.log(`wrote ${path.relative(process.cwd(), file)}`);
