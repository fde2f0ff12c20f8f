/**
 * The lab end to end (needs root and the lab's tools; CI runs as root): brings up Pulumi.lab.yaml
 * once, checks sessions, catchment, the proxy path and every experiment, then that nothing of the
 * lab is left behind — after --keep + teardownLab, and after a Ctrl-C in the middle of set-up.
 * Timing assertions are deliberately loose (a noisy 2-core machine); the figures are in the
 * printed report.
 */
import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { checkLabPreconditions, labLeftovers, LabReport, runLab, teardownLab } from "../../lab/index";
import { REPO_ROOT } from "../helpers/golden";

const CONFIG = path.join(REPO_ROOT, "Pulumi.lab.yaml");

function skipReason(): string | undefined {
    try {
        checkLabPreconditions();
        return undefined;
    } catch (e) {
        return (e as Error).message;
    }
}

const skip = skipReason();
if (skip) console.log(`lab tests skipped: ${skip}`);

describe("the lab, from Pulumi.lab.yaml", { skip }, () => {
    let report: LabReport;

    before(async () => {
        report = await runLab({ configFile: CONFIG, repeats: 5, keep: true, log: (line) => console.log(line) });
    }, { timeout: 290_000 });

    // Whatever happens above, nothing of the lab survives this file.
    after(async () => {
        await teardownLab(() => undefined);
    });

    it("reports no problems", () => {
        assert.deepEqual(report.problems, []);
        assert.equal(report.ok, true);
    });

    it("has every PoP's BGP session established, with BFD up, exporting the prefix and importing nothing", () => {
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
            assert.equal(c.origin, "origin", c.region);
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
        assert.equal(report.exposure.length, 13);
        for (const p of report.exposure) assert.ok(p.ok, `${p.from} -> ${p.to} ${p.protocol}/${p.port}: ${p.result}, expected ${p.expect} (${p.rule})`);
        const dropped = (port: number, source: string) => report.exposure.find((p) => p.protocol === "tcp" && p.port === port && p.source === source && p.expect === "dropped");
        // Each protected service has a refused outsider, and "dropped" means silently (no reset).
        for (const port of [80, 443, 179, 22, 8080]) assert.equal(dropped(port, "outsider")?.result, "timeout", `tcp/${port} from the outsider`);
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
        assert.ok(p.polls >= 10, `polled ${p.polls} times`);
        assert.equal(p.notEstablished, 0);
        for (const s of p.since) assert.equal(s.after, s.before, `${s.side}: the session was re-established`);
        assert.equal(p.sessionKept, true);
    });

    it("holds a flapping PoP down while healthy, below the upstream's damping threshold, until released", () => {
        const f = report.flapDamping;
        assert.ok(f, "flap damping missing");
        assert.equal(f.error, undefined);
        assert.equal(f.heldDown, true);
        assert.equal(f.flaps + f.withdrawalsBefore, f.maxWithdrawalsPerHour);
        assert.equal(f.healthyWhileHeld, true);
        assert.ok(f.watchedMs >= 2900, `watched ${f.watchedMs} ms`);
        assert.equal(f.edgeRoutesWhileHeld, 0);
        assert.ok(f.servedByWhileHeld.length > 0 && !f.servedByWhileHeld.includes(f.pop), `served by ${f.servedByWhileHeld.join(", ")}`);
        assert.equal(f.upstream.withdrawals, f.flaps);
        assert.equal(f.upstream.announcements, f.flaps - 1, "no re-announcement after the last withdrawal");
        assert.ok(f.penalty < f.suppressThreshold, `penalty ${f.penalty}`);
        assert.ok(f.releasedAfterMs !== undefined);
    });

    for (const id of ["crash", "linkLoss", "originLoss", "drain"] as const) {
        it(`moves traffic to another PoP and back in every ${id} run`, () => {
            const e = report.experiments.find((x) => x.id === id);
            assert.ok(e, `experiment ${id} missing`);
            assert.equal(e.runs.length, 5);
            for (const [i, r] of e.runs.entries()) {
                assert.equal(r.error, undefined, `${id} run ${i + 1} on ${r.pop}`);
                assert.ok(r.servedBy && r.servedBy !== r.pop, `${id} run ${i + 1}: served by ${r.servedBy}`);
                // Loose ceilings: BFD/TCP close/agent react in well under these on an idle machine.
                assert.ok(r.failoverMs! < 10_000, `${id} run ${i + 1}: failover ${r.failoverMs} ms`);
                assert.ok(r.recoveryMs! < 60_000, `${id} run ${i + 1}: recovery ${r.recoveryMs} ms`);
            }
            // Runs rotate over the PoPs, so every PoP was failed at least once.
            assert.equal(new Set(e.runs.map((r) => r.pop)).size, 3);
        });
    }

    it("loses no request while draining", () => {
        const drain = report.experiments.find((x) => x.id === "drain")!;
        for (const r of drain.runs) assert.equal(r.failedDuringFailover, 0, `drain of ${r.pop}: ${r.failures}`);
    });

    it("leaves the lab running with --keep, and teardownLab removes every namespace and process", async () => {
        const running = await labLeftovers();
        assert.equal(running.namespaces.length, 14);
        assert.ok(running.processes.length > 0);
        await teardownLab(() => undefined);
        assert.deepEqual(await labLeftovers(), { namespaces: [], processes: [] });
    });
});

describe("the lab on Ctrl-C", { skip }, () => {
    it("tears everything down when interrupted during set-up", { timeout: 90_000 }, async () => {
        const script = `require(${JSON.stringify(path.join(REPO_ROOT, "dist", "lab", "index.js"))})` +
            `.runLab({ configFile: ${JSON.stringify(CONFIG)}, repeats: 0 }).then(() => process.exit(0), (e) => { console.error(e); process.exit(3); });`;
        const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "pipe"] });
        let output = "";
        const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
        await new Promise<void>((resolve, reject) => {
            const onData = (d: Buffer) => {
                output += d.toString();
                // Interrupt once PoPs are booting: namespaces, daemons and WireGuard all exist by then.
                if (/booting PoP \w+/.test(output)) {
                    child.stdout.off("data", onData);
                    resolve();
                }
            };
            child.stdout.on("data", onData);
            child.stderr.on("data", (d: Buffer) => { output += d.toString(); });
            void exited.then(() => reject(new Error(`the lab exited before booting PoPs:\n${output}`)));
        });
        child.kill("SIGINT");
        const code = await exited;
        assert.equal(code, 130, output);
        assert.deepEqual(await labLeftovers(), { namespaces: [], processes: [] });
    });

    after(async () => {
        await teardownLab(() => undefined);
    });
});
