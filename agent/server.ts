/**
 * The agent's HTTP server, on its status port (`health.statusPort`), all addresses:
 *  - on the mesh address, for the mesh only: `/status` (the whole status: the other PoPs,
 *    the origin's Prometheus) and `/metrics` (Prometheus text);
 *  - on the PoP's own unicast address, for the other PoPs when the mesh does not carry their
 *    question: `/status` with only what their decision needs (components/core/health/status.ts);
 *  - on loopback, for the host itself (`anycast-health status`, `anycast status` over SSH):
 *    both, whole.
 * The firewall admits the port from the mesh and from the other PoPs' addresses only; the server
 * checks the addresses again, so a firewall mistake does not publish the mesh's layout.
 */
import * as http from "node:http";
import * as net from "node:net";
import { renderHandshakeMetrics, renderMetrics, AgentCounters } from "../components/core/health/metrics";
import { AgentSettings } from "../components/core/health/settings";
import { AgentStatus, publicView } from "../components/core/health/status";
import { HandshakeReader } from "./wireguard";

/** `::ffff:10.0.0.1` -> `10.0.0.1`: a dual-stack socket shows IPv4 peers mapped. */
export function plainAddress(a: string | undefined): string {
    return (a ?? "").replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");
}

function familyOf(a: string): "ipv4" | "ipv6" {
    return net.isIPv4(a) ? "ipv4" : "ipv6";
}

const LOOPBACK = new Set(["::1", "127.0.0.1"]);

export class StatusServer {
    private server?: http.Server;
    private readonly mesh = new net.BlockList();
    private retry?: NodeJS.Timeout;
    private closed = false;
    private readonly handshakes: HandshakeReader;

    constructor(private readonly settings: AgentSettings, private readonly status: () => AgentStatus | undefined,
        private readonly counters: () => AgentCounters, private readonly log: (line: string) => void) {
        const [network, length] = settings.listen.meshCidr.split("/");
        this.mesh.addSubnet(network, Number(length), familyOf(network));
        this.handshakes = new HandshakeReader(settings);
    }

    /** What a request on this local address, from this remote address, may see. */
    private access(local: string, remote: string): "all" | "public" | "none" {
        if (LOOPBACK.has(local) && LOOPBACK.has(remote)) return "all";
        if (local === plainAddress(this.settings.listen.meshAddress) && net.isIP(remote) && this.mesh.check(remote, familyOf(remote))) return "all";
        if (local === plainAddress(this.settings.listen.publicAddress)) return "public";
        return "none";
    }

    private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
        const access = this.access(plainAddress(req.socket.localAddress), plainAddress(req.socket.remoteAddress));
        const path = (req.url ?? "/").split("?")[0];
        const send = (code: number, type: string, body: string) => {
            res.writeHead(code, { "content-type": type, "cache-control": "no-store", "content-length": Buffer.byteLength(body) });
            res.end(body);
        };
        if (req.method !== "GET") return send(405, "text/plain", "GET only\n");
        if (access === "none") return send(403, "text/plain", "not from here\n");
        const status = this.status();
        if (!status) return send(503, "text/plain", "starting\n");
        if (path === "/status") return send(200, "application/json", JSON.stringify(access === "all" ? status : publicView(status)) + "\n");
        if (path === "/metrics" && access === "all") {
            const metrics = renderMetrics(status, this.counters());
            void this.handshakes.read().then((h) =>
                send(200, "text/plain; version=0.0.4; charset=utf-8", metrics + renderHandshakeMetrics(status.pop, h)));
            return;
        }
        return send(404, "text/plain", "not found: /status or /metrics\n");
    }

    listen(): void {
        if (this.closed) return;
        const server = http.createServer((req, res) => this.handle(req, res));
        server.keepAliveTimeout = 5000;
        server.on("error", (e: NodeJS.ErrnoException) => {
            // Another process on the port, or no IPv6: the checks go on; the peers miss this PoP's view until it binds.
            this.log(`cannot serve the status on port ${this.settings.listen.port} (${e.code ?? e.message}): trying again in 5 s`);
            server.close();
            this.retry = setTimeout(() => this.listen(), 5000);
        });
        // `::` without ipv6Only takes IPv4 too (mapped), whatever the mesh's family.
        server.listen({ port: this.settings.listen.port, host: "::" });
        this.server = server;
    }

    close(): Promise<void> {
        this.closed = true;
        clearTimeout(this.retry);
        return new Promise((resolve) => {
            if (!this.server) return resolve();
            this.server.close(() => resolve());
            this.server.closeAllConnections();
        });
    }
}
