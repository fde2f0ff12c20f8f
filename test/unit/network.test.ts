/**
 * AnycastNetwork used the way a library user's program uses it: one resource that owns every
 * other, typed outputs, validation before anything is registered, and secrets that stay secret
 * whether they arrive as plain strings or as secret Outputs.
 */
import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { AnycastNetwork, AnycastNetworkArgs } from "../../components/network";
import { CONFIG_KEYS, ConfigError, SECRET_KEYS } from "../../components/core/config";
import { installMockCloud, MockCloud, outputValue } from "../../harness/testing";
import { rawConfigOf } from "../helpers/fixtures";
import { REPO_ROOT } from "../helpers/golden";
import { run, tempDir } from "../helpers/tools";

const DIST = path.join(REPO_ROOT, "dist");
const scratch = tempDir("network");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const PASSWORD = "network-test-bgp-password";
const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnetwork-test-key\n-----END OPENSSH PRIVATE KEY-----\n";

/** The prod example as args; the secrets as the caller chooses to pass them. */
function prodArgs(secrets: Pick<AnycastNetworkArgs, "bgpPassword" | "sshPrivateKey">): AnycastNetworkArgs {
    return { ...(rawConfigOf("Pulumi.prod.yaml") as unknown as AnycastNetworkArgs), ...secrets };
}

async function build(args: AnycastNetworkArgs): Promise<{ cloud: MockCloud; network: AnycastNetwork }> {
    const cloud = await installMockCloud({ project: "edge", stack: "test" });
    const network = new AnycastNetwork("edge", args);
    await outputValue(network.files);
    await cloud.settled();
    return { cloud, network };
}

