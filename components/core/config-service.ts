/**
 * The config's checks of the service around the hosts (pass 2 of validation, config.ts): how the
 * deploy reaches them, the Cloudflare front door, the firewall, the SSH key, monitoring and the
 * health agent's settings.
 */
import { z } from "zod";
import { IpAddress, IpPrefix } from "./addressing";
import { AnycastSpec, ConfigIssue, DeploySpec, FirewallSpec, MeshTopology, MonitoringSpec, HealthSpec } from "./model";
import { Collector, showValue } from "./config-issues";
import { DAMPING_SUPPRESS_THRESHOLD, MAX_SAFE_WITHDRAWALS, worstFlapPenalty } from "./damping";
import { popPortHolder } from "./pop-ports";
import { deployShape, NAMESPACE, TopLevel } from "./config-shape";

/** Name of the environment variable that gives the deployer's address when the stack does not (stacks/network/config.ts). */
export const DEPLOYER_ADDRESS_ENV = "ANYCAST_DEPLOYER_ADDRESS";

/**
 * `anycast:deploy`: the SSH family, and the lock-out check. The firewall opens SSH only to
 * adminCidrs on the hosts this stack creates, and every push after the firewall's comes from the
 * deployer, so a deployer outside adminCidrs would lose the hosts in the middle of an update.
 */
export function deploySpecFor(raw: z.output<typeof deployShape> | undefined, adminTexts: string[], adminCidrs: IpPrefix[],
    c: Collector): DeploySpec | undefined {
    if (!raw) return undefined;
    const key = `${NAMESPACE}:deploy.deployerAddress`;
    let deployerAddress: IpAddress | undefined;
    if (raw.deployerAddress !== undefined) {
        deployerAddress = IpAddress.tryParse(raw.deployerAddress);
        if (!deployerAddress) {
            c.error(key, `"${raw.deployerAddress}" is not an IP address (set it, or ${DEPLOYER_ADDRESS_ENV}, to the address the hosts see your SSH come from)`);
        }
    }
    const family: 4 | 6 = raw.sshFamily === "ipv4" ? 4 : raw.sshFamily === "ipv6" ? 6 : deployerAddress?.family ?? 6;
    if (deployerAddress !== undefined) {
        if (deployerAddress.family !== family) {
            c.error(key, `${deployerAddress} is an IPv${deployerAddress.family} address, but ${NAMESPACE}:deploy.sshFamily is ${raw.sshFamily}: ` +
                "give the address the hosts see over the family SSH uses");
        } else if (adminTexts.length > 0 && !adminCidrs.some((cidr) => cidr.contains(deployerAddress!))) {
            // adminCidrs that do not parse are reported on firewall.adminCidrs.
            c.error(key, `${deployerAddress} is outside ${NAMESPACE}:firewall.adminCidrs (${adminTexts.join(", ")}): the firewall ` +
                "would shut this deployer out of every host it creates in the middle of the update; add its network to adminCidrs");
        }
    }
    return { sshFamily: family, deployerAddress };
}

