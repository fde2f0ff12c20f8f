/**
 * The lab's routing-safety demonstrations (issue "Hardening"), each on the live lab:
 *
 * - routingSafety: what each PoP exports, what its upstream offered and it imported, and which
 *   prefixes originated by our AS each transit knows (exactly the configured ones: the PoP's
 *   unrelated static routes and the upstream's table never leave it);
 * - policyChange: edit a PoP's communities and prepend in the stack file, re-run the stack
 *   program, apply what changed the way the push does (`bird -p`, install, `birdc configure`),
 *   and show that the BGP session's uptime survives while the transit sees the new attributes;
 * - flapDamping: flap a PoP's origin path until the health agent holds it down, show it stays
 *   withdrawn while healthy, what the upstream saw, and the operator's release.
 */
import type { LabPrometheus } from "./monitoring";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { parseCidr } from "../components/core/addressing";
import { DAMPING_SUPPRESS_THRESHOLD, flapPenalty, parseCommunity } from "../components/core/config";
import { isPrivateAsn, originSeenThrough } from "../components/core/origin-as";
import { vultrPrepends } from "../components/core/vultr";
import { describeAgent, LabRuntime, UNRELATED_POP_ROUTES } from "./boot";
import { birdc, showProtocols, showRoutes } from "./birdc";
import { importChanges, sampleSession, sameSince, SessionSample } from "./session";
import { agentTellsIsolation, isolationMs, SLACK_MS, whyAgentCannotTellIsolation } from "./experiments";
import { nowMs, nsRun, sleep, waitFor } from "./exec";
import { Prober } from "./probe";
import { loadStack, LabStack } from "./stack";
import type { FlapDampingReport, PolicyChangeReport, PolicyStep, PopRoutingSafety, RoutingSafety } from "./report";
import { ms } from "./text";
import { edgePeerName, LAB_DIR, LabRegion } from "./topology";

// --- routing safety -------------------------------------------------------------------------

/** The networks a `birdc show route ...` answer lists (one per network, first column). */
export function networksOf(output: string): string[] {
    const out = new Set<string>();
    for (const line of output.split("\n")) {
        const m = /^(\S+\/\d+)\s+(?:unicast|unreachable|blackhole|prohibited)\b/.exec(line);
        if (m) out.add(m[1]);
    }
    return [...out].sort();
}

async function popRoutingSafety(lab: LabRuntime, r: LabRegion): Promise<PopRoutingSafety> {
    const sock = lab.birdSocket(r.pop.ns);
    const sessions = (await showProtocols(r.pop.ns, sock)).filter((p) => p.proto === "BGP");
    const exported = new Set<string>();
    for (const s of sessions) {
        // A session that is down has no export table ("No valid tables"): it exports nothing, and
        // the missing prefix shows as a problem rather than stopping the lab.
        const out = await birdc(r.pop.ns, sock, `show route export ${s.name}`).catch(() => "");
        for (const n of networksOf(out)) exported.add(n);
    }
    const edge = await Promise.all(lab.design.families.map((f) => lab.edges.session(r, f)));
    const unrelatedInKernel: string[] = [];
    for (const route of UNRELATED_POP_ROUTES) {
        const shown = await nsRun(r.pop.ns, "ip", ["-6", "route", "show", route], { allowFail: true });
        if (shown.stdout.trim() !== "") unrelatedInKernel.push(route);
    }
    return {
        pop: r.pop.name, protocol: sessions.map((s) => s.name).join(", ") || "none",
        upstreamOffered: edge.reduce((n, e) => n + (e?.offered ?? 0), 0),
        imported: sessions.reduce((n, s) => n + (s.routes?.imported ?? 0), 0), exported: [...exported].sort(), unrelatedInKernel,
    };
}

export async function routingSafety(lab: LabRuntime): Promise<RoutingSafety> {
    const spec = lab.stack.spec;
    const pops: PopRoutingSafety[] = [];
    for (const r of lab.design.regions) pops.push(await popRoutingSafety(lab, r));
    const transits: RoutingSafety["transits"] = [];
    const origins = [...new Set(lab.design.regions.map((r) => originSeenThrough(spec.asn, r.edge.publicAsn)!))];
    const edgesOwn = new Set(lab.design.regions.flatMap((r) => r.edge.towardsPop.sessions.map((s) => parseCidr(s.popNetwork).toString())));
    for (const r of lab.design.regions) {
        const out = await birdc(r.transit.ns, lab.birdSocket(r.transit.ns), `show route where bgp_path.last ~ [${origins.join(", ")}]`);
        transits.push({ region: r.region, originatedByUs: networksOf(out).filter((n) => !edgesOwn.has(parseCidr(n).toString())) });
    }
    const configured = spec.prefixes.map(String).sort();
    const same = (a: string[]) => a.length === configured.length && a.every((x, i) => x === configured[i]);
    const ok = pops.every((p) => p.imported === 0 && same(p.exported) && p.unrelatedInKernel.length === UNRELATED_POP_ROUTES.length) &&
        transits.every((t) => same(t.originatedByUs));
    return { pops, origins, transits, configured, ok };
}

