/**
 * RFC 6811 route origin validation, the way a validating network would judge the announcement.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { parseCidr } from "../../components/core/addressing";
import { covers, Roa, validateOrigin } from "../../components/core/rpki";

const roa = (prefix: string, maxLength: number, asn: number): Roa => ({ prefix: parseCidr(prefix), maxLength, asn });
const announced = parseCidr("2a0f:85c1:260::/48");

describe("RPKI origin validation (RFC 6811)", () => {
    const cases: Array<[string, Roa[], number, string]> = [
        ["no ROAs at all", [], 205398, "not-found"],
        ["a ROA for an unrelated prefix", [roa("2a0f:85c1:300::/44", 48, 205398)], 205398, "not-found"],
        ["a more-specific ROA does not cover a shorter announcement", [roa("2a0f:85c1:260::/52", 52, 205398)], 205398, "not-found"],
        ["the exact prefix, same ASN", [roa("2a0f:85c1:260::/48", 48, 205398)], 205398, "valid"],
        ["the /44 with max length 48 (the seed's ROA)", [roa("2a0f:85c1:260::/44", 48, 205398)], 205398, "valid"],
        ["the /44 with max length 44: too short", [roa("2a0f:85c1:260::/44", 44, 205398)], 205398, "invalid"],
        ["another ASN", [roa("2a0f:85c1:260::/44", 48, 20473)], 205398, "invalid"],
        ["AS0 over the prefix", [roa("2a0f:85c1::/32", 48, 0)], 205398, "invalid"],
        ["one wrong and one right ROA", [roa("2a0f:85c1::/32", 32, 205398), roa("2a0f:85c1:260::/44", 48, 205398)], 205398, "valid"],
        ["AS0 next to a right ROA", [roa("2a0f:85c1::/32", 48, 0), roa("2a0f:85c1:260::/48", 48, 205398)], 205398, "valid"],
        ["an IPv4 ROA never covers an IPv6 prefix", [roa("192.0.2.0/24", 24, 205398)], 205398, "not-found"],
    ];
    for (const [name, roas, asn, state] of cases) {
        it(`${name}: ${state}`, () => {
            assert.equal(validateOrigin(announced, asn, roas).state, state);
        });
    }

    it("says why an invalid announcement is invalid, per covering ROA", () => {
        const v = validateOrigin(announced, 205398, [roa("2a0f:85c1:260::/44", 44, 205398), roa("2a0f:85c1::/32", 48, 64500), roa("2a0f:85c1::/32", 48, 0)]);
        assert.equal(v.state, "invalid");
        assert.deepEqual(v.mismatches, [{ roa: 0, reason: "maxLength" }, { roa: 1, reason: "asn" }, { roa: 2, reason: "as0" }]);
    });

    it("covers: same family, not longer, and containing", () => {
        assert.equal(covers(parseCidr("2a0f:85c1::/32"), announced), true);
        assert.equal(covers(announced, announced), true);
        assert.equal(covers(parseCidr("2a0f:85c1:260::/52"), announced), false);
        assert.equal(covers(parseCidr("2a0f:85c2::/32"), announced), false);
    });
});
