/**
 * /etc/nginx/nginx.conf of a PoP: the reverse proxy on the anycast address.
 *
 * The PoP's nginx listens on the anycast address only (never on the host's unicast address, so
 * the origin cannot be reached around Cloudflare through a PoP's own IP), forwards to the origin
 * over the WireGuard mesh, and marks every response, errors included, with the PoP that served
 * it. Port 443 requires Cloudflare's Authenticated Origin Pulls client certificate; port 80 is
 * for Cloudflare's "Flexible" mode and for the health agent on the host itself.
 *
 * Written for nginx 1.22 (Debian 12): HTTP/2 is switched on by the `http2` listen parameter
 * (the `http2 on;` directive only exists from 1.25.1).
 */
import { familyOf } from "../addressing";
import { ARTIFACTS } from "../artifacts";
import { PopRenderInput } from "../model";

/** Where the TLS material lands on a PoP (pushed by the AnycastPoP component; paths from the artifact registry). */
export const TLS_PATHS = {
    /** The origin certificate Cloudflare sees (for example a Cloudflare Origin CA certificate). */
    certificate: ARTIFACTS["origin.pem"].remotePath,
    key: ARTIFACTS["origin.key"].remotePath,
    /** The CA that signs Cloudflare's Authenticated Origin Pulls client certificate. */
    clientCa: ARTIFACTS["origin-pull-ca.pem"].remotePath,
} as const;

/** Answered by nginx itself; the health agent on the host asks it to know the proxy is serving. */
export const HEALTH_ENDPOINT = "/.well-known/anycast-health";

/** The runtime paths of the rendered config, so a test or the lab can relocate them. */
export const NGINX_PATHS = {
    pid: "/run/nginx.pid",
    errorLog: "/var/log/nginx/error.log",
    accessLog: "/var/log/nginx/access.log",
} as const;

/** Seconds nginx waits for a TCP connection to the origin: an unreachable origin must fail fast. */
export const ORIGIN_CONNECT_TIMEOUT_SECONDS = 2;

/** `[v6]` or `v4`, as nginx wants an address in `listen`, `server` and `allow`. */
function hostPart(address: string): string {
    return familyOf(address) === 6 ? `[${address}]` : address;
}

/** nginx string literal: the PoP name is validated to [a-z0-9-], but quote it anyway. */
function quoted(text: string): string {
    return `"${text.replace(/["\\$]/g, (c) => `\\${c}`)}"`;
}

export function renderNginxConfig(input: PopRenderInput): string {
    const anycast = input.deployment.address;
    const listenHost = hostPart(anycast);
    const pop = input.pop.name;
    const origin = `${hostPart(input.origin.meshAddress)}:${input.origin.port}`;

    // The same locations serve both server blocks; they are generated once and indented into
    // each block, so the file stays self-contained (one artifact, no snippet to keep in sync).
    const locations = [
        `# The health agent on this host asks nginx itself whether the proxy serves. allow/deny would`,
        `# not guard it: they run in the access phase, after \`return\` has already answered.`,
        `location = ${HEALTH_ENDPOINT} {`,
        `    access_log off;`,
        `    default_type text/plain;`,
        `    if ($anycast_health_client = 0) {`,
        `        return 403;`,
        `    }`,
        // nginx turns the two characters \n inside a quoted string into a newline.
        `    return 200 ${quoted(`${pop} ok`).slice(0, -1)}\\n";`,
        `}`,
        ``,
        `location / {`,
        `    proxy_pass http://origin;`,
        `    # HTTP/1.1 with an empty Connection header lets the upstream keepalive pool reuse connections.`,
        `    proxy_http_version 1.1;`,
        `    proxy_set_header Connection "";`,
        `    proxy_set_header Host $host;`,
        `    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`,
        `    proxy_set_header X-Real-IP $remote_addr;`,
        `    proxy_set_header X-Forwarded-Proto $scheme;`,
        `    proxy_connect_timeout ${ORIGIN_CONNECT_TIMEOUT_SECONDS}s;`,
        `}`,
    ];
    const indent = (lines: string[], depth: number) =>
        lines.map((l) => (l === "" ? "" : " ".repeat(depth * 4) + l));

    const lines = [
        `# nginx.conf for PoP ${pop}, rendered by pulumi-anycast: do not edit on the host.`,
        `user www-data;`,
        `worker_processes auto;`,
        `pid ${NGINX_PATHS.pid};`,
        `error_log ${NGINX_PATHS.errorLog} warn;`,
        ``,
        `events {`,
        `    worker_connections 4096;`,
        `}`,
        ``,
        `http {`,
        `    server_tokens off;`,
        `    default_type application/octet-stream;`,
        `    sendfile on;`,
        `    tcp_nopush on;`,
        `    keepalive_timeout 65s;`,
        ``,
        `    # $upstream_response_time separates origin latency from the PoP's own.`,
        `    log_format anycast '$remote_addr [$time_local] "$host" "$request" $status $body_bytes_sent '`,
        `                       'rt=$request_time urt=$upstream_response_time "$http_user_agent"';`,
        `    access_log ${NGINX_PATHS.accessLog} anycast;`,
        ``,
        `    ssl_protocols TLSv1.2 TLSv1.3;`,
        `    ssl_prefer_server_ciphers off;`,
        `    ssl_session_cache shared:SSL:10m;`,
        `    ssl_session_timeout 1h;`,
        ``,
        `    # The origin (${input.origin.name}), reached over the WireGuard mesh.`,
        `    upstream origin {`,
        `        server ${origin};`,
        `        keepalive 32;`,
        `        keepalive_timeout 60s;`,
        `    }`,
        ``,
        `    # Who may ask the health endpoint: the host itself, whose requests to the anycast address`,
        `    # come from the anycast address, and loopback.`,
        `    geo $anycast_health_client {`,
        `        default 0;`,
        `        ${anycast} 1;`,
        `        ::1 1;`,
        `        127.0.0.1 1;`,
        `    }`,
        ``,
        `    # On every response, errors included, so a visitor (and the lab) can tell which PoP served.`,
        `    add_header X-Anycast-PoP ${quoted(pop)} always;`,
        ``,
        `    server {`,
        `        listen ${listenHost}:80;`,
        `        server_name _;`,
        ``,
        ...indent(locations, 2),
        `    }`,
        ``,
        `    # Cloudflare Authenticated Origin Pulls: only Cloudflare's client certificate gets in.`,
        `    server {`,
        `        listen ${listenHost}:443 ssl http2;`,
        `        server_name _;`,
        `        ssl_certificate ${TLS_PATHS.certificate};`,
        `        ssl_certificate_key ${TLS_PATHS.key};`,
        `        ssl_client_certificate ${TLS_PATHS.clientCa};`,
        `        ssl_verify_client on;`,
        ``,
        ...indent(locations, 2),
        `    }`,
        `}`,
    ];
    return lines.join("\n") + "\n";
}
