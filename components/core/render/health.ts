/**
 * The PoP's health agent: /usr/local/sbin/anycast-health (the same program on every PoP), its
 * settings /etc/anycast/health-agent.json (per PoP) and its systemd unit.
 *
 * The agent is the only writer of the BIRD announcement after boot (docs/ARTIFACTS.md): a
 * long-lived process (agent/, its decisions in components/core/health/policy.ts) that checks the
 * local proxy, every origin and every other PoP in process every `health.interval`, and moves
 * BIRD by enabling and disabling static protocols over BIRD's control socket, never by
 * reconfiguring or restarting BIRD. It is TypeScript bundled into one JavaScript file
 * (scripts/bundle-agent.mjs) that Debian 12's own nodejs runs; the push installs that package.
 *
 * Every setting the agent has comes from renderAgentSettings: it has no defaults of its own, so
 * nothing on the host can drift from the stack's config.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as posixPath from "node:path/posix";
import { ARTIFACTS } from "../artifacts";
import { DEFAULT_AGENT_PATHS } from "../health/layout";
import { AgentSettings, AgentPaths, formatAgentSettings, parseAgentSettings } from "../health/settings";
import { PopRenderInput } from "../model";
import { DEFAULT_FAILOVER } from "../origins";
import { agentProtocols } from "./bird";
import { deployedLayout, HostLayout } from "./layout";
import { HEALTH_ENDPOINT, PASSIVE_FAIL_TIMEOUT_SECONDS } from "./nginx";

/** Where the agent's own files live on a PoP. */
export const HEALTH_PATHS = {
    program: ARTIFACTS["anycast-health"].remotePath,
    settings: ARTIFACTS["anycast-health.json"].remotePath,
    unit: ARTIFACTS["anycast-health.service"].remotePath,
} as const;

/**
 * The agent's bundle. This module runs compiled, from dist/components/core/render/ (in the repo
 * and in an installed package alike); the bundle is dist/agent/anycast-health.js, built with the
 * rest (`npm run build`) and shipped in the package (package.json `files`).
 */
export const HEALTH_AGENT_FILE = path.resolve(__dirname, "..", "..", "..", "agent", "anycast-health.js");

let agentProgram: string | undefined;

/** The agent program, exactly as it is in HEALTH_AGENT_FILE. */
export function renderHealthAgent(): string {
    if (agentProgram === undefined) {
        try {
            agentProgram = fs.readFileSync(HEALTH_AGENT_FILE, "utf8");
        } catch (e) {
            throw new Error(`the health agent ${HEALTH_AGENT_FILE} cannot be read (${(e as Error).message}): ` +
                "the pulumi-anycast package is incomplete (in a checkout, run `npm run build`)");
        }
    }
    return agentProgram;
}

/** Flap damping counts withdrawals within this window (the "per hour" of maxWithdrawalsPerHour). */
export const FLAP_WINDOW_MS = 3_600_000;

/**
 * The agent's settings for this PoP on a host with this layout, as an object (what
 * renderAgentSettings writes): its paths, and its check interval and timeout, from the layout.
 */
export function agentSettings(input: PopRenderInput, layout: HostLayout = deployedLayout(input)): AgentSettings {
    const h = input.health;
    const origins = input.origins ?? [input.origin];
    const peers = input.peers ?? [];
    const failover = input.failover ?? DEFAULT_FAILOVER;
    const mesh = input.mesh?.cidr;
    const ms = (seconds: number) => Math.round(seconds * 1000);
    const protocols = agentProtocols(input);
    return {
        version: 1,
        pop: input.pop.name,
        anycastAddress: input.announcement.address.toString(),
        proxyUrl: `http://${input.announcement.address.inUrl()}${HEALTH_ENDPOINT}`,
        // Origins in config order; the agent applies originPreference itself.
        origins: origins.map((o) => ({
            name: o.name, url: `http://${o.meshAddress.inUrl()}:${o.port}${o.healthPath}`, server: `${o.meshAddress.inUrl()}:${o.port}`,
        })),
        originPreference: input.pop.originPreference ?? [],
        peers: peers.map((p) => ({
            name: p.name, statusUrl: `http://${p.meshAddress.inUrl()}:${h.statusPort}/status`, relayServer: `${p.meshAddress.inUrl()}:${failover.relayPort}`,
        })),
        relay: failover.relay && peers.length > 0,
        meshTopology: input.mesh?.topology ?? "full",
        intervalMs: layout.timers.healthIntervalMs,
        timeoutMs: layout.timers.healthTimeoutMs,
        rise: h.rise,
        fall: h.fall,
        drainMs: ms(h.drainSeconds),
        maxWithdrawalsPerHour: h.maxWithdrawalsPerHour,
        flapWindowMs: FLAP_WINDOW_MS,
        passiveFailTimeoutS: PASSIVE_FAIL_TIMEOUT_SECONDS,
        drained: input.pop.drained === true,
        listen: {
            port: h.statusPort,
            meshAddress: input.pop.meshAddress.toString(),
            meshCidr: (mesh ?? `${input.pop.meshAddress.toString()}/${input.pop.meshAddress.family === 6 ? 128 : 32}`).toString(),
            publicAddress: input.host.ipv6,
        },
        bird: protocols,
        paths: layout.paths.agent,
    };
}

/**
 * /etc/anycast/health-agent.json. The renderer parses its own output with the agent's parser, so
 * a file the deploy pushes always passes the agent's check on the host.
 */
export function renderAgentSettings(input: PopRenderInput, layout: HostLayout = deployedLayout(input)): string {
    const text = formatAgentSettings(agentSettings(input, layout));
    try {
        parseAgentSettings(text);
    } catch (e) {
        throw new Error(`PoP ${input.pop.name}: the health agent's settings do not parse: ${(e as Error).message}`);
    }
    return text;
}

/** The systemd unit; the agent restarts on any exit, a second later. */
export function renderHealthUnit(paths: AgentPaths = DEFAULT_AGENT_PATHS): string {
    return [
        "[Unit]",
        "Description=anycast health agent: announce the anycast prefix only while this PoP can serve",
        "After=bird.service nginx.service wg-quick@wg0.service",
        "",
        "[Service]",
        "Type=simple",
        `Environment=ANYCAST_HEALTH_SETTINGS=${HEALTH_PATHS.settings}`,
        `ExecStart=${HEALTH_PATHS.program} run`,
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
        `ReadWritePaths=${posixPath.dirname(paths.stateFile)} ${posixPath.dirname(paths.upstreamsFile)} -${posixPath.dirname(paths.birdSocket)}`,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ].join("\n");
}
