/**
 * Nothing edits a rendered artifact: what a host, the lab or a test runs is rendered for its
 * layout (components/core/render/layout.ts), never produced by string replacement over a file the
 * renderers wrote. This test reads the sources that boot or render things (components/, lab/,
 * harness/, test/helpers/) for the ways such an edit is written: a rendered file's text split or
 * replaced, the replace-everything idiom (`.split(a).join(b)`, `.replaceAll`), or a regex over a
 * config's own keywords. Each rule is checked against the edits the code used to make, so a rule
 * that cannot find them fails too.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "../helpers/golden";

const SCANNED = ["components", "lab", "harness", "test/helpers"];

const RULES: Array<{ name: string; pattern: RegExp }> = [
    { name: "a rendered file's text split or replaced", pattern: /(files\[[^\]]+\]|\brendered\w*|\.files\.\w+|\bconf(Text)?)\s*\.(replace|replaceAll|split)\(/ },
    { name: "replace-all by split and join", pattern: /\.split\([^()]*\)\.join\(/ },
    { name: "replaceAll", pattern: /\.replaceAll\(/ },
    { name: "a regex over a config's keywords", pattern: /\.replace\(\s*\/[^/]*(BFD|interval|multiplier|TIMEOUT|INTERVAL|include|pid |ssl_|_log|proxy_|listen)/ },
];

/** What lab/boot.ts, lab/stalls.ts and test/helpers/nginx.ts did before the renderers took a layout. */
const FORMER_EDITS = [
    `        out = out.split(r.from).join(r.to);`,
    `            files["bird.conf"] = files["bird.conf"].split(timers(bfd.from)).join(timers(bfd.to))`,
    `                .replace(/# BFD detects a dead path in \\d+ ms \\(\\d+ ms x \\d+\\)/,`,
    `        ]) conf = conf.split(from).join(to);`,
];

function sources(dir: string): string[] {
    const out: string[] = [];
    for (const entry of fs.readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true })) {
        const rel = path.join(dir, entry.name);
        if (entry.isDirectory()) out.push(...sources(rel));
        else if (entry.name.endsWith(".ts")) out.push(rel);
    }
    return out;
}

const offending = (line: string) => RULES.filter((r) => r.pattern.test(line)).map((r) => r.name);

describe("no edits of rendered artifacts", () => {
    it("the rules find every edit the code used to make", () => {
        for (const line of FORMER_EDITS) assert.notDeepEqual(offending(line), [], line.trim());
    });

    it("no source that renders or boots things edits rendered text", () => {
        const found: string[] = [];
        const files = SCANNED.flatMap(sources);
        assert.ok(files.length > 50, `scanned ${files.length} files`);
        for (const file of files) {
            fs.readFileSync(path.join(REPO_ROOT, file), "utf8").split("\n").forEach((line, i) => {
                const rules = offending(line);
                if (rules.length > 0) found.push(`${file}:${i + 1}: ${rules.join(", ")}: ${line.trim()}`);
            });
        }
        assert.deepEqual(found, []);
    });
});
