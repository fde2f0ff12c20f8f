/**
 * The monitoring bundle against the real promtool (Debian's prometheus package): the config and
 * the rules load, every alert fires on the series it is for and stays quiet on the others, a
 * broken rule fails its tests, and every series the alerts and the dashboard read is one the
 * agent or an exporter really exports (test/fixtures/metrics, recorded from the lab's PoPs).
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { stringify } from "yaml";
import { ConfigError, parseAnycastConfig } from "../../components/core/config";
import { ALERT_RULES, AlertRule, renderAlertRules, renderAlertTests } from "../../components/core/monitoring/alerts";
import { DASHBOARD_PANELS } from "../../components/core/monitoring/dashboard";
import { exporterArgv, renderExporterDropIn } from "../../components/core/monitoring/exporters";
import { renderMonitoringBundle, renderPrometheusDropIn, scrapeInputFor } from "../../components/core/monitoring/prometheus";
import { handshakesFromDump, renderHandshakeMetrics } from "../../components/core/health/metrics";
import { ARTIFACTS, pushScript } from "../../components/core/artifacts";
import { generateLabConfig } from "../helpers/labconfig";
import { labSpec, prodSpec, rawConfigOf, TEST_SSH_PRIVATE_KEY } from "../helpers/fixtures";
import { needTools, tempDir } from "../helpers/tools";

const REPO = path.resolve(__dirname, "..", "..", "..");
const FIXTURES = path.join(REPO, "test", "fixtures", "metrics");

function promtool(args: string[], cwd: string): { code: number; out: string } {
    const r = spawnSync("promtool", args, { cwd, encoding: "utf8", timeout: 60_000 });
    return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** The bundle of `spec` written to a fresh directory; the caller removes it. */
function writeBundle(files: Record<string, string>): string {
    const dir = tempDir("monitoring");
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    return dir;
}

