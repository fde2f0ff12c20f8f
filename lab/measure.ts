/**
 * What the lab measures once every PoP announces: the BGP sessions from both ends, the routes
 * each transit holds, the catchment (which PoP each region's client reaches, over HTTP on the
 * anycast address and, for an IPv4 prefix, by where its packets arrive), HTTPS with and without
 * the origin-pull certificate, who may reach what, and routing safety. Each part adds the
 * problems it finds; expectations come from the config being run.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { familyOf, Family, nthAddress } from "../components/core/addressing";
import { LabRuntime, nsDir, UNRELATED_POP_ROUTES } from "./boot";
import { showProtocols, showRoutes } from "./birdc";
import { nowMs, nsRun, sleep, waitFor } from "./exec";
import { allowedBy, probeExposure, probeUdpExposure, sendUdp } from "./exposure";
import { probeOnce } from "./probe";
import {
    Catchment4Entry, CatchmentEntry, HttpsCheck, HttpsResult, LabReport, SessionReport, TransitRoute,
} from "./report";
import { UPSTREAM_TABLE_SIZE } from "./routers";
import { routingSafety } from "./routing";
import { edgePeerName, LAB_DIR, LabRegion, urlHost } from "./topology";

/** The parts of the report `measure` fills in. */
export type Measured = Pick<LabReport, "sessions" | "transitRoutes" | "catchment" | "catchment4" | "https" | "outsider" |
    "exposure" | "routing" | "problems">;

/** Every PoP session from the PoP's BIRD, with the edge's side (routes accepted and offered, BFD). */
async function readSessions(lab: LabRuntime, problems: string[]): Promise<SessionReport[]> {
    const spec = lab.stack.spec;
    const sessions: SessionReport[] = [];
    for (const r of lab.design.regions) {
        const popProtos = (await showProtocols(r.pop.ns, lab.birdSocket(r.pop.ns))).filter((x) => x.proto === "BGP");
        for (const p of popProtos) {
            const family: Family = p.neighborAddress && familyOf(p.neighborAddress) === 4 ? 4 : 6;
            const edge = await lab.edges.session(r, family);
            const established = p.bgpState === "Established";
            sessions.push({
                pop: r.pop.name, region: r.region, family, protocol: p.name, neighbor: p.neighborAddress ?? "?", neighborAs: p.neighborAs ?? "?",
                state: p.bgpState ?? p.info, established, since: p.since, lastError: p.lastError, holdTimer: p.holdTimer?.split("/")[1],
                bfd: edge?.bfd ?? "?", exported: p.routes?.exported, edgeImported: edge?.accepted,
                upstreamOffered: edge?.offered, popImported: p.routes?.imported,
            });
            const prefixes = spec.prefixes.filter((x) => x.family === family).length;
            if (!established) problems.push(`PoP ${r.pop.name}: BGP ${p.name} is ${p.bgpState ?? p.info}${p.lastError ? ` (${p.lastError})` : ""}`);
            if (r.edge.towardsPop.bfd && edge?.bfd !== "Up") problems.push(`PoP ${r.pop.name}: BFD on ${p.name} is ${edge?.bfd ?? "unknown"}, not Up`);
            if ((p.routes?.imported ?? 0) > 0) problems.push(`PoP ${r.pop.name}: imported ${p.routes?.imported} routes from its upstream (must be none)`);
            if ((edge?.accepted ?? 0) > prefixes) {
                problems.push(`PoP ${r.pop.name}: the edge accepted ${edge?.accepted} IPv${family} routes from it; only ${prefixes} configured`);
            }
        }
    }
    return sessions;
}

