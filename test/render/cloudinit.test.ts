import { after, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { CloudInitInput, renderCloudInit } from "../../components/core/render/cloudinit";
import { renderNetSetup } from "../../components/core/render/netsetup";
import { IpAddress } from "../../components/core/addressing";
import { PopRenderInput } from "../../components/core/model";
import { assertGolden } from "../helpers/golden";
import { popRenderInput, prodSpec } from "../helpers/fixtures";
import { needTools, run, runOk, tempDir } from "../helpers/tools";

const scratch = tempDir("cloudinit");
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx6b1mQkq3wq3Yj0W4p2Zs9yQe6h8Xc1rV7a8bTn0Ux ops@example.com";

/** Exactly what AnycastPoP passes: the net setup rendered before the host has addresses. */
function bootNetSetup(input: PopRenderInput): string {
    return renderNetSetup({ ...input, host: { ipv6: "::" } });
}

function popInput(): CloudInitInput {
    return { hostname: "lax", role: "pop", sshPublicKeys: [SSH_KEY], netSetup: bootNetSetup(popRenderInput(prodSpec(), "lax")) };
}

const originInput: CloudInitInput = { hostname: "origin", role: "origin", sshPublicKeys: [SSH_KEY] };

describe("renderCloudInit", () => {
    test("golden files", () => {
        assertGolden("cloudinit/prod-lax.yaml", renderCloudInit(popInput()));
        assertGolden("cloudinit/origin.yaml", renderCloudInit(originInput));
    });

    test("bootstrap content: packages per role, sysctl, unit, runcmd, keys; the script survives YAML verbatim", () => {
        const text = renderCloudInit(popInput());
        assert.ok(text.startsWith("#cloud-config\n"));
        const doc = parse(text) as Record<string, any>;
        assert.equal(doc.hostname, "lax");
        assert.equal(doc.package_update, true);
        assert.deepEqual(doc.packages, ["bird2", "wireguard-tools", "nginx-light", "nftables", "curl"]);
        assert.deepEqual(doc.ssh_authorized_keys, [SSH_KEY]);
        const files = Object.fromEntries((doc.write_files as Array<{ path: string; content: string; permissions: string }>)
            .map((f) => [f.path, f]));
        assert.equal(files["/usr/local/sbin/anycast-net"].content, popInput().netSetup);
        assert.equal(files["/usr/local/sbin/anycast-net"].permissions, "0755");
        assert.match(files["/etc/sysctl.d/90-anycast.conf"].content, /^net\.ipv6\.conf\.all\.accept_ra = 2$/m);
        assert.match(files["/etc/sysctl.d/90-anycast.conf"].content, /^net\.ipv6\.conf\.default\.accept_ra = 2$/m);
        const unit = files["/etc/systemd/system/anycast-net.service"].content;
        assert.match(unit, /^Type=oneshot$/m);
        assert.match(unit, /^After=network-online\.target$/m);
        assert.match(unit, /^Before=bird\.service/m);
        assert.match(unit, /^ExecStart=\/usr\/local\/sbin\/anycast-net --boot$/m, "at boot the state file is reset to withdrawn");
        assert.deepEqual(doc.runcmd, [["sysctl", "-p", "/etc/sysctl.d/90-anycast.conf"], ["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "anycast-net.service"]]);

        const origin = parse(renderCloudInit(originInput)) as Record<string, any>;
        assert.deepEqual(origin.packages, ["wireguard-tools", "nftables"]);
        assert.ok(!JSON.stringify(origin).includes("anycast-net"));
    });

    test("does not change when a PoP is added or a BIRD/nginx/WireGuard setting changes (userData would replace the host)", () => {
        const before = renderCloudInit(popInput());
        const spec = prodSpec();
        const lax = spec.pops.find((p) => p.name === "lax")!;
        const changed: PopRenderInput = {
            ...popRenderInput(spec, "lax"),
            pop: {
                ...lax,
                bgp: { ...lax.bgp, holdTime: 30, keepaliveTime: 10, bfd: { intervalMs: 300, multiplier: 3 }, password: "another-password" },
                communities: [{ kind: "standard", asn: 64601, value: 174 }],
                prepend: 2,
                meshAddress: IpAddress.parse("10.77.0.42"),
            },
            health: { ...spec.health, rise: 10 },
        };
        const after = renderCloudInit({ ...popInput(), netSetup: bootNetSetup(changed) });
        assert.equal(after, before);
        assert.ok(!before.includes("another-password") && !before.includes("test-bgp-password"), "no BGP password in userData");
    });

    test("refuses input that would corrupt the document", () => {
        assert.throws(() => renderCloudInit({ ...originInput, hostname: "bad_host" }), /hostname/);
        assert.throws(() => renderCloudInit({ ...originInput, sshPublicKeys: ["ssh-ed25519 AAAA\nruncmd: [reboot]"] }), /public key/);
    });

    test("cloud-init schema reports the files valid, and every top-level key is one cloud-init knows", (t) => {
        if (!needTools(t, "cloud-init")) return;
        // cloud-init 22.4 accepts unknown top-level keys silently (they are simply ignored at
        // boot), so "Valid" alone would not catch a misspelt key: compare with its schema too.
        const schemaDir = runOk("/usr/bin/python3", ["-c", "import cloudinit, os; print(os.path.dirname(cloudinit.__file__))"]).trim();
        const schema = JSON.parse(fs.readFileSync(path.join(schemaDir, "config", "schemas", "schema-cloud-config-v1.json"), "utf8"));
        const known = new Set<string>(Object.keys(schema.properties ?? {}));
        for (const part of schema.allOf ?? []) {
            const def = schema.$defs[String(part.$ref).split("/").pop()!];
            for (const key of Object.keys(def?.properties ?? {})) known.add(key);
        }
        assert.ok(known.has("write_files") && known.has("runcmd"), "the schema was read");
        for (const [name, input] of [["pop", popInput()], ["origin", originInput]] as const) {
            const text = renderCloudInit(input);
            const file = path.join(scratch, `${name}.yaml`);
            fs.writeFileSync(file, text);
            const result = run("cloud-init", ["schema", "--config-file", file]);
            const output = result.stdout + result.stderr;
            assert.equal(result.status, 0, `cloud-init schema ${name}:\n${output}`);
            assert.match(output, /Valid cloud-config/);
            assert.ok(!/deprecat|warning|unexpected|additional propert/i.test(output), output);
            for (const key of Object.keys(parse(text) as object)) assert.ok(known.has(key), `${name}: unknown cloud-init key ${key}`);
        }
    });

    test("cloud-init schema rejects a broken file (so the check above is real)", (t) => {
        if (!needTools(t, "cloud-init")) return;
        const file = path.join(scratch, "broken.yaml");
        fs.writeFileSync(file, renderCloudInit(originInput).replace('permissions: "0644"', "permissions: 644"));
        assert.notEqual(run("cloud-init", ["schema", "--config-file", file]).status, 0);
    });
});
