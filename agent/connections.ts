/**
 * Aborting the TCP connections to a path that just went down: `ss -K`, run only when a path goes
 * down (never in the steady state). nginx keeps idle connections to each path (upstream
 * keepalive); a request it sends on one into a silently broken tunnel is never answered, and nginx
 * would wait out its read timeout (60 s) before passing it to the next path. Aborted, the request
 * fails at once with an error, and nginx passes it on (proxy_next_upstream error).
 *
 * `ss -K` asks the kernel over netlink (SOCK_DESTROY; Debian's kernel has CONFIG_INET_DIAG_DESTROY),
 * which node has no binding for. When it fails, the agent says so once, and the paths' own
 * timeouts are what remains.
 */
import { execFile } from "node:child_process";

const TIMEOUT_MS = 2_000;

/** `ss` arguments that abort every TCP connection to `server` (`[address]:port` or `address:port`). */
export function abortArgs(server: string): string[] {
    return ["-K", "-t", "dst", server];
}

export class ConnectionAborter {
    private lastError?: string;

    constructor(private readonly log: (line: string) => void) {}

    /** Abort the connections to these paths; resolves with how many ss listed as aborted. */
    abort(servers: readonly string[]): Promise<number> {
        return Promise.all(servers.map((server) => new Promise<number>((resolve) => {
            execFile("ss", abortArgs(server), { timeout: TIMEOUT_MS }, (err, stdout, stderr) => {
                if (err) {
                    const why = `cannot abort the connections to ${server}: ${(stderr || err.message).trim().split("\n")[0]}`;
                    if (why !== this.lastError) this.log(`${why} (nginx waits for its timeouts instead)`);
                    this.lastError = why;
                    resolve(0);
                    return;
                }
                this.lastError = undefined;
                // The first line is ss's header; each further line is one aborted connection.
                resolve(Math.max(0, stdout.split("\n").filter((l) => l.trim()).length - 1));
            });
        }))).then((counts) => counts.reduce((a, b) => a + b, 0));
    }
}
