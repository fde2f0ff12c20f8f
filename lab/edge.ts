/**
 * The emulated provider edges, behind one interface whichever BGP implementation plays them:
 * FRR (the default: not the PoPs' own BIRD, so interop faults show) or BIRD (`--edge bird`).
 * The lab reads an edge's side of each PoP session through this: state, since when, how many
 * routes it accepted from the PoP and offered to it, and BFD.
 */
import { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { Family } from "../components/core/addressing";
import { nsRun } from "./exec";
import { birdc, parseProtocols } from "./birdc";
import { afiKey, frrDir, frrNeighbor, renderEdgeFrr, startFrrEdge } from "./frr";
import { renderEdgeBird } from "./routers";
import { LabEdge, LabRegion } from "./topology";

export type EdgeKind = "frr" | "bird";
export const EDGE_KINDS: EdgeKind[] = ["frr", "bird"];

export interface EdgeSession {
    family: Family;
    established: boolean;
    /** The implementation's own word for the state (Established, Active, Idle, ...). */
    state: string;
    /** When the session came up, in the implementation's terms: unchanged while it stays up. */
    since: string;
    /** Prefixes accepted from the PoP, and offered to it (the default and the table). */
    accepted: number;
    offered: number;
    /** BFD state towards the PoP ("Up", "Down", ...), or "off" when the PoP runs none. */
    bfd: string;
    lastError?: string;
}

export interface EdgeRouters {
    readonly kind: EdgeKind;
    /** Render, check and start every edge; returns the daemons started. */
    start(edges: LabEdge[], dirOf: (ns: string) => string): Promise<ChildProcess[]>;
    session(r: LabRegion, family?: Family): Promise<EdgeSession | undefined>;
    /** Shell commands a person can run to look at one edge. */
    howToPoke(r: LabRegion): string[];
}

class BirdEdges implements EdgeRouters {
    readonly kind = "bird" as const;

    constructor(private readonly birdSocket: (ns: string) => string,
        private readonly startBird: (ns: string) => Promise<ChildProcess>) {}

    async start(edges: LabEdge[], dirOf: (ns: string) => string): Promise<ChildProcess[]> {
        const out: ChildProcess[] = [];
        for (const e of edges) {
            const file = path.join(dirOf(e.ns), "bird.conf");
            fs.writeFileSync(file, renderEdgeBird(e, path.join(dirOf(e.ns), "bird.log")));
            await nsRun(e.ns, "bird", ["-p", "-c", file]);
            out.push(await this.startBird(e.ns));
        }
        return out;
    }

    async session(r: LabRegion, family: Family = 6): Promise<EdgeSession | undefined> {
        const s = r.edge.towardsPop.sessions.find((x) => x.family === family);
        if (!s) return undefined;
        const sock = this.birdSocket(r.edge.ns);
        const [protos, bfd] = await Promise.all([
            birdc(r.edge.ns, sock, `show protocols all ${s.name}`).then(parseProtocols),
            r.edge.towardsPop.bfd ? birdc(r.edge.ns, sock, "show bfd sessions") : Promise.resolve(""),
        ]);
        const p = protos.find((x) => x.name === s.name);
        if (!p) return undefined;
        const bfdLine = bfd.split("\n").find((l) => l.startsWith(s.popAddress));
        return {
            family, established: p.bgpState === "Established", state: p.bgpState ?? p.info, since: p.since,
            accepted: p.routes?.imported ?? 0, offered: p.routes?.exported ?? 0,
            bfd: r.edge.towardsPop.bfd ? (bfdLine?.split(/\s+/)[2] ?? "none") : "off", lastError: p.lastError,
        };
    }

    howToPoke(r: LabRegion): string[] {
        return [`ip netns exec ${r.edge.ns} birdc -s ${this.birdSocket(r.edge.ns)} show route all`];
    }
}

class FrrEdges implements EdgeRouters {
    readonly kind = "frr" as const;

    constructor(private readonly dirOf: (ns: string) => string) {}

    async start(edges: LabEdge[], dirOf: (ns: string) => string): Promise<ChildProcess[]> {
        const started = await Promise.all(edges.map((e) => startFrrEdge(e.ns, frrDir(dirOf(e.ns)), e, renderEdgeFrr(e))));
        return started.flat();
    }

    async session(r: LabRegion, family: Family = 6): Promise<EdgeSession | undefined> {
        const s = r.edge.towardsPop.sessions.find((x) => x.family === family);
        if (!s) return undefined;
        const n = await frrNeighbor(r.edge.ns, frrDir(this.dirOf(r.edge.ns)), s.popAddress);
        if (!n) return undefined;
        const af = n.addressFamilyInfo?.[afiKey(family)];
        const established = n.bgpState === "Established";
        return {
            family, established, state: n.bgpState, since: established ? String(n.bgpTimerUpEstablishedEpoch ?? "?") : "-",
            accepted: af?.acceptedPrefixCounter ?? 0, offered: (af?.sentPrefixCounter ?? 0) + (af?.defaultSent ? 1 : 0),
            bfd: r.edge.towardsPop.bfd ? (n.peerBfdInfo?.status ?? "none") : "off", lastError: n.lastResetDueTo,
        };
    }

    howToPoke(r: LabRegion): string[] {
        return [`ip netns exec ${r.edge.ns} vtysh --vty_socket ${frrDir(this.dirOf(r.edge.ns))} -c 'show bgp summary'`];
    }
}

export function edgeRouters(kind: EdgeKind, deps: {
    birdSocket: (ns: string) => string; startBird: (ns: string) => Promise<ChildProcess>; dirOf: (ns: string) => string;
}): EdgeRouters {
    return kind === "frr" ? new FrrEdges(deps.dirOf) : new BirdEdges(deps.birdSocket, deps.startBird);
}
