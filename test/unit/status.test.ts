/**
 * `anycast status` without a network: the targets from a stack's real outputs (under mocks), the
 * rows from agent answers, the exit code, the JSON contract, and the command itself against a
 * stand-in `ssh` on PATH that answers as each host would (or fails as SSH, sudo or a missing
 * agent do), and the agents' answers recorded from real rehearsal hosts (test/fixtures/status).
 * Real SSH to real hosts is proven once, in the deploy rehearsal (live/rehearsal.test).
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type { AgentStatus } from "../../components/core/health/status";
import { main } from "../../cli/anycast";
import { formatStatus, networkStatus, OutputsError, statusExitCode, targetsFromOutputs } from "../../cli/network-status";
import { answerOf, sshArgs } from "../../cli/status";
import { runStack } from "../../harness/stackrun";
import { REPORT_WIDTH } from "../../lab/text";
import { rawConfigOf, TEST_SSH_PRIVATE_KEY } from "../helpers/fixtures";
import { tempDir, writeExecutable } from "../helpers/tools";

const T0 = Date.parse("2026-12-07T08:00:00Z");

/** An agent's status as `anycast-health status` prints it, announced and healthy unless changed. */
function agent(pop: string, change: Partial<AgentStatus> = {}): AgentStatus {
    return {
        pop, agent_version: "0.1.0", seq: 42, state: "announced", anycast_state: 2, healthy: true, proxy_ok: true, serving: true,
        direct_up: 1, best_us: 2100, fault: "none", primary: "origin",
        paths: [{ name: "origin", kind: "direct", up: true, role: "primary", rtt_us: 2100, failed_of_16: 0 },
            { name: "via ams", kind: "relay", up: true, role: "backup", rtt_us: 9400, failed_of_16: 0 }],
        consecutive_good: 9, consecutive_bad: 0, withdrawals_last_hour: 0, held_until: null,
        drain_requested: false, drained_by_config: false, drained_by_operator: false,
        bird: { reachable: true, applied: true, sessions: [{ name: `${pop}_upstream6`, state: "up", bgp_state: "Established", since: "2026-12-07 07:00:01.123", info: "Established" }] },
        nginx: { reloaded: true }, since: T0 - 3_600_000, last_reason: "3 good checks", updated: T0, age_ms: 40, tick_ms: 3, started: T0 - 7_200_000,
        public_status_url: "http://[2001:db8::1]:8081/status", peers: [],
        ...change,
    };
}

const targets = {
    pops: [
        { name: "lax", ssh: { host: "2001:db8:1::10", port: 22, user: "root" }, drained: false },
        { name: "ams", ssh: { host: "2001:db8:2::10", port: 22, user: "root" }, drained: true },
        { name: "sgp", ssh: { host: "2001:db8:3::10", port: 2222, user: "deployer" }, drained: false },
    ],
    origins: ["origin"],
};

describe("anycast status: the stack's outputs", () => {
    it("takes each PoP's SSH login and drain from the outputs the stack program exports", async () => {
        const values = { ...rawConfigOf("Pulumi.prod.yaml"), bgpPassword: "test-password", sshPrivateKey: TEST_SSH_PRIVATE_KEY } as Record<string, any>;
        values.pops[1].drained = true;
        values.pops.push({ name: "box", host: { address: "2001:db8:cafe::10", user: "deployer", port: 2222 },
            bgp: { neighbor: "2001:db8:cafe::1", remoteAsn: 64511 } });
        const run = await runStack({ values });
        const t = targetsFromOutputs(JSON.parse(JSON.stringify(run.outputs)));
        assert.deepEqual(t.pops.map((p) => [p.name, p.ssh.user, p.ssh.port, p.drained]),
            [["lax", "root", 22, false], ["ams", "root", 22, true], ["sgp", "root", 22, false], ["box", "deployer", 2222, false]]);
        assert.equal(t.pops[3].ssh.host, "2001:db8:cafe::10");
        assert.match(t.pops[0].ssh.host, /:/, "IPv6, the deploy's default family");
        assert.deepEqual(t.origins, ["origin"]);
    });

    it("says what to give when the outputs are not a stack's", () => {
        assert.throws(() => targetsFromOutputs([]), (e: Error) => e instanceof OutputsError && /not a JSON object: give the output of pulumi stack output --json --show-secrets/.test(e.message));
        assert.throws(() => targetsFromOutputs({ dns: {} }), /no "pops" object/);
        assert.throws(() => targetsFromOutputs({ pops: { lax: { ipv6: "2001:db8::1" } } }), /pops\.lax has no ssh login .* older pulumi-anycast; run pulumi up with this version/);
    });
});

