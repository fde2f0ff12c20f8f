/**
 * `anycast`: the command line of pulumi-anycast.
 *
 *   anycast validate --config Pulumi.<stack>.yaml
 *   anycast render   --config Pulumi.<stack>.yaml --out <dir>
 *   anycast preview  --config Pulumi.<stack>.yaml [--diff <plan.json>] [--json <file>]
 *   anycast lab      --config Pulumi.lab.yaml [--json <file>] [--html <file>] [--keep] [--repeats N] [--edge frr|bird]
 *                    [--experiments a,b]
 *   anycast lab      --down                                 (the kept lab, and kept rehearsals)
 *   anycast lab      --deploy --config Pulumi.<stack>.yaml [--upgrade-from <revision>] [--keep] [--json <file>]
 *                    (lab/deploy/rehearsal.ts; with --keep and a kept rehearsal: lab/deploy/redeploy.ts)
 *   anycast bench    [--config Pulumi.lab.yaml] [--skip-lab] [--repeats N]
 *
 * validate/render/preview run the real stacks/network program under Pulumi's mocks (no Pulumi
 * CLI or cloud account needed); see harness/stackrun.ts. Subcommands, options, per-command help and
 * "did you mean" come from commander (README.md says why). Exit codes: 0 ok, 1 the config or
 * the lab failed, 2 the command line is wrong.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Command, CommanderError, InvalidArgumentError, Option, OptionValues } from "commander";
import { artifact } from "../components/core/artifacts";
import { ConfigError } from "../components/core/config";
import { renderMonitoringBundle, scrapeInputFor } from "../components/core/monitoring/prometheus";
import { StackFileError } from "../components/core/stackfile";
import { runStack, StackRun } from "../harness/stackrun";
import type { EdgeKind, LabOptions } from "../lab/index";
import { buildPlan, diffPlans, parsePlan, SavedPlan } from "./plan";
import { formatStatus, OutputsError, statusExitCode, StatusTargets, targetsFromOutputs } from "./network-status";
import { gatherStatus } from "./status";
import { allCreated, countsLine, formatPreview } from "./preview";
import { elapsed, fitting, OUTPUT_COLUMNS, step, table, wrap } from "./format";

/** A mistake on the command line: exit 2, with a pointer to the command's help. */
class UsageError extends Error {}

export interface Io {
    out: (line: string) => void;
    err: (line: string) => void;
}

// --config is checked here rather than made mandatory in commander, which would report a
// missing --config before an unknown option such as --cofig, and so never suggest --config.
function requireConfig(file: string | undefined): string {
    if (file === undefined) throw new UsageError("--config <file> is required: give a Pulumi.<stack>.yaml file");
    if (!fs.existsSync(file)) throw new UsageError(`config file ${file} does not exist: give a Pulumi.<stack>.yaml file with --config`);
    if (!fs.statSync(file).isFile()) throw new UsageError(`${file} is not a file: give a Pulumi.<stack>.yaml file with --config`);
    return file;
}

/** The stack's name as Pulumi derives it from the file name (Pulumi.prod.yaml -> prod). */
function stackName(file: string): string {
    return path.basename(file).replace(/^Pulumi\./, "").replace(/\.ya?ml$/, "");
}

function repeatsArg(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("use a whole number, 0 or more");
    return n;
}