function checkBundle(files: Record<string, string>): void {
    const dir = writeBundle(files);
    try {
        for (const args of [["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]]) {
            const r = promtool(args, dir);
            assert.equal(r.code, 0, `promtool ${args.join(" ")}:\n${r.out}`);
        }
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** Metric names in a PromQL expression (identifiers followed by `{`, `[`, `)` or a space, not functions or keywords). */
function metricNames(expr: string): string[] {
    const words = expr.replace(/"[^"]*"/g, "\"\"").match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
    const notMetrics = new Set(["max", "min", "sum", "count", "by", "on", "and", "or", "unless", "time", "rate", "increase", "bool",
        "pop", "state", "name", "path", "job", "proto", "peer", "__rate_interval", "group_left", "without"]);
    return words.filter((w) => !notMetrics.has(w) && /_/.test(w) && !/^\$/.test(w));
}

function exportedNames(text: string): Set<string> {
    return new Set(text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(/[{ ]/)[0]));
}

describe("the monitoring bundle", () => {
    it("loads in promtool, and every alert's cases pass, for the prod and lab stacks and seeded configs", (t) => {
        if (!needTools(t, "promtool")) return;
        checkBundle(renderMonitoringBundle(scrapeInputFor(prodSpec())));
        checkBundle(renderMonitoringBundle(scrapeInputFor(labSpec(), 500)));
        for (const seed of [3, 11, 29]) {
            const spec = parseAnycastConfig(generateLabConfig(seed).values);
            checkBundle(renderMonitoringBundle(scrapeInputFor(spec)));
        }
    });

    it("a rule that is wrong fails its own tests", (t) => {
        if (!needTools(t, "promtool")) return;
        // The BGP alert inverted: it would fire on every up session and miss the down one.
        const broken: AlertRule[] = ALERT_RULES.map((r) => (r.alert === "AnycastBgpSessionDown" ? { ...r, expr: r.expr.replace("== 0", "== 1") } : r));
        const dir = writeBundle({ "alerts.yml": renderAlertRules(15_000, broken), "alerts.test.yml": renderAlertTests(15_000, "alerts.yml", broken) });
        try {
            const r = promtool(["test", "rules", "alerts.test.yml"], dir);
            assert.notEqual(r.code, 0, r.out);
            assert.match(r.out, /AnycastBgpSessionDown/);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("every alert has a case that fires it and one that does not; the issue's six questions each have an alert", () => {
        for (const r of ALERT_RULES) {
            assert.ok(r.cases.some((c) => c.fires.length > 0), `${r.alert} has no firing case`);
            assert.ok(r.cases.some((c) => c.fires.length === 0), `${r.alert} has no quiet case`);
        }
        const names = ALERT_RULES.map((r) => r.alert);
        for (const wanted of ["AnycastPopWithdrawn", "AnycastBgpSessionDown", "AnycastNoOriginReachable", "AnycastPopHeldDown",
            "AnycastWireGuardHandshakeStale", "AnycastExporterDown"]) assert.ok(names.includes(wanted), wanted);
    });

    it("scales `for` with the scrape interval: the lab's rules wait the same number of scrapes", () => {
        assert.match(renderAlertRules(15_000), /alert: AnycastPopWithdrawn\n\s+expr: .*\n\s+for: 1m\n/);
        assert.match(renderAlertRules(500), /alert: AnycastPopWithdrawn\n\s+expr: .*\n\s+for: 2s\n/);
    });

    it("reads only series the agent and the exporters export (recorded from the lab's PoPs)", () => {
        const exported = new Set([
            ...exportedNames(fs.readFileSync(path.join(FIXTURES, "agent.txt"), "utf8")),
            ...exportedNames(renderHandshakeMetrics("lax", [{ peer: "origin", lastHandshake: 1 }])),
            ...exportedNames(fs.readFileSync(path.join(FIXTURES, "bird-exporter.txt"), "utf8")),
            ...exportedNames(fs.readFileSync(path.join(FIXTURES, "nginx-exporter.txt"), "utf8")),
            "up",
        ]);
        const exprs = [...ALERT_RULES.map((r) => [r.alert, r.expr]), ...DASHBOARD_PANELS.flatMap((p) => p.queries.map((q) => [p.title, q.expr]))];
        for (const [where, expr] of exprs) {
            for (const name of metricNames(expr)) assert.ok(exported.has(name), `${where}: ${name} is exported by nobody`);
        }
    });

    it("the dashboard's queries are PromQL promtool accepts, one panel per question", (t) => {
        const dashboard = JSON.parse(renderMonitoringBundle(scrapeInputFor(prodSpec()))["dashboard.json"]);
        assert.equal(dashboard.panels.length, DASHBOARD_PANELS.length);
        for (const p of dashboard.panels) {
            assert.ok(p.description && p.targets.length > 0 && p.gridPos.w > 0, p.title);
            assert.equal(p.datasource.uid, "${datasource}");
        }
        const titles = dashboard.panels.map((p: { title: string }) => p.title);
        for (const q of ["PoPs announcing", "BGP sessions", "Paths to the origins", "Requests by PoP", "Failovers"]) assert.ok(titles.includes(q), q);
        if (!needTools(t, "promtool")) return;
        // Each query as a recording rule, with Grafana's variables filled in as Grafana would.
        const rules = DASHBOARD_PANELS.flatMap((p, i) => p.queries.map((q, j) => ({
            record: `dashboard:panel${i}_${j}`, expr: q.expr.replace(/\$__rate_interval/g, "1m").replace(/\$pop/g, ".*"),
        })));
        const dir = writeBundle({ "dashboard-queries.yml": stringify({ groups: [{ name: "dashboard", rules }] }) });
        try {
            const r = promtool(["check", "rules", "dashboard-queries.yml"], dir);
            assert.equal(r.code, 0, r.out);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("the agent's /metrics, recorded from a lab PoP, passes promtool check metrics", (t) => {
        if (!needTools(t, "promtool")) return;
        const text = fs.readFileSync(path.join(FIXTURES, "agent.txt"), "utf8");
        const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8", timeout: 60_000 });
        assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
        assert.match(text, /^anycast_announced\{pop="lax"\} 1$/m);
        assert.match(text, /^anycast_wireguard_last_handshake_timestamp_seconds\{pop="lax",peer="origin"\} \d{10}$/m, "the handshakes, read with wg");
    });

    it("names WireGuard peers by their mesh address in `wg show dump`", () => {
        const dump = ["PRIV\tPUB\t51820\toff",
            "pubA=\t(none)\t[2001:db8::1]:51820\tfd00:a:1::1/128\t1765000000\t10\t20\t25",
            "pubB=\t(none)\t(none)\t10.77.0.3/32,10.9.0.0/24\t0\t0\t0\toff",
            "pubC=\t(none)\t(none)\tfd00:a:1::9/128\t5\t0\t0\toff"].join("\n");
        assert.deepEqual(handshakesFromDump(dump, [{ name: "origin", meshAddress: "fd00:a:1::1" }, { name: "ams", meshAddress: "10.77.0.3" }]),
            [{ peer: "origin", lastHandshake: 1765000000 }, { peer: "ams", lastHandshake: 0 }, { peer: "pubC=", lastHandshake: 5 }]);
    });

    it("scrapes every PoP's agent and exporters on its mesh address, labelled with its name and region", () => {
        const text = renderMonitoringBundle(scrapeInputFor(prodSpec()))["prometheus.yml"];
        for (const pop of prodSpec().pops) {
            for (const port of [9180, 9324, 9113]) assert.ok(text.includes(`- ${pop.meshAddress}:${port}\n`), `${pop.name}:${port}`);
        }
        assert.match(text, /labels:\n\s+pop: lax\n\s+region: lax\n/);
        assert.doesNotMatch(text, /alerting:/, "no Alertmanager unless configured");
        const withAm = renderMonitoringBundle({ ...scrapeInputFor(prodSpec()), alertmanagers: ["[2001:db8::9]:9093"] })["prometheus.yml"];
        assert.match(withAm, /alertmanagers:\n\s+- static_configs:\n\s+- targets:\n\s+- "\[2001:db8::9\]:9093"/);
    });
});

describe("the exporters and Prometheus on the hosts", () => {
    it("listen on the mesh address only, BIRD's exporter in BIRD 2 mode on Debian's socket", () => {
        const drop = renderExporterDropIn("bird", "fd00:a:1::2");
        assert.match(drop, /^ExecStart=$/m, "the package's command line is cleared first");
        assert.match(drop, /^ExecStart=\/usr\/bin\/prometheus-bird-exporter -bird\.v2 -format\.new -bird\.socket=\/run\/bird\/bird\.ctl -web\.listen-address=\[fd00:a:1::2\]:9324$/m);
        assert.match(renderExporterDropIn("nginx", "10.77.0.2"), /-nginx\.scrape-uri=http:\/\/127\.0\.0\.1:9145\/stub_status .*-web\.listen-address=10\.77\.0\.2:9113$/m);
        assert.deepEqual(exporterArgv("bird", "fd00::2", { birdSocket: "/run/anycast-lab/x/bird.ctl", stubStatusUrl: "" }).slice(3, 4),
            ["-bird.socket=/run/anycast-lab/x/bird.ctl"]);
        assert.match(renderPrometheusDropIn(30), /--config\.file=\/etc\/anycast\/prometheus\/prometheus\.yml .*--storage\.tsdb\.retention\.time=30d --web\.listen-address=127\.0\.0\.1:9090$/m);
    });

    it("a drop-in lands before its package, so the package's first start already listens where it should", () => {
        for (const name of ["bird-exporter.conf", "nginx-exporter.conf", "prometheus.conf"] as const) {
            const script = pushScript(ARTIFACTS[name]);
            assert.ok(script.indexOf(`mv -f ${ARTIFACTS[name].remotePath}.anycast-new`) < script.indexOf("apt-get"), name);
        }
        // Files whose check needs their package keep the usual order.
        const agent = pushScript(ARTIFACTS["anycast-health"]);
        assert.ok(agent.indexOf("apt-get") < agent.indexOf("node \"$new\" version"));
    });
});

describe("anycast:monitoring", () => {
    const prod = () => ({ ...structuredClone(rawConfigOf("Pulumi.prod.yaml")), bgpPassword: "test-bgp-password", sshPrivateKey: TEST_SSH_PRIVATE_KEY }) as Record<string, any>;
    const problems = (raw: Record<string, unknown>): string[] => {
        try {
            parseAnycastConfig(raw);
            return [];
        } catch (e) {
            if (!(e instanceof ConfigError)) throw e;
            return e.issues.map((i) => `${i.key}: ${i.message}`);
        }
    };

    it("takes an origin of the stack, with defaults", () => {
        const raw = { ...prod(), monitoring: { origin: "origin" } };
        assert.deepEqual(parseAnycastConfig(raw).monitoring, { origin: "origin", scrapeInterval: 15, retentionDays: 15, alertmanagers: [] });
        const without = prod();
        delete without.monitoring;
        assert.equal(parseAnycastConfig(without).monitoring, undefined);
    });

    it("refuses a host that is not in the mesh, naming the key", () => {
        const [p] = problems({ ...prod(), monitoring: { origin: "prometheus.example.com" } });
        assert.match(p, /^anycast:monitoring\.origin: "prometheus\.example\.com" is not an origin of this stack \(origin\): Prometheus must run on a host in the mesh/);
    });

    it("refuses a non-hub origin in a hub mesh, and bad values with their key", () => {
        const hub = { ...prod(), mesh: { ...prod().mesh, topology: "hub" }, failover: { relay: false },
            origins: [{ ...(prod().origin as object), name: "home" }, { name: "backup", region: "ams", port: 8080 }], monitoring: { origin: "backup" } };
        delete (hub as Record<string, unknown>).origin;
        assert.ok(problems(hub).some((p) => /^anycast:monitoring\.origin: "backup" has no tunnel to the PoPs in a hub mesh \(only the hub home has\)/.test(p)), problems(hub).join("\n"));
        const bad = problems({ ...prod(), monitoring: { origin: "origin", scrapeInterval: 0, alertmanagers: ["am"], retention: 3 } });
        assert.ok(bad.some((p) => p.startsWith("anycast:monitoring.scrapeInterval:")), bad.join("\n"));
        assert.ok(bad.some((p) => p.startsWith("anycast:monitoring.alertmanagers[0]:")), bad.join("\n"));
        assert.ok(bad.some((p) => p.startsWith("anycast:monitoring") && /retention/.test(p)), bad.join("\n"));
    });
});
