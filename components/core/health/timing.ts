/**
 * The health agent's timing rules, in one place: how long a round, a confirmation, a recovery
 * and an isolation take, from the agent's settings. The policy decides by them and the lab's
 * bounds call them, so a test's limit is the stack's own timer, in rounds.
 */
import type { AgentSettings } from "./settings";

// --- timing rules, in one place (the lab's bounds call these) ---------------------------------

/** One round of checks at worst: the interval, or a check that waits out its timeout. */
export function roundMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs">): number {
    return s.intervalMs + s.timeoutMs;
}

/** How long a peer's view counts: a few of its rounds (it reports how old its view is). */
export function viewMaxAgeMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs">): number {
    return 4 * roundMs(s);
}

/**
 * How often a PoP with nothing wrong asks the other PoPs over the mesh: often enough that their
 * views stay fresh (half of viewMaxAgeMs), not every round. Their views matter when this PoP
 * loses a path, and from its first failed check it asks every round again (meshAsks); in between,
 * each question is a wake-up on both hosts, and on a small PoP wake-ups are most of the agent's CPU.
 */
export function quietAskMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs">): number {
    return Math.max(s.intervalMs, viewMaxAgeMs(s) / 2);
}

/**
 * How long after losing its paths a PoP waits before it believes a peer that still reaches an
 * origin, where a fault every PoP shares would look the same: long enough for such a peer to
 * have failed its own `fall` checks (each up to a round, its rounds up to one behind), plus a
 * timeout for the fetch.
 */
export function confirmMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs" | "fall">): number {
    return (s.fall + 1) * roundMs(s) + s.timeoutMs;
}

/**
 * How long a peer must have reached an origin before its word makes this PoP's lost paths a
 * local fault: when a fault every PoP shared ends, each PoP's paths come back after `rise` good
 * checks, its rounds up to one behind a peer's, plus a timeout for the fetch. Without this wait
 * the PoP that is a round behind at the end of a global outage withdraws, and the withdrawal
 * counts towards flap damping.
 */
export function recoverMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs" | "rise">): number {
    return (s.rise + 1) * roundMs(s) + s.timeoutMs;
}

/** How long no other PoP may answer at all before a PoP counts itself cut off without a witness. */
export function isolationMs(s: Pick<AgentSettings, "intervalMs" | "timeoutMs" | "fall">): number {
    return Math.max(viewMaxAgeMs(s), confirmMs(s));
}

/**
 * Rounds of checks a PoP cut off from the mesh takes to withdraw when another PoP confirms over
 * its public address that it serves: `fall` for its paths to fall, one for the public answer
 * (asked from the round after the mesh failed), `fall` bad rounds to withdraw; in a hub mesh a
 * witness counts only after confirmMs.
 */
export function isolationRounds(s: Pick<AgentSettings, "fall">): number {
    return 2 * s.fall + 1;
}