// --- policy change --------------------------------------------------------------------------

const established = (s: SessionSample) => s.pop?.bgpState === "Established" && s.edge?.established === true;

/** The PoP's route as its own region's transit holds it (learned from the PoP's edge). */
async function transitRouteFromEdge(lab: LabRuntime, r: LabRegion) {
    const routes = await showRoutes(r.transit.ns, lab.birdSocket(r.transit.ns), lab.stack.spec.prefixes[0].toString());
    return routes.find((x) => x.from === edgePeerName(r.transit));
}

async function servedBy(lab: LabRuntime, r: LabRegion, want: (pop: string | undefined) => boolean, timeoutMs: number): Promise<string | undefined> {
    const prober = new Prober(r.client.ns, { address: lab.stack.spec.address.toString(), host: lab.stack.spec.frontDoor.hostname }, 50, lab.probeTimeoutMs);
    try {
        const t0 = nowMs();
        const hit = await prober.waitFor(t0, (s) => s.ok && want(s.pop), timeoutMs);
        return hit?.pop ?? prober.samples.at(-1)?.pop;
    } finally {
        await prober.stop();
    }
}

/** How long the session is watched after each step (the lab's hold time is 3 s; a reset shows at once). */
const SESSION_WATCH_MS = 1500;

export async function policyChange(lab: LabRuntime, configFile: string): Promise<PolicyChangeReport> {
    const r = lab.design.regions[0];
    const spec = lab.stack.spec;
    const index = spec.pops.findIndex((p) => p.name === r.pop.name);
    const doc = parseYaml(fs.readFileSync(configFile, "utf8")) as { config: Record<string, unknown> };
    const pops = doc.config["anycast:pops"] as Array<Record<string, unknown>>;
    const original = { prepend: Number(pops[index].prepend ?? 0), communities: [...((pops[index].communities as string[] | undefined) ?? [])] };
    // Vultr's "prepend once towards AS N" action community, aimed at the region's own transit,
    // plus two prepends of our own: both must reach that transit. A private ASN is removed
    // upstream with its prepends (origin-as.ts), so there Vultr's "prepend twice" does it all.
    const privateAsn = isPrivateAsn(spec.asn);
    const community = `${privateAsn ? 64602 : 64601}:${r.transit.asn}`;
    const edited = { prepend: privateAsn ? original.prepend : Math.min(3, original.prepend + 2), communities: [...original.communities, community] };
    /** Copies of the origin the transit sees beyond the first: our prepends, or with a private ASN the communities'. */
    const extraOrigins = (communities: string[], prepend: number) => (privateAsn ? vultrPrepends(communities.map(parseCommunity), r.transit.asn) : prepend);
    const report: PolicyChangeReport = {
        pop: r.pop.name, region: r.region,
        edit: `anycast:pops[${index}] (${r.pop.name}): prepend ${original.prepend} -> ${edited.prepend}, ` +
            `communities [${original.communities.join(", ")}] -> [${edited.communities.join(", ")}]`,
        changedFiles: {}, steps: [], polls: 0, notEstablished: 0, since: [], sessionKept: false,
    };

    let polling = true;
    const samples: SessionSample[] = [];
    let poller: Promise<void> | undefined;
    try {
        pops[index] = { ...pops[index], prepend: edited.prepend, communities: edited.communities };
        const editedFile = path.join(LAB_DIR, `Pulumi.${r.pop.name}-policy-edit.yaml`);
        fs.writeFileSync(editedFile, stringifyYaml(doc));
        // Both stacks' files as a host gets them; the PoP's new bird.conf is rendered for its
        // namespace's layout, as the running one was, so that only the edit differs.
        const editedStack = await loadStack(editedFile);
        for (const host of lab.stack.hosts) {
            const after = editedStack.hosts.find((h) => h.name === host.name);
            const changed = Object.keys({ ...host.files, ...after?.files }).filter((f) => host.files[f] !== after?.files[f]).sort();
            if (changed.length > 0) report.changedFiles[host.name] = changed;
        }
        if (editedStack.hosts.find((h) => h.name === r.pop.name)?.files["bird.conf"] === undefined) {
            throw new Error(`the edited stack rendered no bird.conf for ${r.pop.name}`);
        }

        // After the experiments a session may still be coming back: give it its reconnect time.
        const reconnectMs = (r.pop.spec.bgp.errorWaitTime[1] + r.pop.spec.bgp.connectRetryTime + 10) * 1000;
        const before = await waitFor(`${r.pop.name}'s session to be established before the change`, async () => {
            const s = await sampleSession(lab, r);
            return established(s) && (await lab.agentStatus(r.pop.name))?.state === "announced" ? s : undefined;
        }, reconnectMs, 100);
        poller = (async () => {
            while (polling) {
                samples.push(await sampleSession(lab, r));
                await sleep(30);
            }
        })();

        const origin = String(originSeenThrough(spec.asn, r.edge.publicAsn));
        const tag = `(${community.replace(":", ",")})`;
        const step = async (name: PolicyStep["step"], config: LabStack, prepends: number, withCommunity: boolean): Promise<PolicyStep> => {
            const applied = await lab.reconfigurePopBird(r.pop.name, config);
            const t0 = nowMs();
            const route = await waitFor(`transit ${r.region} to see ${r.pop.name}'s route with ${prepends} prepends`, async () => {
                const x = await transitRouteFromEdge(lab, r);
                const ours = x?.asPath.split(" ").filter((a) => a === origin).length ?? 0;
                const tagged = x?.communities.includes(tag) ?? false;
                return x && ours === prepends + 1 && tagged === withCommunity ? x : undefined;
            }, 15_000, 50);
            const seen = nowMs() - t0;
            // With the prepends the own edge's path is longer than the other transits': the client
            // moves; after the revert it must come back.
            const served = await servedBy(lab, r, (p) => (name === "revert" ? p === r.pop.name : p !== r.pop.name), 10_000);
            // A reset would show within the hold time; keep watching the session for a while.
            await sleep(SESSION_WATCH_MS);
            return { step: name, birdReply: applied.reply, configureMs: applied.ms, seenAtTransitMs: seen,
                transitAsPath: route.asPath, transitCommunities: route.communities, servedBy: served };
        };
        report.steps.push(await step("apply", editedStack, extraOrigins(edited.communities, edited.prepend), true));
        report.steps.push(await step("revert", lab.stack, extraOrigins(original.communities, original.prepend), false));

        polling = false;
        await poller;
        // One read of either end can come back empty on a stalling machine (vtysh or birdc slow to
        // answer reads as "not established"): read again until both ends answer. A reset shows
        // all the same, as a new `since` on both ends and in the polls above.
        const after = await waitFor(`${r.pop.name}'s session to read as established after the change`, async () => {
            const s = await sampleSession(lab, r);
            return established(s) ? s : undefined;
        }, reconnectMs, 100).catch(() => sampleSession(lab, r));
        report.polls = samples.length;
        report.notEstablished = samples.filter((s) => !established(s)).length;
        report.since = [
            { side: `PoP ${r.pop.name} (${before.pop?.name})`, before: before.pop?.since ?? "?", after: after.pop?.since ?? "?" },
            { side: `edge ${r.region} (${lab.edges.kind})`, before: before.edge?.since ?? "?", after: after.edge?.since ?? "?" },
        ];
        report.sessionKept = report.notEstablished === 0 && report.polls > 0 && report.since.every((s) => sameSince(s.before, s.after));
    } catch (e) {
        report.error = (e as Error).message.split("\n")[0];
        // Whatever happened, the PoP goes back to its deployed config.
        await lab.reconfigurePopBird(r.pop.name, lab.stack).catch(() => undefined);
    } finally {
        polling = false;
        await poller?.catch(() => undefined);
    }
    return report;
}

