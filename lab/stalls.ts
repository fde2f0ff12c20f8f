/**
 * How long this machine stops running anything at all, and the BFD timers that survive it.
 *
 * A shared virtual machine can be descheduled by its host for hundreds of milliseconds at a time
 * (measured on our CI machines: 100-800 ms, about twice a second, while idle). Every process in
 * every namespace stops together, so two BFD endpoints that are both frozen for longer than their
 * detection time each declare the other dead when they wake up, and the BGP session resets. That
 * is this machine's fault, not the network's: the lab measures the stalls before it boots and,
 * when a configured detection time is shorter than the stalls allow, runs BFD with longer timers
 * and says so in the report (like every other rewrite; lab/layout.ts puts these timers in the
 * PoPs' layouts). On a machine that does not stall, nothing changes.
 */
import type { BfdSettings } from "../components/core/model";

export interface StallProbe {
    /** How long the probe ran, in ms. */
    durationMs: number;
    /** How many sleeps it timed. */
    samples: number;
    /** The longest time a sleep overran, in ms: how long the machine stopped at worst. */
    maxMs: number;
}

/**
 * Time `durationMs` of short sleeps and report how much longer than asked the worst one took.
 * Synchronous on purpose (Atomics.wait): an event loop busy with other work would add its own
 * delays, and the lab runs this before it starts anything else.
 */
export function probeStalls(durationMs = 2000, sleepMs = 5): StallProbe {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    const start = performance.now();
    let maxMs = 0;
    let samples = 0;
    while (performance.now() - start < durationMs) {
        const before = performance.now();
        Atomics.wait(cell, 0, 0, sleepMs);
        maxMs = Math.max(maxMs, performance.now() - before - sleepMs);
        samples++;
    }
    return { durationMs: Math.round(performance.now() - start), samples, maxMs: Math.max(0, Math.round(maxMs)) };
}

/**
 * The shortest BFD detection time a machine that stalls for `stallMs` keeps up: three stalls (a
 * probe of a few seconds sees a sample of them, and a busy machine adds its own waits for a CPU)
 * and 500 ms for the packets themselves. Below it, sessions flap while nothing is wrong.
 */
export function minimumBfdDetectMs(stallMs: number): number {
    return stallMs <= 0 ? 0 : Math.ceil(3 * stallMs + 500);
}

/**
 * BFD timers this machine can run: the configured ones when their detection time is long enough,
 * else the same multiplier with the interval raised (in 50 ms steps) to reach the minimum.
 * Returns undefined when nothing needs to change.
 */
export function bfdTimersForStalls(bfd: BfdSettings, stallMs: number): BfdSettings | undefined {
    const need = minimumBfdDetectMs(stallMs);
    if (bfd.intervalMs * bfd.multiplier >= need) return undefined;
    const intervalMs = Math.ceil(need / bfd.multiplier / 50) * 50;
    return { ...bfd, intervalMs };
}

/**
 * A health check timeout this machine keeps up (in seconds): the configured one when it outlasts
 * the stalls by the same margin as BFD, else that minimum rounded up to 0.1 s. A curl that the
 * machine stops in the middle of would otherwise time out, and two such checks withdraw a healthy
 * PoP. Returns undefined when nothing needs to change.
 */
export function healthTimeoutForStalls(timeoutS: number, stallMs: number): number | undefined {
    const need = minimumBfdDetectMs(stallMs);
    if (timeoutS * 1000 >= need) return undefined;
    return Math.ceil(need / 100) / 10;
}

/**
 * A health check interval for a machine that stalls: when the check timeout had to be raised
 * (healthTimeoutForStalls), at least a quarter of it, in 0.1 s steps. Such a machine cannot tell
 * a hung origin from a slow one faster than that timeout, and every round of checks starts a
 * curl, which is the dearest thing on it: more rounds only take CPU from the daemons being
 * measured. Returns undefined when nothing needs to change.
 */
export function healthIntervalForStalls(intervalS: number, raisedTimeoutS: number | undefined): number | undefined {
    if (raisedTimeoutS === undefined) return undefined;
    const need = Math.ceil((raisedTimeoutS * 10) / 4) / 10;
    return intervalS >= need ? undefined : need;
}

/**
 * The lab's HTTP probe timeout: `baseMs`, or longer when the machine stalls for longer. A probe
 * whose timer the stall expires (timers run before the reply is read) would count as a lost
 * request although the network delivered it.
 */
export function probeTimeoutForStalls(baseMs: number, stallMs: number): number {
    return Math.max(baseMs, minimumBfdDetectMs(stallMs));
}
