/**
 * Runs `command:remote:Command` creates over real SSH, the way @pulumi/command 1.2's provider
 * does and in the order the Pulumi engine would.
 *
 * How the provider runs a command (pulumi/pulumi-command, provider/pkg/provider/remote:
 * commandOutputs.go, connection.go): it dials with Go's x/crypto/ssh — no config files, host
 * keys not checked (InsecureIgnoreHostKey), only the given private key (plus an agent when
 * SSH_AUTH_SOCK is set), a per-dial timeout (perDialTimeout, 15 s) and up to dialErrorLimit (10)
 * failed dials retried — opens one session without a pseudo-terminal, sets the command's
 * `environment` with Setenv (which sshd may refuse; the refusal is ignored), feeds `stdin` when it
 * is non-empty (an empty stdin is EOF at once), and sends `create` as the exec request verbatim:
 * sshd runs it with the user's login shell as `$SHELL -c <create>`. stdout and stderr are
 * captured, each without its last newline; a non-zero exit fails the resource.
 *
 * OpenSSH's client does the same with: `-F none` (no ssh_config, so no SendEnv of LANG/LC_*
 * either), `StrictHostKeyChecking=no` with `UserKnownHostsFile=/dev/null`, `IdentitiesOnly` and
 * `IdentityAgent=none` with `-i <key>`, `BatchMode` (never a prompt), `ConnectTimeout=15`, `-T`,
 * `SetEnv` for the environment, and the command as ONE argument after `--`, which ssh sends as
 * the exec request unchanged.
 *
 * The engine's order: a resource's create starts once every resource it depends on has been
 * created, independent ones run in parallel (`pulumi up --parallel`, unbounded by default), and
 * after the first failure nothing new starts (what is running finishes) unless
 * `--continue-on-error`, which still never runs a dependent of a failed resource.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { sleep } from "../exec";

export interface SshConnection {
    host: string;
    /** Default 22, as the provider's. */
    port?: number;
    /** Default "root", as the provider's. */
    user?: string;
    /** The private key's text (OpenSSH or PEM), as Pulumi passes `connection.privateKey`. */
    privateKey: string;
    /** Seconds per dial (the provider's perDialTimeout, default 15). */
    perDialTimeout?: number;
    /** Failed dials allowed before the command fails (the provider's dialErrorLimit, default 10; -1 unlimited). */
    dialErrorLimit?: number;
}

export interface RemoteCommandSpec {
    /** Unique name (a URN or the resource name), used by dependsOn and in the report. */
    name: string;
    connection: SshConnection;
    /** The `create` script, sent as the exec request. */
    create: string;
    stdin?: string;
    environment?: Record<string, string>;
    /** Names of the commands this one waits for (resource dependencies). */
    dependsOn?: string[];
}

/** "running" only in the start event of `onStep`; a finished run has the other three. */
export type StepStatus = "running" | "succeeded" | "failed" | "skipped";

export interface StepResult {
    name: string;
    host: string;
    status: StepStatus;
    /** The remote command's exit status (255 with `dialFailed` when SSH never got through). */
    exitCode?: number;
    stdout: string;
    stderr: string;
    /** Milliseconds from the start of the run until this step started, and how long it took (dials included). */
    startedAtMs: number;
    durationMs: number;
    /** SSH connection attempts made. */
    dials: number;
    dialFailed?: boolean;
    /** Why a step did not run: the failed dependency, or the run having stopped. */
    skippedBecause?: string;
}

export interface RemoteRunOptions {
    /** Most commands in flight at once (`pulumi up --parallel`); default unbounded, as the CLI's. */
    parallel?: number;
    /** Keep starting independent commands after a failure (`pulumi up --continue-on-error`). */
    continueOnError?: boolean;
    /** Kill a command that runs longer than this (default 15 min); the provider has no limit, a test needs one. */
    commandTimeoutMs?: number;
    /** Run ssh inside this network namespace (a deployer that only has IPv4, say); default this one. */
    netns?: string;
    /** Called as each step starts and ends (for a live report). */
    onStep?: (event: "start" | "end", step: StepResult) => void;
    /** Milliseconds between failed dials (the provider backs off from 100 ms; default 500 ms). */
    dialRetryDelayMs?: number;
    /**
     * How one command runs; default over SSH (sshRun). Another executor sees the same order and
     * parallelism (a dry run that only prints, or a check of the scheduling itself).
     */
    execute?: (spec: RemoteCommandSpec, keyFile: () => string) => Promise<SshResult>;
}

export interface RemoteRunReport {
    steps: StepResult[];
    ok: boolean;
    totalMs: number;
    /** The most commands that were ever in flight at once. */
    peakParallel: number;
}

export class RemoteGraphError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "RemoteGraphError";
    }
}