/** Run the stack program under mocks, reporting progress and what the run noticed. */
async function runConfig(file: string, io: Io): Promise<StackRun> {
    const run = await step(io.out, "running stacks/network under Pulumi mocks", () => runStack({ configFile: file }),
        (r) => `${r.resources.length} resources`);
    for (const n of run.notes) io.out(wrap(`note: ${n}`));
    for (const w of run.warnings) io.out(wrap(`warning: ${w.key}: ${w.message}`));
    for (const r of run.spec.rpki) {
        // With a private ASN the origin is each upstream's public AS (origin-as.ts), not ours.
        const via = r.pops ? ` (private AS${run.spec.asn} removed upstream; PoPs ${r.pops.join(", ")})` : "";
        io.out(wrap(`rpki: ${r.prefix} from AS${r.originAsn}${via}: ${r.state} (${r.detail})`));
    }
    return run;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

async function validate(opts: { config?: string }, io: Io): Promise<number> {
    const run = await runConfig(requireConfig(opts.config), io);
    io.out(wrap(`validate: ok, ${plural(run.spec.pops.length, "PoP")}, ${plural(run.resources.length, "resource")}, ` +
        `${plural(run.warnings.length, "warning")} (${opts.config})`));
    return 0;
}

async function render(opts: { config?: string; out?: string }, io: Io): Promise<number> {
    const config = requireConfig(opts.config);
    const dir = opts.out;
    if (dir === undefined) throw new UsageError("--out <dir> is required: the directory to write the files to");
    const run = await runConfig(config, io);
    writeRender(run, dir, stackName(config));
    const rows = run.hosts.map((h) => [h.name, h.role, h.region ?? "existing host", String(Object.keys(h.files).length),
        `${path.join(dir, h.name)}/`]);
    io.out("");
    for (const l of table(["Host", "Role", "Region", "Files", "Written to"], rows)) io.out(l);
    const files = run.hosts.reduce((n, h) => n + Object.keys(h.files).length, 0);
    io.out(wrap(`render: ok, ${plural(run.hosts.length, "host")}, ${plural(files, "file")}, ` +
        `${plural(run.resources.length, "resource")} in ${path.join(dir, "plan.json")}`));
    return 0;
}

async function preview(opts: { config?: string; diff?: string; json?: string }, io: Io): Promise<number> {
    // Read the previous plan first: a wrong --diff file should fail before the stack runs.
    const previous = opts.diff !== undefined ? readPlan(opts.diff) : undefined;
    const config = requireConfig(opts.config);
    const run = await runConfig(config, io);
    const plan = buildPlan(run, stackName(config));
    const changes = previous ? diffPlans(previous, plan) : allCreated(plan);
    if (previous && previous.stack !== plan.stack) {
        io.out(wrap(`note: ${opts.diff} is a plan of stack ${previous.stack}, this is ${plan.stack}: URNs differ, so every resource shows as replaced by a new one`));
    }
    io.out("");
    io.out(wrap(`Previewing stack ${plan.stack}${previous ? ` against ${opts.diff}` : " (a first pulumi up)"}:`));
    io.out("");
    io.out(formatPreview(plan, changes, previous !== undefined));
    if (opts.json) {
        writePlan(plan, opts.json);
        io.out(wrap(`wrote the plan to ${opts.json} (compare a later preview with --diff ${opts.json})`));
    }
    io.out(wrap(`preview: ${countsLine(changes)}${previous ? ` against ${opts.diff}` : ""}`));
    return 0;
}

function readPlan(file: string): SavedPlan {
    if (!fs.existsSync(file)) throw new UsageError(`${file} does not exist: give a plan.json written by anycast render or anycast preview --json`);
    try {
        return parsePlan(fs.readFileSync(file, "utf8"), file);
    } catch (e) {
        throw new UsageError((e as Error).message);
    }
}

/** The lab's options the deploy rehearsal has no use for, and why (refused, never ignored). */
const NOT_FOR_REHEARSAL: Record<string, string> = {
    repeats: "the rehearsal runs its one experiment once (--repeats is the lab's)",
    edge: "the rehearsal's provider edge is BIRD (--edge picks the lab's)",
    experiments: "the rehearsal runs its own checks (--experiments picks the lab's)",
    html: "the page draws the lab's report (regions, experiments, idle cost); the rehearsal's report is its text and --json",
};

async function lab(opts: { config?: string; json?: string; html?: string; keep?: boolean; repeats: number; down?: boolean; deploy?: boolean;
    edge: string; experiments?: string; upgradeFrom?: string }, io: Io, given: (option: string) => boolean): Promise<number> {
    if (opts.down) {
        const others = ["config", "json", "html", "keep", "repeats", "edge", "experiments", "upgradeFrom"].filter(given);
        if (others.length > 0) throw new UsageError(`--down tears down and exits: it takes no ${others.map((o) => `--${o === "upgradeFrom" ? "upgrade-from" : o}`).join(", ")}`);
        await (await import("../lab/index")).teardownLab(io.out);
        const removed = await (await import("../lab/deploy/slots")).teardownKeptSlots(io.out);
        io.out(removed.length === 0 ? "anycast lab: no kept rehearsal" : `anycast lab: removed ${plural(removed.length, "kept rehearsal")}`);
        return 0;
    }
    if (opts.deploy) {
        const refused = Object.keys(NOT_FOR_REHEARSAL).filter(given);
        if (refused.length > 0) {
            throw new UsageError(refused.map((o) => `--${o} cannot be used with --deploy: ${NOT_FOR_REHEARSAL[o]}`).join("; "));
        }
        const config = requireConfig(opts.config);
        const kept = opts.keep ? (await import("../lab/deploy/slots")).keptSlots() : [];
        if (kept.length > 0) {
            // A kept rehearsal: this deploy lands on its hosts, as a second `pulumi up` would.
            if (opts.upgradeFrom !== undefined) {
                throw new UsageError(`--upgrade-from rehearses an upgrade from fresh hosts, and the kept rehearsal (slot ${kept[0]}) has its deploy already: anycast lab --down first`);
            }
            const redeploy = await import("../lab/deploy/redeploy");
            const report = await redeploy.redeployKept({ configFile: config, log: fitting(io.out) });
            for (const line of redeploy.formatRedeploy(report)) io.out(line);
            if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(redeploy.redeployJson(report), null, 2) + "\n");
            printKept(report.kept, io);
            io.out(wrap(`rehearsal: ${report.ok ? "ok" : "failed"}, deployed onto the kept hosts (${opts.config}${opts.json ? `, report in ${opts.json}` : ""})`));
            return report.ok ? 0 : 1;
        }
        const rehearsal = await import("../lab/deploy/rehearsal");
        if (opts.upgradeFrom !== undefined) {
            const problem = (await import("../lab/deploy/previous")).previousVersionProblem(opts.upgradeFrom);
            if (problem) throw new UsageError(problem);
        }
        const report = await rehearsal.rehearseDeploy({ configFile: config, log: fitting(io.out), upgradeFrom: opts.upgradeFrom, keep: !!opts.keep });
        for (const line of rehearsal.formatRehearsal(report)) io.out(line);
        if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(rehearsal.rehearsalJson(report), null, 2) + "\n");
        if (report.kept) printKept(report.kept, io);
        io.out(wrap(`rehearsal: ${report.ok ? "ok" : "failed"} (${opts.config}${opts.json ? `, report in ${opts.json}` : ""}${report.kept ? ", kept" : ""})`));
        return report.ok ? 0 : 1;
    }
    if (opts.upgradeFrom !== undefined) throw new UsageError("--upgrade-from needs --deploy: it rehearses an upgrade of deployed hosts");
    const labModule = await import("../lab/index");
    if (!opts.config) throw new UsageError("--config <file> is required (or --down to tear a kept lab down)");
    const known: readonly string[] = labModule.LAB_EXPERIMENT_IDS;
    const experiments = opts.experiments?.split(",").map((id) => id.trim()).filter((id) => id !== "");
    const unknown = experiments?.filter((id) => !known.includes(id)) ?? [];
    if (unknown.length > 0) throw new UsageError(`--experiments: ${unknown.join(", ")} is not an experiment: use some of ${known.join(", ")}`);
    // `edge` picks the emulated upstreams' BGP implementation (lab/index.ts runLab).
    const labOptions = {
        configFile: requireConfig(opts.config), json: opts.json, html: opts.html, keep: !!opts.keep, repeats: opts.repeats,
        edge: opts.edge as EdgeKind, log: fitting(io.out),
        ...(experiments ? { experiments: experiments as LabOptions["experiments"] } : {}),
    };
    const started = Date.now();
    const report = await labModule.runLab(labOptions);
    const verdict = report.ok ? "ok" : `failed, ${plural(report.problems.length, "problem")}`;
    io.out(wrap(`lab: ${verdict} in ${elapsed(Date.now() - started)} (${opts.config}${opts.json ? `, report in ${opts.json}` : ""}` +
        `${opts.html ? `, page in ${opts.html}` : ""}${report.kept ? ", kept: anycast lab --down tears it down" : ""})`));
    return report.ok ? 0 : 1;
}

