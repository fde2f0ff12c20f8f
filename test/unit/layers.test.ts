/**
 * The import graph points one way (README.md, "Repository layout"):
 *
 *     components/core <- components <- stacks <- harness <- lab <- bench <- cli
 *
 * A file may import its own layer or a layer to its left, never one to its right; the pure core
 * imports no Pulumi package; nothing outside test/ imports test/; and no files import each
 * other in a cycle, `import type` included (a circle of types still ties the files together);
 * each cycle is reported as its chain of imports. The graph is TypeScript's own view of the
 * sources: `ts.preProcessFile` finds every import, export-from, dynamic `import()` and
 * `require()`, and `ts.resolveModuleName` resolves them with the repo's compiler options, so a path alias or an
 * index file cannot hide an edge.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";
import { REPO_ROOT } from "../helpers/golden";

/** Bottom first: a layer may import itself and the layers before it. */
export const LAYERS = ["components/core", "components", "stacks", "harness", "lab", "bench", "cli"] as const;

/** The layer of a repo-relative path (the longest matching directory), or undefined outside them. */
function layerOf(file: string): number | undefined {
    let best: number | undefined;
    LAYERS.forEach((layer, i) => {
        if (file.startsWith(`${layer}/`) && (best === undefined || layer.length > LAYERS[best].length)) best = i;
    });
    return best;
}

/** `typeOnly`: every import of it is `import type` (erased at run time). */
interface Edge { from: string; to: string; specifier: string; typeOnly: boolean }

/** True when every mention of the specifier in the file is an `import type ... from` (nothing left at run time). */
function onlyTypeImports(text: string, specifier: string): boolean {
    const quoted = `["']${specifier.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}["']`;
    const all = text.match(new RegExp(quoted, "g"))?.length ?? 0;
    const typed = text.match(new RegExp(`import type [^;]*? from ${quoted}`, "g"))?.length ?? 0;
    return all > 0 && all === typed;
}

/** Every import edge between repo files, and every package a file imports, as TypeScript resolves them. */
export function importGraph(files: ReadonlyMap<string, string>): { edges: Edge[]; packages: Array<{ from: string; specifier: string }> } {
    const options: ts.CompilerOptions = { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10, resolveJsonModule: true };
    const host: ts.ModuleResolutionHost = {
        // The repo's own files are the given ones, plus data files (JSON) that sit beside them.
        fileExists: (f) => files.has(path.relative(REPO_ROOT, f)) || (!f.startsWith(REPO_ROOT + path.sep) || f.includes("node_modules") || f.endsWith(".json")) && ts.sys.fileExists(f),
        readFile: (f) => files.get(path.relative(REPO_ROOT, f)) ?? ts.sys.readFile(f),
    };
    const edges: Edge[] = [];
    const packages: Array<{ from: string; specifier: string }> = [];
    for (const [file, text] of files) {
        const { importedFiles } = ts.preProcessFile(text, true, true);
        for (const { fileName: specifier } of importedFiles) {
            if (!specifier.startsWith(".")) {
                packages.push({ from: file, specifier });
                continue;
            }
            const resolved = ts.resolveModuleName(specifier, path.join(REPO_ROOT, file), options, host).resolvedModule;
            assert.ok(resolved, `${file}: cannot resolve "${specifier}"`);
            edges.push({ from: file, to: path.relative(REPO_ROOT, resolved.resolvedFileName), specifier, typeOnly: onlyTypeImports(text, specifier) });
        }
    }
    return { edges, packages };
}

/** What breaks the layering, one line each. */
export function layeringViolations(files: ReadonlyMap<string, string>): string[] {
    const { edges, packages } = importGraph(files);
    const problems: string[] = [];
    for (const e of edges) {
        if (e.to.startsWith("test/") && !e.from.startsWith("test/")) problems.push(`${e.from} imports the tests (${e.specifier})`);
        const [from, to] = [layerOf(e.from), layerOf(e.to)];
        if (from !== undefined && to !== undefined && to > from) {
            problems.push(`${e.from} (${LAYERS[from]}) imports ${e.to} (${LAYERS[to]}), a layer above it`);
        }
    }
    for (const p of packages) {
        if (layerOf(p.from) === 0 && p.specifier.startsWith("@pulumi/")) problems.push(`${p.from} (the pure core) imports ${p.specifier}`);
    }
    // Type-only imports count too: a circle of types is still two files that cannot be read, or
    // moved, one without the other (the README promises no circles at all).
    problems.push(...cycles(edges).map((c) => `import cycle${c.every((f) => edgesBetween(edges, c, f).every((e) => e.typeOnly)) ? " (types only)" : ""}: ${chainOf(edges, c).join(" -> ")}`));
    return problems;
}

/**
 * A cycle as the files import each other: from the first file (by name) along the shortest
 * chain of imports inside the cycle back to it, so the message names each edge to cut.
 */
