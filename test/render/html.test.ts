/**
 * The lab report's page in a real browser: Debian's headless Chromium screenshots the page of
 * the fixture report (test/helpers/labfixture.ts; its content: test/unit/html.test.ts), and the PNG
 * must be what a browser paints from it: the window's size, the page ending inside it, and the
 * charts' colours (a PoP's bands, failed requests, the fault's span) on it.
 *
 * Chromium gets a fresh profile directory, which is removed afterwards, also on failure; it is
 * killed (its whole process group) when it overruns a generous limit, and no process of it may
 * be left. No timing is asserted. Without chromium (scripts/setup.sh installs it) the test is
 * skipped, saying so.
 */
import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { renderHtml } from "../../lab/html";
import { FAILED, FAULT_BAR, POP_COLOURS } from "../../lab/svg";
import { fixtureReport } from "../helpers/labfixture";
import { countColour, decodePng, lastPaintedRow, PNG_SIGNATURE, pngSize } from "../helpers/png";
import { needTools, sleep, tempDir, which } from "../helpers/tools";

/** Exactly these flags, a fresh --user-data-dir, the screenshot and the window's size. */
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"];
const WIDTH = 1400;
/** Taller than the fixture's page (about 4,400 px): the test checks that the page ends inside it. */
const HEIGHT = 6000;
const LIMIT_MS = 60_000;
/** The page's background outside its sections (lab/html.ts CSS --bg). */
const BACKGROUND = "#F6F8FA";

/** The processes whose command line names `marker` (Chromium passes its profile to every child). */
function processesWith(marker: string): number[] {
    const pids: number[] = [];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
        try {
            if (fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(marker)) pids.push(Number(entry));
        } catch {
            // exited meanwhile
        }
    }
    return pids;
}

/** SIGKILL to a process group (a negative pid) or to one process. */
function kill(pid: number): void {
    try {
        process.kill(pid, "SIGKILL");
    } catch {
        // gone already
    }
}

const killGroup = (pid: number | undefined) => { if (pid) kill(-pid); };
const killPid = (pid: number) => kill(pid);

/** Chromium in a process group of its own, so that it and its children die together when it must. */
async function chromium(args: string[]): Promise<{ code: number | null; output: string; timedOut: boolean }> {
    const child = spawn(which("chromium")!, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => { output += d.toString(); });
    child.stderr.on("data", (d: Buffer) => { output += d.toString(); });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; killGroup(child.pid); }, LIMIT_MS);
    try {
        const code = await new Promise<number | null>((resolve, reject) => {
            child.once("error", reject);
            child.once("close", (c) => resolve(c));
        });
        return { code, output, timedOut };
    } finally {
        clearTimeout(timer);
        // Whatever of it is still running (a helper outliving the browser) goes too.
        killGroup(child.pid);
    }
}

describe("the lab report's page in Chromium", () => {
    it("headless Chromium paints it: a PNG of the window's size, the whole page inside, the charts' colours on it", async (t) => {
        if (!needTools(t, "chromium")) return;
        const dir = tempDir("html-page");
        const profile = tempDir("chromium-profile");
        let left: number[] = [];
        try {
            const page = path.join(dir, "report.html");
            fs.writeFileSync(page, renderHtml(fixtureReport()));
            const png = path.join(dir, "report.png");
            const run = await chromium([...FLAGS, `--user-data-dir=${profile}`, `--screenshot=${png}`, `--window-size=${WIDTH},${HEIGHT}`,
                pathToFileURL(page).href]);
            assert.equal(run.timedOut, false, `chromium still ran after ${LIMIT_MS / 1000} s and was killed:\n${run.output.slice(-2000)}`);
            assert.ok(fs.existsSync(png), `no screenshot (chromium exited ${run.code}):\n${run.output.slice(-2000)}`);
            const bytes = fs.readFileSync(png);
            assert.ok(bytes.subarray(0, 8).equals(PNG_SIGNATURE), "a PNG signature");
            assert.deepEqual(pngSize(bytes), { width: WIDTH, height: HEIGHT });
            assert.ok(bytes.length > 50_000 && bytes.length < 20_000_000, `${bytes.length} bytes`);
            const image = decodePng(bytes);
            const end = lastPaintedRow(image, BACKGROUND);
            assert.ok(end > 2000, `the page ends at row ${end}: too short for its charts`);
            assert.ok(end < HEIGHT - 50, `the page reaches the window's bottom (row ${end}): raise HEIGHT so the screenshot holds it all`);
            // Filled areas keep their exact colour; edges blend, so counts are lower bounds.
            assert.ok(countColour(image, POP_COLOURS[0]) > 5_000, "the first PoP's bands and line");
            assert.ok(countColour(image, FAILED) > 500, "failed requests in red");
            assert.ok(countColour(image, FAULT_BAR) > 200, "the faults' spans");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
            // Chromium's children may take a moment to follow it; whatever stays is killed, and named below.
            for (let i = 0; i < 50 && processesWith(profile).length > 0; i++) await sleep(100);
            left = processesWith(profile);
            for (const pid of left) killPid(pid);
            fs.rmSync(profile, { recursive: true, force: true });
        }
        assert.deepEqual(left, [], "chromium processes left behind");
    });
});