async function bench(opts: { config: string; skipLab?: boolean; repeats: number }, io: Io): Promise<number> {
    const benchModule = await import("../bench/index");
    const started = Date.now();
    await benchModule.runBench({ configFile: requireConfig(opts.config), skipLab: !!opts.skipLab, repeats: opts.repeats, log: fitting(io.out) });
    io.out(wrap(`bench: ok in ${elapsed(Date.now() - started)} (${opts.config}${opts.skipLab ? ", lab skipped" : ""}), figures in BENCHMARKS.md`));
    return 0;
}

const configOption = (when = "required") => new Option("-c, --config <file>", `the stack file to use, a Pulumi.<stack>.yaml (${when})`);
const repeatsOption = (what: string) => new Option("--repeats <n>", what).default(5).argParser(repeatsArg);

/**
 * One subcommand: its help (a one-line summary for `anycast --help`, a description of what it
 * does, options with defaults, examples, what it prints) and what it runs.
 */
interface CommandSpec {
    name: string;
    summary: string;
    description: string;
    options: () => Option[];
    examples: string[];
    /** What the command prints last and its exit codes (the help's closing paragraph). */
    result: string;
    /** `given(option)`: whether the user gave that option (its attribute name), not only its default. */
    run: (opts: never, io: Io, given: (option: string) => boolean) => Promise<number>;
}

