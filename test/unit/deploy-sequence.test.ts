/**
 * The deploy sequence of a `pulumi up`, read from the real program under mocks (lab/deploy/plan.ts
 * records each remote command and what the engine would make it wait for): every push waits for
 * its host to be ready, the firewall goes last, a non-root user goes through sudo, existing
 * servers are bootstrapped and keep their own firewall tables, SSH uses the configured family, and
 * a deployer outside adminCidrs is refused before anything exists. The bootstrap and the guard
 * ruleset are checked with shellcheck and `nft -c`.
 */
import { describe, it, before } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, DEPLOYER_ADDRESS_ENV } from "../../components/core/config";
import { renderBootstrap, renderCloudInitWait } from "../../components/core/render/bootstrap";
import { IpAddress, IpPrefix } from "../../components/core/addressing";
import { renderNftables } from "../../components/core/render/nftables";
import { changedCommands, changedInputs, DeployPlan, planDeploy, PlannedCommand, removedCommands } from "../../lab/deploy/plan";
import { NETWORK_NAME } from "../../stacks/network/stack";
import { rawConfigOf } from "../helpers/fixtures";
import { run, tempDir, which } from "../helpers/tools";

const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest-key-material\n-----END OPENSSH PRIVATE KEY-----\n";

function values(mutate?: (c: Record<string, any>) => void): Record<string, unknown> {
    const c: Record<string, any> = { ...structuredClone(rawConfigOf("Pulumi.prod.yaml")), bgpPassword: "pw", sshPrivateKey: SSH_KEY };
    mutate?.(c);
    return c;
}

/** Everything a command waits for, directly or through other commands. */
function ancestors(plan: DeployPlan, name: string): Set<string> {
    const byName = new Map(plan.commands.map((c) => [c.name, c]));
    const out = new Set<string>();
    const visit = (n: string) => {
        for (const d of byName.get(n)?.dependsOn ?? []) {
            if (!out.has(d)) {
                out.add(d);
                visit(d);
            }
        }
    };
    visit(name);
    return out;
}

/** A command's resource name: the network's children are `anycast-<host>-...`. */
const N = (name: string) => `${NETWORK_NAME}-${name}`;
const hostOf = (c: PlannedCommand) => c.name.slice(NETWORK_NAME.length + 1).replace(/-(push-.*|ready)$/, "");

