/**
 * A PoP's whole /etc/bird/bird.conf (BIRD 2).
 *
 * The PoP originates exactly the configured prefixes and nothing else: `protocol static` holds
 * them as blackhole routes (the anycast address itself lives on `lo`, so nothing is exported to
 * the kernel and nothing learned is imported). Each family's prefixes are in two static
 * protocols: `<pop>_anycast<family>` announces them plainly, `<pop>_drain<family>` with
 * GRACEFUL_SHUTDOWN (65535:0). The health agent enables the one it wants and disables the other
 * over BIRD's control socket (`enable`/`disable`): BIRD sends an UPDATE or a WITHDRAW, and
 * neither re-parses the config nor makes the peer resend its routes, as a `configure` with a
 * changed filter would. Which protocols start enabled comes from ANYCAST_STATE in the include
 * file the agent keeps in step, so a BIRD that starts, or an operator's `birdc configure`,
 * begins where the agent left it (see docs/ARTIFACTS.md).
 */
import { Family, IpAddress } from "../addressing";
import { BfdSettings, BgpSettings, Community, PopRenderInput } from "../model";
import { GRACEFUL_SHUTDOWN as GRACEFUL_SHUTDOWN_COMMUNITY, vultrCommunityMeaning } from "../vultr";
import { DEFAULT_AGENT_PATHS } from "../health/layout";
import { deployedLayout, HostLayout } from "./layout";
import type { AnycastValue } from "../health/agent-state";
import type { AgentBird } from "../health/settings";
import { renderStateFile } from "../health/state-file";

/** Where bird.conf includes the announcement switch from; the health agent owns this file. */
export const BIRD_STATE_FILE = DEFAULT_AGENT_PATHS.stateFile;

/** The announcement states the health agent writes into BIRD_STATE_FILE. */
export type AnycastState = AnycastValue;

export const ANYCAST_STATE = { withdrawn: 0, draining: 1, announced: 2 } as const;

/** The content of BIRD_STATE_FILE for one state (one `define` line, as docs/ARTIFACTS.md fixes it). */
export const renderBirdStateInclude: (state: AnycastState) => string = renderStateFile;

/** The names of a PoP's BIRD protocols, by family: the one home of them (bird.conf and the agent's settings). */
export function birdProtocolNames(popName: string, family: Family): { announce: string; drain: string; session: string; filter: string } {
    const id = birdIdentifier(popName);
    return { announce: `${id}_anycast${family}`, drain: `${id}_drain${family}`, session: `${id}_upstream${family}`, filter: `${id}_export${family}` };
}

/** The protocols the health agent switches and reports, for its settings. */
export function agentProtocols(input: PopRenderInput): AgentBird {
    const names = sessionsFor(input).map((s) => birdProtocolNames(input.pop.name, s.family));
    return { announce: names.map((n) => n.announce), drain: names.map((n) => n.drain), sessions: names.map((n) => n.session) };
}

/** A BIRD symbol from a free-form name: PoP names may contain '-', which BIRD identifiers may not. */
export function birdIdentifier(name: string): string {
    const id = name.replace(/[^A-Za-z0-9_]/g, "_");
    return /^[A-Za-z_]/.test(id) ? id : `_${id}`;
}

/** RFC 8326 GRACEFUL_SHUTDOWN: receivers lower the route's preference, so traffic leaves before the withdraw. */
const GRACEFUL_SHUTDOWN = `(${GRACEFUL_SHUTDOWN_COMMUNITY.asn}, ${GRACEFUL_SHUTDOWN_COMMUNITY.value})`;

/**
 * A deterministic BGP router id. The host's IPv4 when it has one; otherwise the low 32 bits of
 * its IPv6 address (unique per host on Vultr, whose addresses differ in the interface id), and
 * if those are zero a hash of the whole address, because BIRD refuses router id 0.
 */
export function routerIdFor(host: { ipv6: string; ipv4?: string }): string {
    if (host.ipv4 !== undefined) return hostAddress(host.ipv4, 4, `host IPv4 "${host.ipv4}" is not an IPv4 address`).toString();
    const bytes = hostAddress(host.ipv6, 6, `host IPv6 "${host.ipv6}" is not an IPv6 address`).toByteArray();
    let id = ((bytes[12] << 24) | (bytes[13] << 16) | (bytes[14] << 8) | bytes[15]) >>> 0;
    if (id === 0) {
        // FNV-1a over the 16 bytes: stable, and non-zero for any address we would meet.
        id = 0x811c9dc5;
        for (const b of bytes) id = Math.imul(id ^ b, 0x01000193) >>> 0;
        if (id === 0) id = 1;
    }
    return [id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff].join(".");
}

