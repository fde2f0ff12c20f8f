/**
 * The whole stacks/network program under Pulumi's mocks: what it would create, with which
 * properties and parents, that secrets stay secret, and that growing the network or changing
 * a PoP's routing never touches the hosts.
 */
import { describe, it, before } from "node:test";
import * as assert from "node:assert/strict";
import { otherSdkWarnings, runStack, StackRun } from "../../harness/stackrun";
import { isSecretValue, MockCloud, MockedResource } from "../../harness/mockcloud";
import { artifact, artifactsFor, pushScript } from "../../components/core/artifacts";
import { ConfigError } from "../../components/core/config";
import { shellQuote } from "../../components/push";
import { rawConfigOf } from "../helpers/fixtures";
import { IpAddress, IpPrefix } from "../../components/core/addressing";
import { renderBirdConfig } from "../../components/core/render/bird";
import { popRenderInput } from "../../components/core/render/layout";

const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest-key-material\n-----END OPENSSH PRIVATE KEY-----\n";
const PASSWORD = "unit-test-bgp-password";
const NEW_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJflOuMxyZTI3xuPoTgjdWNOhp8shGECml0NKRF+KEKg new@example";

function values(mutate?: (c: Record<string, any>) => void): Record<string, unknown> {
    const c: Record<string, any> = { ...structuredClone(rawConfigOf("Pulumi.prod.yaml")), bgpPassword: PASSWORD, sshPrivateKey: SSH_KEY };
    mutate?.(c);
    return c;
}

const byType = (run: StackRun, type: string): MockedResource[] => run.mocked.filter((r) => r.type === type);
const named = (run: StackRun, name: string): MockedResource => {
    const r = run.mocked.find((x) => x.name === name);
    assert.ok(r, `no resource named ${name}`);
    return r;
};

