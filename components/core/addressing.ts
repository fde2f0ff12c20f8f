/**
 * IP addresses and prefixes as typed values on top of ipaddr.js.
 *
 * The validator (config.ts) parses every address and prefix of the config once into an
 * IpAddress or IpPrefix; the spec holds those, and renderers read `.family` and write
 * `toString()` (canonical RFC 5952 / dotted-quad text) without parsing anything again.
 * `IpAddress.parse` is the one function that decides an address family; everything else here
 * asks the values. ipaddr.js lacks a few operations (the n-th address of a prefix, overlap,
 * masking); they are BigInt arithmetic below, so IPv4 and IPv6 share code.
 *
 * Both classes serialise to their canonical text (`toJSON`), so `JSON.stringify` of a spec is
 * plain strings; spec-json.ts rebuilds the typed values from that form.
 */
import * as ipaddr from "ipaddr.js";

export type Family = 4 | 6;

function bitsOf(family: Family): number {
    return family === 4 ? 32 : 128;
}

function bytesOf(value: bigint, family: Family): number[] {
    const bytes: number[] = [];
    for (let i = 0; i < bitsOf(family) / 8; i++) {
        bytes.unshift(Number(value & 0xffn));
        value >>= 8n;
    }
    return bytes;
}

/** An IPv4 or IPv6 address (no prefix length, no zone). Immutable; compare with `equals`. */
export class IpAddress {
    readonly family: Family;
    /** The address as a number (private: a value's only text is its canonical `toString()`). */
    private readonly value: bigint;
    private readonly text: string;

    private constructor(value: bigint, family: Family) {
        this.value = value;
        this.family = family;
        this.text = ipaddr.fromByteArray(bytesOf(value, family)).toString();
    }

    /**
     * Parse an address. The one place that decides the family: dotted-quad text is IPv4, valid
     * IPv6 text (an IPv4-mapped one too) is IPv6, anything else (zones, lengths, `0x7f.1`) throws.
     */
    static parse(text: string): IpAddress {
        let parsed: ipaddr.IPv4 | ipaddr.IPv6;
        if (typeof text !== "string" || text.includes("%") || text.includes("/") || !ipaddr.isValid(text)) {
            throw new Error(`"${String(text)}" is not an IPv4 or IPv6 address`);
        } else if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
            parsed = ipaddr.IPv4.parse(text);
        } else if (ipaddr.IPv6.isValid(text)) {
            parsed = ipaddr.IPv6.parse(text);
        } else {
            throw new Error(`"${text}" is not an IPv4 or IPv6 address`);
        }
        const family: Family = parsed.kind() === "ipv4" ? 4 : 6;
        return new IpAddress(parsed.toByteArray().reduce((acc, byte) => (acc << 8n) | BigInt(byte), 0n), family);
    }

    /** The address, or undefined for text that is not one. */
    static tryParse(text: string): IpAddress | undefined {
        try {
            return IpAddress.parse(text);
        } catch {
            return undefined;
        }
    }

    /** The address with this numeric value (0 .. 2^32-1 or 2^128-1). */
    static fromBigInt(value: bigint, family: Family): IpAddress {
        if (value < 0n || value >= 1n << BigInt(bitsOf(family))) throw new Error(`${value} is not an IPv${family} address value`);
        return new IpAddress(value, family);
    }

    toBigInt(): bigint {
        return this.value;
    }

    toByteArray(): number[] {
        return bytesOf(this.value, this.family);
    }

    /** Canonical text: RFC 5952 for IPv6 (`2001:db8::1`), dotted quad for IPv4. */
    toString(): string {
        return this.text;
    }

    toJSON(): string {
        return this.text;
    }

    equals(other: IpAddress): boolean {
        return this.family === other.family && this.value === other.value;
    }

    /** The address as a URL or `host:port` writes it: IPv6 in brackets. */
    inUrl(): string {
        return this.family === 6 ? `[${this.text}]` : this.text;
    }

    /** The host route of the address: /128 for IPv6, /32 for IPv4. */
    hostPrefix(): IpPrefix {
        return IpPrefix.of(this, bitsOf(this.family));
    }

    /** ipaddr.js's classification ("private", "uniqueLocal", "unicast", ...), with RFC 3849/5737 documentation ranges. */
    range(): RangeName {
        const addr = ipaddr.fromByteArray(this.toByteArray());
        // ipaddr.js has no range for 2001:db8::/32 in every version; RFC 3849 (and RFC 5737) say it is documentation.
        if (documentationPrefixes().some((d) => d.contains(this))) return "documentation";
        return addr.range();
    }
}

