/**
 * `anycast status`, its pure part: which hosts the stack's outputs name and how to log in to
 * them, the status row of each PoP from what its health agent says (or why it could not be
 * asked), which PoPs reach each origin, the table, the JSON, and the exit code. The SSH shell
 * around it is cli/status.ts.
 */
import type { AgentStatus } from "../components/core/health/status";
import type { UpstreamRole } from "../components/core/health/upstreams";
import type { SshTarget } from "../stacks/network/stack";
import { table, wrap } from "../lab/text";

/** A PoP as the stack's outputs name it. */
export interface StatusTarget {
    name: string;
    ssh: SshTarget;
    /** The config drains it (`pops[].drained`): withdrawn is what it should be. */
    drained: boolean;
}

export interface StatusTargets {
    pops: StatusTarget[];
    /** Every origin's name, in the outputs' order. */
    origins: string[];
}

/** The outputs are not what `pulumi stack output --json --show-secrets` of this stack gives. */
export class OutputsError extends Error {}

const HOW = "give the output of pulumi stack output --json --show-secrets (of a stack deployed by pulumi-anycast)";

/** The PoPs and origins in `pulumi stack output --json --show-secrets`, checked. */
export function targetsFromOutputs(outputs: unknown): StatusTargets {
    if (typeof outputs !== "object" || outputs === null || Array.isArray(outputs)) throw new OutputsError(`the outputs are not a JSON object: ${HOW}`);
    const o = outputs as Record<string, unknown>;
    const pops = o.pops;
    if (typeof pops !== "object" || pops === null || Array.isArray(pops)) throw new OutputsError(`the outputs have no "pops" object: ${HOW}`);
    if (Object.keys(pops).length === 0) throw new OutputsError(`the outputs' "pops" is empty: ${HOW}`);
    const targets = Object.entries(pops as Record<string, unknown>).map(([name, value]): StatusTarget => {
        const v = (value ?? {}) as Record<string, unknown>;
        const ssh = v.ssh as Record<string, unknown> | undefined;
        if (!ssh || typeof ssh.host !== "string" || typeof ssh.user !== "string" || typeof ssh.port !== "number") {
            throw new OutputsError(`pops.${name} has no ssh login (host, port, user): the stack was deployed by an older pulumi-anycast; ` +
                "run pulumi up with this version (it changes no resource), then pulumi stack output again");
        }
        return { name, ssh: { host: ssh.host, port: ssh.port, user: ssh.user }, drained: v.drained === true };
    });
    const origins = typeof o.origins === "object" && o.origins !== null ? Object.keys(o.origins) : [];
    return { pops: targets, origins };
}

/** What asking one PoP's agent gave: its status, or why there is none. */
export type AgentAnswer =
    | { ok: true; status: AgentStatus; /** Set when the agent did not answer and this is its last status file. */ stale?: string }
    | { ok: false; reason: string };

export type PopState = AgentStatus["state"] | "unknown";

export interface PopPath {
    /** The origin's name for a direct path; "via <PoP>" for a relay. */
    name: string;
    kind: "direct" | "relay";
    /** The PoP a relay goes through. */
    via?: string;
    up: boolean;
    role: UpstreamRole;
    /** Smoothed round trip, ms; undefined before the first measurement. */
    rttMs?: number;
    lastError?: string;
}

export interface PopStatus {
    name: string;
    /** announced, draining, withdrawn, held-down, or unknown when the agent could not be asked. */
    state: PopState;
    /** Why it is in that state (the agent's reason, damping, drain, or why it could not be asked). */
    why: string;
    /** What it should be: drained by the config, or announced. */
    expected: "announced" | "drained";
    /** Drained by the config or by the operator (`anycast-health drain`). */
    drained: boolean;
    drainedBy: Array<"config" | "operator">;
    /** The PoP's first BGP session (IPv6), as BIRD reports it; null when unknown. */
    session: { name: string; state: string; since: string } | null;
    sessions: Array<{ name: string; state: string; since: string }>;
    paths: PopPath[];
    agent?: { version: string; since: string; lastReason: string; withdrawalsLastHour: number; heldUntil: string | null; stale?: string };
    reachable: boolean;
    /** In the state it should be in: announced unless drained by the config. */
    ok: boolean;
}

export interface OriginStatus {
    name: string;
    /** PoPs with a working direct path to it. */
    direct: string[];
    /** PoPs that reach it only through another PoP's relay, as "lax via ams". */
    relayed: string[];
}

