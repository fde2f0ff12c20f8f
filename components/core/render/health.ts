/**
 * The PoP's health agent: /usr/local/sbin/anycast-health (the same script on every PoP), its
 * settings /etc/anycast/health.env (per PoP) and its systemd unit.
 *
 * The agent is the only writer of the BIRD announcement switch after boot (docs/ARTIFACTS.md):
 * it checks the local proxy and the origin through the mesh every `interval`, applies
 * rise/fall hysteresis, drain (GRACEFUL_SHUTDOWN, then withdraw) and flap damping, and moves
 * BIRD by rewriting /etc/bird/anycast-state.conf and running `birdc configure`, never by
 * restarting BIRD or resetting sessions. Bash + curl + birdc, because those are on every PoP and
 * a tick costs two short-lived processes (one curl for both checks, one mv for the status).
 *
 * The script is a real file, anycast-health.sh next to this module's source, shipped in the
 * package and pushed unchanged. Every setting it has comes from renderHealthEnv: it has no
 * defaults of its own, so nothing in it can drift from the stack's config.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as posixPath from "node:path/posix";
import { IpAddress } from "../addressing";
import { ARTIFACTS } from "../artifacts";
import { PopRenderInput } from "../model";
import { DEFAULT_FAILOVER } from "../origins";
import { HEALTH_ENDPOINT, NGINX_PATHS, PASSIVE_FAIL_TIMEOUT_SECONDS, STATUS_ENDPOINT } from "./nginx";
import { BIRD_STATE_FILE } from "./bird";

/** Where the agent's files live on a PoP. */
export const HEALTH_PATHS = {
    script: ARTIFACTS["anycast-health"].remotePath,
    env: ARTIFACTS["anycast-health.env"].remotePath,
    unit: ARTIFACTS["anycast-health.service"].remotePath,
    /** The announcement switch bird.conf includes. */
    stateFile: BIRD_STATE_FILE,
    /** Debian's bird2 control socket. */
    birdSocket: "/run/bird/bird.ctl",
    /** Also what nginx serves the other PoPs at STATUS_ENDPOINT. */
    statusFile: NGINX_PATHS.agentStatus,
    /** nginx's paths to the origins, which the agent rewrites from its checks. */
    upstreamsFile: NGINX_PATHS.upstreams,
    /** The agent reloads nginx with SIGHUP to the pid in this file. */
    nginxPidFile: NGINX_PATHS.pid,
    /** Holds the drain switch and the flap history; tmpfs, so a reboot clears both. */
    controlDir: "/run/anycast",
} as const;

/**
 * The agent's source file. This module runs compiled, from dist/components/core/render/ (in the
 * repo and in an installed package alike); the script stays where it is written, under
 * components/core/render/, which the package ships (package.json `files`).
 */
export const HEALTH_AGENT_FILE = path.resolve(__dirname, "..", "..", "..", "..", "components", "core", "render", "anycast-health.sh");

let agentScript: string | undefined;

/** The agent script, exactly as it is in HEALTH_AGENT_FILE. */
export function renderHealthAgent(): string {
    if (agentScript === undefined) {
        try {
            agentScript = fs.readFileSync(HEALTH_AGENT_FILE, "utf8");
        } catch (e) {
            throw new Error(`the health agent script ${HEALTH_AGENT_FILE} cannot be read (${(e as Error).message}): ` +
                "the pulumi-anycast package is incomplete");
        }
    }
    return agentScript;
}

/** Flap damping counts withdrawals within this window (the "per hour" of maxWithdrawalsPerHour). */
export const FLAP_WINDOW_SECONDS = 3600;

/** Seconds as the agent parses them: plain decimal, millisecond precision (the agent's clock). */
function seconds(value: number): string {
    return String(Math.round(value * 1000) / 1000);
}

function urlHost(address: IpAddress): string {
    return address.inUrl();
}

/** A list setting: space-separated, "-" for none (the agent refuses empty settings). */
function list(items: string[]): string {
    for (const item of items) {
        // A line break would inject another key; a blank would split the item in two.
        if (/[\r\n]/.test(item)) throw new Error(`health env list item contains a line break: ${JSON.stringify(item)}`);
        if (item === "" || /\s/.test(item) || item === "-") throw new Error(`health env list item ${JSON.stringify(item)} cannot be written`);
    }
    return items.length === 0 ? "-" : items.join(" ");
}

/**
 * /etc/anycast/health.env: KEY=value lines the agent reads as data (values are literal, unquoted).
 * Every key the agent knows, each one required (its SETTINGS list; a test keeps the two equal).
 */
