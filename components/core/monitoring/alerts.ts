/**
 * The alert rules, each with the series that must fire it and the series that must not: one
 * definition, from which both monitoring/alerts.yml (Prometheus' rule file) and
 * monitoring/alerts.test.yml (`promtool test rules`) are rendered. A rule's `for` is counted in
 * scrapes, so the lab (a scrape every half second) and a production Prometheus (every 15 s) run
 * the same rules at their own pace.
 *
 * Labels: every series carries `pop` (the agent's own label, and the scrape target's for the
 * exporters, see prometheus.ts), so an alert always names the PoP it is about.
 */
import { stringify } from "yaml";
import { AGENT_JOB, EXPORTERS } from "./exporters";

export type Severity = "critical" | "warning";

/**
 * A series for promtool: a selector and its values in promtool's notation, one per scrape
 * (`1 1 0 0 1`, `0x_`, `0+SCRAPEx_`). `_` stands for as many scrapes as the test needs, SCRAPE for
 * the scrape interval in seconds (a timestamp that follows the clock).
 */
export type TestSeries = [series: string, values: string];

export interface AlertCase {
    /** What the case is, for the test file's comments and failures. */
    name: string;
    series: TestSeries[];
    /** The labels of each alert expected to fire (besides alertname and severity); none: quiet. */
    fires: Array<Record<string, string>>;
}

export interface AlertRule {
    alert: string;
    severity: Severity;
    /** PromQL. */
    expr: string;
    /** How many scrape intervals the condition must hold before the alert fires. */
    forScrapes: number;
    /** A condition that needs this much time to become true (a handshake's age): the tests evaluate that much later. */
    conditionNeedsMs?: number;
    /** One line; `{{ $labels.x }}` only, so the tests can render the expected annotations. */
    summary: string;
    /** What it means and what to do first. */
    description: string;
    cases: AlertCase[];
}

const { bird, nginx } = EXPORTERS;
const up = (job: string, pop: string, values: string): TestSeries => [`up{job="${job}",pop="${pop}"}`, values];
const announced = (pop: string, values: string): TestSeries => [`anycast_announced{pop="${pop}"}`, values];
const drain = (pop: string, source: string, values: string): TestSeries => [`anycast_drain_requested{pop="${pop}",source="${source}"}`, values];

