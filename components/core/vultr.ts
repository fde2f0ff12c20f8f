/**
 * What we know about Vultr, in one place: its BGP action communities and the region and plan
 * ids its API accepts.
 *
 * The region and plan lists are snapshots shipped with the package (vultr-regions.json,
 * vultr-plans.json, refreshed by scripts/refresh-vultr-lists.sh from Vultr's public API), so
 * `anycast validate` catches a typo before `pulumi up` asks Vultr. A region or plan newer than
 * the snapshot is let through per host with `allowUnknownRegion` / `allowUnknownPlan`.
 */
import { distance } from "fastest-levenshtein";
import { didYouMean, similar } from "./suggest";
import type { Community } from "./model";
import regionList from "./vultr-regions.json";
import planList from "./vultr-plans.json";

export interface VultrRegion {
    id: string;
    city: string;
    country: string;
    continent: string;
}

/** Vultr's regions as of `VULTR_LISTS_UPDATED`. */
export const VULTR_REGIONS: readonly VultrRegion[] = regionList.regions;
/** Vultr's plan ids (instances: `GET /v2/plans`) as of `VULTR_LISTS_UPDATED`. */
export const VULTR_PLANS: readonly string[] = planList.plans;
export const VULTR_LISTS_UPDATED = regionList.updated;

/**
 * Why `region` is not a Vultr region id, with suggestions, or undefined if it is one. A city
 * name ("Tokyo", "los angeles") is matched too, since that is the usual mistake.
 */
export function vultrRegionProblem(region: string): string | undefined {
    if (VULTR_REGIONS.some((r) => r.id === region)) return undefined;
    const label = (r: VultrRegion) => `${r.id} (${r.city})`;
    const byCity = VULTR_REGIONS.filter((r) => distance(region.toLowerCase().trim(), r.city.toLowerCase()) <= 2);
    const byId = similar(region, VULTR_REGIONS.map((r) => r.id)).map((id) => VULTR_REGIONS.find((r) => r.id === id)!);
    const hints = [...new Set([...byCity, ...byId])].map(label);
    if (hints.length > 0) return `is not a Vultr region id: did you mean ${hints.join(" or ")}?`;
    return `is not a Vultr region id: use one of ${VULTR_REGIONS.map((r) => r.id).join(", ")}`;
}

/** Why `plan` is not a Vultr plan id, with suggestions, or undefined if it is one. */
export function vultrPlanProblem(plan: string): string | undefined {
    if (VULTR_PLANS.includes(plan)) return undefined;
    const mean = didYouMean(plan, VULTR_PLANS);
    if (mean) return `is not a Vultr plan id: ${mean}`;
    return "is not a Vultr plan id: use a plan such as vc2-1c-1gb (1 vCPU, 1 GB) or vc2-1c-2gb; " +
        "the full list is components/core/vultr-plans.json";
}

// ---------------------------------------------------------------------------------------------
// BGP communities. Vultr's action communities (its BGP documentation) act on how AS20473
// exports our route: 64600:ASN do not announce to ASN,
// 64601-64603:ASN prepend 1-3 times towards ASN, 20473:6001-6003 prepend 1-3 times towards
// every network, 20473:6000 do not export outside AS20473, 20473:666 blackhole.
// ---------------------------------------------------------------------------------------------

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

/**
 * How many times Vultr prepends AS20473 towards `towardsAsn` for these communities:
 * 64601-64603:ASN towards that network, 20473:6001-6003 towards every network; the most wins.
 */
export function vultrPrepends(communities: readonly Community[], towardsAsn: number): number {
    let n = 0;
    for (const c of communities) {
        if (c.kind !== "standard") continue;
        if (c.asn >= 64601 && c.asn <= 64603 && c.value === towardsAsn) n = Math.max(n, c.asn - 64600);
        if (c.asn === VULTR_ASN && c.value >= 6001 && c.value <= 6003) n = Math.max(n, c.value - 6000);
    }
    return n;
}

/** What a Vultr action community does, for bird.conf comments; undefined for other communities. */
export function vultrCommunityMeaning(c: Community): string | undefined {
    if (c.kind !== "standard") return undefined;
    if (c.asn === 64600) return `Vultr: do not announce to AS${c.value}`;
    if (c.asn >= 64601 && c.asn <= 64603) {
        const times = c.asn - 64600;
        return `Vultr: prepend ${times}x when announcing to AS${c.value}`;
    }
    if (c.asn === VULTR_ASN && c.value === 6000) return `Vultr: do not export outside AS${VULTR_ASN}`;
    if (c.asn === VULTR_ASN && c.value >= 6001 && c.value <= 6003) return `Vultr: prepend ${c.value - 6000}x when announcing to every network`;
    if (c.asn === VULTR_ASN && c.value === 666) return "Vultr: blackhole";
    return undefined;
}

/**
 * Why a community must not be set on an anycast announcement, or undefined. Vultr's
 * 20473:6000 and 20473:666 make the prefix unreachable; 65535:0 (GRACEFUL_SHUTDOWN, RFC 8326)
 * belongs to the health agent, which sets it only while draining.
 */
export function communityProblem(c: Community): string | undefined {
    if (c.kind !== "standard") return undefined;
    if (c.asn === VULTR_ASN && c.value === 6000) {
        return `keeps the route inside AS${VULTR_ASN}: an anycast prefix announced with it is not reachable from the Internet`;
    }
    if (c.asn === VULTR_ASN && c.value === 666) return "blackholes the prefix: never on an anycast announcement";
    if (c.asn === GRACEFUL_SHUTDOWN.asn && c.value === GRACEFUL_SHUTDOWN.value) {
        return "is GRACEFUL_SHUTDOWN, which the health agent sets while draining; do not set it statically";
    }
    return undefined;
}