export function renderHealthEnv(input: PopRenderInput): string {
    const h = input.health;
    const origins = input.origins ?? [input.origin];
    const peers = input.peers ?? [];
    const failover = input.failover ?? DEFAULT_FAILOVER;
    const values: [string, string][] = [
        ["POP", input.pop.name],
        ["ANYCAST_ADDRESS", input.deployment.address.toString()],
        ["PROXY_URL", `http://${urlHost(input.deployment.address)}${HEALTH_ENDPOINT}`],
        // Origins in config order; the agent applies ORIGIN_PREFERENCE itself.
        ["ORIGINS", list(origins.map((o) => o.name))],
        ["ORIGIN_URLS", list(origins.map((o) => `http://${urlHost(o.meshAddress)}:${o.port}${o.healthPath}`))],
        ["ORIGIN_SERVERS", list(origins.map((o) => `${urlHost(o.meshAddress)}:${o.port}`))],
        ["ORIGIN_PREFERENCE", input.pop.originPreference?.length ? list(input.pop.originPreference) : "measured"],
        ["PEERS", list(peers.map((p) => p.name))],
        ["PEER_STATUS_URLS", list(peers.map((p) => `http://${urlHost(p.meshAddress)}:${failover.relayPort}${STATUS_ENDPOINT}`))],
        ["PEER_SERVERS", list(peers.map((p) => `${urlHost(p.meshAddress)}:${failover.relayPort}`))],
        ["RELAY", failover.relay && peers.length > 0 ? "yes" : "no"],
        ["MESH_TOPOLOGY", input.mesh?.topology ?? "full"],
        ["INTERVAL", seconds(h.interval)],
        ["RISE", String(h.rise)],
        ["FALL", String(h.fall)],
        ["TIMEOUT", seconds(h.timeout)],
        ["DRAIN_SECONDS", seconds(h.drainSeconds)],
        ["MAX_WITHDRAWALS_PER_HOUR", String(h.maxWithdrawalsPerHour)],
        ["FLAP_WINDOW_SECONDS", String(FLAP_WINDOW_SECONDS)],
        ["PASSIVE_FAIL_TIMEOUT", String(PASSIVE_FAIL_TIMEOUT_SECONDS)],
        ["STATE_FILE", HEALTH_PATHS.stateFile],
        ["BIRD_SOCKET", HEALTH_PATHS.birdSocket],
        ["STATUS_FILE", HEALTH_PATHS.statusFile],
        ["CONTROL_DIR", HEALTH_PATHS.controlDir],
        ["UPSTREAMS_FILE", HEALTH_PATHS.upstreamsFile],
        ["NGINX_PID_FILE", HEALTH_PATHS.nginxPidFile],
    ];
    for (const [key, value] of values) {
        // One line per key is the whole format: a newline in a value would inject another key.
        if (/[\r\n]/.test(value)) throw new Error(`health env ${key} contains a line break: ${JSON.stringify(value)}`);
        // The agent refuses to start without every setting.
        if (value === "") throw new Error(`health env ${key} is empty`);
    }
    return [
        `# ${HEALTH_PATHS.env} for PoP ${input.pop.name}, rendered by pulumi-anycast: do not edit on the host.`,
        `# Read by ${HEALTH_PATHS.script} as KEY=value lines; values are literal (not shell, no quotes).`,
        ...values.map(([key, value]) => `${key}=${value}`),
    ].join("\n") + "\n";
}

/** The systemd unit; the agent restarts on any exit, a second later. */
export function renderHealthUnit(): string {
    return [
        "[Unit]",
        "Description=anycast health agent: announce the anycast prefix only while this PoP can serve",
        "After=bird.service nginx.service wg-quick@wg0.service",
        "",
        "[Service]",
        "Type=simple",
        `Environment=ANYCAST_HEALTH_ENV=${HEALTH_PATHS.env}`,
        `ExecStart=${HEALTH_PATHS.script} run`,
        "Restart=always",
        "RestartSec=1",
        // /run/anycast holds the drain switch and the flap history: they must outlive an agent
        // restart (every config push restarts it), and the status file there tells a restart from a boot.
        "RuntimeDirectory=anycast",
        "RuntimeDirectoryPreserve=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        // The state file is replaced by rename inside /etc/bird, nginx's paths to the origins inside
        // their directory; BIRD's socket may not exist yet at start.
        `ReadWritePaths=/etc/bird ${posixPath.dirname(HEALTH_PATHS.upstreamsFile)} -/run/bird`,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ].join("\n");
}
