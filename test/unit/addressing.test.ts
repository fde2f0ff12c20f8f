/**
 * The typed address values (components/core/addressing.ts) and the spec's JSON form
 * (components/core/spec-json.ts): canonical text, the family, containment, and a whole spec
 * surviving JSON and coming back typed.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { IpAddress, IpPrefix, parseAddressOrPrefix, meshAddressesFor } from "../../components/core/addressing";
import { parseAnycastConfig } from "../../components/core/config";
import { AnycastSpec } from "../../components/core/model";
import { specFromJson, specToJson } from "../../components/core/spec-json";
import { withoutSecrets } from "../../components/network";
import { labSpec, prodSpec, rawConfigOf, TEST_SSH_PRIVATE_KEY } from "../helpers/fixtures";

describe("IpAddress", () => {
    it("writes the canonical text: RFC 5952 for IPv6, dotted quad for IPv4", () => {
        assert.equal(IpAddress.parse("2001:DB8:0:0:0:0:0:1").toString(), "2001:db8::1");
        assert.equal(IpAddress.parse("2001:db8:0:0:1:0:0:1").toString(), "2001:db8::1:0:0:1");
        assert.equal(IpAddress.parse("fd00:a:1:0:ffff:ffff:ffff:ffff").toString(), "fd00:a:1:0:ffff:ffff:ffff:ffff");
        assert.equal(IpAddress.parse("::").toString(), "::");
        assert.equal(IpAddress.parse("10.77.0.1").toString(), "10.77.0.1");
        assert.equal(`${IpAddress.parse("2001:0db8::0001")}`, "2001:db8::1", "template literals write the canonical text");
    });

    it("decides the family, and refuses what is no plain address", () => {
        assert.equal(IpAddress.parse("2001:db8::1").family, 6);
        assert.equal(IpAddress.parse("192.0.2.1").family, 4);
        assert.equal(IpAddress.parse("::ffff:192.0.2.1").family, 6, "an IPv4-mapped address is IPv6");
        for (const bad of ["10.1", "0x7f.0.0.1", "fe80::1%eth0", "2001:db8::/48", "2001:db8::g", "", "example.com"]) {
            assert.throws(() => IpAddress.parse(bad), /not an IPv4 or IPv6 address/, bad);
            assert.equal(IpAddress.tryParse(bad), undefined, bad);
        }
    });

    it("compares by value, and writes URLs with IPv6 in brackets", () => {
        assert.ok(IpAddress.parse("2001:db8::1").equals(IpAddress.parse("2001:DB8:0::1")));
        assert.ok(!IpAddress.parse("2001:db8::1").equals(IpAddress.parse("2001:db8::2")));
        assert.ok(!IpAddress.parse("::a00:1").equals(IpAddress.parse("10.0.0.1")), "the same bits in two families differ");
        assert.equal(IpAddress.parse("2001:db8::1").inUrl(), "[2001:db8::1]");
        assert.equal(IpAddress.parse("10.0.0.1").inUrl(), "10.0.0.1");
        assert.equal(IpAddress.parse("2001:db8::1").hostPrefix().toString(), "2001:db8::1/128");
        assert.equal(IpAddress.parse("10.0.0.1").hostPrefix().toString(), "10.0.0.1/32");
    });

    it("classifies ranges, documentation space included", () => {
        assert.equal(IpAddress.parse("2001:db8::1").range(), "documentation");
        assert.equal(IpAddress.parse("203.0.113.9").range(), "documentation");
        assert.equal(IpAddress.parse("10.1.2.3").range(), "private");
        assert.equal(IpAddress.parse("fd00::1").range(), "uniqueLocal");
        assert.equal(IpAddress.parse("2a0f:85c1:260::1").range(), "unicast");
    });
});

describe("IpPrefix", () => {
    it("parses strictly, with the validator's messages", () => {
        const p = IpPrefix.parse("2001:DB8:100:0::/48");
        assert.equal(p.toString(), "2001:db8:100::/48");
        assert.equal(p.family, 6);
        assert.equal(p.length, 48);
        assert.equal(IpPrefix.parse("10.77.0.0/24").family, 4);
        assert.throws(() => IpPrefix.parse("2001:db8::1/48"), /has host bits set \(the prefix is 2001:db8::\/48\)/);
        assert.throws(() => IpPrefix.parse("2001:db8::"), /not in address\/length form/);
        assert.throws(() => IpPrefix.parse("2001:db8::/129"), /not a valid IPv4 or IPv6 prefix/);
        assert.throws(() => IpPrefix.parse("10.1/16"), /not a valid IPv4 prefix/);
        assert.equal(IpPrefix.parse("2001:db8::1/48", false).toString(), "2001:db8::/48", "non-strict clears the host bits");
    });

    it("contains addresses and longer prefixes of its own family only", () => {
        const p = IpPrefix.parse("2001:db8:100::/48");
        assert.ok(p.contains(IpAddress.parse("2001:db8:100:ffff::1")));
        assert.ok(!p.contains(IpAddress.parse("2001:db8:101::1")));
        assert.ok(p.contains(IpPrefix.parse("2001:db8:100:ff00::/56")));
        assert.ok(p.contains(p));
        assert.ok(!p.contains(IpPrefix.parse("2001:db8::/32")), "a shorter prefix is not inside");
        assert.ok(p.overlaps(IpPrefix.parse("2001:db8::/32")));
        assert.ok(!IpPrefix.parse("0.0.0.0/0").contains(IpAddress.parse("::1")), "never across families");
        assert.ok(IpPrefix.parse("::/0").contains(IpAddress.parse("::ffff:10.0.0.1")));
        assert.ok(!IpPrefix.parse("10.0.0.0/8").overlaps(IpPrefix.parse("::a00:0/104")));
    });

    it("counts and numbers its addresses", () => {
        const v4 = IpPrefix.parse("10.77.0.0/24");
        assert.equal(v4.size(), 256n);
        assert.equal(v4.usableHosts(), 254n);
        assert.equal(v4.nth(1).toString(), "10.77.0.1");
        assert.throws(() => v4.nth(256), /outside 10\.77\.0\.0\/24/);
        assert.equal(IpPrefix.parse("fd00:a:1::/64").nth(2n ** 64n - 1n).toString(), "fd00:a:1:0:ffff:ffff:ffff:ffff");
        assert.deepEqual(meshAddressesFor(IpPrefix.parse("fd00:a:1::/64"), 3).map(String), ["fd00:a:1::1", "fd00:a:1::2", "fd00:a:1::3"]);
        assert.ok(IpPrefix.parse("10.0.0.0/8").isPrivate() && IpPrefix.parse("fd00::/8").isPrivate());
        assert.ok(!IpPrefix.parse("2001:db8::/32").isPrivate());
    });

    it("reads an address or a prefix from text", () => {
        assert.ok(parseAddressOrPrefix("2400:cb00::/32") instanceof IpPrefix);
        assert.ok(parseAddressOrPrefix("2001:db8::10") instanceof IpAddress);
        assert.throws(() => parseAddressOrPrefix("2400:cb00::1/32"), /host bits/);
    });

    it("is a class a plain copy cannot pass for", () => {
        // What pulumi.output() makes of a class instance: its fields, without the class.
        const copy = { ...IpPrefix.parse("10.0.0.0/8") };
        assert.ok(!(copy instanceof IpPrefix));
        assert.notEqual(`${copy as object}`, "10.0.0.0/8");
    });
});

/** Every IpAddress and IpPrefix in a spec, by path: the round trip must rebuild each one typed. */
function typedValues(value: unknown, path = "spec", out: string[] = []): string[] {
    if (value instanceof IpAddress || value instanceof IpPrefix) out.push(`${path}=${value.constructor.name}`);
    else if (Array.isArray(value)) value.forEach((v, i) => typedValues(v, `${path}[${i}]`, out));
    else if (value !== null && typeof value === "object") for (const [k, v] of Object.entries(value)) typedValues(v, `${path}.${k}`, out);
    return out;
}

