/**
 * Prometheus in the lab, where the stack puts it: Debian's prometheus in the monitoring origin's
 * namespace (anycast:monitoring.origin, else the first origin), with the bundle the stack renders
 * (components/core/monitoring), scraping every PoP's agent and exporters over the mesh. Only
 * the scrape interval is the lab's own (LAB_SCRAPE_MS, passed to the renderer): the rules count
 * their `for` in scrapes, so the lab's faults, seconds long, fire the same rules a production
 * Prometheus fires after minutes.
 *
 * Each kind of fault is checked once, on its first run: the fault is held until the alerts it
 * should fire are firing (or a limit passes), and afterwards every alert that started firing
 * during the run is compared with what was expected: the right ones, and no others.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ChildProcess } from "node:child_process";
import { ALERT_NAMES } from "../components/core/monitoring/alerts";
import { PROMETHEUS_LISTEN, prometheusArgv, renderMonitoringBundle, scrapeInputFor } from "../components/core/monitoring/prometheus";
import { nsDir } from "./boot";
import { nsDaemon, nsRun, poll, rethrow, sleep } from "./exec";
import type { LabStack } from "./stack";
import type { LabOrigin } from "./topology";

/** The lab scrapes twice a second: its faults last seconds. */
export const LAB_SCRAPE_MS = 500;
/** How long a fault is held at most for its alerts: a limit, not a measure. */
const ALERT_HOLD_LIMIT_MS = 30_000;

/** An alert as the check names it: its name and, for a PoP's alert, the PoP. */
export interface AlertKey {
    alert: string;
    pop?: string;
}

export function alertText(a: AlertKey): string {
    return a.pop ? `${a.alert}{pop=${a.pop}}` : a.alert;
}

/** What one fault fired, against what it should have. */
export interface AlertCheck {
    experiment: string;
    pop?: string;
    expected: string[];
    /** May fire too, not required (a fault whose side effects last a varying time). */
    allowed?: string[];
    fired: string[];
    missing: string[];
    unexpected: string[];
    /** ms from the fault to the last expected alert firing (the hold), when they all fired. */
    firedAfterMs?: number;
}

export interface AlertsReport {
    /** Where Prometheus ran, and why there. */
    where: string;
    scrapeIntervalMs: number;
    targets: number;
    /** Alerts firing before any fault (none on a healthy network). */
    atRest: string[];
    checks: AlertCheck[];
}

interface Series {
    metric: Record<string, string>;
    values: Array<[number, string]>;
}

export class LabPrometheus {
    private readonly checked = new Set<string>();
    readonly report: AlertsReport;

    private constructor(readonly ns: string, private readonly child: ChildProcess, where: string, targets: number) {
        this.report = { where, scrapeIntervalMs: LAB_SCRAPE_MS, targets, atRest: [], checks: [] };
    }

