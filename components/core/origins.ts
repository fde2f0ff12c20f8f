/**
 * Several origins, and what the PoPs do when origins fail: the `anycast:origins` list (or the
 * single `anycast:origin` of older stacks), each PoP's order of preference (`pops[].origins`),
 * and `anycast:failover` (relaying through other PoPs over the mesh, the 503 every PoP answers
 * while no origin is reachable, and an optional stale-content cache).
 *
 * config.ts calls these while it validates the rest, so that every problem is reported at once
 * with its config key; they hold the rules that are about origins only.
 */
import { z } from "zod";
import { IpAddress, IpPrefix } from "./addressing";
import { showValue } from "./config-issues";
import { failoverShape, staleCacheShape } from "./config-shape";
import { FailoverSpec, MeshTopology, OriginSpec, StaleCacheSpec } from "./model";
import { popPortHolder } from "./pop-ports";

/** What renderers assume when they are given no failover settings (one origin, no relay, no cache). */
export const DEFAULT_FAILOVER: FailoverSpec = (() => {
    const { relayPort, retryAfter } = failoverShape.parse({});
    return { relay: false, relayPort, retryAfter };
})();

/** The stale cache `staleCache: true` stands for. */
export const DEFAULT_STALE_CACHE: StaleCacheSpec = staleCacheSpecOf(staleCacheShape.parse({}));

function staleCacheSpecOf(raw: z.output<typeof staleCacheShape>): StaleCacheSpec {
    return { maxSizeMb: raw.maxSize, validSeconds: raw.validSeconds, keepSeconds: raw.keepSeconds };
}

interface Collector {
    error(key: string, message: string): void;
    warn(key: string, message: string): void;
}

/**
 * The origins to validate, each with the config key its errors name: `anycast:origin` (one
 * origin, as stacks have had it) or `anycast:origins` (a list), never both.
 * `present` says which keys the user set, whether or not they passed the shape check.
 */
export function originEntries<T extends { name: string }>(
    present: { origin: boolean; origins: boolean }, origin: T | undefined, origins: T[] | undefined, c: Collector,
): Array<{ key: string; raw: T }> {
    if (present.origin && present.origins) {
        c.error("anycast:origins", "is set together with anycast:origin: use origin (one origin) or origins (a list of origins), not both");
        return [];
    }
    if (!present.origin && !present.origins) {
        c.error("anycast:origin", "is required: use {name, host or region, port, healthPath?} for the server behind the mesh, " +
            "or anycast:origins, a list of them");
        return [];
    }
    const entries = origin ? [{ key: "anycast:origin", raw: origin }]
        : (origins ?? []).map((raw, i) => ({ key: `anycast:origins[${i}]`, raw }));
    const seen = new Map<string, string>();
    for (const e of entries) {
        const first = seen.get(e.raw.name);
        if (first) c.error(`${e.key}.name`, `"${e.raw.name}" is a duplicate origin name (also ${first.slice("anycast:".length)}): give each origin its own name`);
        else seen.set(e.raw.name, e.key);
    }
    return entries;
}

/**
 * The planned mesh address of the k-th origin (k ≥ 1): counted down from the end of the mesh
 * network, so that appending a PoP (which takes the next address from the start) never moves an
 * origin, and adding an origin never moves a PoP. The first origin keeps the first address.
 */
export function extraOriginMeshAddress(mesh: IpPrefix, k: number): IpAddress {
    if (k < 1) throw new Error(`origin #${k} takes the mesh's first address, not one from the end`);
    // IPv4 loses the broadcast address at the end; IPv6 has none.
    const last = mesh.size() - (mesh.family === 4 ? 2n : 1n);
    const index = last - BigInt(k - 1);
    if (index < 1n) throw new Error(`${mesh} has no room for origin #${k}`);
    return mesh.nth(index);
}

/** Each PoP's `origins` (its order of preference) must name configured origins, each once. */
export function checkOriginPreferences(preferences: Array<string[] | undefined>, originNames: string[], c: Collector): void {
    preferences.forEach((list, i) => {
        if (!list) return;
        list.forEach((name, j) => {
            const key = `anycast:pops[${i}].origins[${j}]`;
            if (!originNames.includes(name)) c.error(key, `"${name}" is not an origin: use one of ${originNames.join(", ")}`);
            else if (list.indexOf(name) !== j) c.error(key, `"${name}" is listed twice: list each origin once`);
        });
    });
}

/** `anycast:failover` against the mesh and the origins. */
export function checkFailover(raw: z.output<typeof failoverShape>, topology: MeshTopology | undefined, origins: ReadonlyArray<Pick<OriginSpec, "name">>,
    popCount: number, c: Collector): FailoverSpec {
    if (raw.relay === true && topology === "hub") {
        c.error("anycast:failover.relay", "true needs mesh.topology full: in a hub mesh the PoPs have no tunnels to each other, " +
            "so a PoP that lost its tunnel to the hub has no peer to relay through; use false, or mesh.topology full");
    }
    const holder = popPortHolder(raw.relayPort);
    if (holder) {
        c.error("anycast:failover.relayPort", `${showValue(raw.relayPort)} is taken on the PoPs (${holder}): use another port, such as the default 8081`);
    }
    if (topology === "hub" && origins.length > 1) {
        c.warn("anycast:origins", `in a hub mesh every PoP reaches ${origins.slice(1).map((o) => o.name).join(", ")} through the hub ` +
            `${origins[0].name}: when it is down, so are they. Use mesh.topology full for origins that back each other up`);
    }
    const relay = raw.relay ?? topology !== "hub";
    if (relay && popCount < 2 && raw.relay === true) {
        c.warn("anycast:failover.relay", "a single PoP has no peer to relay through");
    }
    const cache = raw.staleCache === false ? undefined : raw.staleCache === true ? DEFAULT_STALE_CACHE
        : staleCacheSpecOf(raw.staleCache);
    return { relay, relayPort: raw.relayPort, retryAfter: raw.retryAfter, ...(cache ? { staleCache: cache } : {}) };
}
