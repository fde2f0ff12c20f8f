/**
 * How long this machine stops running anything at all, and the BFD timers that survive it.
 *
 * A shared virtual machine can be descheduled by its host for hundreds of milliseconds at a time
 * (measured on our CI machines: 100-800 ms, about twice a second, while idle). Every process in
 * every namespace stops together, so two BFD endpoints that are both frozen for longer than their
 * detection time each declare the other dead when they wake up, and the BGP session resets. That
 * is this machine's fault, not the network's: the lab measures the stalls before it boots and,
 * when a configured detection time is shorter than the stalls allow, runs BFD with longer timers
 * and says so in the report (like every other rewrite). On a machine that does not stall, nothing
 * changes.
 */
import type { BfdSettings } from "../components/core/model";
import type { Rewrite } from "./boot";
import type { LabStack } from "./stack";

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
 * The shortest BFD detection time a machine that stalls for `stallMs` keeps up: two and a half
 * stalls (a probe of a few seconds may miss the longest one) and 250 ms for the packets
 * themselves. Below it, sessions flap while nothing is wrong.
 */
export function minimumBfdDetectMs(stallMs: number): number {
    return Math.ceil(2.5 * stallMs + 250);
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
 * The stack with every PoP's BFD timers raised where this machine's stalls need it: the spec (which
 * the emulated edges and the experiments' failover bounds read) and each PoP's rendered bird.conf
 * (which its BIRD runs) change together, so the lab's expectations follow what it runs.
 */
export function adaptStackToStalls(stack: LabStack, stallMs: number): { stack: LabStack; rewrites: Rewrite[] } {
    const rewrites: Rewrite[] = [];
    const timers = (b: BfdSettings) => `interval ${b.intervalMs} ms; multiplier ${b.multiplier};`;
    const pops = stack.spec.pops.map((pop) => {
        const bfd = pop.bgp.bfd;
        const raised = bfd && bfdTimersForStalls(bfd, stallMs);
        if (!bfd || !raised) return pop;
        rewrites.push({
            host: pop.name, file: "bird.conf (and the emulated edge)", what: `BFD timers (machine stalls ${stallMs} ms)`,
            from: `${bfd.intervalMs} ms x ${bfd.multiplier}`, to: `${raised.intervalMs} ms x ${raised.multiplier}`,
        });
        return { ...pop, bgp: { ...pop.bgp, bfd: raised } };
    });
    if (rewrites.length === 0) return { stack, rewrites };
    const byName = new Map(pops.map((p) => [p.name, p]));
    const hosts = stack.hosts.map((host) => {
        const before = stack.spec.pops.find((p) => p.name === host.name)?.bgp.bfd;
        const after = byName.get(host.name)?.bgp.bfd;
        const conf = host.files["bird.conf"];
        if (host.role !== "pop" || !before || !after || before === after || conf === undefined) return host;
        if (!conf.includes(timers(before))) {
            throw new Error(`PoP ${host.name}: bird.conf has no "${timers(before)}" to raise for this machine's stalls`);
        }
        const text = conf.split(timers(before)).join(timers(after))
            .replace(/# BFD detects a dead path in \d+ ms \(\d+ ms x \d+\)/, `# BFD detects a dead path in ${after.intervalMs * after.multiplier} ms (${after.intervalMs} ms x ${after.multiplier})`);
        return { ...host, files: { ...host.files, "bird.conf": text } };
    });
    return { stack: { ...stack, spec: { ...stack.spec, pops }, hosts }, rewrites };
}