const EXIT_CODES = "Exit codes: 0 ok, 1 failed (config errors, the lab, a PoP not as it should be), 2 bad command line.";

function secondsArg(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 300) throw new InvalidArgumentError("use a whole number of seconds from 1 to 300");
    return n;
}

/** The stack's outputs, from a file or (`-`) stdin. */
function readOutputs(source: string | undefined): unknown {
    if (source === undefined) throw new UsageError("--outputs <file> is required: pulumi stack output --json --show-secrets > outputs.json, or --outputs - to read them from stdin");
    let text: string;
    if (source === "-") {
        text = fs.readFileSync(0, "utf8");
    } else {
        if (!fs.existsSync(source)) throw new UsageError(`outputs file ${source} does not exist: write it with pulumi stack output --json --show-secrets > ${source}`);
        text = fs.readFileSync(source, "utf8");
    }
    try {
        return JSON.parse(text);
    } catch {
        throw new UsageError(`the outputs ${source === "-" ? "on stdin" : `in ${source}`} are not JSON: give pulumi stack output --json --show-secrets (with --json)`);
    }
}

async function status(opts: { outputs?: string; identity?: string; knownHosts?: string; json?: boolean; timeout: number }, io: Io): Promise<number> {
    if (opts.identity !== undefined && !fs.existsSync(opts.identity)) throw new UsageError(`identity file ${opts.identity} does not exist: give the deploy's SSH private key`);
    let targets: StatusTargets;
    try {
        targets = targetsFromOutputs(readOutputs(opts.outputs));
    } catch (e) {
        if (e instanceof OutputsError) throw new UsageError(e.message);
        throw e;
    }
    const result = await gatherStatus(targets, { identity: opts.identity, knownHosts: opts.knownHosts, timeoutSeconds: opts.timeout });
    if (opts.json) io.out(JSON.stringify(result, null, 2));
    else for (const line of formatStatus(result)) io.out(line);
    return statusExitCode(result);
}

