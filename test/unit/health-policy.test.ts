/**
 * The health agent's decisions (components/core/health/policy.ts) on a fake clock: traces of
 * observations over time and the actions they must produce, in-process, a few milliseconds each.
 * A simulated BIRD obeys the agent's enable/disable actions (and can be restarted, reconfigured
 * or unreachable), so each trace also checks what BIRD would announce, round by round.
 *
 * Every bound here is a count of rounds or the policy's own timing functions on the fake clock:
 * nothing depends on how fast the machine runs the test. The simulation is test/helpers/agent-sim.ts.
 */
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { Action } from "../../components/core/health/agent-state";
import { initialState, meshAsks, publicFetches, statusOf, step, wantedProtocols } from "../../components/core/health/policy";
import { confirmMs, isolationMs, isolationRounds, quietAskMs, recoverMs, roundMs, viewMaxAgeMs } from "../../components/core/health/timing";
import { agentSettings } from "../../components/core/render/health";
import { labSpec, popRenderInput } from "../helpers/fixtures";
import { announced, OK, peer, prodLax, REFUSED, SILENT, Sim, TIMED_OUT } from "../helpers/agent-sim";

describe("health policy: rise, fall and what BIRD is told", () => {
    it("after a boot it starts withdrawn and announces after `rise` good rounds: state file 2, then the plain routes' protocol enabled", () => {
        const sim = new Sim(prodLax());
        assert.equal(sim.state.state, "withdrawn");
        assert.equal(sim.until(["announced"], 10), 3);
        const last = sim.actions.at(-1)!;
        assert.deepEqual(last.filter((a) => a.kind === "state-file"), [{ kind: "state-file", value: 2 }]);
        assert.deepEqual(last.filter((a) => a.kind === "bird"), [{ kind: "bird", enable: ["lax_anycast6"], disable: [] }]);
        assert.ok(last.findIndex((a) => a.kind === "state-file") < last.findIndex((a) => a.kind === "bird"), "the state file first: what a BIRD restart reads");
        assert.equal(sim.announcing, "plain");
    });

    it("a steady healthy PoP does nothing: no BIRD command, no file written, round after round", () => {
        const sim = announced();
        sim.rounds(50);
        const acted = sim.actions.slice(-50).flat().filter((a) => a.kind !== "log");
        assert.deepEqual(acted, []);
        assert.equal(sim.state.birdApplied, true);
    });

    it("the proxy failing withdraws after `fall` rounds, and a recovered proxy re-announces after `rise`", () => {
        const sim = announced();
        sim.world.proxy = { ok: false, rttUs: 0, detail: "connect ECONNREFUSED" };
        assert.equal(sim.until(["withdrawn"], 10), 2);
        assert.equal(sim.state.fault, "proxy");
        assert.equal(sim.announcing, "nothing");
        assert.match(sim.state.reason, /proxy check failed \(connect ECONNREFUSED\)/);
        sim.world.proxy = OK;
        assert.equal(sim.until(["announced"], 10), 3);
        assert.equal(sim.announcing, "plain");
    });

    it("one bad round between good ones changes nothing (hysteresis)", () => {
        const sim = announced();
        for (let i = 0; i < 20; i++) {
            sim.world.proxy = i % 2 === 0 ? { ok: false, rttUs: 0, detail: "timeout" } : OK;
            sim.round();
            assert.equal(sim.state.state, "announced", `round ${i}`);
        }
    });
});