describe("deploy sequence (prod example, with an existing PoP as a non-root user)", () => {
    let plan: DeployPlan;
    before(async () => {
        plan = await planDeploy({
            values: values((c) => {
                c.pops.push({ name: "fra", host: { address: "2001:db8:f7a::10", user: "deploy" } });
                c.origin.host.user = "ops";
            }),
        });
    });

    it("every push waits for its host to be ready", () => {
        const pushes = plan.commands.filter((c) => c.name.includes("-push-"));
        assert.ok(pushes.length >= 30, `${pushes.length} pushes`);
        for (const p of pushes) assert.ok(ancestors(plan, p.name).has(N(`${hostOf(p)}-ready`)), `${p.name} does not wait for ${hostOf(p)}-ready`);
    });

    it("waits for cloud-init on a new instance and bootstraps an existing server", () => {
        const ready = (h: string) => plan.commands.find((c) => c.name === N(`${h}-ready`))!;
        assert.match(ready("lax").create, /cloud-init status --wait/);
        assert.equal(ready("lax").connection.user, "root");
        for (const h of ["fra", "origin"]) {
            assert.match(ready(h).create, /apt-get/, h);
            assert.doesNotMatch(ready(h).create, /cloud-init status/, h);
        }
        assert.match(ready("fra").create, /systemctl enable anycast-net\.service/);
        assert.doesNotMatch(ready("origin").create, /anycast-net/);
    });

    it("pushes the firewall last among a host's commands", () => {
        for (const host of ["lax", "ams", "sgp", "fra", "origin"]) {
            const firewall = N(`${host}-push-nftables.conf`);
            const before = ancestors(plan, firewall);
            const others = plan.commands.filter((c) => hostOf(c) === host && c.name !== firewall).map((c) => c.name);
            assert.ok(others.length >= 2, host);
            for (const o of others) assert.ok(before.has(o), `${firewall} does not wait for ${o}`);
        }
    });

    it("runs every command as root: through sudo -n for a non-root user, directly for root", () => {
        for (const c of plan.commands) {
            const user = hostOf(c) === "fra" ? "deploy" : hostOf(c) === "origin" ? "ops" : "root";
            assert.equal(c.connection.user, user, c.name);
            if (user === "root") assert.match(c.create, /^bash -c '/, c.name);
            else assert.match(c.create, /^sudo -n true 2>\/dev\/null \|\| \{ echo .*passwordless sudo.*; exit 1; \}; sudo -n bash -c '/, c.name);
        }
    });

    it("guards only the deployment's services on existing servers; default-drop on created hosts; never flushes", () => {
        const ruleset = (h: string) => plan.commands.find((c) => c.name === N(`${h}-push-nftables.conf`))!.stdin!;
        for (const h of ["lax", "fra", "origin"]) {
            assert.doesNotMatch(ruleset(h), /^\s*flush/m, h);
            assert.match(ruleset(h), /^table inet anycast\ndelete table inet anycast\n/m, h);
            assert.equal((ruleset(h).match(/^table /gm) ?? []).length, 2, `${h}: one table only`);
        }
        assert.match(ruleset("lax"), /policy drop;/);
        for (const h of ["fra", "origin"]) {
            assert.match(ruleset(h), /policy accept;/, h);
            assert.doesNotMatch(ruleset(h), /tcp dport 22/, `${h}: SSH left to the server's own firewall`);
        }
        assert.match(ruleset("fra"), /tcp dport 179 counter drop/);
        assert.match(ruleset("fra"), /udp dport 51820 counter drop/);
        // The origin's service port is the deployment's too: over the mesh only, even on an existing server.
        assert.match(ruleset("origin"), /iifname "wg0" .* tcp dport 8080 accept[^]*tcp dport 8080 counter drop comment "the origin service from anyone but the mesh"/);
        assert.doesNotMatch(ruleset("fra"), /the origin service/);
    });

    it("installs the firewall's boot unit and enables every unit a PoP needs after a reboot", () => {
        const create = (name: string) => plan.commands.find((c) => c.name === N(name))!.create;
        assert.match(create("lax-push-nftables.conf"), /systemctl enable anycast-firewall\.service/);
        assert.match(create("lax-push-bird.conf"), /systemctl enable bird/);
        assert.match(create("lax-push-nginx.conf"), /systemctl enable nginx/);
        assert.match(create("lax-push-wg0.conf"), /systemctl enable wg-quick@wg0/);
        assert.match(create("lax-push-anycast-health.service"), /systemctl enable anycast-health/);
    });

    it("a second run changes nothing; a communities change re-runs only that PoP's bird.conf push", async () => {
        const same = await planDeploy({
            values: values((c) => {
                c.pops.push({ name: "fra", host: { address: "2001:db8:f7a::10", user: "deploy" } });
                c.origin.host.user = "ops";
            }),
        });
        assert.deepEqual(changedCommands(plan.commands, same.commands).map((c) => c.name), []);
        const changed = await planDeploy({
            values: values((c) => {
                c.pops.push({ name: "fra", host: { address: "2001:db8:f7a::10", user: "deploy" } });
                c.origin.host.user = "ops";
                c.pops[1].communities = ["64600:64497"];
            }),
        });
        assert.deepEqual(changedCommands(plan.commands, changed.commands).map((c) => c.name), [N("ams-push-bird.conf")]);
    });
});

describe("what a later pulumi up runs: changed inputs, ignored ones, removed commands", () => {
    const command = (name: string, over: Partial<PlannedCommand> = {}): PlannedCommand => ({
        name, connection: { host: "2001:db8::1", port: 22, user: "root", privateKey: "k" }, create: "cat > /etc/x", stdin: "a",
        dependsOn: [], triggers: [], ignoreChanges: [], ...over,
    });
    it("a changed script, content, environment or trigger is an update; the same inputs are not", () => {
        assert.deepEqual(changedInputs(command("x"), command("x")), []);
        assert.deepEqual(changedInputs(command("x"), command("x", { create: "install" })), ["create"]);
        assert.deepEqual(changedInputs(command("x"), command("x", { stdin: "b", environment: { A: "1" } })), ["stdin", "environment"]);
        assert.deepEqual(changedInputs(command("x", { stdin: undefined }), command("x", { stdin: "" })), [], "no stdin and an empty one are the same");
    });
    it("an ignored input is no change (0.1.0's triggers: an upgrade would re-run every push otherwise)", () => {
        const before = [command("a", { triggers: ["old"] }), command("b")];
        const after = [command("a", { triggers: ["new"], ignoreChanges: ["triggers"] }), command("b", { stdin: "new" }), command("c")];
        assert.deepEqual(changedInputs(before[0], after[0]), []);
        assert.deepEqual(changedCommands(before, after).map((c) => c.name), ["b", "c"]);
        assert.deepEqual(removedCommands(before, after.slice(1)).map((c) => c.name), ["a"]);
        assert.deepEqual(removedCommands(before, after), []);
    });
});

describe("deploy config: SSH family and the lock-out check", () => {
    it("SSH over IPv4 when asked: instances by their IPv4, an existing server by host.address4", async () => {
        const plan = await planDeploy({
            values: values((c) => {
                c.deploy = { sshFamily: "ipv4" };
                c.origin.host.address4 = "198.51.100.10";
            }),
            instanceAddresses: { lax: { ipv6: "2001:db8:1::10", ipv4: "192.0.2.77" } },
        });
        const hostOfCmd = (n: string) => plan.commands.find((c) => c.name === N(n))!.connection.host;
        assert.equal(hostOfCmd("lax-ready"), "192.0.2.77");
        assert.equal(hostOfCmd("origin-ready"), "198.51.100.10");
    });

    it("refuses IPv4 SSH to an existing server without host.address4, naming the key", async () => {
        await assert.rejects(planDeploy({ values: values((c) => { c.deploy = { sshFamily: "ipv4" }; }) }), (e: Error) => {
            assert.ok(e instanceof ConfigError, e.message);
            assert.match(e.message, /anycast:origin\.host\.address4: is required: anycast:deploy\.sshFamily is IPv4/);
            return true;
        });
    });

    it("refuses a deployer outside adminCidrs before anything is created, from config or the environment", async () => {
        await assert.rejects(planDeploy({ values: values((c) => { c.deploy = { deployerAddress: "2001:db8:dead::1" }; }) }), (e: Error) => {
            assert.match(e.message, /anycast:deploy\.deployerAddress: 2001:db8:dead::1 is outside anycast:firewall\.adminCidrs/);
            return true;
        });
        process.env[DEPLOYER_ADDRESS_ENV] = "203.0.113.9";
        try {
            await assert.rejects(planDeploy({ values: values() }), /anycast:deploy\.deployerAddress: 203\.0\.113\.9 is outside/);
        } finally {
            delete process.env[DEPLOYER_ADDRESS_ENV];
        }
        // Inside adminCidrs (198.51.100.0/24): fine, and auto picks IPv4 SSH from the deployer's family.
        const plan = await planDeploy({
            values: values((c) => { c.deploy = { deployerAddress: "198.51.100.20" }; c.origin.host.address4 = "198.51.100.10"; }),
        });
        assert.equal(plan.commands.find((c) => c.name === N("origin-ready"))!.connection.host, "198.51.100.10");
    });
});

describe("bootstrap and guard ruleset under the real tools", () => {
    it("the bootstrap and the cloud-init wait pass bash -n and shellcheck", (t) => {
        const dir = tempDir("bootstrap");
        try {
            for (const [name, text] of [["pop", renderBootstrap({ role: "pop" })], ["origin", renderBootstrap({ role: "origin" })], ["wait", renderCloudInitWait()]]) {
                const file = path.join(dir, `${name}.sh`);
                fs.writeFileSync(file, text);
                assert.equal(run("bash", ["-n", file]).status, 0, name);
                if (!which("shellcheck")) {
                    t.diagnostic("shellcheck not installed (bash scripts/setup.sh): only bash -n ran");
                    continue;
                }
                const sc = run("shellcheck", ["-s", "bash", file]);
                assert.equal(sc.status, 0, `${name}: ${sc.stdout}`);
            }
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("the guard ruleset loads with nft -c", (t) => {
        if (!which("nft") || process.getuid?.() !== 0) {
            t.skip("needs root and nft (CI has both)");
            console.log("guard ruleset nft -c skipped: needs root and nft");
            return;
        }
        const text = renderNftables({
            role: "pop", anycastAddresses: [IpAddress.parse("2001:db8:100::1")], httpSources: [IpPrefix.parse("2400:cb00::/32")],
            bgpNeighbors: [IpAddress.parse("2001:19f0:ffff::1")], meshPeerEndpoints: [IpAddress.parse("2001:db8:beef::10")], meshPort: 51820,
            meshCidr: IpPrefix.parse("10.77.0.0/24"), adminCidrs: [], bfd: true, existingHost: true,
        });
        const dir = tempDir("guard");
        try {
            fs.writeFileSync(path.join(dir, "g.nft"), text);
            const r = run("nft", ["-c", "-f", path.join(dir, "g.nft")]);
            assert.equal(r.status, 0, String(r.stderr));
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
