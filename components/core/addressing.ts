/**
 * IP address math on top of ipaddr.js (parsing, family, CIDR matching), plus the few
 * operations it lacks: the n-th address of a prefix, overlap of two prefixes, and the
 * WireGuard mesh address plan. Addresses are handled as BigInt so IPv4 and IPv6 share code.
 */
import * as ipaddr from "ipaddr.js";

export type Family = 4 | 6;

export interface Cidr {
    /** Canonical text of the network address. */
    network: string;
    length: number;
    family: Family;
}

function bitsOf(family: Family): number {
    return family === 4 ? 32 : 128;
}

function toBigInt(addr: ipaddr.IPv4 | ipaddr.IPv6): bigint {
    return addr.toByteArray().reduce((acc, byte) => (acc << 8n) | BigInt(byte), 0n);
}

function fromBigInt(value: bigint, family: Family): string {
    const bytes: number[] = [];
    for (let i = 0; i < bitsOf(family) / 8; i++) {
        bytes.unshift(Number(value & 0xffn));
        value >>= 8n;
    }
    return ipaddr.fromByteArray(bytes).toString();
}

/** True for a syntactically valid IPv4 or IPv6 address (no prefix length, no zone). */
export function isIp(text: string): boolean {
    return typeof text === "string" && !text.includes("%") && ipaddr.isValid(text) && !text.includes("/") &&
        (ipaddr.IPv4.isValidFourPartDecimal(text) || ipaddr.IPv6.isValid(text));
}

/**
 * The address family of an address or a prefix (`2001:db8::1`, `10.77.0.0/24`): the one place
 * that decides it. Throws on text that is neither.
 */
export function familyOf(addressOrPrefix: string): Family {
    const address = addressOrPrefix.includes("/") ? ipaddr.parseCIDR(addressOrPrefix)[0] : ipaddr.parse(addressOrPrefix);
    return address.kind() === "ipv4" ? 4 : 6;
}

/** True when any of the prefixes or addresses is IPv4 (a dual-stack deployment announces an IPv4 /24). */
export function hasIpv4(addressesOrPrefixes: readonly string[]): boolean {
    return addressesOrPrefixes.some((a) => familyOf(a) === 4);
}

/** Canonical (RFC 5952) text of an address. */
export function canonical(address: string): string {
    return ipaddr.parse(address).toString();
}

/**
 * Parse `addr/len`. Throws with a readable reason; `strict` also rejects host bits set
 * (2001:db8::1/48 is an address in a prefix, not a prefix).
 */
export function parseCidr(text: string, strict = true): Cidr {
    if (typeof text !== "string" || !text.includes("/")) {
        throw new Error(`"${String(text)}" is not in address/length form`);
    }
    let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
    try {
        parsed = ipaddr.parseCIDR(text);
    } catch {
        throw new Error(`"${text}" is not a valid IPv4 or IPv6 prefix`);
    }
    const [addr, length] = parsed;
    const family = familyOf(text);
    if (family === 4 && !ipaddr.IPv4.isValidFourPartDecimal(text.split("/")[0])) {
        throw new Error(`"${text}" is not a valid IPv4 prefix`);
    }
    const bits = bitsOf(family);
    const value = toBigInt(addr);
    const hostMask = (1n << BigInt(bits - length)) - 1n;
    if (strict && (value & hostMask) !== 0n) {
        const network = fromBigInt(value & ~hostMask, family);
        throw new Error(`"${text}" has host bits set (the prefix is ${network}/${length})`);
    }
    return { network: fromBigInt(value & ~hostMask, family), length, family };
}

export function formatCidr(c: Cidr): string {
    return `${c.network}/${c.length}`;
}

export function contains(prefix: Cidr, address: string): boolean {
    if (familyOf(address) !== prefix.family) return false;
    const addr = ipaddr.parse(address);
    return addr.match(ipaddr.parse(prefix.network), prefix.length);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
    if (a.family !== b.family) return false;
    const shorter = a.length <= b.length ? a : b;
    const longer = shorter === a ? b : a;
    return contains(shorter, longer.network);
}

/** Number of addresses in a prefix. */
export function size(prefix: Cidr): bigint {
    return 1n << BigInt(bitsOf(prefix.family) - prefix.length);
}

/** The n-th address of a prefix (0 = the network address). */
export function nthAddress(prefix: Cidr, n: number | bigint): string {
    const offset = BigInt(n);
    if (offset < 0n || offset >= size(prefix)) {
        throw new Error(`address #${offset} is outside ${formatCidr(prefix)}`);
    }
    return fromBigInt(toBigInt(ipaddr.parse(prefix.network)) + offset, prefix.family);
}

/** Usable host addresses: IPv4 loses the network and broadcast address, IPv6 the subnet-router anycast (::0). */
export function usableHosts(prefix: Cidr): bigint {
    const total = size(prefix);
    return prefix.family === 4 ? (total > 2n ? total - 2n : 0n) : total - 1n;
}

export type RangeName = "private" | "uniqueLocal" | "documentation" | "loopback" | "linkLocal" | "multicast" |
    "unspecified" | "reserved" | "unicast" | "global" | string;

/** ipaddr.js's classification of an address (e.g. "private", "uniqueLocal", "unicast"). */
export function rangeOf(address: string): RangeName {
    const addr = ipaddr.parse(address);
    const range = addr.range();
    // ipaddr.js has no range for 2001:db8::/32 in every version; RFC 3849 says it is documentation.
    if (addr.kind() === "ipv6" && addr.match(ipaddr.parse("2001:db8::"), 32)) return "documentation";
    if (addr.kind() === "ipv4") {
        const docs = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"];
        if (docs.some((d) => { const [n, l] = ipaddr.parseCIDR(d); return addr.match(n, l); })) return "documentation";
    }
    return range;
}

/** Private mesh space: RFC 1918 IPv4 or IPv6 unique local (fc00::/7). */
export function isPrivateRange(prefix: Cidr): boolean {
    const r = rangeOf(prefix.network);
    return r === "private" || r === "uniqueLocal";
}

/** The mesh plan: the origin takes the first host address, PoPs the following ones, in order. */
export function planMeshAddresses(cidr: string, nodeCount: number): string[] {
    const prefix = parseCidr(cidr);
    if (BigInt(nodeCount) > usableHosts(prefix)) {
        throw new Error(`${cidr} has room for ${usableHosts(prefix)} hosts, ${nodeCount} needed`);
    }
    return Array.from({ length: nodeCount }, (_, i) => nthAddress(prefix, i + 1));
}

/** The mesh address written with the mesh's prefix length, as wg-quick's Address= wants it. */
export function withLength(address: string, cidr: string): string {
    return `${address}/${parseCidr(cidr).length}`;
}

/** The host route for an address: /128 for IPv6, /32 for IPv4. */
export function hostRoute(address: string): string {
    return `${canonical(address)}/${familyOf(address) === 6 ? 128 : 32}`;
}
