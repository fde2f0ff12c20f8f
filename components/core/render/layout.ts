/**
 * The host layout: where a PoP's daemons keep their files, and the timers it runs. The PoP
 * renderers (bird.ts, nginx.ts, health.ts) take it as an input, so that a place which cannot
 * use a real host's paths (the lab's namespaces, a test's scratch directory) or a machine that
 * needs wider timers (the lab's, lab/stalls.ts) renders what it runs: nothing edits a rendered
 * file. deployedLayout() is what a real Debian host gets; it is every renderer's default, and
 * what the golden files hold.
 *
 * layoutDifferences() lists, field by field, how one layout differs from another: the lab
 * reports its rewrites from it (each one says which files the field lands in).
 */
import * as posixPath from "node:path/posix";
import { ARTIFACTS, ArtifactName } from "../artifacts";
import { DEFAULT_AGENT_PATHS } from "../health/layout";
import type { AgentPaths } from "../health/settings";
import type { AnycastSpec, BfdSettings, HealthSpec, HostAddresses, PopRenderInput, PopSpec } from "../model";

export interface HostPaths {
    /**
     * The health agent's paths (its settings' `paths`). The other daemons share them: bird.conf
     * includes stateFile and BIRD listens on birdSocket, nginx writes nginxPidFile and includes
     * upstreamsFile (which the agent rewrites).
     */
    agent: AgentPaths;
    nginx: { errorLog: string; accessLog: string; staleCache: string };
    /** Where nginx reads the TLS material the deploy pushes (origin.pem, origin.key, origin-pull-ca.pem). */
    tls: { certificate: string; key: string; clientCa: string };
}

export interface HostTimers {
    /** The agent's check interval and timeout (its settings' intervalMs and timeoutMs). */
    healthIntervalMs: number;
    healthTimeoutMs: number;
    /** BIRD's BFD timers for the session to the upstream; undefined: no BFD. */
    bfd?: BfdSettings;
}

export interface HostLayout {
    paths: HostPaths;
    timers: HostTimers;
}

/** The paths on a real host: Debian's, and the ones the artifact registry pushes to. */
export const DEPLOYED_PATHS: HostPaths = {
    agent: DEFAULT_AGENT_PATHS,
    nginx: {
        errorLog: "/var/log/nginx/error.log",
        accessLog: "/var/log/nginx/access.log",
        staleCache: "/var/cache/nginx/anycast-stale",
    },
    tls: {
        certificate: ARTIFACTS["origin.pem"].remotePath,
        key: ARTIFACTS["origin.key"].remotePath,
        clientCa: ARTIFACTS["origin-pull-ca.pem"].remotePath,
    },
};

/** The timers exactly as the config sets them: `health.interval`, `health.timeout`, the PoP's `bgp.bfd`. */
export function configuredTimers(input: { health: HealthSpec; pop: Pick<PopSpec, "bgp"> }): HostTimers {
    const bfd = input.pop.bgp.bfd;
    return {
        healthIntervalMs: Math.round(input.health.interval * 1000),
        healthTimeoutMs: Math.round(input.health.timeout * 1000),
        ...(bfd ? { bfd } : {}),
    };
}

/** What a real host gets: the deployed paths and the configured timers. */
export function deployedLayout(input: { health: HealthSpec; pop: Pick<PopSpec, "bgp"> }): HostLayout {
    return { paths: DEPLOYED_PATHS, timers: configuredTimers(input) };
}

/**
 * Every path inside one directory, for a host that has nothing but that directory (a lab
 * namespace, a test's scratch directory); the TLS material in its tls/, under the artifacts'
 * names.
 */
export function pathsUnder(dir: string): HostPaths {
    const at = (name: string) => posixPath.join(dir, name);
    return {
        agent: {
            stateFile: at("anycast-state.conf"),
            birdSocket: at("bird.ctl"),
            statusFile: at("health.json"),
            controlDir: at("control"),
            upstreamsFile: at("nginx-upstreams.conf"),
            nginxPidFile: at("nginx.pid"),
        },
        nginx: { errorLog: at("nginx-error.log"), accessLog: at("nginx-access.log"), staleCache: at("stale-cache") },
        tls: { certificate: at("tls/origin.pem"), key: at("tls/origin.key"), clientCa: at("tls/origin-pull-ca.pem") },
    };
}

/** Where a layout field lands: what it is, and the files (or command lines) that hold it. */
export interface LayoutField {
    what: string;
    /** Artifact names, or a daemon's command line or environment in parentheses. */
    usedBy: Array<ArtifactName | `(${string})`>;
}

type PathKey = `agent.${keyof AgentPaths}` | `nginx.${keyof HostPaths["nginx"]}` | `tls.${keyof HostPaths["tls"]}`;

