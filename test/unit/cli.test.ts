/**
 * The `anycast` CLI end to end (in-process): help, validate, render, preview and its diff,
 * error messages without stack traces, the 100-column bound, and the rule that nothing secret
 * appears in clear text outside the files meant to hold it.
 */
import { describe, it, before, after } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { stringify } from "yaml";
import { Command } from "commander";
import { main, program, reportError } from "../../cli/anycast";
import { fitting } from "../../cli/format";
import { diffPlans, PLAN_FORMAT, PlanResource, SavedPlan } from "../../cli/plan";
import { allCreated, formatPreview } from "../../cli/preview";
import { CommandError } from "../../lab/exec";
import { EDGE_KINDS, LabPreconditionError } from "../../lab/index";
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
            assert.match(r.out, /^validate: ok, 3 PoPs, \d+ resources, \d+ warnings? \(.*\)$/m);
            assert.match(r.out, /^ {2}running stacks\/network under Pulumi mocks: done in [\d.]+ m?s, \d+ resources$/m);
            assert.match(r.out, /rpki: 2001:db8:100::\/48 from AS64500: valid \(ROA 2001:db8:100::\/48 max \/48 AS64500\)/);
            assertFits(r);
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

    it("validate shows the origin the Internet sees for a Vultr-assigned private ASN: AS20473, behind which PoPs", async () => {
        const config: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(rawConfigOf("Pulumi.lab.yaml"))) config[`anycast:${k}`] = v;
        config["anycast:asn"] = 65001;
        config["anycast:roas"] = [{ prefix: "2001:db8:100::/48", maxLength: 48, asn: 20473 }];
        const file = path.join(dir, "Pulumi.private.yaml");
        fs.writeFileSync(file, stringify({ config }));
        const r = await cli(["validate", "--config", file]);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out.replace(/\n {4}/g, " "),
            /rpki: 2001:db8:100::\/48 from AS20473 \(private AS65001 removed upstream; PoPs lax, ams, sgp\): valid \(ROA 2001:db8:100::\/48 max \/48 AS20473\)/);
        assertFits(r);
    });

    it("validate says when secrets are placeholders", async () => {
        const r = await cli(["validate", "--config", path.join(REPO_ROOT, "Pulumi.prod.yaml")]);
        assert.match(r.out.replace(/\n {4}/g, " "), /anycast:bgpPassword is not set .* placeholder/);
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

    it("preview prints the resources as a tree by parent, with + markers and counts by type", async () => {
        const r = await cli(["preview", "--config", path.join(REPO_ROOT, "Pulumi.prod.yaml")]);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, /^ \+ {2}pulumi:pulumi:Stack +anycast-prod$/m);
        assert.match(r.out, /^ \+ +└─ anycast:index:AnycastNetwork +anycast$/m);
        assert.match(r.out, /^ \+ +├─ anycast:index:AnycastPoP +anycast-lax$/m);
        // The widest type and name are shown whole; the Plan column gives way to a legend.
        assert.match(r.out, /^ \+ .*─ cloudflare:index:AuthenticatedOriginPullsCertificate +anycast-front-door-pull-cert$/m);
        assert.match(r.out, /^ {4}\(\+ create, ~ update, \+- replace, - delete\)$/m);
        assert.doesNotMatch(r.out, /…/);
        // Key inputs go on the line below when they do not fit at the end of the resource's line.
        assert.match(r.out, /^ \+ +│ +│ +(├|└)─ vultr:index:Instance +anycast-lax-instance\n {4}( +│){3} +lax vc2-1c-1gb$/m);
        assert.match(r.out, /^ \+ .*cloudflare:index:DnsRecord +anycast-front-door-cname\n {4}( +│){2} +CNAME www\.example\.com -> anycast\.example\.com proxied$/m);
        assert.match(r.out, /^ {4}Type +\+ create$/m);
        assert.match(r.out, /^ {4}vultr:index:Instance +3$/m);
        assert.match(r.out, /^preview: \d+ to create$/m);
        assertFits(r);
    });
});