export interface NetworkStatus {
    pops: PopStatus[];
    origins: OriginStatus[];
    /** Every PoP is in the state it should be in. */
    ok: boolean;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

function popStatus(target: StatusTarget, answer: AgentAnswer): PopStatus {
    const expected = target.drained ? "drained" : "announced";
    if (!answer.ok) {
        return { name: target.name, state: "unknown", why: answer.reason, expected, drained: target.drained, drainedBy: target.drained ? ["config"] : [],
            session: null, sessions: [], paths: [], reachable: false, ok: false };
    }
    const s = answer.status;
    const sessions = s.bird.sessions.map((x) => ({ name: x.name, state: x.bgp_state, since: x.since }));
    const drainedBy: PopStatus["drainedBy"] = [...(s.drained_by_config ? ["config" as const] : []), ...(s.drained_by_operator ? ["operator" as const] : [])];
    const why = s.state === "held-down" && s.held_until !== null
        ? `held down by flap damping until ${iso(s.held_until)} (${s.withdrawals_last_hour} withdrawals in the last hour)`
        : drainedBy.length > 0 ? `drained by the ${drainedBy.join(" and the ")}${s.last_reason ? `: ${s.last_reason}` : ""}` : s.last_reason;
    const problems = [!s.bird.reachable ? `BIRD unreachable${s.bird.error ? ` (${s.bird.error})` : ""}` : "",
        !s.nginx.reloaded ? `nginx not reloaded${s.nginx.error ? ` (${s.nginx.error})` : ""}` : "", answer.stale ?? ""].filter((p) => p);
    const inState = target.drained ? s.state !== "announced" : s.state === "announced";
    return {
        name: target.name, state: s.state, why: [why, ...problems].filter((p) => p).join("; "), expected,
        drained: drainedBy.length > 0 || target.drained, drainedBy: drainedBy.length > 0 ? drainedBy : target.drained ? ["config"] : [],
        session: sessions[0] ?? null, sessions,
        paths: s.paths.map((p) => ({
            name: p.name, kind: p.kind, ...(p.kind === "relay" ? { via: p.name.replace(/^via /, "") } : {}), up: p.up, role: p.role,
            ...(p.rtt_us > 0 ? { rttMs: Math.round(p.rtt_us / 100) / 10 } : {}), ...(p.last_error ? { lastError: p.last_error } : {}),
        })),
        agent: { version: s.agent_version, since: iso(s.since), lastReason: s.last_reason, withdrawalsLastHour: s.withdrawals_last_hour,
            heldUntil: s.held_until === null ? null : iso(s.held_until), ...(answer.stale ? { stale: answer.stale } : {}) },
        reachable: true,
        // A stale status is the agent not answering: not what a PoP that should serve is.
        ok: inState && !answer.stale,
    };
}

/** Which PoPs reach each origin: directly, or through a PoP that reaches it directly. */
function originStatus(names: string[], pops: PopStatus[]): OriginStatus[] {
    const directOf = (pop: PopStatus) => pop.paths.filter((p) => p.kind === "direct" && p.up).map((p) => p.name);
    const all = [...new Set([...names, ...pops.flatMap(directOf)])];
    return all.map((origin) => {
        const direct = pops.filter((p) => directOf(p).includes(origin)).map((p) => p.name);
        const relayed = pops.filter((p) => !direct.includes(p.name)).flatMap((p) => p.paths
            .filter((x) => x.kind === "relay" && x.up && x.via && direct.includes(x.via)).slice(0, 1).map((x) => `${p.name} via ${x.via}`));
        return { name: origin, direct, relayed };
    });
}

export function networkStatus(targets: StatusTargets, answers: ReadonlyMap<string, AgentAnswer>): NetworkStatus {
    const pops = targets.pops.map((t) => popStatus(t, answers.get(t.name) ?? { ok: false, reason: "not asked" }));
    return { pops, origins: originStatus(targets.origins, pops), ok: pops.every((p) => p.ok) };
}

/** 0 when every PoP is as it should be; 1 when one that should be announced is not, or could not be asked. */
export function statusExitCode(status: NetworkStatus): number {
    return status.ok ? 0 : 1;
}

const pathText = (p: PopPath) => `${p.name} ${p.up ? "up" : "down"}${p.rttMs !== undefined ? ` ${p.rttMs} ms` : ""}${p.role === "primary" ? " (primary)" : ""}`;

/** The table `anycast status` prints, within 100 columns. */
export function formatStatus(status: NetworkStatus): string[] {
    const out: string[] = [];
    out.push(...table(["PoP", "state", "should be", "BGP session", "since", "paths to the origins", "agent"],
        status.pops.map((p) => [
            p.name, p.state, p.expected, p.session?.state ?? "unknown", p.session?.since ?? "-",
            p.paths.map(pathText).join(", ") || "-", p.agent ? `${p.agent.version}` : "-",
        ])));
    out.push("");
    for (const p of status.pops) {
        const mark = p.ok ? "ok  " : "FAIL";
        const change = p.agent ? `; last change ${p.agent.since}` : "";
        out.push(...wrap(`${mark} ${p.name}: ${p.state}: ${p.why || "-"}${change}`, "", "       "));
    }
    out.push("");
    for (const o of status.origins) {
        const reach = [...o.direct, ...o.relayed];
        out.push(...wrap(`origin ${o.name}: reached by ${reach.length > 0 ? reach.join(", ") : "no PoP"}`, "", "    "));
    }
    const bad = status.pops.filter((p) => !p.ok);
    out.push(status.ok ? `status: ok, ${status.pops.length} PoPs as they should be`
        : `status: ${bad.length} of ${status.pops.length} PoPs not as they should be (${bad.map((p) => p.name).join(", ")})`);
    return out;
}
