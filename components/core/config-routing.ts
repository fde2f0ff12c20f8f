/**
 * The config's checks of the announcement (pass 2, for config.ts): the ASN and the prefixes, the
 * service address, each PoP's BGP session (neighbour, timers, password, the upstream's public
 * AS), communities, a private ASN (origin-as.ts), and the RPKI state against `anycast:roas`.
 */
import { z } from "zod";
import { IpAddress, IpPrefix } from "./addressing";
import { BgpSettings, Community, RoaSpec, RpkiFinding } from "./model";
import { describeRoa, Roa, validateOrigin } from "./rpki";
import { Collector, showValue } from "./config-issues";
import { communityProblem, VULTR_ASN, VULTR_BGP } from "./vultr";
import { isDocumentationAsn, isPrivateAsn, OriginSeen, prependAdvice, upstreamName } from "./origin-as";
import { bgpShape, NAMESPACE, Parsed, TopLevel } from "./config-shape";

const RESERVED_ASNS: Array<[number, number, string]> = [
    [0, 0, "reserved (RFC 7607)"],
    [23456, 23456, "AS_TRANS (RFC 6793), not a real ASN"],
    [65535, 65535, "reserved (RFC 7300)"],
    [65552, 131071, "in a range IANA reserves (65552-131071)"],
    [4294967295, 4294967295, "reserved (RFC 7300)"],
];

/** Why an AS number cannot be used, as "<asn> is ...", or undefined. */
export function asnProblem(asn: number): string | undefined {
    if (!Number.isInteger(asn) || asn < 0 || asn > 4294967295) return `${asn} is out of range: use a whole number from 1 to 4294967294`;
    const reserved = RESERVED_ASNS.find(([lo, hi]) => asn >= lo && asn <= hi)?.[2];
    return reserved && `AS${asn} is ${reserved}`;
}

export function checkAsn(asn: number | undefined, c: Collector): number | undefined {
    if (asn === undefined) return undefined;
    const problem = asnProblem(asn);
    if (problem) c.error(`${NAMESPACE}:asn`, problem.includes(": use") ? problem : `${problem}: use your registered ASN`);
    if (isDocumentationAsn(asn)) c.warn(`${NAMESPACE}:asn`, `AS${asn} is a documentation ASN (RFC 5398): fine for the lab only`);
    return asn;
}

export function checkPrefixes(prefix: TopLevel["prefix"] | undefined, c: Collector): IpPrefix[] {
    const prefixes: IpPrefix[] = [];
    if (prefix === undefined) return prefixes;
    const list = Array.isArray(prefix) ? prefix : [prefix];
    const keyOf = (i: number) => Array.isArray(prefix) ? `${NAMESPACE}:prefix[${i}]` : `${NAMESPACE}:prefix`;
    list.forEach((text, i) => {
        let p: IpPrefix;
        try {
            p = IpPrefix.parse(text);
        } catch (e) {
            c.error(keyOf(i), `${(e as Error).message}: use a prefix such as 2001:db8:100::/48`);
            return;
        }
        const limit = p.family === 6 ? 48 : 24;
        if (p.length > limit) {
            c.error(keyOf(i), `/${p.length} is longer than /${limit}, the longest IPv${p.family} prefix the Internet accepts: announce the /${limit} that holds it`);
        }
        if (p.family === 6 && p.length < 19) c.error(keyOf(i), `/${p.length} is shorter than any end-site allocation: announce your /48 (or /44 .. /32)`);
        const range = p.network.range();
        if (range === "documentation") {
            c.warn(keyOf(i), `${text} is a documentation prefix: fine for the lab, never routed on the Internet`);
        } else if (!["unicast", "global"].includes(range)) {
            c.error(keyOf(i), `${text} is ${range} address space, not announceable on the Internet: use the prefix your RIR assigned`);
        }
        if (prefixes.some((q) => p.overlaps(q))) c.error(keyOf(i), `${text} overlaps another configured prefix: list each prefix once`);
        prefixes.push(p);
    });
    if (prefixes.length > 0 && prefixes[0].family !== 6) {
        c.error(keyOf(0), `${prefixes[0]} is IPv4, but the first prefix must be IPv6: it holds the anycast service address`);
    }
    return prefixes;
}