export const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
export const LABELS = /^(?=.{1,253}$)[a-z0-9*](?:[a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Resolve a DNS name given relative to the zone ("www") or fully ("www.example.com"). */
export function fqdnIn(nameText: string, zone: string | undefined): string | { error: string } {
    const n = nameText.toLowerCase().replace(/\.$/, "");
    if (!LABELS.test(n)) return { error: `"${nameText}" is not a valid DNS name: use letters, digits and '-' in dot-separated labels, such as www` };
    if (!zone) {
        return DOMAIN.test(n) ? n : { error: `"${nameText}" is not fully qualified: use a full name such as www.example.com when only frontDoor.zoneId is given` };
    }
    if (n === zone || n.endsWith(`.${zone}`)) return n;
    if (n.includes(".") && DOMAIN.test(n) && !n.endsWith(`.${zone}`) && n.split(".").length > 2) {
        return { error: `"${nameText}" is not inside the zone ${zone}: use a name in ${zone}, such as www or www.${zone}` };
    }
    return `${n}.${zone}`;
}

export function checkFrontDoor(fd: TopLevel["frontDoor"] | undefined, c: Collector): AnycastSpec["frontDoor"] | undefined {
    if (!fd) return undefined;
    const key = `${NAMESPACE}:frontDoor`;
    if (!!fd.zone === !!fd.zoneId) {
        c.error(key, `has ${fd.zone ? "both zone and zoneId" : "neither zone nor zoneId"}: set exactly one of zone (a name such as example.com) or zoneId`);
    }
    const zone = fd.zone?.toLowerCase().replace(/\.$/, "");
    if (zone !== undefined && !DOMAIN.test(zone)) c.error(`${key}.zone`, `"${fd.zone}" is not a domain name: use the zone's name, such as example.com`);
    const hostname = fqdnIn(fd.hostname, zone);
    const anycastName = fqdnIn(fd.anycastName, zone);
    if (typeof hostname !== "string") c.error(`${key}.hostname`, hostname.error);
    if (typeof anycastName !== "string") c.error(`${key}.anycastName`, anycastName.error);
    if (typeof hostname !== "string" || typeof anycastName !== "string") return undefined;
    if (hostname === anycastName) {
        c.error(`${key}.anycastName`, `${anycastName} must differ from hostname: ${hostname} is the proxied CNAME, the anycast name its unproxied AAAA target; use another name, such as anycast`);
    }
    return { zone, zoneId: fd.zoneId, hostname, anycastName, sslMode: fd.sslMode };
}

/** The firewall's lists parsed (the valid entries), and what is wrong with the others, reported later by reportFirewall. */
export function firewallSpecFor(firewall: TopLevel["firewall"] | undefined): { spec?: FirewallSpec; issues: ConfigIssue[] } {
    if (!firewall) return { issues: [] };
    const issues: ConfigIssue[] = [];
    const parse = (key: string, list: string[]) => list.flatMap((t, i) => {
        try {
            return [IpPrefix.parse(t)];
        } catch (e) {
            issues.push({ key: `${NAMESPACE}:firewall.${key}[${i}]`, message: `${(e as Error).message}: use a CIDR such as 203.0.113.0/24 or 2001:db8::/32` });
            return [];
        }
    });
    const adminCidrs = parse("adminCidrs", firewall.adminCidrs);
    const httpSources = firewall.httpSources && parse("httpSources", firewall.httpSources);
    return { spec: { adminCidrs, httpSources }, issues };
}

export function reportFirewall(firewall: TopLevel["firewall"] | undefined, issues: ConfigIssue[], c: Collector): void {
    if (!firewall) return;
    for (const i of issues) c.error(i.key, i.message);
    if (firewall.adminCidrs.length === 0) {
        c.warn(`${NAMESPACE}:firewall.adminCidrs`, "is empty: SSH is open to the whole Internet on every host");
    }
}

export function checkSshPrivateKey(key: unknown, c: Collector): void {
    const name = `${NAMESPACE}:sshPrivateKey`;
    if (key === undefined) {
        c.error(name, `is required to push configs: pulumi config set --secret ${name} < ~/.ssh/id_ed25519`);
    } else if (typeof key !== "string" || !/^-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.trim())) {
        c.error(name, `is not a private key: use a PEM or OpenSSH private key (-----BEGIN ... PRIVATE KEY-----), set with pulumi config set --secret ${name} < ~/.ssh/id_ed25519`);
    }
}

/**
 * `anycast:monitoring`: Prometheus scrapes the PoPs over the mesh, the only network their agents
 * and exporters answer on, so it runs on an origin that has a tunnel to every PoP.
 */
export function checkMonitoring(m: NonNullable<TopLevel["monitoring"]>, originNames: string[], topology: MeshTopology | undefined,
    c: Collector): MonitoringSpec | undefined {
    const key = `${NAMESPACE}:monitoring.origin`;
    if (!originNames.includes(m.origin)) {
        c.error(key, `${showValue(m.origin)} is not an origin of this stack (${originNames.join(", ") || "none"}): Prometheus must run on a host ` +
            "in the mesh, because the PoPs' agents and exporters answer over the mesh only; name one of the origins");
        return undefined;
    }
    if (topology === "hub" && m.origin !== originNames[0]) {
        c.error(key, `${showValue(m.origin)} has no tunnel to the PoPs in a hub mesh (only the hub ${originNames[0]} has): ` +
            `use ${originNames[0]}, or mesh.topology full`);
        return undefined;
    }
    return { origin: m.origin, scrapeInterval: m.scrapeInterval, retentionDays: m.retentionDays, alertmanagers: m.alertmanagers };
}

export function checkHealth(health: HealthSpec | undefined, relayPort: number | undefined, c: Collector): void {
    if (!health) return;
    const holder = popPortHolder(health.statusPort);
    if (holder) {
        c.error(`${NAMESPACE}:health.statusPort`, `${health.statusPort} is taken on the PoPs (${holder}): use another port, such as the default 9180`);
    } else if (health.statusPort === relayPort) {
        c.error(`${NAMESPACE}:health.statusPort`, `${health.statusPort} is failover.relayPort too: the agent's status and the relay need a port each (default 9180 and 8081)`);
    }
    if (health.timeout > Math.max(health.interval, 0.05) * 10) {
        c.warn(`${NAMESPACE}:health.timeout`, "is much longer than the interval: a hanging check delays failover");
    }
    const penalty = worstFlapPenalty(health.maxWithdrawalsPerHour);
    if (penalty >= DAMPING_SUPPRESS_THRESHOLD) {
        c.warn(`${NAMESPACE}:health.maxWithdrawalsPerHour`, `${health.maxWithdrawalsPerHour} withdrawals in quick succession can add up to a route-flap ` +
            `penalty of ${penalty}, above the suppress threshold ${DAMPING_SUPPRESS_THRESHOLD} (RFC 7196): ` +
            `upstreams that damp routes would suppress the prefix everywhere; ${MAX_SAFE_WITHDRAWALS} or fewer stays below it`);
    }
}
