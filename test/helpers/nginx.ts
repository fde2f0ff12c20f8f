/** The PoP's nginx.conf made runnable in a test: TLS material and paths a test may write. */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { NGINX_PATHS, renderNginxConfig, renderNginxUpstreams, TLS_PATHS } from "../../components/core/render/nginx";
import { PopRenderInput } from "../../components/core/model";
import { labSpec, popRenderInput } from "./fixtures";
import { runOk } from "./tools";

/** The lab's lax with a stale cache: what `failover.staleCache: true` renders. */
export const cachedInput = (): PopRenderInput => {
    const input = popRenderInput(labSpec(), "lax");
    return { ...input, failover: { ...input.failover!, staleCache: { maxSizeMb: 64, validSeconds: 30, keepSeconds: 3600 } } };
};

/** Self-signed origin certificate, an origin-pull CA and a client certificate it signed. */
export function makeTls(dir: string): { cert: string; key: string; ca: string; clientCert: string; clientKey: string } {
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
export function relocated(input: PopRenderInput, dir: string, tls: ReturnType<typeof makeTls>): string {
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