/** Every route each transit holds for each announced prefix; the best must be its own edge's. */
async function readTransitRoutes(lab: LabRuntime, problems: string[]): Promise<TransitRoute[]> {
    const out: TransitRoute[] = [];
    for (const prefix of lab.stack.spec.prefixes.map(String)) {
        const family = familyOf(prefix);
        for (const r of lab.design.regions) {
            const routes = await showRoutes(r.transit.ns, lab.birdSocket(r.transit.ns), prefix);
            for (const x of routes) {
                out.push({ region: r.region, prefix, transitAsn: r.transit.asn, from: x.from, best: x.best, asPath: x.asPath,
                    localPref: x.localPref, communities: x.communities });
            }
            const best = routes.find((x) => x.best);
            if (!best || best.from !== edgePeerName(r.transit, family)) {
                problems.push(`transit ${r.region}: best route for ${prefix} is not its own edge's (${best?.from ?? "none"})`);
            }
        }
    }
    return out;
}

/** GET / on the anycast address from each region's client: who serves, and what reaches the origin. */
async function measureCatchment(lab: LabRuntime, problems: string[]): Promise<CatchmentEntry[]> {
    const spec = lab.stack.spec;
    const target = { address: spec.address.toString(), host: spec.frontDoor.hostname };
    const catchment: CatchmentEntry[] = [];
    for (const r of lab.design.regions) {
        const s = await probeOnce(r.client.ns, target);
        const entry: CatchmentEntry = { region: r.region, client: r.client.address, expectedPop: r.pop.name, servedBy: s.pop,
            status: s.status, ms: s.done - s.sent, error: s.error };
        try {
            const body = JSON.parse(s.body ?? "") as { origin?: string; headers?: Record<string, string> };
            entry.origin = body.origin;
            entry.hostHeader = body.headers?.host;
            entry.xForwardedFor = body.headers?.["x-forwarded-for"];
        } catch {
            // not the origin's JSON: the status column says what came back
        }
        catchment.push(entry);
        if (entry.servedBy !== r.pop.name) problems.push(`region ${r.region}: served by ${entry.servedBy ?? "nobody"} instead of its own PoP ${r.pop.name}`);
        if (entry.status !== 200 || !spec.origins.some((o) => o.name === entry.origin)) {
            problems.push(`region ${r.region}: no origin answer through the anycast address (${entry.status ?? entry.error})`);
        }
        if (entry.hostHeader !== spec.frontDoor.hostname) problems.push(`region ${r.region}: origin saw Host ${entry.hostHeader}, not ${spec.frontDoor.hostname}`);
        if (!entry.xForwardedFor?.includes(r.client.address)) {
            problems.push(`region ${r.region}: X-Forwarded-For ${entry.xForwardedFor ?? "missing"} lacks the client ${r.client.address}`);
        }
    }
    return catchment;
}

/** How long IPv4 catchment keeps sending bursts while none arrives anywhere. */
const CATCHMENT4_WAIT_MS = 10_000;

/** The lab's own counter (not part of the rendered firewall) of packets to the IPv4 prefix. */
const CATCH_TABLE = "anycast_lab_catchment";

async function catchCounter(r: LabRegion): Promise<number> {
    const res = await nsRun(r.pop.ns, "nft", ["list", "table", "ip", CATCH_TABLE], { allowFail: true });
    return Number(/counter packets (\d+)/.exec(res.stdout)?.[1] ?? 0);
}

/**
 * IPv4 catchment: the PoPs serve HTTP on the IPv6 anycast address only, so a client's UDP
 * datagrams to the IPv4 prefix are counted where they arrive, by a counter the lab adds in each
 * PoP namespace.
 */
