/**
 * What a rehearsal host is made from (lab/deploy/host-blueprint.ts), without booting one: the
 * addresses a host gets in its slot and the blueprints refused before anything is made. Booting
 * them is in live/hosts.test.ts.
 */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkBlueprint, HostBlueprint, hostAddress } from "../../lab/deploy/host-blueprint";

describe("rehearsal host blueprints", () => {
    it("a host's default addresses come from its slot and index, its gateway is the subnet's first address", () => {
        assert.deepEqual(hostAddress(3, 2, undefined, 6), { address: "fdac:de:3:2::2", prefix: "fdac:de:3:2::/64", gateway: "fdac:de:3:2::1", length: 64 });
        assert.deepEqual(hostAddress(3, 12, undefined, 4), { address: "100.67.12.2", prefix: "100.67.12.0/24", gateway: "100.67.12.1", length: 24 });
        // Slot and index are hexadecimal in the IPv6 block, so slots past 9 do not collide.
        assert.equal(hostAddress(10, 11, undefined, 6)?.address, "fdac:de:a:b::2");
    });

    it("a given address is kept; the gateway moves to the second address when the host holds the first; false means none", () => {
        assert.deepEqual(hostAddress(0, 1, { ipv4: "192.0.2.1/28" }, 4), { address: "192.0.2.1", prefix: "192.0.2.0/28", gateway: "192.0.2.2", length: 28 });
        assert.equal(hostAddress(0, 1, { ipv6: "2001:db8::5/64", gateway6: "2001:db8::fe" }, 6)?.gateway, "2001:db8::fe");
        assert.equal(hostAddress(0, 1, { ipv4: false }, 4), undefined);
        assert.throws(() => hostAddress(0, 1, { ipv4: "2001:db8::5/64" }, 4), /expected an IPv4 address\/length/);
        assert.throws(() => hostAddress(0, 1, { ipv6: "2001:db8::5" }, 6), /expected an IPv6 address\/length/);
    });

    it("refuses a blueprint that cannot boot, naming the host and what is wrong", () => {
        const ok: HostBlueprint = { name: "pop-lax", kind: "new", userData: "#cloud-config\n" };
        assert.doesNotThrow(() => checkBlueprint(ok, false));
        assert.throws(() => checkBlueprint(ok, true), /a host named pop-lax exists already/);
        assert.throws(() => checkBlueprint({ ...ok, name: "Pop_1" }, false), /host name "Pop_1"/);
        assert.throws(() => checkBlueprint({ name: "old", kind: "existing", userData: "x" }, false), /old: an existing host has no user data/);
        assert.throws(() => checkBlueprint({ ...ok, existing: {} }, false), /a new instance has no existing state/);
        assert.throws(() => checkBlueprint({ name: "old", kind: "existing", existing: { user: "ops", packages: [] } }, false),
            /old: the non-root user ops needs the sudo package/);
        assert.throws(() => checkBlueprint({ name: "old", kind: "existing", existing: { packages: ["emacs"] } }, false),
            /package emacs is not one of the existing-host packages/);
    });
});
