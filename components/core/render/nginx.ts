/**
 * /etc/nginx/nginx.conf of a PoP: the reverse proxy on the anycast address.
 *
 * The PoP's nginx listens on the anycast address only (never on the host's unicast address, so
 * the origin cannot be reached around Cloudflare through a PoP's own IP), forwards to the origins
 * over the WireGuard mesh, and marks every response, errors included, with the PoP that served
 * it. Port 443 requires Cloudflare's Authenticated Origin Pulls client certificate; port 80 is
 * for Cloudflare's "Flexible" mode and for the health agent on the host itself.
 *
 * Origin failover is layered. The upstream block lists every path to every origin: directly over
 * the mesh, or through another PoP's relay (its nginx on its mesh address, which forwards only to
 * the origins it reaches itself, so a request crosses at most one relay). nginx skips a path that
 * fails (passive), and the health agent rewrites the upstream file from its own checks (active:
 * the nearest working path primary, broken ones `down`) and reloads nginx. When no path is left,
 * every request gets a short 503 with Retry-After at once, or stale content from the optional cache.
 *
 * Written for nginx 1.22 (Debian 12): HTTP/2 is switched on by the `http2` listen parameter
 * (the `http2 on;` directive only exists from 1.25.1).
 */
import { IpAddress } from "../addressing";
import { PopRenderInput } from "../model";
import { DEFAULT_FAILOVER } from "../origins";
import { deployedLayout, DEPLOYED_PATHS, HostLayout, HostPaths } from "./layout";
import { NGINX_STUB_STATUS } from "../monitoring/exporters";
import { directOrder } from "../health/paths";
import { renderUpstreams, UPSTREAM, UpstreamPath } from "../health/upstreams";

/** Where the TLS material lands on a real PoP (the deployed layout's; paths from the artifact registry). */
export const TLS_PATHS: HostPaths["tls"] = DEPLOYED_PATHS.tls;

/** Answered by nginx itself; the health agent on the host asks it to know the proxy is serving. */
export const HEALTH_ENDPOINT = "/.well-known/anycast-health";

/** The runtime paths of the config a real PoP gets (the deployed layout's; renderNginxConfig takes others). */
export const NGINX_PATHS = {
    pid: DEPLOYED_PATHS.agent.nginxPidFile,
    errorLog: DEPLOYED_PATHS.nginx.errorLog,
    accessLog: DEPLOYED_PATHS.nginx.accessLog,
    /** The paths to the origins (upstream blocks): pushed once, then rewritten by the health agent. */
    upstreams: DEPLOYED_PATHS.agent.upstreamsFile,
    /** The stale-content cache (failover.staleCache). */
    staleCache: DEPLOYED_PATHS.nginx.staleCache,
} as const;

/**
 * How long nginx waits for a TCP connection to a path before it tries the next one: the agent's
 * own check timeout (health.timeout). A connect over the mesh that takes longer is a broken path
 * to the agent too, and every request that arrives while the first one waits joins it on the dead
 * path: with 2 s, a silently cut tunnel cost ~40 requests in the lab; max_fails=1 then skips the
 * path for every request after the first timeout.
 */
export function originConnectTimeoutMs(input: Pick<PopRenderInput, "health">): number {
    return Math.max(1, Math.round(input.health.timeout * 1000));
}

/**
 * After a failed attempt (refused, timed out, 502-504) nginx skips that path for this long and
 * tries the next one; the health agent's active checks mark a path down sooner and for as long
 * as it stays broken (see anycast-health).
 */
export const PASSIVE_FAIL_TIMEOUT_SECONDS = 5;

export { UPSTREAM };

/** `[v6]` or `v4`, as nginx wants an address in `listen`, `server` and `allow`. */
function hostPart(address: IpAddress): string {
    return address.inUrl();
}

/** nginx string literal: the PoP name is validated to [a-z0-9-], but quote it anyway. */
function quoted(text: string): string {
    return `"${text.replace(/["\\$]/g, (c) => `\\${c}`)}"`;
}

/** The paths a PoP has, in its default order: origins by preference, then relays by peer order. */
export function upstreamPaths(input: PopRenderInput): { direct: UpstreamPath[]; relay: UpstreamPath[] } {
    const origins = input.origins ?? [input.origin];
    const failover = input.failover ?? DEFAULT_FAILOVER;
    const direct = directOrder({ origins, originPreference: input.pop.originPreference ?? [] }).map((k): UpstreamPath =>
        ({ label: origins[k].name, server: `${hostPart(origins[k].meshAddress)}:${origins[k].port}`, kind: "direct", up: true }));
    const relay = failover.relay
        ? (input.peers ?? []).map((p): UpstreamPath => ({ label: `via ${p.name}`, server: `${hostPart(p.meshAddress)}:${failover.relayPort}`, kind: "relay", up: true }))
        : [];
    return { direct, relay };
}