async function measureCatchment4(lab: LabRuntime, problems: string[]): Promise<Catchment4Entry[] | undefined> {
    const prefix = lab.stack.spec.prefixes.find((p) => p.family === 4);
    if (!prefix) return undefined;
    const target = nthAddress(prefix, 1);
    for (const r of lab.design.regions) {
        await nsRun(r.pop.ns, "nft", ["-f", "-"], { input: `table ip ${CATCH_TABLE} {\n chain pre {\n  type filter hook prerouting ` +
            `priority -300; policy accept;\n  ip daddr ${prefix} counter\n }\n}\n` });
    }
    const out: Catchment4Entry[] = [];
    for (const r of lab.design.regions) {
        // A burst, then a second of counting; again while nothing arrived, for up to 10 s: the IPv4
        // routes may still be on their way to the transits (the lab waits for the IPv6 ones).
        let arrived: string[] = [];
        for (const deadline = nowMs() + CATCHMENT4_WAIT_MS; arrived.length === 0 && nowMs() < deadline;) {
            const before = await Promise.all(lab.design.regions.map(catchCounter));
            await sendUdp(r.client.ns, target, 9, 5);
            for (let i = 0; i < 20 && arrived.length === 0; i++) {
                await sleep(50);
                const after = await Promise.all(lab.design.regions.map(catchCounter));
                arrived = lab.design.regions.filter((_, k) => after[k] - before[k] >= 5).map((x) => x.pop.name);
            }
        }
        out.push({ region: r.region, client: r.client.address4 ?? "?", target, expectedPop: r.pop.name, arrivedAt: arrived });
        if (arrived.length !== 1 || arrived[0] !== r.pop.name) {
            problems.push(`region ${r.region}: IPv4 packets to ${prefix} arrived at ${arrived.join(", ") || "no PoP"}, not its own PoP ${r.pop.name}`);
        }
    }
    for (const r of lab.design.regions) await nsRun(r.pop.ns, "nft", ["delete", "table", "ip", CATCH_TABLE], { allowFail: true });
    return out;
}

/**
 * What an HTTPS request from a namespace met: status, serving PoP, curl's own total time and the
 * first line of the body, or curl's error. `tlsDir` holds server-ca.pem, client.pem and client.key.
 */
export async function curlHttps(ns: string, address: string, hostname: string, tlsDir: string, withCert: boolean,
    timeoutS = 3): Promise<HttpsResult> {
    const args = ["-sS", "-m", String(timeoutS), "-o", "-", "-D", "-", "-w", "\n%{time_total}", "--cacert", path.join(tlsDir, "server-ca.pem"),
        "--resolve", `${hostname}:443:${urlHost(address)}`, `https://${hostname}/`];
    if (withCert) args.unshift("--cert", path.join(tlsDir, "client.pem"), "--key", path.join(tlsDir, "client.key"));
    const res = await nsRun(ns, "curl", args, { allowFail: true, timeoutMs: timeoutS * 1000 + 2000 });
    const status = /^HTTP\/\S+ (\d+)/m.exec(res.stdout);
    const pop = /^x-anycast-pop: *(\S+)/im.exec(res.stdout);
    if (!status) return { error: res.stderr.trim().replace(/^curl: /, "") || `curl exit ${res.code}` };
    const total = Number(/\n([0-9.]+)$/.exec(res.stdout)?.[1]);
    const body = res.stdout.split(/\r?\n\r?\n/).slice(1).join("\n\n").replace(/\n[0-9.]+$/, "");
    return { status: Number(status[1]), servedBy: pop?.[1], ms: Number.isFinite(total) ? total * 1000 : undefined,
        firstLine: body.split("\n")[0]?.trim() };
}

/** The Cloudflare side's files for curlHttps: the Origin CA and the origin-pull client certificate. */
export function writeCloudflareSide(dir: string, tls: { serverCaPem: string; pullClientCertPem: string; pullClientKeyPem: string }): string {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "server-ca.pem"), tls.serverCaPem);
    fs.writeFileSync(path.join(dir, "client.pem"), tls.pullClientCertPem);
    fs.writeFileSync(path.join(dir, "client.key"), tls.pullClientKeyPem, { mode: 0o600 });
    return dir;
}