/** Check the graph before anything runs: unique names, known dependencies, no cycle. */
export function checkGraph(specs: RemoteCommandSpec[]): void {
    const names = new Set<string>();
    for (const s of specs) {
        if (names.has(s.name)) throw new RemoteGraphError(`two commands are named ${s.name}`);
        names.add(s.name);
    }
    for (const s of specs) {
        for (const d of s.dependsOn ?? []) {
            if (!names.has(d)) throw new RemoteGraphError(`${s.name} depends on ${d}, which is not in the list`);
        }
    }
    const state = new Map<string, "visiting" | "done">();
    const byName = new Map(specs.map((s) => [s.name, s]));
    const visit = (name: string, trail: string[]) => {
        if (state.get(name) === "done") return;
        if (state.get(name) === "visiting") throw new RemoteGraphError(`dependency cycle: ${[...trail, name].join(" -> ")}`);
        state.set(name, "visiting");
        for (const d of byName.get(name)!.dependsOn ?? []) visit(d, [...trail, name]);
        state.set(name, "done");
    };
    for (const s of specs) visit(s.name, []);
}

/** The argv of the OpenSSH client that runs `create` as the provider does (see the file comment). */
export function sshArgv(conn: SshConnection, keyFile: string, command: string, environment?: Record<string, string>): string[] {
    const argv = [
        "-F", "none",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-o", "BatchMode=yes",
        "-o", `ConnectTimeout=${conn.perDialTimeout ?? 15}`,
        // Only the remote command's own stderr, not ssh's "Permanently added" notes.
        "-o", "LogLevel=ERROR",
        "-i", keyFile,
        "-T",
        "-p", String(conn.port ?? 22),
        "-l", conn.user ?? "root",
    ];
    for (const [k, v] of Object.entries(environment ?? {})) argv.push("-o", `SetEnv=${k}=${v}`);
    argv.push("--", conn.host, command);
    return argv;
}

/**
 * ssh exits 255 both when it could not connect and when the remote command exits 255; only the
 * former is retried, recognised by ssh's own messages (it prints them before any remote output).
 */
const DIAL_FAILURE = /^(ssh: connect to host|ssh: Could not resolve|kex_exchange_identification|Connection (closed|reset) by|Connection timed out during banner|.*Permission denied \(publickey)/m;

export interface SshResult {
    exitCode: number;
    stdout: string;
    stderr: string;
    dials: number;
    dialFailed: boolean;
}

/** Keys written once per run, 0600 in a private directory, removed by the caller. */
export class KeyFiles {
    private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-ssh-"));
    private readonly files = new Map<string, string>();

    file(privateKey: string): string {
        let f = this.files.get(privateKey);
        if (!f) {
            f = path.join(this.dir, `key${this.files.size}`);
            // ssh refuses a key without its final newline.
            fs.writeFileSync(f, privateKey.endsWith("\n") ? privateKey : `${privateKey}\n`, { mode: 0o600 });
            this.files.set(privateKey, f);
        }
        return f;
    }

    remove(): void {
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

function spawnSsh(argv: string[], stdin: string | undefined, timeoutMs: number, netns?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const [cmd, args] = netns ? ["ip", ["netns", "exec", netns, "ssh", ...argv]] : ["ssh", argv];
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
        child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.on("error", (e) => { clearTimeout(timer); reject(e); });
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            resolve({ code: code ?? 255, stdout, stderr: signal ? `${stderr}(ssh killed by ${signal} after ${timeoutMs} ms)` : stderr });
        });
        child.stdin.on("error", () => undefined);
        // An empty stdin is EOF at once, as the provider's session without Stdin.
        child.stdin.end(stdin && stdin.length > 0 ? stdin : "");
    });
}

/** Run one command over SSH as the provider would, dials retried up to the connection's dialErrorLimit. */
export async function sshRun(conn: SshConnection, keyFile: string, command: string, options: {
    stdin?: string; environment?: Record<string, string>; timeoutMs?: number; netns?: string; dialRetryDelayMs?: number;
} = {}): Promise<SshResult> {
    const limit = conn.dialErrorLimit ?? 10;
    let dials = 0;
    for (;;) {
        dials += 1;
        const r = await spawnSsh(sshArgv(conn, keyFile, command, options.environment), options.stdin, options.timeoutMs ?? 15 * 60_000, options.netns);
        const dialFailed = r.code === 255 && DIAL_FAILURE.test(r.stderr) && r.stdout === "";
        if (!dialFailed || (limit >= 0 && dials > limit)) {
            return {
                exitCode: r.code,
                stdout: r.stdout.replace(/\n$/, ""),
                stderr: r.stderr.replace(/\n$/, ""),
                dials, dialFailed,
            };
        }
        await sleep(options.dialRetryDelayMs ?? 500);
    }
}

/**
 * Run every command's create in dependency order, in parallel where independent. Throws
 * RemoteGraphError before anything runs when the graph is not runnable.
 */
