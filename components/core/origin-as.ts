/**
 * Which AS the Internet sees as the origin of the announcement, and what follows from it.
 *
 * With a registered (public) `anycast:asn`, the origin is that ASN on every PoP. Vultr also
 * assigns a private ASN to a customer who brings a prefix but no ASN of their own (Vultr's
 * "Using Multiple ASNs with Vultr" and "IP Prefix Onboarding"). The PoPs peer with that
 * private ASN, and Vultr's edge removes it on export and sends the route on from AS20473. So:
 *
 * - the Internet sees AS20473 as the origin, and the prefix's ROA must name 20473;
 * - a prepend of the private ASN is removed with it, so steering uses Vultr's prepend
 *   communities instead (64601-64603:ASN towards one network, 20473:6001-6003 towards all).
 *
 * A PoP on an existing host supports a private ASN only when its upstream does the same; its
 * `bgp.publicAsn` says so, and names the AS the Internet then sees.
 */
import { VULTR_ASN } from "./vultr";

/** RFC 6996's private ASNs, as [first, last] ranges (the lab's edges remove the same ones). */
export const PRIVATE_ASN_RANGES: ReadonlyArray<readonly [number, number]> = [[64512, 65534], [4200000000, 4294967294]];

/** RFC 6996: 64512-65534 and 4200000000-4294967294. */
export function isPrivateAsn(asn: number): boolean {
    return PRIVATE_ASN_RANGES.some(([first, last]) => asn >= first && asn <= last);
}

/** RFC 5398: 64496-64511 and 65536-65551, for documentation and labs. */
export function isDocumentationAsn(asn: number): boolean {
    return (asn >= 64496 && asn <= 64511) || (asn >= 65536 && asn <= 65551);
}

/**
 * The AS the Internet sees as the origin of what a PoP announces: `asn` itself when it is public;
 * for a private one, the upstream's public AS that replaces it, or undefined when the upstream is
 * not known to replace it (validation refuses that).
 */
export function originSeenThrough(asn: number, upstreamPublicAsn: number | undefined): number | undefined {
    return isPrivateAsn(asn) ? upstreamPublicAsn : asn;
}

export interface OriginSeen {
    /** The origin AS in the AS path that networks beyond the upstreams hold. */
    asn: number;
    /** The PoPs whose announcements reach the Internet with this origin, in config order. */
    pops: string[];
}

/** Each distinct origin the Internet sees, in the order of the PoPs that first show it. */
export function originsSeen(asn: number, pops: ReadonlyArray<{ name: string; bgp: { publicAsn?: number } }>): OriginSeen[] {
    const out: OriginSeen[] = [];
    for (const p of pops) {
        const seen = originSeenThrough(asn, p.bgp.publicAsn);
        if (seen === undefined) continue;
        const entry = out.find((o) => o.asn === seen);
        if (entry) entry.pops.push(p.name);
        else out.push({ asn: seen, pops: [p.name] });
    }
    return out;
}

/** Who removes a private ASN and exports from `publicAsn`, as messages name it. */
export function upstreamName(publicAsn: number): string {
    return publicAsn === VULTR_ASN ? `Vultr (AS${VULTR_ASN})` : `the upstream (AS${publicAsn})`;
}

/**
 * What to use instead of `prepend` extra copies of a private ASN: the upstream's prepend
 * communities (Vultr's towards all networks, or towards one), or the upstream's own means.
 */
export function prependAdvice(prepend: number, publicAsn: number | undefined): string {
    if (publicAsn !== VULTR_ASN) {
        return "steer with the prepend communities of the upstream that exports the route, if it has them";
    }
    return `prepend with Vultr's communities instead: communities: ["${VULTR_ASN}:${6000 + prepend}"] prepends ${prepend}x towards every network, ` +
        `"${64600 + prepend}:ASN" ${prepend}x towards one (64601-64603 for 1-3x)`;
}
