/**
 * /etc/anycast/nginx-upstreams.conf: nginx's paths to the origins. One renderer for both of its
 * writers: the stack pushes the starting point (every path up, the preferred origin primary;
 * components/core/render/nginx.ts), and the health agent rewrites it from its checks (its choice
 * of primary, broken paths `down`) and reloads nginx.
 *
 * Two upstream blocks. `origin` is what visitors are proxied to: every path, directly over the
 * mesh or through another PoP's relay. `origin_direct` is what this PoP relays for the others:
 * its own direct paths only, never another relay, so a request crosses at most one relay.
 *
 * When the primary is direct and a relay works, the relays are the backups and the other direct
 * paths stand by (`down` to nginx). A request whose direct path fails then goes through another
 * PoP at once, which reaches the origins by its own tunnels. Trying the next direct path first
 * would cost a second connect timeout whenever this PoP's tunnels are what broke: nginx picks
 * among backups round-robin, not in order. The health agent then chooses the next primary
 * (another direct path if one works).
 */

/** Upstream names: what visitors are proxied to, and what this PoP relays for the others. */
export const UPSTREAM = { visitors: "origin", relay: "origin_direct" } as const;

/** One way to an origin, as nginx's `server` line and the agent's status name it. */
export interface UpstreamPath {
    /** `origin` (direct) or `via ams` (relay). */
    label: string;
    /** `[address]:port` or `address:port`. */
    server: string;
    kind: "direct" | "relay";
    /** False: nginx must not use it (`down`). */
    up: boolean;
}

export interface UpstreamsInput {
    pop: string;
    /** Where the file lives on the host (named in its first line). */
    file: string;
    /** Every path in the default order: the direct ones by preference, then the relays by peer order. */
    paths: UpstreamPath[];
    /** Index into `paths` of the primary, or -1 when no path works (every request gets the 503). */
    primary: number;
    /** nginx's passive fail_timeout in seconds. */
    passiveFailTimeoutS: number;
}

/**
 * A path's role in nginx's upstream: the one it uses first, a backup, standing by (works, but
 * `down` to nginx while the relays are the backups), or down (broken).
 */
export type UpstreamRole = "primary" | "backup" | "standby" | "down";

/** The role of each of `paths` in the visitors' upstream, with `primary` its index or -1. */
export function upstreamRoles(paths: readonly UpstreamPath[], primary: number): UpstreamRole[] {
    const first = primary >= 0 ? paths[primary] : undefined;
    const relaysStandIn = first?.kind === "direct" && paths.some((p) => p.kind === "relay" && p.up);
    return paths.map((p, k) => k === primary ? "primary" : !p.up ? "down"
        : relaysStandIn && p.kind === "direct" ? "standby" : "backup");
}

const NGINX_ROLE: Record<UpstreamRole, string> = { primary: "", backup: " backup", standby: " down", down: " down" };

function serverLine(p: UpstreamPath, role: UpstreamRole, failS: number): string {
    const note = role === "standby" ? " (standby: the relays are the backups)" : "";
    return `    server ${p.server} max_fails=1 fail_timeout=${failS}s${NGINX_ROLE[role]};   # ${p.label}${note}`;
}

function block(name: string, keepalive: number, paths: UpstreamPath[], roles: UpstreamRole[], failS: number): string[] {
    // The primary first, then the others in their default order.
    const order = paths.map((_, k) => k).sort((a, b) => Number(roles[b] === "primary") - Number(roles[a] === "primary"));
    return [
        `upstream ${name} {`,
        `    zone ${name} 64k;`,
        ...order.map((k) => serverLine(paths[k], roles[k], failS)),
        `    keepalive ${keepalive};`,
        `}`,
    ];
}

export function renderUpstreams(input: UpstreamsInput): string {
    const primary = input.primary >= 0 ? input.paths[input.primary] : undefined;
    const direct = input.paths.filter((p) => p.kind === "direct");
    // What this PoP relays for the others: its own primary first when direct, the rest backups.
    const relayPrimary = primary?.kind === "direct" ? direct.indexOf(primary) : -1;
    const relayRoles = direct.map((p, k): UpstreamRole => (k === relayPrimary ? "primary" : p.up ? "backup" : "down"));
    return [
        `# ${input.file} for PoP ${input.pop}: the paths to the origins, which nginx.conf includes.`,
        `# The health agent rewrites it from its checks (primary, backup, standby, down); the deploy pushes its starting point.`,
        ...block(UPSTREAM.visitors, 32, input.paths, upstreamRoles(input.paths, input.primary), input.passiveFailTimeoutS),
        ``,
        `# What this PoP relays for the other PoPs: its own direct paths only, never another relay.`,
        ...block(UPSTREAM.relay, 16, direct, relayRoles, input.passiveFailTimeoutS),
        ``,
    ].join("\n");
}
