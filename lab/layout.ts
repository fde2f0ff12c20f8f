/**
 * The lab's host layout: what a PoP namespace runs differs from a real host in its paths (each
 * namespace has only its own directory) and, on a machine that stalls, in its timers (lab/stalls.ts).
 * The lab renders a PoP's files with this layout through the core's renderers, the same ones
 * the stack program runs, instead of editing what the stack rendered; and the report's list of
 * rewrites is the layout's difference from the deployed one, field by field.
 */
import { renderBirdConfig } from "../components/core/render/bird";
import { renderAgentSettings } from "../components/core/render/health";
import {
    configuredTimers, deployedLayout, HostLayout, HostTimers, layoutDifferences, pathsUnder, popRenderInput,
} from "../components/core/render/layout";
import { renderNginxConfig } from "../components/core/render/nginx";
import type { AnycastSpec, HostAddresses, PopRenderInput } from "../components/core/model";
import type { Rewrite } from "./rewrite";
import { bfdTimersForStalls, healthIntervalForStalls, healthTimeoutForStalls } from "./stalls";

/**
 * The timers a machine that stalls for `stallMs` keeps up: the configured ones where they
 * outlast the stalls, else widened (lab/stalls.ts says by how much and why).
 */
export function labTimers(configured: HostTimers, stallMs: number): HostTimers {
    const timeoutS = healthTimeoutForStalls(configured.healthTimeoutMs / 1000, stallMs);
    const intervalS = healthIntervalForStalls(configured.healthIntervalMs / 1000, timeoutS);
    const bfd = configured.bfd && (bfdTimersForStalls(configured.bfd, stallMs) ?? configured.bfd);
    return {
        healthIntervalMs: intervalS === undefined ? configured.healthIntervalMs : Math.round(intervalS * 1000),
        healthTimeoutMs: timeoutS === undefined ? configured.healthTimeoutMs : Math.round(timeoutS * 1000),
        ...(bfd ? { bfd } : {}),
    };
}

/** A PoP namespace's layout: every path in its directory, the timers for this machine. */
export function labLayout(input: Pick<PopRenderInput, "health" | "pop">, dir: string, stallMs: number): HostLayout {
    return { paths: pathsUnder(dir), timers: labTimers(configuredTimers(input), stallMs) };
}

/**
 * The model as the lab runs it: the stack's, with the timers of its layouts (the health check's,
 * every PoP's BFD). The emulated edges and the experiments' bounds read it, so the lab's
 * expectations follow what its daemons run. The same object when the machine needs no change.
 */
export function specAsRun(spec: AnycastSpec, stallMs: number): AnycastSpec {
    let changed = false;
    const pops = spec.pops.map((pop) => {
        const configured = configuredTimers({ health: spec.health, pop });
        const run = labTimers(configured, stallMs);
        if (run.bfd === configured.bfd) return pop;
        changed = true;
        return { ...pop, bgp: { ...pop.bgp, bfd: run.bfd } };
    });
    // The health timers come from the one health config, the same for every PoP.
    const configured = configuredTimers({ health: spec.health, pop: spec.pops[0] });
    const run = labTimers(configured, stallMs);
    let health = spec.health;
    if (run.healthTimeoutMs !== configured.healthTimeoutMs || run.healthIntervalMs !== configured.healthIntervalMs) {
        changed = true;
        health = { ...spec.health, timeout: run.healthTimeoutMs / 1000, interval: run.healthIntervalMs / 1000 };
    }
    return changed ? { ...spec, pops, health } : spec;
}

/**
 * What the lab runs differently from a host, for the report: one entry per layout field that
 * differs, naming the files it lands in; a timer says why (the machine's stalls).
 */
export function layoutRewrites(host: string, deployed: HostLayout, lab: HostLayout, stallMs: number): Rewrite[] {
    return layoutDifferences(deployed, lab).map((d) => {
        const timer = d.field.startsWith("timers.");
        // The emulated edge runs the other end of BFD with the PoP's timers (specAsRun).
        const usedBy = d.field === "timers.bfd" ? [...d.usedBy, "(the emulated edge)"] : d.usedBy;
        return { host, file: usedBy.join(", "), what: timer ? `${d.what} (machine stalls ${stallMs} ms)` : d.what, from: d.from, to: d.to };
    });
}

/** The PoP files whose content depends on the layout. */
export const LAYOUT_FILES = ["bird.conf", "nginx.conf", "anycast-health.json"] as const;
export type LayoutFile = (typeof LAYOUT_FILES)[number];

/** A PoP's layout-dependent files, rendered by the core's renderers for `layout`. */
export function renderForLayout(input: PopRenderInput, layout: HostLayout): Record<LayoutFile, string> {
    return {
        "bird.conf": renderBirdConfig(input, layout),
        "nginx.conf": renderNginxConfig(input, layout),
        "anycast-health.json": renderAgentSettings(input, layout),
    };
}

/**
 * A PoP's layout-dependent files for a namespace, from the stack's validated model. The files the
 * stack rendered for the host are the proof that the lab renders from the same input: rendered
 * with the deployed layout, each must be exactly the stack's, or the boot stops.
 */
export function renderPopForLab(spec: AnycastSpec, pop: string, host: HostAddresses, stackFiles: Record<string, string>,
    layout: HostLayout): Record<LayoutFile, string> {
    const input = popRenderInput(spec, pop, host);
    const deployed = renderForLayout(input, deployedLayout(input));
    for (const name of LAYOUT_FILES) {
        if (deployed[name] !== stackFiles[name]) {
            throw new Error(`PoP ${pop}: ${name} rendered from the stack's model differs from the one the stack program rendered ` +
                "(the lab's render input is not the component's)");
        }
    }
    return renderForLayout(input, layout);
}