/** Every alert; the lab checks which of them each experiment fires (lab/monitoring.ts). */
export const ALERT_RULES: readonly AlertRule[] = [
    {
        alert: "AnycastPopWithdrawn", severity: "warning", forScrapes: 4,
        // Not for a drain (meant) nor flap damping's hold (AnycastPopHeldDown says so).
        expr: "(anycast_announced == 0 unless on (pop) max by (pop) (anycast_drain_requested) == 1 unless on (pop) anycast_held_down == 1) " +
            "and on () (sum(anycast_announced) > 0)",
        summary: "PoP {{ $labels.pop }} withdrew the prefix while other PoPs serve",
        description: "Its health agent withdrew the announcement (no origin or proxy, or cut off from the mesh) and nobody asked " +
            "for a drain. Visitors it attracted go to the next PoP. `anycast status` names the reason; `anycast-health status` on the PoP shows the checks.",
        cases: [
            { name: "withdrawn while another serves", series: [announced("lax", "0x_"), announced("ams", "1x_"), drain("lax", "config", "0x_"), drain("lax", "operator", "0x_")], fires: [{ pop: "lax" }] },
            { name: "drained by config", series: [announced("lax", "0x_"), announced("ams", "1x_"), drain("lax", "config", "1x_"), drain("lax", "operator", "0x_")], fires: [] },
            { name: "drained by the operator", series: [announced("lax", "0x_"), announced("ams", "1x_"), drain("lax", "config", "0x_"), drain("lax", "operator", "1x_")], fires: [] },
            { name: "every PoP withdrawn (AnycastAllPopsWithdrawn instead)", series: [announced("lax", "0x_"), announced("ams", "0x_")], fires: [] },
            { name: "held down (AnycastPopHeldDown instead)", series: [announced("lax", "0x_"), announced("ams", "1x_"), drain("lax", "config", "0x_"), drain("lax", "operator", "0x_"), ["anycast_held_down{pop=\"lax\"}", "1x_"]], fires: [] },
            { name: "a short blip", series: [announced("lax", "1 1 0 0 1 1 1 1 1 1 1 1 1"), announced("ams", "1x_")], fires: [] },
        ],
    },
    {
        alert: "AnycastAllPopsWithdrawn", severity: "critical", forScrapes: 2,
        expr: "sum(anycast_announced) == 0",
        summary: "No PoP announces the prefix: the anycast address is unreachable",
        description: "Every PoP Prometheus hears from withdrew (or was drained). Check the origins first: with none reachable " +
            "the agents keep announcing and answer 503, so this means the PoPs themselves (proxy, BIRD) or drains.",
        cases: [
            { name: "all withdrawn", series: [announced("lax", "0x_"), announced("ams", "0x_")], fires: [{}] },
            { name: "one serves", series: [announced("lax", "0x_"), announced("ams", "1x_")], fires: [] },
        ],
    },
    {
        alert: "AnycastBgpSessionDown", severity: "critical", forScrapes: 4,
        expr: `bird_protocol_up{job="${bird.job}",proto="BGP"} == 0`,
        summary: "PoP {{ $labels.pop }}: BGP session {{ $labels.name }} is down",
        description: "BIRD has no Established session with the upstream, so the PoP attracts no traffic whatever its agent decides. " +
            "`birdc show protocols all` on the PoP names the last error (hold timer, BFD, a wrong password).",
        cases: [
            { name: "session down", series: [[`bird_protocol_up{job="${bird.job}",pop="lax",name="vultr",proto="BGP"}`, "0x_"]], fires: [{ pop: "lax", name: "vultr", job: bird.job, proto: "BGP" }] },
            { name: "session up", series: [[`bird_protocol_up{job="${bird.job}",pop="lax",name="vultr",proto="BGP"}`, "1x_"]], fires: [] },
            { name: "a static protocol the agent disabled", series: [[`bird_protocol_up{job="${bird.job}",pop="lax",name="anycast_withdrawn",proto="Static"}`, "0x_"]], fires: [] },
        ],
    },
    {
        alert: "AnycastNoOriginReachable", severity: "critical", forScrapes: 2,
        expr: "max(anycast_origins_reachable) == 0",
        summary: "No PoP reaches any origin: every request gets a 503",
        description: "Every PoP's checks of every origin fail over the mesh. The agents keep announcing (withdrawing everywhere would " +
            "not help), so this is the origins' outage, or the mesh's at the origins' end.",
        cases: [
            { name: "no PoP reaches one", series: [["anycast_origins_reachable{pop=\"lax\"}", "0x_"], ["anycast_origins_reachable{pop=\"ams\"}", "0x_"]], fires: [{}] },
            { name: "one PoP reaches one", series: [["anycast_origins_reachable{pop=\"lax\"}", "0x_"], ["anycast_origins_reachable{pop=\"ams\"}", "1x_"]], fires: [] },
        ],
    },
    {
        alert: "AnycastPopCutOffFromOrigins", severity: "warning", forScrapes: 4,
        expr: "anycast_origins_reachable == 0 and on (pop) anycast_healthy == 1 and on () max(anycast_origins_reachable) > 0",
        summary: "PoP {{ $labels.pop }} reaches no origin itself and serves through another PoP",
        description: "Its own tunnels to the origins are broken while other PoPs reach them: it relays (failover.relay). Look at " +
            "its WireGuard handshakes and the path between it and the origins.",
        cases: [
            { name: "relaying", series: [["anycast_origins_reachable{pop=\"lax\"}", "0x_"], ["anycast_healthy{pop=\"lax\"}", "1x_"], ["anycast_origins_reachable{pop=\"ams\"}", "1x_"]], fires: [{ pop: "lax" }] },
            { name: "reaching them", series: [["anycast_origins_reachable{pop=\"lax\"}", "2x_"], ["anycast_healthy{pop=\"lax\"}", "1x_"]], fires: [] },
            { name: "unhealthy: withdrawn instead", series: [["anycast_origins_reachable{pop=\"lax\"}", "0x_"], ["anycast_healthy{pop=\"lax\"}", "0x_"], ["anycast_origins_reachable{pop=\"ams\"}", "1x_"]], fires: [] },
        ],
    },
    {
        alert: "AnycastPopHeldDown", severity: "warning", forScrapes: 1,
        expr: "anycast_held_down == 1",
        summary: "PoP {{ $labels.pop }} is held down by flap damping",
        description: "It withdrew health.maxWithdrawalsPerHour times within the hour, so its agent keeps it withdrawn even though it is " +
            "healthy, to spare the prefix the upstreams' route-flap damping. Find the cause of the flaps, then `anycast-health release`.",
        cases: [
            { name: "held down", series: [["anycast_held_down{pop=\"lax\"}", "1x_"]], fires: [{ pop: "lax" }] },
            { name: "free", series: [["anycast_held_down{pop=\"lax\"}", "0x_"]], fires: [] },
        ],
    },
    {
        alert: "AnycastBirdUnreachable", severity: "critical", forScrapes: 2,
        expr: "anycast_bird_up == 0",
        summary: "PoP {{ $labels.pop }}: the health agent cannot reach BIRD",
        description: "BIRD's control socket does not answer: BIRD is stopped or restarting, and its sessions with it. " +
            "`systemctl status bird` on the PoP.",
        cases: [
            { name: "BIRD gone", series: [["anycast_bird_up{pop=\"lax\"}", "0x_"]], fires: [{ pop: "lax" }] },
            { name: "BIRD answers", series: [["anycast_bird_up{pop=\"lax\"}", "1x_"]], fires: [] },
        ],
    },
    {
        alert: "AnycastWireGuardHandshakeStale", severity: "warning", forScrapes: 4, conditionNeedsMs: 300_000,
        // WireGuard renews a working session's handshake every 2 minutes (REKEY_AFTER_TIME); the agents'
        // checks keep every tunnel busy, so 5 minutes without one is a broken tunnel.
        expr: "time() - anycast_wireguard_last_handshake_timestamp_seconds > 300",
        summary: "PoP {{ $labels.pop }}: no WireGuard handshake with {{ $labels.peer }} for 5 minutes",
        description: "The tunnel between them is down (an endpoint moved, a firewall, a key that does not match). The PoP fails over " +
            "through other paths meanwhile. `wg show wg0` on both ends.",
        cases: [
            { name: "stale", series: [["anycast_wireguard_last_handshake_timestamp_seconds{pop=\"lax\",peer=\"home\"}", "0x_"]], fires: [{ pop: "lax", peer: "home" }] },
            { name: "renewed", series: [["anycast_wireguard_last_handshake_timestamp_seconds{pop=\"lax\",peer=\"home\"}", "0+SCRAPEx_"]], fires: [] },
        ],
    },
    {
        alert: "AnycastPopUnreachable", severity: "critical", forScrapes: 4,
        expr: `max by (pop) (up{job=~"${AGENT_JOB}|${bird.job}|${nginx.job}"}) == 0`,
        summary: "Prometheus reaches nothing on PoP {{ $labels.pop }}",
        description: "None of its agent and exporters answer over the mesh: the host is down, or its tunnel to this Prometheus. " +
            "Whether it still serves visitors is another question: ask `anycast status`, which also tries its public address.",
        cases: [
            { name: "all targets down", series: [up(AGENT_JOB, "lax", "0x_"), up(bird.job, "lax", "0x_"), up(nginx.job, "lax", "0x_")], fires: [{ pop: "lax" }] },
            { name: "one target down (AnycastExporterDown instead)", series: [up(AGENT_JOB, "lax", "1x_"), up(bird.job, "lax", "0x_"), up(nginx.job, "lax", "1x_")], fires: [] },
        ],
    },
    {
        alert: "AnycastExporterDown", severity: "warning", forScrapes: 4,
        expr: `up{job=~"${AGENT_JOB}|${bird.job}|${nginx.job}"} == 0 unless on (pop) max by (pop) (up{job=~"${AGENT_JOB}|${bird.job}|${nginx.job}"}) == 0`,
        summary: "PoP {{ $labels.pop }}: {{ $labels.job }} does not answer Prometheus",
        description: "The PoP answers, this exporter does not: its service is stopped or cannot bind the mesh address. " +
            "`systemctl status` of it on the PoP (anycast-health, prometheus-bird-exporter or prometheus-nginx-exporter).",
        cases: [
            { name: "bird exporter gone", series: [up(AGENT_JOB, "lax", "1x_"), up(bird.job, "lax", "0x_"), up(nginx.job, "lax", "1x_")], fires: [{ pop: "lax", job: bird.job }] },
            { name: "the whole PoP gone (AnycastPopUnreachable instead)", series: [up(AGENT_JOB, "lax", "0x_"), up(bird.job, "lax", "0x_"), up(nginx.job, "lax", "0x_")], fires: [] },
            { name: "all up", series: [up(AGENT_JOB, "lax", "1x_"), up(bird.job, "lax", "1x_"), up(nginx.job, "lax", "1x_")], fires: [] },
        ],
    },
];

