/**
 * A lock file holding the owner's pid, shared by processes on this machine (two test files, a
 * test and a user's rehearsal). A lock whose owner is gone (a crash, a kill -9) is taken over.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sleep } from "../exec";

export function pidAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (e) {
        // EPERM: the process exists but belongs to someone else.
        return (e as NodeJS.ErrnoException).code === "EPERM";
    }
}

/** Take the lock, waiting up to `timeoutMs` for a live owner; returns the release function. */
export async function acquireLock(file: string, what: string, timeoutMs: number,
    log: (line: string) => void = () => undefined): Promise<() => void> {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const deadline = Date.now() + timeoutMs;
    let told = false;
    for (;;) {
        try {
            fs.writeFileSync(file, String(process.pid), { flag: "wx" });
            break;
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        }
        let owner = NaN;
        try {
            owner = Number(fs.readFileSync(file, "utf8").trim());
        } catch {
            continue; // released meanwhile
        }
        if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid || !pidAlive(owner)) {
            // A half-written file (owner NaN) is only possible for a moment; give it that moment.
            if (Number.isNaN(owner)) await sleep(100);
            fs.rmSync(file, { force: true });
            continue;
        }
        if (!told) {
            log(`  waiting for ${what} held by pid ${owner}`);
            told = true;
        }
        if (Date.now() > deadline) throw new Error(`${what} is still held by pid ${owner} after ${Math.round(timeoutMs / 1000)} s (lock file ${file})`);
        await sleep(250);
    }
    return () => {
        try {
            if (Number(fs.readFileSync(file, "utf8").trim()) === process.pid) fs.rmSync(file, { force: true });
        } catch {
            // already released
        }
    };
}