/** Cloudflare's side of "Full (strict)" + Authenticated Origin Pulls, played from each region's client. */
async function checkHttps(lab: LabRuntime, problems: string[]): Promise<HttpsCheck[]> {
    const tlsDir = writeCloudflareSide(path.join(LAB_DIR, "cloudflare-side"), lab.tls);
    const spec = lab.stack.spec;
    const out: HttpsCheck[] = [];
    for (const r of lab.design.regions) {
        const h: HttpsCheck = {
            region: r.region, expectedPop: r.pop.name,
            withCert: await curlHttps(r.client.ns, spec.address.toString(), spec.frontDoor.hostname, tlsDir, true),
            withoutCert: await curlHttps(r.client.ns, spec.address.toString(), spec.frontDoor.hostname, tlsDir, false),
        };
        out.push(h);
        if (h.withCert.status !== 200 || h.withCert.servedBy !== h.expectedPop) {
            problems.push(`region ${h.region}: HTTPS with the origin-pull certificate gave ${h.withCert.status ?? h.withCert.error}` +
                ` from ${h.withCert.servedBy ?? "no PoP"}, expected 200 from its own PoP ${h.expectedPop}`);
        }
        if (h.withoutCert.status === 200) problems.push(`region ${h.region}: HTTPS without a client certificate was served`);
    }
    return out;
}

/** The outsider asks for the site: what the config says about its address decides the verdict. */
async function checkOutsider(lab: LabRuntime, problems: string[]): Promise<LabReport["outsider"]> {
    const { design } = lab;
    const spec = lab.stack.spec;
    const s = await probeOnce(design.outsider.ns, { address: spec.address.toString(), host: spec.frontDoor.hostname }, 1000);
    const allowed = allowedBy(spec, design.httpSources, design.outsider.address).http;
    const outsider = { client: design.outsider.address, blocked: !s.ok, expectBlocked: !allowed,
        detail: s.ok ? `served by ${s.pop}` : (s.error ?? `status ${s.status}`) };
    if (lab.firewallApplied && outsider.blocked !== outsider.expectBlocked) {
        problems.push(`the outsider ${design.outsider.address} was ${outsider.blocked ? "blocked" : `served by ${s.pop}`}; ` +
            `the config ${allowed ? "allows" : "does not allow"} it`);
    }
    return outsider;
}

export async function measure(lab: LabRuntime): Promise<Measured> {
    const log = lab.log;
    const problems: string[] = [];
    log("  reading BGP sessions (the PoPs' BIRD and the edges)");
    const sessions = await readSessions(lab, problems);
    log("  reading the transits' routes");
    const transitRoutes = await readTransitRoutes(lab, problems);
    log("  measuring catchment and HTTP through the anycast address");
    const catchment = await measureCatchment(lab, problems);
    const catchment4 = await measureCatchment4(lab, problems);
    log("  checking HTTPS with Authenticated Origin Pulls (with and without the client certificate)");
    const https = await checkHttps(lab, problems);
    log("  probing who may reach what (TCP connects from each kind of source)");
    const exposure = await probeExposure(lab);
    if (lab.firewallApplied) {
        // The UDP probe reads the firewall's own drop counter: only meaningful when it is applied.
        exposure.push(...await probeUdpExposure(lab));
        for (const p of exposure.filter((x) => !x.ok)) problems.push(`${p.from} -> ${p.to} ${p.protocol}/${p.port}: ${p.result}, expected ${p.expect} (${p.rule})`);
    }
    log("  checking what each PoP exports and what the transits learned from our AS");
    const routing = await routingSafety(lab);
    if (!routing.ok) problems.push("routing safety: a PoP imported routes, exported other than the configured prefixes, or a transit learned other prefixes from our AS");
    const outsider = await checkOutsider(lab, problems);
    return { sessions, transitRoutes, catchment, catchment4, https, outsider, exposure, routing, problems };
}