describe("AnycastNetwork in a program of its own", () => {
    it("owns every resource, named after it, and exposes typed outputs", async () => {
        const { cloud, network } = await build(prodArgs({ bgpPassword: PASSWORD, sshPrivateKey: SSH_KEY }));
        const orphans = cloud.resources.filter((r) => r.parent === "").map((r) => r.name);
        assert.deepEqual(orphans, ["edge"], "only the network itself has no parent");
        const stray = cloud.resources.filter((r) => !r.name.startsWith("edge")).map((r) => r.name);
        assert.deepEqual(stray, [], "children are named <network>-<role>");

        const hosts = await outputValue(network.hosts);
        assert.deepEqual(hosts.map((h) => `${h.role}:${h.name}`), ["pop:lax", "pop:ams", "pop:sgp", "origin:origin"]);
        assert.equal(hosts[0].region, "lax");
        assert.equal(hosts[3].ipv6, "2001:db8:beef::10", "the existing origin keeps its address");
        assert.deepEqual(await outputValue(network.dns), { hostname: "www.example.com", anycastName: "anycast.example.com" });
        assert.equal(await outputValue(network.anycastAddress), "2001:db8:100::1");
        assert.deepEqual(Object.keys(await outputValue(network.meshPublicKeys)).sort(), ["ams", "lax", "origin", "sgp"]);

        const warnings = await outputValue(network.warnings);
        assert.ok(warnings.some((w) => w.key === "anycast:prefix" && /documentation prefix/.test(w.message)),
            `structured warnings: ${JSON.stringify(warnings)}`);
    });

    it("keeps secrets out of the spec and marks the files and passwords secret", async () => {
        const { network } = await build(prodArgs({ bgpPassword: PASSWORD, sshPrivateKey: SSH_KEY }));
        const spec = await outputValue(network.spec);
        assert.ok(!JSON.stringify(spec).includes(PASSWORD), "the spec output carries the BGP password");
        assert.ok(!JSON.stringify(spec).includes("network-test-key"), "the spec output carries the SSH key");
        assert.equal(spec.pops.length, 3);
        assert.equal(await pulumi.isSecret(network.spec), false);
        assert.equal(await pulumi.isSecret(network.files), true);
        assert.equal(await pulumi.isSecret(network.bgpPasswords), true);
        const files = await outputValue(network.files);
        assert.ok(files.lax["bird.conf"].includes(`password "${PASSWORD}"`));
        assert.deepEqual(await outputValue(network.bgpPasswords), { lax: PASSWORD, ams: PASSWORD, sgp: PASSWORD });
    });

    it("takes the secrets as secret Outputs, and renders the same files", async () => {
        const plain = await build(prodArgs({ bgpPassword: PASSWORD, sshPrivateKey: SSH_KEY }));
        const plainFiles = await outputValue(plain.network.files);
        const { network } = await build(prodArgs({ bgpPassword: pulumi.secret(PASSWORD), sshPrivateKey: pulumi.secret(SSH_KEY) }));
        const files = await outputValue(network.files);
        for (const host of Object.keys(plainFiles)) {
            for (const f of Object.keys(plainFiles[host])) {
                if (f === "wg0.conf") continue; // fresh keys per run
                assert.equal(files[host][f], plainFiles[host][f], `${host} ${f}`);
            }
        }
    });

    it("fails the deployment naming the key when a secret Output is invalid", () => {
        // Every resource that takes the secret fails to register with the same error. Under
        // `pulumi up` the SDK's handler of unhandled rejections (cmd/run/run.js) reports it once
        // per error object, a RunError as its bare message. A child process plays that handler,
        // since node's test runner fails a test on any unhandled rejection.
        const script = path.join(scratch, "bad-secret.js");
        fs.writeFileSync(script, `
            const pulumi = require(${JSON.stringify(require.resolve("@pulumi/pulumi"))});
            const { AnycastNetwork } = require(${JSON.stringify(path.join(DIST, "components", "network"))});
            const { installMockCloud } = require(${JSON.stringify(path.join(DIST, "harness", "testing"))});
            const failures = new Set();
            process.on("unhandledRejection", (e) => failures.add(e));
            (async () => {
                const cloud = await installMockCloud({ project: "edge", stack: "bad-secret" });
                new AnycastNetwork("edge", { ...JSON.parse(process.argv[2]), bgpPassword: pulumi.secret('has"quote') });
                for (let quiet = 0, last = -1; quiet < 10; quiet = failures.size === last ? quiet + 1 : 0, last = failures.size) {
                    await cloud.settled();
                    await new Promise((r) => setTimeout(r, 100));
                }
                const pushes = cloud.resources.filter((r) => r.type === "command:remote:Command").map((r) => r.name);
                console.log(JSON.stringify({ pushes, failures: [...failures].map((e) => ({ run: pulumi.RunError.isInstance(e), message: e.message })) }));
            })();`);
        const result = run(process.execPath, [script, JSON.stringify(prodArgs({ sshPrivateKey: SSH_KEY }))], { cwd: REPO_ROOT });
        // The failed registrations leave promises pending, which the SDK's leak check reports at
        // exit with status 1, as `pulumi up` would after such an error: the verdict is the printed line.
        assert.ok(result.stdout.trim().startsWith("{"), `no result printed (status ${result.status}):\n${result.stderr}`);
        const { pushes, failures } = JSON.parse(result.stdout) as { pushes: string[]; failures: Array<{ run: boolean; message: string }> };
        assert.deepEqual(pushes, [], "a push ran with an invalid secret");
        assert.equal(failures.length, 1, `one error, reported once: ${JSON.stringify(failures)}`);
        assert.ok(failures[0].run, "a RunError: the CLI prints its message without a stack trace");
        assert.match(failures[0].message, /^invalid anycast config .*:\n  - anycast:bgpPassword: contains quotes/);
    });

    it("rejects invalid args before registering anything, not even itself", async () => {
        const cloud = await installMockCloud({ project: "edge", stack: "bad" });
        assert.throws(() => new AnycastNetwork("edge", { ...prodArgs({ sshPrivateKey: SSH_KEY }), mesh: { cidr: "8.8.8.0/24" } }),
            (e: unknown) => {
                assert.ok(e instanceof ConfigError);
                assert.deepEqual(e.issues.map((i) => i.key).sort(), ["anycast:bgpPassword", "anycast:mesh.cidr"]);
                return true;
            });
        await cloud.settled();
        assert.equal(cloud.resources.length, 0);
    });

    it("takes exactly the stack config's keys as args", () => {
        // `satisfies` fails to compile when AnycastNetworkArgs gains or loses a key; the assertion
        // when the validator does.
        const args = {
            asn: true, prefix: true, address: true, pops: true, origin: true, origins: true, failover: true, mesh: true, frontDoor: true,
            health: true, firewall: true, roas: true, deploy: true, bgpPassword: true, sshPrivateKey: true, sshPublicKeys: true,
            allowAllDrained: true, monitoring: true,
        } satisfies Record<keyof AnycastNetworkArgs, true>;
        assert.deepEqual(Object.keys(args).sort(), [...new Set([...CONFIG_KEYS, ...SECRET_KEYS])].sort());
    });
});
