/**
 * RPKI route origin validation (RFC 6811) of the announced prefixes against the ROAs the user
 * says they have published at their RIR (`anycast:roas`). Nothing is fetched: this is the check
 * the seeds did by hand, done before deploying, so the two classic mistakes — a ROA whose
 * max length is shorter than the announced prefix (a /44 ROA with max length 44 while a /48 is
 * announced) and a ROA for another ASN — fail `pulumi preview` instead of silently making the
 * announcement RPKI-invalid, which most of the Internet now drops.
 */
import { IpPrefix } from "./addressing";

/** One Route Origin Authorisation: `asn` may originate `prefix` and more-specifics up to `maxLength`. */
export interface Roa {
    prefix: IpPrefix;
    /** RFC 6482: when the ROA has none, only the prefix itself is authorised. */
    maxLength: number;
    asn: number;
}

export type RpkiState = "valid" | "invalid" | "not-found";

export interface RpkiVerdict {
    state: RpkiState;
    /** The ROAs whose prefix covers the announcement (the ones RFC 6811 looks at), by index. */
    covering: number[];
    /** For an invalid announcement: why each covering ROA does not match it. */
    mismatches: Array<{ roa: number; reason: "asn" | "maxLength" | "as0" }>;
    /** For a valid announcement: the first ROA that matches. */
    matchedBy?: number;
}

/** True when `outer` covers `inner` (same family, outer at most as long, inner inside it). */
export function covers(outer: IpPrefix, inner: IpPrefix): boolean {
    return outer.family === inner.family && outer.length <= inner.length && outer.overlaps(inner);
}

/**
 * RFC 6811 origin validation of `prefix` originated by `originAsn`: not-found when no ROA covers
 * it; valid when a covering ROA has the origin ASN and a max length at least the announced
 * length; invalid otherwise. AS0 ROAs (RFC 6483) never match.
 */
export function validateOrigin(prefix: IpPrefix, originAsn: number, roas: readonly Roa[]): RpkiVerdict {
    const covering = roas.flatMap((roa, i) => (covers(roa.prefix, prefix) ? [i] : []));
    if (covering.length === 0) return { state: "not-found", covering, mismatches: [] };
    const mismatches: RpkiVerdict["mismatches"] = [];
    for (const i of covering) {
        const roa = roas[i];
        if (roa.asn === 0) mismatches.push({ roa: i, reason: "as0" });
        else if (roa.asn !== originAsn) mismatches.push({ roa: i, reason: "asn" });
        else if (prefix.length > roa.maxLength) mismatches.push({ roa: i, reason: "maxLength" });
        else return { state: "valid", covering, mismatches: [], matchedBy: i };
    }
    return { state: "invalid", covering, mismatches };
}

/** "2001:db8::/32 max /48 AS64500", the way RIR portals list a ROA. */
export function describeRoa(roa: Roa): string {
    return `${roa.prefix} max /${roa.maxLength} AS${roa.asn}`;
}