export const ALERT_NAMES = ALERT_RULES.map((r) => r.alert);

/** Prometheus' duration text for whole milliseconds: `15s`, `500ms`, `1m`. */
export function duration(ms: number): string {
    if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
    if (ms % 1000 === 0) return `${ms / 1000}s`;
    return `${Math.round(ms)}ms`;
}

function annotations(r: AlertRule): Record<string, string> {
    return { summary: r.summary, description: r.description };
}

/** monitoring/alerts.yml. */
export function renderAlertRules(scrapeIntervalMs: number, alertRules: readonly AlertRule[] = ALERT_RULES): string {
    const rules = alertRules.map((r) => ({
        alert: r.alert,
        expr: r.expr,
        ...(r.forScrapes > 0 ? { for: duration(r.forScrapes * scrapeIntervalMs) } : {}),
        labels: { severity: r.severity },
        annotations: annotations(r),
    }));
    return "# Alert rules of a pulumi-anycast network, rendered by pulumi-anycast (components/core/monitoring/alerts.ts).\n" +
        "# Checked with `promtool check rules`, unit-tested by alerts.test.yml (`promtool test rules alerts.test.yml`).\n" +
        stringify({ groups: [{ name: "anycast", rules }] }, { lineWidth: 0 });
}

/** `{{ $labels.x }}` filled in from the alert's labels, as Prometheus renders the annotation. */
function expand(template: string, labels: Record<string, string>): string {
    return template.replace(/\{\{ \$labels\.([a-z_]+) \}\}/g, (_, k: string) => labels[k] ?? "");
}

