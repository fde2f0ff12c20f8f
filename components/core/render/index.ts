/** The renderers: validated model in, file text out. See docs/ARTIFACTS.md for where each file goes. */
export * from "./bird";
export * from "./wireguard";
export * from "./netsetup";
export * from "./cloudinit";
export * from "./nftables";
export { TLS_PATHS, HEALTH_ENDPOINT, NGINX_PATHS, renderNginxConfig } from "./nginx";
export { HEALTH_AGENT_FILE, HEALTH_PATHS, agentSettings, renderAgentSettings, renderHealthAgent, renderHealthUnit } from "./health";
export * from "./sshkeys";
export * from "./bootstrap";
export * from "./layout";