function chainOf(edges: Edge[], cycle: string[]): string[] {
    const start = cycle[0];
    const cameFrom = new Map<string, string>();
    const queue = [start];
    while (queue.length > 0) {
        const from = queue.shift()!;
        for (const e of edgesBetween(edges, cycle, from)) {
            if (e.to === start) {
                const chain = [start];
                for (let f: string | undefined = from; f !== undefined && f !== start; f = cameFrom.get(f)) chain.splice(1, 0, f);
                return [...chain, start];
            }
            if (!cameFrom.has(e.to)) {
                cameFrom.set(e.to, from);
                queue.push(e.to);
            }
        }
    }
    return [...cycle, start];
}

/** The edges from `file` to the other files of a cycle. */
function edgesBetween(edges: Edge[], cycle: string[], file: string): Edge[] {
    return edges.filter((e) => e.from === file && cycle.includes(e.to));
}

/** Each cycle of the graph once (Tarjan's strongly connected components of more than one file, or a self-import). */
function cycles(edges: Edge[]): string[][] {
    const next = new Map<string, string[]>();
    for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const found: string[][] = [];
    const visit = (v: string) => {
        index.set(v, index.size);
        low.set(v, index.get(v)!);
        stack.push(v);
        onStack.add(v);
        for (const w of next.get(v) ?? []) {
            if (!index.has(w)) {
                visit(w);
                low.set(v, Math.min(low.get(v)!, low.get(w)!));
            } else if (onStack.has(w)) {
                low.set(v, Math.min(low.get(v)!, index.get(w)!));
            }
        }
        if (low.get(v) === index.get(v)) {
            const component: string[] = [];
            let w: string;
            do {
                w = stack.pop()!;
                onStack.delete(w);
                component.push(w);
            } while (w !== v);
            if (component.length > 1 || (next.get(v) ?? []).includes(v)) found.push(component.sort());
        }
    };
    for (const v of next.keys()) if (!index.has(v)) visit(v);
    return found;
}

/** Every TypeScript source of the repo outside node_modules and dist, by repo-relative path. */
function repoSources(): Map<string, string> {
    const files = new Map<string, string>();
    const walk = (dir: string) => {
        for (const entry of fs.readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true })) {
            const rel = dir ? `${dir}/${entry.name}` : entry.name;
            if (entry.isDirectory()) {
                if (!["node_modules", "dist", ".git"].includes(entry.name)) walk(rel);
            } else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) {
                files.set(rel, fs.readFileSync(path.join(REPO_ROOT, rel), "utf8"));
            }
        }
    };
    walk("");
    return files;
}

describe("layers", () => {
    it("every import of the repo points down the layers, with no cycle", () => {
        const files = repoSources();
        assert.ok([...files.keys()].some((f) => f.startsWith("cli/")) && files.has("components/network.ts"), "sources not found");
        assert.ok(importGraph(files).edges.length > 100, "too few imports found: the scan is broken");
        assert.deepEqual(layeringViolations(files), []);
    });

    it("sees upward imports, dynamic imports, requires, Pulumi in the core and cycles (so the check above means something)", () => {
        const files = new Map<string, string>([
            ["components/core/a.ts", `import * as pulumi from "@pulumi/pulumi";\nexport const a = 1;`],
            ["components/b.ts", `import { a } from "./core/a";\nexport const b = async () => (await import("../harness/c")).c + a;`],
            ["harness/c.ts", `export const c = require("../lab/d");`],
            ["lab/d.ts", `export { e } from "./e";\nimport type { g } from "./g";`],
            ["lab/g.ts", `export type g = number;`],
            ["lab/h.ts", `import type { i } from "./i";\nexport type h = number;`],
            ["lab/i.ts", `import type { h } from "./h";\nexport type i = number;`],
            ["lab/e.ts", `export { d } from "./d";\nimport "../test/helpers/x";`],
            ["cli/f.ts", `import "../components/b";`],
            ["lab/x.ts", `import { z } from "./z";\nexport const x = z;`],
            ["lab/y.ts", `import type { x } from "./x";\nexport const y = 1;`],
            ["lab/z.ts", `import { y } from "./y";\nexport const z = y;`],
            ["lab/s.ts", `import "./s";`],
            ["test/helpers/x.ts", ``],
        ]);
        assert.deepEqual(layeringViolations(files).sort(), [
            "components/b.ts (components) imports harness/c.ts (harness), a layer above it",
            "components/core/a.ts (the pure core) imports @pulumi/pulumi",
            "harness/c.ts (harness) imports lab/d.ts (lab), a layer above it",
            "import cycle (types only): lab/h.ts -> lab/i.ts -> lab/h.ts",
            "import cycle: lab/d.ts -> lab/e.ts -> lab/d.ts",
            "import cycle: lab/s.ts -> lab/s.ts",
            // The chain in import order (x imports z, z imports y, y imports x), not by name.
            "import cycle: lab/x.ts -> lab/z.ts -> lab/y.ts -> lab/x.ts",
            "lab/e.ts imports the tests (../test/helpers/x)",
        ]);
    });
});