/** A prefix `network/length` whose network has no host bits set. Immutable; compare with `equals`. */
export class IpPrefix {
    readonly network: IpAddress;
    readonly length: number;
    /**
     * Canonical text. Private, which also makes the class nominal: a plain `{network, length}`
     * object (one Pulumi's output() copied field by field, say) does not type-check as an IpPrefix.
     */
    private readonly text: string;

    private constructor(network: IpAddress, length: number) {
        this.network = network;
        this.length = length;
        this.text = `${network}/${length}`;
    }

    /**
     * Parse `addr/len`. Throws with a readable reason; `strict` also rejects host bits set
     * (2001:db8::1/48 is an address in a prefix, not a prefix), otherwise they are cleared.
     */
    static parse(text: string, strict = true): IpPrefix {
        if (typeof text !== "string" || !text.includes("/")) {
            throw new Error(`"${String(text)}" is not in address/length form`);
        }
        let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
        try {
            parsed = ipaddr.parseCIDR(text);
        } catch {
            throw new Error(`"${text}" is not a valid IPv4 or IPv6 prefix`);
        }
        let address: IpAddress;
        try {
            address = IpAddress.parse(text.slice(0, text.lastIndexOf("/")));
        } catch {
            // ipaddr.js reads IPv4 forms such as 10.1/16 that nothing else reads the same way.
            throw new Error(parsed[0].kind() === "ipv4" ? `"${text}" is not a valid IPv4 prefix` : `"${text}" is not a valid IPv4 or IPv6 prefix`);
        }
        const length = parsed[1];
        const prefix = IpPrefix.of(address, length);
        if (strict && !prefix.network.equals(address)) {
            throw new Error(`"${text}" has host bits set (the prefix is ${prefix})`);
        }
        return prefix;
    }

    /** The prefix of the given length that holds the address (host bits cleared). */
    static of(address: IpAddress, length: number): IpPrefix {
        const bits = bitsOf(address.family);
        if (!Number.isInteger(length) || length < 0 || length > bits) throw new Error(`/${length} is not an IPv${address.family} prefix length`);
        const hostMask = (1n << BigInt(bits - length)) - 1n;
        return new IpPrefix(IpAddress.fromBigInt(address.toBigInt() & ~hostMask, address.family), length);
    }

    get family(): Family {
        return this.network.family;
    }

    /** Canonical `network/length`. */
    toString(): string {
        return this.text;
    }

    toJSON(): string {
        return this.toString();
    }

    equals(other: IpPrefix): boolean {
        return this.length === other.length && this.network.equals(other.network);
    }

    /** True for an address inside the prefix, or a prefix no shorter than this one inside it; false across families. */
    contains(inner: IpAddress | IpPrefix): boolean {
        if (inner.family !== this.family) return false;
        if (inner instanceof IpPrefix && inner.length < this.length) return false;
        const address = inner instanceof IpPrefix ? inner.network : inner;
        return IpPrefix.of(address, this.length).network.equals(this.network);
    }

    overlaps(other: IpPrefix): boolean {
        return this.contains(other) || other.contains(this);
    }

    /** Number of addresses in the prefix. */
    size(): bigint {
        return 1n << BigInt(bitsOf(this.family) - this.length);
    }

    /** The n-th address of the prefix (0 = the network address). */
    nth(n: number | bigint): IpAddress {
        const offset = BigInt(n);
        if (offset < 0n || offset >= this.size()) throw new Error(`address #${offset} is outside ${this}`);
        return IpAddress.fromBigInt(this.network.toBigInt() + offset, this.family);
    }

    /** Usable host addresses: IPv4 loses the network and broadcast address, IPv6 the subnet-router anycast (::0). */
    usableHosts(): bigint {
        const total = this.size();
        return this.family === 4 ? (total > 2n ? total - 2n : 0n) : total - 1n;
    }

