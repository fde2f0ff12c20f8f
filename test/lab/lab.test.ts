/**
 * The lab end to end (needs root and the lab's tools; CI runs as root), on three configs that
 * differ the way users' stacks do:
 *
 * - Pulumi.lab.yaml on FRR edges, with the full report (three runs of every experiment; `anycast lab` and the bench run five): IPv6
 *   mesh, its own HTTP sources, BFD, three Vultr PoPs;
 * - Pulumi.prod.yaml exactly as a user runs it (no httpSources, no secrets set): IPv4 mesh,
 *   Cloudflare's ranges, no BFD, on FRR edges, one run of each experiment;
 * - a seeded generated config on BIRD edges: two PoPs, one on an existing host with its own
 *   upstream, a hub mesh, an IPv4 prefix beside the IPv6 one, SSH open (no adminCidrs).
 *
 * Then that nothing of the lab is left behind (after --keep + teardownLab, and after a Ctrl-C in
 * the middle of set-up), and that what the lab cannot run stops it with one line. Time bounds
 * are the ones the lab derives from each config; the figures are in the printed reports.
 */
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { contains, parseCidr } from "../../components/core/addressing";
import { CLOUDFLARE_RANGES_SNAPSHOT } from "../../harness/mockcloud";
import { checkLabPreconditions, labLeftovers, LabReport, runLab, teardownLab } from "../../lab/index";
import { formatReport } from "../../lab/report";
import { sameSince } from "../../lab/routing";
import { REPORT_WIDTH } from "../../lab/text";
import { REPO_ROOT } from "../helpers/golden";
import { generateLabConfig, writeStackFile } from "../helpers/labconfig";
import { tempDir } from "../helpers/tools";

const CONFIG = path.join(REPO_ROOT, "Pulumi.lab.yaml");
const PROD = path.join(REPO_ROOT, "Pulumi.prod.yaml");
const CLI = path.join(REPO_ROOT, "bin", "anycast.js");
const scratch = tempDir("lab-configs");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

function skipReason(): string | undefined {
    try {
        checkLabPreconditions("frr");
        return undefined;
    } catch (e) {
        return (e as Error).message;
    }
}

const skip = skipReason();
if (skip) console.log(`lab tests skipped: ${skip}`);

/** What every green report has, whatever the config. */
function assertGreen(report: LabReport): void {
    assert.deepEqual(report.problems, []);
    assert.equal(report.ok, true);
    const long = formatReport(report).split("\n").filter((l) => l.length > REPORT_WIDTH);
    assert.deepEqual(long, [], `report lines over ${REPORT_WIDTH} columns`);
}

/** Every experiment run that ran moved the region to another PoP and back, within the config's bounds. */
function assertExperiments(report: LabReport, runs: number): void {
    for (const e of report.experiments.filter((x) => !x.skipped)) {
        assert.equal(e.runs.length, runs, e.title);
        for (const [i, r] of e.runs.entries()) {
            assert.equal(r.error, undefined, `${e.id} run ${i + 1} on ${r.pop}`);
            assert.ok(r.servedBy && r.servedBy !== r.pop, `${e.id} run ${i + 1}: served by ${r.servedBy}`);
            assert.ok(r.failoverMs! <= r.bounds.failoverMs, `${e.id} run ${i + 1}: failover ${r.failoverMs} ms (${r.bounds.basis})`);
            assert.ok(r.recoveryMs! <= r.bounds.recoveryMs, `${e.id} run ${i + 1}: recovery ${r.recoveryMs} ms`);
        }
    }
}

