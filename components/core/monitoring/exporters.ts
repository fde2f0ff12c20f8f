/**
 * What Prometheus scrapes on a PoP, in one place: the health agent's own /metrics and Debian's
 * bird and nginx exporters beside it. Each listens on the PoP's mesh address only; the firewall
 * (render/nftables.ts) admits the mesh, and only the mesh, to these ports; the monitoring bundle
 * (prometheus.ts) scrapes them; the lab runs the exporters with the same arguments.
 *
 * The exporters are configured by a systemd drop-in per unit, never by editing the package's
 * /etc/default file: that file is a dpkg conffile, and a changed conffile stops a later package
 * upgrade with a question. The drop-in is installed before the package (artifacts.ts
 * `beforePackages`), so the package's own first start already listens on the mesh address.
 */
import type { IpAddress } from "../addressing";

export type ExporterName = "bird" | "nginx";

export interface ExporterFacts {
    /** Debian 12's package, and its systemd unit (the same name). */
    package: string;
    /** The exporter's usual port (Prometheus' default port allocations, as Debian ships it). */
    port: number;
    /** The Prometheus job that scrapes it (monitoring/prometheus.yml). */
    job: string;
    /** What it tells, for the docs and the report. */
    description: string;
}

export const EXPORTERS: { readonly [N in ExporterName]: ExporterFacts } = {
    bird: {
        package: "prometheus-bird-exporter", port: 9324, job: "bird",
        description: "BIRD's protocols (BGP state, uptime, routes imported and exported, BFD), from its control socket",
    },
    nginx: {
        package: "prometheus-nginx-exporter", port: 9113, job: "nginx",
        description: "nginx's connections and requests, from stub_status on localhost",
    },
};

/** The Prometheus job of the health agents' /metrics (on health.statusPort). */
export const AGENT_JOB = "anycast-agent";

/**
 * nginx's stub_status, for the exporter on the same host only: a server of its own on loopback
 * (render/nginx.ts), never on the anycast or mesh address. A port no Debian package claims.
 */
export const NGINX_STUB_STATUS = { address: "127.0.0.1", port: 9145, path: "/stub_status" } as const;

/** `[v6]:port` or `v4:port`, as Go's listeners want it. */
export function listenAddress(address: IpAddress | string, port: number): string {
    const text = address.toString();
    return text.includes(":") ? `[${text}]:${port}` : `${text}:${port}`;
}

/** Where an exporter finds what it exports on this host: on a PoP, Debian's paths; in the lab, the namespace's. */
export interface ExporterSources {
    /** BIRD's control socket (the agent's `birdSocket`). */
    birdSocket: string;
    /** nginx's stub_status, as a URL. */
    stubStatusUrl: string;
}

export const DEFAULT_EXPORTER_SOURCES: ExporterSources = {
    birdSocket: "/run/bird/bird.ctl",
    stubStatusUrl: `http://${NGINX_STUB_STATUS.address}:${NGINX_STUB_STATUS.port}${NGINX_STUB_STATUS.path}`,
};

/** The exporter's command line (program first) listening on `meshAddress`. */
export function exporterArgv(name: ExporterName, meshAddress: IpAddress | string, sources: ExporterSources = DEFAULT_EXPORTER_SOURCES): string[] {
    const listen = listenAddress(meshAddress, EXPORTERS[name].port);
    switch (name) {
        case "bird":
            // -bird.v2: one socket, channels per protocol (BIRD 2); -format.new: bird_protocol_up{name,proto,...}.
            return [`/usr/bin/${EXPORTERS.bird.package}`, "-bird.v2", "-format.new", `-bird.socket=${sources.birdSocket}`,
                `-web.listen-address=${listen}`];
        case "nginx":
            // Retries at start ride out an nginx that comes up after the exporter (a boot, a first deploy).
            return [`/usr/bin/${EXPORTERS.nginx.package}`, `-nginx.scrape-uri=${sources.stubStatusUrl}`, "-nginx.retries=30",
                `-web.listen-address=${listen}`];
    }
}

/**
 * The unit's drop-in: our command line instead of the package's `$ARGS`, started after the mesh
 * (its address exists only once wg0 is up) and restarted until it can bind it.
 */
export function renderExporterDropIn(name: ExporterName, meshAddress: IpAddress | string): string {
    const argv = exporterArgv(name, meshAddress);
    return [
        `# ${EXPORTERS[name].package} for pulumi-anycast, rendered from the stack: do not edit on the host.`,
        `# It listens on this PoP's mesh address only; the firewall admits the mesh alone to it.`,
        "[Unit]",
        "After=wg-quick@wg0.service",
        // The mesh address appears only with wg0: bind failures until then are retried, never given up on.
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "ExecStart=",
        `ExecStart=${argv.join(" ")}`,
        "Restart=always",
        "RestartSec=5",
        "",
    ].join("\n");
}
