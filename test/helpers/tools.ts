/**
 * Running the real tools (bird, wg, nft, shellcheck, cloud-init) from tests.
 *
 * A test that needs a tool or root calls `needTools(t, ...)` / `needRoot(t)` first: when the
 * machine cannot run it, the test is skipped WITH the reason printed, never passed silently.
 * Network namespaces made here carry a per-process unique name and are deleted by
 * `deleteNetns` in the caller's `finally`/`after`, so a failed test leaves nothing behind.
 */
import { ChildProcess, spawn, spawnSync, SpawnSyncOptions } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { TestContext } from "node:test";
import { poll, rethrow, sleep } from "../../lab/exec";

export interface ToolResult {
    status: number | null;
    stdout: string;
    stderr: string;
}

/** Run a command to completion (no shell); a 60 s ceiling keeps a hung daemon from hanging the suite. */
export function run(command: string, args: string[], options: SpawnSyncOptions = {}): ToolResult {
    const result = spawnSync(command, args, { encoding: "utf8", timeout: 60_000, ...options });
    if (result.error) throw result.error;
    return { status: result.status, stdout: String(result.stdout ?? ""), stderr: String(result.stderr ?? "") };
}

/** Run a command and throw with its output when it fails: for setup steps that must work. */
export function runOk(command: string, args: string[], options: SpawnSyncOptions = {}): string {
    const result = run(command, args, options);
    if (result.status !== 0) {
        throw new Error(`${command} ${args.join(" ")} exited ${result.status}:\n${result.stdout}${result.stderr}`);
    }
    return result.stdout;
}

/** The absolute path of a program on PATH (plus the sbin directories a non-login PATH may lack). */
export function which(program: string): string | undefined {
    const dirs = (process.env.PATH ?? "").split(path.delimiter).concat(["/usr/sbin", "/sbin", "/usr/local/sbin"]);
    for (const dir of dirs) {
        const candidate = path.join(dir, program);
        try {
            fs.accessSync(candidate, fs.constants.X_OK);
            return candidate;
        } catch {
            // not in this directory
        }
    }
    return undefined;
}

/** True when every program exists; otherwise skips the test naming the missing ones. */
export function needTools(t: TestContext, ...programs: string[]): boolean {
    const missing = programs.filter((p) => which(p) === undefined);
    if (missing.length > 0) {
        t.skip(`needs ${missing.join(", ")} (not installed on this machine)`);
        return false;
    }
    return true;
}

export function isRoot(): boolean {
    return typeof process.getuid === "function" && process.getuid() === 0;
}

/** True when running as root; otherwise skips the test saying so. */
export function needRoot(t: TestContext, why: string): boolean {
    if (!isRoot()) {
        t.skip(`needs root (${why})`);
        return false;
    }
    return true;
}

/** A fresh temporary directory; the caller removes it with `fs.rmSync(dir, { recursive: true, force: true })`. */
export function tempDir(prefix: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `anycast-${prefix}-`));
}

let netnsCounter = 0;

/** Write `text` to `dir`/`name` as an executable script; its path. */
export function writeExecutable(dir: string, name: string, text: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text, { mode: 0o755 });
    return file;
}

/** A network namespace name unique to this process (names are global on the machine). */
export function uniqueNetnsName(role: string): string {
    netnsCounter += 1;
    // Interface-name-like limits do not apply to netns names, but short names keep `ip` output readable.
    return `acr-${role}-${process.pid}-${netnsCounter}`;
}

/** Create a network namespace with its loopback up. */
export function createNetns(name: string): void {
    runOk("ip", ["netns", "add", name]);
    runOk("ip", ["-n", name, "link", "set", "lo", "up"]);
}

/** Delete a namespace if it exists; never throws, so it is safe in `finally`. */
export function deleteNetns(name: string): void {
    run("ip", ["netns", "del", name]);
}

/** Run a command inside a namespace. */
export function inNetns(name: string, command: string, args: string[], options: SpawnSyncOptions = {}): ToolResult {
    return run("ip", ["netns", "exec", name, command, ...args], options);
}

export function inNetnsOk(name: string, command: string, args: string[], options: SpawnSyncOptions = {}): string {
    return runOk("ip", ["netns", "exec", name, command, ...args], options);
}

/** Poll `check` until it returns a value other than undefined, or throw after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
        try {
            const value = check();
            if (value !== undefined) return value;
        } catch (e) {
            last = e;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

/** Kill a process by pid if it still runs (for daemons a test started itself). */
export function killPid(pid: number | undefined): void {
    if (!pid) return;
    try {
        process.kill(pid, "SIGTERM");
    } catch {
        // already gone
    }
}

/** The pid in a pidfile, if the file exists and holds one. */
export function readPidFile(file: string): number | undefined {
    try {
        const pid = Number(fs.readFileSync(file, "utf8").trim());
        return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
        return undefined;
    }
}

/**
 * A tiny HTTP server inside a namespace answering every request with `body`; resolves once it
 * listens. The caller kills the returned process in its `finally`.
 */
export async function startHttpServer(ns: string, host: string, port: number, body: string): Promise<ChildProcess> {
    const script = `require("http").createServer((q, r) => r.end(${JSON.stringify(body)}))` +
        `.listen(${port}, ${JSON.stringify(host)}, () => console.log("listening"))`;
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (d) => { stderr += String(d); });
    await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`HTTP server in ${ns} did not start: ${stderr}`)), 10_000);
        child.stdout?.once("data", () => { clearTimeout(timer); resolve(); });
        child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`HTTP server in ${ns} exited ${code}: ${stderr}`)); });
    });
    return child;
}

/** `curl` from inside a namespace; returns the body, or undefined when the request failed. */
export function curlFrom(ns: string, url: string, extraArgs: string[] = []): string | undefined {
    const result = inNetns(ns, "curl", ["-sS", "-g", "--max-time", "2", ...extraArgs, url]);
    return result.status === 0 ? result.stdout : undefined;
}

/** A process a live test started, with everything it wrote so far. */
export interface CapturedProcess {
    child: ChildProcess;
    out: string;
    err: string;
    exited: boolean;
}

/** Start a process whose stdout and stderr the test reads (stdin a pipe only when asked). */
export function spawnCaptured(command: string, args: string[], stdin = false): CapturedProcess {
    const child = spawn(command, args, { stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"] });
    const proc: CapturedProcess = { child, out: "", err: "", exited: false };
    child.stdout!.on("data", (d: Buffer) => (proc.out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (proc.err += d.toString()));
    child.on("exit", () => (proc.exited = true));
    return proc;
}

export { sleep };

/** Poll `check` until it holds; throws naming `what` after the timeout. */
export async function until(what: string, timeoutMs: number, check: () => boolean, pollMs = 20): Promise<void> {
    if (!await poll(check, timeoutMs, pollMs, rethrow)) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Run `during` while calling `poll` every `pollMs` (a watch for something that must not happen). */
export async function pollingDuring<T>(poll: () => void, pollMs: number, during: () => Promise<T>): Promise<T> {
    let watching = true;
    const watch = (async () => {
        while (watching) {
            poll();
            await sleep(pollMs);
        }
    })();
    try {
        return await during();
    } finally {
        watching = false;
        await watch;
    }
}
