/**
 * /etc/anycast/nginx-upstreams.conf: nginx's paths to the origins. One renderer for both of its
 * writers: the stack pushes the starting point (every path up, the preferred origin primary;
 * components/core/render/nginx.ts), and the health agent rewrites it from its checks (its choice
 * of primary, broken paths `down`) and reloads nginx.
 *
 * Two upstream blocks. `origin` is what visitors are proxied to: every path, directly over the
 * mesh or through another PoP's relay. `origin_direct` is what this PoP relays for the others:
 * its own direct paths only, never another relay, so a request crosses at most one relay.
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

function serverLine(p: UpstreamPath, role: "" | " backup" | " down", failS: number): string {
    return `    server ${p.server} max_fails=1 fail_timeout=${failS}s${role};   # ${p.label}`;
}

function block(name: string, keepalive: number, paths: UpstreamPath[], primary: UpstreamPath | undefined, failS: number): string[] {
    const rest = paths.filter((p) => p !== primary);
    return [
        `upstream ${name} {`,
        `    zone ${name} 64k;`,
        ...(primary ? [serverLine(primary, "", failS)] : []),
        ...rest.map((p) => serverLine(p, p.up ? " backup" : " down", failS)),
        `    keepalive ${keepalive};`,
        `}`,
    ];
}

export function renderUpstreams(input: UpstreamsInput): string {
    const primary = input.primary >= 0 ? input.paths[input.primary] : undefined;
    const direct = input.paths.filter((p) => p.kind === "direct");
    return [
        `# ${input.file} for PoP ${input.pop}: the paths to the origins, which nginx.conf includes.`,
        `# The health agent rewrites it from its checks (primary, backup, down); the deploy pushes its starting point.`,
        ...block(UPSTREAM.visitors, 32, input.paths, primary, input.passiveFailTimeoutS),
        ``,
        `# What this PoP relays for the other PoPs: its own direct paths only, never another relay.`,
        ...block(UPSTREAM.relay, 16, direct, primary?.kind === "direct" ? primary : undefined, input.passiveFailTimeoutS),
        ``,
    ].join("\n");
}
