/**
 * The lab's pure parts, without root: the network design, the emulated cloud's BIRD configs (checked
 * by `bird -p` when BIRD is installed), the booted files and the birdc output parsers (the
 * namespaces' layouts: test/lab/layout.test.ts).
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseCidr, contains } from "../../components/core/addressing";
import { artifactsFor } from "../../components/core/artifacts";
import { POP_ARTIFACTS_NOT_BOOTED, popArtifactsBooted } from "../../lab/boot";
import { parseProtocols, parseRoutes } from "../../lab/birdc";
import { networksOf } from "../../lab/routing";
import { importChanges } from "../../lab/session";
import { formatExposure, formatReport, LabReport, stats, table } from "../../lab/report";
import { REPORT_WIDTH, wrap } from "../../lab/text";
import { renderEdgeBird, renderTransitBird } from "../../lab/routers";
import { LabStack } from "../../lab/stack";
import { LAB_NS_PREFIX, designLab, subnet } from "../../lab/topology";
import { renderEdgeFrr } from "../../lab/frr";
import { parseAnycastConfig } from "../../components/core/config";
import { CLOUDFLARE_RANGES_SNAPSHOT } from "../../harness/mockcloud";
import { generateLabConfig, planOnlyStack } from "../helpers/labconfig";
import { labSpec, TEST_HOST_ADDRESSES } from "../helpers/fixtures";
import { REPO_ROOT } from "../helpers/golden";
import { ProbeSample, resetsAtPathSwitch } from "../../lab/probe";
import { run, which } from "../helpers/tools";

const FIXTURES = path.join(REPO_ROOT, "test", "lab", "fixtures");

function labStack(): LabStack {
    const spec = labSpec();
    const hosts = [...spec.pops.map((p) => ({ name: p.name, role: "pop" as const, ...TEST_HOST_ADDRESSES[p.name], files: {} })),
        // Each origin in a /64 of its own, as Pulumi.lab.yaml has them.
        ...spec.origins.map((o, k) => ({ name: o.name, role: "origin" as const, ipv6: `2001:db8:${(0xffff - k).toString(16)}::10`, files: {} }))];
    return { spec, stackSpec: spec, hosts, notes: [], httpSources: spec.firewall.httpSources!.map(String) };
}

describe("lab plan", () => {
    const stack = labStack();
    const plan = designLab(stack);

    it("builds one PoP, edge, transit and client per region, plus every origin and the outsider, all prefixed", () => {
        assert.deepEqual(plan.regions.map((r) => r.region), ["lax", "ams", "sgp"]);
        // Pulumi.lab.yaml has two origins, each in a namespace of its own.
        assert.deepEqual(plan.origins.map((o) => o.ns).sort(), [`${LAB_NS_PREFIX}origin`, `${LAB_NS_PREFIX}origin2`]);
        assert.equal(plan.namespaces.length, 3 * 4 + 2 + 1);
        assert.ok(plan.namespaces.every((n) => n.name.startsWith(LAB_NS_PREFIX)));
        assert.equal(new Set(plan.namespaces.map((n) => n.name)).size, plan.namespaces.length);
    });

    it("gives each PoP its rendered unicast address and the gateway on the edge, with the BGP neighbour on the edge's lo", () => {
        for (const r of plan.regions) {
            assert.equal(r.pop.address, TEST_HOST_ADDRESSES[r.pop.name].ipv6);
            const edge = plan.namespaces.find((n) => n.name === r.edge.ns)!;
            assert.ok(edge.addresses.some((a) => a.ifname === "to-pop" && a.cidr === `${r.pop.gateway}/64`));
            assert.ok(edge.addresses.some((a) => a.ifname === "lo" && a.cidr === "2001:19f0:ffff::1/128"));
            assert.equal(r.edge.towardsPop.localAsn, 64515);
            assert.equal(r.edge.publicAsn, 20473);
            assert.equal(r.edge.towardsPop.password, stack.spec.bgpPassword);
            assert.deepEqual(r.edge.towardsPop.bfd, { intervalMs: 100, multiplier: 3 });
        }
    });

    it("puts clients inside firewall.httpSources and the outsider outside", () => {
        const sources = stack.spec.firewall.httpSources!;
        for (const r of plan.regions) assert.ok(sources.some((s) => contains(s, r.client.address)), r.client.address);
        assert.ok(!sources.some((s) => contains(s, plan.outsider.address)));
    });

    it("uses every address once and interface names Linux accepts", () => {
        const all = plan.namespaces.flatMap((n) => n.addresses.filter((a) => a.ifname !== "lo").map((a) => a.cidr.split("/")[0]));
        assert.equal(new Set(all).size, all.length, all.join(" "));
        for (const l of plan.links) {
            for (const end of [l.a, l.b]) assert.ok(end.ifname.length <= 15 && !["up", "down", "dev"].includes(end.ifname), end.ifname);
        }
    });

    it("gives transits distinct ASNs the deployment does not use, in a full mesh", () => {
        const asns = plan.transits.map((t) => t.asn);
        assert.equal(new Set(asns).size, asns.length);
        for (const a of asns) assert.ok(a !== stack.spec.asn && a !== 20473 && a !== 64496, String(a));
        for (const t of plan.transits) assert.equal(t.transitPeers.length, plan.transits.length - 1);
    });

    it("makes a region's own PoP its shortest AS path: own edge directly attached, others one transit further", () => {
        for (const r of plan.regions) {
            assert.equal(r.transit.edgePeers[0].neighborAddress, r.edge.towardsTransit.peers[0].localAddress);
            assert.equal(r.edge.towardsTransit.peers[0].neighborAsn, r.transit.asn);
        }
    });

    it("computes subnets inside a block", () => {
        assert.equal(subnet("2001:db8:ff00::/40", 48, 1), "2001:db8:ff01::/48");
        assert.equal(subnet("2001:db8:e000::/40", 64, 3 * 65536), "2001:db8:e003::/64");
        assert.throws(() => subnet("2001:db8::/64", 48, 0));
    });

    it("renders edge and transit configs that BIRD accepts", (t) => {
        if (!which("bird")) {
            t.skip("bird is not installed (bash scripts/setup.sh, as root)");
            return;
        }
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lab-bird-"));
        // And the edges of a private-ASN stack, which remove it on export (a dual-stack one: both filters).
        const generated = generateLabConfig(4242, { privateAsn: true, dualStack: true, existingPop: true, pops: 2 });
        const privateSpec = parseAnycastConfig(generated.values);
        const privatePlan = designLab(planOnlyStack(privateSpec, privateSpec.firewall.httpSources?.map(String) ?? []));
        try {
            const configs = [
                ...plan.regions.map((r) => renderEdgeBird(r.edge, path.join(dir, "edge.log"))),
                ...plan.transits.map((tr) => renderTransitBird(tr, path.join(dir, "tr.log"))),
                ...privatePlan.regions.map((r) => renderEdgeBird(r.edge, path.join(dir, "edge.log"))),
            ];
            for (const [i, conf] of configs.entries()) {
                const file = path.join(dir, `${i}.conf`);
                fs.writeFileSync(file, conf);
                const res = run("bird", ["-p", "-c", file]);
                assert.equal(res.status, 0, `${res.stderr}\n${conf.split("\n").filter((l) => !l.includes("3fff:")).join("\n")}`);
            }
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("has the edge honour GRACEFUL_SHUTDOWN and the PoP's password and timers", () => {
        const conf = renderEdgeBird(plan.regions[0].edge, "/dev/null", 2);
        assert.match(conf, /if \(65535, 0\) ~ bgp_community then bgp_local_pref = 0;/);
        assert.match(conf, /password "lab-only-not-a-secret";/);
        assert.match(conf, /bfd on;/);
        assert.match(conf, /min rx interval 100 ms; min tx interval 100 ms; multiplier 3;/);
        assert.match(conf, /local 2001:19f0:ffff::1 as 64515;/);
        assert.match(conf, /neighbor 2001:db8:ff11::10 as 64500;/);
        assert.match(conf, /route 3fff:0:2::\/48 unreachable;/);
    });
});

describe("lab boot: the PoP files it takes from the stack", () => {
    it("boots these files from the stack and accounts for every other PoP artifact", () => {
        assert.deepEqual(popArtifactsBooted().sort(),
            ["anycast-health", "anycast-health.json", "anycast-net.sh", "bird.conf", "nginx-upstreams.conf", "nginx.conf", "wg0.conf"]);
        const popFiles: string[] = artifactsFor("pop", { createdOnVultr: true }).map((a) => a.name);
        for (const name of Object.keys(POP_ARTIFACTS_NOT_BOOTED)) assert.ok(popFiles.includes(name), `${name} is not a PoP artifact`);
    });
});

describe("birdc output parsers", () => {
    it("reads an established PoP session", () => {
        const protos = parseProtocols(fs.readFileSync(path.join(FIXTURES, "pop-show-protocols-all.txt"), "utf8"));
        const bgp = protos.find((p) => p.proto === "BGP")!;
        assert.equal(bgp.name, "lax_upstream6");
        assert.equal(bgp.bgpState, "Established");
        assert.equal(bgp.neighborAddress, "2001:19f0:ffff::1");
        assert.equal(bgp.neighborAs, "64515");
        assert.equal(bgp.holdTimer?.split("/")[1], "3");
        assert.deepEqual(bgp.routes && [bgp.routes.imported, bgp.routes.exported], [0, 1]);
    });

    it("reads a session that is down, with the reason", () => {
        const protos = parseProtocols(fs.readFileSync(path.join(FIXTURES, "edge-show-protocols-all-pop-down.txt"), "utf8"));
        const pop = protos.find((p) => p.name === "pop")!;
        assert.equal(pop.bgpState, "Active");
        assert.equal(pop.lastError, "Socket: Connection closed");
        assert.equal(pop.state, "start");
        const table = protos.find((p) => p.name === "upstream_table")!;
        assert.equal(table.routes?.imported, 1001);
    });

    it("reads every route for a prefix with AS path, best flag and communities", () => {
        const routes = parseRoutes(fs.readFileSync(path.join(FIXTURES, "transit-show-route-all.txt"), "utf8"));
        assert.equal(routes.length, 2);
        assert.deepEqual(routes.map((r) => [r.network, r.from, r.best, r.asPath]), [
            ["2001:db8:100::/48", "tr_ams", true, "64509 20473 64500"],
            ["2001:db8:100::/48", "tr_sgp", false, "64508 20473 64500"],
        ]);
        assert.equal(routes[1].communities, "(64600,64496)");
        assert.equal(routes[0].localPref, 100);
        assert.deepEqual(networksOf(fs.readFileSync(path.join(FIXTURES, "transit-show-route-all.txt"), "utf8")), ["2001:db8:100::/48"]);
    });

    it("reads the route changes a session accepted, not repeats or filtered routes (the damping experiment's evidence)", () => {
        const protos = parseProtocols(fs.readFileSync(path.join(FIXTURES, "pop-show-protocols-all.txt"), "utf8"));
        // The PoP received the upstream's 1,001 routes and filtered every one: no change.
        assert.deepEqual(importChanges(protos.find((p) => p.proto === "BGP")), { updates: 0, withdraws: 0, received: 1001 });
        assert.deepEqual(importChanges(protos.find((p) => p.name === "lax_anycast6")), { updates: 1, withdraws: 0, received: 1 });
        // A transit that got 3 withdrawals and 2 re-advertisements of a flapping route, one of them
        // sent twice by a busy edge (ignored: the same route), and a withdrawal of a route it no
        // longer held.
        const transit = parseProtocols([
            "BIRD 2.0.12 ready.",
            "Name       Proto      Table      State  Since         Info",
            "edge_ams   BGP        ---        up     23:50:13.066  Established   ",
            "  Channel ipv6",
            "    Route change stats:     received   rejected   filtered    ignored   accepted",
            "      Import updates:              3          0          0          1          2",
            "      Import withdraws:            4          0        ---          1          3",
            "      Export updates:              9          0          0        ---          9",
            "      Export withdraws:            0        ---        ---        ---          0",
            "",
        ].join("\n"));
        assert.deepEqual(importChanges(transit[0]), { updates: 2, withdraws: 3, received: 3 });
        assert.deepEqual(importChanges(undefined), { updates: 0, withdraws: 0, received: 0 });
    });
});

describe("lab report helpers", () => {
    it("tells a reset the route change made in flight from a lost request", () => {
        let seq = 0;
        const at = (sent: number, pop?: string, error?: string): ProbeSample => ({ seq: seq++, sent, done: sent + 2, ok: error === undefined, ...(pop ? { pop } : {}), ...(error ? { error } : {}) });
        const samples = [at(0, "lax"), at(50, "lax"), at(100, undefined, "ECONNRESET"), at(150, "ams"), at(200, "ams"),
            at(250, undefined, "ECONNRESET"), at(300, "ams"), at(350, undefined, "timeout"), at(400, "lax"), at(450, undefined, "ECONNRESET")];
        const failed = samples.filter((s) => !s.ok);
        // Between lax's last answer and ams's first: the switch's. Between two of ams's: lost. A
        // timeout is lost even at a switch; a reset after the last answer has nothing to tell by.
        assert.deepEqual(resetsAtPathSwitch(samples, failed).map((s) => s.sent), [100]);
        assert.deepEqual(resetsAtPathSwitch(samples, []), []);
    });

    it("computes min/median/max", () => {
        assert.deepEqual(stats([5, 1, 3, 2]), { n: 4, min: 1, median: 2.5, max: 5 });
        assert.equal(stats([]), undefined);
    });

    it("marks an exposure probe that connected on its second try, and says why", () => {
        const probe = { protocol: "tcp" as const, from: "PoP icn0 (mesh peer)", source: "pop", to: "origin, mesh", address: "fd00:a:1::1",
            port: 3000, expect: "reached" as const, rule: "the origin's service over the mesh", result: "connected", ok: true };
        const plain = formatExposure({ exposure: [probe], admin: "none" }).join("\n");
        assert.doesNotMatch(plain, /2nd try/);
        const lines = formatExposure({ exposure: [{ ...probe, retried: true }], admin: "none" });
        assert.match(lines.map((l) => l.trim()).join(" "), /2nd try: a connect that should succeed timed out at first/);
        assert.ok(lines.some((l) => /connected \(2nd try\)\s+ok/.test(l)), lines.join("\n"));
        assert.ok(lines.every((l) => l.length <= REPORT_WIDTH), lines.join("\n"));
    });

    it("aligns columns", () => {
        const lines = table(["a", "bb"], [["xxx", "y"]], "");
        assert.deepEqual(lines, ["a    bb", "---  --", "xxx  y"]);
    });

    it("wraps wide tables and prose into 100 columns, and refuses a column without a label", () => {
        const long = "2001:db8:ffff:ffff:ffff:ffff:ffff:1 (a very long cell that has to wrap inside its own column)";
        const lines = table(["from", "to", "rule"], [[long, long, long], ["a", "b", "c"]]);
        assert.ok(lines.every((l) => l.length <= REPORT_WIDTH), lines.join("\n"));
        assert.ok(lines.length > 4, "the long row wraps onto continuation lines");
        assert.throws(() => table(["from", ""], [["a", "b"]]), /column 2 has no label/);
        const para = wrap("word ".repeat(60).trim(), "Note: ", "  ");
        assert.ok(para.every((l) => l.length <= REPORT_WIDTH) && para[0].startsWith("Note: ") && para[1].startsWith("  word"));
    });

    it("formats a whole report within 100 columns, every table with labelled columns", () => {
        const report = JSON.parse(fs.readFileSync(path.join(FIXTURES, "report.json"), "utf8")) as LabReport;
        const text = formatReport(report);
        const over = text.split("\n").filter((l) => l.length > REPORT_WIDTH);
        assert.deepEqual(over, []);
        // A rule line under a header has only dashes: the header above it names every column.
        const lines = text.split("\n");
        lines.forEach((l, i) => {
            if (/^\s*-+( +-+)+$/.test(l)) assert.ok(lines[i - 1].trim().length > 0, `unlabelled table at line ${i}`);
        });
        assert.match(text, /^Result: NOT OK/m);
    });
});

describe("lab plans for generated configs (any valid config, 1 to 8 PoPs)", () => {
    const seeds = Array.from({ length: 40 }, (_, i) => 1000 + i);
    for (const seed of seeds) {
        const config = generateLabConfig(seed);
        it(`plans ${config.summary}`, () => {
            const spec = parseAnycastConfig(config.values);
            const stack = planOnlyStack(spec, spec.firewall.httpSources?.map(String) ?? [...CLOUDFLARE_RANGES_SNAPSHOT.ipv6Cidrs, ...CLOUDFLARE_RANGES_SNAPSHOT.ipv4Cidrs]);
            const plan = designLab(stack);
            assert.equal(plan.regions.length, spec.pops.length);
            assert.deepEqual(plan.families, spec.prefixes.some((p) => p.family === 4) ? [6, 4] : [6]);
            // Clients play colos: inside what the rendered firewall lets in, in both families.
            const sources = stack.httpSources.map((s) => parseCidr(s));
            for (const r of plan.regions) {
                assert.ok(sources.some((s) => contains(s, r.client.address)), `${r.client.address} outside ${stack.httpSources.join(" ")}`);
                if (plan.families.includes(4)) assert.ok(r.client.address4 && sources.some((s) => contains(s, r.client.address4!)));
                assert.equal(r.edge.towardsPop.sessions.length, plan.families.length);
            }
            // The outsider is outside both the HTTP sources and the admin networks.
            assert.ok(!sources.some((s) => contains(s, plan.outsider.address)));
            assert.ok(!spec.firewall.adminCidrs.some((c) => contains(c, plan.outsider.address)));
            // Who plays the admin follows adminCidrs.
            const expected = spec.firewall.adminCidrs.length === 0 ? "anyone"
                : spec.firewall.adminCidrs.some((c) => contains(c, plan.origin.address)) ? "origin" : "namespace";
            assert.equal(plan.admin.kind, expected);
            if (plan.admin.kind === "namespace") {
                assert.ok(spec.firewall.adminCidrs.some((c) => plan.admin.kind === "namespace" && contains(c, plan.admin.client.address)));
            }
            // An address is used once, except on IPv4 PoP links: those stay inside their region (the
            // mock gives every PoP 192.0.2.x with gateway 192.0.2.1, like separate provider networks).
            const routed = (a: { ifname: string; cidr: string }) => a.ifname !== "lo" && !(a.cidr.includes(".") && ["to-pop", "enp1s0"].includes(a.ifname));
            const all = plan.namespaces.flatMap((n) => n.addresses.filter(routed).map((a) => a.cidr.split("/")[0]));
            assert.deepEqual(all.filter((a, i) => all.indexOf(a) !== i), []);
            for (const l of plan.links) for (const end of [l.a, l.b]) assert.ok(end.ifname.length <= 15, end.ifname);
            assert.equal(new Set(plan.namespaces.map((n) => n.name)).size, plan.namespaces.length);
            // The emulated cloud's configs load in BIRD and FRR's renderer takes every edge.
            for (const r of plan.regions) assert.match(renderEdgeFrr(r.edge, 2), new RegExp(`router bgp ${r.edge.publicAsn}`));
            // A private ASN: every edge removes it towards its transit, as Vultr does, and exports from its public AS.
            const privateAsn = /private ASN/.test(config.summary);
            for (const r of plan.regions) {
                assert.equal(r.edge.removesPrivateAsn, privateAsn, r.region);
                assert.equal(r.edge.publicAsn, spec.pops.find((p) => p.name === r.pop.name)!.bgp.publicAsn ?? r.edge.publicAsn);
                assert.equal(/remove-private-AS all/.test(renderEdgeFrr(r.edge, 2)), privateAsn);
                assert.equal(/bgp_path\.delete\(\[64512\.\.65534, 4200000000\.\.4294967294\]\)/.test(renderEdgeBird(r.edge, "/dev/null", 2)), privateAsn);
            }
        });
    }

    it("covers 1 and 8 PoPs, both mesh families, both topologies, an existing host and dual-stack", () => {
        const summaries = seeds.map((s) => generateLabConfig(s).summary).join("\n");
        for (const want of [/ 1 PoP,/, / 8 PoPs,/, /IPv4 \w+ mesh/, /IPv6 \w+ mesh/, /full mesh/, /hub mesh/, /existing-host PoP/, /dual-stack/,
            /Cloudflare sources/, /admin none/, /admin own/, /existing-host PoP.*private ASN/]) {
            assert.match(summaries, want);
        }
    });

    it("stops with one line for what the lab cannot emulate", () => {
        const config = generateLabConfig(7, { existingPop: true, dualStack: false });
        const pops = config.values.pops as Array<Record<string, unknown>>;
        const edgeBox = pops[pops.length - 1] as { bgp: Record<string, unknown> };
        edgeBox.bgp = { ...edgeBox.bgp, multihop: 0 };
        const spec = parseAnycastConfig(config.values);
        assert.throws(() => designLab(planOnlyStack(spec, ["2001:db8:ff00::/40"])), (e: Error) =>
            e.name === "LabPreconditionError" && !e.message.includes("\n") && /bgp\.multihop is 0.*outside the host's network/.test(e.message));
    });
});
