/**
 * Where the health agent's files are on a PoP: the one home of these paths. The artifact
 * registry (components/core/artifacts.ts) places the pushed ones; the renderers write them into
 * the agent's settings and nginx.conf; the lab and the tests render with a layout of their own
 * (paths inside a namespace's directory) instead of rewriting rendered files.
 */
import type { AgentPaths } from "./settings";

/** The agent itself. */
export const AGENT_PROGRAM = "/usr/local/sbin/anycast-health";

/** Its settings (JSON), read at start; `anycast-health` run by hand finds them here too. */
export const DEFAULT_SETTINGS_FILE = "/etc/anycast/health-agent.json";

/** The runtime directory (a tmpfs): the drain and release switches, the flap history, the last status. */
export const CONTROL_DIR = "/run/anycast";

/** The agent's files on a PoP as every host has them. */
export const DEFAULT_AGENT_PATHS: AgentPaths = {
    stateFile: "/etc/bird/anycast-state.conf",
    // Debian's bird2 control socket.
    birdSocket: "/run/bird/bird.ctl",
    statusFile: `${CONTROL_DIR}/health.json`,
    controlDir: CONTROL_DIR,
    upstreamsFile: "/etc/anycast/nginx-upstreams.conf",
    nginxPidFile: "/run/nginx.pid",
};