const COMMANDS: CommandSpec[] = [
    {
        name: "validate", summary: "check a stack file: every config error at once, before any resource exists",
        description: "Check a stack file as pulumi up would, without the Pulumi CLI or a cloud account: its YAML,\n" +
            "every anycast: key (with a \"did you mean\" for a mistyped one), Vultr region and plan ids\n" +
            "against the lists shipped in the package, and the announcement's RPKI state against\n" +
            "anycast:roas. Runs the stacks/network program under Pulumi mocks; secrets the file does not\n" +
            "hold in plain text are rendered with marked placeholders, and a note says so.",
        options: () => [configOption()],
        examples: ["anycast validate --config Pulumi.prod.yaml", "anycast validate -c Pulumi.lab.yaml"],
        result: "Prints every error as <anycast: key>: <what is wrong and what is valid>, then a summary line:\n" +
            "  validate: ok, 3 PoPs, 70 resources, 2 warnings (Pulumi.prod.yaml)\n" +
            "  validate: failed, 2 config errors",
        run: validate,
    },
    {
        name: "render", summary: "write every host's files (bird.conf, wg0.conf, nginx.conf, ...) and plan.json",
        description: "Write the files pulumi up would push to each host, as <dir>/<host>/<file> (key material and\n" +
            "files with passwords owner-only), and <dir>/plan.json: every resource's URN, parent, type,\n" +
            "name and inputs with secrets as [secret]. Give plan.json to anycast preview --diff later to\n" +
            "see what a change would do. Validates the stack file first, as anycast validate does.",
        options: () => [configOption(), new Option("-o, --out <dir>", "directory for <host>/<file> and plan.json (required)")],
        examples: ["anycast render --config Pulumi.prod.yaml --out out/",
            "anycast preview --config Pulumi.prod.yaml --diff out/plan.json   # after editing the stack file"],
        result: "Prints a table of hosts and files, then a summary line:\n  render: ok, 4 hosts, 40 files, 70 resources in out/plan.json",
        run: render,
    },
    {
        name: "preview", summary: "show what pulumi up would do, as a tree by parent, optionally against a previous plan",
        description: "Show what pulumi up would do, laid out like pulumi preview: the resources as a tree by parent\n" +
            "(stack, components, resources) with a marker each, then counts by type. Without --diff every\n" +
            "resource is created (a first pulumi up). With --diff, only what changes is shown, each with\n" +
            "the inputs that change: secrets as [secret], a file's content as a line diff (a secret\n" +
            "file's changed lines by number only). The markers:\n" +
            "  +  create   ~  update in place   +- replace (an input that forces a new resource)   -  delete",
        options: () => [
            configOption(),
            new Option("--diff <plan.json>", "compare with a plan written by anycast render or preview --json " +
                "(default: none, every resource is created)"),
            new Option("--json <file>", "also write this run's plan to <file>, for a later --diff (default: not written)"),
        ],
        examples: ["anycast preview --config Pulumi.prod.yaml", "anycast preview --config Pulumi.prod.yaml --json before.json",
            "anycast preview --config Pulumi.prod.yaml --diff before.json   # after editing the stack file"],
        result: "Ends with a summary line: preview: 1 to replace, 69 unchanged against before.json",
        run: preview,
    },
    {
        name: "status", summary: "the live state of a deployed stack: each PoP's announcement, BGP session and paths (SSH)",
        description: "Ask each PoP's health agent of a deployed stack for its state, over SSH as the stack's pushes\n" +
            "log in: the user and port from the stack's outputs, the key from --identity or your ssh-agent,\n" +
            "sudo -n for a user that is not root. Shows per PoP: announced, draining, withdrawn or held down\n" +
            "and why; what it should be (drained by the config, or announced); its BGP session as BIRD\n" +
            "reports it; each path to the origins (direct or relayed through another PoP, up or down, RTT);\n" +
            "the agent's version and last change. Per origin: which PoPs reach it. A host it cannot ask is a\n" +
            "row with the reason.",
        options: () => [
            new Option("--outputs <file>", "the stack's outputs, from pulumi stack output --json --show-secrets; - reads stdin (required)"),
            new Option("-i, --identity <file>", "the SSH private key to log in with (default: ssh's own keys and your ssh-agent)"),
            new Option("--known-hosts <file>", "the known_hosts file for the hosts' keys; a new host's key is added (default: ssh's own)"),
            new Option("--json", "print the status as JSON instead of the table (default: the table)"),
            new Option("--timeout <seconds>", "seconds to connect to each host, and again for it to answer").default(10).argParser(secondsArg),
        ],
        examples: ["anycast status --outputs outputs.json --identity ~/.ssh/anycast-deploy",
            "pulumi stack output --json --show-secrets | anycast status --outputs - --json"],
        result: "Ends with a summary line: status: ok, 3 PoPs as they should be\n" +
            "Exits 1 when a PoP that should be announced is not, or cannot be asked.",
        run: status,
    },
    {
        name: "lab", summary: "run the stack on this machine: namespaces, BIRD, WireGuard, nginx, experiments (root)",
        description: "Run the stack on this machine, with the files it renders and the real tools: network\n" +
            "namespaces for the PoPs, the origin, emulated Vultr edges and transits; BIRD, WireGuard,\n" +
            "nginx and the health agent on each PoP. Then measure and break things: a PoP crash, a lost\n" +
            "link, a lost origin, a drain, every origin down, a PoP's tunnels to the origins cut, one of\n" +
            "two origins down, a routing policy change, flap damping. Prints a progress line\n" +
            "with its elapsed time for each step, and a report. Needs root and the Debian packages of\n" +
            "scripts/setup.sh; one lab runs at a time on a machine (a second one waits).",
        options: () => [
            configOption("required unless --down"),
            new Option("--json <file>", "also write the report as JSON to <file> (default: not written)"),
            new Option("--html <file>", "also write the report as one self-contained HTML page to <file>: the catchment, " +
                "a timeline of each experiment's runs, the daemons' idle cost; it loads nothing (default: not written)"),
            new Option("--keep", "leave the lab running afterwards, to look around; with --deploy, leave the rehearsal's " +
                "hosts up (it prints the anycast status command for them), or deploy onto the kept ones again (default: torn down)"),
            repeatsOption("runs of each experiment; 0 only builds the lab and checks it serves"),
            new Option("--edge <impl>", "what plays the provider's BGP edges: FRR (not the PoPs' own BIRD, so " +
                "interop faults show) or BIRD").choices(["frr", "bird"]).default("frr"),
            new Option("--experiments <ids>", "only these experiments, comma-separated: crash, linkLoss, originLoss, drain, " +
                "originOutage, tunnelCut, originDown (default: all, then the policy change and flap damping)"),
            new Option("--down", "tear down a kept or interrupted lab, and every kept rehearsal's hosts, and exit (default: off)"),
            new Option("--deploy", "the deploy rehearsal instead: the stack's own remote commands over SSH to fresh " +
                "Debian 12 hosts (systemd-nspawn), then its checks; honours --json and --keep (default: off)"),
            new Option("--upgrade-from <revision>", "with --deploy: the hosts first get the deploy of that git revision of " +
                "pulumi-anycast (e.g. 43c83ba, 0.1.0 with the bash agent), then this version's deploy onto them (default: a fresh deploy)"),
        ],
        examples: ["anycast lab --config Pulumi.lab.yaml",
            "anycast lab --config Pulumi.prod.yaml --edge bird --repeats 1 --json report.json",
            "anycast lab --config Pulumi.lab.yaml --html report.html   # a page for a postmortem",
            "anycast lab --config Pulumi.lab.yaml --experiments originOutage,tunnelCut,originDown",
            "anycast lab --config Pulumi.lab.yaml --keep   # then look around; later: anycast lab --down",
            "anycast lab --deploy --config Pulumi.prod.yaml --upgrade-from 43c83ba --json rehearsal.json",
            "anycast lab --deploy --keep --config Pulumi.prod.yaml   # keeps the hosts; prints how to see them",
            "anycast lab --deploy --keep --config Pulumi.drained.yaml   # onto them: changed commands only"],
        result: "Ends with a summary line: lab: ok in 140.2 s (Pulumi.lab.yaml), or lab: failed, 2 problems\n" +
            "in 151.0 s (Pulumi.lab.yaml), the problems listed in the report above it.",
        run: lab,
    },
    {
        name: "bench", summary: "measure program evaluation and, in the lab, failover times; writes BENCHMARKS.md",
        description: "Measure how long the stack program takes to evaluate for 1 to 32 PoPs (under mocks) and, in\n" +
            "the lab, failover times, the data path through a PoP and link loss per provider profile.\n" +
            "Prints each figure as it is measured (min / median / max over the runs) and writes\n" +
            "BENCHMARKS.md. The lab part needs root, like anycast lab, and takes several minutes.",
        options: () => [
            new Option("-c, --config <file>", "the stack file to use, a Pulumi.<stack>.yaml").default("Pulumi.lab.yaml"),
            new Option("--skip-lab", "only the program evaluation figures, no root needed (default: lab included)"),
            repeatsOption("runs of each measurement"),
        ],
        examples: ["anycast bench --skip-lab", "anycast bench --config Pulumi.lab.yaml --repeats 3"],
        result: "Ends with a summary line: bench: ok in 312.5 s (Pulumi.lab.yaml), figures in BENCHMARKS.md",
        run: bench,
    },
];