/** Wait until every PoP's sessions are up, its agent announces, and each transit prefers its own edge. */
export async function waitForAnnounced(lab: LabRuntime, timeoutMs: number): Promise<void> {
    const { design } = lab;
    await Promise.all(design.regions.map(async (r) => {
        for (const family of design.families) {
            await waitFor(`the IPv${family} BGP session of PoP ${r.pop.name} to be established`,
                async () => (await lab.edges.session(r, family))?.established, timeoutMs, 100)
                .catch(async (e: Error) => {
                    const protos = await showProtocols(r.pop.ns, lab.birdSocket(r.pop.ns)).catch(() => []);
                    const why = protos.filter((p) => p.proto === "BGP").map((p) => `${p.name}: ${p.bgpState ?? p.info} ${p.lastError ?? ""}`.trim());
                    throw new Error(`${e.message} (PoP side: ${why.join("; ") || "no answer"})`);
                });
        }
        await waitFor(`the health agent of ${r.pop.name} to announce`, async () => (await lab.agentStatus(r.pop.name))?.state === "announced",
            timeoutMs, 100).catch(async (e: Error) => {
            const s = await lab.agentStatus(r.pop.name);
            throw new Error(`${e.message} (agent: ${s ? `${s.state}, ${s.last_reason}` : "no status file"})`);
        });
    }));
    // Each transit must have heard its own region's routes before catchment is measured.
    for (const { family, text: prefix } of lab.stack.spec.prefixes.map((p) => ({ family: p.family, text: p.toString() }))) {
        await Promise.all(design.regions.map((r) => waitFor(`transit ${r.region} to prefer its own edge for ${prefix}`, async () => {
            const routes = await showRoutes(r.transit.ns, lab.birdSocket(r.transit.ns), prefix);
            return routes.some((x) => x.best && x.from === edgePeerName(r.transit, family));
        }, timeoutMs, 100).catch(async (e: Error) => {
            const routes = await showRoutes(r.transit.ns, lab.birdSocket(r.transit.ns), prefix).catch(() => []);
            const best = routes.find((x) => x.best);
            const edge = await lab.edges.session(r, family).catch(() => undefined);
            throw new Error(`${e.message.split(":")[0]}: its best route is ${best ? `from ${best.from} (${best.asPath})` : "none"}; ` +
                `the edge's session with ${r.pop.name} is ${edge?.state ?? "unknown"}${edge?.lastError ? ` (${edge.lastError})` : ""}`);
        })));
    }
}

export function howToPoke(lab: LabRuntime): string[] {
    const r = lab.design.regions[0];
    const spec = lab.stack.spec;
    return [
        "The lab is still running (--keep). Poke it:",
        `  ip netns exec ${r.pop.ns} birdc -s ${lab.birdSocket(r.pop.ns)} show protocols all`,
        ...lab.edges.howToPoke(r).map((c) => `  ${c}`),
        `  ip netns exec ${r.transit.ns} birdc -s ${lab.birdSocket(r.transit.ns)} show route ${spec.prefixes[0]} all`,
        `  ip netns exec ${r.client.ns} curl -si -H 'Host: ${spec.frontDoor.hostname}' http://${spec.address.inUrl()}/`,
        `  ip netns exec ${r.pop.ns} env ANYCAST_HEALTH_SETTINGS=${lab.agentSettingsFile(r.pop.ns)} ${nsDir(r.pop.ns)}/anycast-health status`,
        `  files and logs: ${LAB_DIR}/<namespace>/`,
        "Tear it down with: npx anycast lab --down (as root)",
    ];
}

/** Notes every report carries about what the emulated cloud does. */
export function cloudNotes(lab: LabRuntime): string[] {
    return [
        `the emulated upstream offers each PoP a default route and ${UPSTREAM_TABLE_SIZE} more; a PoP must import none`,
        `each PoP also has unrelated static routes (${UNRELATED_POP_ROUTES.join(", ")}); its edge must accept only the configured prefix`,
        `the provider edges run ${lab.edges.kind === "frr" ? "FRR (Debian frr): not the PoPs' own BGP implementation" : "BIRD (--edge bird)"}`,
    ];
}