/** What reportError prints for an error, and its exit code. */
function report(e: unknown, command: string, argv: string[]): { code: number; out: string; err: string } {
    const err: string[] = [];
    const code = reportError(e, command, argv, { out: () => undefined, err: (s) => err.push(s) });
    return { code, out: "", err: err.join("\n") };
}

/** Every line of a command's output within 100 columns. */
function assertFits(r: { out: string; err: string }): void {
    for (const line of [...r.out.split("\n"), ...r.err.split("\n")]) {
        assert.ok(line.length <= 100, `${line.length} columns: ${line}`);
    }
}

/** No Node stack trace ("    at fn (file:line:col)") anywhere. */
function assertNoStack(r: { out: string; err: string }): void {
    assert.doesNotMatch(`${r.out}\n${r.err}`, /^\s+at .*(\(|:\d+:\d+)/m);
}

/**
 * A synthetic stack: a chain of `depth` components, each with a long-named child command, every
 * name `nameLength` long and starting with its own number (so a row can be found by its start).
 */
function deepPlan(depth: number, nameLength: number, version: string): SavedPlan {
    const resources: PlanResource[] = [];
    let parent: string | undefined;
    for (let d = 0; d < depth; d++) {
        const name = (tag: string) => `${tag}${d}-`.padEnd(nameLength, "x");
        resources.push({ urn: `urn:c${d}`, parent, type: `pulumi-anycast:index:VeryLongComponentTypeName${d}`, name: name("c"),
            custom: false, inputs: {}, secrets: {} });
        resources.push({ urn: `urn:r${d}`, parent: `urn:c${d}`, type: "command:remote:Command", name: name("r"), custom: true,
            inputs: { create: `echo ${"word ".repeat(30)}${version}`, [`key-${"k".repeat(nameLength)}`]: `${version}${"v".repeat(120)}` }, secrets: {} });
        parent = `urn:c${d}`;
    }
    return { format: PLAN_FORMAT, stack: "prod", notes: [], warnings: [], hosts: [], resources };
}

describe("anycast preview's tree", () => {
    it("fits 100 columns at any depth and name length, a row for every resource", () => {
        for (const depth of [1, 8, 20, 40]) {
            for (const nameLength of [8, 40, 70, 140]) {
                const [before, after] = [deepPlan(depth, nameLength, "a"), deepPlan(depth, nameLength, "b")];
                for (const [text, marker] of [[formatPreview(after, allCreated(after), false), "+"], [formatPreview(after, diffPlans(before, after), true), "~"]]) {
                    const lines = text.split("\n");
                    const where = `depth ${depth}, names of ${nameLength}`;
                    for (const line of lines) assert.ok(line.length <= 100, `${where}: ${line.length} columns: ${line}`);
                    // Cutting must not lose a resource: each has its row, its name's start visible.
                    for (const r of after.resources.filter((x) => x.custom)) {
                        assert.ok(lines.some((l) => l.startsWith(` ${marker}`) && l.includes(r.name.slice(0, 8))), `${where}: no row for ${r.name.slice(0, 8)}`);
                    }
                }
            }
        }
    });
});

describe("anycast's progress lines", () => {
    it("fit in 100 columns: a long line wraps with a hanging indent, a table row keeps its spacing", () => {
        const lines: string[] = [];
        const log = fitting((line) => lines.push(...line.split("\n")));
        const booting = "  booting PoP edge-box (edge-box) at 2001:db8:cafe::10: anycast-net.sh, nftables, WireGuard, BIRD, nginx, agent";
        const row = "  lax  lax_upstream6  2001:19f0:ffff::1  64515  Established  Up   3     1          none";
        log(booting);
        log(row);
        log("report\n  line two");
        assert.ok(booting.length > 100);
        assert.ok(lines.every((l) => l.length <= 100), lines.join("\n"));
        assert.match(lines[0], /^ {2}booting PoP edge-box/);
        assert.match(lines[1], /^ {4}\S/, "continued with a hanging indent");
        assert.equal(lines.slice(0, 2).map((l) => l.trim()).join(" "), booting.trim());
        assert.deepEqual(lines.slice(2), [row, "report", "  line two"]);
    });
});

describe("anycast --help", () => {
    it("-h, --help and --version exit 0; no arguments prints the help and exits 2", async () => {
        for (const args of [["--help"], ["-h"]]) {
            const r = await cli(args);
            assert.equal(r.code, 0);
            assert.match(r.out, /^Usage: anycast \[options\] \[command\]/);
            for (const c of ["validate", "render", "preview", "status", "lab", "bench"]) assert.match(r.out, new RegExp(`^  ${c} \\[options\\] +\\S`, "m"));
            assertFits(r);
        }
        const version = await cli(["--version"]);
        assert.equal(version.code, 0);
        assert.equal(version.out, JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")).version);
        for (const args of [[], ["--debug"]]) {
            const none = await cli(args);
            assert.equal(none.code, 2, `anycast ${args.join(" ")}`);
            assert.match(none.err, /^Usage: anycast/);
        }
    });

    it("each command's --help describes every option, with its default and examples", async () => {
        const commands = program({ out: () => undefined, err: () => undefined }, () => undefined).commands.filter((c) => c.name() !== "help");
        assert.deepEqual(commands.map((c) => c.name()), ["validate", "render", "preview", "status", "lab", "bench"]);
        for (const command of commands as Command[]) {
            for (const args of [[command.name(), "--help"], ["help", command.name()]]) {
                const r = await cli(args);
                assert.equal(r.code, 0, `${args.join(" ")}: ${r.err}`);
                const help = r.out.replace(/\n {20,}/g, " ");
                assert.match(help, new RegExp(`^Usage: anycast ${command.name()} \\[options\\]`));
                for (const option of command.options) {
                    const line = help.split("\n").find((l) => l.trimStart().startsWith(option.flags));
                    assert.ok(line, `${command.name()} --help lists ${option.flags}`);
                    assert.ok(line.includes(option.description.slice(0, 30)), `${option.flags} is described: ${line}`);
                    assert.match(line, /default|required/, `${command.name()} ${option.flags} says its default: ${line}`);
                }
                assert.match(help, /\nExamples:\n {2}anycast /);
                assert.match(help, /--debug/);
                assertFits(r);
            }
        }
    });

    it("lab takes --config --json --html --keep --repeats --down --edge --deploy --experiments --upgrade-from", async () => {
        const lab = program({ out: () => undefined, err: () => undefined }, () => undefined).commands.find((c) => c.name() === "lab")!;
        assert.deepEqual(lab.options.map((o) => o.long).sort(),
            ["--config", "--deploy", "--down", "--edge", "--experiments", "--html", "--json", "--keep", "--repeats", "--upgrade-from"].sort());
        const unknown = await cli(["lab", "--config", path.join(REPO_ROOT, "Pulumi.lab.yaml"), "--experiments", "crash,originOutge"]);
        assert.equal(unknown.code, 2);
        assert.match(unknown.err, /--experiments: originOutge is not an experiment: use some of crash,[\s\S]*originOutage, tunnelCut, originDown/);
        const edge = await cli(["lab", "--config", path.join(REPO_ROOT, "Pulumi.lab.yaml"), "--edge", "gobgp"]);
        assert.equal(edge.code, 2);
        assert.match(edge.err, /Allowed choices are frr, bird/);
        assert.deepEqual(lab.options.find((o) => o.long === "--edge")!.argChoices, EDGE_KINDS, "the lab's own list of edges");
    });

    it("the deploy rehearsal refuses the lab's options it cannot honour, each with its reason, before it boots anything", async () => {
        const prod = path.join(REPO_ROOT, "Pulumi.prod.yaml");
        for (const [option, reason] of [
            [["--repeats", "3"], /--repeats cannot be used with --deploy: the rehearsal runs its one experiment once/],
            [["--edge", "bird"], /--edge cannot be used with --deploy: the rehearsal's provider edge is BIRD/],
            [["--experiments", "crash"], /--experiments cannot be used with --deploy/],
            [["--html", "page.html"], /--html cannot be used with --deploy: the page draws the lab's report/],
        ] as const) {
            const r = await cli(["lab", "--deploy", "--config", prod, ...option]);
            assert.equal(r.code, 2, `${option.join(" ")}: ${r.err}`);
            assert.match(r.err, reason);
            assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
        }
        const both = await cli(["lab", "--deploy", "--config", prod, "--repeats", "2", "--edge", "bird"]);
        assert.match(both.err, /--repeats cannot[\s\S]*; --edge cannot/, "every refused option is named at once");
        // --down tears down the kept lab and kept rehearsals, and takes nothing else (before it touches anything).
        const down = await cli(["lab", "--down", "--deploy", "--config", prod, "--keep"]);
        assert.equal(down.code, 2, down.err);
        assert.match(down.err, /--down tears down and exits: it takes no --config, --keep/);
        const downHtml = await cli(["lab", "--down", "--html", "page.html"]);
        assert.equal(downHtml.code, 2, downHtml.err);
        assert.match(downHtml.err, /--down tears down and exits: it takes no --html/);
        const upgrade = await cli(["lab", "--config", prod, "--upgrade-from", "43c83ba"]);
        assert.equal(upgrade.code, 2);
        assert.match(upgrade.err, /--upgrade-from needs --deploy/);
        const unknown = await cli(["lab", "--deploy", "--config", prod, "--upgrade-from", "no-such-revision"]);
        assert.equal(unknown.code, 2);
        assert.match(unknown.err, /--upgrade-from no-such-revision: no such commit in /);
    });

    it("an unknown command or option gets a did-you-mean and exit 2", async () => {
        const command = await cli(["valdate"]);
        assert.equal(command.code, 2);
        assert.match(command.err, /unknown command 'valdate'\n\(Did you mean validate\?\)/);
        const help = await cli(["help", "valdate"]);
        assert.equal(help.code, 2);
        assert.match(help.err, /unknown command 'valdate'\n\(Did you mean validate\?\)/);
        const option = await cli(["validate", "--cofig", "Pulumi.prod.yaml"]);
        assert.equal(option.code, 2);
        assert.match(option.err, /unknown option '--cofig'\n\(Did you mean --config\?\)/);
        const repeats = await cli(["bench", "--repeats", "many"]);
        assert.equal(repeats.code, 2);
        assert.match(repeats.err, /--repeats <n>.* use a whole number/);
    });
});

describe("anycast errors are plain words, never a stack trace", () => {
    let dir: string;
    before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-cli-errors-")); });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const stackFile = (name: string, edit: (config: Record<string, any>) => void): string => {
        const config: Record<string, any> = {};
        for (const [k, v] of Object.entries(rawConfigOf("Pulumi.lab.yaml"))) config[k] = v;
        edit(config);
        const file = path.join(dir, name);
        fs.writeFileSync(file, stringify({ config: Object.fromEntries(Object.entries(config).map(([k, v]) => [`anycast:${k}`, v])) }));
        return file;
    };

    it("a config error names the key, the value and what is valid, once each", async () => {
        const file = stackFile("Pulumi.typos.yaml", (c) => {
            c.pops[0].prepend = 7;
            c.pops[1].bgp = { remoteAs: 64515 };
            c.pops[2].region = "xyz";
            c.frontdoor = c.frontDoor;
            c.bgpPassword = 'pa"ss';
        });
        const r = await cli(["validate", "--config", file]);
        assert.equal(r.code, 1);
        const lines = r.err.split("\n");
        assert.equal(lines[0], `anycast validate: ${file} has 5 errors:`);
        assert.ok(lines.includes("  anycast:pops[0].prepend: 7 is out of range: use 0 to 3 extra prepends"), r.err);
        assert.match(r.err, /^ {2}anycast:pops\[1\]\.bgp\.remoteAs: is not a known key: did you mean remoteAsn\?/m);
        assert.match(r.err, /^ {2}anycast:frontdoor: is not a known key: did you mean frontDoor\?/m);
        assert.match(r.err, /^ {2}anycast:pops\[2\]\.region: "xyz" is not a Vultr region id: use one of ams, /m);
        assert.equal(r.err.split("anycast:bgpPassword:").length - 1, 1, "the password error appears once");
        assert.ok(!r.err.includes('pa"ss'), "the password itself is not printed");
        assert.equal(lines[lines.length - 1], "validate: failed, 5 config errors");
        assertNoStack(r);
        assertFits(r);
    });

    it("a YAML error gives file:line:column, the line and a caret", async () => {
        const file = path.join(dir, "Pulumi.yamlerror.yaml");
        fs.writeFileSync(file, "config:\n  anycast:asn: 64500\n  anycast:prefix: \"2001:db8:100::/48\n");
        const r = await cli(["validate", "--config", file]);
        assert.equal(r.code, 1);
        // The parser notices the unclosed quote at the end of the file; the caret goes to the end
        // of the last line with text, the one to fix.
        assert.match(r.err, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3:37: invalid YAML: Missing closing "quote`));
        assert.match(r.err, /^ {2}3 \| {3}anycast:prefix: "2001:db8:100::\/48\n {4}\| {37}\^$/m);
        assert.match(r.err, /validate: failed, the stack file cannot be read$/);
        assertNoStack(r);
        assertFits(r);
    });

    it("an error of ours: its message and a hint, no stack; --debug adds the stack", () => {
        let bug: unknown;
        try {
            JSON.parse("{").urn;
        } catch (e) {
            bug = e;
        }
        for (const debug of [false, true]) {
            const r = report(bug, "preview", ["preview", "--config", "Pulumi.prod.yaml", ...(debug ? ["--debug"] : [])]);
            assert.equal(r.code, 1);
            assert.match(r.err, /^anycast preview: unexpected error:\n {2}Expected property name/m);
            assert.match(r.err, /\npreview: failed, an error in anycast itself$/);
            if (debug) assert.match(r.err, /^\s+at .*:\d+:\d+/m);
            else {
                assert.match(r.err, /run with --debug for the stack trace, and report it as a bug/);
                assertNoStack(r);
            }
        }
    });

    it("a failing lab: the lab's own error in full, no stack; --debug adds the stack", () => {
        const stderr = "bird: /etc/bird/bird.conf:12:3 syntax error\nbird: unexpected end of file";
        const failed = new CommandError(["ip", "netns", "exec", "ac-pop-lax", "bird", "-c", "bird.conf"], { code: 1, stdout: "", stderr });
        const r = report(failed, "lab", ["lab", "--config", "Pulumi.lab.yaml"]);
        assert.equal(r.code, 1);
        assert.equal(r.err, [
            "anycast lab: the lab failed:",
            "  command failed (exit 1): ip netns exec ac-pop-lax bird -c bird.conf",
            "  bird: /etc/bird/bird.conf:12:3 syntax error",
            "  bird: unexpected end of file",
            "lab: failed (--debug prints the stack trace)",
        ].join("\n"));
        const debug = report(failed, "lab", ["lab", "--config", "Pulumi.lab.yaml", "--debug"]);
        assert.match(debug.err, /^CommandError: command failed[^]*^\s+at .*:\d+:\d+/m);
        assert.match(debug.err, /\nlab: failed$/);
        const notRoot = report(new LabPreconditionError("the lab needs root (network namespaces, veth links, BIRD)"), "lab", ["lab"]);
        assert.equal(notRoot.code, 1);
        assert.match(notRoot.err, /^anycast lab: the lab needs root .*\nlab: failed$/);
        assertNoStack(notRoot);
        // A long tool output is cut to 20 lines, each within 100 columns.
        const noisy = report(new Error(Array.from({ length: 30 }, (_, i) => `line ${i} ${"x".repeat(150)}`).join("\n")), "lab", ["lab"]);
        assert.match(noisy.err, /\.\.\. 10 more lines \(--debug shows them all\)/);
        assertFits(noisy);
    });

    it("a config that is a directory is a usage mistake", async () => {
        const r = await cli(["validate", "--config", dir]);
        assert.equal(r.code, 2);
        assert.match(r.err.replace(/\n {4}/g, " "), /is not a file: give a Pulumi\.<stack>\.yaml file with --config/);
    });

    it("usage mistakes exit 2 with a pointer to the command's help", async () => {
        const r = await cli(["render", "--config", path.join(REPO_ROOT, "Pulumi.lab.yaml")]);
        assert.equal(r.code, 2);
        assert.match(r.err, /anycast render: --out <dir> is required/);
        assert.match(r.err, /\(anycast render --help lists its options\)/);
        const diff = await cli(["preview", "--config", path.join(REPO_ROOT, "Pulumi.lab.yaml"), "--diff", path.join(REPO_ROOT, "package.json")]);
        assert.equal(diff.code, 2);
        assert.match(diff.err, /is not an anycast-plan\/1 plan/);
        assertNoStack(r);
    });
});

describe("anycast preview --diff", () => {
    let dir: string;
    let before0: string;
    const config: Record<string, unknown> = {};
    const variant = (name: string, edit: (c: Record<string, any>) => void): string => {
        const c = structuredClone(config) as Record<string, any>;
        edit(c);
        const file = path.join(dir, name);
        fs.writeFileSync(file, stringify({ config: Object.fromEntries(Object.entries(c).map(([k, v]) => [`anycast:${k}`, v])) }));
        return file;
    };
    /** The resource lines with a change marker: [marker, type, name, plan]. */
    const changed = (out: string) => out.split("\n")
        .map((l) => /^ (\+-|\+|~|-) +[│├└─ ]*(\S+) +(\S+) +(\S+)/.exec(l))
        .filter((m): m is RegExpExecArray => !!m)
        .map((m) => ({ marker: m[1], type: m[2], name: m[3], plan: m[4] }));

    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "anycast-cli-diff-"));
        Object.assign(config, rawConfigOf("Pulumi.prod.yaml"), { bgpPassword: PASSWORD,
            sshPrivateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${SSH_SECRET}\n-----END OPENSSH PRIVATE KEY-----\n` });
        const file = variant("Pulumi.prod.yaml", () => undefined);
        // The plan to compare against comes from another process, as in real use: keys and
        // certificates the mock cloud makes differ between processes and must not show as changes.
        execFileSync(process.execPath, [path.join(REPO_ROOT, "bin", "anycast.js"), "render", "--config", file, "--out", path.join(dir, "out")],
            { stdio: "ignore", timeout: 600_000 });
        before0 = path.join(dir, "out", "plan.json");
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("the saved plan has each resource's URN, parent, type, name and redacted inputs", () => {
        const plan = JSON.parse(fs.readFileSync(before0, "utf8"));
        assert.equal(plan.format, "anycast-plan/1");
        const bird = plan.resources.find((r: { name: string }) => r.name === "anycast-ams-push-bird.conf");
        assert.match(bird.urn, /^urn:pulumi:prod::anycast::.*command:remote:Command::anycast-ams-push-bird\.conf$/);
        assert.ok(plan.resources.some((r: { urn: string; name: string }) => r.urn === bird.parent), "its parent is in the plan");
        assert.equal(bird.inputs.stdin, "[secret]");
        assert.match(bird.secrets.stdin, /^[0-9a-f]{24}$/);
        assert.ok(!fs.readFileSync(before0, "utf8").includes(PASSWORD));
    });

    it("an unchanged config shows no changes, across processes", async () => {
        const r = await cli(["preview", "--config", path.join(dir, "Pulumi.prod.yaml"), "--diff", before0]);
        assert.equal(r.code, 0, r.err);
        assert.deepEqual(changed(r.out), []);
        assert.match(r.out, /^preview: \d+ unchanged against /m);
    });

    it("one PoP's communities: exactly that PoP's bird.conf push is updated, nothing else", async () => {
        const file = variant("Pulumi.prod.yaml", (c) => { c.pops[1].communities = ["64600:6939"]; });
        const r = await cli(["preview", "--config", file, "--diff", before0, "--json", path.join(dir, "after.json")]);
        assert.equal(r.code, 0, r.err);
        assert.deepEqual(changed(r.out), [{ marker: "~", type: "command:remote:Command", name: "anycast-ams-push-bird.conf", plan: "update" }]);
        // bird.conf holds the BGP password: the diff names the changed line by number, never its text.
        assert.match(r.out, /^ +~  stdin: \[secret\] => \[secret\] \(new line \d+ of \d+\)$/m);
        assert.doesNotMatch(r.out, /64600|6939/);
        // A changed script or stdin runs the push again as an update (pulumi-command runs `create` on update).
        assert.doesNotMatch(r.out, /forces replacement|triggers/);
        assert.match(r.out, /^preview: 1 to update, \d+ unchanged against /m);
        assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "after.json"), "utf8")).format, "anycast-plan/1");
        assertFits(r);
    });

    it("an upgrade from 0.1.0 (the bash agent) replaces nothing: the agent's files are updates, its old settings a delete", async () => {
        // test/fixtures/plan-0.1.0-prod.json: `anycast render` of this config (Pulumi.prod.yaml with this
        // file's secrets) by commit 43c83ba, whose pushes carried `triggers: [sha256(content)]`.
        const old = path.join(REPO_ROOT, "test", "fixtures", "plan-0.1.0-prod.json");
        const r = await cli(["preview", "--config", path.join(dir, "Pulumi.prod.yaml"), "--diff", old]);
        assert.equal(r.code, 0, r.err);
        const changes = changed(r.out);
        assert.deepEqual(changes.filter((c) => c.marker === "+-"), [], "nothing is replaced");
        assert.ok(changes.every((c) => c.type === "command:remote:Command"), `only pushes change: ${JSON.stringify(changes)}`);
        for (const pop of ["lax", "ams", "sgp"]) {
            assert.ok(changes.some((c) => c.marker === "~" && c.name === `anycast-${pop}-push-anycast-health`), `${pop}: the agent is an update`);
            assert.ok(changes.some((c) => c.marker === "+" && c.name === `anycast-${pop}-push-anycast-health.json`), `${pop}: its settings are new`);
            assert.ok(changes.some((c) => c.marker === "-" && c.name === `anycast-${pop}-push-anycast-health.env`), `${pop}: the bash agent's settings go`);
            for (const exporter of ["bird-exporter.conf", "nginx-exporter.conf"]) {
                assert.ok(changes.some((c) => c.marker === "+" && c.name === `anycast-${pop}-push-${exporter}`), `${pop}: ${exporter} is new`);
            }
        }
        assert.doesNotMatch(r.out, /forces replacement/);
        // Per PoP: the agent's settings and the two exporters' drop-ins; on the origin, Prometheus
        // (its drop-in, rules and config: Pulumi.prod.yaml has anycast:monitoring).
        for (const file of ["prometheus.conf", "alerts.yml", "prometheus.yml"]) {
            assert.ok(changes.some((c) => c.marker === "+" && c.name === `anycast-origin-push-${file}`), `the origin's ${file} is new`);
        }
        assert.match(r.out, /^preview: 12 to create, \d+ to update, 3 to delete, \d+ unchanged against\b/m);
    });

    it("a new PoP: only additions, and pushes to existing hosts whose content changes; no instance replaced", async () => {
        const file = variant("Pulumi.prod.yaml", (c) => { c.pops.push({ name: "fra", region: "fra" }); });
        const r = await cli(["preview", "--config", file, "--diff", before0]);
        assert.equal(r.code, 0, r.err);
        const changes = changed(r.out);
        const created = changes.filter((c) => c.marker === "+");
        assert.ok(created.some((c) => c.type === "vultr:index:Instance" && c.name === "anycast-fra-instance"), r.out);
        assert.ok(created.every((c) => c.name.startsWith("anycast-fra") || c.name.includes("-fra")), JSON.stringify(created));
        for (const c of changes.filter((x) => x.marker !== "+")) {
            assert.equal(c.marker, "~", `nothing deleted or replaced: ${JSON.stringify(c)}`);
            assert.equal(c.type, "command:remote:Command", `only pushes change: ${JSON.stringify(c)}`);
            assert.match(c.name, /^anycast-(lax|ams|sgp|origin)-push-/);
        }
        assert.ok(changes.some((c) => c.name === "anycast-origin-push-wg0.conf"), "the origin's wg0.conf gains the new peer");
        assertFits(r);
    });
});