#!/usr/bin/env node
// Entry point of the `anycast` command; the TypeScript sources are compiled to dist/ by `npm ci`
// (the package's prepare script) or `npm run build`.
"use strict";
const path = require("node:path");
const fs = require("node:fs");
const cli = path.join(__dirname, "..", "dist", "cli", "anycast.js");
if (!fs.existsSync(cli)) {
    console.error("anycast: not built yet; run `npm ci` (or `npm run build`) in " + path.join(__dirname, ".."));
    process.exit(1);
}
require(cli).main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => { console.error(e instanceof Error ? e.stack : e); process.exit(1); },
);