describe("the lab, from Pulumi.lab.yaml (FRR edges)", { skip }, () => {
    const RUNS = 3;
    let report: LabReport;

    before(async () => {
        // Three runs of every experiment, the origin faults' three among them: enough for the
        // tunnel cut to visit every PoP and for three outages within a minute, and it keeps CI
        // short. `anycast lab` and the bench run five.
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
        assert.equal(report.exposure.length, 13);
        assert.match(report.admin, /origin .* inside firewall\.adminCidrs/);
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
        assert.ok(f.watchedMs >= 2900, `watched ${f.watchedMs} ms`);
        assert.equal(f.edgeRoutesWhileHeld, 0);
        assert.ok(f.servedByWhileHeld.length > 0 && !f.servedByWhileHeld.includes(f.pop), `served by ${f.servedByWhileHeld.join(", ")}`);
        assert.equal(f.upstream.withdrawals, f.flaps);
        assert.equal(f.upstream.announcements, f.flaps - 1, "no re-announcement after the last withdrawal");
        assert.ok(f.penalty < f.suppressThreshold, `penalty ${f.penalty}`);
        assert.ok(f.releasedAfterMs !== undefined);
    });

    for (const id of ["crash", "linkLoss", "originLoss", "drain"] as const) {
        it(`moves traffic to another PoP and back in every ${id} run, within the config's bounds`, () => {
            const e = report.experiments.find((x) => x.id === id);
            assert.ok(e, `experiment ${id} missing`);
            assert.equal(e.skipped, undefined);
            assertExperiments({ ...report, experiments: [e] }, RUNS);
            // BFD bounds link loss (100 ms x 3 as configured, a longer interval on a machine that
            // stalls: lab/stalls.ts): the lab stack's bound is far below a hold-time one.
            if (id === "linkLoss") for (const r of e.runs) assert.match(r.bounds.basis, /^BFD \d+ ms x 3/);
            // Runs rotate over the PoPs, so every PoP was failed at least once.
            assert.equal(new Set(e.runs.map((r) => r.pop)).size, 3);
        });
    }

    it("blackholes no request while draining (at most a reset from the path switch)", () => {
        const drain = report.experiments.find((x) => x.id === "drain")!;
        // A drain moves traffic before the withdrawal, so nothing is blackholed: no timeout, no
        // error status. A TCP connection the transit's path switch catches between its handshake
        // and its request lands on another PoP, which resets it; that is anycast itself (any route
        // change does it), rare, and more likely the longer a stalling machine holds a request.
        for (const r of drain.runs) {
            const kinds = (r.failures ?? "").split(/[;,] /).filter((k) => k);
            assert.ok(kinds.every((k) => /^\d+x ECONNRESET$/.test(k)), `drain of ${r.pop}: ${r.failures}`);
            assert.ok(r.failedDuringFailover <= 2, `drain of ${r.pop}: ${r.failures}`);
        }
    });

    it("keeps every PoP announced through three global origin outages in a row, with fast 503s and no withdrawal", () => {
        const o = report.originFailover?.outage;
        assert.ok(o, "the global origin outage ran");
        assert.equal(o.runs.length, RUNS);
        for (const [i, run] of o.runs.entries()) {
            assert.equal(run.error, undefined, `run ${i + 1}`);
            assert.deepEqual(run.notAnnounced, [], `run ${i + 1}: withdrew`);
            assert.equal(run.withdrawals, 0, `run ${i + 1}`);
            assert.ok(run.answered503 > 0, `run ${i + 1}: no 503`);
        }
        // Three outages within a minute, and the network serves afterwards: no hold-down.
        assert.ok(o.firstThreeWithinS !== undefined && o.firstThreeWithinS < 60, `first three within ${o.firstThreeWithinS} s`);
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
        }
        assert.equal(new Set(t.runs.map((r) => r.pop)).size, 3, "every PoP was cut once");
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

describe("the lab on Pulumi.prod.yaml as a user runs it (FRR edges)", { skip }, () => {
    let report: LabReport;

    before(async () => {
        report = await runLab({ configFile: PROD, repeats: 1, log: (line) => console.log(line) });
    }, { timeout: 600_000 });

    after(async () => {
        await teardownLab(() => undefined);
    });

    it("is green with the placeholders for the secrets it does not hold", () => {
        assertGreen(report);
        // One origin: the global outage and the relay run, the origin switch cannot.
        assert.equal(report.originFailover?.outage?.runs.length, 1);
        assert.equal(report.originFailover?.tunnelCut?.runs.length, 1);
        assert.deepEqual(report.originFailover?.skipped.map((s) => s.id), ["originDown"]);
        assert.ok(report.notes.some((n) => /anycast:bgpPassword is not set .* placeholder/.test(n)), report.notes.join("\n"));
    });

    it("serves every region over the IPv4 mesh, to clients in Cloudflare's ranges the firewall lets in", () => {
        const cloudflare = CLOUDFLARE_RANGES_SNAPSHOT.ipv6Cidrs.map((c) => parseCidr(c));
        for (const c of report.catchment) {
            assert.equal(c.servedBy, c.expectedPop, c.region);
            assert.equal(c.origin, "origin");
            assert.ok(cloudflare.some((p) => contains(p, c.client)), `${c.client} is not in Cloudflare's ranges`);
        }
        assert.equal(report.outsider?.blocked, true);
        assert.ok(report.exposure.every((p) => p.ok));
    });

    it("runs the PoPs without BFD, with the hold time bounding link loss", () => {
        for (const s of report.sessions) assert.equal(s.bfd, "off", s.pop);
        assertExperiments(report, 1);
        const link = report.experiments.find((e) => e.id === "linkLoss")!;
        assert.match(link.runs[0].bounds.basis, /^hold time 9 s, no BFD/);
    });
});

describe("the lab on a generated config: existing-host PoP, hub mesh, dual-stack, SSH open (BIRD edges)", { skip }, () => {
    const config = generateLabConfig(4242, {
        pops: 2, meshFamily: 6, topology: "hub", cloudflareSources: true, admin: "none", existingPop: true, dualStack: true,
        bfd: { interval: 300, multiplier: 5 },
    });
    let report: LabReport;

    before(async () => {
        console.log(`generated config: ${config.summary}`);
        report = await runLab({ configFile: writeStackFile(scratch, config), repeats: 1, edge: "bird", log: (line) => console.log(line) });
    }, { timeout: 600_000 });

    after(async () => {
        await teardownLab(() => undefined);
    });

    it("is green on BIRD edges", () => {
        assertGreen(report);
        assert.equal(report.edge, "bird");
        assertExperiments(report, 1);
    });

    it("follows the hub mesh: a PoP cut off from the hub stays announced (a global fault), so origin loss and damping are not run", () => {
        // Link loss still moves the region (the BGP session does it), and the agent did not withdraw.
        assert.equal(report.experiments.find((e) => e.id === "linkLoss")?.skipped, undefined);
        assert.match(report.experiments.find((e) => e.id === "originLoss")?.skipped ?? "", /hub mesh .* stays announced and answers 503/);
        assert.match(report.flapDamping?.skipped ?? "", /hub mesh/);
        assert.match(formatReport(report), /Flap damping on \S+: not run: in a hub mesh/);
    });

    it("brings up the IPv4 sessions beside the IPv6 ones, and IPv4 packets reach each region's own PoP", () => {
        assert.deepEqual(report.sessions.map((s) => s.family).sort(), [4, 4, 6, 6]);
        for (const s of report.sessions) assert.equal(s.state, "Established", `${s.pop} ${s.protocol}`);
        assert.equal(report.catchment4?.length, 2);
        for (const c of report.catchment4!) assert.deepEqual(c.arrivedAt, [c.expectedPop], c.region);
        assert.deepEqual(report.routing.configured, ["2001:db8:100::/48", "203.0.113.0/24"]);
    });

    it("emulates the existing host's own upstream: its neighbour, its remote AS behind a public AS, multihop", () => {
        const own = report.sessions.find((s) => s.pop === "edge-box" && s.family === 6)!;
        assert.equal(own.neighbor, "2001:db8:cafe:ffff::1");
        const pop = config.values.pops as Array<{ name: string; bgp: { remoteAsn: number } }>;
        assert.equal(own.neighborAs, String(pop.find((p) => p.name === "edge-box")!.bgp.remoteAsn));
    });

    it("expects SSH from anywhere when adminCidrs is empty, and sees it open", () => {
        assert.match(report.admin, /adminCidrs is empty/);
        const ssh = report.exposure.find((p) => p.source === "outsider" && p.port === 22)!;
        assert.equal(ssh.expect, "reached");
        assert.equal(ssh.result, "refused", "the firewall lets it through; nothing listens");
    });
});

/**
 * The one message a failing `anycast lab` prints on stderr, unwrapped (the CLI wraps it at 100
 * columns with an indented continuation), after checking that nothing else but the summary
 * line `lab: failed ...` is there.
 */
function oneMessage(stderr: string): string {
    const lines = stderr.trim().split("\n");
    assert.match(lines.at(-1) ?? "", /^lab: failed/, stderr);
    const message = lines.slice(0, -1);
    assert.ok(message.length > 0 && message.slice(1).every((l) => /^ {4}\S/.test(l)), `one message, wrapped:\n${stderr}`);
    return message.map((l) => l.trim()).join(" ");
}

describe("the lab stops with one message on what it cannot run", { skip }, () => {
    it("names the setting it cannot emulate and builds nothing", { timeout: 120_000 }, async () => {
        const config = generateLabConfig(7, { existingPop: true, dualStack: false, pops: 2 });
        const pops = config.values.pops as Array<{ bgp: Record<string, unknown> }>;
        pops[pops.length - 1].bgp.multihop = 0;
        const file = writeStackFile(scratch, config);
        const res = spawnSync(process.execPath, [CLI, "lab", "--config", file], { encoding: "utf8", timeout: 110_000 });
        assert.equal(res.status, 1, res.stdout + res.stderr);
        const message = oneMessage(res.stderr);
        assert.match(message, /^anycast lab: PoP edge-box: bgp\.multihop is 0 .* set bgp\.multihop/);
        assert.doesNotMatch(res.stdout + res.stderr, /\n\s+at /, "no stack trace");
        assert.deepEqual((await labLeftovers()).namespaces, []);
    });

    it("names the missing tools and the package to install", { timeout: 60_000 }, () => {
        const res = spawnSync(process.execPath, [CLI, "lab", "--config", CONFIG], { encoding: "utf8", env: { ...process.env, PATH: "/nonexistent" } });
        assert.equal(res.status, 1, res.stdout + res.stderr);
        assert.match(oneMessage(res.stderr), /^anycast lab: missing tools: .*vtysh.*\(Debian packages: .*frr.*\): install everything .* scripts\/setup\.sh/);
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