describe("health policy: origin faults, local or global", () => {
    it("origins lost from this PoP only (the others announced and reaching one over the mesh): withdraws once a peer's word counts", () => {
        const settings = prodLax((s) => { s.relay = false; });
        const sim = announced(settings);
        sim.world.origins = [REFUSED];
        const lostAt = sim.now + settings.intervalMs;
        const rounds = sim.until(["withdrawn"], 100);
        // Not before a peer sharing the fault would have failed its own checks (confirmMs), then `fall` bad rounds.
        const at = lostAt + (rounds - 1) * settings.intervalMs;
        assert.ok(at - lostAt >= confirmMs(settings), `withdrew ${at - lostAt} ms after the loss, before confirmMs ${confirmMs(settings)}`);
        assert.ok(rounds <= sim.roundsIn(confirmMs(settings)) + settings.fall + 1, `${rounds} rounds`);
        assert.equal(sim.state.fault, "local");
        assert.match(sim.state.reason, /no origin reachable from here \(origin: connect EHOSTUNREACH\) while ams is announced and reaches one/);
        assert.equal(sim.announcing, "nothing");
        // nginx was told at once that no path works (its 503), before the withdrawal.
        const upstreams = sim.actions.flat().filter((a): a is Extract<Action, { kind: "upstreams" }> => a.kind === "upstreams");
        assert.match(upstreams.at(-1)!.text, /^upstream origin \{\n.*\n    server \S+:8080 max_fails=1 fail_timeout=\d+s down;\s+# origin\n/m);
    });

    it("every PoP loses the origins (a global outage): every PoP stays announced and nginx answers the 503", () => {
        const sim = announced(prodLax((s) => { s.relay = false; }));
        sim.world.origins = [REFUSED];
        sim.world.mesh = sim.settings.peers.map((p) => peer(p.name, { directUp: 0, bestUs: -1 }));
        sim.rounds(sim.roundsIn(10 * confirmMs(sim.settings)));
        assert.equal(sim.state.state, "announced");
        assert.equal(sim.state.fault, "global");
        assert.equal(sim.announcing, "plain");
        assert.ok(sim.log.some((l) => /nginx: no path works: every request gets the 503/.test(l)), sim.log.join("\n"));
    });

    it("global outages one after another, more than maxWithdrawalsPerHour within a minute: no withdrawal, so no damping", () => {
        const sim = announced(prodLax((s) => { s.relay = false; }));
        for (let i = 0; i < sim.settings.maxWithdrawalsPerHour + 2; i++) {
            sim.world.origins = [REFUSED];
            sim.world.mesh = sim.settings.peers.map((p) => peer(p.name, { directUp: 0, bestUs: -1 }));
            sim.rounds(sim.roundsIn(2 * confirmMs(sim.settings)));
            assert.equal(sim.state.state, "announced", `outage ${i + 1}: ${sim.log.join("\n")}`);
            assert.equal(sim.state.fault, "global", `outage ${i + 1}`);
            // The origin is back, and the other PoPs see it a round sooner (their rounds are out of phase): theirs say so at once.
            sim.world.origins = [OK];
            sim.world.mesh = sim.settings.peers.map((p) => peer(p.name));
            sim.rounds(sim.roundsIn(confirmMs(sim.settings)));
            assert.equal(sim.state.fault, "none", `after outage ${i + 1}: ${sim.state.reason}`);
            assert.equal(sim.state.state, "announced", `after outage ${i + 1}: ${sim.log.join("\n")}`);
        }
        assert.ok(sim.now < 60_000, `the outages took ${sim.now} ms of the fake clock, not within a minute`);
        assert.deepEqual(sim.state.withdrawals, []);
        assert.equal(sim.announcing, "plain");
    });

    it("a global outage that ends for the others but not here: withdrawn once they have reached an origin for recoverMs", () => {
        const sim = announced(prodLax((s) => { s.relay = false; }));
        sim.world.origins = [REFUSED];
        sim.world.mesh = sim.settings.peers.map((p) => peer(p.name, { directUp: 0, bestUs: -1 }));
        sim.rounds(sim.roundsIn(2 * confirmMs(sim.settings)));
        assert.equal(sim.state.fault, "global");
        const back = sim.now;
        sim.world.mesh = sim.settings.peers.map((p) => peer(p.name));
        sim.until(["withdrawn"], sim.roundsIn(recoverMs(sim.settings)) + sim.settings.fall + 2);
        assert.ok(sim.now - back >= recoverMs(sim.settings), `withdrawn ${sim.now - back} ms after the others were back, before recoverMs`);
        assert.match(sim.state.reason, /while \w+ is announced and reaches one/);
    });

    it("a lone PoP has nobody to ask: an origin fault is global, it stays announced", () => {
        const sim = announced(prodLax((s) => { s.peers = []; s.relay = false; }));
        sim.world.origins = [REFUSED];
        sim.world.mesh = [];
        sim.rounds(100);
        assert.equal(sim.state.state, "announced");
        assert.equal(sim.state.fault, "global");
    });

    it("a stale peer view does not count: a peer that answers with a view older than viewMaxAgeMs is no witness", () => {
        const sim = announced(prodLax((s) => { s.relay = false; }));
        sim.world.origins = [REFUSED];
        sim.world.mesh = sim.settings.peers.map((p) => peer(p.name, { ageMs: viewMaxAgeMs(sim.settings) + 1 }));
        sim.rounds(sim.roundsIn(5 * confirmMs(sim.settings)));
        assert.equal(sim.state.state, "announced");
        assert.equal(sim.state.fault, "global");
    });

    it("a peer that is withdrawn, or whose proxy is down, takes over nothing", () => {
        const sim = announced(prodLax((s) => { s.relay = false; }));
        sim.world.origins = [REFUSED];
        sim.world.mesh = [peer("ams", { state: "withdrawn" }), peer("sgp", { state: "held-down" })];
        sim.rounds(sim.roundsIn(5 * confirmMs(sim.settings)));
        assert.equal(sim.state.state, "announced");
    });

    it("cut off from the mesh (wg0 down): the other PoPs asked over their public addresses, withdrawn within isolationRounds", () => {
        const settings = prodLax();
        const sim = announced(settings);
        // Their mesh answers told it where their public status is.
        sim.world.mesh = settings.peers.map((p) => peer(p.name, { publicStatusUrl: `http://[2001:db8:ff12::10]:9180/status` }));
        // Until the next quiet ask has brought those answers in.
        sim.rounds(sim.roundsIn(quietAskMs(settings)) + 1);
        sim.world.origins = [REFUSED];
        sim.world.mesh = settings.peers.map(() => SILENT);
        const rounds = sim.until(["withdrawn"], 100);
        assert.ok(rounds <= isolationRounds(settings), `${rounds} rounds, isolationRounds ${isolationRounds(settings)}`);
        assert.match(sim.state.reason, /asked over its public address: this PoP is cut off from the mesh/);
        assert.ok(publicFetches(sim.state).length > 0, "it keeps asking over the public addresses while the mesh is silent");
    });

    it("in a hub mesh a public witness counts only after confirmMs: the hub's own fault cuts every PoP off alike", () => {
        const settings = prodLax((s) => { s.meshTopology = "hub"; s.relay = false; });
        const sim = announced(settings);
        sim.world.mesh = settings.peers.map((p) => peer(p.name, { publicStatusUrl: `http://[2001:db8:ff12::10]:9180/status` }));
        // Until the next quiet ask has brought those answers in.
        sim.rounds(sim.roundsIn(quietAskMs(settings)) + 1);
        sim.world.origins = [REFUSED];
        sim.world.mesh = settings.peers.map(() => SILENT);
        const lostAt = sim.now + settings.intervalMs;
        sim.until(["withdrawn"], 200);
        assert.ok(sim.now - lostAt >= confirmMs(settings), `withdrew ${sim.now - lostAt} ms after, confirmMs ${confirmMs(settings)}`);
    });

    it("cut off from everyone (mesh and public) in a full mesh: withdrawn after isolationMs when a peer was taking over just before", () => {
        const settings = prodLax();
        const sim = announced(settings);
        sim.world.origins = [REFUSED];
        sim.world.mesh = settings.peers.map(() => SILENT);
        sim.world.public = settings.peers.map(() => SILENT);
        const lostAt = sim.now + settings.intervalMs;
        sim.until(["withdrawn"], 200);
        assert.ok(sim.now - lostAt >= isolationMs(settings), `withdrew ${sim.now - lostAt} ms after, isolationMs ${isolationMs(settings)}`);
        assert.match(sim.state.reason, /before this PoP lost every other PoP/);
    });

    it("cut off from everyone with no recent word from a peer: stays announced (nothing says the others serve)", () => {
        const settings = prodLax();
        const sim = new Sim(settings);
        sim.world.mesh = settings.peers.map(() => SILENT);
        sim.world.public = settings.peers.map(() => SILENT);
        sim.until(["announced"], 10);
        sim.world.origins = [REFUSED];
        sim.rounds(sim.roundsIn(5 * isolationMs(settings)));
        assert.equal(sim.state.state, "announced");
        assert.equal(sim.state.fault, "global");
    });
});

describe("health policy: asking the other PoPs", () => {
    for (const [name, settings] of [["prod", prodLax()], ["lab", agentSettings(popRenderInput(labSpec(), "lax"))]] as const) {
        it(`a quiet PoP asks each other PoP every quietAskMs, not every round; from its first failed check on, every round (${name} settings)`, () => {
            const sim = announced(settings);
            const peers = settings.peers.map((_, j) => j);
            const quietRounds = Math.ceil(quietAskMs(settings) / settings.intervalMs);
            assert.ok(quietRounds >= 2, `quietAskMs ${quietAskMs(settings)} ms at an interval of ${settings.intervalMs} ms`);
            const n = 10 * quietRounds;
            sim.rounds(n);
            for (const j of peers) {
                const asked = sim.meshAsked.slice(-n).filter((a) => a.includes(j)).length;
                assert.ok(asked >= 9 && asked <= 11, `peer ${j} asked ${asked} times in ${n} quiet rounds`);
            }
            // Quiet asks keep every view fresh: a fault here finds them counting.
            assert.ok(quietAskMs(settings) * 2 <= viewMaxAgeMs(settings));
            sim.world.origins = settings.origins.map(() => REFUSED);
            sim.round();
            const from = sim.meshAsked.length;
            sim.rounds(settings.fall + 2);
            for (const asked of sim.meshAsked.slice(from)) assert.deepEqual(asked, peers, "every peer, every round, while a check fails");
            // Healthy again: quiet again once the paths are back.
            sim.world.origins = settings.origins.map(() => OK);
            sim.until(["announced"], 100);
            sim.rounds(settings.rise + 1);
            const after = sim.meshAsked.length;
            sim.rounds(n);
            const total = sim.meshAsked.slice(after).reduce((k, a) => k + a.length, 0);
            assert.ok(total <= 11 * peers.length, `${total} asks in ${n} healthy rounds`);
        });
    }

    for (const [name, settings] of [["prod", prodLax()], ["lab", agentSettings(popRenderInput(labSpec(), "lax"))]] as const) it(`cut off from everyone just before its next quiet ask: the last views, a quietAskMs old, still witness (link loss, ${name} settings)`, () => {
        const sim = announced(settings);
        sim.rounds(20);
        // Run to the round right before the next quiet ask: the views are as old as they get.
        while (!meshAsks(sim.state, sim.now + 2 * settings.intervalMs, settings).length) sim.round();
        // A cut link drops packets: every check hangs until its timeout, so each failing round lasts
        // timeoutMs and the PoP stops serving (fall rounds) later than the views' age alone says.
        sim.world.origins = settings.origins.map(() => TIMED_OUT);
        sim.world.mesh = settings.peers.map(() => SILENT);
        sim.world.public = settings.peers.map(() => SILENT);
        const lostAt = sim.now;
        sim.until(["withdrawn"], sim.roundsIn(isolationMs(settings)) + settings.fall + 4);
        assert.match(sim.state.reason, /before this PoP lost every other PoP/);
        assert.ok(sim.now - lostAt >= isolationMs(settings), `withdrew ${sim.now - lostAt} ms after, isolationMs ${isolationMs(settings)}`);
    });

    it("a peer not asked in a round keeps its view, its relay path and its mesh state: no answer is not a failure", () => {
        const settings = prodLax();
        const sim = announced(settings);
        sim.rounds(20);
        const before = structuredClone(sim.state.peers);
        const { state } = step(sim.state, { ...sim.observations(), peers: settings.peers.map(() => ({})) }, sim.now + settings.intervalMs, settings);
        state.peers.forEach((p, j) => {
            assert.equal(p.meshFailing, before[j].meshFailing);
            assert.equal(p.relayOk, before[j].relayOk);
            assert.deepEqual(p.view, before[j].view);
        });
        assert.deepEqual(state.paths.filter((p) => p.kind === "relay").map((p) => p.history), sim.state.paths.filter((p) => p.kind === "relay").map((p) => p.history));
    });

    it("a peer whose mesh answer failed is asked again every round (and over its public address) until it answers", () => {
        const settings = prodLax();
        const sim = announced(settings);
        sim.rounds(20);
        sim.world.mesh = settings.peers.map(() => SILENT);
        // The next ask (within quietAskMs) fails; from then on it is asked every round.
        sim.rounds(Math.ceil(quietAskMs(settings) / settings.intervalMs) + 1);
        const from = sim.meshAsked.length;
        sim.rounds(5);
        for (const asked of sim.meshAsked.slice(from)) assert.deepEqual(asked, settings.peers.map((_, j) => j));
        assert.ok(publicFetches(sim.state).length > 0 || settings.peers.every(() => sim.state.peers.every((p) => !p.publicStatusUrl)));
    });
});

describe("health policy: paths and relays", () => {
    it("tunnels to the origins cut, the other PoPs' relays working: nginx switches to a relay at once and the PoP stays announced", () => {
        const settings = prodLax();
        const sim = announced(settings);
        sim.rounds(3);
        sim.world.origins = [REFUSED];
        sim.rounds(settings.fall);
        const primary = sim.state.paths[sim.state.primary];
        assert.equal(primary.kind, "relay", `primary ${primary.label}`);
        sim.rounds(sim.roundsIn(10 * confirmMs(settings)));
        assert.equal(sim.state.state, "announced");
        assert.equal(sim.state.fault, "none");
        assert.equal(sim.announcing, "plain");
        const status = statusOf(sim.state, settings, sim.now, { wallOffsetMs: 0, agentVersion: "t", startedAt: 0, tickMs: 1, roundAt: sim.now, publicStatusUrl: "" });
        assert.equal(status.serving, true);
        assert.equal(status.direct_up, 0, "peers must not count this PoP as reaching an origin itself");
        sim.world.origins = [OK];
        sim.rounds(settings.rise);
        assert.equal(sim.state.paths[sim.state.primary].kind, "direct", "back on the direct path after `rise` good checks");
    });

    it("aborts the connections to a path in the round it goes down, once, and to no path that stays up", () => {
        const settings = agentSettings(popRenderInput(labSpec(), "lax"));
        const sim = announced(settings);
        sim.rounds(3);
        const before = sim.actions.length;
        sim.world.origins = [TIMED_OUT, TIMED_OUT];
        sim.rounds(settings.fall + 5);
        const aborts = sim.actions.slice(before).map((round) => round.filter((a): a is Extract<Action, { kind: "abort-connections" }> => a.kind === "abort-connections"));
        const rounds = aborts.map((a, k) => (a.length > 0 ? k : -1)).filter((k) => k >= 0);
        assert.deepEqual(rounds, [settings.fall - 1], "one abort, in the round the paths fell");
        assert.deepEqual(aborts[settings.fall - 1][0].servers, settings.origins.map((o) => o.server));
        // In that round the upstream file moved first: the abort comes after the reload.
        const round = sim.actions[before + settings.fall - 1].map((a) => a.kind);
        assert.ok(round.indexOf("upstreams") >= 0 && round.indexOf("upstreams") < round.indexOf("abort-connections"), round.join(", "));
        sim.world.origins = [OK, OK];
        sim.rounds(settings.rise + 3);
        assert.ok(!sim.actions.slice(before + settings.fall + 5).flat().some((a) => a.kind === "abort-connections"), "a path coming up aborts nothing");
    });

    it("nginx's roles: relays back a direct primary and the other direct paths stand by; without a working relay they are the backups", () => {
        const settings = agentSettings(popRenderInput(labSpec(), "lax"));
        const sim = announced(settings);
        const roles = () => statusOf(sim.state, settings, sim.now, { wallOffsetMs: 0, agentVersion: "t", startedAt: 0, tickMs: 1, roundAt: sim.now, publicStatusUrl: "" })
            .paths.map((p) => `${p.name}=${p.role}`);
        assert.deepEqual(roles(), ["origin=primary", "origin2=standby", "via ams=backup", "via sgp=backup"]);
        const text = () => sim.state.upstreams!.split("upstream origin_direct")[0];
        assert.match(text(), /server \S+ max_fails=1 fail_timeout=\d+s down;\s+# origin2 \(standby: the relays are the backups\)/);
        // The other PoPs stop reaching an origin: their relays fall, and origin2 is the backup again.
        // (A quiet PoP asks its peers every quietAskMs: relay paths are checked then.)
        sim.world.mesh = settings.peers.map((p) => peer(p.name, { directUp: 0, bestUs: -1 }));
        sim.rounds(sim.roundsIn(settings.fall * quietAskMs(settings)) + settings.fall + 2);
        assert.deepEqual(roles(), ["origin=primary", "origin2=backup", "via ams=down", "via sgp=down"]);
        assert.match(text(), /server \S+ max_fails=1 fail_timeout=\d+s backup;\s+# origin2\n/);
        // What lax relays for the others never stands a direct path by.
        assert.doesNotMatch(sim.state.upstreams!.split("upstream origin_direct")[1], /standby/);
    });

    for (const [name, settings] of [["prod", prodLax()], ["lab", agentSettings(popRenderInput(labSpec(), "lax"))]] as const) {
        it(`a quiet PoP's relays come back rise rounds after the peers recover, not rise quiet asks; a broken peer is asked no more often (${name} settings)`, () => {
            const sim = announced(settings);
            const relays = () => sim.state.paths.filter((p) => p.kind === "relay");
            const quietRounds = Math.ceil(quietAskMs(settings) / settings.intervalMs);
            // The other PoPs lose their origins: this PoP stays quiet (its own paths work) and its relays fall.
            sim.world.mesh = settings.peers.map((p) => peer(p.name, { directUp: 0, bestUs: -1 }));
            sim.rounds(sim.roundsIn(settings.fall * quietAskMs(settings)) + settings.fall + 2);
            assert.ok(relays().every((p) => !p.up), "the relays are down");
            // While the peers are still broken they are asked at the quiet pace, not every round.
            const n = 10 * quietRounds;
            const from = sim.meshAsked.length;
            sim.rounds(n);
            for (const j of settings.peers.keys()) {
                const asked = sim.meshAsked.slice(from).filter((a) => a.includes(j)).length;
                assert.ok(asked <= 11, `broken peer ${j} asked ${asked} times in ${n} quiet rounds`);
            }
            // They recover: the first quiet ask sees it, then they are asked every round until their relay is up.
            sim.world.mesh = settings.peers.map((p) => peer(p.name));
            let rounds = 0;
            while (relays().some((p) => !p.up) && rounds < 1000) {
                sim.round();
                rounds++;
            }
            assert.ok(rounds <= quietRounds + settings.rise + 1,
                `relays up after ${rounds} rounds; one quiet ask (${quietRounds}) and rise (${settings.rise}) allow ${quietRounds + settings.rise + 1}`);
            // Up again, the PoP goes back to the quiet pace.
            const after = sim.meshAsked.length;
            sim.rounds(n);
            const total = sim.meshAsked.slice(after).reduce((k, a) => k + a.length, 0);
            assert.ok(total <= 11 * settings.peers.length, `${total} asks in ${n} rounds with every relay up`);
        });
    }

    it("a preferred origin is primary while it works; the next one takes over after `fall`, and it returns after `rise`", () => {
        const settings = agentSettings(popRenderInput(labSpec(), "lax"));
        settings.originPreference = ["origin2"];
        const sim = announced(settings);
        assert.equal(sim.state.paths[sim.state.primary].label, "origin2");
        sim.world.origins = [OK, REFUSED];
        sim.rounds(settings.fall);
        assert.equal(sim.state.paths[sim.state.primary].label, "origin");
        sim.world.origins = [OK, OK];
        sim.rounds(settings.rise);
        assert.equal(sim.state.paths[sim.state.primary].label, "origin2");
        assert.equal(sim.state.state, "announced");
    });

    it("round-trip noise does not move the primary; a clearly faster path does", () => {
        const settings = agentSettings(popRenderInput(labSpec(), "lax"));
        const sim = announced(settings);
        const first = sim.state.paths[sim.state.primary].label;
        const other = first === "origin" ? 1 : 0;
        const mine = 1 - other;
        for (let i = 0; i < 30; i++) {
            sim.world.origins[mine] = { ok: true, rttUs: 2000, detail: "200" };
            sim.world.origins[other] = { ok: true, rttUs: 1900, detail: "200" };
            sim.round();
            assert.equal(sim.state.paths[sim.state.primary].label, first, `round ${i}: moved for 5%`);
        }
        sim.world.origins[other] = { ok: true, rttUs: 400, detail: "200" };
        sim.rounds(20);
        assert.notEqual(sim.state.paths[sim.state.primary].label, first);
    });
});

describe("health policy: drain, undrain and flap damping", () => {
    it("drain: GRACEFUL_SHUTDOWN routes at once (enabled before the plain ones are disabled), withdrawn after drainMs; undrain re-announces", () => {
        const settings = prodLax();
        const sim = announced(settings);
        sim.world.drainFile = true;
        const acts = sim.round();
        assert.equal(sim.state.state, "draining");
        assert.deepEqual(acts.filter((a) => a.kind === "bird"), [{ kind: "bird", enable: ["lax_drain6"], disable: ["lax_anycast6"] }]);
        assert.equal(sim.announcing, "graceful-shutdown");
        assert.equal(sim.stateFile, 1);
        const rounds = sim.until(["withdrawn"], 1000);
        assert.equal(rounds, sim.roundsIn(settings.drainMs), "withdrawn when the drain period ends");
        assert.equal(sim.announcing, "nothing");
        assert.equal(sim.state.withdrawals.length, 0, "a drain is no flap");
        sim.rounds(20);
        assert.equal(sim.state.state, "withdrawn", "stays withdrawn while drained");
        sim.world.drainFile = false;
        assert.equal(sim.until(["announced"], 10), 1, "undrained and healthy: announced in the next round");
        assert.equal(sim.announcing, "plain");
    });

    it("undrain during the drain period goes straight back to the plain routes", () => {
        const sim = announced();
        sim.world.drainFile = true;
        sim.rounds(3);
        sim.world.drainFile = false;
        sim.round();
        assert.equal(sim.state.state, "announced");
        assert.equal(sim.announcing, "plain");
    });

    it("drained by the config: never announced after a boot, whatever the checks say", () => {
        const sim = new Sim(prodLax((s) => { s.drained = true; }));
        sim.rounds(50);
        assert.equal(sim.state.state, "withdrawn");
        assert.equal(sim.announcing, "nothing");
    });

    it("flap damping: the maxWithdrawalsPerHour-th withdrawal holds the PoP down until the oldest leaves the window; release ends it", () => {
        const settings = prodLax((s) => { s.relay = false; });
        const sim = announced(settings);
        const flap = () => {
            sim.world.proxy = { ok: false, rttUs: 0, detail: "timeout" };
            sim.until(["withdrawn", "held-down"], 10);
            sim.world.proxy = OK;
        };
        flap();
        sim.until(["announced"], 10);
        flap();
        sim.until(["announced"], 10);
        flap();
        assert.equal(sim.state.state, "held-down");
        assert.equal(sim.state.withdrawals.length, settings.maxWithdrawalsPerHour);
        sim.rounds(100);
        assert.equal(sim.state.state, "held-down", "healthy again, but held down");
        assert.equal(sim.announcing, "nothing");
        // The oldest withdrawal leaves the window: the hold ends and the PoP announces again.
        const sim2 = structuredClone(sim.state);
        sim.now = sim.state.withdrawals[0] + settings.flapWindowMs;
        sim.until(["announced"], 10);
        assert.equal(sim.announcing, "plain");

        // The same hold, released by the operator instead.
        sim.state = sim2;
        sim.now = sim2.since + 1000;
        sim.world.releaseFile = true;
        const acts = sim.round();
        assert.ok(acts.some((a) => a.kind === "release-done"));
        assert.deepEqual(acts.filter((a) => a.kind === "withdrawals"), [{ kind: "withdrawals", times: [] }]);
        assert.equal(sim.state.state, "announced", "released and healthy: announced in the same round");
    });

    it("withdrawals remembered across a restart still count, those older than the window do not", () => {
        const settings = prodLax();
        const now = 10 * settings.flapWindowMs;
        const s = initialState(settings, now, { restart: true, previous: 0, withdrawals: [now - settings.flapWindowMs - 1, now - 1000, now - 500, now - 100], drainFile: false });
        assert.equal(s.withdrawals.length, 3);
    });
});

describe("health policy: BIRD restarts, operators and agent restarts", () => {
    it("BIRD restarted: it comes up from the state file, already as the agent wants it, and the agent sends nothing", () => {
        const sim = announced();
        sim.birdStarts();
        const acts = sim.round();
        assert.deepEqual(acts.filter((a) => a.kind === "bird"), []);
        assert.equal(sim.announcing, "plain");
    });

    it("an operator's `birdc disable` (or a configure from another state) is undone in the next round", () => {
        const sim = announced();
        sim.bird.set("lax_anycast6", false);
        sim.bird.set("lax_drain6", true);
        const acts = sim.round();
        assert.deepEqual(acts.filter((a) => a.kind === "bird"), [{ kind: "bird", enable: ["lax_anycast6"], disable: ["lax_drain6"] }]);
        assert.equal(sim.announcing, "plain");
    });

    it("BIRD unreachable: reported once and retried every round, never a crash; asserted again when it answers", () => {
        const sim = announced();
        sim.world.birdReachable = false;
        sim.world.proxy = { ok: false, rttUs: 0, detail: "down" };
        sim.rounds(10);
        assert.equal(sim.state.state, "withdrawn");
        assert.equal(sim.state.birdApplied, false);
        assert.equal(sim.log.filter((l) => /BIRD does not answer/.test(l)).length, 1, "logged once, not every round");
        assert.equal(sim.stateFile, 0, "the state file says withdrawn: a BIRD that starts now reads it");
        assert.equal(sim.announcing, "plain", "BIRD, unreachable, still has the old state");
        sim.world.birdReachable = true;
        const acts = sim.round();
        assert.deepEqual(acts.filter((a) => a.kind === "bird"), [{ kind: "bird", enable: [], disable: ["lax_anycast6"] }]);
        assert.equal(sim.announcing, "nothing");
        assert.ok(sim.log.some((l) => /BIRD answers and follows the agent again/.test(l)));
    });

    it("a bird.conf that is not this deployment's (a protocol missing) is reported in the status", () => {
        const sim = announced();
        sim.bird.delete("lax_drain6");
        sim.round();
        assert.equal(sim.state.birdApplied, false);
        assert.match(sim.state.birdProblem ?? "", /BIRD has no protocol lax_drain6/);
    });

    it("the agent restarted while announced (a crash, a config push) keeps the announcement: no withdraw, no BIRD command", () => {
        const settings = prodLax();
        const sim = new Sim(settings, { restart: true, previous: 2 });
        assert.equal(sim.state.state, "announced");
        for (let i = 0; i < 10; i++) {
            sim.round();
            assert.equal(sim.announcing, "plain", `round ${i}`);
        }
        assert.deepEqual(sim.actions.flat().filter((a) => a.kind === "bird" || a.kind === "state-file"), []);
    });

    it("the first start after a boot announces nothing until `rise`, whatever the state file says", () => {
        const sim = new Sim(prodLax(), { restart: false, previous: 2 });
        assert.equal(sim.state.state, "withdrawn");
        sim.round();
        assert.equal(sim.announcing, "nothing");
    });

    it("a clock step changes no decision: the policy runs on monotonic time, the wall clock only labels the status", () => {
        const settings = prodLax();
        const a = announced(settings);
        const b = announced(settings);
        a.world.proxy = b.world.proxy = { ok: false, rttUs: 0, detail: "timeout" };
        a.rounds(5);
        b.rounds(5);
        assert.deepEqual(a.state, b.state);
        const ctx = { agentVersion: "t", startedAt: 0, tickMs: 1, roundAt: a.now, publicStatusUrl: "" };
        const before = statusOf(a.state, settings, a.now, { ...ctx, wallOffsetMs: 1_800_000_000_000 });
        const stepped = statusOf(a.state, settings, a.now, { ...ctx, wallOffsetMs: 1_800_000_000_000 - 3_600_000 });
        assert.equal(before.state, stepped.state);
        assert.equal(before.since - stepped.since, 3_600_000);
    });

    it("wantedProtocols: one set up per state, the others down", () => {
        const bird = { announce: ["a6", "a4"], drain: ["d6", "d4"], sessions: [] };
        assert.deepEqual(wantedProtocols("announced", bird), { up: ["a6", "a4"], down: ["d6", "d4"] });
        assert.deepEqual(wantedProtocols("draining", bird), { up: ["d6", "d4"], down: ["a6", "a4"] });
        assert.deepEqual(wantedProtocols("held-down", bird), { up: [], down: ["a6", "a4", "d6", "d4"] });
    });
});

describe("health policy: timing rules the lab's bounds call", () => {
    it("are consistent: a round covers a timeout, confirmation outlasts a peer's own fall, isolation outlasts a view", () => {
        const s = prodLax();
        assert.equal(roundMs(s), s.intervalMs + s.timeoutMs);
        assert.ok(confirmMs(s) >= s.fall * roundMs(s));
        assert.ok(isolationMs(s) >= viewMaxAgeMs(s) && isolationMs(s) >= confirmMs(s));
    });
});
