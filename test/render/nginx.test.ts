/**
 * The PoP's nginx.conf: golden files for review, the real `nginx -t` for syntax and semantics,
 * and a live run in a network namespace for what the config promises (headers, the health
 * endpoint, Authenticated Origin Pulls, failing fast on an unreachable origin).
 */
import { test, describe, after } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { renderNginxConfig, TLS_PATHS, HEALTH_ENDPOINT, NGINX_PATHS } from "../../components/core/render/nginx";
import { assertGolden } from "../helpers/golden";
import { labSpec, popRenderInput, prodSpec } from "../helpers/fixtures";
import {
    createNetns, deleteNetns, inNetns, inNetnsOk, needRoot, needTools, runOk, tempDir, uniqueNetnsName, waitFor,
} from "../helpers/tools";

const prodLax = () => renderNginxConfig(popRenderInput(prodSpec(), "lax"));
const labLax = () => renderNginxConfig(popRenderInput(labSpec(), "lax"));

describe("renderNginxConfig", () => {
    test("golden: prod lax", () => assertGolden("nginx/prod-lax.conf", prodLax()));
    test("golden: lab lax", () => assertGolden("nginx/lab-lax.conf", labLax()));

    test("is deterministic", () => assert.equal(prodLax(), prodLax()));

    test("listens on the anycast address only, 80 plain and 443 TLS with HTTP/2", () => {
        const listens = labLax().split("\n").map((l) => l.trim()).filter((l) => l.startsWith("listen "));
        assert.deepEqual(listens, ["listen [2001:db8:100::1]:80;", "listen [2001:db8:100::1]:443 ssl http2;"]);
    });

    test("443 requires Cloudflare's origin-pull client certificate; 80 does not", () => {
        const [, plain, tls] = labLax().split(/\n    server \{\n/);
        assert.ok(tls.includes(`ssl_client_certificate ${TLS_PATHS.clientCa};`));
        assert.ok(tls.includes("ssl_verify_client on;"));
        assert.ok(tls.includes(`ssl_certificate ${TLS_PATHS.certificate};`));
        assert.ok(tls.includes(`ssl_certificate_key ${TLS_PATHS.key};`));
        assert.ok(!plain.includes("ssl_"));
        assert.match(labLax(), /^ {4}ssl_protocols TLSv1\.2 TLSv1\.3;$/m);
    });

    test("forwards to the origin over the mesh with the client's identity and fails fast", () => {
        const conf = labLax();
        assert.match(conf, /upstream origin \{\n\s+server \[fd00:a:1::1\]:8080;\n\s+keepalive \d+;/);
        for (const header of [
            "proxy_set_header Host $host;",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "proxy_set_header X-Real-IP $remote_addr;",
            "proxy_set_header X-Forwarded-Proto $scheme;",
            'proxy_set_header Connection "";',
            "proxy_http_version 1.1;",
            "proxy_connect_timeout 2s;",
            "proxy_pass http://origin;",
        ]) {
            // Once in the port-80 server and once in the port-443 server.
            assert.equal(conf.split(header).length - 1, 2, `${header} in both servers`);
        }
    });

    test("an IPv4 mesh (prod) puts the origin without brackets", () => {
        assert.match(prodLax(), /^\s+server 10\.77\.0\.1:8080;$/m);
    });

    test("marks every response, errors included, with the PoP's name", () => {
        assert.match(labLax(), /^ {4}add_header X-Anycast-PoP "lax" always;$/m);
        const ams = renderNginxConfig(popRenderInput(labSpec(), "ams"));
        assert.match(ams, /add_header X-Anycast-PoP "ams" always;/);
        // add_header in a location would silently drop the inherited http-level one there.
        assert.equal(labLax().split("add_header").length - 1, 1);
    });

    test("the health endpoint is answered by nginx, for the host only, unlogged", () => {
        const conf = labLax();
        const block = conf.split(`location = ${HEALTH_ENDPOINT} {`)[1].split("\n        }\n")[0];
        assert.ok(block.includes("access_log off;"));
        assert.match(block, /if \(\$anycast_health_client = 0\) \{\s+return 403;\s+\}\s+return 200 "lax ok\\n";/);
        const geo = conf.split("geo $anycast_health_client {")[1].split("}")[0];
        const entries = geo.split("\n").map((l) => l.trim()).filter((l) => l !== "");
        assert.deepEqual(entries, ["default 0;", "2001:db8:100::1 1;", "::1 1;", "127.0.0.1 1;"]);
    });
});

/** Self-signed origin certificate, an origin-pull CA and a client certificate it signed. */
function makeTls(dir: string): { cert: string; key: string; ca: string; clientCert: string; clientKey: string } {
    const f = (name: string) => path.join(dir, name);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    runOk("openssl", ["req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2", "-subj", "/CN=test origin-pull CA"]);
    runOk("openssl", ["req", "-x509", ...ec, "-keyout", f("origin.key"), "-out", f("origin.pem"), "-days", "2", "-subj", "/CN=origin"]);
    runOk("openssl", ["req", ...ec, "-keyout", f("client.key"), "-out", f("client.csr"), "-subj", "/CN=cloudflare-edge"]);
    runOk("openssl", ["x509", "-req", "-in", f("client.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
        "-CAcreateserial", "-out", f("client.pem"), "-days", "2"]);
    return { cert: f("origin.pem"), key: f("origin.key"), ca: f("ca.pem"), clientCert: f("client.pem"), clientKey: f("client.key") };
}

/** The rendered config with only the TLS, pid and log paths moved into `dir` (a test cannot use /etc or /run). */
function relocated(conf: string, dir: string, tls: ReturnType<typeof makeTls>): string {
    const moves: [string, string][] = [
        [TLS_PATHS.certificate, tls.cert], [TLS_PATHS.key, tls.key], [TLS_PATHS.clientCa, tls.ca],
        [NGINX_PATHS.pid, path.join(dir, "nginx.pid")],
        [NGINX_PATHS.errorLog, path.join(dir, "error.log")], [NGINX_PATHS.accessLog, path.join(dir, "access.log")],
    ];
    let out = conf;
    for (const [from, to] of moves) {
        assert.ok(out.includes(from), `${from} in the rendered config`);
        out = out.split(from).join(to);
    }
    return out;
}

describe("nginx accepts and runs the rendered config", () => {
    const cleanups: (() => void)[] = [];
    after(() => {
        for (const cleanup of cleanups.reverse()) cleanup();
    });

    test("nginx -t: syntax ok, and it binds the listen addresses, so it needs the anycast address", (t) => {
        if (!needRoot(t, "network namespace for the anycast address") || !needTools(t, "nginx", "openssl", "ip")) return;
        const dir = tempDir("nginx-t");
        cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
        const tls = makeTls(dir);
        for (const [name, conf] of [["prod", prodLax()], ["lab", labLax()]]) {
            const file = path.join(dir, `${name}.conf`);
            fs.writeFileSync(file, relocated(conf, dir, tls));
            const ns = uniqueNetnsName("ngt");
            createNetns(ns);
            cleanups.push(() => deleteNetns(ns));
            // Without the anycast address nginx -t fails: it really binds every listen socket.
            const without = inNetns(ns, "nginx", ["-t", "-p", dir + "/", "-c", file]);
            assert.notEqual(without.status, 0);
            assert.match(without.stderr, /bind\(\) to \[2001:db8:100::1\]:80 failed \(99: Cannot assign requested address\)/);
            inNetnsOk(ns, "ip", ["addr", "add", "2001:db8:100::1/128", "dev", "lo"]);
            const checked = inNetns(ns, "nginx", ["-t", "-p", dir + "/", "-c", file]);
            assert.equal(checked.status, 0, `${name}: ${checked.stderr}`);
            assert.match(checked.stderr, /test is successful/);
            deleteNetns(ns);
        }
    });

    test("live: proxies with the promised headers, guards the health endpoint and 443, fails fast", async (t) => {
        if (!needRoot(t, "network namespace for the anycast address") || !needTools(t, "nginx", "openssl", "ip", "curl", "nft")) return;
        const dir = tempDir("nginx-live");
        cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
        const tls = makeTls(dir);
        const conf = path.join(dir, "nginx.conf");
        fs.writeFileSync(conf, relocated(labLax(), dir, tls));
        const ns = uniqueNetnsName("ngl");
        createNetns(ns);
        cleanups.push(() => deleteNetns(ns));
        // The anycast address, the origin's mesh address, and an outsider's address, all on lo.
        for (const address of ["2001:db8:100::1/128", "fd00:a:1::1/128", "2001:db8:ff00::99/128"]) {
            inNetnsOk(ns, "ip", ["addr", "add", address, "dev", "lo"]);
        }

        // The origin: echoes the request headers it received as JSON.
        const origin = spawnTracked(cleanups, "ip", ["netns", "exec", ns, process.execPath, "-e", `
            require("node:http").createServer((req, res) => {
                res.setHeader("content-type", "application/json");
                res.end(JSON.stringify(req.headers));
            }).listen(8080, "fd00:a:1::1", () => console.log("listening"));`]);
        await waitFor("origin listening", 10_000, () => (origin.stdout.includes("listening") ? true : undefined));
        const nginx = spawnTracked(cleanups, "ip", ["netns", "exec", ns, "nginx", "-p", dir + "/", "-c", conf, "-g", "daemon off;"]);
        await waitFor("nginx listening", 10_000, () =>
            inNetns(ns, "curl", ["-sg", "-o", "/dev/null", "-w", "%{http_code}", "http://[2001:db8:100::1]/"]).stdout === "200" ? true : undefined);
        assert.equal(nginx.exited, false, nginx.stderr);

        const curl = (...args: string[]) => {
            const r = inNetns(ns, "curl", ["-sg", "-D", "-", "--max-time", "10", ...args]);
            const [head, ...body] = r.stdout.split("\r\n\r\n");
            return { status: Number(head.split(" ")[1]), head: head.toLowerCase(), body: body.join("\r\n\r\n"), curlExit: r.status };
        };

        // Proxied: Host kept, client identity forwarded, PoP marked.
        const proxied = curl("-H", "Host: www.example.com", "--interface", "2001:db8:ff00::99", "http://[2001:db8:100::1]/page");
        assert.equal(proxied.status, 200);
        assert.match(proxied.head, /^x-anycast-pop: lax$/m);
        assert.doesNotMatch(proxied.head, /^server: nginx\//m, "server_tokens off hides the version");
        const seen = JSON.parse(proxied.body) as Record<string, string>;
        assert.equal(seen.host, "www.example.com");
        assert.equal(seen["x-forwarded-for"], "2001:db8:ff00::99");
        assert.equal(seen["x-real-ip"], "2001:db8:ff00::99");
        assert.equal(seen["x-forwarded-proto"], "http");
        assert.equal(seen.connection, undefined, "Connection cleared for upstream keepalive");

        // Health endpoint: the host (source = the anycast address) gets "lax ok", an outsider 403.
        const health = curl(`http://[2001:db8:100::1]${HEALTH_ENDPOINT}`);
        assert.equal(health.status, 200);
        assert.equal(health.body, "lax ok\n");
        const outsider = curl("--interface", "2001:db8:ff00::99", `http://[2001:db8:100::1]${HEALTH_ENDPOINT}`);
        assert.equal(outsider.status, 403);
        assert.match(outsider.head, /^x-anycast-pop: lax$/m, "errors carry the PoP header too");

        // 443: without the origin-pull client certificate nginx refuses (400), with it the request passes on HTTP/2.
        const tlsArgs = ["-k", "--resolve", "www.example.com:443:[2001:db8:100::1]"];
        const noCert = curl(...tlsArgs, "https://www.example.com/");
        assert.equal(noCert.status, 400);
        assert.match(noCert.head, /^x-anycast-pop: lax$/m);
        const withCert = curl(...tlsArgs, "--http2", "--cert", tls.clientCert, "--key", tls.clientKey, "https://www.example.com/x");
        assert.equal(withCert.status, 200);
        assert.match(withCert.head, /^http\/2 200/);
        assert.equal((JSON.parse(withCert.body) as Record<string, string>)["x-forwarded-proto"], "https");
        const tls11 = inNetns(ns, "curl", ["-sg", ...tlsArgs, "--tls-max", "1.1", "--cert", tls.clientCert, "--key", tls.clientKey,
            "https://www.example.com/"]);
        assert.notEqual(tls11.status, 0, "TLS 1.1 is refused");

        // Origin unreachable with packets dropped (a dead mesh): 504 after the 2 s connect timeout, still marked.
        inNetnsOk(ns, "nft", ["-f", "-"], { input: "table inet drop_origin { chain out { type filter hook output priority 0; ip6 daddr fd00:a:1::1 tcp dport 8080 drop; }; };\n" });
        // Keepalive connections opened before the drop would still work; close them by restarting workers.
        inNetnsOk(ns, "nginx", ["-p", dir + "/", "-c", conf, "-s", "reload"]);
        await new Promise((resolve) => setTimeout(resolve, 500));
        const started = Date.now();
        const dead = curl("http://[2001:db8:100::1]/");
        const elapsedMs = Date.now() - started;
        console.log(`nginx: unreachable origin answered ${dead.status} after ${elapsedMs} ms (proxy_connect_timeout 2s)`);
        assert.equal(dead.status, 504);
        assert.match(dead.head, /^x-anycast-pop: lax$/m);
        assert.ok(elapsedMs >= 1500 && elapsedMs < 6000, `failed after ${elapsedMs} ms`);
    });
});

interface Tracked {
    child: ChildProcess;
    stdout: string;
    stderr: string;
    exited: boolean;
}

/** Spawn a long-running process whose output is collected, stopped by the suite's cleanup. */
function spawnTracked(cleanups: (() => void)[], command: string, args: string[]): Tracked {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    const tracked: Tracked = { child, stdout: "", stderr: "", exited: false };
    child.stdout?.on("data", (d: Buffer) => (tracked.stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (tracked.stderr += d.toString()));
    child.on("exit", () => (tracked.exited = true));
    cleanups.push(() => {
        if (!tracked.exited) child.kill("SIGTERM");
    });
    return tracked;
}
