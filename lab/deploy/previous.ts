/**
 * An earlier version's deploy of the same stack, for the rehearsal's upgrade
 * (`anycast lab --deploy --upgrade-from <revision>`): the remote commands and instance user data
 * that version's own program registers, so that the hosts run what that version deployed, and
 * the current version's deploy then lands on them as `pulumi up` after an upgrade would.
 *
 * How: the revision's tree (`git archive`) is compiled in a temporary directory against this
 * checkout's node_modules (the same dependencies, or a subset: 0.1.0's are), and
 * previous-driver.js runs that version's planDeploy under the mocks in a process of its own (the
 * mocks are per process). It hands back the generated outputs too (keys, certificates): the
 * current version's plan keeps them, as a real stack keeps them in its state.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runUntracked } from "../exec";
import type { PlannedCommand, PriorOutputs } from "./plan";

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");

/** What previous-driver.js writes: the earlier version's deploy, plain data. */
export interface PreviousDeploy {
    /** The revision as given, and the commit it names. */
    revision: string;
    commit: string;
    /** That version's package.json version. */
    version: string;
    commands: PlannedCommand[];
    /** Each host's rendered cloud-init (a Vultr instance's userData), by host name. */
    userData: Record<string, string>;
    priorOutputs: PriorOutputs;
    /** The CA that signed that run's origin certificate (the mocks' stand-in for Cloudflare's Origin CA). */
    originCaPem: string;
}

export interface PreviousDeployInput {
    values: Record<string, unknown>;
    instanceAddresses: Record<string, { ipv6: string; ipv4?: string }>;
}

/** Why this checkout cannot build `revision`, or undefined when it can. */
export function previousVersionProblem(revision: string): string | undefined {
    try {
        execFileSync("git", ["-C", REPO_ROOT, "rev-parse", "--verify", "--quiet", `${revision}^{commit}`], { stdio: "pipe" });
    } catch {
        return fs.existsSync(path.join(REPO_ROOT, ".git"))
            ? `--upgrade-from ${revision}: no such commit in ${REPO_ROOT}`
            : `--upgrade-from needs a git checkout of pulumi-anycast (${REPO_ROOT} has no .git)`;
    }
    if (!fs.existsSync(path.join(REPO_ROOT, "node_modules", "typescript"))) return `--upgrade-from: ${REPO_ROOT}/node_modules has no typescript (run npm ci)`;
    return undefined;
}

/** Build `revision` and run its plan for `input`; the temporary tree is gone when this returns. */
export async function planPreviousVersion(revision: string, input: PreviousDeployInput, log: (line: string) => void = () => undefined): Promise<PreviousDeploy> {
    const problem = previousVersionProblem(revision);
    if (problem) throw new Error(problem);
    const commit = execFileSync("git", ["-C", REPO_ROOT, "rev-parse", `${revision}^{commit}`], { encoding: "utf8" }).trim();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-previous-"));
    try {
        const tree = path.join(dir, "tree");
        fs.mkdirSync(tree);
        const archive = await runUntracked("sh", ["-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", REPO_ROOT, commit, tree], { timeoutMs: 60_000, allowFail: true });
        if (archive.code !== 0) throw new Error(`git archive ${commit}: ${archive.stderr.trim()}`);
        fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(tree, "node_modules"));
        const t0 = Date.now();
        const tsc = await runUntracked(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(tree, "tsconfig.json")], { timeoutMs: 300_000, allowFail: true });
        if (tsc.code !== 0) throw new Error(`compiling ${revision} (${commit.slice(0, 12)}) failed: ${(tsc.stdout + tsc.stderr).trim().split("\n").slice(0, 5).join(" | ")}`);
        const version = String((JSON.parse(fs.readFileSync(path.join(tree, "package.json"), "utf8")) as { version?: string }).version ?? "?");
        log(`  ${revision} (${commit.slice(0, 12)}, version ${version}): compiled in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        const out = path.join(dir, "previous.json");
        // The input holds the stack's secrets: it goes through a pipe, the answer through a 0600 file.
        const driver = await runUntracked(process.execPath, [path.join(__dirname, "previous-driver.js"), tree, out],
            { input: JSON.stringify(input), timeoutMs: 300_000, allowFail: true });
        if (driver.code !== 0) throw new Error(`the deploy plan of ${revision} failed: ${driver.stderr.trim().split("\n").filter((l) => !/^\s+at /.test(l)).slice(-6).join(" | ")}`);
        const previous = JSON.parse(fs.readFileSync(out, "utf8")) as Omit<PreviousDeploy, "revision" | "commit" | "version">;
        return { revision, commit, version, ...previous };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
