/**
 * The monitoring bundle: prometheus.yml (every PoP's agent and exporters, over the mesh), the
 * alert rules and their tests (alerts.ts) and a Grafana dashboard (dashboard.ts). `anycast render`
 * writes it to monitoring/ for the user's own Prometheus; with `anycast:monitoring` the stack
 * pushes it to an origin, where Debian's Prometheus runs it (the drop-in below); the lab runs the
 * same files in the origin's namespace.
 */
import { stringify } from "yaml";
import { renderAlertRules, renderAlertTests, duration } from "./alerts";
import { renderDashboard } from "./dashboard";
import { AGENT_JOB, EXPORTERS, listenAddress } from "./exporters";
import type { AnycastSpec } from "../model";

/** Where the origin's Prometheus has its files: its own, not the package's conffiles. */
export const PROMETHEUS_PATHS = {
    dir: "/etc/anycast/prometheus",
    config: "/etc/anycast/prometheus/prometheus.yml",
    rules: "/etc/anycast/prometheus/alerts.yml",
    /** Debian's own storage directory, which the package creates for its user. */
    storage: "/var/lib/prometheus/metrics2",
} as const;

/** The rule file as prometheus.yml names it: beside it, so the bundle works wherever it is copied. */
export const RULES_FILE = "alerts.yml";

/** Prometheus' own listener on the monitoring origin: loopback (reach it with `ssh -L 9090:localhost:9090`). */
export const PROMETHEUS_LISTEN = "127.0.0.1:9090";

export interface ScrapedPop {
    name: string;
    meshAddress: string;
    /** The Vultr region, or undefined for an existing host. */
    region?: string;
}

export interface PrometheusConfigInput {
    /** The network's name in Prometheus (external label `anycast`): the site's hostname. */
    network: string;
    pops: readonly ScrapedPop[];
    /** health.statusPort: the agents' /metrics. */
    statusPort: number;
    scrapeIntervalMs: number;
    /** host:port of Alertmanagers to send the alerts to. */
    alertmanagers?: readonly string[];
}

/** Prometheus' default, and the bundle's when the stack has no `anycast:monitoring`. */
export const DEFAULT_SCRAPE_INTERVAL_S = 15;

/**
 * What the bundle scrapes for this stack: every PoP. `scrapeIntervalMs` overrides the config's
 * interval (the lab scrapes faster, to see its short faults).
 */
export function scrapeInputFor(spec: Pick<AnycastSpec, "pops" | "frontDoor" | "health" | "monitoring">, scrapeIntervalMs?: number): PrometheusConfigInput {
    return {
        network: spec.frontDoor.hostname,
        pops: spec.pops.map((p) => ({ name: p.name, meshAddress: p.meshAddress.toString(), ...(p.host.kind === "vultr" ? { region: p.host.region } : {}) })),
        statusPort: spec.health.statusPort,
        scrapeIntervalMs: scrapeIntervalMs ?? (spec.monitoring?.scrapeInterval ?? DEFAULT_SCRAPE_INTERVAL_S) * 1000,
        alertmanagers: spec.monitoring?.alertmanagers ?? [],
    };
}

/** monitoring/prometheus.yml. */
export function renderPrometheusConfig(input: PrometheusConfigInput): string {
    const interval = duration(input.scrapeIntervalMs);
    // A scrape must end before the next one starts; Prometheus' default timeout is 10 s.
    const timeout = duration(Math.min(10_000, input.scrapeIntervalMs));
    const job = (name: string, port: number, extra: Record<string, unknown> = {}) => ({
        job_name: name,
        scrape_timeout: timeout,
        ...extra,
        static_configs: input.pops.map((p) => ({
            targets: [listenAddress(p.meshAddress, port)],
            labels: { pop: p.name, ...(p.region ? { region: p.region } : {}) },
        })),
    });
    const config = {
        global: { scrape_interval: interval, evaluation_interval: interval, external_labels: { anycast: input.network } },
        rule_files: [RULES_FILE],
        ...(input.alertmanagers?.length ? { alerting: { alertmanagers: [{ static_configs: [{ targets: [...input.alertmanagers] }] }] } } : {}),
        scrape_configs: [
            // The agent labels its own samples with its PoP (`pop`): honour them.
            job(AGENT_JOB, input.statusPort, { honor_labels: true }),
            job(EXPORTERS.bird.job, EXPORTERS.bird.port),
            job(EXPORTERS.nginx.job, EXPORTERS.nginx.port),
        ],
    };
    return `# Prometheus for the pulumi-anycast network ${input.network}, rendered by pulumi-anycast (components/core/monitoring/prometheus.ts).\n` +
        "# It scrapes every PoP over the WireGuard mesh, the only network their agents and exporters answer on:\n" +
        "# run it on a host in the mesh (anycast:monitoring puts it on an origin). Checked with `promtool check config`.\n" +
        stringify(config, { lineWidth: 0 });
}

export type MonitoringFile = "prometheus.yml" | "alerts.yml" | "alerts.test.yml" | "dashboard.json";

/** Every file of the bundle, by name. */
export function renderMonitoringBundle(input: PrometheusConfigInput): Record<MonitoringFile, string> {
    return {
        "prometheus.yml": renderPrometheusConfig(input),
        "alerts.yml": renderAlertRules(input.scrapeIntervalMs),
        "alerts.test.yml": renderAlertTests(input.scrapeIntervalMs, RULES_FILE),
        "dashboard.json": renderDashboard(input.network),
    };
}

export interface PrometheusServerOptions {
    configFile: string;
    storage: string;
    listen: string;
    retentionDays: number;
}

/** Prometheus' command line (program first). */
export function prometheusArgv(o: PrometheusServerOptions): string[] {
    return ["/usr/bin/prometheus", `--config.file=${o.configFile}`, `--storage.tsdb.path=${o.storage}`,
        `--storage.tsdb.retention.time=${o.retentionDays}d`, `--web.listen-address=${o.listen}`];
}

/** The origin's drop-in for Debian's prometheus.service: our files instead of the package's. */
export function renderPrometheusDropIn(retentionDays: number): string {
    const argv = prometheusArgv({ configFile: PROMETHEUS_PATHS.config, storage: PROMETHEUS_PATHS.storage, listen: PROMETHEUS_LISTEN, retentionDays });
    return [
        "# prometheus for pulumi-anycast, rendered from the stack: do not edit on the host.",
        `# It reads ${PROMETHEUS_PATHS.config} and listens on ${PROMETHEUS_LISTEN} only.`,
        "[Unit]",
        // Its targets are across the mesh.
        "After=wg-quick@wg0.service",
        // Installed before the package and before our config: the package's own first start is
        // then skipped (not a crash loop on a missing file), and the config's push starts it.
        `ConditionPathExists=${PROMETHEUS_PATHS.config}`,
        "",
        "[Service]",
        "ExecStart=",
        `ExecStart=${argv.join(" ")}`,
        "",
    ].join("\n");
}
