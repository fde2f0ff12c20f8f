/**
 * monitoring/dashboard.json: a Grafana dashboard (JSON model, schema 39, Grafana 10 and later) with
 * a panel per question an operator asks of the network. Import it in Grafana (Dashboards, New,
 * Import) and pick the Prometheus that scrapes the PoPs; `$pop` narrows every panel to some PoPs.
 *
 * Every query is PromQL over the agent's anycast_* series and the exporters' (test/unit/monitoring
 * checks each with promtool and against the names the agent and the exporters really export).
 */

export interface DashboardPanel {
    title: string;
    /** The question it answers, shown as the panel's description. */
    question: string;
    type: "state-timeline" | "timeseries" | "stat" | "bargauge";
    queries: Array<{ expr: string; legend: string }>;
    unit?: string;
    /** Value mappings for 0/1 series. */
    states?: [zero: string, one: string];
    width: number;
    height: number;
}

const POP = 'pop=~"$pop"';

export const DASHBOARD_PANELS: readonly DashboardPanel[] = [
    {
        title: "PoPs announcing", question: "Which PoPs announce the prefix right now, and since when?", type: "state-timeline",
        queries: [{ expr: `max by (pop) (anycast_announced{${POP}})`, legend: "{{pop}}" }], states: ["withdrawn", "announced"], width: 12, height: 7,
    },
    {
        title: "Announcement state", question: "Why is a PoP not announcing: drained, withdrawn by its health, or held down by damping?", type: "state-timeline",
        queries: [{ expr: `max by (pop, state) (anycast_announce_state{${POP}}) == 1`, legend: "{{pop}} {{state}}" }], width: 12, height: 7,
    },
    {
        title: "BGP sessions", question: "Is every PoP's session with its upstream Established?", type: "state-timeline",
        queries: [{ expr: `max by (pop, name) (bird_protocol_up{proto="BGP",${POP}})`, legend: "{{pop}} {{name}}" }], states: ["down", "up"], width: 12, height: 7,
    },
    {
        title: "Routes exported to the upstream", question: "Does each PoP send its prefixes to the upstream?", type: "timeseries",
        queries: [{ expr: `sum by (pop) (bird_protocol_prefix_export_count{proto="BGP",${POP}})`, legend: "{{pop}}" }], unit: "short", width: 12, height: 7,
    },
    {
        title: "Paths to the origins", question: "Which paths (direct over the mesh, or relayed through another PoP) work from each PoP?", type: "state-timeline",
        queries: [{ expr: `max by (pop, path) (anycast_path_up{${POP}})`, legend: "{{pop}} → {{path}}" }], states: ["down", "up"], width: 12, height: 9,
    },
    {
        title: "Path round trip", question: "How far is each origin from each PoP?", type: "timeseries",
        queries: [{ expr: `anycast_path_rtt_seconds{${POP}}`, legend: "{{pop}} → {{path}}" }], unit: "s", width: 12, height: 9,
    },
    {
        title: "Requests by PoP", question: "Where does the traffic land, and where did it go when a PoP left?", type: "timeseries",
        queries: [{ expr: `sum by (pop) (rate(nginx_http_requests_total{${POP}}[$__rate_interval]))`, legend: "{{pop}}" }], unit: "reqps", width: 12, height: 8,
    },
    {
        title: "Open connections", question: "How busy is each proxy?", type: "timeseries",
        queries: [{ expr: `sum by (pop) (nginx_connections_active{${POP}})`, legend: "{{pop}}" }], unit: "short", width: 12, height: 8,
    },
    {
        title: "Failovers", question: "How often did PoPs withdraw because of their health?", type: "timeseries",
        queries: [{ expr: `sum by (pop) (increase(anycast_withdrawals_total{${POP}}[$__rate_interval]))`, legend: "{{pop}}" }], unit: "short", width: 8, height: 8,
    },
    {
        title: "Flap-damping penalty", question: "How close is a PoP to being damped by its upstream (suppressed at 2000)?", type: "timeseries",
        queries: [{ expr: `anycast_damping_penalty{${POP}}`, legend: "{{pop}}" }], unit: "short", width: 8, height: 8,
    },
    {
        title: "WireGuard handshake age", question: "Is every tunnel of the mesh alive (a handshake every 2 minutes)?", type: "timeseries",
        queries: [{ expr: `time() - anycast_wireguard_last_handshake_timestamp_seconds{${POP}}`, legend: "{{pop}} ↔ {{peer}}" }], unit: "s", width: 8, height: 8,
    },
    {
        title: "Check round", question: "How long does each agent's round of checks take?", type: "timeseries",
        queries: [{ expr: `anycast_check_round_seconds{${POP}}`, legend: "{{pop}}" }], unit: "s", width: 12, height: 7,
    },
    {
        title: "Scrape targets", question: "Which agents and exporters does Prometheus reach?", type: "state-timeline",
        queries: [{ expr: `max by (pop, job) (up{${POP}})`, legend: "{{pop}} {{job}}" }], states: ["down", "up"], width: 12, height: 7,
    },
];

const DATASOURCE = { type: "prometheus", uid: "${datasource}" };

/** The dashboard, laid out left to right in rows of 24 columns. */
export function renderDashboard(network: string): string {
    let x = 0;
    let y = 0;
    let rowHeight = 0;
    const panels = DASHBOARD_PANELS.map((p, i) => {
        if (x + p.width > 24) {
            x = 0;
            y += rowHeight;
            rowHeight = 0;
        }
        const gridPos = { x, y, w: p.width, h: p.height };
        x += p.width;
        rowHeight = Math.max(rowHeight, p.height);
        const mappings = p.states ? [{
            type: "value",
            options: {
                "0": { text: p.states[0], color: "red", index: 0 },
                "1": { text: p.states[1], color: "green", index: 1 },
            },
        }] : [];
        return {
            id: i + 1,
            type: p.type,
            title: p.title,
            description: p.question,
            datasource: DATASOURCE,
            gridPos,
            fieldConfig: { defaults: { ...(p.unit ? { unit: p.unit } : {}), mappings, ...(p.states ? { color: { mode: "thresholds" }, thresholds: { mode: "absolute", steps: [{ color: "red", value: null }, { color: "green", value: 1 }] } } : {}) }, overrides: [] },
            options: p.type === "state-timeline" ? { showValue: "never", mergeValues: true, rowHeight: 0.8 } : { legend: { displayMode: "list", placement: "bottom" } },
            targets: p.queries.map((q, j) => ({ refId: String.fromCharCode(65 + j), datasource: DATASOURCE, expr: q.expr, legendFormat: q.legend })),
        };
    });
    const dashboard = {
        uid: "pulumi-anycast",
        title: `Anycast: ${network}`,
        tags: ["anycast", "bgp", "pulumi-anycast"],
        timezone: "browser",
        schemaVersion: 39,
        version: 1,
        editable: true,
        refresh: "30s",
        time: { from: "now-6h", to: "now" },
        templating: {
            list: [
                { name: "datasource", label: "Prometheus", type: "datasource", query: "prometheus", current: {}, hide: 0 },
                {
                    name: "pop", label: "PoP", type: "query", datasource: DATASOURCE, query: { query: "label_values(anycast_announced, pop)", refId: "pop" },
                    definition: "label_values(anycast_announced, pop)", includeAll: true, multi: true, current: { text: "All", value: "$__all" },
                    allValue: ".*", refresh: 2, sort: 1, hide: 0,
                },
            ],
        },
        annotations: { list: [] },
        panels,
    };
    return JSON.stringify(dashboard, null, 2) + "\n";
}
