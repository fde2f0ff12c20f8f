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
import { formatAgentSettings, parseAgentSettings } from "../components/core/health/settings";
import type { BfdSettings } from "../components/core/model";
import type { Rewrite } from "./rewrite";
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

/**
 * The stack with every PoP's BFD timers and the health check timeout raised where this machine's
 * stalls need it: the spec (which the emulated edges and the experiments' bounds read) and each
 * PoP's rendered bird.conf and anycast-health.json (which its daemons run) change together, so the
 * lab's expectations follow what it runs.
 */
export function adaptStackToStalls(stack: LabStack, stallMs: number): { stack: LabStack; rewrites: Rewrite[] } {
    const rewrites: Rewrite[] = [];
    const why = `(machine stalls ${stallMs} ms)`;
    const timeout = healthTimeoutForStalls(stack.spec.health.timeout, stallMs);
    const interval = healthIntervalForStalls(stack.spec.health.interval, timeout);
    const raisedBfd = new Map<string, { from: BfdSettings; to: BfdSettings }>();
    for (const pop of stack.spec.pops) {
        const bfd = pop.bgp.bfd;
        const raised = bfd && bfdTimersForStalls(bfd, stallMs);
        if (bfd && raised) raisedBfd.set(pop.name, { from: bfd, to: raised });
    }
    if (timeout === undefined && raisedBfd.size === 0) return { stack, rewrites };

    const timers = (b: BfdSettings) => `interval ${b.intervalMs} ms; multiplier ${b.multiplier};`;
    const hosts = stack.hosts.map((host) => {
        if (host.role !== "pop") return host;
        const files = { ...host.files };
        const bfd = raisedBfd.get(host.name);
        if (bfd && files["bird.conf"] !== undefined) {
            if (!files["bird.conf"].includes(timers(bfd.from))) {
                throw new Error(`PoP ${host.name}: bird.conf has no "${timers(bfd.from)}" to raise for this machine's stalls`);
            }
            files["bird.conf"] = files["bird.conf"].split(timers(bfd.from)).join(timers(bfd.to))
                .replace(/# BFD detects a dead path in \d+ ms \(\d+ ms x \d+\)/,
                    `# BFD detects a dead path in ${bfd.to.intervalMs * bfd.to.multiplier} ms (${bfd.to.intervalMs} ms x ${bfd.to.multiplier})`);
            rewrites.push({ host: host.name, file: "bird.conf (and the emulated edge)", what: `BFD timers ${why}`,
                from: `${bfd.from.intervalMs} ms x ${bfd.from.multiplier}`, to: `${bfd.to.intervalMs} ms x ${bfd.to.multiplier}` });
        }
        const settingsText = files["anycast-health.json"];
        if ((timeout !== undefined || interval !== undefined) && settingsText !== undefined) {
            const settings = parseAgentSettings(settingsText);
            const raised = { ...settings };
            if (timeout !== undefined) {
                raised.timeoutMs = Math.round(timeout * 1000);
                rewrites.push({ host: host.name, file: "anycast-health.json", what: `timeoutMs ${why}`, from: `${settings.timeoutMs} ms`, to: `${raised.timeoutMs} ms` });
            }
            if (interval !== undefined) {
                raised.intervalMs = Math.round(interval * 1000);
                rewrites.push({ host: host.name, file: "anycast-health.json", what: `intervalMs (a quarter of the raised timeout) ${why}`,
                    from: `${settings.intervalMs} ms`, to: `${raised.intervalMs} ms` });
            }
            files["anycast-health.json"] = formatAgentSettings(raised);
        }
        return { ...host, files };
    });
    const pops = stack.spec.pops.map((pop) => {
        const bfd = raisedBfd.get(pop.name);
        return bfd ? { ...pop, bgp: { ...pop.bgp, bfd: bfd.to } } : pop;
    });
    const health = timeout === undefined ? stack.spec.health
        : { ...stack.spec.health, timeout, ...(interval === undefined ? {} : { interval }) };
    return { stack: { ...stack, spec: { ...stack.spec, pops, health }, hosts }, rewrites };
}
