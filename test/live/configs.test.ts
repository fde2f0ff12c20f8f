/**
 * The lab end to end on the configs users write besides the lab stack (needs root and the lab's
 * tools; CI runs as root):
 *
 * - Pulumi.prod.yaml exactly as a user writes it (no httpSources, no secrets set): IPv4 mesh,
 *   Cloudflare's ranges, no BFD, on BIRD edges (Pulumi.lab.yaml's run has the FRR ones), one run
 *   of each experiment;
 * - a seeded generated config on FRR edges with a Vultr-assigned private ASN: two PoPs, one on an
 *   existing host whose upstream also removes it, a hub mesh, an IPv4 prefix beside the IPv6
 *   one, SSH open (no adminCidrs).
 *
 * Then that what the lab cannot run stops it with one line, and that nothing of the lab is left
 * after a Ctrl-C in the middle of set-up. Pulumi.lab.yaml's full run is in lab.test.ts.
 */
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { contains, parseCidr } from "../../components/core/addressing";
import { CLOUDFLARE_RANGES_SNAPSHOT } from "../../harness/mockcloud";
import { labLeftovers, LabReport, runLab, teardownLab } from "../../lab/index";
import { formatReport } from "../../lab/report";
import { REPO_ROOT } from "../helpers/golden";
import { generateLabConfig, writeStackFile } from "../helpers/labconfig";
import { assertExperiments, assertGreen, labSkipReason } from "../helpers/labreport";
import { tempDir } from "../helpers/tools";

const CONFIG = path.join(REPO_ROOT, "Pulumi.lab.yaml");
const PROD = path.join(REPO_ROOT, "Pulumi.prod.yaml");
const CLI = path.join(REPO_ROOT, "bin", "anycast.js");
const scratch = tempDir("lab-configs");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const skip = labSkipReason();
if (skip) console.log(`lab tests skipped: ${skip}`);

describe("the lab on Pulumi.prod.yaml as a user writes it (BIRD edges)", { skip }, () => {
    let report: LabReport;

    before(async () => {
        report = await runLab({ configFile: PROD, repeats: 1, edge: "bird", log: (line) => console.log(line) });
    }, { timeout: 600_000 });

    after(async () => {
        await teardownLab(() => undefined);
    });

    it("is green with the placeholders for the secrets it does not hold", () => {
        assertGreen(report);
        assert.equal(report.edge, "bird");
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

describe("the lab on a generated config: private ASN, existing-host PoP, hub mesh, dual-stack, SSH open (FRR edges)", { skip }, () => {
    const config = generateLabConfig(4242, {
        pops: 2, meshFamily: 6, topology: "hub", cloudflareSources: true, admin: "none", existingPop: true, dualStack: true,
        bfd: { interval: 300, multiplier: 5 }, privateAsn: true,
    });
    let report: LabReport;

    before(async () => {
        console.log(`generated config: ${config.summary}`);
        report = await runLab({ configFile: writeStackFile(scratch, config), repeats: 1, log: (line) => console.log(line) });
    }, { timeout: 600_000 });

    after(async () => {
        await teardownLab(() => undefined);
    });

    it("is green on FRR edges", () => {
        assertGreen(report);
        assert.equal(report.edge, "frr");
        assertExperiments(report, 1);
    });

    it("shows the transits the prefix from the upstreams' public ASes, the private ASN removed as Vultr does", () => {
        const asn = String(config.values.asn);
        assert.match(asn, /^(65010|4200000100)$/);
        const box = (config.values.pops as Array<{ name: string; bgp: { publicAsn?: number } }>).find((p) => p.name === "edge-box")!;
        const publicOf = (pop: string) => String(pop === "edge-box" ? box.bgp.publicAsn : 20473);
        assert.equal(report.transitRoutes.length, 8, "two prefixes, two transits, two routes each");
        for (const t of report.transitRoutes) {
            assert.ok(!t.asPath.split(" ").includes(asn), `transit ${t.region} sees the private AS${asn}: ${t.asPath}`);
            if (t.best) {
                const pop = report.topology.find((x) => x.region === t.region)!.pop;
                assert.match(t.asPath, new RegExp(`^(${publicOf(pop)})( (${publicOf(pop)}))*$`), `${t.region}: ${t.asPath}`);
            }
        }
        assert.deepEqual(report.routing.origins, [20473, box.bgp.publicAsn]);
        assert.equal(report.routing.ok, true);
        assert.match(formatReport(report), new RegExp(`transit \\S+ knows from AS20473 or AS${box.bgp.publicAsn}: 2001:db8:100::/48, 203\\.0\\.113\\.0/24`));
        // Steering by Vultr's community, the only way with a private ASN: its prepends reach the transit.
        const policy = report.policyChange!;
        assert.equal(policy.error, undefined);
        assert.match(policy.edit, /prepend 0 -> 0, communities \[.*\] -> \[.*64602:\d+\]/);
        assert.equal(policy.steps[0].transitAsPath, "20473 20473 20473");
        assert.equal(policy.sessionKept, true);
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

// The limits below allow a loaded machine (these tests share two cores with the rest of the suite);
// how long the lab took to stop is printed: seconds on a quiet machine.
describe("the lab stops with one message on what it cannot run", { skip }, () => {
    it("names the setting it cannot emulate and builds nothing", { timeout: 300_000 }, async () => {
        const config = generateLabConfig(7, { existingPop: true, dualStack: false, pops: 2 });
        const pops = config.values.pops as Array<{ bgp: Record<string, unknown> }>;
        pops[pops.length - 1].bgp.multihop = 0;
        const file = writeStackFile(scratch, config);
        const started = Date.now();
        const res = spawnSync(process.execPath, [CLI, "lab", "--config", file], { encoding: "utf8", timeout: 290_000 });
        console.log(`lab: stopped on bgp.multihop 0 after ${((Date.now() - started) / 1000).toFixed(1)} s`);
        assert.equal(res.status, 1, res.stdout + res.stderr);
        const message = oneMessage(res.stderr);
        assert.match(message, /^anycast lab: PoP edge-box: bgp\.multihop is 0 .* set bgp\.multihop/);
        assert.doesNotMatch(res.stdout + res.stderr, /\n\s+at /, "no stack trace");
        assert.deepEqual((await labLeftovers()).namespaces, []);
    });

    it("names the missing tools and the package to install", { timeout: 300_000 }, () => {
        const started = Date.now();
        const res = spawnSync(process.execPath, [CLI, "lab", "--config", CONFIG], { encoding: "utf8", env: { ...process.env, PATH: "/nonexistent" } });
        console.log(`lab: stopped on missing tools after ${((Date.now() - started) / 1000).toFixed(1)} s`);
        assert.equal(res.status, 1, res.stdout + res.stderr);
        assert.match(oneMessage(res.stderr), /^anycast lab: missing tools: .*vtysh.*\(Debian packages: .*frr.*\): install everything .* scripts\/setup\.sh/);
    });
});

describe("the lab on Ctrl-C", { skip }, () => {
    it("tears everything down when interrupted during set-up", { timeout: 300_000 }, async () => {
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