describe("stacks/network under mocks (prod example)", () => {
    let run: StackRun;
    before(async () => {
        run = await runStack({ values: values() });
    });

    it("hands back the component's typed model with its secrets, the one every host's files were rendered from", () => {
        assert.ok(run.spec.address instanceof IpAddress, "an IpAddress, not its text");
        assert.equal(run.spec.address.inUrl(), "[2001:db8:100::1]");
        assert.ok(run.spec.prefixes.every((p) => p instanceof IpPrefix));
        assert.equal(run.spec.sshPrivateKey, SSH_KEY);
        for (const pop of run.spec.pops) {
            assert.equal(pop.bgp.password, PASSWORD);
            const host = run.hosts.find((h) => h.name === pop.name)!;
            assert.equal(renderBirdConfig(popRenderInput(run.spec, pop.name, host)), host.files["bird.conf"]);
        }
    });

    it("creates one IPv6 Vultr instance per PoP, bootstrapped by cloud-init", () => {
        const instances = byType(run, "vultr:index/instance:Instance");
        assert.deepEqual(instances.map((i) => i.name).sort(), ["anycast-ams-instance", "anycast-lax-instance", "anycast-sgp-instance"]);
        for (const i of instances) {
            assert.equal(i.inputs.enableIpv6, true);
            assert.equal(i.inputs.region, i.name.replace(/^anycast-|-instance$/g, ""));
            assert.equal(i.inputs.hostname, i.inputs.region, "the host name is the PoP's name, not the resource name");
            assert.equal(i.inputs.osId, 2136, "the Debian 12 id from getOs, as a number");
            assert.match(String(i.inputs.userData), /^#cloud-config/);
        }
    });

    it("parents every resource under its component", () => {
        // Mock URNs carry the immediate parent's type: check each link of the chain.
        const has = (pattern: RegExp) => assert.ok(run.urns.some((u) => pattern.test(u)), `no URN matches ${pattern}`);
        has(/::anycast:index:AnycastNetwork\$anycast:index:AnycastPoP::anycast-lax$/);
        has(/::anycast:index:AnycastNetwork\$anycast:index:Origin::anycast-origin$/);
        has(/::anycast:index:AnycastNetwork\$anycast:index:WireGuardMesh::anycast-mesh$/);
        has(/::anycast:index:AnycastNetwork\$anycast:index:CloudflareFrontDoor::anycast-front-door$/);
        has(/::anycast:index:AnycastNetwork\$anycast:index:HostFirewall::anycast-lax-firewall$/);
        has(/::anycast:index:AnycastPoP\$anycast:index:Host::anycast-lax$/);
        has(/::anycast:index:Host\$vultr:index\/instance:Instance::anycast-lax-instance$/);
        has(/::anycast:index:Host\$command:remote:Command::anycast-lax-push-authorized_keys$/);
        has(/::anycast:index:AnycastPoP\$command:remote:Command::anycast-lax-push-bird\.conf$/);
        has(/::anycast:index:WireGuardMesh\$command:remote:Command::anycast-lax-push-wg0\.conf$/);
        has(/::anycast:index:WireGuardMesh\$random:index\/randomBytes:RandomBytes::anycast-mesh-lax-key$/);
        has(/::anycast:index:CloudflareFrontDoor\$cloudflare:index\/dnsRecord:DnsRecord::anycast-front-door-aaaa$/);
        has(/::anycast:index:HostFirewall\$command:remote:Command::anycast-lax-push-nftables\.conf$/);
        has(/::anycast:index:Origin\$anycast:index:Host::anycast-origin$/);
        // One resource at the top: the network owns everything else.
        const topLevel = run.urns.filter((u) => !u.split("::")[2].includes("$")).map((u) => u.split("::")[2]);
        assert.deepEqual(topLevel, ["anycast:index:AnycastNetwork"]);
        assert.deepEqual(run.mocked.filter((r) => r.parent === "").map((r) => r.name), ["anycast"]);
    });

    it("pushes every PoP file and reloads in place", () => {
        // Exactly the registry's files for each role: Vultr-created PoPs, and an existing origin.
        const namesFor = (role: "pop" | "origin", createdOnVultr: boolean, monitoring = false) =>
            artifactsFor(role, { createdOnVultr, monitoring }).map((a) => a.name).sort();
        for (const pop of ["lax", "ams", "sgp"]) {
            const host = run.hosts.find((h) => h.name === pop)!;
            assert.deepEqual(Object.keys(host.files).sort(), namesFor("pop", true), `${pop}'s files`);
            for (const [f, content] of Object.entries(host.files)) assert.ok(content, `${pop}'s ${f} is empty`);
        }
        const bird = named(run, "anycast-lax-push-bird.conf");
        assert.match(String(bird.inputs.create), /bird -p -c/);
        assert.match(String(bird.inputs.create), /birdc configure/);
        assert.doesNotMatch(String(bird.inputs.create), /restart bird/, "a config change must not restart BIRD (session reset)");
        assert.match(String(named(run, "anycast-lax-push-nginx.conf").inputs.create), /nginx -t/);
        assert.match(String(named(run, "anycast-lax-push-wg0.conf").inputs.create), /wg syncconf/);
        const origin = run.hosts.find((h) => h.role === "origin")!;
        // Pulumi.prod.yaml's anycast:monitoring names it: Prometheus and its two files too.
        assert.deepEqual(Object.keys(origin.files).sort(), namesFor("origin", false, true), "an existing origin gets no cloud-init");
        assert.deepEqual(namesFor("origin", false), ["authorized_keys", "nftables.conf", "wg0.conf"]);
        assert.deepEqual(namesFor("origin", false, true), ["alerts.yml", "authorized_keys", "nftables.conf", "prometheus.conf", "prometheus.yml", "wg0.conf"]);
    });

    it("runs each file's push script from the artifact registry, secret where the registry says so", () => {
        const pushes = byType(run, "command:remote:Command").filter((r) => /-push-/.test(r.name));
        assert.ok(pushes.length >= 3 * 12 + 3, `${pushes.length} pushes`);
        for (const r of pushes) {
            const file = artifact(r.name.replace(/^.+?-push-/, ""));
            assert.equal(file.delivery, "push", r.name);
            if (file.delivery !== "push") continue;
            assert.equal(r.inputs.create, `bash -c ${shellQuote(pushScript(file))}`, r.name);
            assert.equal(isSecretValue(r.inputs.stdin), file.secret, `${r.name}: stdin secret`);
        }
    });

    it("keeps secrets secret: BGP password, WireGuard keys, TLS key, SSH key", () => {
        for (const name of ["anycast-lax-push-bird.conf", "anycast-lax-push-wg0.conf", "anycast-origin-push-wg0.conf", "anycast-lax-push-origin.key"]) {
            const r = named(run, name);
            assert.ok(isSecretValue(r.inputs.stdin), `${name} content is not secret`);
            // No hash of the content beside it: a hash of a secret would let a password be brute-forced offline.
            assert.equal(r.inputs.triggers, undefined, `${name} carries triggers`);
        }
        assert.ok(isSecretValue(named(run, "anycast-lax-push-nginx.conf").inputs.connection), "the SSH connection carries the key");
        // Nothing secret leaks into the plan, the outputs or the non-secret files.
        const visible = JSON.stringify(run.resources) + JSON.stringify(run.outputs);
        assert.ok(!visible.includes(PASSWORD), "password visible in plan or outputs");
        assert.ok(!visible.includes("test-key-material"), "SSH key visible in plan or outputs");
        const lax = run.hosts.find((h) => h.name === "lax")!;
        assert.ok(lax.files["bird.conf"].includes(PASSWORD), "bird.conf is where the password belongs");
        for (const [f, content] of Object.entries(lax.files)) {
            if (f !== "bird.conf") assert.ok(!content.includes(PASSWORD), `${f} contains the BGP password`);
        }
        const privateKey = /PrivateKey = (\S+)/.exec(lax.files["wg0.conf"])?.[1];
        assert.ok(privateKey && !visible.includes(privateKey), "WireGuard private key visible");
    });

    it("derives WireGuard public keys that match the pushed private keys", () => {
        const keys = (run.outputs.mesh as { publicKeys: Record<string, string> }).publicKeys;
        assert.deepEqual(Object.keys(keys).sort(), ["ams", "lax", "origin", "sgp"]);
        const origin = run.hosts.find((h) => h.role === "origin")!.files["wg0.conf"];
        for (const pop of ["lax", "ams", "sgp"]) assert.ok(origin.includes(`PublicKey = ${keys[pop]}`), `origin does not peer with ${pop}`);
        // Endpoints are unicast addresses, never the anycast one.
        assert.ok(!origin.includes("2001:db8:100::1"), "a WireGuard endpoint points at the anycast address");
    });

    it("creates the grey AAAA and the orange CNAME", () => {
        const aaaa = named(run, "anycast-front-door-aaaa").inputs;
        assert.equal(aaaa.type, "AAAA");
        assert.equal(aaaa.name, "anycast.example.com");
        assert.equal(aaaa.content, "2001:db8:100::1");
        assert.equal(aaaa.proxied, false);
        const cname = named(run, "anycast-front-door-cname").inputs;
        assert.equal(cname.type, "CNAME");
        assert.equal(cname.name, "www.example.com");
        assert.equal(cname.content, "anycast.example.com");
        assert.equal(cname.proxied, true);
        assert.equal(cname.ttl, 1);
        assert.equal(aaaa.zoneId, cname.zoneId);
    });

    it("exports addresses, neighbours, mesh addresses and DNS names", () => {
        assert.equal(run.outputs.anycastAddress, "2001:db8:100::1");
        const pops = run.outputs.pops as Record<string, { ipv6: string; bgpNeighbor: string; meshAddress: string }>;
        assert.equal(pops.lax.bgpNeighbor, "2001:19f0:ffff::1");
        assert.match(pops.lax.ipv6, /^2001:db8:ff1[1-3]::10$/);
        assert.equal(pops.lax.meshAddress, "10.77.0.2");
        assert.deepEqual(run.outputs.dns, { hostname: "www.example.com", anycastName: "anycast.example.com" });
        assert.deepEqual(run.outputs.rpki, [{ prefix: "2001:db8:100::/48", originAsn: 64500, state: "valid", detail: "ROA 2001:db8:100::/48 max /48 AS64500" }]);
    });
});

describe("changes that must not replace or touch hosts", () => {
    const hostInputs = (run: StackRun, pop: string) => JSON.stringify(named(run, `anycast-${pop}-instance`).inputs);

    it("adding a fourth PoP leaves the three existing hosts' inputs and BGP configs unchanged", async () => {
        const three = await runStack({ values: values() });
        const four = await runStack({ values: values((c) => c.pops.push({ name: "fra", region: "fra" })) });
        for (const pop of ["lax", "ams", "sgp"]) {
            assert.equal(hostInputs(four, pop), hostInputs(three, pop), `${pop}'s instance inputs changed`);
            const a = three.hosts.find((h) => h.name === pop)!.files;
            const b = four.hosts.find((h) => h.name === pop)!.files;
            assert.equal(b["bird.conf"], a["bird.conf"]);
            assert.equal(b["nginx.conf"], a["nginx.conf"]);
            assert.notEqual(b["wg0.conf"], a["wg0.conf"], "existing PoPs learn the new mesh peer");
        }
        assert.equal(byType(four, "vultr:index/instance:Instance").length, 4);
    });

    it("changing a PoP's communities and prepends changes only its bird.conf", async () => {
        const before = await runStack({ values: values() });
        const after = await runStack({ values: values((c) => { c.pops[1].communities = ["64601:6939"]; c.pops[1].prepend = 2; }) });
        assert.equal(hostInputs(after, "ams"), hostInputs(before, "ams"));
        const a = before.hosts.find((h) => h.name === "ams")!.files;
        const b = after.hosts.find((h) => h.name === "ams")!.files;
        assert.notEqual(b["bird.conf"], a["bird.conf"]);
        for (const f of Object.keys(a)) if (f !== "bird.conf") assert.equal(b[f], a[f], `${f} changed`);
    });

    it("draining a PoP by config (pops[].drained) changes only its agent's settings, and undraining reverts them", async () => {
        const before = await runStack({ values: values() });
        const drained = await runStack({ values: values((c) => { c.pops[1].drained = true; }) });
        for (const pop of ["lax", "ams", "sgp"]) {
            assert.equal(hostInputs(drained, pop), hostInputs(before, pop), `${pop}'s instance inputs changed`);
            const a = before.hosts.find((h) => h.name === pop)!.files;
            const b = drained.hosts.find((h) => h.name === pop)!.files;
            for (const f of Object.keys(a)) {
                if (pop === "ams" && f === "anycast-health.json") continue;
                assert.equal(b[f], a[f], `${pop}: ${f} changed`);
            }
        }
        const settings = (run: StackRun) => JSON.parse(run.hosts.find((h) => h.name === "ams")!.files["anycast-health.json"]);
        assert.equal(settings(before).drained, false);
        assert.equal(settings(drained).drained, true);
        const undrained = await runStack({ values: values((c) => { c.pops[1].drained = false; }) });
        assert.deepEqual(settings(undrained), settings(before));
    });

    it("changing sshPublicKeys replaces no instance and updates access on every host", async () => {
        const before = await runStack({ values: values() });
        const after = await runStack({ values: values((c) => { c.sshPublicKeys = [NEW_KEY]; }) });
        assert.equal(byType(after, "vultr:index/sSHKey:SSHKey").length, 0, "Vultr key ids would replace instances when they change");
        for (const instance of byType(after, "vultr:index/instance:Instance")) {
            const old = named(before, instance.name).inputs;
            assert.ok(!("sshKeyIds" in instance.inputs), `${instance.name} takes Vultr key ids`);
            const changed = Object.keys({ ...old, ...instance.inputs })
                .filter((k) => JSON.stringify(old[k]) !== JSON.stringify(instance.inputs[k]));
            assert.deepEqual(changed, ["userData"], `${instance.name}: only the first-boot userData differs`);
            assert.ok(instance.ignoreChanges.includes("userData"), `${instance.name}: a userData change would replace it`);
        }
        for (const host of after.hosts) {
            const old = before.hosts.find((h) => h.name === host.name)!.files;
            assert.equal(host.files["authorized_keys"], `${NEW_KEY}\n`, `${host.name} does not get the new key`);
            for (const f of Object.keys(old)) {
                if (f !== "authorized_keys" && f !== "cloud-init.yaml") assert.equal(host.files[f], old[f], `${host.name}: ${f} changed`);
            }
        }
    });

    it("rejects a bad config before creating any resource", async () => {
        let cloud: MockCloud | undefined;
        await assert.rejects(runStack({
            values: values((c) => { c.prefix = "2001:db8:100::/64"; }),
            onMockCloud: (c) => { cloud = c; },
        }), (e: unknown) => {
            assert.ok(e instanceof ConfigError);
            assert.ok(e.issues.some((i) => i.key === "anycast:prefix"));
            return true;
        });
        await new Promise((r) => setTimeout(r, 50));
        assert.ok(cloud, "the mocks were installed");
        assert.equal(cloud.resources.length, 0, `resources created despite the error: ${cloud.resources.map((r) => r.name).join(", ")}`);
    });
});

describe("the stack runner's warnings", () => {
    it("returns the stack's own warnings once and keeps any other SDK warning instead of dropping it", async () => {
        const run = await runStack({ values: values((c) => { delete c.firewall; }) });
        const ssh = run.warnings.filter((w) => w.key === "anycast:firewall.adminCidrs");
        assert.equal(ssh.length, 1, JSON.stringify(run.warnings));
        const own = [{ key: "anycast:prefix", message: "is a documentation prefix" }];
        assert.deepEqual(otherSdkWarnings(["anycast:prefix: is a documentation prefix", "provider: a deprecated input"], own),
            [{ key: "pulumi", message: "provider: a deprecated input" }]);
    });
});
