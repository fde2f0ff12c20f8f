/**
 * The `anycast` CLI end to end (in-process): validate, render, preview, and the rule that
 * nothing secret appears in clear text outside the files meant to hold it.
 */
import { describe, it, before, after } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import { main } from "../../cli/anycast";
import { REPO_ROOT } from "../helpers/golden";
import { rawConfigOf } from "../helpers/fixtures";

const PASSWORD = "cli-test-bgp-password";
const SSH_SECRET = "cli-test-ssh-key-material";

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(args, (s) => out.push(s), (s) => err.push(s));
    return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("anycast CLI", () => {
    let dir: string;
    let prodWithSecrets: string;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-cli-"));
        // A prod-like stack file whose secrets are given in plain text (as a lab/test file may).
        const config: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(rawConfigOf("Pulumi.prod.yaml"))) config[`anycast:${k}`] = v;
        config["anycast:bgpPassword"] = PASSWORD;
        config["anycast:sshPrivateKey"] = `-----BEGIN OPENSSH PRIVATE KEY-----\n${SSH_SECRET}\n-----END OPENSSH PRIVATE KEY-----\n`;
        prodWithSecrets = path.join(dir, "Pulumi.test.yaml");
        fs.writeFileSync(prodWithSecrets, stringify({ config }));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("validate accepts the example stacks", async () => {
        for (const f of ["Pulumi.lab.yaml", "Pulumi.prod.yaml"]) {
            const r = await cli(["validate", "--config", path.join(REPO_ROOT, f)]);
            assert.equal(r.code, 0, r.err);
            assert.match(r.out, /valid \(3 PoPs/);
            assert.match(r.out, /rpki: 2001:db8:100::\/48 from AS64500: valid \(ROA 2001:db8:100::\/48 max \/48 AS64500\)/);
        }
    });

    it("validate fails a stack whose ROA makes the announcement RPKI-invalid, before any resource", async () => {
        const config: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(rawConfigOf("Pulumi.lab.yaml"))) config[`anycast:${k}`] = v;
        config["anycast:roas"] = [{ prefix: "2001:db8::/32", maxLength: 44, asn: 64500 }];
        const bad = path.join(dir, "Pulumi.roa.yaml");
        fs.writeFileSync(bad, stringify({ config }));
        const r = await cli(["validate", "--config", bad]);
        assert.equal(r.code, 1);
        assert.match(r.err, /anycast:roas\[0\]\.maxLength: \/44 is shorter than the announced \/48/);
    });

    it("validate says when secrets are placeholders", async () => {
        const r = await cli(["validate", "--config", path.join(REPO_ROOT, "Pulumi.prod.yaml")]);
        assert.match(r.out, /anycast:bgpPassword is not set .* placeholder/);
    });

    it("validate exits 1 and lists every error with its key", async () => {
        const bad = path.join(dir, "Pulumi.bad.yaml");
        fs.writeFileSync(bad, stringify({ config: { "anycast:asn": 23456, "anycast:prefix": "2001:db8::/64", "anycast:pops": [{ name: "x" }] } }));
        const r = await cli(["validate", "--config", bad]);
        assert.equal(r.code, 1);
        for (const key of ["anycast:asn", "anycast:prefix", "anycast:pops[0]", "anycast:origin", "anycast:mesh", "anycast:frontDoor"]) {
            assert.ok(r.err.includes(`${key}`), `${key} missing in:\n${r.err}`);
        }
    });

    it("validate explains usage errors", async () => {
        assert.equal((await cli(["validate"])).code, 2);
        assert.equal((await cli(["frobnicate"])).code, 2);
        assert.equal((await cli(["validate", "--config", path.join(dir, "nope.yaml")])).code, 2);
    });

    it("render writes every host's files and a plan with secrets redacted", async () => {
        const out = path.join(dir, "render");
        const r = await cli(["render", "--config", prodWithSecrets, "--out", out]);
        assert.equal(r.code, 0, r.err);
        for (const host of ["lax", "ams", "sgp"]) {
            for (const f of ["bird.conf", "wg0.conf", "nginx.conf", "cloud-init.yaml"]) {
                assert.ok(fs.existsSync(path.join(out, host, f)), `${host}/${f} missing`);
            }
        }
        assert.ok(fs.existsSync(path.join(out, "origin", "wg0.conf")));
        assert.equal(fs.statSync(path.join(out, "lax", "wg0.conf")).mode & 0o777, 0o600);
        const plan = JSON.parse(fs.readFileSync(path.join(out, "plan.json"), "utf8"));
        const bird = plan.resources.find((x: { name: string }) => x.name === "anycast-lax-push-bird.conf");
        assert.equal(bird.inputs.stdin, "[secret]");
        assert.ok(plan.resources.length > 40);
    });

    it("no password, private key or token in clear text outside the files meant to hold them", async () => {
        const out = path.join(dir, "render-secrets");
        await cli(["render", "--config", prodWithSecrets, "--out", out]);
        const allowed: Record<string, RegExp> = {
            [PASSWORD]: /\/bird\.conf$/,
            [SSH_SECRET]: /^$/,
            "PRIVATE KEY-----": /\/origin\.key$/,
            "PrivateKey = ": /\/wg0\.conf$/,
        };
        const files: string[] = [];
        const walk = (d: string) => fs.readdirSync(d, { withFileTypes: true }).forEach((e) =>
            e.isDirectory() ? walk(path.join(d, e.name)) : files.push(path.join(d, e.name)));
        walk(out);
        let checked = 0;
        for (const f of files) {
            const text = fs.readFileSync(f, "utf8");
            for (const [secret, where] of Object.entries(allowed)) {
                if (text.includes(secret)) {
                    assert.match(f, where, `${secret} found in ${path.relative(out, f)}`);
                    checked++;
                }
            }
        }
        assert.ok(checked >= 3 + 4, "the secrets do appear where they belong (bird.conf ×3, wg0.conf ×4, origin.key)");
    });

    it("preview prints a table of resources", async () => {
        const r = await cli(["preview", "--config", path.join(REPO_ROOT, "Pulumi.prod.yaml")]);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, /vultr:index\/instance:Instance\s+anycast-lax-instance\s+lax vc2-1c-1gb ipv6=true/);
        assert.match(r.out, /DnsRecord\s+anycast-front-door-cname\s+CNAME www\.example\.com -> anycast\.example\.com proxied ttl=1/);
        assert.match(r.out, /\d+ resources to create/);
    });
});
