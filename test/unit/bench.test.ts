/** The benchmark's pure parts: statistics and reading wrk's output. */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { parseWrk } from "../../bench/datapath";
import { summarize } from "../../lab/stats";
import { configWithPops, VULTR_REGIONS } from "../../bench/evaluation";
import { parseAnycastConfig } from "../../components/core/config";
import { REPO_ROOT } from "../helpers/golden";
import * as path from "node:path";
import * as fs from "node:fs";
import * as os from "node:os";
import { PROFILES, profileStackFile } from "../../bench/profiles";
import { readStackValues } from "../../harness/stackrun";

const WRK_OUTPUT = `Running 3s test @ http://[fd00:a:1::1]:8080/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.45us  301.22us   9.87ms   91.02%
    Req/Sec     9.71k   512.33    10.40k    70.00%
  Latency Distribution
     50%  756.00us
     75%    0.89ms
     90%    1.05ms
     99%    2.31ms
  28973 requests in 3.00s, 9.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   9657.43
Transfer/sec:      3.04MB
`;

describe("bench helpers", () => {
    it("reads requests/s, percentiles in any unit, and errors from wrk", () => {
        const r = parseWrk(WRK_OUTPUT);
        assert.equal(r.rps, 9657.43);
        assert.equal(r.p50Ms, 0.756);
        assert.equal(r.p99Ms, 2.31);
        assert.equal(r.errors, 7);
        assert.throws(() => parseWrk("unable to connect"), /cannot read wrk output/);
    });

    it("summarizes min/median/max, even and odd counts", () => {
        assert.deepEqual(summarize([3, 1, 2]), { n: 3, min: 1, median: 2, max: 3 });
        assert.deepEqual(summarize([4, 1, 3, 2]), { n: 4, min: 1, median: 2.5, max: 4 });
        assert.equal(summarize([]).n, 0);
    });

    it("fans the lab stack out to 32 valid PoPs in distinct Vultr regions", () => {
        assert.equal(new Set(VULTR_REGIONS).size, 32);
        const spec = parseAnycastConfig(configWithPops(path.join(REPO_ROOT, "Pulumi.lab.yaml"), 32));
        assert.equal(spec.pops.length, 32);
        assert.equal(new Set(spec.pops.map((p) => p.meshAddress)).size, 32);
    });

    it("derives a valid stack per provider profile, with every PoP's bgp block replaced", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-profile-test-"));
        try {
            for (const profile of PROFILES) {
                const values = readStackValues(profileStackFile(path.join(REPO_ROOT, "Pulumi.lab.yaml"), profile, dir));
                const spec = parseAnycastConfig({ ...values, sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n" });
                for (const pop of spec.pops) {
                    assert.equal(pop.bgp.bfd, undefined, `${profile.id}: ${pop.name} has no BFD`);
                    assert.equal(pop.bgp.holdTime, (profile.bgp.holdTime as number | undefined) ?? 9, `${profile.id}: ${pop.name}`);
                }
            }
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
