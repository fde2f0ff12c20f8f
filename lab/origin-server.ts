/**
 * The origin's HTTP service in the lab (the user's application, not our product): answers every
 * request with 200 and a JSON body naming the origin (and an x-origin header) and echoing the request headers it received,
 * so the lab can check what a PoP forwarded (Host kept, X-Forwarded-For added). Every path
 * answers, so the health agents' origin.healthPath does too, whatever its value.
 *
 *   node origin-server.js <name> <listen address> <port>
 *
 * Runs inside the origin's namespace, bound to its WireGuard mesh address only.
 */
import * as http from "node:http";

function main(): void {
    const [name, address, portText] = process.argv.slice(2);
    const port = Number(portText);
    if (!name || !address || !Number.isInteger(port)) {
        process.stderr.write("usage: origin-server <name> <listen address> <port>\n");
        process.exit(64);
    }
    const server = http.createServer((req, res) => {
        // Drain the request body so keepalive connections from the PoPs stay usable.
        req.resume();
        req.on("end", () => {
            const body = JSON.stringify({
                origin: name, method: req.method, url: req.url, remoteAddress: req.socket.remoteAddress,
                headers: req.headers,
            });
            // x-origin: which origin answered, for the lab's clients (the origin-failover experiments).
            res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body), "x-origin": name });
            res.end(body);
        });
    });
    server.keepAliveTimeout = 75_000;
    server.on("error", (e: NodeJS.ErrnoException) => {
        process.stdout.write(`origin ${name}: cannot listen on ${address} port ${port}: ${e.code ?? e.message}\n`);
        process.exit(70);
    });
    server.listen(port, address, () => process.stdout.write(`origin ${name} listening on ${address} port ${port}\n`));
    const stop = () => server.close(() => process.exit(0));
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main();