/**
 * A host's own address, as the cloud reports it at deploy time (HostAddresses holds text: it is
 * not part of the validated spec), parsed and checked for its family.
 */
function hostAddress(text: string, family: Family, problem: string): IpAddress {
    const address = IpAddress.tryParse(text);
    if (address?.family !== family) throw new Error(problem);
    return address;
}

function assertPasswordWritable(password: string, popName: string): void {
    // bird.conf strings have escapes; the validator already forbids what would need one, and
    // a renderer fed from elsewhere must not produce a config that means something else.
    if (password.length === 0) throw new Error(`PoP ${popName}: the BGP password is empty`);
    if (/[\x00-\x1f"\\]/.test(password)) {
        throw new Error(`PoP ${popName}: the BGP password contains a quote, backslash or control character, which bird.conf cannot hold verbatim`);
    }
}

function communityStatement(c: Community): string {
    const statement = c.kind === "standard"
        ? `bgp_community.add((${c.asn}, ${c.value}));`
        : `bgp_large_community.add((${c.global}, ${c.data1}, ${c.data2}));`;
    const meaning = vultrCommunityMeaning(c) ?? "not a Vultr action community: passed on as configured";
    return `${statement}   # ${meaning}`;
}

interface FamilySession {
    family: Family;
    prefixes: string[];
    neighbor: IpAddress;
    local: IpAddress;
}

function sessionsFor(input: PopRenderInput): FamilySession[] {
    const { pop, host, announcement } = input;
    const byFamily = (family: Family) => announcement.prefixes.filter((p) => p.family === family).map(String);
    const v6 = byFamily(6);
    const v4 = byFamily(4);
    if (v6.length === 0) throw new Error(`PoP ${pop.name}: no IPv6 prefix to announce`);
    const local6 = hostAddress(host.ipv6, 6, `PoP ${pop.name}: host IPv6 "${host.ipv6}" is not an IPv6 address`);
    const sessions: FamilySession[] = [{ family: 6, prefixes: v6, neighbor: pop.bgp.neighbor, local: local6 }];
    if (v4.length > 0) {
        if (host.ipv4 === undefined) {
            throw new Error(`PoP ${pop.name}: IPv4 prefix ${v4.join(", ")} is configured but the host has no IPv4 address to source the IPv4 BGP session from`);
        }
        const local4 = hostAddress(host.ipv4, 4, `PoP ${pop.name}: host IPv4 "${host.ipv4}" is not an IPv4 address`);
        sessions.push({ family: 4, prefixes: v4, neighbor: pop.bgp.neighbor4, local: local4 });
    }
    return sessions;
}

function bfdProtocol(id: string, bfd: BfdSettings, multihop: boolean): string[] {
    const timers = `interval ${bfd.intervalMs} ms; multiplier ${bfd.multiplier};`;
    return [
        `# BFD detects a dead path in ${bfd.intervalMs * bfd.multiplier} ms (${bfd.intervalMs} ms x ${bfd.multiplier}) instead of waiting for the hold timer.`,
        `protocol bfd ${id}_bfd {`,
        multihop
            // A multihop BGP session asks for a multihop BFD session (UDP 4784), configured here.
            ? `    multihop { ${timers} };`
            : `    interface "*" { ${timers} };`,
        "}",
        "",
    ];
}

function exportFilter(name: string, input: PopRenderInput, session: FamilySession): string[] {
    const { pop, announcement } = input;
    const lines = [
        `filter ${name}`,
        "{",
        "    # Only the configured prefixes, exactly: never a more-specific, never anything else.",
        `    if !(net ~ [ ${session.prefixes.join(", ")} ]) then reject;`,
    ];
    for (const c of pop.communities) lines.push(`    ${communityStatement(c)}`);
    if (pop.prepend > 0) {
        lines.push(`    # ${pop.prepend} extra cop${pop.prepend === 1 ? "y" : "ies"} of our ASN: makes this PoP less preferred.`);
        for (let i = 0; i < pop.prepend; i++) lines.push(`    bgp_path.prepend(${announcement.asn});`);
    }
    lines.push("    accept;", "}", "");
    return lines;
}

function bgpProtocol(name: string, filter: string, input: PopRenderInput, session: FamilySession, bfd: boolean): string[] {
    const { pop, announcement } = input;
    const bgp: BgpSettings = pop.bgp;
    const channel = session.family === 6 ? "ipv6" : "ipv4";
    const lines = [
        `protocol bgp ${name} {`,
        `    description "PoP ${pop.name} IPv${session.family} upstream (AS${bgp.remoteAsn})";`,
        `    local ${session.local} as ${announcement.asn};`,
        `    neighbor ${session.neighbor} as ${bgp.remoteAsn};`,
    ];
    if (bgp.multihop > 0) lines.push(`    multihop ${bgp.multihop};`);
    lines.push(`    password "${bgp.password}";`);
    lines.push(`    hold time ${bgp.holdTime};`);
    if (bgp.holdTime > 0) {
        lines.push(`    keepalive time ${bgp.keepaliveTime};`);
    } else {
        lines.push("    # hold time 0: no keepalives (BIRD rejects a keepalive time here).");
    }
    lines.push(`    # After a session error BIRD waits this long (seconds, min and max) before reconnecting.`);
    lines.push(`    error wait time ${bgp.errorWaitTime[0]}, ${bgp.errorWaitTime[1]};`);
    lines.push(`    connect retry time ${bgp.connectRetryTime};`);
    if (bfd) lines.push("    bfd on;");
    lines.push(
        `    ${channel} {`,
        "        import none;",
        `        export filter ${filter};`,
        `        # More routes than we originate means a broken filter: stop exporting rather than leak.`,
        `        export limit ${session.prefixes.length} action block;`,
        "    };",
        "}",
        "",
    );
    return lines;
}

/**
 * The PoP's bird.conf on a host with this layout: the state include at its `stateFile`, BFD with
 * its timers (the configured ones on a real host).
 */
export function renderBirdConfig(input: PopRenderInput, layout: HostLayout = deployedLayout(input)): string {
    const { pop, host } = input;
    assertPasswordWritable(pop.bgp.password, pop.name);
    const stateFile = layout.paths.agent.stateFile;
    const bfd = layout.timers.bfd;
    if (/["\\\n]/.test(stateFile)) throw new Error(`state file path ${JSON.stringify(stateFile)} cannot be written into bird.conf`);
    const id = birdIdentifier(pop.name);
    const sessions = sessionsFor(input);

    const lines: string[] = [
        `# BIRD 2 configuration rendered by pulumi-anycast for PoP ${pop.name}.`,
        "# Do not edit: the next deploy overwrites this file. Change the stack config instead.",
        "",
        "log syslog all;",
        `router id ${routerIdFor(host)};`,
        "",
        "# define ANYCAST_STATE = 0 (withdrawn), 1 (draining) or 2 (announced): kept by the health agent, read",
        "# here only when BIRD starts or is reconfigured. The agent itself switches the static protocols below",
        "# with `enable`/`disable` over the control socket: no re-parse, no route refresh, no session reset.",
        `include "${stateFile}";`,
        "",
        "# The agent reports when each session entered its state; ISO with milliseconds, not BIRD's default time of day.",
        "timeformat protocol iso long ms;",
        "",
        "# Interface scanning only; no kernel protocol: the anycast address is on lo, nothing learned is installed.",
        "protocol device {",
        "}",
        "",
    ];

    for (const s of sessions) {
        const names = birdProtocolNames(pop.name, s.family);
        lines.push(
            `# The originated prefixes. Blackhole routes never forward anything: they exist to be announced.`,
            `# Announced: up while ANYCAST_STATE is 2 (disabled is any value but 0).`,
            `protocol static ${names.announce} {`,
            `    disabled (ANYCAST_STATE - ${ANYCAST_STATE.announced});`,
            `    ipv${s.family} { import all; };`,
            ...s.prefixes.map((p) => `    route ${p} blackhole;`),
            "}",
            "",
            `# Draining: the same prefixes marked GRACEFUL_SHUTDOWN, so receivers prefer other PoPs before the withdraw; up while ANYCAST_STATE is 1.`,
            `protocol static ${names.drain} {`,
            `    disabled (ANYCAST_STATE - ${ANYCAST_STATE.draining});`,
            `    ipv${s.family} { import all; };`,
            ...s.prefixes.map((p) => `    route ${p} blackhole { bgp_community.add(${GRACEFUL_SHUTDOWN}); };`),
            "}",
            "",
        );
    }

    if (bfd) lines.push(...bfdProtocol(id, bfd, pop.bgp.multihop > 0));

    for (const s of sessions) {
        const names = birdProtocolNames(pop.name, s.family);
        lines.push(...exportFilter(names.filter, input, s));
        lines.push(...bgpProtocol(names.session, names.filter, input, s, bfd !== undefined));
    }
    return lines.join("\n");
}
