/**
 * Reading BIRD's state through `birdc -s <socket>`: parsers for `show protocols all` and
 * `show route ... all` (pure, unit-tested on captured output), plus the calls themselves.
 */
import { nsRun } from "./exec";

export interface ProtocolStatus {
    name: string;
    proto: string;
    /** up / down / start ... as in the table line. */
    state: string;
    since: string;
    /** The table line's info column: "Established", "Active", "Connect", ... */
    info: string;
    /** "BGP state" for BGP protocols. */
    bgpState?: string;
    neighborAddress?: string;
    neighborAs?: string;
    lastError?: string;
    holdTimer?: string;
    routes?: { imported: number; filtered?: number; exported: number; preferred?: number };
    /** Every `key: value` detail line, for the report's "why not". */
    details: Record<string, string>;
}

/** Parse `birdc show protocols all`. */
export function parseProtocols(text: string): ProtocolStatus[] {
    const out: ProtocolStatus[] = [];
    let current: ProtocolStatus | undefined;
    for (const line of text.split("\n")) {
        if (/^BIRD .* ready\.$/.test(line) || /^Name\s+Proto\s+Table/.test(line) || line.trim() === "") continue;
        const head = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+(?: \S+)?)\s*(.*)$/.exec(line);
        if (!/^\s/.test(line) && head) {
            // Since may be "12:00:00.000" or "2024-01-01 12:00:00": the info column follows it.
            const [, name, proto, , state, rest, info] = head;
            const sinceMatch = /^(\S+)(?: (\S+))?$/.exec(rest);
            let since = rest;
            let infoText = info;
            if (sinceMatch && sinceMatch[2] && !/^\d/.test(sinceMatch[2])) {
                since = sinceMatch[1];
                infoText = `${sinceMatch[2]} ${info}`.trim();
            }
            current = { name, proto, state, since, info: infoText.trim(), details: {} };
            out.push(current);
            continue;
        }
        if (!current) continue;
        const kv = /^\s+([A-Za-z][A-Za-z0-9 ._-]*?):\s*(.*)$/.exec(line);
        if (!kv) continue;
        const [, key, value] = kv;
        if (!(key in current.details)) current.details[key] = value;
        switch (key) {
            case "BGP state": current.bgpState = value; break;
            case "Neighbor address": current.neighborAddress = value; break;
            case "Neighbor AS": current.neighborAs = value; break;
            case "Last error": current.lastError = value; break;
            case "Hold timer": current.holdTimer = value; break;
            case "Routes": {
                const n = (what: string) => {
                    const m = new RegExp(`(\\d+) ${what}`).exec(value);
                    return m ? Number(m[1]) : undefined;
                };
                current.routes = { imported: n("imported") ?? 0, filtered: n("filtered"), exported: n("exported") ?? 0, preferred: n("preferred") };
                break;
            }
        }
    }
    return out;
}

export interface RouteEntry {
    network: string;
    /** The protocol the route came from. */
    from: string;
    best: boolean;
    preference: number;
    asPath: string;
    localPref?: number;
    communities: string;
    via?: string;
}

/** Parse `birdc show route ... all` (every route for every network shown). */
export function parseRoutes(text: string): RouteEntry[] {
    const out: RouteEntry[] = [];
    let network = "";
    let current: RouteEntry | undefined;
    for (const line of text.split("\n")) {
        const head = /^(\S+)?\s+(?:unicast|unreachable|blackhole|prohibited)\s+\[(\S+)[^\]]*\]\s+(\*\s+)?\((\d+)\)/.exec(line);
        if (head && !/^\t/.test(line)) {
            if (head[1]) network = head[1];
            current = { network, from: head[2], best: !!head[3], preference: Number(head[4]), asPath: "", communities: "" };
            out.push(current);
            continue;
        }
        if (!current) continue;
        const via = /^\s+via (\S+)/.exec(line);
        if (via) current.via = via[1];
        const attr = /^\s+BGP\.(as_path|local_pref|community):\s*(.*)$/.exec(line);
        if (attr) {
            if (attr[1] === "as_path") current.asPath = attr[2].trim();
            else if (attr[1] === "local_pref") current.localPref = Number(attr[2]);
            else current.communities = attr[2].trim();
        }
    }
    return out;
}

export async function birdc(ns: string, socket: string, command: string, timeoutMs = 5000): Promise<string> {
    const res = await nsRun(ns, "birdc", ["-s", socket, ...command.split(" ")], { timeoutMs, allowFail: true });
    if (res.code !== 0) {
        const why = (res.stderr || res.stdout).split("\n").map((l) => l.trim()).filter((l) => l && !/^BIRD .* ready\.$/.test(l));
        throw new Error(`birdc ${command} in ${ns}: ${why.join(" ") || `exit ${res.code}`}`);
    }
    return res.stdout;
}

export async function showProtocols(ns: string, socket: string): Promise<ProtocolStatus[]> {
    return parseProtocols(await birdc(ns, socket, "show protocols all"));
}

export async function showRoutes(ns: string, socket: string, prefix: string): Promise<RouteEntry[]> {
    try {
        return parseRoutes(await birdc(ns, socket, `show route ${prefix} all`));
    } catch (e) {
        // birdc exits 1 for a network with no route at all: that is an answer, not a failure.
        if (/Network not found/.test((e as Error).message)) return [];
        throw e;
    }
}