/** The program: the root command with global options, and one subcommand per COMMANDS entry. */
export function program(io: Io, done: (code: number) => void): Command {
    const root = new Command("anycast")
        .description("Validate, render, preview and rehearse a pulumi-anycast stack without a cloud account.")
        .version(packageVersion(), "-V, --version", "print the version and exit")
        .helpOption("-h, --help", "show this help and exit")
        .option("--debug", "print the stack trace of an error in anycast itself or in the lab (for a bug report)")
        .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, "")), writeErr: (s) => io.err(s.replace(/\n$/, "")) })
        .configureHelp({ helpWidth: OUTPUT_COLUMNS, showGlobalOptions: true })
        .showSuggestionAfterError(true)
        .showHelpAfterError("(anycast --help lists the commands)")
        .exitOverride()
        .addHelpText("after", "\nExamples:\n  anycast validate --config Pulumi.prod.yaml\n" +
            "  anycast preview --config Pulumi.prod.yaml --diff out/plan.json\n  anycast lab --config Pulumi.lab.yaml\n\n" +
            `Each command has its own help: anycast <command> --help.\n${EXIT_CODES}`);
    for (const spec of COMMANDS) {
        const command = root.command(spec.name)
            .summary(spec.summary)
            .description(spec.description)
            .showHelpAfterError(`(anycast ${spec.name} --help lists its options)`)
            .addHelpText("after", `\nExamples:\n${spec.examples.map((e) => `  ${e}`).join("\n")}\n\n${spec.result}\n${EXIT_CODES}`)
            .action(async (_opts: OptionValues, cmd: Command) => done(await spec.run(cmd.optsWithGlobals() as never, io,
                (option) => cmd.getOptionValueSource(option) === "cli")));
        for (const option of spec.options()) command.addOption(option);
    }
    return root;
}