describe("anycast status: rows and verdict", () => {
    it("marks each PoP against what it should be, with its session, paths and the origins they reach", () => {
        const answers = new Map([
            ["lax", { ok: true as const, status: agent("lax") }],
            ["ams", { ok: true as const, status: agent("ams", { state: "withdrawn", anycast_state: 0, drained_by_config: true, drain_requested: true, last_reason: "drained" }) }],
            ["sgp", { ok: true as const, status: agent("sgp", { paths: [{ name: "origin", kind: "direct", up: false, role: "down", rtt_us: 0, failed_of_16: 16, last_error: "ETIMEDOUT" },
                { name: "via lax", kind: "relay", up: true, role: "primary", rtt_us: 150_000, failed_of_16: 0 }] }) }],
        ]);
        const s = networkStatus(targets, answers);
        assert.equal(s.ok, true);
        assert.equal(statusExitCode(s), 0);
        const [lax, ams, sgp] = s.pops;
        assert.deepEqual(lax.session, { name: "lax_upstream6", state: "Established", since: "2026-12-07 07:00:01.123" });
        assert.deepEqual(lax.paths[0], { name: "origin", kind: "direct", up: true, role: "primary", rttMs: 2.1 });
        assert.equal(lax.paths[1].via, "ams");
        assert.equal(lax.agent?.since, "2026-12-07T07:00:00Z");
        assert.deepEqual([ams.state, ams.expected, ams.drained, ams.drainedBy, ams.ok], ["withdrawn", "drained", true, ["config"], true]);
        assert.equal(sgp.paths[0].lastError, "ETIMEDOUT");
        assert.deepEqual(s.origins, [{ name: "origin", direct: ["lax", "ams"], relayed: ["sgp via lax"] }]);
        const text = formatStatus(s);
        assert.ok(text.every((l) => l.length <= REPORT_WIDTH), text.join("\n"));
        assert.match(text.join("\n"), /origin origin: reached by lax, ams, sgp via lax/);
        assert.equal(text.at(-1), "status: ok, 3 PoPs as they should be");
    });

    it("fails when a PoP that should be announced is not: held down, stale, or not reachable, each with the reason", () => {
        const held = agent("lax", { state: "held-down", anycast_state: 0, held_until: T0 + 600_000, withdrawals_last_hour: 3 });
        const s = networkStatus(targets, new Map([
            ["lax", { ok: true as const, status: held }],
            ["ams", { ok: true as const, status: agent("ams") }],
            ["sgp", { ok: false as const, reason: "ssh deployer@2001:db8:3::10 port 2222: connect to host 2001:db8:3::10 port 2222: Connection timed out" }],
        ]));
        assert.equal(s.ok, false);
        assert.equal(statusExitCode(s), 1);
        assert.match(s.pops[0].why, /^held down by flap damping until 2026-12-07T08:10:00Z \(3 withdrawals in the last hour\)/);
        assert.equal(s.pops[1].ok, false, "a PoP the config drains is not as it should be while it still announces");
        assert.deepEqual([s.pops[2].state, s.pops[2].reachable, s.pops[2].session], ["unknown", false, null]);
        const text = formatStatus(s).join("\n");
        assert.match(text, /FAIL sgp: unknown: ssh deployer@2001:db8:3::10 port 2222: connect to host/);
        assert.match(text, /status: 3 of 3 PoPs not as they should be \(lax, ams, sgp\)/);
        const stale = networkStatus({ pops: [targets.pops[0]], origins: [] }, new Map([["lax", { ok: true as const, status: agent("lax"), stale: "the agent does not answer" }]]));
        assert.equal(stale.ok, false);
        assert.match(stale.pops[0].why, /the agent does not answer/);
    });

    it("reads what ssh, sudo and the agent answer", () => {
        const t = targets.pops[2].ssh;
        assert.deepEqual(answerOf(255, "", "ssh: connect to host 2001:db8:3::10 port 2222: No route to host\n", t),
            { ok: false, reason: "ssh deployer@2001:db8:3::10 port 2222: connect to host 2001:db8:3::10 port 2222: No route to host" });
        assert.match((answerOf(1, "", "sudo: a password is required\n", t) as { reason: string }).reason, /^sudo -n as deployer failed \(sudo: a password is required\)/);
        assert.match((answerOf(127, "", "sh: 1: anycast-health: not found\n", t) as { reason: string }).reason, /anycast-health is not installed/);
        assert.match((answerOf(0, "not json", "", t) as { reason: string }).reason, /printed no JSON/);
        assert.match((answerOf(0, JSON.stringify({ pop: "sgp", state: "announced" }), "", t) as { reason: string }).reason, /has no paths, bird, since, agent_version: an agent older/);
        const stale = answerOf(3, JSON.stringify(agent("sgp")), "anycast-health: the agent does not answer on port 8081 (ECONNREFUSED); its last status, from /run/x:\n", t);
        assert.ok(stale.ok && /^the agent does not answer: its last status file/.test(stale.stale ?? ""));
    });

    it("logs in as the pushes do: the stack's user and port, the given key, sudo -n unless root", () => {
        const root = sshArgs(targets.pops[0].ssh, ["anycast-health", "status"], { timeoutSeconds: 5 });
        assert.deepEqual(root.slice(-6), ["-l", "root", "--", "2001:db8:1::10", "anycast-health", "status"]);
        assert.ok(root.includes("BatchMode=yes") && root.includes("ConnectTimeout=5") && !root.includes("-i"));
        const user = sshArgs(targets.pops[2].ssh, ["anycast-health", "status"], { timeoutSeconds: 5, identity: "/k" });
        assert.deepEqual(user.slice(-7), ["deployer", "--", "2001:db8:3::10", "sudo", "-n", "anycast-health", "status"]);
        assert.deepEqual(user.slice(user.indexOf("-i"), user.indexOf("-i") + 4), ["-i", "/k", "-o", "IdentitiesOnly=yes"]);
        assert.equal(user[user.indexOf("-p") + 1], "2222");
    });
});