/**
 * /etc/anycast/nginx-upstreams.conf as first pushed: every path up, the preferred origin primary,
 * the rest backups. From then on the health agent owns the file; it renders it with the same
 * function (components/core/health/upstreams.ts), with its own choice of primary and `down` on
 * the paths its checks find broken, and reloads nginx.
 */
export function renderNginxUpstreams(input: PopRenderInput, file: string = NGINX_PATHS.upstreams): string {
    const { direct, relay } = upstreamPaths(input);
    return renderUpstreams({ pop: input.pop.name, file, paths: [...direct, ...relay], primary: 0, passiveFailTimeoutS: PASSIVE_FAIL_TIMEOUT_SECONDS });
}

/**
 * The PoP's nginx.conf on a host with this layout (only its paths matter here: the connect
 * timeout follows the configured health.timeout, as on a host).
 */
export function renderNginxConfig(input: PopRenderInput, layout: HostLayout = deployedLayout(input)): string {
    const paths = layout.paths;
    const anycast = input.announcement.address;
    const listenHost = hostPart(anycast);
    const pop = input.pop.name;
    const origins = input.origins ?? [input.origin];
    const failover = input.failover ?? DEFAULT_FAILOVER;
    const cache = failover.staleCache;
    const popHeader = `add_header X-Anycast-PoP ${quoted(pop)} always;`;
    const retryAfter = failover.retryAfter;

    const proxyHeaders = (relayed: boolean) => relayed
        ? [
            `# The visitor's PoP set these; this relay is an internal hop and passes them on unchanged.`,
            `proxy_set_header X-Forwarded-For $http_x_forwarded_for;`,
            `proxy_set_header X-Real-IP $http_x_real_ip;`,
            `proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;`,
        ]
        : [
            `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`,
            `proxy_set_header X-Real-IP $remote_addr;`,
            `proxy_set_header X-Forwarded-Proto $scheme;`,
        ];
    const proxyTo = (upstream: string, relayed: boolean) => [
        `proxy_pass http://${upstream};`,
        `# HTTP/1.1 with an empty Connection header lets the upstream keepalive pool reuse connections.`,
        `proxy_http_version 1.1;`,
        `proxy_set_header Connection "";`,
        `proxy_set_header Host $host;`,
        ...proxyHeaders(relayed),
        `proxy_connect_timeout ${originConnectTimeoutMs(input)}ms;`,
        `# Passive failover: a path that refuses, times out or answers 502-504 is skipped for a while`,
        `# and the request goes to the next one (the health agent's checks mark broken paths down).`,
        `proxy_next_upstream error timeout http_502 http_503 http_504;`,
    ];
    const staleCache = cache ? [
        `# Stale content while no origin answers (failover.staleCache). Requests with credentials`,
        `# neither use nor fill the cache.`,
        `proxy_cache anycast_stale;`,
        `proxy_cache_key $scheme$host$request_uri;`,
        `proxy_cache_use_stale error timeout invalid_header updating http_500 http_502 http_503 http_504;`,
        `proxy_cache_background_update on;`,
        `proxy_cache_lock on;`,
        `proxy_cache_bypass $http_authorization;`,
        `proxy_no_cache $http_authorization;`,
        ...(cache.validSeconds > 0 ? [`proxy_cache_valid 200 301 302 ${cache.validSeconds}s;`] : []),
        `# add_header here replaces the inherited ones, so the PoP header is repeated.`,
        popHeader,
        `add_header X-Anycast-Cache $upstream_cache_status always;`,
    ] : [];
    // nginx turns the two characters \n inside a quoted string into a newline.
    const page = `<!DOCTYPE html>\\n<title>503 Service Unavailable</title>\\n<h1>Service temporarily unavailable</h1>\\n` +
        `<p>The site cannot be reached right now. Please try again in ${retryAfter} seconds.</p>\\n`;
    const unavailable = (extraHeaders: string[]) => [
        `# Every origin unreachable (nginx found no live path, or the last one failed): answer at once with`,
        `# a short 503 the visitor's browser and Cloudflare may retry, instead of an error page or a hang.`,
        `error_page 502 503 504 = @origin_unavailable;`,
        `location @origin_unavailable {`,
        `    default_type text/html;`,
        `    add_header Retry-After ${retryAfter} always;`,
        `    add_header Cache-Control "no-store" always;`,
        ...extraHeaders.map((h) => `    ${h}`),
        `    return 503 "${page}";`,
        `}`,
    ];

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
        `    return 200 ${quoted(`${pop} ok`).slice(0, -1)}\\n";`,
        `}`,
        ``,
        `location / {`,
        ...indent(proxyTo(UPSTREAM.visitors, false), 1),
        ...indent(staleCache, 1),
        `}`,
        ``,
        ...unavailable([popHeader]),
    ];

    const mesh = input.mesh?.cidr;
    const meshFamily = mesh?.family ?? input.origin.meshAddress.family;
    const relayServer = [
        `# For the other PoPs, over the mesh only (the firewall admits failover.relayPort from the mesh on`,
        `# wg0): ${failover.relay ? "a relay to the origins this PoP reaches itself" : "nothing while failover.relay is off"}. The wildcard listen`,
        `# does not depend on wg0 being up when nginx starts.`,
        `server {`,
        `    listen ${meshFamily === 6 ? `[::]:${failover.relayPort} ipv6only=on` : `${failover.relayPort}`};`,
        `    server_name _;`,
        ...(mesh ? [`    allow ${mesh};`] : origins.map((o) => `    allow ${o.meshAddress};`)),
        `    deny all;`,
        `    add_header X-Anycast-Relay ${quoted(pop)} always;`,
        ``,
        ...(failover.relay
            ? [`    location / {`, ...indent(proxyTo(UPSTREAM.relay, true), 2), `    }`, ``,
                ...indent(unavailable([`add_header X-Anycast-Relay ${quoted(pop)} always;`]), 1)]
            : [`    location / {`, `        return 404;`, `    }`]),
        `}`,
    ];

    const lines = [
        `# nginx.conf for PoP ${pop}, rendered by pulumi-anycast: do not edit on the host.`,
        `user www-data;`,
        `worker_processes auto;`,
        `pid ${paths.agent.nginxPidFile};`,
        `error_log ${paths.nginx.errorLog} warn;`,
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
        `    # $upstream_response_time separates origin latency from the PoP's own; $upstream_addr shows the path.`,
        `    log_format anycast '$remote_addr [$time_local] "$host" "$request" $status $body_bytes_sent '`,
        `                       'rt=$request_time urt=$upstream_response_time ua=$upstream_addr "$http_user_agent"';`,
        `    access_log ${paths.nginx.accessLog} anycast;`,
        ``,
        `    ssl_protocols TLSv1.2 TLSv1.3;`,
        `    ssl_prefer_server_ciphers off;`,
        `    ssl_session_cache shared:SSL:10m;`,
        `    ssl_session_timeout 1h;`,
        ``,
        `    # The origin${origins.length > 1 ? "s" : ""} (${origins.map((o) => o.name).join(", ")}), reached over the WireGuard mesh directly` +
            (failover.relay ? " or through another PoP." : "."),
        `    # Upstreams "${UPSTREAM.visitors}" and "${UPSTREAM.relay}": which path is primary and which are down is the health agent's`,
        `    # decision, written to this file before it reloads nginx.`,
        `    include ${paths.agent.upstreamsFile};`,
        ``,
        ...(cache ? [
            `    # failover.staleCache: ${cache.maxSizeMb} MB per PoP; entries unused for ${cache.keepSeconds} s are dropped.`,
            `    proxy_cache_path ${paths.nginx.staleCache} levels=1:2 keys_zone=anycast_stale:10m max_size=${cache.maxSizeMb}m inactive=${cache.keepSeconds}s use_temp_path=off;`,
            ``,
        ] : []),
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
        `    ${popHeader}`,
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
        `        ssl_certificate ${paths.tls.certificate};`,
        `        ssl_certificate_key ${paths.tls.key};`,
        `        ssl_client_certificate ${paths.tls.clientCa};`,
        `        ssl_verify_client on;`,
        ``,
        ...indent(locations, 2),
        `    }`,
        ``,
        ...indent(relayServer, 1),
        ``,
        `    # nginx's counters for the nginx exporter on this host (components/core/monitoring/exporters.ts):`,
        `    # on loopback only; the exporter serves them to the mesh.`,
        `    server {`,
        `        listen ${NGINX_STUB_STATUS.address}:${NGINX_STUB_STATUS.port};`,
        `        server_name _;`,
        `        access_log off;`,
        `        allow ${NGINX_STUB_STATUS.address};`,
        `        deny all;`,
        `        location = ${NGINX_STUB_STATUS.path} {`,
        `            stub_status;`,
        `        }`,
        `        location / {`,
        `            return 404;`,
        `        }`,
        `    }`,
        `}`,
    ];
    return lines.join("\n") + "\n";
}

function indent(lines: string[], depth: number): string[] {
    return lines.map((l) => (l === "" ? "" : " ".repeat(depth * 4) + l));
}