/** A spec with every optional address field set: existing hosts with address4, a deployer address, ROAs, both firewall lists. */
function fullSpec(): AnycastSpec {
    const raw = { ...rawConfigOf("Pulumi.lab.yaml"), sshPrivateKey: TEST_SSH_PRIVATE_KEY } as unknown as Record<string, unknown> & {
        pops: Array<Record<string, unknown>>; firewall: Record<string, unknown>;
    };
    raw.pops = raw.pops.map((p, i) => i === 0
        ? { name: p.name, host: { address: "2001:db8:ff01::10", address4: "192.0.2.10" }, bgp: p.bgp }
        : p);
    raw.firewall = { ...raw.firewall, adminCidrs: ["2001:db8:ffff::/48", "192.0.2.0/24"] };
    raw.deploy = { deployerAddress: "2001:db8:ffff::7" };
    return parseAnycastConfig(raw);
}

describe("the spec's JSON form", () => {
    for (const [name, spec] of [["lab", labSpec], ["prod", prodSpec], ["every address field set", fullSpec]] as const) {
        it(`${name}: specFromJson(JSON.parse(JSON.stringify(spec))) is the spec, typed`, () => {
            const s = spec();
            const json: unknown = JSON.parse(JSON.stringify(s));
            const back = specFromJson<AnycastSpec>(json as never);
            assert.deepStrictEqual(back, s);
            assert.deepEqual(typedValues(back), typedValues(s));
            assert.ok(typedValues(s).length > 5, "the spec holds typed values");
        });
    }

    it("every address field is set in the full spec, and the JSON holds them as canonical text", () => {
        const s = fullSpec();
        const paths = typedValues(s).join(" ");
        for (const field of ["spec.prefixes[0]", "spec.address", "spec.pops[0].host.address=", "spec.pops[0].host.address4",
            "spec.pops[0].bgp.neighbor=", "spec.pops[0].bgp.neighbor4", "spec.pops[0].meshAddress", "spec.origin.meshAddress",
            "spec.mesh.cidr", "spec.firewall.adminCidrs[1]", "spec.firewall.httpSources[0]", "spec.deploy.deployerAddress",
            "spec.roas[0].prefix", "spec.rpki[0].prefix"]) {
            assert.ok(paths.includes(field), `${field} in ${paths}`);
        }
        const json = specToJson(s);
        assert.equal(json.address, "2001:db8:100::1");
        assert.equal(json.pops[0].host.kind === "existing" && json.pops[0].host.address4, "192.0.2.10");
        assert.equal(json.deploy.deployerAddress, "2001:db8:ffff::7");
        assert.equal(JSON.stringify(json), JSON.stringify(s), "the JSON form is what JSON.stringify writes");
    });

    it("the network's spec output is plain data that comes back typed (Pulumi copies objects without their class)", async () => {
        const s = withoutSecrets(fullSpec());
        const value = await new Promise((resolve) => pulumi.output(specToJson(s)).apply(resolve));
        assert.deepStrictEqual(value, JSON.parse(JSON.stringify(s)));
        assert.deepStrictEqual(specFromJson(value as never), s);
    });
});