function packageVersion(): string {
    const file = path.join(__dirname, "..", "..", "package.json");
    return (JSON.parse(fs.readFileSync(file, "utf8")) as { version: string }).version;
}

/** The most lines of an error's own message printed (a tool's stderr can be long). */
const MESSAGE_LINES = 20;

/** An error's message as indented lines within OUTPUT_COLUMNS, at most MESSAGE_LINES of them. */
function messageLines(message: string): string[] {
    const lines = message.trimEnd().split("\n");
    const shown = lines.slice(0, MESSAGE_LINES).map((l) => wrap(`  ${l}`, 6));
    if (lines.length > MESSAGE_LINES) shown.push(`  ... ${lines.length - MESSAGE_LINES} more lines (--debug shows them all)`);
    return shown;
}

/**
 * Print an error the way its kind deserves; returns the exit code. A user's mistake (config,
 * stack file, command line, the lab's preconditions) is words only; an error of ours or of the
 * lab (a tool that failed, a step that timed out) prints its whole message, and its stack trace
 * with --debug. Every path but a usage error ends with "<command>: failed, <why>" for CI.
 */
export function reportError(e: unknown, command: string, argv: string[], io: Io): number {
    const debug = argv.includes("--debug");
    const error = e instanceof Error ? e : new Error(String(e));
    if (debug) io.err(error.stack ?? error.message);
    if (error instanceof ConfigError) {
        const at = argv.findIndex((a) => a === "-c" || a === "--config");
        const file = at >= 0 ? argv[at + 1] : argv.find((a) => a.startsWith("--config="))?.slice(9);
        io.err(wrap(`anycast ${command}: ${file ?? "the config"} has ${plural(error.issues.length, "error")}:`));
        for (const i of error.issues) io.err(wrap(`  ${i.key}: ${i.message}`, 6));
        io.err(`${command}: failed, ${plural(error.issues.length, "config error")}`);
        return 1;
    }
    if (error instanceof StackFileError) {
        io.err(wrap(error.message));
        io.err(`${command}: failed, the stack file cannot be read`);
        return 1;
    }
    if (error instanceof UsageError) {
        io.err(wrap(`anycast ${command}: ${error.message}`));
        io.err(`(anycast ${command} --help lists its options)`);
        return 2;
    }
    if (error.name === "LabPreconditionError" || error.name === "KeptRehearsalRefused") {
        io.err(wrap(`anycast ${command}: ${error.message}`));
        io.err(`${command}: failed`);
        return 1;
    }
    if (command === "lab" || command === "bench") {
        io.err(`anycast ${command}: the lab failed:`);
        for (const l of messageLines(error.message)) io.err(l);
        io.err(`${command}: failed${debug ? "" : " (--debug prints the stack trace)"}`);
        return 1;
    }
    io.err(`anycast ${command}: unexpected error:`);
    for (const l of messageLines(error.message)) io.err(l);
    if (!debug) io.err("run with --debug for the stack trace, and report it as a bug");
    io.err(`${command}: failed, an error in anycast itself`);
    return 1;
}

