/**
 * The remote-command runner's scheduling (engine order, parallelism, failures) with a stand-in
 * executor, and the ssh command line it runs. Running over real SSH is in hosts.test.ts.
 */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkGraph, formatSteps, RemoteCommandSpec, runRemoteCommands, sshArgv, SshResult } from "../../lab/deploy/remote";

const conn = { host: "2001:db8::10", privateKey: "KEY" };

function spec(name: string, dependsOn: string[] = [], create = `echo ${name}`): RemoteCommandSpec {
    return { name, connection: conn, create, dependsOn };
}

/** An executor that records start/end order and fails the commands named in `fail`. */
function recorder(delays: Record<string, number>, fail: string[] = []) {
    const events: string[] = [];
    let inFlight = 0;
    let peak = 0;
    const execute = async (s: RemoteCommandSpec): Promise<SshResult> => {
        events.push(`start ${s.name}`);
        inFlight += 1;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, delays[s.name] ?? 10));
        inFlight -= 1;
        events.push(`end ${s.name}`);
        const failed = fail.includes(s.name);
        return { exitCode: failed ? 3 : 0, stdout: s.name, stderr: failed ? "boom" : "", dials: 1, dialFailed: false };
    };
    return { events, execute, peak: () => peak };
}

describe("remote command runner: scheduling", () => {
    it("starts a command only after all its dependencies, and independent ones together", async () => {
        const r = recorder({ a: 60, b: 20, c: 10, d: 10 });
        const report = await runRemoteCommands([spec("a"), spec("b"), spec("c", ["b"]), spec("d", ["a", "c"])], { execute: r.execute });
        assert.equal(report.ok, true);
        const at = (e: string) => r.events.indexOf(e);
        assert.ok(at("start a") < at("end b") && at("start b") < at("end a"), "a and b run at the same time");
        assert.ok(at("end b") < at("start c"));
        assert.ok(at("end a") < at("start d") && at("end c") < at("start d"));
        assert.equal(report.peakParallel, 2);
        assert.deepEqual(report.steps.map((s) => s.status), ["succeeded", "succeeded", "succeeded", "succeeded"]);
    });

    it("never has more than `parallel` commands in flight, starting ready ones in declaration order", async () => {
        const r = recorder({});
        const specs = ["a", "b", "c", "d", "e"].map((n) => spec(n));
        const report = await runRemoteCommands(specs, { execute: r.execute, parallel: 2 });
        assert.equal(r.peak(), 2);
        assert.equal(report.peakParallel, 2);
        assert.deepEqual(r.events.filter((e) => e.startsWith("start")), ["start a", "start b", "start c", "start d", "start e"]);
    });

    it("runs everything at once by default, as `pulumi up` does", async () => {
        const r = recorder({});
        await runRemoteCommands(["a", "b", "c", "d", "e", "f"].map((n) => spec(n)), { execute: r.execute });
        assert.equal(r.peak(), 6);
    });

    it("after a failure starts nothing new, lets running commands finish, and skips the rest", async () => {
        const bad = await runRemoteCommands([spec("a"), spec("slow"), spec("after-a", ["a"]), spec("after-slow", ["slow"])],
            { execute: recorder({ a: 10, slow: 80 }, ["a"]).execute });
        const byName = Object.fromEntries(bad.steps.map((s) => [s.name, s]));
        assert.equal(bad.ok, false);
        assert.equal(byName.a.status, "failed");
        assert.equal(byName.a.exitCode, 3);
        assert.equal(byName.a.stderr, "boom");
        assert.equal(byName.slow.status, "succeeded", "a command already running finishes");
        assert.equal(byName["after-a"].status, "skipped");
        assert.equal(byName["after-a"].skippedBecause, "a failed");
        assert.equal(byName["after-slow"].status, "skipped", "nothing new starts after a failure");
        assert.match(byName["after-slow"].skippedBecause ?? "", /stopped after a failed/);
    });

    it("with continueOnError runs independent commands but never a dependent of a failure", async () => {
        const r = recorder({ a: 10, slow: 50 }, ["a"]);
        const report = await runRemoteCommands([spec("a"), spec("slow"), spec("after-a", ["a"]), spec("after-after-a", ["after-a"]), spec("after-slow", ["slow"])],
            { execute: r.execute, continueOnError: true });
        const status = Object.fromEntries(report.steps.map((s) => [s.name, s.status]));
        assert.deepEqual(status, { a: "failed", slow: "succeeded", "after-a": "skipped", "after-after-a": "skipped", "after-slow": "succeeded" });
        assert.equal(report.steps.find((s) => s.name === "after-after-a")!.skippedBecause, "after-a skipped");
        assert.match(formatSteps(report).join("\n"), /a\s+failed .*exit 3: boom/);
    });

    it("rejects a graph it cannot run before running anything", async () => {
        assert.throws(() => checkGraph([spec("a"), spec("a")]), /two commands are named a/);
        assert.throws(() => checkGraph([spec("a", ["x"])]), /a depends on x, which is not in the list/);
        assert.throws(() => checkGraph([spec("a", ["c"]), spec("b", ["a"]), spec("c", ["b"])]), /dependency cycle: a -> c -> b -> a/);
        const r = recorder({});
        await assert.rejects(runRemoteCommands([spec("a", ["b"]), spec("b", ["a"])], { execute: r.execute }), /cycle/);
        assert.deepEqual(r.events, []);
    });
});

describe("remote command runner: the ssh command line", () => {
    it("sends create as one exec request, checks no host key, uses only the given key, no tty, no config", () => {
        const create = "bash -c 'set -eu\ncat > \"$new\"'";
        const argv = sshArgv({ ...conn, user: "deployer", port: 2222 }, "/tmp/k", create, { LANG: "C.UTF-8" });
        assert.deepEqual(argv.slice(-3), ["--", "2001:db8::10", create]);
        const opts = argv.join(" ");
        for (const o of ["-F none", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "IdentitiesOnly=yes",
            "IdentityAgent=none", "BatchMode=yes", "ConnectTimeout=15", "-i /tmp/k", "-T", "-p 2222", "-l deployer", "SetEnv=LANG=C.UTF-8"]) {
            assert.ok(opts.includes(o), `missing ${o}`);
        }
        const defaults = sshArgv(conn, "/tmp/k", "true").join(" ");
        assert.ok(defaults.includes("-p 22 ") && defaults.includes("-l root "), "the provider's defaults: port 22, user root");
    });
});
