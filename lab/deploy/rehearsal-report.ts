/**
 * The deploy rehearsal's report (rehearsal.ts makes it, redeploy.ts a second deploy's): its
 * shape, as data for `anycast lab --deploy --json`, and as the lines the CLI prints.
 */
import { NETWORK_NAME } from "../../stacks/network/stack";
import { ms, table, wrap } from "../text";
import { formatObservations, RehearsalObservations } from "./observe";
import type { RemoteRunReport } from "./remote";

export interface RehearsalCheck {
    name: string;
    ok: boolean;
    detail: string;
}

export interface RehearsalReport {
    ok: boolean;
    /** The rehearsal's slot (hosts.ts): nothing of it is left when the rehearsal returns. */
    slot: number;
    /** The first deploy: each command with its time (the earlier version's, in an upgrade rehearsal). */
    deploy: RemoteRunReport;
    /** The upgrade rehearsal: from which version, and this version's deploy onto its hosts. */
    upgrade?: { from: string; commit: string; version: string; run?: RemoteRunReport; deleted: string[] };
    /** Seconds from starting the empty hosts until each PoP announced, and the last of them. */
    announcedAfter: Record<string, number>;
    totalSeconds: number;
    /** Seconds: booting the hosts to SSH, and the deploy's commands. */
    bootSeconds: number;
    deploySeconds: number;
    /** The lab's report on the deployed hosts (sessions, catchment, HTTPS, exposure, an experiment); absent when no PoP announced. */
    observations?: RehearsalObservations;
    checks: RehearsalCheck[];
    rewrites: string[];
    /** Every PoP as the rehearsal left it: at the edge, and as its agent says. */
    pops: RehearsalPopState[];
    /** With `keep`: the hosts are still up, and these files reach them. */
    kept?: KeptFiles;
}

export interface RehearsalPopState {
    name: string;
    /** The edge has the prefix from this PoP. */
    announced: boolean;
    /** The edge's BGP session with it (`Established` when up). */
    session: { state: string; since: string };
    /** `anycast-health status` on the host: its state and version, or why there was none. */
    agent: { state?: string; version?: string; error?: string };
}

/** Where a kept rehearsal's files are, and the `anycast status` command that reads them. */
export interface KeptFiles {
    slot: number;
    outputsFile: string;
    identityFile: string;
    knownHostsFile: string;
    statusCommand: string;
}

/**
 * The report as data (`anycast lab --deploy --json`): the verdict, every step of each deploy
 * (its output only when it failed: pushes print nothing else, and a report file is no place for
 * a host's logs), every PoP's state, the checks and the lab's observations.
 */
export function rehearsalJson(r: RehearsalReport): Record<string, unknown> {
    const steps = (d: RemoteRunReport) => d.steps.map((st) => ({
        name: st.name, host: st.host, status: st.status, ...(st.exitCode !== undefined ? { exitCode: st.exitCode } : {}),
        startedAtMs: st.startedAtMs, durationMs: st.durationMs, dials: st.dials,
        ...(st.skippedBecause ? { skippedBecause: st.skippedBecause } : {}),
        ...(st.status === "failed" ? { stderr: st.stderr } : {}),
    }));
    return {
        format: "anycast-rehearsal/1", ok: r.ok,
        timings: { bootSeconds: r.bootSeconds, deploySeconds: r.deploySeconds, totalSeconds: Number.isNaN(r.totalSeconds) ? null : r.totalSeconds, announcedAfter: r.announcedAfter },
        steps: steps(r.deploy),
        ...(r.upgrade ? { upgrade: { from: r.upgrade.from, commit: r.upgrade.commit, version: r.upgrade.version, steps: r.upgrade.run ? steps(r.upgrade.run) : [], deleted: r.upgrade.deleted } } : {}),
        pops: r.pops, checks: r.checks, rewrites: r.rewrites,
        ...(r.observations ? { observations: r.observations } : {}),
    };
}

/** Each deploy step with its time, in the engine's order (a table within 100 columns). */
export function formatDeploySteps(d: RemoteRunReport, title: string): string[] {
    return [
        ...wrap(`${title}: ${d.steps.length} remote commands over SSH in the engine's order, ` +
            `${(d.totalMs / 1000).toFixed(1)} s, at most ${d.peakParallel} at once`),
        ...table(["step", "status", "started", "took", "detail"], d.steps.map((st) => [
            st.name.startsWith(`${NETWORK_NAME}-`) ? st.name.slice(NETWORK_NAME.length + 1) : st.name, st.status,
            st.status === "skipped" ? "n/a" : `+${ms(st.startedAtMs)}`, st.status === "skipped" ? "n/a" : ms(st.durationMs),
            st.status === "failed" ? `exit ${st.exitCode ?? "?"}: ${st.stderr.split("\n").filter((l) => l.trim() !== "").slice(-1)[0] ?? ""}`
                : st.skippedBecause ?? "none",
        ])),
        "",
    ];
}

/** The report's own lines, for the CLI: the deploy's steps, the lab's report on the hosts, then the checks. */
export function formatRehearsal(r: RehearsalReport): string[] {
    const observed = r.observations ? formatObservations(r.observations) : [];
    return [
        "deploy rehearsal",
        ...r.rewrites.flatMap((w) => wrap(w, "  rewritten for the rehearsal: ", "    ")),
        ...wrap(`hosts booted to SSH in ${r.bootSeconds.toFixed(1)} s; deploy commands ${r.deploySeconds.toFixed(1)} s; every PoP announcing ` +
            `${Number.isNaN(r.totalSeconds) ? "never" : `${r.totalSeconds.toFixed(1)} s`} from empty hosts`, "  ", "    "),
        "",
        ...formatDeploySteps(r.deploy, `The first deploy from empty hosts${r.upgrade ? `, by ${r.upgrade.version} (${r.upgrade.from}, ${r.upgrade.commit.slice(0, 12)})` : ""}`),
        ...(r.upgrade?.run ? formatDeploySteps(r.upgrade.run, `Then this version's deploy onto them (the upgrade)`) : []),
        ...(r.upgrade && r.upgrade.deleted.length > 0 ? [...wrap(`Deleted by the upgrade: ${r.upgrade.deleted.join(", ")}`), ""] : []),
        ...observed,
        ...(observed.length > 0 ? [""] : []),
        "PoPs at the end",
        ...table(["PoP", "at the edge", "session", "agent"], r.pops.map((p) => [
            p.name, p.announced ? "announced" : "NOT announced", `${p.session.state} since ${p.session.since || "?"}`,
            p.agent.error ? `no status: ${p.agent.error}` : `${p.agent.state ?? "?"} (${p.agent.version ?? "no version"})`,
        ])),
        "",
        "Checks",
        ...r.checks.flatMap((c) => wrap(`${c.name}: ${c.detail}`, `  ${c.ok ? "ok  " : "FAIL"} `, "       ")),
        r.ok ? "rehearsal passed" : "rehearsal FAILED",
    ];
}
