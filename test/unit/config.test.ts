/**
 * Config validation: a table of bad configs, each of which must be rejected with an error that
 * names the offending key, and the example stacks, which must pass.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { CONFIG_SCHEMA, ConfigError, fieldsWithoutPhrase, parseAnycastConfig, parseCommunity } from "../../components/core/config";
import { VULTR_LISTS_UPDATED, VULTR_PLANS, VULTR_REGIONS, vultrPrepends } from "../../components/core/vultr";
import { rawConfigOf } from "../helpers/fixtures";

const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n-----END OPENSSH PRIVATE KEY-----\n";

/** Vultr's documented set-up for a customer without an ASN: a private ASN it assigned, a public prefix, the ROA naming AS20473. */
function privateAsnStack(c: Record<string, any>): void {
    c.asn = 65001;
    c.prefix = "2a0f:85c1:260::/48";
    c.roas = [{ prefix: "2a0f:85c1:260::/48", maxLength: 48, asn: 20473 }];
    c.firewall.httpSources = ["2a0f:85c1:ff00::/40"];
}

/** A PoP on a server of its own, with its provider's upstream. */
function existingPop(): Record<string, any> {
    return { name: "box", host: { address: "2001:db8:cafe::10" }, bgp: { neighbor: "2001:db8:cafe:ffff::1", remoteAsn: 65530 } };
}

/** A valid config (the lab's, with a key), to break one thing at a time. */
function base(): Record<string, any> {
    return { ...rawConfigOf("Pulumi.lab.yaml"), sshPrivateKey: SSH_KEY };
}

function errorsOf(raw: Record<string, unknown>): { key: string; message: string }[] {
    try {
        parseAnycastConfig(raw);
    } catch (e) {
        assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
        return e.issues;
    }
    return [];
}

interface BadCase {
    name: string;
    mutate: (c: Record<string, any>) => void;
    key: string;
    message: RegExp;
}

