/**
 * The PoP's nginx.conf: golden files for review, its content, and the real `nginx -t` for syntax
 * and semantics. What the config promises when nginx runs is in test/live/nginx.test.ts.
 */
import { test, describe, after } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
    renderNginxConfig, renderNginxUpstreams, TLS_PATHS, HEALTH_ENDPOINT, NGINX_PATHS, originConnectTimeoutMs,
} from "../../components/core/render/nginx";
import { PopRenderInput } from "../../components/core/model";
import { assertGolden } from "../helpers/golden";
import { labSpec, popRenderInput, prodSpec } from "../helpers/fixtures";
import { createNetns, deleteNetns, inNetns, inNetnsOk, needRoot, needTools, tempDir, uniqueNetnsName } from "../helpers/tools";
import { cachedInput, makeTls, renderedIn } from "../helpers/nginx";

const prodLax = () => renderNginxConfig(popRenderInput(prodSpec(), "lax"));
const labLax = () => renderNginxConfig(popRenderInput(labSpec(), "lax"));
describe("renderNginxConfig", () => {
    test("golden: prod lax", () => assertGolden("nginx/prod-lax.conf", prodLax()));
    test("golden: lab lax", () => assertGolden("nginx/lab-lax.conf", labLax()));
    test("golden: lab lax with a stale cache", () => assertGolden("nginx/lab-lax-stale-cache.conf", renderNginxConfig(cachedInput())));
    test("golden: upstreams lab lax (two origins, two relays)", () => assertGolden("nginx/lab-lax-upstreams.conf", renderNginxUpstreams(popRenderInput(labSpec(), "lax"))));
    test("golden: upstreams prod lax", () => assertGolden("nginx/prod-lax-upstreams.conf", renderNginxUpstreams(popRenderInput(prodSpec(), "lax"))));

    test("is deterministic", () => assert.equal(prodLax(), prodLax()));

    test("serves visitors on the anycast address only, 80 plain and 443 TLS with HTTP/2; the mesh on the relay port; stub_status on loopback", () => {
        const listens = labLax().split("\n").map((l) => l.trim()).filter((l) => l.startsWith("listen "));
        assert.deepEqual(listens, ["listen [2001:db8:100::1]:80;", "listen [2001:db8:100::1]:443 ssl http2;", "listen [::]:8081 ipv6only=on;",
            "listen 127.0.0.1:9145;"]);
        // The exporter's counters: loopback only, and nothing else on that server.
        const status = labLax().split("listen 127.0.0.1:9145;")[1];
        assert.match(status, /^\s+allow 127\.0\.0\.1;\n\s+deny all;\n\s+location = \/stub_status \{\n\s+stub_status;/m);
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

    test("upstreams: the preferred origin primary, the relays backups, the other origins standing by, all with passive failover", () => {
        const lab = renderNginxUpstreams(popRenderInput(labSpec(), "lax"));
        const servers = (block: string) => lab.split(`upstream ${block} {`)[1].split("}")[0].split("\n").map((l) => l.trim()).filter((l) => l.startsWith("server "));
        assert.deepEqual(servers("origin"), [
            "server [fd00:a:1::1]:8080 max_fails=1 fail_timeout=5s;   # origin",
            // A request whose direct path fails goes through another PoP at once: nginx picks among
            // backups round-robin, and when this PoP's own tunnels broke, origin2's is dead too.
            "server [fd00:a:1:0:ffff:ffff:ffff:ffff]:8080 max_fails=1 fail_timeout=5s down;   # origin2 (standby: the relays are the backups)",
            "server [fd00:a:1::3]:8081 max_fails=1 fail_timeout=5s backup;   # via ams",
            "server [fd00:a:1::4]:8081 max_fails=1 fail_timeout=5s backup;   # via sgp",
        ]);
        // What lax relays for the others: its own direct paths only, so a request crosses at most one relay.
        assert.deepEqual(servers("origin_direct"), [
            "server [fd00:a:1::1]:8080 max_fails=1 fail_timeout=5s;   # origin",
            "server [fd00:a:1:0:ffff:ffff:ffff:ffff]:8080 max_fails=1 fail_timeout=5s backup;   # origin2",
        ]);
        // Without relays (failover.relay off) the other origins are the backups.
        const noRelay = labSpec();
        const plain = renderNginxUpstreams(popRenderInput({ ...noRelay, failover: { ...noRelay.failover, relay: false } }, "lax"));
        assert.match(plain, /^ {4}server \[fd00:a:1:0:ffff:ffff:ffff:ffff\]:8080 max_fails=1 fail_timeout=5s backup;   # origin2$/m);
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

describe("nginx accepts the rendered config", () => {
    const cleanups: (() => void)[] = [];
    after(() => {
        for (const cleanup of cleanups.reverse()) cleanup();
    });

    // A tool check, with a throwaway namespace: nginx -t binds every listen socket, so it needs the
    // anycast address, which this machine must not get.
    test("nginx -t: syntax ok, and it binds the listen addresses, so it needs the anycast address", (t) => {
        if (!needRoot(t, "network namespace for the anycast address") || !needTools(t, "nginx", "openssl", "ip")) return;
        const dir = tempDir("nginx-t");
        cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
        const tls = makeTls(dir);
        const inputs: Array<[string, PopRenderInput]> = [["prod", popRenderInput(prodSpec(), "lax")], ["lab", popRenderInput(labSpec(), "lax")], ["cache", cachedInput()]];
        for (const [name, input] of inputs) {
            const file = path.join(dir, `${name}.conf`);
            fs.writeFileSync(file, renderedIn(input, dir, tls));
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
});
