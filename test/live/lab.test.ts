/**
 * The lab end to end on Pulumi.lab.yaml (needs root and the lab's tools; CI runs as root), on FRR
 * edges with the full report: one run of every experiment (`anycast lab` and the bench run five),
 * an IPv6 mesh, its own HTTP sources, BFD, three Vultr PoPs and two origins. Then that nothing of
 * the lab is left behind after --keep and teardownLab.
 *
 * One run each proves the path works on the real daemons; what repetition used to show here is
 * the agent's logic and is tested on a fake clock (test/unit/health-policy.test.ts: repeated
 * global outages withdraw nothing and cost no damping; flap damping's count and release). Time
 * bounds are the ones the lab derives from the config; the figures are in the printed report.
 * The other configs users write are in configs.test.ts; the test runner runs the live files one
 * after the other (two labs on one machine would tear each other down).
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { labLeftovers, LabReport, runLab, teardownLab } from "../../lab/index";
import { sameSince } from "../../lab/session";
import { REPO_ROOT } from "../helpers/golden";
import { assertExperiments, assertGreen, labSkipReason } from "../helpers/labreport";

const CONFIG = path.join(REPO_ROOT, "Pulumi.lab.yaml");

const skip = labSkipReason();
if (skip) console.log(`lab tests skipped: ${skip}`);

describe("the lab, from Pulumi.lab.yaml (FRR edges)", { skip }, () => {
    const RUNS = 1;
    let report: LabReport;

    before(async () => {
        report = await runLab({ configFile: CONFIG, repeats: RUNS, keep: true, log: (line) => console.log(line) });
    }, { timeout: 1_200_000 });

    // Whatever happens above, nothing of the lab survives this file.
    after(async () => {
        await teardownLab(() => undefined);
    });

    it("reports no problems, in lines that fit 100 columns", () => {
        assertGreen(report);
        assert.equal(report.edge, "frr");
    });

    it("has every PoP's BGP session established with FRR, with multihop BFD up, exporting the prefix and importing nothing", () => {
        assert.equal(report.sessions.length, 3);
        for (const s of report.sessions) {
            assert.equal(s.state, "Established", `${s.pop}: ${s.lastError ?? ""}`);
            assert.equal(s.bfd, "Up", s.pop);
            assert.equal(s.exported, 1, s.pop);
            assert.equal(s.edgeImported, 1, s.pop);
            assert.equal(s.popImported, 0, `${s.pop} imported routes from its upstream`);
            assert.ok((s.upstreamOffered ?? 0) > 1000, `${s.pop}: the upstream offered ${s.upstreamOffered} routes`);
        }
    });

    it("has each transit prefer its own region's edge, with the shortest AS path", () => {
        for (const t of report.topology) {
            const routes = report.transitRoutes.filter((r) => r.region === t.region);
            const best = routes.find((r) => r.best)!;
            assert.equal(best.asPath, `20473 ${report.anycast.asn}`, t.region);
            for (const r of routes.filter((x) => !x.best)) assert.ok(r.asPath.split(" ").length > 2, `${t.region}: ${r.asPath}`);
        }
    });

    it("serves each region's client from its own PoP with the origin's answer (Host kept, X-Forwarded-For added)", () => {
        assert.equal(report.catchment.length, 3);
        for (const c of report.catchment) {
            assert.equal(c.servedBy, c.expectedPop, c.region);
            assert.equal(c.status, 200, c.region);
            // sgp prefers origin2 (pops[].origins); lax and ams take the nearer by round trip.
            if (c.expectedPop === "sgp") assert.equal(c.origin, "origin2", c.region);
            else assert.ok(["origin", "origin2"].includes(c.origin ?? ""), `${c.region}: ${c.origin}`);
            assert.equal(c.hostHeader, "www.example.com", c.region);
            assert.ok(c.xForwardedFor?.split(/,\s*/).includes(c.client), `${c.region}: X-Forwarded-For ${c.xForwardedFor}`);
        }
    });

    it("serves HTTPS only to a client presenting the origin-pull certificate, verifying the PoP's certificate", () => {
        assert.equal(report.https.length, 3);
        for (const h of report.https) {
            assert.equal(h.withCert.status, 200, `${h.region}: ${h.withCert.error ?? ""}`);
            assert.equal(h.withCert.servedBy, h.expectedPop);
            assert.notEqual(h.withoutCert.status, 200, h.region);
        }
    });

    it("keeps a client outside httpSources out when the firewall is applied", (t) => {
        if (!report.firewall.startsWith("rendered nftables.conf applied")) {
            t.skip(`firewall not applied: ${report.firewall}`);
            return;
        }
        assert.equal(report.outsider?.blocked, true, report.outsider?.detail);
    });

    it("lets each kind of source reach exactly what the firewall rules allow", () => {
        // 13, and each exporter from the mesh (connected), the outsider and the client (dropped).
        assert.equal(report.exposure.length, 19);
        assert.match(report.admin, /origin .* inside firewall\.adminCidrs/);
        for (const p of report.exposure) assert.ok(p.ok, `${p.from} -> ${p.to} ${p.protocol}/${p.port}: ${p.result}, expected ${p.expect} (${p.rule})`);
        const dropped = (port: number, source: string) => report.exposure.find((p) => p.protocol === "tcp" && p.port === port && p.source === source && p.expect === "dropped");
        // Each protected service has a refused outsider, and "dropped" means silently (no reset).
        for (const port of [80, 443, 179, 22, 8080, 9324, 9113]) assert.equal(dropped(port, "outsider")?.result, "timeout", `tcp/${port} from the outsider`);
        for (const port of [9324, 9113]) {
            assert.equal(report.exposure.find((p) => p.source === "meshPeer" && p.port === port)?.result, "connected", `tcp/${port} from the mesh`);
        }
        assert.equal(report.exposure.find((p) => p.source === "admin" && p.port === 22)?.result, "refused", "SSH from adminCidrs reaches the host");
        assert.equal(report.exposure.find((p) => p.source === "pop" && p.expect === "reached")?.result, "connected", "the origin's service over the mesh");
        // WireGuard from outside the mesh: every datagram counted by the firewall's final drop.
        assert.match(report.exposure.find((p) => p.protocol === "udp")?.result ?? "", /^dropped \(drop counter \+[3-9]/);
    });

    it("exports exactly the configured prefix from every PoP, past a full table and unrelated static routes", () => {
        assert.equal(report.routing.ok, true);
        assert.equal(report.routing.pops.length, 3);
        for (const p of report.routing.pops) {
            assert.deepEqual(p.exported, report.anycast.prefixes, p.pop);
            assert.equal(p.imported, 0, p.pop);
            assert.ok(p.upstreamOffered > 1000, `${p.pop}: offered ${p.upstreamOffered}`);
            assert.equal(p.unrelatedInKernel.length, 2, `${p.pop}: the unrelated routes are in its kernel table`);
        }
        for (const t of report.routing.transits) assert.deepEqual(t.originatedByUs, report.anycast.prefixes, t.region);
    });

    it("applies a communities and prepend change with birdc configure, and the BGP session's uptime survives", () => {
        const p = report.policyChange;
        assert.ok(p, "policy change missing");
        assert.equal(p.error, undefined);
        // The edit re-renders one file of one host: only that push would run under `pulumi up`.
        assert.deepEqual(p.changedFiles, { [p.pop]: ["bird.conf"] });
        const [apply, revert] = p.steps;
        assert.match(apply.birdReply, /Reconfigured/);
        assert.equal(apply.transitAsPath, `20473 20473 ${report.anycast.asn} ${report.anycast.asn} ${report.anycast.asn}`);
        assert.match(apply.transitCommunities ?? "", /\(64601,\d+\)/);
        assert.notEqual(apply.servedBy, p.pop, "the longer path moves the region to another PoP");
        assert.equal(revert.transitAsPath, `20473 ${report.anycast.asn}`);
        assert.equal(revert.servedBy, p.pop);
        // Polled through both steps (each poll is a birdc and a vtysh round trip: few on a slow machine).
        assert.ok(p.polls >= 3, `polled ${p.polls} times`);
        assert.equal(p.notEstablished, 0);
        for (const s of p.since) assert.ok(sameSince(s.before, s.after), `${s.side}: the session was re-established (${s.before} -> ${s.after})`);
        assert.equal(p.sessionKept, true);
    });

    it("holds a flapping PoP down while healthy, below the upstream's damping threshold, until released", () => {
        const f = report.flapDamping;
        assert.ok(f, "flap damping missing");
        assert.equal(f.error, undefined);
        assert.equal(f.heldDown, true);
        assert.equal(f.flaps + f.withdrawalsBefore, f.maxWithdrawalsPerHour);
        assert.equal(f.healthyWhileHeld, true);
        assert.ok(f.watchedMs >= f.watchMs, `watched ${f.watchedMs} ms of ${f.watchMs}`);
        assert.equal(f.edgeRoutesWhileHeld, 0);
        assert.ok(f.servedByWhileHeld.length > 0 && !f.servedByWhileHeld.includes(f.pop), `served by ${f.servedByWhileHeld.join(", ")}`);
        // The edge advertises a route only once its kernel has it (bgp suppress-fib-pending, lab/frr.ts):
        // flaps quicker than that install reach the Internet coalesced, never more of them than there were.
        assert.ok(f.upstream.withdrawals >= 1 && f.upstream.withdrawals <= f.flaps, `${f.upstream.withdrawals} withdrawals for ${f.flaps} flaps`);
        assert.equal(f.upstream.announcements, f.upstream.withdrawals - 1, "no re-announcement after the last withdrawal");
        assert.ok(f.penalty < f.suppressThreshold, `penalty ${f.penalty}`);
        assert.ok(f.releasedAfterMs !== undefined);
    });

    for (const id of ["crash", "linkLoss", "originLoss", "drain"] as const) {
        it(`moves traffic to another PoP and back in the ${id} run, within the config's bounds`, () => {
            const e = report.experiments.find((x) => x.id === id);
            assert.ok(e, `experiment ${id} missing`);
            assert.equal(e.skipped, undefined);
            assertExperiments({ ...report, experiments: [e] }, RUNS);
            // BFD bounds link loss (100 ms x 3 as configured, a longer interval on a machine that
            // stalls: lab/stalls.ts): the lab stack's bound is far below a hold-time one.
            if (id === "linkLoss") for (const r of e.runs) assert.match(r.bounds.basis, /^BFD \d+ ms x 3/);
        });
    }

    it("withdraws and announces again without touching the BGP session: the FRR edge's uptime runs on, no route refresh", () => {
        for (const id of ["drain", "originLoss"] as const) {
            const e = report.experiments.find((x) => x.id === id);
            assert.ok(e && e.runs.length > 0, `no ${id} run in the report`);
            for (const r of e.runs) assert.equal(r.sessionKept, true, `${id} on ${r.pop}: ${r.error ?? "session not sampled"}`);
        }
    });

    it("loses no request while draining and undraining (a request the route change resets in flight is not lost by the network)", () => {
        const drain = report.experiments.find((x) => x.id === "drain")!;
        // A drain moves traffic before the withdrawal, so nothing is blackholed: no timeout, no
        // error status. Undraining is a plain re-announcement; the emulated FRR edge advertises it
        // only once its kernel has the route (bgp suppress-fib-pending, lab/frr.ts), so no request
        // meets its "no route". The one failure anycast itself makes: a connection whose handshake
        // reached the PoP before the route changed and its request the PoP after, which resets it.
        // Such a reset sits between the last answer from one PoP and the first from the other
        // (lab/probe.ts resetsAtPathSwitch); every other failure is a request the network lost.
        for (const r of drain.runs) {
            const lost = r.failedDuringFailover + r.failedDuringRecovery - (r.resetAtPathSwitch ?? 0);
            assert.equal(lost, 0, `drain of ${r.pop}: ${r.failures}`);
        }
    });

    it("keeps every PoP announced through a global origin outage, with fast 503s and no withdrawal", () => {
        const o = report.originFailover?.outage;
        assert.ok(o, "the global origin outage ran");
        assert.equal(o.runs.length, RUNS);
        for (const [i, run] of o.runs.entries()) {
            assert.equal(run.error, undefined, `run ${i + 1}`);
            assert.deepEqual(run.notAnnounced, [], `run ${i + 1}: withdrew`);
            assert.equal(run.withdrawals, 0, `run ${i + 1}`);
            assert.ok(run.answered503 > 0, `run ${i + 1}: no 503`);
        }
        // The network serves afterwards: no hold-down (outages in a row: the policy's unit tests).
        assert.equal(o.servesAfter, true, `held down: ${o.heldDown.join(", ")}`);
    });

    it("serves through another PoP when a PoP's tunnels to the origins are cut, staying announced", () => {
        const t = report.originFailover?.tunnelCut;
        assert.ok(t, "the tunnel cut ran");
        assert.equal(t.runs.length, RUNS);
        for (const [i, run] of t.runs.entries()) {
            assert.equal(run.error, undefined, `run ${i + 1} on ${run.pop}`);
            assert.equal(run.stayedAnnounced, true, `run ${i + 1}: ${run.pop} withdrew`);
            assert.ok(run.relayedBy && run.relayedBy !== run.pop, `run ${i + 1}: relayed by ${run.relayedBy}`);
            // nginx passes a request that meets a dead direct path to a relay (the relays are the
            // backups), and the agent aborts kept-alive connections into the cut tunnels: a request
            // sent after the cut may be late, never lost (lab/origin-experiments.ts cutAnswerMs).
            assert.equal(run.failedAfterCut, 0, `run ${i + 1} on ${run.pop}: ${run.failures}`);
        }
    });

    it("serves every region from the other origin when one of the two is down", () => {
        const d = report.originFailover?.originDown;
        assert.ok(d, "the origin-down experiment ran");
        assert.equal(d.runs.length, RUNS);
        for (const [i, run] of d.runs.entries()) {
            assert.equal(run.error, undefined, `run ${i + 1} (${run.origin})`);
            assert.deepEqual(run.notAnnounced, [], `run ${i + 1}: withdrew`);
            assert.ok(run.servedBy.length > 0 && !run.servedBy.includes(run.origin), `run ${i + 1}: served by ${run.servedBy.join(", ")}`);
        }
    });

    it("leaves the lab running with --keep, and teardownLab removes every namespace and process", async () => {
        const running = await labLeftovers();
        // 4 per region, the 2 origins and the outsider.
        assert.equal(running.namespaces.length, 15);
        assert.ok(running.processes.length > 0);
        await teardownLab(() => undefined);
        assert.deepEqual(await labLeftovers(), { namespaces: [], processes: [] });
    });
});
