/**
 * The PoP's nginx.conf, live in a network namespace, for what the config promises: the headers,
 * the health endpoint, Authenticated Origin Pulls, failing over between origins without waiting
 * again for a broken one, a 503 when none is left, and the stale cache. The goldens, the content
 * checks and `nginx -t` are in test/render/nginx.test.ts.
 */
import { test, describe, after } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { HEALTH_ENDPOINT, originConnectTimeoutMs, PASSIVE_FAIL_TIMEOUT_SECONDS, upstreamPaths } from "../../components/core/render/nginx";
import { renderUpstreams } from "../../components/core/health/upstreams";
import { labSpec, layoutIn, popRenderInput } from "../helpers/fixtures";
import {
    createNetns, deleteNetns, inNetns, inNetnsOk, needRoot, needTools, tempDir, uniqueNetnsName, waitFor,
} from "../helpers/tools";
import { cachedInput, makeTls, renderedIn } from "../helpers/nginx";

/**
 * A limit for something to happen, not a measure of how fast: a shared machine stalls for
 * seconds. How fast is the lab report's and the bench's.
 */
const LIMIT_MS = 30_000;

describe("nginx runs the rendered config (live)", () => {
    const cleanups: (() => void)[] = [];
    after(() => {
        for (const cleanup of cleanups.reverse()) cleanup();
    });

    test("live: proxies with the promised headers, guards the health endpoint and 443, fails over between origins, answers 503 when none is left", async (t) => {
        if (!needRoot(t, "network namespace for the anycast address") || !needTools(t, "nginx", "openssl", "ip", "curl", "nft")) return;
        const dir = tempDir("nginx-live");
        cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
        const tls = makeTls(dir);
        const conf = path.join(dir, "nginx.conf");
        // Without relays (failover.relay off), so the second origin is the backup this test fails
        // over to. With relays they are the backups and the other origins stand by: the lab's tunnel
        // cut shows that on real tunnels, test/render/nginx.test.ts in the file.
        const spec = labSpec();
        const input = popRenderInput({ ...spec, failover: { ...spec.failover, relay: false } }, "lax");
        fs.writeFileSync(conf, renderedIn(input, dir, tls));
        const ns = uniqueNetnsName("ngl");
        createNetns(ns);
        cleanups.push(() => deleteNetns(ns));
        // The anycast address, both origins' mesh addresses, and an outsider's address, all on lo.
        const [origin1, origin2] = labSpec().origins;
        for (const address of ["2001:db8:100::1/128", `${origin1.meshAddress}/128`, `${origin2.meshAddress}/128`, "2001:db8:ff00::99/128"]) {
            inNetnsOk(ns, "ip", ["addr", "add", address, "dev", "lo", "nodad"]);
        }

        // The origins: each echoes the request headers it received as JSON, and says who it is.
        for (const o of [origin1, origin2]) {
            const server = spawnTracked(cleanups, "ip", ["netns", "exec", ns, process.execPath, "-e", `
                require("node:http").createServer((req, res) => {
                    res.setHeader("content-type", "application/json");
                    res.setHeader("x-origin", ${JSON.stringify(o.name)});
                    res.end(JSON.stringify(req.headers));
                }).listen(8080, ${JSON.stringify(o.meshAddress)}, () => console.log("listening"));`]);
            await waitFor(`${o.name} listening`, LIMIT_MS, () => (server.stdout.includes("listening") ? true : undefined));
        }
        const nginx = spawnTracked(cleanups, "ip", ["netns", "exec", ns, "nginx", "-p", dir + "/", "-c", conf, "-g", "daemon off;"]);
        await waitFor("nginx listening", LIMIT_MS, () =>
            inNetns(ns, "curl", ["-sg", "-o", "/dev/null", "-w", "%{http_code}", "http://[2001:db8:100::1]/"]).stdout === "200" ? true : undefined);
        assert.equal(nginx.exited, false, nginx.stderr);

        const curl = (...args: string[]) => {
            const r = inNetns(ns, "curl", ["-sg", "-D", "-", "--max-time", "10", ...args]);
            const [head, ...body] = r.stdout.split("\r\n\r\n");
            return { status: Number(head.split(" ")[1]), head: head.toLowerCase(), body: body.join("\r\n\r\n"), curlExit: r.status };
        };

        // Proxied: Host kept, client identity forwarded, PoP marked.
        const proxied = curl("-H", "Host: www.example.com", "--interface", "2001:db8:ff00::99", "http://[2001:db8:100::1]/page");
        assert.equal(proxied.status, 200);
        assert.match(proxied.head, /^x-anycast-pop: lax$/m);
        assert.doesNotMatch(proxied.head, /^server: nginx\//m, "server_tokens off hides the version");
        const seen = JSON.parse(proxied.body) as Record<string, string>;
        assert.equal(seen.host, "www.example.com");
        assert.equal(seen["x-forwarded-for"], "2001:db8:ff00::99");
        assert.equal(seen["x-real-ip"], "2001:db8:ff00::99");
        assert.equal(seen["x-forwarded-proto"], "http");
        assert.equal(seen.connection, undefined, "Connection cleared for upstream keepalive");

        // Health endpoint: the host (source = the anycast address) gets "lax ok", an outsider 403.
        const health = curl(`http://[2001:db8:100::1]${HEALTH_ENDPOINT}`);
        assert.equal(health.status, 200);
        assert.equal(health.body, "lax ok\n");
        const outsider = curl("--interface", "2001:db8:ff00::99", `http://[2001:db8:100::1]${HEALTH_ENDPOINT}`);
        assert.equal(outsider.status, 403);
        assert.match(outsider.head, /^x-anycast-pop: lax$/m, "errors carry the PoP header too");

        // 443: without the origin-pull client certificate nginx refuses (400), with it the request passes on HTTP/2.
        const tlsArgs = ["-k", "--resolve", "www.example.com:443:[2001:db8:100::1]"];
        const noCert = curl(...tlsArgs, "https://www.example.com/");
        assert.equal(noCert.status, 400);
        assert.match(noCert.head, /^x-anycast-pop: lax$/m);
        const withCert = curl(...tlsArgs, "--http2", "--cert", tls.clientCert, "--key", tls.clientKey, "https://www.example.com/x");
        assert.equal(withCert.status, 200);
        assert.match(withCert.head, /^http\/2 200/);
        assert.equal((JSON.parse(withCert.body) as Record<string, string>)["x-forwarded-proto"], "https");
        const tls11 = inNetns(ns, "curl", ["-sg", ...tlsArgs, "--tls-max", "1.1", "--cert", tls.clientCert, "--key", tls.clientKey,
            "https://www.example.com/"]);
        assert.notEqual(tls11.status, 0, "TLS 1.1 is refused");

        assert.match(proxied.head, /^x-origin: origin$/m, "the preferred origin serves");

        // Passive: the first origin's packets dropped (its tunnel dead). Its keepalive connections
        // would still hang, so the workers are restarted first; then one request waits out the
        // connect timeout and moves to the second origin, and the next ones go there at once.
        // What nginx tries is counted, not timed: every connection attempt (SYN) and request (PSH)
        // it sends to each origin, in a named counter per origin (a closing FIN is not an attempt).
        const attempt = "tcp dport 8080 tcp flags & (syn | psh) != 0";
        inNetnsOk(ns, "nft", ["-f", "-"], { input: [
            "table inet drop_origin {",
            "  counter origin1 {}", "  counter origin2 {}",
            "  chain out {", "    type filter hook output priority 0;",
            `    ip6 daddr ${origin1.meshAddress} ${attempt} counter name "origin1"`,
            `    ip6 daddr ${origin1.meshAddress} tcp dport 8080 drop`,
            `    ip6 daddr ${origin2.meshAddress} ${attempt} counter name "origin2"`,
            "  }", "}", "",
        ].join("\n") });
        const attempts = (origin: "origin1" | "origin2"): number =>
            Number(/packets (\d+)/.exec(inNetnsOk(ns, "nft", ["list", "counter", "inet", "drop_origin", origin]))![1]);
        // A reload is done when every old worker has exited (its keepalive connections with it)
        // and new ones run: `ip netns exec` execs nginx in place, so the child is the master.
        const workers = (): number[] => fs.readFileSync(`/proc/${nginx.child.pid}/task/${nginx.child.pid}/children`, "utf8")
            .split(/\s+/).filter((w) => w !== "").map(Number);
        const reload = async () => {
            const old = workers();
            inNetnsOk(ns, "nginx", ["-p", dir + "/", "-c", conf, "-s", "reload"]);
            await waitFor("nginx's workers replaced", LIMIT_MS, () => {
                const now = workers();
                return now.length > 0 && now.every((w) => !old.includes(w)) ? true : undefined;
            });
        };
        await reload();
        // curl's own clock: the time spawning it takes on a loaded machine is not the proxy's.
        const timed = (...args: string[]) => {
            const r = inNetns(ns, "curl", ["-sg", "-o", "/dev/null", "-D", "-", "-w", "time=%{time_total}", "--max-time", "10", ...args]);
            const head = r.stdout.toLowerCase();
            return { status: Number(head.split(" ")[1]), head, ms: Math.round(Number(/time=([\d.]+)$/.exec(r.stdout)?.[1]) * 1000) };
        };
        const passive = timed("http://[2001:db8:100::1]/");
        const connectMs = originConnectTimeoutMs(input);
        console.log(`nginx: first origin dropped: ${passive.status} from ${/^x-origin: (\S+)$/m.exec(passive.head)?.[1]} after ${passive.ms} ms (proxy_connect_timeout ${connectMs}ms)`);
        assert.equal(passive.status, 200);
        assert.match(passive.head, /^x-origin: origin2$/m);
        // A lower bound only (a timeout cannot fire early): it moved because the connect timed out, not for another reason.
        assert.ok(passive.ms >= connectMs - 20, `moved after ${passive.ms} ms, before the connect timeout of ${connectMs} ms`);
        assert.ok(attempts("origin1") > 0, "the first request tried the dropped origin");
        // The next requests go to the second origin at once: not one more attempt at the first.
        const triedFirst = attempts("origin1");
        for (let i = 0; i < 4; i++) {
            const next = timed("http://[2001:db8:100::1]/");
            assert.match(next.head, /^x-origin: origin2$/m);
        }
        assert.equal(attempts("origin1"), triedFirst, "the failed path was tried again");

        // Active: what the health agent writes when its checks fail, then a reload. All paths down:
        // a short 503 with Retry-After at once, still marked with the PoP.
        // Written with the agent's own renderer, as the agent does (components/core/health/upstreams.ts).
        const upstreamsFile = layoutIn(input, dir).paths.agent.upstreamsFile;
        const pristine = fs.readFileSync(upstreamsFile, "utf8");
        const { direct, relay } = upstreamPaths(input);
        fs.writeFileSync(upstreamsFile, renderUpstreams({
            pop: input.pop.name, file: upstreamsFile, paths: [...direct, ...relay].map((p) => ({ ...p, up: false })), primary: -1,
            passiveFailTimeoutS: PASSIVE_FAIL_TIMEOUT_SECONDS,
        }));
        await reload();
        const before = [attempts("origin1"), attempts("origin2")];
        const none = timed("http://[2001:db8:100::1]/");
        console.log(`nginx: every path down: ${none.status} after ${none.ms} ms`);
        assert.equal(none.status, 503);
        // At once: nginx answers from its own config, without trying any origin.
        assert.deepEqual([attempts("origin1"), attempts("origin2")], before, "a path marked down was tried");
        assert.match(none.head, /^retry-after: 5$/m);
        assert.match(none.head, /^cache-control: no-store$/m);
        assert.match(none.head, /^x-anycast-pop: lax$/m);
        assert.match(curl("http://[2001:db8:100::1]/").body, /Service temporarily unavailable/);
        // The origins are back: the agent writes the file as pushed again.
        inNetnsOk(ns, "nft", ["delete", "table", "inet", "drop_origin"]);
        fs.writeFileSync(upstreamsFile, pristine);
        await reload();
        await waitFor("the first origin serving again", LIMIT_MS, () => (/^x-origin: origin$/m.test(curl("http://[2001:db8:100::1]/").head) ? true : undefined));
    });

    test("live: a stale cache serves expired content while no origin answers", async (t) => {
        if (!needRoot(t, "network namespace for the anycast address") || !needTools(t, "nginx", "openssl", "ip", "curl")) return;
        const dir = tempDir("nginx-stale");
        cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
        // The cache lives under it and nginx's workers (www-data) write it: mkdtemp's 0700 would
        // keep them out, and every cacheable request would end in a 500.
        fs.chmodSync(dir, 0o755);
        const tls = makeTls(dir);
        const input = cachedInput();
        const conf = path.join(dir, "nginx.conf");
        fs.writeFileSync(conf, renderedIn({ ...input, failover: { ...input.failover!, staleCache: { maxSizeMb: 8, validSeconds: 1, keepSeconds: 600 } } }, dir, tls));
        const ns = uniqueNetnsName("ngs");
        createNetns(ns);
        cleanups.push(() => deleteNetns(ns));
        const origin = labSpec().origins[0];
        for (const address of ["2001:db8:100::1/128", `${origin.meshAddress}/128`]) inNetnsOk(ns, "ip", ["addr", "add", address, "dev", "lo", "nodad"]);
        const server = spawnTracked(cleanups, "ip", ["netns", "exec", ns, process.execPath, "-e", `
            let n = 0;
            require("node:http").createServer((req, res) => res.end("version " + (++n) + "\\n"))
                .listen(8080, ${JSON.stringify(origin.meshAddress)}, () => console.log("listening"));`]);
        await waitFor("origin listening", LIMIT_MS, () => (server.stdout.includes("listening") ? true : undefined));
        const get = (...args: string[]) => {
            const r = inNetns(ns, "curl", ["-sg", "-D", "-", "--max-time", "5", ...args, "http://[2001:db8:100::1]/page"]);
            const [head, ...body] = r.stdout.split("\r\n\r\n");
            return { status: Number(head.split(" ")[1]), head: head.toLowerCase(), body: body.join("") };
        };
        const nginx = spawnTracked(cleanups, "ip", ["netns", "exec", ns, "nginx", "-p", dir + "/", "-c", conf, "-g", "daemon off;"]);
        await waitFor("nginx serving", LIMIT_MS, () => {
            assert.equal(nginx.exited, false, nginx.stderr);
            return get().status === 200 ? true : undefined;
        });
        const cached = get();
        assert.match(cached.head, /^x-anycast-cache: (hit|miss)$/m);
        assert.match(cached.head, /^x-anycast-pop: lax$/m);
        // Credentials bypass the cache: a fresh answer from the origin.
        assert.match(get("-H", "Authorization: Bearer x").head, /^x-anycast-cache: bypass$/m);
        // The origin goes away. Until the entry expires (validSeconds 1, counted by nginx in whole
        // seconds: up to 2 s) every answer is the cached copy, a hit; then the same copy, stale.
        server.child.kill("SIGTERM");
        await waitFor("origin gone", LIMIT_MS, () => (server.exited ? true : undefined));
        const started = Date.now();
        const wrong: string[] = [];
        const stale = await waitFor("the expired entry served stale", LIMIT_MS, () => {
            const answer = get();
            const cache = /^x-anycast-cache: (\S+)$/m.exec(answer.head)?.[1];
            // waitFor retries on a throw: a wrong answer is collected, so it fails the test instead.
            if (answer.status !== 200 || answer.body !== cached.body || !["hit", "stale"].includes(cache ?? "")) {
                wrong.push(`${answer.status} ${cache} ${JSON.stringify(answer.body)}`);
            }
            return cache === "stale" ? answer : undefined;
        });
        assert.deepEqual(wrong, [], "without the origin every answer is the cached copy (a hit, then stale)");
        console.log(`nginx: origin gone, stale copy served: ${stale.status} after ${Date.now() - started} ms`);
        // Nothing cached for this one: the 503.
        const r = inNetns(ns, "curl", ["-sg", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://[2001:db8:100::1]/never-seen"]);
        assert.equal(r.stdout, "503");
    });
});

interface Tracked {
    child: ChildProcess;
    stdout: string;
    stderr: string;
    exited: boolean;
}

/** Spawn a long-running process whose output is collected, stopped by the suite's cleanup. */
function spawnTracked(cleanups: (() => void)[], command: string, args: string[]): Tracked {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    const tracked: Tracked = { child, stdout: "", stderr: "", exited: false };
    child.stdout?.on("data", (d: Buffer) => (tracked.stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (tracked.stderr += d.toString()));
    child.on("exit", () => (tracked.exited = true));
    cleanups.push(() => {
        if (!tracked.exited) child.kill("SIGTERM");
    });
    return tracked;
}
