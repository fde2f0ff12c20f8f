/**
 * The health agent's /metrics, in the Prometheus text exposition format (version 0.0.4), from
 * its status: what the agent decided and why, per PoP. BGP and nginx counters come from
 * Debian's bird and nginx exporters beside it; these are the agent's own facts.
 *
 * Every name starts with `anycast_`; test/live/agent.test.ts reads it from a running agent.
 */
import { DAMPING_SUPPRESS_THRESHOLD } from "../damping";
import type { AnnounceState } from "./status";
import type { AgentStatus } from "./status";

const STATES: AnnounceState[] = ["announced", "draining", "withdrawn", "held-down"];

/** Counters the agent keeps since its start (the status holds no history). */
export interface AgentCounters {
    /** Health-driven withdrawals since the agent started. */
    withdrawals: number;
    /** Rounds of checks since the agent started. */
    rounds: number;
    /** State changes since the agent started. */
    stateChanges: number;
    /** The estimated flap-damping penalty an upstream holds against this PoP's prefix (RFC 2439, 1000 a flap, 15 min half-life). */
    dampingPenalty: number;
}

function label(value: string): string {
    return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

class Exposition {
    private readonly out: string[] = [];

    metric(name: string, type: "gauge" | "counter", help: string, samples: Array<[Record<string, string>, number]>): void {
        this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
        for (const [labels, value] of samples) {
            const l = Object.entries(labels).map(([k, v]) => `${k}="${label(v)}"`).join(",");
            this.out.push(`${name}${l ? `{${l}}` : ""} ${Number.isFinite(value) ? value : "NaN"}`);
        }
    }

    text(): string {
        return this.out.join("\n") + "\n";
    }
}

/** /metrics of one agent. `pop` is a label on every sample, so one Prometheus can hold every PoP. */
export function renderMetrics(s: AgentStatus, counters: AgentCounters): string {
    const pop = { pop: s.pop };
    const e = new Exposition();
    const seconds = (ms: number) => Math.round(ms) / 1000;
    e.metric("anycast_agent_info", "gauge", "The health agent's version (always 1).", [[{ ...pop, version: s.agent_version }, 1]]);
    e.metric("anycast_announce_state", "gauge", "1 for the PoP's announcement state (announced, draining, withdrawn, held-down), 0 for the others.",
        STATES.map((st) => [{ ...pop, state: st }, s.state === st ? 1 : 0]));
    e.metric("anycast_announced", "gauge", "1 while the PoP announces the prefix (announced or draining), else 0.",
        [[pop, s.anycast_state > 0 ? 1 : 0]]);
    e.metric("anycast_healthy", "gauge", "1 while the proxy answers and a path to an origin works.", [[pop, s.healthy ? 1 : 0]]);
    e.metric("anycast_proxy_up", "gauge", "1 while the local nginx answers its health endpoint.", [[pop, s.proxy_ok ? 1 : 0]]);
    e.metric("anycast_drain_requested", "gauge", "1 while a drain is asked for, by source (config: pops[].drained, operator: anycast-health drain).",
        [[{ ...pop, source: "config" }, s.drained_by_config ? 1 : 0], [{ ...pop, source: "operator" }, s.drained_by_operator ? 1 : 0]]);
    e.metric("anycast_origins_reachable", "gauge", "Origins this PoP reaches directly over the mesh.", [[pop, s.direct_up]]);
    e.metric("anycast_path_up", "gauge", "1 while a path to an origin works (direct, or relayed through another PoP).",
        s.paths.map((p) => [{ ...pop, path: p.name, kind: p.kind }, p.up ? 1 : 0]));
    e.metric("anycast_path_primary", "gauge", "1 for the path nginx uses first.", s.paths.map((p) => [{ ...pop, path: p.name, kind: p.kind }, p.role === "primary" ? 1 : 0]));
    e.metric("anycast_path_rtt_seconds", "gauge", "Smoothed round trip of a path's checks (TCP connect; through a relay, to the relay plus its own best).",
        s.paths.filter((p) => p.rtt_us > 0).map((p) => [{ ...pop, path: p.name, kind: p.kind }, p.rtt_us / 1e6]));
    e.metric("anycast_path_failed_checks", "gauge", "Failed checks of a path among its last 16.",
        s.paths.map((p) => [{ ...pop, path: p.name, kind: p.kind }, p.failed_of_16]));
    e.metric("anycast_check_round_seconds", "gauge", "How long a round of checks takes, smoothed.", [[pop, seconds(s.tick_ms)]]);
    e.metric("anycast_check_rounds_total", "counter", "Rounds of checks since the agent started.", [[pop, counters.rounds]]);
    e.metric("anycast_withdrawals_in_window", "gauge", "Health-driven withdrawals within the flap-damping window (an hour).", [[pop, s.withdrawals_last_hour]]);
    e.metric("anycast_withdrawals_total", "counter", "Health-driven withdrawals since the agent started.", [[pop, counters.withdrawals]]);
    e.metric("anycast_held_down", "gauge", "1 while flap damping holds the PoP withdrawn.", [[pop, s.state === "held-down" ? 1 : 0]]);
    e.metric("anycast_damping_penalty", "gauge",
        `Estimated RFC 2439 flap-damping penalty of this PoP's announcements at its upstream (suppressed at ${DAMPING_SUPPRESS_THRESHOLD}).`,
        [[pop, Math.round(counters.dampingPenalty)]]);
    e.metric("anycast_state_changes_total", "counter", "Announcement state changes since the agent started.", [[pop, counters.stateChanges]]);
    e.metric("anycast_last_state_change_timestamp_seconds", "gauge", "When the announcement state last changed (Unix time).", [[pop, seconds(s.since)]]);
    e.metric("anycast_bird_up", "gauge", "1 while BIRD answers on its control socket.", [[pop, s.bird.reachable ? 1 : 0]]);
    e.metric("anycast_bird_applied", "gauge", "1 while BIRD's protocols are as the agent wants them.", [[pop, s.bird.applied ? 1 : 0]]);
    e.metric("anycast_bgp_session_up", "gauge", "1 while a BGP session is Established, as BIRD reports it.",
        s.bird.sessions.map((x) => [{ ...pop, session: x.name }, x.bgp_state === "Established" ? 1 : 0]));
    e.metric("anycast_nginx_reload_ok", "gauge", "1 when the agent's last nginx reload worked.", [[pop, s.nginx.reloaded ? 1 : 0]]);
    e.metric("anycast_peer_seen", "gauge", "1 while another PoP's agent answers, by path (mesh or public).",
        s.peers.map((p) => [{ ...pop, peer: p.name, over: p.over }, p.age_ms !== null && p.over !== "none" ? 1 : 0]));
    return e.text();
}

/** RFC 2439's exponential decay of one flap's 1000 after `ageMs` (half-life 15 minutes, as RIPE-580 recommends). */
export function decayedPenalty(flapTimesAgoMs: number[]): number {
    const halfLifeMs = 15 * 60_000;
    return flapTimesAgoMs.reduce((sum, age) => sum + 1000 * Math.pow(2, -Math.max(0, age) / halfLifeMs), 0);
}

/** A mesh member's WireGuard handshake, as `wg show wg0 dump` reports it. */
export interface MeshHandshake {
    /** The member's name, or the start of its public key when no member has its address. */
    peer: string;
    /** Unix seconds of the last handshake; 0: never. */
    lastHandshake: number;
}

/**
 * The peers of `wg show <if> dump` (a line per peer after the interface's line: public key,
 * preshared key, endpoint, allowed ips, latest handshake, rx, tx, keepalive), named by the member
 * whose mesh address is among their allowed ips.
 */
export function handshakesFromDump(dump: string, members: ReadonlyArray<{ name: string; meshAddress: string }>): MeshHandshake[] {
    const byAddress = new Map(members.map((m) => [m.meshAddress.toLowerCase(), m.name]));
    return dump.split("\n").slice(1).filter((l) => l.trim() !== "").flatMap((line) => {
        const f = line.split("\t");
        if (f.length < 8) return [];
        const allowed = f[3].split(",").map((a) => a.split("/")[0].toLowerCase());
        const name = allowed.map((a) => byAddress.get(a)).find((n) => n !== undefined) ?? f[0].slice(0, 8);
        const at = Number(f[4]);
        return [{ peer: name, lastHandshake: Number.isFinite(at) ? at : 0 }];
    });
}

/** The handshakes as samples of `anycast_wireguard_last_handshake_timestamp_seconds`, appended to /metrics. */
export function renderHandshakeMetrics(pop: string, handshakes: readonly MeshHandshake[]): string {
    const e = new Exposition();
    e.metric("anycast_wireguard_last_handshake_timestamp_seconds", "gauge",
        "When this PoP last completed a WireGuard handshake with a mesh member (Unix time; 0: never).",
        handshakes.map((h) => [{ pop, peer: h.peer }, h.lastHandshake]));
    return e.text();
}