describe("anycast status: the command, against a stand-in ssh", () => {
    const dir = tempDir("status");
    const outputs = path.join(dir, "outputs.json");
    const calls = path.join(dir, "calls.log");
    let savedPath: string | undefined;
    before(() => {
        // Answers as each host would: lax and ams healthy, sgp unreachable.
        fs.writeFileSync(path.join(dir, "lax.json"), JSON.stringify(agent("lax")));
        fs.writeFileSync(path.join(dir, "ams.json"), JSON.stringify(agent("ams", { state: "withdrawn", anycast_state: 0, drained_by_config: true })));
        writeExecutable(dir, "ssh", `#!/bin/sh
echo "$*" >> ${calls}
case "$*" in
  *2001:db8:1::10*) cat ${dir}/lax.json ;;
  *2001:db8:2::10*) cat ${dir}/ams.json ;;
  *) echo "ssh: connect to host 2001:db8:3::10 port 2222: Connection refused" >&2; exit 255 ;;
esac
`);
        fs.writeFileSync(outputs, JSON.stringify({
            pops: Object.fromEntries(targets.pops.map((p) => [p.name, { ipv6: p.ssh.host, drained: p.drained, ssh: p.ssh }])),
            origins: { origin: { ipv6: "2001:db8:ffff::10" } },
        }));
        savedPath = process.env.PATH;
        process.env.PATH = `${dir}:${process.env.PATH}`;
    });
    after(() => {
        process.env.PATH = savedPath;
        fs.rmSync(dir, { recursive: true, force: true });
    });

    async function cli(args: string[]) {
        const out: string[] = [];
        const err: string[] = [];
        const code = await main(args, (s) => out.push(s), (s) => err.push(s));
        return { code, out: out.join("\n"), err: err.join("\n") };
    }

    it("prints every PoP, the unreachable one as a row with the reason, and exits 1", async () => {
        fs.rmSync(calls, { force: true });
        const r = await cli(["status", "--outputs", outputs, "--identity", outputs]);
        r.out = r.out.replace(/\n {7}/g, " ");
        assert.equal(r.code, 1, r.out + r.err);
        assert.match(r.out, /^ *lax +announced +announced +Established/m);
        assert.match(r.out, /^ *ams +withdrawn +drained/m);
        assert.match(r.out, /^ok {3}ams: withdrawn: drained by the config: /m);
        assert.match(r.out, /^FAIL sgp: unknown: ssh deployer@2001:db8:3::10 port 2222: connect to host .* Connection refused$/m);
        assert.doesNotMatch(r.out + r.err, /\n\s+at /, "no stack trace");
        const lines = fs.readFileSync(calls, "utf8").trim().split("\n");
        assert.equal(lines.length, 3);
        assert.ok(lines.every((l) => l.includes(`-i ${outputs}`)));
        assert.match(lines.find((l) => l.includes("2001:db8:3::10"))!, /-p 2222 -l deployer -- 2001:db8:3::10 sudo -n anycast-health status$/);
    });

    it("gives the JSON contract with --json", async () => {
        const r = await cli(["status", "--outputs", outputs, "--json"]);
        assert.equal(r.code, 1);
        const j = JSON.parse(r.out) as { pops: Array<Record<string, any>>; origins: Array<Record<string, any>> };
        assert.deepEqual(j.pops.map((p) => [p.name, p.state, p.drained, p.session?.state ?? null]),
            [["lax", "announced", false, "Established"], ["ams", "withdrawn", true, "Established"], ["sgp", "unknown", false, null]]);
        assert.ok(Array.isArray(j.pops[0].paths) && typeof j.pops[0].session.since === "string");
        assert.deepEqual(j.origins.map((o) => o.name), ["origin"]);
    });

    it("refuses a missing or unreadable outputs file with what to run", async () => {
        const none = await cli(["status"]);
        none.err = none.err.replace(/\n {4}/g, " ");
        assert.equal(none.code, 2);
        assert.match(none.err, /--outputs <file> is required: pulumi stack output --json --show-secrets > outputs.json/);
        const missing = await cli(["status", "--outputs", path.join(dir, "nope.json")]);
        missing.err = missing.err.replace(/\n {4}/g, " ");
        assert.equal(missing.code, 2);
        assert.match(missing.err, /does not exist: write it with pulumi stack output --json --show-secrets/);
        fs.writeFileSync(path.join(dir, "bad.json"), "{");
        assert.match((await cli(["status", "--outputs", path.join(dir, "bad.json")])).err, /are not JSON/);
    });
});