/** Each path of the layout: what it is and where it is written. One table, so a new path must say. */
export const PATH_FIELDS: Record<PathKey, LayoutField> = {
    "agent.stateFile": { what: "BIRD state include (the agent writes it)", usedBy: ["bird.conf", "anycast-health.json", "(anycast-net.sh: ANYCAST_STATE_FILE)"] },
    "agent.birdSocket": { what: "BIRD control socket", usedBy: ["anycast-health.json", "(bird command line)", "(bird exporter command line)"] },
    "agent.statusFile": { what: "agent status file", usedBy: ["anycast-health.json"] },
    "agent.controlDir": { what: "agent control directory", usedBy: ["anycast-health.json"] },
    "agent.upstreamsFile": { what: "nginx paths to the origins (the agent rewrites them)", usedBy: ["nginx.conf", "anycast-health.json"] },
    "agent.nginxPidFile": { what: "nginx pid file", usedBy: ["nginx.conf", "anycast-health.json"] },
    "nginx.errorLog": { what: "nginx error log", usedBy: ["nginx.conf"] },
    "nginx.accessLog": { what: "nginx access log", usedBy: ["nginx.conf"] },
    "nginx.staleCache": { what: "nginx stale cache (failover.staleCache)", usedBy: ["nginx.conf"] },
    "tls.certificate": { what: "TLS origin.pem", usedBy: ["nginx.conf"] },
    "tls.key": { what: "TLS origin.key", usedBy: ["nginx.conf"] },
    "tls.clientCa": { what: "TLS origin-pull-ca.pem", usedBy: ["nginx.conf"] },
};

type TimerKey = keyof HostTimers;

export const TIMER_FIELDS: Record<TimerKey, LayoutField> = {
    healthIntervalMs: { what: "health check interval", usedBy: ["anycast-health.json"] },
    healthTimeoutMs: { what: "health check timeout", usedBy: ["anycast-health.json"] },
    bfd: { what: "BFD timers", usedBy: ["bird.conf"] },
};

export interface LayoutDifference extends LayoutField {
    /** The field: `paths.agent.stateFile`, `timers.bfd`, ... */
    field: string;
    from: string;
    to: string;
}

const bfdText = (b: BfdSettings | undefined) => b ? `${b.intervalMs} ms x ${b.multiplier}` : "off";

/** Each field in which `to` differs from `from`, in PATH_FIELDS' then TIMER_FIELDS' order. */
export function layoutDifferences(from: HostLayout, to: HostLayout): LayoutDifference[] {
    const out: LayoutDifference[] = [];
    for (const key of Object.keys(PATH_FIELDS) as PathKey[]) {
        const [group, name] = key.split(".") as [keyof HostPaths, string];
        const a = (from.paths[group] as unknown as Record<string, string>)[name];
        const b = (to.paths[group] as unknown as Record<string, string>)[name];
        if (a !== b) out.push({ field: `paths.${key}`, ...PATH_FIELDS[key], from: a, to: b });
    }
    for (const key of Object.keys(TIMER_FIELDS) as TimerKey[]) {
        const text = key === "bfd" ? bfdText : (v: HostTimers[TimerKey]) => `${v as number} ms`;
        const a = text(from.timers[key] as never);
        const b = text(to.timers[key] as never);
        if (a !== b) out.push({ field: `timers.${key}`, ...TIMER_FIELDS[key], from: a, to: b });
    }
    return out;
}

/**
 * What the PoP renderers need for one PoP of the validated model on a host with these addresses:
 * the one place that says which parts of the model a PoP's files are rendered from (the
 * AnycastNetwork component gives its AnycastPoPs exactly this; the lab renders from it too).
 */
export function popRenderInput(spec: AnycastSpec, popName: string, host: HostAddresses): PopRenderInput {
    const pop = spec.pops.find((p) => p.name === popName);
    if (!pop) throw new Error(`no PoP ${popName} in the model`);
    return { ...popRenderBase(spec, pop), host };
}

/** popRenderInput without the host's addresses, which the cloud gives later. */
export function popRenderBase(spec: AnycastSpec, pop: AnycastSpec["pops"][number]): Omit<PopRenderInput, "host"> {
    const origins = spec.origins.map((o) => ({ name: o.name, meshAddress: o.meshAddress, port: o.port, healthPath: o.healthPath }));
    return {
        announcement: { asn: spec.asn, prefixes: spec.prefixes, address: spec.address },
        pop,
        origin: origins[0],
        origins,
        // Every other PoP: the agents exchange their view of the origins with them, and relay through them.
        peers: spec.pops.filter((p) => p.name !== pop.name).map((p) => ({ name: p.name, meshAddress: p.meshAddress })),
        failover: spec.failover,
        mesh: { cidr: spec.mesh.cidr, topology: spec.mesh.topology },
        health: spec.health,
    };
}
