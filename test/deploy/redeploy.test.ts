/**
 * What a kept rehearsal refuses to deploy, before anything runs (lab/deploy/redeploy.ts): a
 * change of hosts, and a changed user data (Vultr replaces such an instance). Deploying onto
 * kept hosts for real is in live/rehearsal.test.ts.
 */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KeptRehearsalRefused, refuseMovedHosts, refuseReplacedInstances } from "../../lab/deploy/redeploy";

const layout = {
    addressing: { lax: { ipv6: "fdac:de:0:1::2/64", ipv4: "100.64.1.2/24" }, origin: { ipv6: "2001:db8:1::10/64", ipv4: "100.64.3.2/24" } },
    instanceAddresses: { lax: { ipv6: "fdac:de:0:1::2", ipv4: "100.64.1.2" } },
};

describe("a kept rehearsal's refusals", () => {
    it("takes the same hosts, and refuses an added, removed or moved one, naming it and the way out", () => {
        assert.doesNotThrow(() => refuseMovedHosts({ layout }, structuredClone(layout), "Pulumi.x.yaml"));
        const grown = structuredClone(layout) as { addressing: Record<string, unknown>; instanceAddresses: Record<string, unknown> };
        grown.addressing.ams = { ipv6: "fdac:de:0:2::2/64", ipv4: "100.64.2.2/24" };
        grown.instanceAddresses.ams = { ipv6: "fdac:de:0:2::2", ipv4: "100.64.2.2" };
        assert.throws(() => refuseMovedHosts({ layout }, grown as typeof layout, "Pulumi.x.yaml"), (e: Error) =>
            e instanceof KeptRehearsalRefused && /new or moved: ams;/.test(e.message) && /anycast lab --down, then anycast lab --deploy --keep --config Pulumi\.x\.yaml$/.test(e.message));
        const moved = structuredClone(layout);
        moved.addressing.origin.ipv6 = "2001:db8:1::11/64";
        assert.throws(() => refuseMovedHosts({ layout }, moved, "f.yaml"), /no longer as it was: origin; new or moved: origin;/);
        const { lax: _gone, ...rest } = layout.addressing;
        assert.throws(() => refuseMovedHosts({ layout }, { addressing: rest, instanceAddresses: {} } as unknown as typeof layout, "f.yaml"), /no longer as it was: lax;/);
    });

    it("refuses a changed user data, which would replace the instance", () => {
        const kept = { userData: { lax: "#cloud-config\na: 1\n" } };
        assert.doesNotThrow(() => refuseReplacedInstances(kept, [{ name: "lax", files: { "cloud-init.yaml": "#cloud-config\na: 1\n" } }], "f.yaml"));
        assert.throws(() => refuseReplacedInstances(kept, [{ name: "lax", files: { "cloud-init.yaml": "#cloud-config\na: 2\n" } }], "f.yaml"),
            (e: Error) => e instanceof KeptRehearsalRefused && /user data \(cloud-init\) of lax, so Vultr would replace that instance/.test(e.message));
    });
});
