/**
 * Route flap damping (RFC 2439) as upstreams that still run it configure it: each withdrawal
 * costs a penalty of 1000 and, on Juniper, so does each re-advertisement; the route is suppressed
 * at the threshold RFC 7196 and RIPE-580 recommend, 6000. The worst case for the health agent is
 * all its allowed withdrawals in quick succession (no decay), each but the last followed by a
 * re-announcement (after the last one it is held down).
 *
 * Config validation (health.maxWithdrawalsPerHour) and the lab's flap-damping check both use
 * this one model.
 */
export const DAMPING_SUPPRESS_THRESHOLD = 6000;

/** The damping penalty of withdrawals and re-announcements received in quick succession. */
export function flapPenalty(withdrawals: number, reannouncements: number): number {
    return 1000 * (withdrawals + reannouncements);
}

/** The worst-case penalty when the health agent uses all its allowed withdrawals at once. */
export function worstFlapPenalty(maxWithdrawals: number): number {
    return flapPenalty(maxWithdrawals, maxWithdrawals - 1);
}

/** The most withdrawals an hour whose worst case stays below the threshold (3). */
export const MAX_SAFE_WITHDRAWALS = (() => {
    let n = 1;
    while (worstFlapPenalty(n + 1) < DAMPING_SUPPRESS_THRESHOLD) n++;
    return n;
})();
