/**
 * `anycast`: the command line of pulumi-anycast.
 *
 *   anycast validate --config Pulumi.<stack>.yaml
 *   anycast render   --config Pulumi.<stack>.yaml --out <dir>
 *   anycast preview  --config Pulumi.<stack>.yaml
 *   anycast lab      --config Pulumi.lab.yaml [--edge frr|bird] [--json <file>] [--keep] [--repeats N] | anycast lab --down
 *   anycast lab      --deploy --config Pulumi.<stack>.yaml   (the deploy rehearsal: lab/deploy/rehearsal.ts)
 *   anycast bench    [--config Pulumi.lab.yaml] [--skip-lab]
 *
 * validate/render/preview run the real stacks/network program under Pulumi's mocks (no Pulumi
 * CLI or cloud account needed); see harness/stackrun.ts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { artifact } from "../components/core/artifacts";
import { ConfigError } from "../components/core/config";
import { runStack, StackRun } from "../harness/stackrun";
import { formatPreview } from "./preview";

const USAGE = `usage:
  anycast validate --config <Pulumi.<stack>.yaml>
  anycast render   --config <file> --out <dir>
  anycast preview  --config <file>
  anycast lab      --config <file> [--edge frr|bird] [--json <file>] [--keep] [--repeats N]
  anycast lab      --down
  anycast lab      --deploy --config <file>
  anycast bench    [--config <file>] [--skip-lab] [--repeats N]`;

class UsageError extends Error {}

function requireConfig(file: string | undefined): string {
    if (!file) throw new UsageError("--config <Pulumi.<stack>.yaml> is required");
    if (!fs.existsSync(file)) throw new UsageError(`config file ${file} does not exist`);
    return file;
}

function printNotes(run: StackRun, out: (s: string) => void): void {
    for (const n of run.notes) out(`note: ${n}`);
    for (const w of run.warnings) out(`warning: ${w.key}: ${w.message}`);
    for (const r of run.spec.rpki) out(`rpki: ${r.prefix} from AS${run.spec.asn}: ${r.state} (${r.detail})`);
}

export async function main(argv: string[], out: (s: string) => void = console.log, err: (s: string) => void = console.error): Promise<number> {
    const [command, ...rest] = argv;
    let values: Record<string, string | boolean | undefined>;
    try {
        ({ values } = parseArgs({
            args: rest,
            options: {
                config: { type: "string", short: "c" },
                out: { type: "string", short: "o" },
                json: { type: "string" },
                keep: { type: "boolean" },
                down: { type: "boolean" },
                deploy: { type: "boolean" },
                repeats: { type: "string" },
                edge: { type: "string" },
                "skip-lab": { type: "boolean" },
                help: { type: "boolean", short: "h" },
            },
            strict: true,
        }));
    } catch (e) {
        err(`anycast: ${(e as Error).message}\n${USAGE}`);
        return 2;
    }
    if (!command || values.help || command === "help") {
        out(USAGE);
        return command ? 0 : 2;
    }
    try {
        switch (command) {
            case "validate": {
                const file = requireConfig(values.config as string | undefined);
                const run = await runStack({ configFile: file });
                printNotes(run, out);
                out(`${file}: valid (${run.spec.pops.length} PoPs, ${run.resources.length} resources)`);
                return 0;
            }
            case "render": {
                const file = requireConfig(values.config as string | undefined);
                const dir = values.out as string | undefined;
                if (!dir) throw new UsageError("--out <dir> is required");
                const run = await runStack({ configFile: file });
                printNotes(run, out);
                writeRender(run, dir);
                for (const h of run.hosts) out(`${path.join(dir, h.name)}/: ${Object.keys(h.files).sort().join(", ")}`);
                out(`${path.join(dir, "plan.json")}: ${run.resources.length} resources`);
                return 0;
            }
            case "preview": {
                const file = requireConfig(values.config as string | undefined);
                const run = await runStack({ configFile: file });
                printNotes(run, out);
                out(formatPreview(run));
                return 0;
            }
            case "lab": {
                const lab = await import("../lab/index");
                if (values.down) {
                    await lab.teardownLab(out);
                    return 0;
                }
                const file = requireConfig(values.config as string | undefined);
                if (values.deploy) {
                    const rehearsal = await import("../lab/deploy/rehearsal");
                    const report = await rehearsal.rehearseDeploy({ configFile: file, log: out });
                    for (const line of rehearsal.formatRehearsal(report)) out(line);
                    return report.ok ? 0 : 1;
                }
                const edge = (values.edge as string | undefined) ?? "frr";
                if (!lab.EDGE_KINDS.includes(edge as never)) throw new UsageError(`--edge must be one of ${lab.EDGE_KINDS.join(", ")}, not "${edge}"`);
                const report = await lab.runLab({
                    configFile: file, json: values.json as string | undefined, keep: !!values.keep, edge: edge as "frr" | "bird",
                    repeats: values.repeats ? Number(values.repeats) : undefined, log: out,
                });
                return report.ok ? 0 : 1;
            }
            case "bench": {
                const bench = await import("../bench/index");
                await bench.runBench({
                    configFile: (values.config as string | undefined) ?? "Pulumi.lab.yaml",
                    skipLab: !!values["skip-lab"],
                    repeats: values.repeats ? Number(values.repeats) : undefined,
                    log: out,
                });
                return 0;
            }
            default:
                err(`anycast: unknown command "${command}"\n${USAGE}`);
                return 2;
        }
    } catch (e) {
        if (e instanceof ConfigError) {
            err(e.message);
            return 1;
        }
        if (e instanceof UsageError) {
            err(`anycast: ${e.message}\n${USAGE}`);
            return 2;
        }
        if ((e as Error).name === "LabPreconditionError") {
            err(`anycast lab: ${(e as Error).message}`);
            return 1;
        }
        throw e;
    }
}

/** Write `<dir>/<host>/<file>` for every pushed file, and `<dir>/plan.json`. */
export function writeRender(run: StackRun, dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    for (const host of run.hosts) {
        const hostDir = path.join(dir, host.name);
        fs.rmSync(hostDir, { recursive: true, force: true });
        fs.mkdirSync(hostDir, { recursive: true });
        for (const [file, content] of Object.entries(host.files)) {
            // Key material and files with passwords (the registry's secret flag): owner-only.
            fs.writeFileSync(path.join(hostDir, file), content, { mode: artifact(file).secret ? 0o600 : 0o644 });
        }
    }
    const plan = {
        notes: run.notes,
        warnings: run.warnings,
        hosts: run.hosts.map((h) => ({ name: h.name, role: h.role, region: h.region, ipv6: h.ipv6, ipv4: h.ipv4, files: Object.keys(h.files).sort() })),
        resources: run.resources,
    };
    fs.writeFileSync(path.join(dir, "plan.json"), JSON.stringify(plan, null, 2) + "\n");
}

if (require.main === module) {
    main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
        console.error(e instanceof Error ? e.stack : e);
        process.exit(1);
    });
}
