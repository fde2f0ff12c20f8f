/**
 * Seeded stack configs for the lab: ordinary production choices a user might make (mesh family
 * and topology, firewall defaults, PoP count and regions, a PoP on an existing host with its own
 * upstream, BFD or not, hold times, an IPv4 prefix beside the IPv6 one, any origin healthPath).
 * The same seed always gives the same config; every one goes through the real validator.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { stringify as stringifyYaml } from "yaml";
import { parseAnycastConfig } from "../../components/core/config";
import { AnycastSpec } from "../../components/core/model";
import { mockInstanceAddresses } from "../../harness/mockcloud";
import { LabStack } from "../../lab/stack";
import { TEST_SSH_PRIVATE_KEY } from "./fixtures";
import { VULTR_REGIONS as VULTR_REGION_LIST } from "../../components/core/vultr";

/** Vultr's region ids: the list the package ships and validation checks against. */
export const VULTR_REGIONS = VULTR_REGION_LIST.map((r) => r.id);

/** mulberry32: a small, well-known seeded PRNG (uniform floats in [0, 1)). */
export function prng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

/** Choices a test can pin instead of leaving them to the seed. */
export interface LabConfigChoices {
    pops?: number;
    meshFamily?: 4 | 6;
    topology?: "full" | "hub";
    /** Leave firewall.httpSources unset (Cloudflare's ranges) or list the lab's own block. */
    cloudflareSources?: boolean;
    /** firewall.adminCidrs: empty (SSH open), the origin's network, or a network of its own. */
    admin?: "none" | "origin" | "own";
    existingPop?: boolean;
    dualStack?: boolean;
    /** BFD on every PoP (with these timers, or seeded ones for `true`), or none. */
    bfd?: boolean | { interval: number; multiplier: number };
    /** A private anycast:asn, as Vultr assigns one: ROAs for the upstreams' public ASNs, steering by community. */
    privateAsn?: boolean;
}

export interface GeneratedConfig {
    seed: number;
    /** `anycast:` values without the namespace, as parseAnycastConfig takes them. */
    values: Record<string, unknown>;
    /** What was chosen, for test names and messages. */
    summary: string;
}

export function generateLabConfig(seed: number, choices: LabConfigChoices = {}): GeneratedConfig {
    const rnd = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const chance = (p: number) => rnd() < p;
    const popCount = choices.pops ?? 1 + Math.floor(rnd() * 8);
    const meshFamily = choices.meshFamily ?? pick([4, 6] as const);
    const topology = choices.topology ?? pick(["full", "hub"] as const);
    const cloudflare = choices.cloudflareSources ?? chance(0.5);
    const admin = choices.admin ?? pick(["none", "origin", "own"] as const);
    const existingPop = choices.existingPop ?? chance(0.5);
    const dualStack = choices.dualStack ?? chance(0.4);
    const bfdChoice = choices.bfd ?? chance(0.5);
    const bfd = bfdChoice !== false;

    const regions = [...VULTR_REGIONS].sort(() => rnd() - 0.5).slice(0, popCount);
    const holdTime = pick([0, 3, 4, 6, 9]);
    const bfdTimers = () => (typeof bfdChoice === "object" ? bfdChoice : { interval: pick([100, 200, 300]), multiplier: pick([3, 4, 5]) });
    const bgp = () => ({ holdTime, errorWaitTime: [2, 10], ...(bfd ? { bfd: bfdTimers() } : {}) });
    const pops: Array<Record<string, unknown>> = regions.map((region, i) => ({
        name: `${region}${i}`, region, bgp: bgp(), ...(i === 0 && chance(0.5) ? { prepend: 1 } : {}),
    }));
    if (existingPop) {
        // A PoP on a server of its own, with that provider's upstream as the config describes it.
        const remoteAsn = pick([65001, 4200000010, 53667]);
        pops[pops.length - 1] = {
            name: "edge-box", host: { address: "2001:db8:cafe::10", ...(dualStack ? { address4: "192.0.2.200" } : {}) },
            bgp: { ...bgp(), neighbor: "2001:db8:cafe:ffff::1", neighbor4: "169.254.1.1", remoteAsn, multihop: pick([2, 3]) },
        };
    }
    const meshCidr = meshFamily === 4 ? `10.${Math.floor(rnd() * 200)}.0.0/24` : `fd00:${Math.floor(rnd() * 0xffff).toString(16)}::/64`;
    const values: Record<string, unknown> = {
        asn: 64500,
        prefix: dualStack ? ["2001:db8:100::/48", "203.0.113.0/24"] : "2001:db8:100::/48",
        bgpPassword: `lab-${Math.floor(rnd() * 1e9).toString(36)}`,
        sshPrivateKey: TEST_SSH_PRIVATE_KEY,
        pops,
        origin: { name: "origin", host: { address: "2001:db8:beef::10" }, port: pick([8080, 3000, 8443]),
            healthPath: pick(["/", "/healthz", "/status/ok?probe=anycast", "/_health"]) },
        mesh: { cidr: meshCidr, topology },
        frontDoor: { zone: "example.com", hostname: "www" },
        health: { interval: 0.2, rise: 3, fall: 2, timeout: 1, drainSeconds: 2 },
        roas: [{ prefix: "2001:db8:100::/48", maxLength: 48, asn: 64500 },
            ...(dualStack ? [{ prefix: "203.0.113.0/24", maxLength: 24, asn: 64500 }] : [])],
        firewall: {
            adminCidrs: admin === "none" ? [] : admin === "origin" ? ["2001:db8:beef::/64"] : ["2001:db8:ad00::/48", "198.51.100.7/32"],
            ...(cloudflare ? {} : { httpSources: ["2001:db8:ff00::/40", ...(dualStack ? ["198.51.100.0/24"] : [])] }),
        },
    };
    // Drawn last, so that a seed keeps every earlier choice it had before this one existed.
    const privateAsn = choices.privateAsn ?? chance(0.3);
    if (privateAsn) usePrivateAsn(values, pick([65010, 4200000100]), dualStack);
    // The validator is the judge: a generator that drifted from it fails here, not in the lab.
    parseAnycastConfig(values);
    const summary = [`seed ${seed}`, `${popCount} PoP${popCount === 1 ? "" : "s"}`, `IPv${meshFamily} ${topology} mesh`,
        cloudflare ? "Cloudflare sources" : "own sources", `admin ${admin}`, existingPop ? "existing-host PoP" : "Vultr PoPs",
        dualStack ? "dual-stack" : "IPv6", bfd ? "BFD" : `hold ${holdTime} s`, ...(privateAsn ? ["private ASN"] : [])].join(", ");
    return { seed, values, summary };
}