// --- flap damping ---------------------------------------------------------------------------

export async function flapDamping(lab: LabRuntime, r: LabRegion, prometheus?: LabPrometheus): Promise<FlapDampingReport> {
    const max = lab.stack.spec.health.maxWithdrawalsPerHour;
    const report: FlapDampingReport = {
        pop: r.pop.name, region: r.region, maxWithdrawalsPerHour: max, withdrawalsBefore: 0, flaps: 0, heldDown: false,
        watchMs: 0, watchedMs: 0, healthyWhileHeld: false, edgeRoutesWhileHeld: 0, servedByWhileHeld: [],
        upstream: { announcements: 0, withdrawals: 0 }, penalty: 0, suppressThreshold: DAMPING_SUPPRESS_THRESHOLD,
    };
    // The transit's session with the PoP's edge carries exactly this PoP's route (the edge imports
    // nothing else that it passes on), so its counters are what the Internet saw of the flaps.
    if (!agentTellsIsolation(lab.stack.spec)) {
        // The flaps are origin-path faults of one PoP; a lone PoP, or one in a hub mesh, counts them
        // as global (it hears no other PoP, lab/experiments.ts), stays announced, and nothing is counted.
        report.skipped = `${whyAgentCannotTellIsolation(lab.stack.spec)}: it counts a cut-off as a global fault and stays announced; ` +
            "an origin-path flap costs no withdrawal, so there is nothing to hold down";
        return report;
    }
    const fromEdge = async () => (await showProtocols(r.transit.ns, lab.birdSocket(r.transit.ns))).find((p) => p.name === edgePeerName(r.transit));
    const state = async () => lab.agentStatus(r.pop.name);
    let prober: Prober | undefined;
    try {
        await waitFor(`${r.pop.name} to announce`, async () => (await state())?.state === "announced", 60_000, 50);
        report.withdrawalsBefore = (await state())?.withdrawals_last_hour ?? 0;
        const counts0 = importChanges(await fromEdge());
        // Held down is the alert; each flap cuts the PoP's mesh and withdraws it for a while, which
        // may last long enough to be seen as well.
        const alerts = prometheus?.beginCheck("Flap damping", r.pop.name, [{ alert: "AnycastPopHeldDown", pop: r.pop.name }],
            [{ alert: "AnycastPopUnreachable", pop: r.pop.name }, { alert: "AnycastPopWithdrawn", pop: r.pop.name }]);
        for (let i = 0; i <= max && !report.heldDown; i++) {
            await lab.wgDown(r.pop.ns);
            // wg0 down cuts the PoP off from the mesh; the other PoPs, asked over their public addresses, say they serve.
            await waitFor(`${r.pop.name} to withdraw`, async () => ["withdrawn", "held-down"].includes((await state())?.state ?? ""),
                isolationMs(lab.stack.spec) + SLACK_MS, 20);
            report.flaps++;
            await lab.wgUp(r.pop.ns);
            // A wait, not a measurement: the mesh back, a WireGuard handshake, `rise` checks; on a
            // loaded machine each of them slow.
            const next = await waitFor(`${r.pop.name} to announce again or be held down`, async () => {
                const s = (await state())?.state;
                return s === "announced" || s === "held-down" ? s : undefined;
            }, 60_000, 20).catch(async (e: Error) => {
                throw new Error(`${e.message} (${describeAgent(r.pop.name, await state())})`);
            });
            report.heldDown = next === "held-down";
        }
        if (!report.heldDown) throw new Error(`not held down after ${report.flaps} flaps (limit ${max})`);
        report.heldReason = (await state())?.last_reason;

        // Held down and healthy: nothing is announced, and the region is served elsewhere.
        await waitFor(`${r.pop.name}'s checks to pass again`, async () => (await state())?.healthy === true, 60_000, 50);
        prober = new Prober(r.client.ns, { address: lab.stack.spec.address.toString(), host: lab.stack.spec.frontDoor.hostname }, 50, lab.probeTimeoutMs);
        // The prober is a process of its own: on a loaded machine it takes seconds to start, and a
        // watch that began before its first answer would see no request at all.
        const started = nowMs();
        if (!await prober.waitFor(started, () => true, 30_000)) throw new Error(`no probe of region ${r.region} completed within 30 s`);
        const watchMs = report.watchMs = Math.max(3000, lab.stack.spec.health.interval * 1000 * (lab.stack.spec.health.rise + 5));
        const t0 = nowMs();
        let healthy = true;
        while (nowMs() - t0 < watchMs) {
            const s = await state();
            const ok = s?.healthy === true && s.state === "held-down";
            if (!ok && healthy) report.heldBreak = `+${ms(nowMs() - t0)}: ${s ? `${s.state}, ${s.last_reason}` : "no status"}`;
            healthy &&= ok;
            report.edgeRoutesWhileHeld = Math.max(report.edgeRoutesWhileHeld, (await lab.edges.session(r))?.accepted ?? 0);
            await sleep(100);
        }
        report.watchedMs = nowMs() - t0;
        report.healthyWhileHeld = healthy;
        report.servedByWhileHeld = [...new Set(prober.between(t0, nowMs()).map((s) => (s.ok ? s.pop ?? "?" : s.error ?? `http ${s.status}`)))];
        const counts1 = importChanges(await fromEdge());
        report.upstream = { announcements: counts1.updates - counts0.updates, withdrawals: counts1.withdraws - counts0.withdraws };
        report.penalty = flapPenalty(report.upstream.withdrawals, report.upstream.announcements);

        await alerts?.hold();
        // The operator fixed the cause: release, and the region's own PoP serves again.
        await lab.agent(r.pop.name, "release");
        const t1 = nowMs();
        const back = await prober.waitFor(t1, (s) => s.ok && s.pop === r.pop.name, 20_000);
        if (!back) throw new Error(`${r.pop.name} did not serve ${r.region} within 20 s of the release`);
        report.releasedAfterMs = back.done - t1;
        await alerts?.finish();
    } catch (e) {
        report.error = (e as Error).message.split("\n")[0];
        await lab.wgUp(r.pop.ns).catch(() => undefined);
        await lab.agent(r.pop.name, "release").catch(() => undefined);
    } finally {
        await prober?.stop();
    }
    return report;
}
