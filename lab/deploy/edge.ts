/**
 * The rehearsal's emulated provider edge: BIRD in the cloud namespace, one BGP session per PoP
 * at the neighbour address the PoP's config names, as Vultr's edge routers take a PoP's session.
 * Each PoP's routes fill a table of their own (the report pins a client to a PoP through it) and
 * are piped into master6, where the best path is chosen for the clients that follow the edge.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { showProtocols } from "../birdc";
import { runUntracked } from "../exec";
import { importChanges } from "../session";
import { DeployCloud } from "./hosts";
import { DeployPlan } from "./plan";

/** The edge's BGP protocol, BIRD table and kernel table for the PoP at `index` in the stack. */
export const edgeProto = (pop: string) => `pop_${pop.replace(/-/g, "_")}`;
export const edgeTable = (pop: string) => `t_${edgeProto(pop)}`;
export const edgeKernelTable = (index: number) => 101 + index;

export function edgeSocket(cloud: DeployCloud): string {
    return path.join(cloud.slotDir, "edge", "bird.ctl");
}

export async function edgeBirdc(cloud: DeployCloud, args: string[]): Promise<string> {
    const r = await runUntracked("birdc", ["-s", edgeSocket(cloud), ...args], { timeoutMs: 20_000, allowFail: true });
    return r.stdout;
}

/** The edge has the prefix from this PoP's session (in the PoP's own table at the edge). */
export async function edgeHasPath(cloud: DeployCloud, pop: string, prefix: string): Promise<boolean> {
    const out = await edgeBirdc(cloud, ["show", "route", prefix, "table", edgeTable(pop)]);
    return out.includes(prefix);
}

/** The edge's session to a PoP: state and since when (the same, within BIRD's per-query jitter, while it stays up). */
export async function edgeSession(cloud: DeployCloud, pop: string): Promise<{ state: string; since: string }> {
    const out = await edgeBirdc(cloud, ["show", "protocols", edgeProto(pop)]);
    const line = out.split("\n").find((l) => l.startsWith(edgeProto(pop) + " ")) ?? "";
    const f = line.trim().split(/\s+/);
    // Name Proto Table State Since Info: "pop_lax BGP --- up 16:40:01.234 Established".
    return { state: f.slice(5).join(" ") || f[3] || "unknown", since: f[4] ?? "" };
}

/** The PoP's route for the prefix at the edge: there or not, and marked GRACEFUL_SHUTDOWN (65535:0) or not. */
export async function edgeRoute(cloud: DeployCloud, pop: string, prefix: string): Promise<{ present: boolean; graceful: boolean }> {
    const out = await edgeBirdc(cloud, ["show", "route", prefix, "table", edgeTable(pop), "all"]);
    const present = out.includes(prefix);
    return { present, graceful: present && /\(65535,\s*0\)/.test(out) };
}

/** BIRD in the cloud namespace, one session per PoP at the neighbour address the PoP's config names. */
export async function startEdge(cloud: DeployCloud, spec: DeployPlan["run"]["spec"], password: string, popAddress: (name: string) => string): Promise<number> {
    const dir = path.join(cloud.slotDir, "edge");
    fs.mkdirSync(dir, { recursive: true });
    const neighbors = [...new Set(spec.pops.map((p) => p.bgp.neighbor.toString()))];
    for (const n of neighbors) {
        await runUntracked("ip", ["-n", cloud.cloudNs, "addr", "add", `${n}/128`, "dev", "lo"], { timeoutMs: 10_000 });
    }
    // The hosts' networks as direct routes: BGP resolves the PoPs' (multihop) next hops through them.
    // Each PoP's session fills a table of its own (piped into master6, where the best path is
    // chosen) and a kernel table of its own: the report pins a client to a PoP by its source
    // address (observe.ts). master6's BGP routes go to the namespace's main table: the best path.
    const lines = ["router id 10.255.255.1;", `log "${path.join(dir, "edge.log")}" all;`, "protocol device {}",
        "protocol direct { ipv6; }", "protocol kernel best_path { ipv6 { export where source = RTS_BGP; }; }", ""];
    spec.pops.forEach((p, i) => {
        const addr = popAddress(p.name);
        const pw = (p.bgp.password ?? password).replace(/["\\]/g, "");
        lines.push(
            `ipv6 table ${edgeTable(p.name)};`,
            `protocol bgp ${edgeProto(p.name)} {`,
            `    local ${p.bgp.neighbor} as ${p.bgp.remoteAsn};`,
            `    neighbor ${addr} as ${spec.asn};`,
            p.bgp.multihop > 0 ? `    multihop ${p.bgp.multihop};` : "    direct;",
            `    password "${pw}";`,
            "    connect retry time 2;",
            "    error wait time 1, 5;",
            // RFC 8326, as the lab's edges: a GRACEFUL_SHUTDOWN route is the last resort, so a drain moves traffic before its withdrawal.
            `    ipv6 { table ${edgeTable(p.name)}; igp table master6; import filter { if (65535, 0) ~ bgp_community then bgp_local_pref = 0; accept; }; export none; };`,
            "}",
            `protocol pipe ${edgeProto(p.name)}_best { table ${edgeTable(p.name)}; peer table master6; export all; import none; }`,
            `protocol kernel ${edgeProto(p.name)}_kernel { ipv6 { table ${edgeTable(p.name)}; export all; }; kernel table ${edgeKernelTable(i)}; }`,
            "",
        );
    });
    const conf = path.join(dir, "bird.conf");
    fs.writeFileSync(conf, lines.join("\n"));
    const pidFile = path.join(dir, "bird.pid");
    await runUntracked("ip", ["netns", "exec", cloud.cloudNs, "bird", "-c", conf, "-s", edgeSocket(cloud), "-P", pidFile], { timeoutMs: 20_000 });
    return Number(fs.readFileSync(pidFile, "utf8").trim());
}

/** The edge's view of each PoP's session: state, since, and the route changes it accepted (importChanges). */
export async function edgeSessions(cloud: DeployCloud, pops: string[]): Promise<Record<string, { state: string; since: string; updates: number; withdraws: number }>> {
    const protos = await showProtocols(cloud.cloudNs, edgeSocket(cloud));
    return Object.fromEntries(pops.map((pop) => {
        const p = protos.find((x) => x.name === edgeProto(pop));
        return [pop, { state: p?.bgpState ?? p?.info ?? "gone", since: p?.since ?? "", ...importChanges(p) }];
    }));
}
