/**
 * `node previous-driver.js <tree> <out.json>`, stdin: PreviousDeployInput as JSON. Runs the
 * deploy plan of the compiled tree of an earlier version (previous.ts) and writes what the
 * upgrade rehearsal needs of it as PreviousDeploy, mode 0600 (it holds the stack's secrets).
 *
 * The earlier version's own planDeploy does the work; this file only reads its result, and adds
 * what a plan of that version may not record itself (each command's ignoreChanges and delete
 * script, the generated outputs) from the run's mock records with this version's helpers.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { unwrapSecrets } from "../../harness/mockcloud";
import { DeployPlan, PlannedCommand, priorOutputsOf } from "./plan";
import type { PreviousDeploy, PreviousDeployInput } from "./previous";

/**
 * The config as the earlier version knew it: a key added since (anycast:monitoring, say) is left
 * out, as a user upgrading sets it only once the version that reads it is installed. Keys are
 * taken from the earlier tree's own list; a tree without one gets the config whole.
 */
function withKnownKeys(tree: string, input: PreviousDeployInput): PreviousDeployInput {
    let known: readonly string[] | undefined;
    // Where the list lived: config-shape.ts since the config was split, config.ts before (0.1.0).
    for (const file of ["config-shape.js", "config.js"]) {
        try {
            known ??= (require(path.join(path.resolve(tree), "dist", "components", "core", file)) as { CONFIG_KEYS?: string[] }).CONFIG_KEYS;
        } catch {
            // not in this version
        }
    }
    if (!known) return input;
    const values = Object.fromEntries(Object.entries(input.values).filter(([k]) => known!.includes(k)));
    const dropped = Object.keys(input.values).filter((k) => !known!.includes(k));
    if (dropped.length > 0) console.error(`previous-driver: left out keys the earlier version does not know: ${dropped.join(", ")}`);
    return { ...input, values };
}

async function main(): Promise<void> {
    const [tree, out] = process.argv.slice(2);
    if (!tree || !out) throw new Error("usage: previous-driver.js <tree> <out.json>");
    const input = withKnownKeys(tree, JSON.parse(fs.readFileSync(0, "utf8")) as PreviousDeployInput);
    const { planDeploy } = require(path.join(path.resolve(tree), "dist", "lab", "deploy", "plan.js")) as
        { planDeploy(o: PreviousDeployInput): Promise<DeployPlan> };
    const plan = await planDeploy(input);
    const records = new Map(plan.run.mocked.map((r) => [r.name, r]));
    const commands = plan.commands.map((c): PlannedCommand => {
        const record = records.get(c.name);
        const del = record ? (unwrapSecrets(record.inputs) as Record<string, unknown>).delete : undefined;
        return { ...c, ignoreChanges: c.ignoreChanges ?? record?.ignoreChanges ?? [], ...(typeof del === "string" ? { delete: del } : {}) };
    });
    const result: Omit<PreviousDeploy, "revision" | "commit" | "version"> = {
        commands,
        userData: Object.fromEntries(plan.run.hosts.map((h) => [h.name, h.files["cloud-init.yaml"] ?? ""])),
        priorOutputs: priorOutputsOf(plan.run),
        originCaPem: plan.run.originCaPem,
    };
    fs.writeFileSync(out, JSON.stringify(result), { mode: 0o600 });
}

main().then(() => process.exit(0), (e: unknown) => {
    console.error(e instanceof Error ? e.stack ?? e.message : String(e));
    process.exit(1);
});