    /** Private mesh space: RFC 1918 IPv4 or IPv6 unique local (fc00::/7). */
    isPrivate(): boolean {
        const r = this.network.range();
        return r === "private" || r === "uniqueLocal";
    }
}

let documentation: IpPrefix[] | undefined;
/** RFC 3849 and RFC 5737 documentation prefixes (built on first use: the class is defined above by then). */
function documentationPrefixes(): IpPrefix[] {
    documentation ??= ["2001:db8::/32", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"].map((d) => IpPrefix.parse(d));
    return documentation;
}

/** An address or a prefix from text: the form with a `/` is a prefix (strict), the other an address. */
export function parseAddressOrPrefix(text: string): IpAddress | IpPrefix {
    return typeof text === "string" && text.includes("/") ? IpPrefix.parse(text) : IpAddress.parse(text);
}

/** True when any of the prefixes or addresses is IPv4 (a dual-stack deployment announces an IPv4 /24). */
export function hasIpv4(values: ReadonlyArray<IpAddress | IpPrefix>): boolean {
    return values.some((v) => v.family === 4);
}

export type RangeName = "private" | "uniqueLocal" | "documentation" | "loopback" | "linkLocal" | "multicast" |
    "unspecified" | "reserved" | "unicast" | "global" | string;

/** The mesh plan: the origin takes the first host address, PoPs the following ones, in order. */
export function meshAddressesFor(cidr: IpPrefix, nodeCount: number): IpAddress[] {
    if (BigInt(nodeCount) > cidr.usableHosts()) {
        throw new Error(`${cidr} has room for ${cidr.usableHosts()} hosts, ${nodeCount} needed`);
    }
    return Array.from({ length: nodeCount }, (_, i) => cidr.nth(i + 1));
}

// ---------------------------------------------------------------------------------------------
// Text conveniences, for code that holds addresses as text of its own (the lab's address plans,
// a host's addresses as the cloud reports them). Each parses with the classes above.
// ---------------------------------------------------------------------------------------------

/** A prefix as the classes hold it; the name older code uses. */
export type Cidr = IpPrefix;

/** True for a syntactically valid IPv4 or IPv6 address (no prefix length, no zone). */
export function isIp(text: string): boolean {
    return IpAddress.tryParse(text) !== undefined;
}

/** The address family of an address or prefix given as text (`2001:db8::1`, `10.77.0.0/24`). Throws on text that is neither. */
export function familyOf(addressOrPrefix: string): Family {
    return addressOrPrefix.includes("/") ? IpPrefix.parse(addressOrPrefix, false).family : IpAddress.parse(addressOrPrefix).family;
}

/** Canonical (RFC 5952) text of an address. */
export function canonical(address: string): string {
    return IpAddress.parse(address).toString();
}

/** IpPrefix.parse under its older name. */
export function parseCidr(text: string, strict = true): IpPrefix {
    return IpPrefix.parse(text, strict);
}

export function formatCidr(c: IpPrefix): string {
    return c.toString();
}

export function contains(prefix: IpPrefix, address: string | IpAddress): boolean {
    const addr = typeof address === "string" ? IpAddress.tryParse(address) : address;
    return addr !== undefined && prefix.contains(addr);
}

export function overlaps(a: IpPrefix, b: IpPrefix): boolean {
    return a.overlaps(b);
}

/** Number of addresses in a prefix. */
export function size(prefix: IpPrefix): bigint {
    return prefix.size();
}

/** The n-th address of a prefix (0 = the network address), as text. */
export function nthAddress(prefix: IpPrefix, n: number | bigint): string {
    return prefix.nth(n).toString();
}

/** ipaddr.js's classification of an address (e.g. "private", "uniqueLocal", "unicast"). */
export function rangeOf(address: string | IpAddress): RangeName {
    return (typeof address === "string" ? IpAddress.parse(address) : address).range();
}

/** The host route for an address given as text: /128 for IPv6, /32 for IPv4. */
export function hostRoute(address: string): string {
    return IpAddress.parse(address).hostPrefix().toString();
}