/** monitoring/alerts.test.yml: every case of every rule, evaluated past its `for`. */
export function renderAlertTests(scrapeIntervalMs: number, rulesFile = "alerts.yml", alertRules: readonly AlertRule[] = ALERT_RULES): string {
    const interval = duration(scrapeIntervalMs);
    const tests = alertRules.flatMap((r) => r.cases.map((c) => {
        // Past the rule's `for` and its first evaluation, with a scrape to spare.
        const evalMs = (r.conditionNeedsMs ?? 0) + (r.forScrapes + 3) * scrapeIntervalMs;
        const samples = Math.ceil(evalMs / scrapeIntervalMs) + 2;
        return {
        name: `${r.alert}: ${c.name}`,
        interval,
        input_series: c.series.map(([series, values]) => ({
            series, values: values.replace("SCRAPE", String(scrapeIntervalMs / 1000)).replace(/x_$/, `x${samples}`),
        })),
        alert_rule_test: [{
            eval_time: duration(evalMs),
            alertname: r.alert,
            exp_alerts: c.fires.map((labels) => {
                const all = { ...labels, severity: r.severity };
                return { exp_labels: all, exp_annotations: { summary: expand(r.summary, all), description: expand(r.description, all) } };
            }),
        }],
        };
    }));
    return "# promtool test rules for alerts.yml, rendered by pulumi-anycast with it: the series that must fire each alert,\n" +
        "# and the series that must not.\n" +
        stringify({ rule_files: [rulesFile], evaluation_interval: interval, tests }, { lineWidth: 0 });
}