export async function main(argv: string[], out: (s: string) => void = console.log, err: (s: string) => void = console.error): Promise<number> {
    const io: Io = { out, err };
    let code = 0;
    const root = program(io, (c) => { code = c; });
    if (argv.length === 0) {
        root.outputHelp({ error: true });
        return 2;
    }
    const command = argv.find((a) => !a.startsWith("-")) ?? "";
    // `anycast help <typo>`: commander would print the general help and exit 0; parsing the typo
    // as a command gets its "did you mean" and exit 2 instead.
    const helpTopic = argv[0] === "help" ? argv[1] : undefined;
    if (helpTopic !== undefined && !root.commands.some((c) => c.name() === helpTopic)) argv = [helpTopic];
    try {
        await root.parseAsync(argv, { from: "user" });
        return code;
    } catch (e) {
        if (e instanceof CommanderError) {
            // Help the user asked for, and the version, exit 0 (commander's own exit code for help
            // follows process.exitCode); help shown because no command was given, and every other
            // commander error, is a usage mistake.
            const asked = argv.some((a) => a === "help" || a === "-h" || a === "--help");
            if (e.code === "commander.version" || (asked && ["commander.help", "commander.helpDisplayed"].includes(e.code))) return 0;
            return 2;
        }
        return reportError(e, command, argv, io);
    }
}

/**
 * A kept rehearsal's way in: the `anycast status` command on a line of its own (a script can
 * take the line that starts with it), then how to deploy again and how to remove it.
 */
function printKept(kept: { slot: number; statusCommand: string }, io: Io): void {
    io.out(`kept: the rehearsal's hosts are still up (slot ${kept.slot}); their status:`);
    io.out(kept.statusCommand);
    io.out(wrap("kept: deploy a changed stack onto them with anycast lab --deploy --keep --config <file>; remove them with anycast lab --down"));
}

/** Write `<dir>/<host>/<file>` for every pushed file, and `<dir>/plan.json`. */
export function writeRender(run: StackRun, dir: string, stack = "mock"): void {
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
    writeMonitoringBundle(run, path.join(dir, MONITORING_DIR));
    writePlan(buildPlan(run, stack), path.join(dir, "plan.json"));
}

/** Beside the hosts' directories: the bundle for the user's own Prometheus (or what anycast:monitoring runs). */
const MONITORING_DIR = "monitoring";

function writeMonitoringBundle(run: StackRun, dir: string): void {
    if (run.hosts.some((h) => h.name === MONITORING_DIR)) {
        throw new UsageError(`a host is named ${MONITORING_DIR}, the directory anycast render writes the monitoring bundle to: rename the host`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (const [file, content] of Object.entries(renderMonitoringBundle(scrapeInputFor(run.spec)))) {
        fs.writeFileSync(path.join(dir, file), content, { mode: 0o644 });
    }
}

function writePlan(plan: SavedPlan, file: string): void {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(plan, null, 2) + "\n");
}

if (require.main === module) {
    // main() reports every error itself; this catches only a failure to report one.
    main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
        console.error(`anycast: ${e instanceof Error ? e.message : String(e)}`);
        process.exit(1);
    });
}