/**
 * Vultr's set-up for a customer without an ASN: a private one, removed by every upstream, so the
 * ROAs name each upstream's public AS (20473, or an existing host's provider's), and a prepend
 * becomes Vultr's "prepend towards every network" community.
 */
function usePrivateAsn(values: Record<string, unknown>, asn: number, dualStack: boolean): void {
    values.asn = asn;
    const pops = values.pops as Array<Record<string, any>>;
    const origins = new Set<number>();
    for (const p of pops) {
        if (p.host) {
            const remote = p.bgp.remoteAsn as number;
            p.bgp.publicAsn = remote === 53667 ? remote : 64499;
        }
        origins.add(p.bgp.publicAsn ?? 20473);
        if (p.prepend) {
            p.communities = [`20473:${6000 + p.prepend}`];
            delete p.prepend;
        }
    }
    values.roas = [...origins].flatMap((origin) => [{ prefix: "2001:db8:100::/48", maxLength: 48, asn: origin },
        ...(dualStack ? [{ prefix: "203.0.113.0/24", maxLength: 24, asn: origin }] : [])]);
}

/** The config as a Pulumi.<stack>.yaml file, the way a user writes one. */
export function writeStackFile(dir: string, config: GeneratedConfig): string {
    const file = path.join(dir, `Pulumi.gen${config.seed}.yaml`);
    const entries = Object.entries(config.values).filter(([k]) => k !== "sshPrivateKey").map(([k, v]) => [`anycast:${k}`, v]);
    fs.writeFileSync(file, stringifyYaml({ config: Object.fromEntries(entries) }));
    return file;
}

/**
 * A LabStack without running the stack program: hosts get the addresses the mock cloud would
 * give (Vultr instances in order, the origin next) or their configured ones. For plan tests.
 */
export function planOnlyStack(spec: AnycastSpec, httpSources: string[]): LabStack {
    let n = 0;
    const addressesOf = (host: AnycastSpec["pops"][number]["host"]) => {
        if (host.kind === "existing") return { ipv6: host.address.toString(), ipv4: host.address4?.toString() };
        const a = mockInstanceAddresses(++n);
        return { ipv6: a.ipv6, ipv4: a.ipv4 };
    };
    return {
        spec,
        stackSpec: spec,
        hosts: [
            ...spec.pops.map((p) => ({ name: p.name, role: "pop" as const, ...addressesOf(p.host), files: {} })),
            { name: spec.origin.name, role: "origin" as const, ...addressesOf(spec.origin.host), files: {} },
        ],
        httpSources, notes: [],
    };
}