describe("anycast status on answers recorded from real hosts (test/fixtures/status)", () => {
    const FIXTURES = path.join(__dirname, "..", "..", "..", "test", "fixtures", "status");
    const read = (f: string) => fs.readFileSync(path.join(FIXTURES, f), "utf8");
    const outputs = JSON.parse(read("outputs.json")) as Record<string, any>;

    it("a drained PoP and an announced one, as the deployed agents print them: rows, table, JSON, exit 0", () => {
        const t = targetsFromOutputs(outputs);
        assert.deepEqual(t.pops.map((p) => [p.name, p.drained]), [["lax", false], ["ams", true]]);
        const answers = new Map(t.pops.map((p) => [p.name, answerOf(0, read(p.name === "ams" ? "ams-drained.json" : "lax-announced.json"), "", p.ssh)]));
        const s = networkStatus(t, answers);
        assert.equal(statusExitCode(s), 0);
        const [lax, ams] = s.pops;
        assert.deepEqual([lax.state, lax.expected, lax.ok, lax.session?.state], ["announced", "announced", true, "Established"]);
        assert.deepEqual([ams.state, ams.expected, ams.ok, ams.drained, ams.drainedBy, ams.session?.state], ["withdrawn", "drained", true, true, ["config"], "Established"]);
        assert.deepEqual(ams.paths.map((p) => [p.name, p.up]), [["origin", true], ["via lax", true]]);
        assert.deepEqual(s.origins.map((o) => [o.name, [...o.direct].sort(), o.relayed]), [["origin", ["ams", "lax"], []]]);
        const text = formatStatus(s);
        assert.ok(text.every((l) => l.length <= REPORT_WIDTH), text.join("\n"));
        assert.match(text.join("\n"), /ams: withdrawn: drained by the config/);
        assert.equal(text[text.length - 1], "status: ok, 2 PoPs as they should be");
    });

    it("the same drained agent where the config says announced: not ok, exit 1; an agent announcing again: ok", () => {
        const undrained = structuredClone(outputs);
        undrained.pops.ams.drained = false;
        const t = targetsFromOutputs(undrained);
        const drainedAgent = new Map(t.pops.map((p) => [p.name, answerOf(0, read(p.name === "ams" ? "ams-drained.json" : "lax-announced.json"), "", p.ssh)]));
        const wrong = networkStatus(t, drainedAgent);
        assert.equal(statusExitCode(wrong), 1);
        assert.deepEqual(wrong.pops.map((p) => p.ok), [true, false]);
        const back = new Map(t.pops.map((p) => [p.name, answerOf(0, read(`${p.name}-announced.json`), "", p.ssh)]));
        assert.equal(statusExitCode(networkStatus(t, back)), 0);
    });
});