export function checkAddress(text: string | undefined, prefixes: IpPrefix[], c: Collector): IpAddress | undefined {
    const v6 = prefixes.find((p) => p.family === 6);
    if (text === undefined) return v6?.nth(1);
    const key = `${NAMESPACE}:address`;
    const use = v6 ? `use an address inside ${v6}, such as ${v6.nth(1)}` : "use an IPv6 address inside the prefix";
    const address = IpAddress.tryParse(text);
    if (address?.family !== 6) c.error(key, `"${text}" is not an IPv6 address: ${use}`);
    else if (v6 && !v6.contains(address)) c.error(key, `${text} is outside the prefix ${v6}: ${use}`);
    else if (v6 && address.equals(v6.network)) c.error(key, `${text} is the prefix's network (subnet-router anycast) address: ${use}`);
    else return address;
    return undefined;
}

/** A BGP session password, wherever it is set; reported once, under the key that sets it. */
function checkPassword(key: string, pw: string, c: Collector): void {
    const use = "use the TCP-MD5 password from your provider";
    if (pw.length === 0) c.error(key, `is empty: ${use}`);
    // Linux TCP-MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
    if (Buffer.byteLength(pw) > 80) c.error(key, `is ${Buffer.byteLength(pw)} bytes, longer than 80 bytes, the TCP-MD5 key limit: ${use}, at most 80 bytes`);
    if (/[\x00-\x1f"\\]/.test(pw)) {
        c.error(key, "contains quotes, backslashes or control characters, which bird.conf cannot hold safely: use a password without them");
    }
}

export function checkBgpPassword(raw: Record<string, unknown>, parsed: Parsed, c: Collector): void {
    if (parsed.bgpPassword !== undefined) {
        checkPassword(`${NAMESPACE}:bgpPassword`, parsed.bgpPassword, c);
        return;
    }
    const withoutPassword = parsed.pops.filter((p) => p && p.bgp.password === undefined).map((p) => p!.name);
    if (withoutPassword.length > 0 && raw.bgpPassword === undefined) {
        c.error(`${NAMESPACE}:bgpPassword`, `is required for PoP(s) ${withoutPassword.join(", ")}: ` +
            `pulumi config set --secret ${NAMESPACE}:bgpPassword <the TCP-MD5 password> (or give each PoP bgp.password)`);
    }
}

export function bgpSettingsFor(key: string, raw: z.output<typeof bgpShape>, asn: number, password: string | undefined,
    onVultr: boolean, c: Collector): BgpSettings {
    const neighbor = IpAddress.tryParse(raw.neighbor);
    const neighbor4 = IpAddress.tryParse(raw.neighbor4);
    if (neighbor?.family !== 6) {
        c.error(`${key}.neighbor`, `"${raw.neighbor}" is not an IPv6 address: use the upstream's IPv6 address (Vultr: ${VULTR_BGP.neighbor})`);
    }
    if (neighbor4?.family !== 4) {
        c.error(`${key}.neighbor4`, `"${raw.neighbor4}" is not an IPv4 address: use the upstream's IPv4 address (Vultr: ${VULTR_BGP.neighbor4})`);
    }
    const remoteProblem = asnProblem(raw.remoteAsn);
    if (remoteProblem) c.error(`${key}.remoteAsn`, `${remoteProblem}: use the upstream's AS number (Vultr: ${VULTR_BGP.remoteAsn})`);
    if (raw.remoteAsn === asn) {
        c.error(`${key}.remoteAsn`, `${asn} equals our own anycast:asn, but the upstream session must be eBGP: use the upstream's AS number (Vultr: ${VULTR_BGP.remoteAsn})`);
    }
    const publicAsn = publicAsnFor(key, raw.publicAsn, onVultr, c);
    checkTimers(key, raw, c);
    if (raw.password !== undefined) checkPassword(`${key}.password`, raw.password, c);
    const bfd = raw.bfd === false ? undefined : raw.bfd === true ? { intervalMs: 100, multiplier: 5 }
        : { intervalMs: raw.bfd.interval, multiplier: raw.bfd.multiplier };
    if (bfd && raw.multihop > 0) c.warn(`${key}.bfd`, "BFD over a multihop session needs multihop BFD on the peer too");
    return {
        // Both are checked above; a spec is only returned without errors.
        neighbor: neighbor!,
        neighbor4: neighbor4!,
        remoteAsn: raw.remoteAsn,
        publicAsn,
        multihop: raw.multihop,
        staticRouteToNeighbor: raw.staticRoute,
        holdTime: raw.holdTime,
        keepaliveTime: raw.keepaliveTime ?? Math.max(1, Math.floor(raw.holdTime / 3)),
        errorWaitTime: typeof raw.errorWaitTime === "number" ? [raw.errorWaitTime, raw.errorWaitTime] : raw.errorWaitTime,
        connectRetryTime: raw.connectRetryTime,
        bfd,
        password: raw.password ?? password ?? "",
    };
}

/** A Vultr instance's upstream is AS20473; an existing host's is what its config says, if anything. */
function publicAsnFor(key: string, raw: number | undefined, onVultr: boolean, c: Collector): number | undefined {
    if (raw === undefined) return onVultr ? VULTR_ASN : undefined;
    const problem = asnProblem(raw);
    if (problem) c.error(`${key}.publicAsn`, `${problem}: use the public AS your provider exports routes from`);
    else if (isPrivateAsn(raw)) c.error(`${key}.publicAsn`, `AS${raw} is private (RFC 6996), but this is the AS the Internet sees: use your provider's public AS`);
    else if (onVultr && raw !== VULTR_ASN) {
        c.error(`${key}.publicAsn`, `AS${raw} is not Vultr's: a Vultr instance's upstream exports from AS${VULTR_ASN}; leave bgp.publicAsn out`);
    }
    return raw;
}

/**
 * A private anycast:asn works only where every PoP's upstream removes it on export and sends the
 * route on from its own public AS (origin-as.ts): anywhere else the private ASN reaches the
 * Internet, which drops paths holding one. And a prepend of it is removed with it.
 */
export function checkPrivateAsn(asn: number, parsed: Parsed, pops: ReadonlyArray<{ name: string; bgp: { publicAsn?: number } }>, c: Collector): void {
    if (!isPrivateAsn(asn)) return;
    const indexOf = (name: string) => parsed.pops.findIndex((p) => p?.name === name);
    const keeping = pops.filter((p) => p.bgp.publicAsn === undefined);
    if (keeping.length > 0) {
        const which = keeping.map((p) => `${p.name} (pops[${indexOf(p.name)}])`).join(", ");
        c.error(`${NAMESPACE}:asn`, `private ASN ${asn} would reach the Internet from PoP${keeping.length === 1 ? "" : "s"} ${which}, ` +
            "on an existing host whose upstream is not known to remove it, and networks drop routes whose AS path holds a private ASN " +
            `(RFC 6996). A private ASN works where the upstream removes it and exports the route from its own public AS, as Vultr does ` +
            `(AS${VULTR_ASN}): if this host's provider does, set bgp.publicAsn to that AS; otherwise use a registered ASN`);
    }
    for (const p of pops) {
        const i = indexOf(p.name);
        const prepend = parsed.pops[i]?.prepend ?? 0;
        if (prepend === 0 || p.bgp.publicAsn === undefined) continue;
        c.error(`${NAMESPACE}:pops[${i}].prepend`, `${prepend} extra copies of private AS${asn} are removed with it by ` +
            `${upstreamName(p.bgp.publicAsn)} before any other network sees the route; ${prependAdvice(prepend, p.bgp.publicAsn)}`);
    }
}

function checkTimers(key: string, raw: z.output<typeof bgpShape>, c: Collector): void {
    if (raw.holdTime !== 0 && (raw.holdTime < 3 || raw.holdTime > 65535)) {
        c.error(`${key}.holdTime`, `${raw.holdTime} is out of range: use 0 (no keepalives) or 3 to 65535 seconds (RFC 4271)`);
    }
    if (raw.keepaliveTime !== undefined && raw.holdTime !== 0 && raw.keepaliveTime >= raw.holdTime) {
        c.error(`${key}.keepaliveTime`, `${raw.keepaliveTime} is not shorter than holdTime ${raw.holdTime}: ` +
            `use less, a third of it is usual (${Math.max(1, Math.floor(raw.holdTime / 3))})`);
    }
    if (Array.isArray(raw.errorWaitTime) && raw.errorWaitTime[0] > raw.errorWaitTime[1]) {
        c.error(`${key}.errorWaitTime`, `${showValue(raw.errorWaitTime)} has its minimum above its maximum: use [min, max] with min ≤ max`);
    }
}

/** Parse "64600:6939" (standard) or "206924:1:2" (large) communities. */
export function parseCommunity(text: string): Community {
    const parts = text.split(":");
    if (!parts.every((p) => /^\d+$/.test(p)) || (parts.length !== 2 && parts.length !== 3)) {
        throw new Error(`"${text}" is not a community: use ASN:VALUE (standard) or ASN:DATA1:DATA2 (large)`);
    }
    const nums = parts.map(Number);
    if (parts.length === 2) {
        if (nums.some((n) => n > 65535)) {
            throw new Error(`"${text}" does not fit a standard community, whose halves are 16-bit (0-65535): use a large community ASN:DATA1:DATA2 for 32-bit ASNs`);
        }
        return { kind: "standard", asn: nums[0], value: nums[1] };
    }
    if (nums.some((n) => n > 4294967295)) throw new Error(`"${text}" does not fit a large community: use 32-bit parts (0-4294967295)`);
    return { kind: "large", global: nums[0], data1: nums[1], data2: nums[2] };
}

export function formatCommunity(c: Community): string {
    return c.kind === "standard" ? `${c.asn}:${c.value}` : `${c.global}:${c.data1}:${c.data2}`;
}

export function communitiesFor(key: string, texts: string[], c: Collector): Community[] {
    const communities: Community[] = [];
    texts.forEach((text, j) => {
        try {
            const community = parseCommunity(text);
            const problem = communityProblem(community);
            if (problem) c.error(`${key}.communities[${j}]`, `${text} ${problem}`);
            else communities.push(community);
        } catch (e) {
            c.error(`${key}.communities[${j}]`, (e as Error).message);
        }
    });
    return communities;
}

/**
 * `anycast:roas` against the announced prefixes (RFC 6811 origin validation, see rpki.ts), from
 * each origin the Internet sees (origin-as.ts: our ASN, or for a private one each upstream's
 * public AS): an announcement the listed ROAs make RPKI-invalid is an error on the ROA's key,
 * since the ROA is what has to change (or the prefix); one no ROA covers is a warning (it still
 * propagates, but networks that accept only RPKI-valid routes drop it).
 */
export function checkRoas(raw: TopLevel["roas"], prefixes: IpPrefix[], asn: number | undefined, origins: OriginSeen[],
    c: Collector): { roas: RoaSpec[]; rpki: RpkiFinding[] } {
    const findings = (finding: (p: IpPrefix, i: number, o: OriginSeen) => Omit<RpkiFinding, "prefix" | "originAsn" | "pops">) =>
        prefixes.flatMap((p, i) => origins.map((o) => ({ prefix: p, originAsn: o.asn,
            ...(asn !== undefined && o.asn !== asn ? { pops: o.pops } : {}), ...finding(p, i, o) })));
    if (raw === undefined) {
        const public_ = prefixes.filter((p) => p.network.range() !== "documentation");
        if (public_.length > 0) {
            c.warn(`${NAMESPACE}:roas`, `is not set, so the RPKI state of ${public_.join(", ")} is not checked before deploying; ` +
                "list the ROAs published at your RIR (prefix, maxLength, asn) to catch a max length shorter than the announcement or a wrong ASN");
        }
        return { roas: [], rpki: findings(() => ({ state: "unchecked", detail: "anycast:roas not set" })) };
    }
    const roas = parseRoas(raw, c);
    if (asn === undefined) return { roas: [], rpki: [] };
    const known = roas.filter((r): r is Roa => r !== undefined);
    const rpki = findings((p, i, o) => rpkiFinding(p, prefixes.length > 1 ? `${NAMESPACE}:prefix[${i}]` : `${NAMESPACE}:prefix`,
        asn, o, known, (k) => `${NAMESPACE}:roas[${roas.indexOf(known[k])}]`, c));
    return { roas: known.map((r) => ({ prefix: r.prefix, maxLength: r.maxLength, asn: r.asn })), rpki };
}

/** The listed ROAs, each parsed or reported (undefined keeps the indexes of the list). */
function parseRoas(raw: NonNullable<TopLevel["roas"]>, c: Collector): Array<Roa | undefined> {
    return raw.map((r, i) => {
        const key = `${NAMESPACE}:roas[${i}]`;
        let prefix: IpPrefix;
        try {
            prefix = IpPrefix.parse(r.prefix);
        } catch (e) {
            c.error(`${key}.prefix`, `${(e as Error).message}: use the ROA's prefix as your RIR lists it`);
            return undefined;
        }
        const bits = prefix.family === 6 ? 128 : 32;
        const maxLength = r.maxLength ?? prefix.length;
        if (maxLength < prefix.length || maxLength > bits) {
            c.error(`${key}.maxLength`, `${maxLength} is out of range: use a max length from the ROA prefix's length /${prefix.length} to /${bits}`);
            return undefined;
        }
        return { prefix, maxLength, asn: r.asn };
    });
}

/** One prefix's RPKI state from one origin against the ROAs; an invalid one is an error on the ROA that makes it so. */
function rpkiFinding(p: IpPrefix, prefixKey: string, asn: number, origin: OriginSeen, known: Roa[], roaKey: (k: number) => string,
    c: Collector): Pick<RpkiFinding, "state" | "detail"> {
    const text = p.toString();
    const o = origin.asn;
    const verdict = validateOrigin(p, o, known);
    if (verdict.state === "valid") return { state: "valid", detail: `ROA ${describeRoa(known[verdict.matchedBy!])}` };
    // With a private ASN, say whose origin the Internet sees, and why it is not ours.
    const seen = o === asn ? "" : ` (anycast:asn AS${asn} is private: ${upstreamName(o)} removes it on export for ` +
        `PoP${origin.pops.length === 1 ? "" : "s"} ${origin.pops.join(", ")})`;
    if (verdict.state === "not-found") {
        c.warn(prefixKey, `no ROA in anycast:roas covers ${text}${o === asn ? "" : ` from AS${o}`}${seen}: the announcement is RPKI NotFound, and networks that accept only RPKI-valid routes drop it; publish a ROA for AS${o} with max length ≥ ${p.length}`);
        return { state: "not-found", detail: "no listed ROA covers it" };
    }
    const why = `the announcement of ${text} by AS${o}${seen} is RPKI-invalid, and most of the Internet drops RPKI-invalid routes`;
    for (const m of verdict.mismatches) {
        const roa = known[m.roa];
        if (m.reason === "maxLength") {
            c.error(`${roaKey(m.roa)}.maxLength`, `/${roa.maxLength} is shorter than the announced /${p.length} (${prefixKey}): ${why}; set the ROA's max length to ${p.length} at your RIR`);
        } else if (m.reason === "asn") {
            const origin_ = o === asn ? `the origin anycast:asn AS${asn}` : `the origin AS${o}`;
            c.error(`${roaKey(m.roa)}.asn`, `AS${roa.asn} is not ${origin_}: ${why}; publish a ROA for AS${o}`);
        } else {
            c.error(`${roaKey(m.roa)}.asn`, `an AS0 ROA (RFC 6483) says ${roa.prefix} must never be announced: ${why}; remove it at your RIR`);
        }
    }
    return { state: "invalid", detail: verdict.mismatches.map((m) => `ROA ${describeRoa(known[m.roa])}: ${m.reason}`).join("; ") };
}