const BAD: BadCase[] = [
    { name: "prefix longer than /48", mutate: (c) => { c.prefix = "2001:db8:100::/56"; }, key: "anycast:prefix", message: /longer than \/48/ },
    { name: "IPv4 prefix longer than /24", mutate: (c) => { c.prefix = ["2001:db8:100::/48", "192.0.2.0/25"]; }, key: "anycast:prefix[1]", message: /longer than \/24/ },
    { name: "prefix with host bits", mutate: (c) => { c.prefix = "2001:db8:100::1/48"; }, key: "anycast:prefix", message: /host bits/ },
    { name: "prefix not an address", mutate: (c) => { c.prefix = "banana/48"; }, key: "anycast:prefix", message: /not a valid/ },
    { name: "IPv4 prefix first", mutate: (c) => { c.prefix = ["192.0.2.0/24"]; }, key: "anycast:prefix[0]", message: /must be IPv6/ },
    { name: "overlapping prefixes", mutate: (c) => { c.prefix = ["2001:db8:100::/48", "2001:db8:100::/47"]; }, key: "anycast:prefix[1]", message: /host bits|overlaps/ },
    { name: "address outside prefix", mutate: (c) => { c.address = "2001:db8:200::1"; }, key: "anycast:address", message: /outside the prefix/ },
    { name: "address is the network address", mutate: (c) => { c.address = "2001:db8:100::"; }, key: "anycast:address", message: /network/ },
    { name: "address not IPv6", mutate: (c) => { c.address = "192.0.2.1"; }, key: "anycast:address", message: /not an IPv6/ },
    { name: "AS_TRANS", mutate: (c) => { c.asn = 23456; }, key: "anycast:asn", message: /AS_TRANS/ },
    { name: "ASN 0", mutate: (c) => { c.asn = 0; }, key: "anycast:asn", message: /reserved/ },
    { name: "ASN out of range", mutate: (c) => { c.asn = 4294967296; }, key: "anycast:asn", message: /^4294967296 is out of range: use a whole number from 1 to 4294967294$/ },
    { name: "ASN not a number", mutate: (c) => { c.asn = "AS64500"; }, key: "anycast:asn", message: /a number/ },
    { name: "private ASN through an existing host whose upstream is not known to remove it", mutate: (c) => { privateAsnStack(c); c.pops.push(existingPop()); },
        key: "anycast:asn", message: /^private ASN 65001 would reach the Internet from PoP box \(pops\[3\]\), on an existing host .* \(RFC 6996\)\. .* as Vultr does \(AS20473\): if this host's provider does, set bgp\.publicAsn to that AS; otherwise use a registered ASN$/ },
    { name: "a prepend of a private ASN", mutate: (c) => { privateAsnStack(c); c.pops[1].prepend = 2; },
        key: "anycast:pops[1].prepend", message: /^2 extra copies of private AS65001 are removed with it by Vultr \(AS20473\) before any other network sees the route; prepend with Vultr's communities instead: communities: \["20473:6002"\] prepends 2x towards every network, "64602:ASN" 2x towards one/ },
    { name: "a prepend of a private ASN through another provider", mutate: (c) => { privateAsnStack(c); c.pops.push({ ...existingPop(), prepend: 1, bgp: { ...existingPop().bgp, publicAsn: 53667 } }); },
        key: "anycast:pops[3].prepend", message: /removed with it by the upstream \(AS53667\) .*prepend communities of the upstream/ },
    { name: "a private bgp.publicAsn", mutate: (c) => { c.pops.push({ ...existingPop(), bgp: { ...existingPop().bgp, publicAsn: 64999 } }); },
        key: "anycast:pops[3].bgp.publicAsn", message: /^AS64999 is private \(RFC 6996\), but this is the AS the Internet sees: use your provider's public AS$/ },
    { name: "bgp.publicAsn on a Vultr instance that is not Vultr's", mutate: (c) => { c.pops[0].bgp.publicAsn = 174; },
        key: "anycast:pops[0].bgp.publicAsn", message: /^AS174 is not Vultr's: a Vultr instance's upstream exports from AS20473; leave bgp\.publicAsn out$/ },
    { name: "a ROA for the private ASN itself", mutate: (c) => { privateAsnStack(c); c.roas = [{ prefix: "2a0f:85c1:260::/48", asn: 65001 }]; },
        key: "anycast:roas[0].asn", message: /^AS65001 is not the origin AS20473: the announcement of 2a0f:85c1:260::\/48 by AS20473 \(anycast:asn AS65001 is private: Vultr \(AS20473\) removes it on export for PoPs lax, ams, sgp\) is RPKI-invalid, .*; publish a ROA for AS20473$/ },
    { name: "missing password", mutate: (c) => { delete c.bgpPassword; }, key: "anycast:bgpPassword", message: /required/ },
    { name: "password with a quote", mutate: (c) => { c.bgpPassword = 'a"b'; }, key: "anycast:bgpPassword", message: /quotes/ },
    { name: "password too long for TCP-MD5", mutate: (c) => { c.bgpPassword = "x".repeat(81); }, key: "anycast:bgpPassword", message: /80 bytes/ },
    { name: "missing SSH key", mutate: (c) => { delete c.sshPrivateKey; }, key: "anycast:sshPrivateKey", message: /required/ },
    { name: "SSH key not a key", mutate: (c) => { c.sshPrivateKey = "hunter2"; }, key: "anycast:sshPrivateKey", message: /PRIVATE KEY/ },
    { name: "no PoPs", mutate: (c) => { c.pops = []; }, key: "anycast:pops", message: /at least one/ },
    { name: "duplicate PoP names", mutate: (c) => { c.pops[1].name = "lax"; }, key: "anycast:pops[1].name", message: /duplicate/ },
    { name: "PoP named like the origin", mutate: (c) => { c.pops[0].name = "origin"; }, key: "anycast:pops[0].name", message: /origin/ },
    { name: "PoP name with capitals", mutate: (c) => { c.pops[0].name = "LAX"; }, key: "anycast:pops[0].name", message: /a-z/ },
    { name: "PoP with neither region nor host", mutate: (c) => { delete c.pops[0].region; }, key: "anycast:pops[0]", message: /either region/ },
    { name: "PoP with region and host", mutate: (c) => { c.pops[0].host = { address: "2001:db8:1::1" }; }, key: "anycast:pops[0]", message: /not both/ },
    { name: "PoP host not an address", mutate: (c) => { delete c.pops[0].region; c.pops[0].host = { address: "lax.example" }; }, key: "anycast:pops[0].host.address", message: /not an IP/ },
    { name: "PoP host inside the anycast prefix", mutate: (c) => { delete c.pops[0].region; c.pops[0].host = { address: "2001:db8:100::5" }; }, key: "anycast:pops[0].host.address", message: /inside the anycast prefix/ },
    { name: "unknown PoP key", mutate: (c) => { c.pops[0].regoin = "lax"; }, key: "anycast:pops[0].regoin", message: /^is not a known key: did you mean region\? \(known keys here: name, region, plan, / },
    { name: "drained not a boolean", mutate: (c) => { c.pops[1].drained = "yes"; }, key: "anycast:pops[1].drained", message: /^"yes" is not true or false: use true or false$/ },
    { name: "every PoP drained", mutate: (c) => { for (const p of c.pops) p.drained = true; }, key: "anycast:allowAllDrained", message: /^every PoP has drained: true \(lax, ams, sgp\), which withdraws the prefix everywhere and takes the service down: undrain one, or set anycast:allowAllDrained to true/ },
    { name: "allowAllDrained not a boolean", mutate: (c) => { c.allowAllDrained = "true"; }, key: "anycast:allowAllDrained", message: /^"true" is not true or false: use true or false$/ },
    { name: "unknown BGP key", mutate: (c) => { c.pops[0].bgp = { remoteAs: 64515 }; }, key: "anycast:pops[0].bgp.remoteAs", message: /did you mean remoteAsn\?/ },
    { name: "a city instead of a region id", mutate: (c) => { c.pops[0].region = "Los Angeles"; }, key: "anycast:pops[0].region", message: /^"Los Angeles" is not a Vultr region id: did you mean lax \(Los Angeles\)\?/ },
    { name: "a region that does not exist", mutate: (c) => { c.pops[1].region = "xyz"; }, key: "anycast:pops[1].region", message: /^"xyz" is not a Vultr region id: use one of ams, atl, .* newer than this package's list of \d{4}-\d{2}-\d{2}\? set pops\[1\]\.allowUnknownRegion: true\)$/ },
    { name: "a region id with a typo", mutate: (c) => { c.pops[0].region = "laxx"; }, key: "anycast:pops[0].region", message: /did you mean lax \(Los Angeles\)\?/ },
    { name: "an unknown region, allowed, still shaped like one", mutate: (c) => { c.pops[0].region = "Los Angeles"; c.pops[0].allowUnknownRegion = true; }, key: "anycast:pops[0].region", message: /does not look like a Vultr region id/ },
    { name: "a plan that does not exist", mutate: (c) => { c.pops[2].plan = "vc2-1c-1gbb"; }, key: "anycast:pops[2].plan", message: /^"vc2-1c-1gbb" is not a Vultr plan id: did you mean vc2-1c-1gb\?$/ },
    { name: "a plan with no near match", mutate: (c) => { c.pops[2].plan = "huge"; }, key: "anycast:pops[2].plan", message: /use a plan such as vc2-1c-1gb .* set pops\[2\]\.allowUnknownPlan: true\)$/ },
    { name: "an origin region that does not exist", mutate: (c) => { delete c.origins[0].host; c.origins[0].region = "fran"; }, key: "anycast:origins[0].region", message: /^"fran" is not a Vultr region id: did you mean fra \(Frankfurt\)\?$/ },
    { name: "an origin region unlike any", mutate: (c) => { delete c.origins[0].host; c.origins[0].region = "qqq"; }, key: "anycast:origins[0].region", message: /set origins\[0\]\.allowUnknownRegion: true\)$/ },
    { name: "community syntax", mutate: (c) => { c.pops[0].communities = ["64600-6939"]; }, key: "anycast:pops[0].communities[0]", message: /not a community/ },
    { name: "community half over 16 bits", mutate: (c) => { c.pops[0].communities = ["206924:1"]; }, key: "anycast:pops[0].communities[0]", message: /16-bit/ },
    { name: "20473:6000 on an anycast prefix", mutate: (c) => { c.pops[0].communities = ["20473:6000"]; }, key: "anycast:pops[0].communities[0]", message: /inside AS20473/ },
    { name: "blackhole community", mutate: (c) => { c.pops[0].communities = ["20473:666"]; }, key: "anycast:pops[0].communities[0]", message: /blackhole/ },
    { name: "prepend above 3", mutate: (c) => { c.pops[0].prepend = 7; }, key: "anycast:pops[0].prepend", message: /^7 is out of range: use 0 to 3 extra prepends$/ },
    { name: "prepend not a number", mutate: (c) => { c.pops[0].prepend = "two"; }, key: "anycast:pops[0].prepend", message: /^"two" is not a number: use 0 to 3 extra prepends$/ },
    { name: "hold time 2", mutate: (c) => { c.pops[0].bgp = { holdTime: 2 }; }, key: "anycast:pops[0].bgp.holdTime", message: /^2 is out of range: use 0 \(no keepalives\) or 3 to 65535 seconds/ },
    { name: "keepalive not below hold", mutate: (c) => { c.pops[0].bgp = { holdTime: 9, keepaliveTime: 9 }; }, key: "anycast:pops[0].bgp.keepaliveTime", message: /shorter/ },
    { name: "neighbour not IPv6", mutate: (c) => { c.pops[0].bgp = { neighbor: "169.254.169.254" }; }, key: "anycast:pops[0].bgp.neighbor", message: /IPv6/ },
    { name: "remote AS equals ours", mutate: (c) => { c.pops[0].bgp = { remoteAsn: 64500 }; }, key: "anycast:pops[0].bgp.remoteAsn", message: /eBGP/ },
    { name: "BFD interval too small", mutate: (c) => { c.pops[0].bgp = { bfd: { interval: 1 } }; }, key: "anycast:pops[0].bgp.bfd.interval", message: /10/ },
    { name: "mesh overlapping the prefix", mutate: (c) => { c.mesh.cidr = "2001:db8:100:ff::/64"; }, key: "anycast:mesh.cidr", message: /overlaps|not private/ },
    { name: "mesh not private", mutate: (c) => { c.mesh.cidr = "198.51.100.0/24"; }, key: "anycast:mesh.cidr", message: /not private/ },
    { name: "mesh too small", mutate: (c) => { c.mesh.cidr = "10.9.0.0/30"; }, key: "anycast:mesh.cidr", message: /room for 2 hosts/ },
    { name: "mesh CIDR missing", mutate: (c) => { delete c.mesh.cidr; }, key: "anycast:mesh.cidr", message: /required/ },
    { name: "mesh address outside the mesh", mutate: (c) => { c.pops[0].meshAddress = "fd00:b::2"; }, key: "anycast:pops[0].meshAddress", message: /outside mesh.cidr/ },
    { name: "mesh topology unknown", mutate: (c) => { c.mesh.topology = "star"; }, key: "anycast:mesh.topology", message: /full|hub/ },
    { name: "origin port out of range", mutate: (c) => { c.origins[0].port = 70000; }, key: "anycast:origins[0].port", message: /65535/ },
    { name: "origin missing", mutate: (c) => { delete c.origins; }, key: "anycast:origin", message: /required.*anycast:origins/ },
    { name: "origin and origins both", mutate: (c) => { c.origin = c.origins[0]; }, key: "anycast:origins", message: /not both/ },
    { name: "origins empty", mutate: (c) => { c.origins = []; }, key: "anycast:origins", message: /at least one/ },
    { name: "duplicate origin names", mutate: (c) => { c.origins[1].name = "origin"; }, key: "anycast:origins[1].name", message: /^"origin" is a duplicate origin name \(also origins\[0\]\): give each origin its own name$/ },
    { name: "PoP named like the second origin", mutate: (c) => { c.pops[0].name = "origin2"; }, key: "anycast:pops[0].name", message: /origin's name/ },
    { name: "second origin inside the anycast prefix", mutate: (c) => { c.origins[1].host.address = "2001:db8:100::7"; }, key: "anycast:origins[1].host.address", message: /inside the anycast prefix/ },
    { name: "PoP preferring an unknown origin", mutate: (c) => { c.pops[0].origins = ["origin3"]; }, key: "anycast:pops[0].origins[0]", message: /^"origin3" is not an origin: use one of origin, origin2$/ },
    { name: "PoP preferring an origin twice", mutate: (c) => { c.pops[0].origins = ["origin", "origin"]; }, key: "anycast:pops[0].origins[1]", message: /twice/ },
    { name: "relay in a hub mesh", mutate: (c) => { c.mesh.topology = "hub"; c.failover = { relay: true }; }, key: "anycast:failover.relay", message: /needs mesh.topology full/ },
    { name: "relay port taken", mutate: (c) => { c.failover = { relayPort: 443 }; }, key: "anycast:failover.relayPort", message: /taken/ },
    { name: "negative Retry-After", mutate: (c) => { c.failover = { retryAfter: -1 }; }, key: "anycast:failover.retryAfter", message: /0/ },
    { name: "stale cache with an unknown key", mutate: (c) => { c.failover = { staleCache: { size: 10 } }; }, key: "anycast:failover.staleCache.size", message: /known keys here: maxSize, validSeconds, keepSeconds/ },
    { name: "a misspelt failover key", mutate: (c) => { c.failover = { retryafter: 5 }; }, key: "anycast:failover.retryafter", message: /did you mean retryAfter/ },
    { name: "a misspelt top-level origins key", mutate: (c) => { c.orgins = c.origins; delete c.origins; }, key: "anycast:orgins", message: /did you mean origins/ },
    { name: "zone and zoneId both", mutate: (c) => { c.frontDoor.zoneId = "0123456789abcdef0123456789abcdef"; }, key: "anycast:frontDoor", message: /exactly one/ },
    { name: "zone not a domain", mutate: (c) => { c.frontDoor.zone = "localhost"; }, key: "anycast:frontDoor.zone", message: /domain/ },
    { name: "hostname outside the zone", mutate: (c) => { c.frontDoor.hostname = "www.example.org"; }, key: "anycast:frontDoor.hostname", message: /not inside the zone/ },
    { name: "hostname with a space", mutate: (c) => { c.frontDoor.hostname = "my site"; }, key: "anycast:frontDoor.hostname", message: /valid DNS name/ },
    { name: "hostname equals anycastName", mutate: (c) => { c.frontDoor.anycastName = "www"; }, key: "anycast:frontDoor.anycastName", message: /must differ/ },
    { name: "zoneId malformed", mutate: (c) => { delete c.frontDoor.zone; c.frontDoor.zoneId = "xyz"; }, key: "anycast:frontDoor.zoneId", message: /32-character/ },
    { name: "admin CIDR malformed", mutate: (c) => { c.firewall.adminCidrs = ["2001:db8::/129"]; }, key: "anycast:firewall.adminCidrs[0]", message: /not a valid/ },
    { name: "health rise zero", mutate: (c) => { c.health.rise = 0; }, key: "anycast:health.rise", message: /1/ },
    { name: "ROA max length shorter than the announced /48", mutate: (c) => { c.roas = [{ prefix: "2001:db8::/32", maxLength: 44, asn: 64500 }]; }, key: "anycast:roas[0].maxLength", message: /\/44 is shorter than the announced \/48 .*RPKI-invalid/ },
    { name: "ROA without max length for a covering prefix", mutate: (c) => { c.roas = [{ prefix: "2001:db8::/32", asn: 64500 }]; }, key: "anycast:roas[0].maxLength", message: /\/32 is shorter than the announced \/48/ },
    { name: "ROA for another ASN", mutate: (c) => { c.roas = [{ prefix: "2001:db8:100::/48", asn: 64511 }]; }, key: "anycast:roas[0].asn", message: /AS64511 is not the origin anycast:asn AS64500/ },
    { name: "AS0 ROA over the prefix", mutate: (c) => { c.roas = [{ prefix: "2001:db8::/32", maxLength: 48, asn: 0 }]; }, key: "anycast:roas[0].asn", message: /AS0 ROA/ },
    { name: "ROA max length below its own prefix", mutate: (c) => { c.roas = [{ prefix: "2001:db8:100::/48", maxLength: 40, asn: 64500 }]; }, key: "anycast:roas[0].maxLength", message: /from the ROA prefix's length \/48 to \/128/ },
    { name: "ROA prefix malformed", mutate: (c) => { c.roas = [{ prefix: "2001:db8:100::1/48", asn: 64500 }]; }, key: "anycast:roas[0].prefix", message: /host bits/ },
    { name: "ROA with an unknown key", mutate: (c) => { c.roas = [{ prefix: "2001:db8:100::/48", maxlength: 48, asn: 64500 }]; }, key: "anycast:roas[0].maxlength", message: /did you mean maxLength\?/ },
    { name: "unknown top-level key", mutate: (c) => { c.prefixes = "2001:db8:100::/48"; }, key: "anycast:prefixes", message: /^is not a known key: did you mean prefix\?/ },
    { name: "a top-level key in the wrong case", mutate: (c) => { c.frontdoor = c.frontDoor; }, key: "anycast:frontdoor", message: /did you mean frontDoor\?/ },
    { name: "a key with no near match", mutate: (c) => { c.banana = 1; }, key: "anycast:banana", message: /^is not a known key \(known keys here: asn, / },
    { name: "a secret of the wrong type, its value not shown", mutate: (c) => { c.bgpPassword = 12345678; }, key: "anycast:bgpPassword", message: /^the value is not a string: use / },
    { name: "BFD not a boolean or map", mutate: (c) => { c.pops[0].bgp = { bfd: "yes" }; }, key: "anycast:pops[0].bgp.bfd", message: /^"yes" is not valid: use true, false or \{interval: milliseconds, multiplier: count\}$/ },
    { name: "a community that is a number", mutate: (c) => { c.pops[0].communities = [64600]; }, key: "anycast:pops[0].communities[0]", message: /^64600 is not a string: use a community such as "64600:6939"/ },
];

describe("config validation rejects bad input, naming the key", () => {
    it("accepts the lab stack as is, and the prod stack once its secrets are set", () => {
        assert.equal(errorsOf(base()).length, 0);
        const prod = parseAnycastConfig({ ...rawConfigOf("Pulumi.prod.yaml"), bgpPassword: "pw", sshPrivateKey: SSH_KEY });
        assert.deepEqual(prod.pops.map((p) => p.name), ["lax", "ams", "sgp"]);
        assert.equal(String(prod.address), "2001:db8:100::1");
        assert.equal(prod.frontDoor.hostname, "www.example.com");
        assert.equal(prod.frontDoor.anycastName, "anycast.example.com");
    });

    for (const c of BAD) {
        it(c.name, () => {
            const raw = base();
            c.mutate(raw);
            const errors = errorsOf(raw);
            const hit = errors.find((e) => e.key === c.key);
            assert.ok(hit, `no error for ${c.key}; got: ${JSON.stringify(errors)}`);
            assert.match(hit.message, c.message);
        });
    }

    it("words every message itself: the value and what would be valid, never the validator's text", () => {
        for (const c of BAD) {
            const raw = base();
            c.mutate(raw);
            for (const e of errorsOf(raw)) {
                assert.doesNotMatch(e.message, /Too (big|small)|Invalid (input|option)|expected .* received|Unrecognized key|<=|>=/, `${c.name}: ${e.key}: ${e.message}`);
                assert.ok(e.key.startsWith("anycast:"), `${c.name}: ${e.key}`);
            }
        }
    });

    it("has an 'accepts' phrase for every field of every shape", () => {
        const missing = Object.entries(CONFIG_SCHEMA).flatMap(([key, schema]) => fieldsWithoutPhrase(schema, `anycast:${key}`));
        assert.deepEqual(missing, []);
    });

    it("reports a bgpPassword with a quote once, however many PoPs use it", () => {
        const raw = base();
        raw.bgpPassword = 'pa"ss';
        const errors = errorsOf(raw);
        assert.equal(errors.filter((e) => e.key === "anycast:bgpPassword").length, 1, JSON.stringify(errors));
        assert.ok(!errors.some((e) => e.message.includes('pa"ss')), "the password never appears in a message");
    });

    it("lists the known keys once each", () => {
        const message = errorsOf({ ...base(), nope: 1 }).find((e) => e.key === "anycast:nope")?.message ?? "";
        const known = /known keys here: (.*)\)$/.exec(message)?.[1].split(", ") ?? [];
        assert.deepEqual(known, [...new Set(known)]);
        assert.ok(known.includes("bgpPassword") && known.includes("sshPrivateKey"), message);
    });

    it("checks the PoPs whose shape is fine even when another PoP's is not", () => {
        const raw = base();
        raw.pops[0].prepend = 7;
        raw.pops[1].region = "xyz";
        const keys = errorsOf(raw).map((e) => e.key);
        assert.deepEqual(keys, ["anycast:pops[0].prepend", "anycast:pops[1].region"]);
    });

    it("lets a region or plan newer than the shipped lists through when the user says so", () => {
        const raw = base();
        Object.assign(raw.pops[1], { region: "xyz", allowUnknownRegion: true, plan: "vc9-new", allowUnknownPlan: true });
        const spec = parseAnycastConfig(raw);
        assert.equal(spec.pops[1].host.kind === "vultr" && spec.pops[1].host.region, "xyz");
        assert.equal(spec.pops[1].host.kind === "vultr" && spec.pops[1].host.plan, "vc9-new");
    });

    it("drains a PoP by config, and every PoP only when allowAllDrained says so", () => {
        const one = base();
        one.pops[1].drained = true;
        assert.deepEqual(parseAnycastConfig(one).pops.map((p) => p.drained), [false, true, false]);
        const all = base();
        for (const p of all.pops) p.drained = true;
        all.allowAllDrained = true;
        assert.deepEqual(parseAnycastConfig(all).pops.map((p) => p.drained), [true, true, true]);
    });

    it("accepts a Vultr-assigned private ASN: the Internet sees AS20473 as the origin, and the RPKI check expects it", () => {
        const vultr = base();
        privateAsnStack(vultr);
        const spec = parseAnycastConfig(vultr);
        assert.equal(spec.asn, 65001);
        assert.deepEqual(spec.pops.map((p) => p.bgp.publicAsn), [20473, 20473, 20473]);
        assert.deepEqual(spec.rpki.map((r) => ({ ...r, prefix: String(r.prefix) })), [{ prefix: "2a0f:85c1:260::/48", originAsn: 20473,
            pops: ["lax", "ams", "sgp"], state: "valid", detail: "ROA 2a0f:85c1:260::/48 max /48 AS20473" }]);

        // An existing host whose provider says it does the same: one origin per upstream, each checked.
        const mixed = base();
        privateAsnStack(mixed);
        mixed.pops.push({ ...existingPop(), bgp: { ...existingPop().bgp, publicAsn: 53667 } });
        mixed.roas.push({ prefix: "2a0f:85c1:260::/48", maxLength: 48, asn: 53667 });
        const both = parseAnycastConfig(mixed);
        assert.deepEqual(both.rpki.map((r) => [r.originAsn, r.pops, r.state]), [[20473, ["lax", "ams", "sgp"], "valid"], [53667, ["box"], "valid"]]);
        // Without that upstream's ROA, the ROA for 20473 makes its announcement invalid (RFC 6811), named so.
        mixed.roas.pop();
        const issue = errorsOf(mixed).find((e) => e.key === "anycast:roas[0].asn");
        assert.match(issue?.message ?? "", /^AS20473 is not the origin AS53667: .* \(anycast:asn AS65001 is private: the upstream \(AS53667\) removes it on export for PoP box\) .*; publish a ROA for AS53667$/);
        // No ROA at all for a prefix: NotFound from each origin, a warning naming the AS to publish.
        mixed.roas = [{ prefix: "2a0f:85c1:1::/48", asn: 20473 }];
        const uncovered = parseAnycastConfig(mixed);
        assert.deepEqual(uncovered.rpki.map((r) => r.state), ["not-found", "not-found"]);
        assert.ok(uncovered.warnings.some((w) => /^no ROA in anycast:roas covers 2a0f:85c1:260::\/48 from AS53667 \(anycast:asn AS65001 is private: .*publish a ROA for AS53667 with max length ≥ 48$/.test(w.message)),
            JSON.stringify(uncovered.warnings));

        // A public ASN: the origin is our own ASN, on an existing host too, with no publicAsn needed.
        const own = base();
        own.pops.push(existingPop());
        const ours = parseAnycastConfig(own);
        assert.deepEqual(ours.rpki.map((r) => [r.originAsn, r.pops, r.state]), [[64500, undefined, "valid"]]);
        assert.equal(ours.pops[3].bgp.publicAsn, undefined);
    });

    it("ships Vultr's region and plan lists with their source and date", () => {
        assert.ok(VULTR_REGIONS.length >= 30 && VULTR_REGIONS.every((r) => /^[a-z]{3}$/.test(r.id) && r.city.length > 0));
        assert.ok(VULTR_PLANS.includes("vc2-1c-1gb") && VULTR_PLANS.length > 50);
        assert.match(VULTR_LISTS_UPDATED, /^\d{4}-\d{2}-\d{2}$/);
        for (const pop of ["Pulumi.lab.yaml", "Pulumi.prod.yaml"].flatMap((f) => rawConfigOf(f).pops as Array<{ region?: string }>)) {
            if (pop.region) assert.ok(VULTR_REGIONS.some((r) => r.id === pop.region), `${pop.region} is in the list`);
        }
    });

    it("reports every error at once, across keys", () => {
        const raw = base();
        raw.prefix = "2001:db8:100::/64";
        raw.pops[1].name = "lax";
        raw.mesh.cidr = "not-a-cidr";
        raw.frontDoor.hostname = "bad name";
        const keys = errorsOf(raw).map((e) => e.key);
        for (const k of ["anycast:prefix", "anycast:pops[1].name", "anycast:mesh.cidr", "anycast:frontDoor.hostname"]) {
            assert.ok(keys.includes(k), `${k} missing from ${keys.join(", ")}`);
        }
    });

    it("applies Vultr defaults and plans the mesh in list order", () => {
        const spec = parseAnycastConfig(base());
        const lax = spec.pops[0];
        assert.equal(String(lax.bgp.neighbor), "2001:19f0:ffff::1");
        assert.equal(lax.bgp.remoteAsn, 64515);
        assert.equal(lax.bgp.multihop, 2);
        assert.equal(String(spec.origin.meshAddress), "fd00:a:1::1");
        assert.deepEqual(spec.pops.map((p) => String(p.meshAddress)), ["fd00:a:1::2", "fd00:a:1::3", "fd00:a:1::4"]);
        assert.equal(String(spec.address), "2001:db8:100::1");
    });

    it("warns about documentation resources without failing", () => {
        const spec = parseAnycastConfig(base());
        assert.ok(spec.warnings.some((w) => w.key === "anycast:asn" && /documentation/.test(w.message)));
        assert.ok(spec.warnings.some((w) => w.key === "anycast:prefix" && /documentation/.test(w.message)));
    });

    it("checks the announcement against anycast:roas (RFC 6811) and reports each prefix's RPKI state", () => {
        const lab = parseAnycastConfig(base());
        assert.deepEqual(lab.rpki.map((r) => ({ ...r, prefix: String(r.prefix) })), [{ prefix: "2001:db8:100::/48", originAsn: 64500, state: "valid", detail: "ROA 2001:db8:100::/48 max /48 AS64500" }]);

        // A wrong ROA next to a right one: valid, as RFC 6811 says (one matching ROA suffices).
        const both = base();
        both.roas = [{ prefix: "2001:db8::/32", maxLength: 32, asn: 64500 }, { prefix: "2001:db8::/32", maxLength: 48, asn: 64500 }];
        assert.equal(parseAnycastConfig(both).rpki[0].state, "valid");

        // No covering ROA: NotFound is a warning, not an error.
        const uncovered = base();
        uncovered.roas = [{ prefix: "2001:db8:200::/48", asn: 64500 }];
        const notFound = parseAnycastConfig(uncovered);
        assert.equal(notFound.rpki[0].state, "not-found");
        assert.ok(notFound.warnings.some((w) => w.key === "anycast:prefix" && /RPKI NotFound/.test(w.message)), JSON.stringify(notFound.warnings));

        // Unset: unchecked, and a public prefix gets a warning saying what is not checked.
        const unset = base();
        delete unset.roas;
        unset.asn = 205398;
        unset.prefix = "2a0f:85c1:260::/48";
        unset.firewall.httpSources = ["2a0f:85c1:ff00::/40"];
        const unchecked = parseAnycastConfig(unset);
        assert.equal(unchecked.rpki[0].state, "unchecked");
        assert.ok(unchecked.warnings.some((w) => w.key === "anycast:roas" && /not checked/.test(w.message)), JSON.stringify(unchecked.warnings));
    });

    it("warns when the flap-damping limit could get the prefix suppressed upstream (RFC 7196)", () => {
        assert.equal(parseAnycastConfig(base()).health.maxWithdrawalsPerHour, 3);
        assert.ok(!parseAnycastConfig(base()).warnings.some((w) => w.key === "anycast:health.maxWithdrawalsPerHour"));
        const loose = base();
        loose.health.maxWithdrawalsPerHour = 4;
        const w = parseAnycastConfig(loose).warnings.find((x) => x.key === "anycast:health.maxWithdrawalsPerHour");
        assert.match(w?.message ?? "", /penalty of 7000, above the suppress threshold 6000 .*; 3 or fewer stays below it/);
    });

    it("keeps a single anycast:origin working, as stacks have had it", () => {
        const prod = parseAnycastConfig({ ...rawConfigOf("Pulumi.prod.yaml"), bgpPassword: "pw", sshPrivateKey: SSH_KEY });
        assert.deepEqual(prod.origins.map((o) => o.name), ["origin"]);
        assert.equal(prod.origin, prod.origins[0]);
        assert.equal(String(prod.origin.meshAddress), "10.77.0.1");
        assert.deepEqual(prod.pops.map((p) => p.originPreference), [[], [], []]);
    });

    it("plans further origins from the end of the mesh, so appending a PoP moves no origin", () => {
        const lab = parseAnycastConfig(base());
        assert.deepEqual(lab.origins.map((o) => [o.name, String(o.meshAddress)]), [["origin", "fd00:a:1::1"], ["origin2", "fd00:a:1:0:ffff:ffff:ffff:ffff"]]);
        assert.deepEqual(lab.pops.find((p) => p.name === "sgp")!.originPreference, ["origin2", "origin"]);
        const more = base();
        more.pops.push({ name: "fra", region: "fra" });
        more.origins.push({ name: "origin3", host: { address: "2001:db8:fffd::10" }, port: 8080 });
        const grown = parseAnycastConfig(more);
        assert.deepEqual(grown.origins.map((o) => String(o.meshAddress)), ["fd00:a:1::1", "fd00:a:1:0:ffff:ffff:ffff:ffff", "fd00:a:1:0:ffff:ffff:ffff:fffe"]);
        assert.deepEqual(grown.pops.map((p) => String(p.meshAddress)), ["fd00:a:1::2", "fd00:a:1::3", "fd00:a:1::4", "fd00:a:1::5"]);
        // IPv4: the last address before the broadcast one.
        const v4 = base();
        v4.mesh.cidr = "10.77.0.0/24";
        assert.deepEqual(parseAnycastConfig(v4).origins.map((o) => String(o.meshAddress)), ["10.77.0.1", "10.77.0.254"]);
        // A /29 has 6 hosts: two origins and three PoPs fit, a fourth PoP would not.
        const tight = base();
        tight.mesh.cidr = "10.77.0.0/29";
        tight.pops.push({ name: "fra", region: "fra" }, { name: "nyc", region: "ewr" });
        assert.ok(errorsOf(tight).some((e) => e.key === "anycast:mesh.cidr" && /2 origins and 5 PoP\(s\) need 7/.test(e.message)));
    });

    it("failover defaults: relay through the other PoPs in a full mesh, not in a hub; a 5 s Retry-After; no cache unless asked", () => {
        assert.deepEqual(parseAnycastConfig(base()).failover, { relay: true, relayPort: 8081, retryAfter: 5 });
        const hub = base();
        hub.mesh.topology = "hub";
        const hubSpec = parseAnycastConfig(hub);
        assert.equal(hubSpec.failover.relay, false);
        assert.ok(hubSpec.warnings.some((w) => w.key === "anycast:origins" && /through the hub origin: when it is down, so are they/.test(w.message)));
        const cached = base();
        cached.failover = { staleCache: true, retryAfter: 30 };
        assert.deepEqual(parseAnycastConfig(cached).failover, {
            relay: true, relayPort: 8081, retryAfter: 30, staleCache: { maxSizeMb: 256, validSeconds: 0, keepSeconds: 86400 },
        });
        const sized = base();
        sized.failover = { staleCache: { maxSize: 64, validSeconds: 10 } };
        assert.deepEqual(parseAnycastConfig(sized).failover.staleCache, { maxSizeMb: 64, validSeconds: 10, keepSeconds: 86400 });
    });

    it("counts Vultr's prepends towards a network: the most asked for, towards it or towards all", () => {
        const cs = (...texts: string[]) => texts.map(parseCommunity);
        assert.equal(vultrPrepends(cs("64600:174", "206924:1:2"), 174), 0);
        assert.equal(vultrPrepends(cs("64602:174"), 174), 2);
        assert.equal(vultrPrepends(cs("64602:174"), 6939), 0, "aimed at another network");
        assert.equal(vultrPrepends(cs("20473:6001", "64603:174"), 174), 3);
        assert.equal(vultrPrepends(cs("20473:6002", "64601:174"), 6939), 2, "towards every network");
    });

    it("parses standard and large communities", () => {
        assert.deepEqual(parseCommunity("64600:6939"), { kind: "standard", asn: 64600, value: 6939 });
        assert.deepEqual(parseCommunity("206924:1:2"), { kind: "large", global: 206924, data1: 1, data2: 2 });
        assert.throws(() => parseCommunity("1:2:3:4"), /not a community/);
    });
});
