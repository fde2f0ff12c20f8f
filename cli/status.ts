/**
 * `anycast status`, its shell: asks each PoP's health agent for its status over SSH, the way the
 * stack's pushes log in (the user and port from the stack, the key from --identity or the
 * user's ssh-agent, `sudo -n` for a user that is not root), all PoPs at once. What a host
 * answers, or why it does not, goes to the pure part (network-status.ts).
 */
import { spawn } from "node:child_process";
import type { AgentStatus } from "../components/core/health/status";
import type { SshTarget } from "../stacks/network/stack";
import { AgentAnswer, networkStatus, NetworkStatus, StatusTargets } from "./network-status";

export interface AskOptions {
    /** A private key file (ssh -i); without it, ssh's own keys and the ssh-agent. */
    identity?: string;
    /** Seconds to connect, and again to answer. */
    timeoutSeconds: number;
    /** The known_hosts file to check and record host keys in (default: ssh's own). */
    knownHosts?: string;
    /** The ssh program (tests put a stand-in on PATH instead). */
    ssh?: string;
}

/** The agent command on the host: its JSON status, from the running agent or its last status file. */
export const AGENT_STATUS_COMMAND = ["anycast-health", "status"];

/** ssh's arguments for running `command` on `target` as the pushes do. */
export function sshArgs(target: SshTarget, command: string[], options: AskOptions): string[] {
    return [
        // A host seen for the first time is recorded (a changed key still fails); errors only on stderr.
        "-o", "BatchMode=yes", "-o", `ConnectTimeout=${options.timeoutSeconds}`, "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR",
        ...(options.identity ? ["-i", options.identity, "-o", "IdentitiesOnly=yes"] : []),
        ...(options.knownHosts ? ["-o", `UserKnownHostsFile=${options.knownHosts}`] : []),
        "-p", String(target.port), "-l", target.user, "--", target.host,
        // The deploy gives a non-root login user passwordless sudo; -n fails at once instead of prompting.
        ...(target.user === "root" ? [] : ["sudo", "-n"]), ...command,
    ];
}

function lastLine(text: string): string {
    return text.trim().split("\n").filter((l) => l.trim()).at(-1)?.trim() ?? "";
}

/** What a status command's exit code, output and error say, as an answer. */
export function answerOf(code: number | null, stdout: string, stderr: string, target: SshTarget): AgentAnswer {
    const err = lastLine(stderr);
    if (code === 255) return { ok: false, reason: `ssh ${target.user}@${target.host} port ${target.port}: ${err.replace(/^ssh: /, "") || "failed"}` };
    if (/^sudo:/m.test(stderr)) return { ok: false, reason: `sudo -n as ${target.user} failed (${lastLine(stderr.split("\n").filter((l) => /^sudo:/.test(l)).join("\n"))}): the deploy gives that user passwordless sudo` };
    if (code === 127) return { ok: false, reason: `anycast-health is not installed on ${target.host} (has pulumi up deployed this PoP?)` };
    if (code === null) return { ok: false, reason: "no answer in time (the ssh session was stopped)" };
    if (code !== 0 && code !== 3) return { ok: false, reason: `anycast-health status exited ${code}${err ? `: ${err}` : ""}` };
    let status: AgentStatus;
    try {
        status = JSON.parse(stdout) as AgentStatus;
    } catch {
        return { ok: false, reason: `anycast-health status printed no JSON${err ? ` (${err})` : ""}` };
    }
    const missing = ["state", "paths", "bird", "since", "agent_version"].filter((k) => (status as unknown as Record<string, unknown>)[k] === undefined);
    if (missing.length > 0 || !Array.isArray(status.bird?.sessions)) {
        return { ok: false, reason: `the agent's status has no ${missing.join(", ") || "bird.sessions"}: an agent older than this anycast; run pulumi up with this version` };
    }
    // Exit 3: the agent did not answer, and this is the status it last wrote.
    return code === 3 ? { ok: true, status, stale: `the agent does not answer: its last status file (${err.replace(/^anycast-health: /, "")})` } : { ok: true, status };
}

/** Run the status command on one PoP; never throws. */
export function askAgent(target: SshTarget, options: AskOptions): Promise<AgentAnswer> {
    return new Promise((resolve) => {
        const child = spawn(options.ssh ?? "ssh", sshArgs(target, AGENT_STATUS_COMMAND, options), { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
        child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
        // Connecting has its own timeout (ConnectTimeout); this bounds a host that connects but hangs.
        const timer = setTimeout(() => child.kill("SIGKILL"), 2 * options.timeoutSeconds * 1000 + 1000);
        child.on("error", (e: NodeJS.ErrnoException) => {
            clearTimeout(timer);
            resolve({ ok: false, reason: e.code === "ENOENT" ? `${options.ssh ?? "ssh"} is not installed here (Debian: openssh-client)` : e.message });
        });
        child.on("close", (code) => {
            clearTimeout(timer);
            resolve(answerOf(code, stdout, stderr, target));
        });
    });
}

/** Ask every PoP at once and put the answers together. */
export async function gatherStatus(targets: StatusTargets, options: AskOptions): Promise<NetworkStatus> {
    const answers = await Promise.all(targets.pops.map(async (p) => [p.name, await askAgent(p.ssh, options)] as const));
    return networkStatus(targets, new Map(answers));
}
