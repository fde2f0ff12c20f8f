/** The PoP's nginx.conf made runnable in a test: TLS material and paths a test may write. */
import * as fs from "node:fs";
import * as path from "node:path";
import { renderNginxConfig, renderNginxUpstreams } from "../../components/core/render/nginx";
import { PopRenderInput } from "../../components/core/model";
import { labSpec, layoutIn, popRenderInput } from "./fixtures";
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
 * The config rendered for a test's directory (a test cannot use /etc or /run): every path of its
 * layout in `dir`, the TLS files where makeTls wrote them, and the upstreams file it includes
 * written there as first pushed.
 */
export function renderedIn(input: PopRenderInput, dir: string, tls: ReturnType<typeof makeTls>): string {
    const inDir = layoutIn(input, dir);
    fs.writeFileSync(inDir.paths.agent.upstreamsFile, renderNginxUpstreams(input));
    return renderNginxConfig(input, { ...inDir, paths: { ...inDir.paths, tls: { certificate: tls.cert, key: tls.key, clientCa: tls.ca } } });
}
