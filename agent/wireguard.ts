/**
 * The mesh's WireGuard handshakes for /metrics: `wg show wg0 dump`, run only when Prometheus asks
 * and at most once per CACHE_MS. With `ss -K` when a path goes down (agent/connections.ts), it is
 * one of the agent's two child processes: the kernel's WireGuard answers only over netlink, which
 * node has no binding for, and a handshake is a minutes-scale fact, so a scrape's fork every 15 s costs nothing next to the checks' forks this agent replaced.
 */
import { execFile } from "node:child_process";
import { handshakesFromDump, MeshHandshake } from "../components/core/health/metrics";
import { AgentSettings } from "../components/core/health/settings";

const CACHE_MS = 10_000;
const TIMEOUT_MS = 2_000;
/** The mesh interface on every host (render/wireguard.ts). */
const MESH_INTERFACE = "wg0";

/** `http://[fd00::1]:8080/x` or `[fd00::1]:8080` -> `fd00::1`. */
function hostOf(urlOrServer: string): string {
    const url = new URL(urlOrServer.includes("://") ? urlOrServer : `http://${urlOrServer}`);
    return url.hostname.replace(/^\[(.*)\]$/, "$1");
}

export class HandshakeReader {
    private readonly members: Array<{ name: string; meshAddress: string }>;
    private cached?: { at: number; handshakes: MeshHandshake[] };
    private pending?: Promise<MeshHandshake[]>;

    constructor(settings: AgentSettings, private readonly now: () => number = Date.now) {
        this.members = [
            ...settings.origins.map((o) => ({ name: o.name, meshAddress: hostOf(o.url) })),
            ...settings.peers.map((p) => ({ name: p.name, meshAddress: hostOf(p.statusUrl) })),
        ];
    }

    /** The handshakes, at most CACHE_MS old; none when `wg` fails (no interface yet, no tool). */
    read(): Promise<MeshHandshake[]> {
        if (this.cached && this.now() - this.cached.at < CACHE_MS) return Promise.resolve(this.cached.handshakes);
        this.pending ??= new Promise<MeshHandshake[]>((resolve) => {
            execFile("wg", ["show", MESH_INTERFACE, "dump"], { timeout: TIMEOUT_MS }, (err, stdout) => {
                const handshakes = err ? [] : handshakesFromDump(stdout, this.members);
                this.cached = { at: this.now(), handshakes };
                this.pending = undefined;
                resolve(handshakes);
            });
        });
        return this.pending;
    }
}
