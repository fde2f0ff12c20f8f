/**
 * The agent's files: written whole (a temporary file beside the target, then a rename, so a
 * reader never sees half a file), read as optional text. No child processes.
 */
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Synchronous on purpose: the files are small (a status, a state switch, an upstream list) and
 * written at most about once a second, mostly to a tmpfs. Through fs.promises each call is a few
 * hops to libuv's thread pool and back, and those wake-ups cost an idle agent more CPU than the
 * writes themselves.
 */
export function writeAtomic(file: string, text: string, mode = 0o644): void {
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
    fs.writeFileSync(tmp, text, { mode });
    try {
        fs.renameSync(tmp, file);
    } catch (e) {
        fs.rmSync(tmp, { force: true });
        throw e;
    }
}

export function readOptional(file: string): string | undefined {
    try {
        return fs.readFileSync(file, "utf8");
    } catch {
        return undefined;
    }
}

/** The control directory's switches and the flap history (the bash agent's layout, kept across the upgrade). */
export function controlFiles(controlDir: string): { drain: string; release: string; withdrawals: string } {
    return { drain: path.join(controlDir, "drain"), release: path.join(controlDir, "release"), withdrawals: path.join(controlDir, "withdrawals") };
}

/** Epoch-ms lines, one withdrawal each. */
export function parseWithdrawals(text: string | undefined): number[] {
    return (text ?? "").split("\n").map((l) => l.trim()).filter((l) => /^\d+$/.test(l)).map(Number);
}

export function formatWithdrawals(epochMs: number[]): string {
    return epochMs.map((t) => `${Math.round(t)}\n`).join("");
}
