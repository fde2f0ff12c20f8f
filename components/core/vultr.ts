/**
 * What we know about Vultr's BGP service, in one place: the session defaults a PoP's `bgp` block
 * starts from, and Vultr's communities: what each action community does (bird.conf's comments)
 * and which ones must never be set on an anycast announcement (config validation).
 */
import { Community } from "./model";

/** Vultr's BGP session facts: the defaults of a PoP's `bgp` block. */
export const VULTR_BGP = {
    neighbor: "2001:19f0:ffff::1",
    neighbor4: "169.254.169.254",
    remoteAsn: 64515,
    multihop: 2,
} as const;

/** Vultr's own ASN, the one its informational and action communities are scoped to. */
export const VULTR_ASN = 20473;

/** RFC 8326 GRACEFUL_SHUTDOWN (65535:0): the health agent sets it while draining. */
export const GRACEFUL_SHUTDOWN = { asn: 65535, value: 0 } as const;

/** What Vultr's action communities do; undefined for communities that are not theirs. */
export function vultrCommunityMeaning(c: Community): string | undefined {
    if (c.kind !== "standard") return undefined;
    if (c.asn === 64600) return `Vultr: do not announce to AS${c.value}`;
    if (c.asn >= 64601 && c.asn <= 64603) {
        const times = c.asn - 64600;
        return `Vultr: prepend ${times}x when announcing to AS${c.value}`;
    }
    if (c.asn === VULTR_ASN && c.value === 6000) return `Vultr: do not export outside AS${VULTR_ASN}`;
    if (c.asn === VULTR_ASN && c.value === 666) return "Vultr: blackhole";
    return undefined;
}

/** Why a community must not be set statically on an anycast announcement, or undefined when it may. */
export function forbiddenCommunity(c: Community): string | undefined {
    if (c.kind !== "standard") return undefined;
    if (c.asn === VULTR_ASN && c.value === 6000) {
        return `${VULTR_ASN}:6000 keeps the route inside AS${VULTR_ASN}: an anycast prefix announced with it is not reachable from the Internet`;
    }
    if (c.asn === VULTR_ASN && c.value === 666) return `${VULTR_ASN}:666 blackholes the prefix: never on an anycast announcement`;
    if (c.asn === GRACEFUL_SHUTDOWN.asn && c.value === GRACEFUL_SHUTDOWN.value) {
        return "65535:0 (GRACEFUL_SHUTDOWN) is set by the health agent while draining; do not set it statically";
    }
    return undefined;
}