export async function runRemoteCommands(specs: RemoteCommandSpec[], options: RemoteRunOptions = {}): Promise<RemoteRunReport> {
    checkGraph(specs);
    const parallel = options.parallel ?? Number.MAX_SAFE_INTEGER;
    if (!(parallel >= 1)) throw new RemoteGraphError(`parallel must be at least 1 (got ${parallel})`);
    const keys = new KeyFiles();
    const t0 = Date.now();
    const results = new Map<string, StepResult>();
    const pending = [...specs];
    let running = 0;
    let peak = 0;
    let stopped: string | undefined;
    const blank = (s: RemoteCommandSpec): StepResult => ({
        name: s.name, host: s.connection.host, status: "skipped", stdout: "", stderr: "", startedAtMs: 0, durationMs: 0, dials: 0,
    });

    try {
        await new Promise<void>((resolveAll) => {
            const pump = () => {
                // Skip what can no longer run: a dependency failed or was skipped, or the run stopped.
                for (let i = 0; i < pending.length;) {
                    const s = pending[i];
                    const bad = (s.dependsOn ?? []).find((d) => {
                        const r = results.get(d);
                        return r !== undefined && r.status !== "succeeded";
                    });
                    const why = bad ? `${bad} ${results.get(bad)!.status}` : stopped;
                    if (why) {
                        results.set(s.name, { ...blank(s), skippedBecause: why, startedAtMs: Date.now() - t0 });
                        pending.splice(i, 1);
                        i = 0; // a new skip may make an earlier entry skippable
                        continue;
                    }
                    i += 1;
                }
                // Start ready commands in declaration order (the order the program registered them).
                for (let i = 0; i < pending.length && running < parallel;) {
                    const s = pending[i];
                    const ready = (s.dependsOn ?? []).every((d) => results.get(d)?.status === "succeeded");
                    if (!ready) {
                        i += 1;
                        continue;
                    }
                    pending.splice(i, 1);
                    running += 1;
                    peak = Math.max(peak, running);
                    void start(s).then((r) => {
                        running -= 1;
                        results.set(s.name, r);
                        options.onStep?.("end", r);
                        if (r.status === "failed" && !options.continueOnError && !stopped) stopped = `the run stopped after ${s.name} failed`;
                        pump();
                    });
                }
                if (pending.length === 0 && running === 0) resolveAll();
            };
            const start = async (s: RemoteCommandSpec): Promise<StepResult> => {
                const startedAtMs = Date.now() - t0;
                options.onStep?.("start", { ...blank(s), status: "running", startedAtMs });
                try {
                    const keyFile = () => keys.file(s.connection.privateKey);
                    const r = options.execute ? await options.execute(s, keyFile) : await sshRun(s.connection, keyFile(), s.create, {
                        stdin: s.stdin, environment: s.environment, timeoutMs: options.commandTimeoutMs,
                        netns: options.netns, dialRetryDelayMs: options.dialRetryDelayMs,
                    });
                    return {
                        name: s.name, host: s.connection.host, status: r.exitCode === 0 ? "succeeded" : "failed",
                        exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, startedAtMs,
                        durationMs: Date.now() - t0 - startedAtMs, dials: r.dials, dialFailed: r.dialFailed || undefined,
                    };
                } catch (e) {
                    return {
                        ...blank(s), status: "failed", stderr: (e as Error).message, startedAtMs,
                        durationMs: Date.now() - t0 - startedAtMs,
                    };
                }
            };
            pump();
        });
    } finally {
        keys.remove();
    }
    const steps = specs.map((s) => results.get(s.name)!);
    return { steps, ok: steps.every((s) => s.status === "succeeded"), totalMs: Date.now() - t0, peakParallel: peak };
}

/** One line per step for a report: name, status, time, and the first line of stderr on failure. */
export function formatSteps(report: RemoteRunReport): string[] {
    const width = Math.max(...report.steps.map((s) => s.name.length), 4);
    const lines = report.steps.map((s) => {
        const time = s.status === "skipped" ? "" : `${(s.durationMs / 1000).toFixed(2).padStart(7)} s`;
        const start = s.status === "skipped" ? "" : `  (+${(s.startedAtMs / 1000).toFixed(2)} s)`;
        const detail = s.status === "failed" ? `  exit ${s.exitCode ?? "?"}: ${s.stderr.split("\n").filter((l) => l.trim() !== "").slice(-1)[0] ?? ""}`
            : s.status === "skipped" ? `  (${s.skippedBecause})` : "";
        return `  ${s.name.padEnd(width)}  ${s.status.padEnd(9)}${time}${start}${detail}`;
    });
    lines.push(`  ${report.steps.length} commands, ${report.steps.filter((s) => s.status === "succeeded").length} succeeded, ` +
        `${(report.totalMs / 1000).toFixed(1)} s in total, at most ${report.peakParallel} at once`);
    return lines;
}
