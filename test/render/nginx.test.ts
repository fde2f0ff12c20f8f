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
import {
    renderNginxConfig, renderNginxUpstreams, TLS_PATHS, HEALTH_ENDPOINT, NGINX_PATHS, originConnectTimeoutMs,
} from "../../components/core/render/nginx";
import { PopRenderInput } from "../../components/core/model";
import { assertGolden } from "../helpers/golden";
import { labSpec, popRenderInput, prodSpec } from "../helpers/fixtures";
import {
    createNetns, deleteNetns, inNetns, inNetnsOk, needRoot, needTools, runOk, tempDir, uniqueNetnsName, waitFor,
} from "../helpers/tools";

const prodLax = () => renderNginxConfig(popRenderInput(prodSpec(), "lax"));
const labLax = () => renderNginxConfig(popRenderInput(labSpec(), "lax"));
/** The lab's lax with a stale cache: what `failover.staleCache: true` renders. */
const cachedInput = (): PopRenderInput => {
    const input = popRenderInput(labSpec(), "lax");
    return { ...input, failover: { ...input.failover!, staleCache: { maxSizeMb: 64, validSeconds: 30, keepSeconds: 3600 } } };
};

describe("renderNginxConfig", () => {
    test("golden: prod lax", () => assertGolden("nginx/prod-lax.conf", prodLax()));
    test("golden: lab lax", () => assertGolden("nginx/lab-lax.conf", labLax()));
    test("golden: lab lax with a stale cache", () => assertGolden("nginx/lab-lax-stale-cache.conf", renderNginxConfig(cachedInput())));
    test("golden: upstreams lab lax (two origins, two relays)", () => assertGolden("nginx/lab-lax-upstreams.conf", renderNginxUpstreams(popRenderInput(labSpec(), "lax"))));
    test("golden: upstreams prod lax", () => assertGolden("nginx/prod-lax-upstreams.conf", renderNginxUpstreams(popRenderInput(prodSpec(), "lax"))));

    test("is deterministic", () => assert.equal(prodLax(), prodLax()));

    test("serves visitors on the anycast address only, 80 plain and 443 TLS with HTTP/2; the mesh on the relay port", () => {
        const listens = labLax().split("\n").map((l) => l.trim()).filter((l) => l.startsWith("listen "));
        assert.deepEqual(listens, ["listen [2001:db8:100::1]:80;", "listen [2001:db8:100::1]:443 ssl http2;", "listen [::]:8081 ipv6only=on;"]);
        // The relay server admits the mesh only (the firewall also admits its port from wg0 only).
        const relay = labLax().split("listen [::]:8081 ipv6only=on;")[1];
        assert.match(relay, /^\s+allow fd00:a:1::\/64;\n\s+deny all;$/m);
        assert.match(prodLax(), /^\s+listen 8081;\n\s+server_name _;\n\s+allow 10\.77\.0\.0\/24;$/m);
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

    test("forwards to the origins over the mesh with the client's identity and fails fast", () => {
        const conf = labLax();
        assert.match(conf, new RegExp(`^    include ${NGINX_PATHS.upstreams};$`, "m"));
        for (const header of [
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "proxy_set_header X-Real-IP $remote_addr;",
            "proxy_set_header X-Forwarded-Proto $scheme;",
            "proxy_pass http://origin;",
        ]) {
            // Once in the port-80 server and once in the port-443 server.
            assert.equal(conf.split(header).length - 1, 2, `${header} in both servers`);
        }
        // In the relay server too: these, and the visitor's identity passed on unchanged.
        // nginx waits for a connect as long as the agent's checks do (the lab's health.timeout 0.3 s).
        assert.equal(originConnectTimeoutMs(popRenderInput(labSpec(), "lax")), labSpec().health.timeout * 1000);
        for (const header of [`proxy_connect_timeout ${originConnectTimeoutMs(popRenderInput(labSpec(), "lax"))}ms;`, "proxy_next_upstream error timeout http_502 http_503 http_504;", "proxy_set_header Host $host;",
            'proxy_set_header Connection "";', "proxy_http_version 1.1;"]) {
            assert.equal(conf.split(header).length - 1, 3, `${header} in the visitor servers and the relay`);
        }
        const relay = conf.split("listen [::]:8081 ipv6only=on;")[1];
        assert.match(relay, /proxy_pass http:\/\/origin_direct;/);
        assert.match(relay, /proxy_set_header X-Forwarded-For \$http_x_forwarded_for;/);
    });

    test("upstreams: the preferred origin primary, the others and the relays backups, all with passive failover", () => {
        const lab = renderNginxUpstreams(popRenderInput(labSpec(), "lax"));
        const servers = (block: string) => lab.split(`upstream ${block} {`)[1].split("}")[0].split("\n").map((l) => l.trim()).filter((l) => l.startsWith("server "));
        assert.deepEqual(servers("origin"), [
            "server [fd00:a:1::1]:8080 max_fails=1 fail_timeout=5s;   # origin",
            "server [fd00:a:1:0:ffff:ffff:ffff:ffff]:8080 max_fails=1 fail_timeout=5s backup;   # origin2",
            "server [fd00:a:1::3]:8081 max_fails=1 fail_timeout=5s backup;   # via ams",
            "server [fd00:a:1::4]:8081 max_fails=1 fail_timeout=5s backup;   # via sgp",
        ]);
        // What lax relays for the others: its own direct paths only, so a request crosses at most one relay.
        assert.deepEqual(servers("origin_direct"), servers("origin").slice(0, 2));
        // A configured preference puts that origin first; an IPv4 mesh (prod) has no brackets.
        const input = popRenderInput(labSpec(), "ams");
        const preferring = renderNginxUpstreams({ ...input, pop: { ...input.pop, originPreference: ["origin2"] } });
        assert.match(preferring, /upstream origin \{\n\s+zone origin 64k;\n\s+server \[fd00:a:1:0:ffff:ffff:ffff:ffff\]:8080 max_fails=1 fail_timeout=5s;/);
        assert.match(renderNginxUpstreams(popRenderInput(prodSpec(), "lax")), /^ {4}server 10\.77\.0\.1:8080 max_fails=1 fail_timeout=5s;   # origin$/m);
    });

    test("answers a short 503 with Retry-After, still marked, when no path to an origin is left", () => {
        const conf = labLax();
        assert.equal(conf.split("error_page 502 503 504 = @origin_unavailable;").length - 1, 3, "both visitor servers and the relay");
        const block = conf.split("location @origin_unavailable {")[1].split("}")[0];
        assert.match(block, /add_header Retry-After 5 always;/);
        assert.match(block, /add_header Cache-Control "no-store" always;/);
        assert.match(block, /add_header X-Anycast-PoP "lax" always;/, "add_header here would drop the inherited PoP header");
        assert.match(block, /return 503 "<!DOCTYPE html>/);
    });

    test("relays only with failover.relay; the agent's status is the agent's own (health.statusPort), not nginx's", () => {
        const conf = labLax();
        assert.ok(conf.includes("proxy_pass http://origin_direct;"));
        assert.doesNotMatch(conf, /anycast-status|health\.json/);
        const input = popRenderInput(labSpec(), "lax");
        const noRelay = renderNginxConfig({ ...input, failover: { ...input.failover!, relay: false } });
        assert.ok(!noRelay.includes("proxy_pass http://origin_direct;"));
        assert.match(renderNginxUpstreams({ ...input, failover: { ...input.failover!, relay: false } }), /^(?![\s\S]*via )/, "no relay paths");
    });

    test("a stale cache, when configured: keyed by host, never for requests with credentials", () => {
        const conf = renderNginxConfig(cachedInput());
        assert.match(conf, new RegExp(`proxy_cache_path ${NGINX_PATHS.staleCache} levels=1:2 keys_zone=anycast_stale:10m max_size=64m inactive=3600s use_temp_path=off;`));
        for (const line of ["proxy_cache anycast_stale;", "proxy_cache_key $scheme$host$request_uri;",
            "proxy_cache_use_stale error timeout invalid_header updating http_500 http_502 http_503 http_504;",
            "proxy_cache_bypass $http_authorization;", "proxy_no_cache $http_authorization;", "proxy_cache_valid 200 301 302 30s;"]) {
            assert.equal(conf.split(line).length - 1, 2, line);
        }
        assert.ok(!labLax().includes("proxy_cache"), "no cache unless configured");
    });

    test("marks every response, errors included, with the PoP's name", () => {
        assert.match(labLax(), /^ {4}add_header X-Anycast-PoP "lax" always;$/m);
        const ams = renderNginxConfig(popRenderInput(labSpec(), "ams"));
        assert.match(ams, /add_header X-Anycast-PoP "ams" always;/);
        // add_header in a location drops the inherited http-level one there: each such location repeats it.
        const visitorServers = renderNginxConfig(cachedInput()).split("listen [::]:8081")[0];
        for (const block of visitorServers.split(/\n\s+location /).slice(1)) {
            const body = block.split("\n        }\n")[0];
            if (body.includes("add_header")) assert.match(body, /add_header X-Anycast-PoP "lax" always;/, block.split("\n")[0]);
        }
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

/**
 * The rendered config with only the TLS, pid, log, cache and include paths moved into `dir` (a test
 * cannot use /etc or /run), and the upstreams file it includes written there as first pushed.
 */
function relocated(input: PopRenderInput, dir: string, tls: ReturnType<typeof makeTls>): string {
    const conf = renderNginxConfig(input);
    fs.writeFileSync(path.join(dir, "upstreams.conf"), renderNginxUpstreams(input));
    const moves: [string, string][] = [
        [TLS_PATHS.certificate, tls.cert], [TLS_PATHS.key, tls.key], [TLS_PATHS.clientCa, tls.ca],
        [NGINX_PATHS.pid, path.join(dir, "nginx.pid")],
        [NGINX_PATHS.errorLog, path.join(dir, "error.log")], [NGINX_PATHS.accessLog, path.join(dir, "access.log")],
        [NGINX_PATHS.upstreams, path.join(dir, "upstreams.conf")],
    ];
    if (conf.includes(NGINX_PATHS.staleCache)) moves.push([NGINX_PATHS.staleCache, path.join(dir, "stale-cache")]);
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
        const inputs: Array<[string, PopRenderInput]> = [["prod", popRenderInput(prodSpec(), "lax")], ["lab", popRenderInput(labSpec(), "lax")], ["cache", cachedInput()]];
        for (const [name, input] of inputs) {
            const file = path.join(dir, `${name}.conf`);
            fs.writeFileSync(file, relocated(input, dir, tls));
            const ns = uniqueNetnsName("ngt");
            createNetns(ns);
            cleanups.push(() => deleteNetns(ns));
            // Without the anycast address nginx -t fails: it really binds every listen socket.
            const without = inNetns(ns, "nginx", ["-t", "-p", dir + "/", "-c", file]);
            assert.notEqual(without.status, 0);
            assert.match(without.stderr, /bind\(\) to \[2001:db8:100::1\]:80 failed \(99: Cannot assign requested address\)/);
            inNetnsOk(ns, "ip", ["addr", "add", "2001:db8:100::1/128", "dev", "lo", "nodad"]);
            const checked = inNetns(ns, "nginx", ["-t", "-p", dir + "/", "-c", file]);
            assert.equal(checked.status, 0, `${name}: ${checked.stderr}`);
            assert.match(checked.stderr, /test is successful/);
            deleteNetns(ns);
        }
    });

    test("live: proxies with the promised headers, guards the health endpoint and 443, fails over between origins, answers 503 when none is left", async (t) => {
        if (!needRoot(t, "network namespace for the anycast address") || !needTools(t, "nginx", "openssl", "ip", "curl", "nft")) return;
        const dir = tempDir("nginx-live");
        cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
        const tls = makeTls(dir);
        const conf = path.join(dir, "nginx.conf");
        fs.writeFileSync(conf, relocated(popRenderInput(labSpec(), "lax"), dir, tls));
        const ns = uniqueNetnsName("ngl");
        createNetns(ns);
        cleanups.push(() => deleteNetns(ns));
        // The anycast address, both origins' mesh addresses, and an outsider's address, all on lo.
        const [origin1, origin2] = labSpec().origins;
        for (const address of ["2001:db8:100::1/128", `${origin1.meshAddress}/128`, `${origin2.meshAddress}/128`, "2001:db8:ff00::99/128"]) {
            inNetnsOk(ns, "ip", ["addr", "add", address, "dev", "lo", "nodad"]);
        }

        // The origins: each echoes the request headers it received as JSON, and says who it is.
        for (const o of [origin1, origin2]) {
            const server = spawnTracked(cleanups, "ip", ["netns", "exec", ns, process.execPath, "-e", `
                require("node:http").createServer((req, res) => {
                    res.setHeader("content-type", "application/json");
                    res.setHeader("x-origin", ${JSON.stringify(o.name)});
                    res.end(JSON.stringify(req.headers));
                }).listen(8080, ${JSON.stringify(o.meshAddress)}, () => console.log("listening"));`]);
            await waitFor(`${o.name} listening`, 10_000, () => (server.stdout.includes("listening") ? true : undefined));
        }
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

        assert.match(proxied.head, /^x-origin: origin$/m, "the preferred origin serves");

        // Passive: the first origin's packets dropped (its tunnel dead). Its keepalive connections
        // would still hang, so the workers are restarted first; then one request waits out the
        // connect timeout and moves to the second origin, and the next ones go there at once.
        inNetnsOk(ns, "nft", ["-f", "-"], { input: `table inet drop_origin { chain out { type filter hook output priority 0; ip6 daddr ${origin1.meshAddress} tcp dport 8080 drop; }; };\n` });
        const reload = () => inNetnsOk(ns, "nginx", ["-p", dir + "/", "-c", conf, "-s", "reload"]);
        reload();
        await new Promise((resolve) => setTimeout(resolve, 500));
        // curl's own clock: the time spawning it takes on a loaded machine is not the proxy's.
        const timed = (...args: string[]) => {
            const r = inNetns(ns, "curl", ["-sg", "-o", "/dev/null", "-D", "-", "-w", "time=%{time_total}", "--max-time", "10", ...args]);
            const head = r.stdout.toLowerCase();
            return { status: Number(head.split(" ")[1]), head, ms: Math.round(Number(/time=([\d.]+)$/.exec(r.stdout)?.[1]) * 1000) };
        };
        const passive = timed("http://[2001:db8:100::1]/");
        const connectMs = originConnectTimeoutMs(popRenderInput(labSpec(), "lax"));
        console.log(`nginx: first origin dropped: ${passive.status} from ${/^x-origin: (\S+)$/m.exec(passive.head)?.[1]} after ${passive.ms} ms (proxy_connect_timeout ${connectMs}ms)`);
        assert.equal(passive.status, 200);
        assert.match(passive.head, /^x-origin: origin2$/m);
        // A lower bound only (a timeout cannot fire early): it moved because the connect timed out, not for another reason.
        assert.ok(passive.ms >= connectMs - 20, `moved after ${passive.ms} ms, before the connect timeout of ${connectMs} ms`);
        for (let i = 0; i < 4; i++) {
            const next = timed("http://[2001:db8:100::1]/");
            assert.match(next.head, /^x-origin: origin2$/m);
            assert.ok(next.ms < 1500, `request ${i} took ${next.ms} ms: the failed path was tried again`);
        }

        // Active: what the health agent writes when its checks fail, then a reload. All paths down:
        // a short 503 with Retry-After at once, still marked with the PoP.
        const upstreamsFile = path.join(dir, "upstreams.conf");
        const pristine = fs.readFileSync(upstreamsFile, "utf8");
        fs.writeFileSync(upstreamsFile, pristine.replace(/ backup;|;(?=   #)/g, " down;"));
        reload();
        await new Promise((resolve) => setTimeout(resolve, 500));
        const none = timed("http://[2001:db8:100::1]/");
        console.log(`nginx: every path down: ${none.status} after ${none.ms} ms`);
        assert.equal(none.status, 503);
        assert.ok(none.ms < 1000, `503 after ${none.ms} ms`);
        assert.match(none.head, /^retry-after: 5$/m);
        assert.match(none.head, /^cache-control: no-store$/m);
        assert.match(none.head, /^x-anycast-pop: lax$/m);
        assert.match(curl("http://[2001:db8:100::1]/").body, /Service temporarily unavailable/);
        // The origins are back: the agent writes the file as pushed again.
        inNetnsOk(ns, "nft", ["delete", "table", "inet", "drop_origin"]);
        fs.writeFileSync(upstreamsFile, pristine);
        reload();
        await waitFor("the first origin serving again", 5000, () => (/^x-origin: origin$/m.test(curl("http://[2001:db8:100::1]/").head) ? true : undefined));
    });

    test("live: a stale cache serves expired content while no origin answers", async (t) => {
        if (!needRoot(t, "network namespace for the anycast address") || !needTools(t, "nginx", "openssl", "ip", "curl")) return;
        const dir = tempDir("nginx-stale");
        cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
        // The cache lives under it and nginx's workers (www-data) write it: mkdtemp's 0700 would
        // keep them out, and every cacheable request would end in a 500.
        fs.chmodSync(dir, 0o755);
        const tls = makeTls(dir);
        const input = cachedInput();
        const conf = path.join(dir, "nginx.conf");
        fs.writeFileSync(conf, relocated({ ...input, failover: { ...input.failover!, staleCache: { maxSizeMb: 8, validSeconds: 1, keepSeconds: 600 } } }, dir, tls));
        const ns = uniqueNetnsName("ngs");
        createNetns(ns);
        cleanups.push(() => deleteNetns(ns));
        const origin = labSpec().origins[0];
        for (const address of ["2001:db8:100::1/128", `${origin.meshAddress}/128`]) inNetnsOk(ns, "ip", ["addr", "add", address, "dev", "lo", "nodad"]);
        const server = spawnTracked(cleanups, "ip", ["netns", "exec", ns, process.execPath, "-e", `
            let n = 0;
            require("node:http").createServer((req, res) => res.end("version " + (++n) + "\\n"))
                .listen(8080, ${JSON.stringify(origin.meshAddress)}, () => console.log("listening"));`]);
        await waitFor("origin listening", 30_000, () => (server.stdout.includes("listening") ? true : undefined));
        const get = (...args: string[]) => {
            const r = inNetns(ns, "curl", ["-sg", "-D", "-", "--max-time", "5", ...args, "http://[2001:db8:100::1]/page"]);
            const [head, ...body] = r.stdout.split("\r\n\r\n");
            return { status: Number(head.split(" ")[1]), head: head.toLowerCase(), body: body.join("") };
        };
        const nginx = spawnTracked(cleanups, "ip", ["netns", "exec", ns, "nginx", "-p", dir + "/", "-c", conf, "-g", "daemon off;"]);
        await waitFor("nginx serving", 20_000, () => {
            assert.equal(nginx.exited, false, nginx.stderr);
            return get().status === 200 ? true : undefined;
        });
        const cached = get();
        assert.match(cached.head, /^x-anycast-cache: (hit|miss)$/m);
        assert.match(cached.head, /^x-anycast-pop: lax$/m);
        // Credentials bypass the cache: a fresh answer from the origin.
        assert.match(get("-H", "Authorization: Bearer x").head, /^x-anycast-cache: bypass$/m);
        // The origin goes away. Until the entry expires (validSeconds 1, counted by nginx in whole
        // seconds: up to 2 s) every answer is the cached copy, a hit; then the same copy, stale.
        server.child.kill("SIGTERM");
        await waitFor("origin gone", 5000, () => (server.exited ? true : undefined));
        const started = Date.now();
        const wrong: string[] = [];
        const stale = await waitFor("the expired entry served stale", 20_000, () => {
            const answer = get();
            const cache = /^x-anycast-cache: (\S+)$/m.exec(answer.head)?.[1];
            // waitFor retries on a throw: a wrong answer is collected, so it fails the test instead.
            if (answer.status !== 200 || answer.body !== cached.body || !["hit", "stale"].includes(cache ?? "")) {
                wrong.push(`${answer.status} ${cache} ${JSON.stringify(answer.body)}`);
            }
            return cache === "stale" ? answer : undefined;
        });
        assert.deepEqual(wrong, [], "without the origin every answer is the cached copy (a hit, then stale)");
        console.log(`nginx: origin gone, stale copy served: ${stale.status} after ${Date.now() - started} ms`);
        // Nothing cached for this one: the 503.
        const r = inNetns(ns, "curl", ["-sg", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://[2001:db8:100::1]/never-seen"]);
        assert.equal(r.stdout, "503");
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
