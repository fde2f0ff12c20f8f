/**
 * anycast-health: keeps this PoP's anycast prefix announced only while the PoP can serve.
 * Shipped by pulumi-anycast as one JavaScript file (no npm packages) run by Debian's nodejs.
 *
 *   anycast-health run            the agent (systemd: anycast-health.service)
 *   anycast-health status         the agent's status (JSON), from the running agent
 *   anycast-health drain          announce with GRACEFUL_SHUTDOWN for the drain period, then withdraw, until undrain
 *   anycast-health undrain        end a drain asked for with `drain` (a drain by the config stays)
 *   anycast-health release        forget the flap history: a held-down PoP announces again after rise good checks
 *   anycast-health check <file>   check a settings file (the deploy does before it installs one)
 *   anycast-health version
 *
 * The settings file is $ANYCAST_HEALTH_SETTINGS, else /etc/anycast/health-agent.json.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import { AgentSettings, AgentSettingsError, parseAgentSettings } from "../components/core/health/settings";
import { DEFAULT_SETTINGS_FILE } from "../components/core/health/layout";
import { AgentDaemon } from "./daemon";
import { controlFiles, readOptional } from "./files";

declare const AGENT_VERSION: string;
/** Set by the bundler (scripts/bundle-agent.mjs) from package.json; "dev" when run unbundled. */
const VERSION = typeof AGENT_VERSION === "string" ? AGENT_VERSION : "dev";

const USAGE = "usage: anycast-health run|status|drain|undrain|release|check <file>|version";

function fail(message: string, code = 2): never {
    process.stderr.write(`anycast-health: ${message}\n`);
    process.exit(code);
}

function loadSettings(file: string): AgentSettings {
    const text = readOptional(file);
    if (text === undefined) fail(`cannot read the settings file ${file}`);
    try {
        return parseAgentSettings(text);
    } catch (e) {
        if (e instanceof AgentSettingsError) fail(`${file}: ${e.message}`);
        throw e;
    }
}

function touch(file: string, dir: string): void {
    try {
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(file, "");
    } catch (e) {
        fail(`cannot create ${file}: ${(e as Error).message}`);
    }
}

/** The running agent's status over loopback; the last status file when it does not answer. */
function showStatus(s: AgentSettings): void {
    const req = http.get({ host: "::1", port: s.listen.port, path: "/status", timeout: 3000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
            if (res.statusCode === 200) process.stdout.write(Buffer.concat(chunks).toString("utf8"));
            else fallback(`it answered ${res.statusCode}`);
        });
    });
    const fallback = (why: string) => {
        const last = readOptional(s.paths.statusFile);
        if (last === undefined) fail(`the agent does not answer on port ${s.listen.port} (${why}) and left no status in ${s.paths.statusFile}: is anycast-health running?`, 3);
        process.stderr.write(`anycast-health: the agent does not answer on port ${s.listen.port} (${why}); its last status, from ${s.paths.statusFile}:\n`);
        process.stdout.write(last);
        process.exitCode = 3;
    };
    req.on("timeout", () => req.destroy(new Error("no answer within 3 s")));
    req.on("error", (e: NodeJS.ErrnoException) => fallback(e.code ?? e.message));
}

function main(argv: string[]): void {
    const [command, arg] = argv;
    if (command === "version" || command === "--version") {
        process.stdout.write(`anycast-health ${VERSION} (node ${process.versions.node})\n`);
        return;
    }
    if (command === "check") {
        if (!arg) fail("check needs the settings file to check");
        const s = loadSettings(arg);
        process.stdout.write(`anycast-health: ${arg}: settings for PoP ${s.pop} are valid\n`);
        return;
    }
    if (!["run", "status", "drain", "undrain", "release"].includes(command ?? "")) fail(USAGE, 64);
    const file = process.env.ANYCAST_HEALTH_SETTINGS || DEFAULT_SETTINGS_FILE;
    const s = loadSettings(file);
    const control = controlFiles(s.paths.controlDir);
    const drainS = `${s.drainMs / 1000}s`;
    switch (command) {
        case "run": {
            const log = (line: string) => process.stderr.write(`anycast-health[${s.pop}]: ${line}\n`);
            const daemon = new AgentDaemon({ settings: s, version: VERSION, log });
            const stop = () => {
                log("stopping; the announcement stays as it is");
                void daemon.stop().then(() => process.exit(0));
            };
            process.on("SIGTERM", stop);
            process.on("SIGINT", stop);
            void daemon.start();
            break;
        }
        case "status":
            showStatus(s);
            break;
        case "drain":
            touch(control.drain, s.paths.controlDir);
            process.stdout.write(`drain requested: ${s.pop} announces with GRACEFUL_SHUTDOWN for ${drainS}, then withdraws until 'anycast-health undrain'\n`);
            break;
        case "undrain":
            fs.rmSync(control.drain, { force: true });
            process.stdout.write(s.drained
                ? `undrained by the operator, but ${s.pop} stays drained: the stack's config drains it (pops[].drained: true)\n`
                : `undrained: ${s.pop} announces again after ${s.rise} good checks\n`);
            break;
        case "release":
            touch(control.release, s.paths.controlDir);
            process.stdout.write(`flap history cleared: ${s.pop} announces again after ${s.rise} good checks, if it is not drained\n`);
            break;
    }
}

main(process.argv.slice(2));
