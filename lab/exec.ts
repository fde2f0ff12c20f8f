/**
 * Running commands for the lab: one-shot commands (optionally inside a network namespace) and
 * long-running daemons whose output goes to a log file.
 *
 * Every lab process is started inside a lab namespace, so `ip netns pids <ns>` finds all of them
 * for teardown even from another process (`anycast lab --down`); nothing here keeps a registry.
 */
import { spawn, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { LabPreconditionError } from "./errors";

export interface CmdResult {
    code: number;
    stdout: string;
    stderr: string;
}

export interface RunOptions {
    input?: string;
    env?: NodeJS.ProcessEnv;
    /** Kill the command after this long (default 20 s): a hung tool must not hang the lab. */
    timeoutMs?: number;
    /** Resolve with the failing result instead of throwing. */
    allowFail?: boolean;
}

export class CommandError extends Error {
    constructor(readonly argv: string[], readonly result: CmdResult) {
        super(`command failed (exit ${result.code}): ${argv.join(" ")}\n${(result.stderr || result.stdout).trim()}`);
        this.name = "CommandError";
    }
}

/**
 * Set on Ctrl-C: no new lab process may start, so that teardown, once the commands already
 * running have finished, sees every process there is (one started into a namespace while it is
 * being deleted would outlive it).
 */
let aborted = false;
const inFlight = new Set<Promise<unknown>>();

export class LabAborted extends Error {
    constructor() {
        super("the lab was interrupted");
        this.name = "LabAborted";
    }
}

export function abortLab(): void {
    aborted = true;
}

export function assertNotAborted(): void {
    if (aborted) throw new LabAborted();
}

/** Wait for every one-shot command that was already running when the lab was aborted. */
export async function settleInFlight(): Promise<void> {
    await Promise.allSettled([...inFlight]);
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<CmdResult> {
    if (aborted) return Promise.reject(new LabAborted());
    const p = runUntracked(cmd, args, opts);
    inFlight.add(p);
    const untrack = () => { inFlight.delete(p); };
    p.then(untrack, untrack);
    return p;
}

/** Teardown's own commands: they must run after an abort. */
export function runUntracked(cmd: string, args: string[], opts: RunOptions = {}): Promise<CmdResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
        child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
        const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
        child.on("error", (err) => {
            clearTimeout(timer);
            reject(err);
        });
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            const result = { code: code ?? (signal ? 128 : 1), stdout, stderr: signal ? `${stderr}(killed by ${signal})` : stderr };
            if (result.code !== 0 && !opts.allowFail) reject(new CommandError([cmd, ...args], result));
            else resolve(result);
        });
        child.stdin.on("error", () => undefined);
        child.stdin.end(opts.input ?? "");
    });
}

/** Run a command inside a network namespace. */
export function nsRun(ns: string, cmd: string, args: string[], opts: RunOptions = {}): Promise<CmdResult> {
    return run("ip", ["netns", "exec", ns, cmd, ...args], opts);
}

/** Run a shell script inside a namespace (for the few steps that need a pipeline). */
export function nsSh(ns: string, script: string, opts: RunOptions = {}): Promise<CmdResult> {
    return nsRun(ns, "bash", ["-c", script], opts);
}

/**
 * Nice value of the lab's control plane (routing daemons, BFD, health agents): a router gives
 * its control plane priority, and on a busy shared machine 100 ms BFD timers otherwise see
 * scheduling gaps of a second that no real link has.
 */
const CONTROL_PLANE_NICE = "-10";

/**
 * Start a long-running process inside a namespace, detached (own process group, so a Ctrl-C
 * on the terminal reaches only us and we decide the order of teardown), output to `logFile`.
 * `ip netns exec` (and `nice`) exec the command, so the returned pid is the daemon's own.
 */
export function nsDaemon(ns: string, argv: string[], logFile: string, env?: NodeJS.ProcessEnv,
    opts: { controlPlane?: boolean } = {}): ChildProcess {
    assertNotAborted();
    const fd = fs.openSync(logFile, "a");
    try {
        const command = opts.controlPlane ? ["nice", "-n", CONTROL_PLANE_NICE, ...argv] : argv;
        const child = spawn("ip", ["netns", "exec", ns, ...command], {
            env: env ?? process.env, detached: true, stdio: ["ignore", fd, fd],
        });
        child.on("error", () => undefined);
        child.unref();
        return child;
    } finally {
        fs.closeSync(fd);
    }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Epoch milliseconds with sub-millisecond resolution, comparable across processes. */
export function nowMs(): number {
    return performance.timeOrigin + performance.now();
}

/**
 * The one polling loop: call `check` every `everyMs` until it gives a value other than
 * undefined/false, and return that value; undefined once `timeoutMs` has passed without one. A
 * check that throws goes to `failed`, which rethrows to stop the wait or returns to poll on (by
 * default every error means "not yet"). Conditions are polled, never waited for with fixed sleeps.
 */
export async function poll<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number,
    everyMs: number, failed: (e: unknown) => void = () => undefined): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        try {
            const value = await check();
            if (value !== undefined && value !== false) return value as T;
        } catch (e) {
            failed(e);
        }
        if (Date.now() > deadline) return undefined;
        await sleep(everyMs);
    }
}

/** For poll's `failed`: a check that throws ends the wait with its error. */
export function rethrow(e: unknown): never {
    throw e;
}

/**
 * Poll `check` until it returns a value other than undefined/false, or throw after `timeoutMs`
 * with `what` in the message (and the check's last error, if it threw).
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false,
    timeoutMs: number, pollMs = 50): Promise<T> {
    let lastError: unknown;
    const value = await poll(check, timeoutMs, pollMs, (e) => {
        if (e instanceof LabAborted || e instanceof LabPreconditionError) throw e;
        lastError = e;
    });
    if (value !== undefined) return value;
    const why = lastError instanceof Error ? `: ${lastError.message.split("\n")[0]}` : "";
    throw new Error(`timed out after ${(timeoutMs / 1000).toFixed(1)} s waiting for ${what}${why}`);
}

/** Is a command on PATH (or in the sbin directories root normally has)? */
export function hasCommand(cmd: string): boolean {
    const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin", "/usr/local/sbin"]);
    return dirs.some((d) => {
        try {
            fs.accessSync(`${d}/${cmd}`, fs.constants.X_OK);
            return true;
        } catch {
            return false;
        }
    });
}