    /** Render the bundle, start Prometheus in the monitoring origin's namespace, and wait until it scrapes every target. */
    static async start(stack: LabStack, origins: readonly LabOrigin[], timeoutMs: number): Promise<LabPrometheus> {
        const spec = stack.spec;
        const name = spec.monitoring?.origin ?? spec.origins[0].name;
        const origin = origins.find((o) => o.host.name === name) ?? origins[0];
        const dir = path.join(nsDir(origin.ns), "prometheus");
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(path.join(dir, "data"), { recursive: true });
        const bundle = renderMonitoringBundle(scrapeInputFor(spec, LAB_SCRAPE_MS));
        for (const file of ["prometheus.yml", "alerts.yml"] as const) fs.writeFileSync(path.join(dir, file), bundle[file]);
        const argv = prometheusArgv({ configFile: path.join(dir, "prometheus.yml"), storage: path.join(dir, "data"), listen: PROMETHEUS_LISTEN, retentionDays: 1 });
        const child = nsDaemon(origin.ns, argv, path.join(dir, "prometheus.log"));
        const targets = spec.pops.length * 3;
        const where = spec.monitoring ? `origin ${origin.host.name} (anycast:monitoring.origin)`
            : `origin ${origin.host.name} (the first origin: the config has no anycast:monitoring)`;
        const p = new LabPrometheus(origin.ns, child, where, targets);
        let scraped: string | number = 0;
        const allUp = await poll(async () => {
            if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${tail(path.join(dir, "prometheus.log"))}`);
            const up = await p.query("count(up == 1)").catch(() => undefined);
            scraped = up?.[0]?.values[0]?.[1] ?? 0;
            return up !== undefined && Number(scraped) >= targets;
        }, timeoutMs, 250, rethrow);
        if (!allUp) throw new Error(`prometheus in ${origin.ns} scraped ${scraped} of ${targets} targets after ${timeoutMs / 1000} s`);
        p.report.atRest = (await p.firing()).map(alertText);
        return p;
    }

    /** An instant query (or a range query with `range`), as series. */
    async query(expr: string, range?: { startS: number; endS: number; stepS: number }): Promise<Series[]> {
        const params = new URLSearchParams({ query: expr, ...(range ? { start: String(range.startS), end: String(range.endS), step: String(range.stepS) } : {}) });
        const url = `http://${PROMETHEUS_LISTEN}/api/v1/${range ? "query_range" : "query"}?${params}`;
        const r = await nsRun(this.ns, "curl", ["-sf", "--max-time", "5", url], { timeoutMs: 8000 });
        const body = JSON.parse(r.stdout) as { status: string; data: { resultType: string; result: Array<{ metric: Record<string, string>; value?: [number, string]; values?: Array<[number, string]> }> } };
        if (body.status !== "success") throw new Error(`prometheus: ${r.stdout.slice(0, 200)}`);
        return body.data.result.map((s) => ({ metric: s.metric, values: s.values ?? (s.value ? [s.value] : []) }));
    }

    /** The alerts firing now. */
    async firing(): Promise<AlertKey[]> {
        const series = await this.query('ALERTS{alertstate="firing"}');
        return series.map((s) => keyOf(s.metric));
    }

    /**
     * Start the check of a fault, once per kind of fault: the first run is checked, later runs not
     * (undefined), so the lab's other runs keep their pace.
     */
    beginCheck(experiment: string, pop: string | undefined, expected: AlertKey[], allowed: AlertKey[] = []): FaultAlerts | undefined {
        if (this.checked.has(experiment)) return undefined;
        this.checked.add(experiment);
        return new FaultAlerts(this, experiment, pop, expected, allowed);
    }

    record(check: AlertCheck): void {
        this.report.checks.push(check);
    }

    stop(): void {
        if (this.child.pid && this.child.exitCode === null) {
            try {
                process.kill(this.child.pid, "SIGTERM");
            } catch {
                // already gone
            }
        }
    }
}

/** One fault's alerts, from its start. */
export class FaultAlerts {
    private readonly startS = Date.now() / 1000;
    private firedAfterMs?: number;

    constructor(private readonly prometheus: LabPrometheus, private readonly experiment: string, private readonly pop: string | undefined,
        private readonly expected: AlertKey[], private readonly allowed: AlertKey[]) {
        for (const a of [...expected, ...allowed]) if (!ALERT_NAMES.includes(a.alert)) throw new Error(`${experiment}: ${a.alert} is not an alert of the bundle`);
    }

    /** Keep the fault until every expected alert fires (at most ALERT_HOLD_LIMIT_MS). */
    async hold(): Promise<void> {
        const t0 = Date.now();
        const want = new Set(this.expected.map(alertText));
        while (Date.now() - t0 < ALERT_HOLD_LIMIT_MS) {
            const firing = new Set((await this.prometheus.firing().catch(() => [])).map(alertText));
            if ([...want].every((a) => firing.has(a))) {
                this.firedAfterMs = Date.now() - this.startS * 1000;
                return;
            }
            await sleep(LAB_SCRAPE_MS / 2);
        }
    }

    /** After the repair: every alert that started firing since the fault, against the expected ones. */
    async finish(): Promise<AlertCheck> {
        const endS = Date.now() / 1000;
        const stepS = LAB_SCRAPE_MS / 1000;
        const series = await this.prometheus.query('ALERTS{alertstate="firing"}', { startS: this.startS - 5, endS, stepS }).catch(() => []);
        // Started during the fault: no sample before its start (one that fired before it is not this fault's).
        const fired = [...new Set(series.filter((s) => s.values.length > 0 && s.values[0][0] >= this.startS)
            .map((s) => alertText(keyOf(s.metric))))].sort();
        const expected = this.expected.map(alertText).sort();
        const allowed = this.allowed.map(alertText);
        const check: AlertCheck = {
            experiment: this.experiment, ...(this.pop ? { pop: this.pop } : {}), expected, ...(allowed.length ? { allowed } : {}), fired,
            missing: expected.filter((a) => !fired.includes(a)), unexpected: fired.filter((a) => !expected.includes(a) && !allowed.includes(a)),
            ...(this.firedAfterMs !== undefined ? { firedAfterMs: Math.round(this.firedAfterMs) } : {}),
        };
        this.prometheus.record(check);
        return check;
    }
}

function keyOf(metric: Record<string, string>): AlertKey {
    return { alert: metric.alertname, ...(metric.pop ? { pop: metric.pop } : {}) };
}

function tail(file: string): string {
    try {
        return fs.readFileSync(file, "utf8").trim().split("\n").slice(-3).join(" | ");
    } catch {
        return "no log";
    }
}

/** The report's problems from the checks. */
export function alertProblems(r: AlertsReport): string[] {
    const problems: string[] = [];
    if (r.atRest.length > 0) problems.push(`alerts firing before any fault: ${r.atRest.join(", ")}`);
    for (const c of r.checks) {
        if (c.missing.length > 0) problems.push(`${c.experiment}${c.pop ? ` on ${c.pop}` : ""}: expected alerts did not fire: ${c.missing.join(", ")}`);
        if (c.unexpected.length > 0) problems.push(`${c.experiment}${c.pop ? ` on ${c.pop}` : ""}: alerts fired that it should not: ${c.unexpected.join(", ")}`);
    }
    return problems;
}

/** The report's section. */
export function formatAlerts(r: AlertsReport): string[] {
    const lines = [`Alerts: Prometheus on ${r.where}, scraping ${r.targets} targets over the mesh every ${r.scrapeIntervalMs} ms, ` +
        "with the rendered rules (each `for` counted in scrapes)"];
    lines.push(`  before any fault: ${r.atRest.length ? r.atRest.join(", ") : "none firing"}`);
    for (const c of r.checks) {
        const verdict = c.missing.length === 0 && c.unexpected.length === 0 ? "ok" : "WRONG";
        lines.push(`  ${c.experiment}${c.pop ? ` on ${c.pop}` : ""}: fired ${c.fired.length ? c.fired.join(", ") : "nothing"}` +
            `${c.firedAfterMs !== undefined && c.expected.length ? ` (after ${(c.firedAfterMs / 1000).toFixed(1)} s)` : ""}; ` +
            `expected ${c.expected.length ? c.expected.join(", ") : "nothing"}${c.allowed ? ` (${c.allowed.join(", ")} may fire too)` : ""}: ${verdict}`);
    }
    return lines;
}
