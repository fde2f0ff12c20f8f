/**
 * The health agent's settings: one JSON file per PoP (/etc/anycast/health-agent.json), rendered
 * from the spec by renderAgentSettings and read by the agent with parseAgentSettings.
 *
 * One type, two ends. The renderer checks its own output with the parser, so a settings file
 * that the deploy pushes always parses; the agent parses the file again at start (and
 * `anycast-health check <file>` does so on the host before the push installs it), so a file
 * edited by hand stops the agent with one line naming the key, never a stack trace.
 *
 * Every value is given: the agent has no defaults of its own that could drift from the
 * stack's config. Durations are integer milliseconds.
 */

/** How the agent reaches one origin over the mesh. */
export interface AgentOrigin {
    name: string;
    /** The health check: `http://[mesh]:port/healthPath`; a 2xx answer is a working path. */
    url: string;
    /** nginx's `server` for this origin: `[mesh]:port`. */
    server: string;
}

/** Another PoP, as this PoP's agent asks it and relays through it. */
export interface AgentPeer {
    name: string;
    /** Its agent's status on its mesh address: `http://[mesh]:statusPort/status`. */
    statusUrl: string;
    /** Its relay (nginx on its mesh address, failover.relayPort): nginx's `server` for the relay path. */
    relayServer: string;
}

/** Where the agent keeps and finds things on the host. The lab and the tests point them elsewhere. */
export interface AgentPaths {
    /** BIRD's announcement switch (`define ANYCAST_STATE = N;`), which bird.conf includes. */
    stateFile: string;
    /** BIRD's control socket. */
    birdSocket: string;
    /** The last status the agent published, as JSON (a tmpfs: gone after a reboot). */
    statusFile: string;
    /** The drain and release switches and the flap history (a tmpfs). */
    controlDir: string;
    /** nginx's paths to the origins, which the agent rewrites. */
    upstreamsFile: string;
    /** The agent reloads nginx with SIGHUP to the pid in this file. */
    nginxPidFile: string;
}

/** The BIRD protocols the agent switches, from bird.conf (components/core/render/bird.ts). */
export interface AgentBird {
    /** Static protocols whose routes are announced plainly: up while announced. */
    announce: string[];
    /** Static protocols whose routes carry GRACEFUL_SHUTDOWN: up while draining. */
    drain: string[];
    /** The BGP sessions, reported in the status. */
    sessions: string[];
}

export interface AgentSettings {
    /** The format of this file; an agent refuses a version it does not know. */
    version: 1;
    pop: string;
    anycastAddress: string;
    /** nginx's health endpoint on the anycast address: the local proxy check. */
    proxyUrl: string;
    /** Every origin, in config order. */
    origins: AgentOrigin[];
    /** Origin names in this PoP's order of preference; empty: the shortest measured round trip wins. */
    originPreference: string[];
    /** Every other PoP. */
    peers: AgentPeer[];
    /** Relay through the other PoPs when this PoP reaches no origin itself (failover.relay). */
    relay: boolean;
    meshTopology: "full" | "hub";
    intervalMs: number;
    timeoutMs: number;
    rise: number;
    fall: number;
    drainMs: number;
    maxWithdrawalsPerHour: number;
    /** Flap damping counts withdrawals within this window. */
    flapWindowMs: number;
    /** nginx's passive fail_timeout (seconds) on every `server` line. */
    passiveFailTimeoutS: number;
    /** Drained by the stack's config (`pops[].drained`): announce with GRACEFUL_SHUTDOWN, then withdraw. */
    drained: boolean;
    /** The agent's HTTP server: status for the other PoPs and for `anycast status`, metrics for Prometheus. */
    listen: {
        port: number;
        /** This PoP's mesh address: status and metrics, for the mesh only. */
        meshAddress: string;
        /** The mesh network: who may ask on the mesh address. */
        meshCidr: string;
        /** This PoP's own unicast address: the status only, for the other PoPs when the mesh fails. */
        publicAddress: string;
    };
    bird: AgentBird;
    paths: AgentPaths;
}

/** A settings file that cannot be used: `key` names the setting, `message` what is wrong with it. */
export class AgentSettingsError extends Error {
    constructor(readonly key: string, readonly problem: string) {
        super(`${key}: ${problem}`);
        this.name = "AgentSettingsError";
    }
}

type Json = unknown;

function describe(v: Json): string {
    if (v === undefined) return "missing";
    const text = JSON.stringify(v);
    return `got ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
}

class Reader {
    constructor(private readonly obj: Record<string, Json>, private readonly prefix: string) {}

    private key(k: string): string {
        return this.prefix ? `${this.prefix}.${k}` : k;
    }

    raw(k: string): Json {
        return this.obj[k];
    }

    string(k: string, pattern?: RegExp, what = "a non-empty string"): string {
        const v = this.obj[k];
        if (typeof v !== "string" || v === "" || (pattern && !pattern.test(v))) throw new AgentSettingsError(this.key(k), `must be ${what}, ${describe(v)}`);
        return v;
    }

    int(k: string, min: number, max: number): number {
        const v = this.obj[k];
        if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
            throw new AgentSettingsError(this.key(k), `must be a whole number from ${min} to ${max}, ${describe(v)}`);
        }
        return v;
    }

    bool(k: string): boolean {
        const v = this.obj[k];
        if (typeof v !== "boolean") throw new AgentSettingsError(this.key(k), `must be true or false, ${describe(v)}`);
        return v;
    }

    oneOf<T extends string>(k: string, values: readonly T[]): T {
        const v = this.obj[k];
        if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
            throw new AgentSettingsError(this.key(k), `must be one of ${values.join(", ")}, ${describe(v)}`);
        }
        return v as T;
    }

    strings(k: string, pattern?: RegExp, what = "non-empty strings"): string[] {
        const v = this.obj[k];
        if (!Array.isArray(v)) throw new AgentSettingsError(this.key(k), `must be a list of ${what}, ${describe(v)}`);
        return v.map((item, i) => {
            if (typeof item !== "string" || item === "" || (pattern && !pattern.test(item))) {
                throw new AgentSettingsError(`${this.key(k)}[${i}]`, `must be ${what.replace(/s$/, "")}, ${describe(item)}`);
            }
            return item;
        });
    }

    object(k: string): Reader {
        return Reader.of(this.obj[k], this.key(k));
    }

    list(k: string): Reader[] {
        const v = this.obj[k];
        if (!Array.isArray(v)) throw new AgentSettingsError(this.key(k), `must be a list, ${describe(v)}`);
        return v.map((item, i) => Reader.of(item, `${this.key(k)}[${i}]`));
    }

    /** Keys this reader does not know are mistakes (a misspelt key would silently do nothing). */
    onlyKeys(known: string[]): void {
        for (const k of Object.keys(this.obj)) {
            if (!known.includes(k)) throw new AgentSettingsError(this.key(k), `is not a setting the agent knows (known: ${known.join(", ")})`);
        }
    }

    static of(v: Json, key: string): Reader {
        if (typeof v !== "object" || v === null || Array.isArray(v)) throw new AgentSettingsError(key || "(file)", `must be an object, ${describe(v)}`);
        return new Reader(v as Record<string, Json>, key);
    }
}

const URL_PATTERN = /^http:\/\/(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}(\/[\x21-\x7e]*)?$/;
const PROXY_URL_PATTERN = /^http:\/\/(\[[0-9a-fA-F:.]+\]|[0-9.]+)(:\d{1,5})?\/[\x21-\x7e]*$/;
const SERVER_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/;
const NAME_PATTERN = /^[a-z0-9][a-z0-9-]*$/;
const ABSOLUTE_PATH = /^\/[^\0\n]*$/;
const BIRD_SYMBOL = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ADDRESS = /^[0-9a-fA-F:.]+$/;
const CIDR = /^[0-9a-fA-F:.]+\/\d{1,3}$/;

const TOP_KEYS = ["version", "pop", "anycastAddress", "proxyUrl", "origins", "originPreference", "peers", "relay", "meshTopology",
    "intervalMs", "timeoutMs", "rise", "fall", "drainMs", "maxWithdrawalsPerHour", "flapWindowMs", "passiveFailTimeoutS", "drained",
    "listen", "bird", "paths"];

/** The settings in a file's text, checked key by key; throws AgentSettingsError naming the first bad key. */
export function parseAgentSettings(text: string): AgentSettings {
    let json: Json;
    try {
        json = JSON.parse(text);
    } catch (e) {
        throw new AgentSettingsError("(file)", `is not JSON: ${(e as Error).message}`);
    }
    const r = Reader.of(json, "");
    r.onlyKeys(TOP_KEYS);
    if (r.raw("version") !== 1) throw new AgentSettingsError("version", `must be 1 (this agent's format), ${describe(r.raw("version"))}`);
    const origins = r.list("origins").map((o) => {
        o.onlyKeys(["name", "url", "server"]);
        return { name: o.string("name", NAME_PATTERN, "a PoP-style name (a-z, 0-9, -)"), url: o.string("url", URL_PATTERN, "an http:// URL with a port"),
            server: o.string("server", SERVER_PATTERN, "address:port") };
    });
    if (origins.length === 0) throw new AgentSettingsError("origins", "must name at least one origin");
    const peers = r.list("peers").map((p) => {
        p.onlyKeys(["name", "statusUrl", "relayServer"]);
        return { name: p.string("name", NAME_PATTERN, "a PoP-style name (a-z, 0-9, -)"), statusUrl: p.string("statusUrl", URL_PATTERN, "an http:// URL with a port"),
            relayServer: p.string("relayServer", SERVER_PATTERN, "address:port") };
    });
    const originPreference = r.strings("originPreference", NAME_PATTERN, "origin names");
    originPreference.forEach((name, i) => {
        if (!origins.some((o) => o.name === name)) throw new AgentSettingsError(`originPreference[${i}]`, `names ${name}, which is not in origins`);
    });
    const unique = (key: string, names: string[]) => names.forEach((n, i) => {
        if (names.indexOf(n) !== i) throw new AgentSettingsError(`${key}[${i}].name`, `${n} is listed twice`);
    });
    unique("origins", origins.map((o) => o.name));
    unique("peers", peers.map((p) => p.name));

    const listen = r.object("listen");
    listen.onlyKeys(["port", "meshAddress", "meshCidr", "publicAddress"]);
    const bird = r.object("bird");
    bird.onlyKeys(["announce", "drain", "sessions"]);
    const paths = r.object("paths");
    const pathKeys = ["stateFile", "birdSocket", "statusFile", "controlDir", "upstreamsFile", "nginxPidFile"] as const;
    paths.onlyKeys([...pathKeys]);
    const settings: AgentSettings = {
        version: 1,
        pop: r.string("pop", NAME_PATTERN, "a PoP name (a-z, 0-9, -)"),
        anycastAddress: r.string("anycastAddress", ADDRESS, "an IP address"),
        proxyUrl: r.string("proxyUrl", PROXY_URL_PATTERN, "an http:// URL"),
        origins,
        originPreference,
        peers,
        relay: r.bool("relay"),
        meshTopology: r.oneOf("meshTopology", ["full", "hub"] as const),
        intervalMs: r.int("intervalMs", 10, 60_000),
        timeoutMs: r.int("timeoutMs", 10, 30_000),
        rise: r.int("rise", 1, 100),
        fall: r.int("fall", 1, 100),
        drainMs: r.int("drainMs", 0, 3_600_000),
        maxWithdrawalsPerHour: r.int("maxWithdrawalsPerHour", 1, 1000),
        flapWindowMs: r.int("flapWindowMs", 1000, 86_400_000),
        passiveFailTimeoutS: r.int("passiveFailTimeoutS", 1, 3600),
        drained: r.bool("drained"),
        listen: {
            port: listen.int("port", 1, 65535),
            meshAddress: listen.string("meshAddress", ADDRESS, "an IP address"),
            meshCidr: listen.string("meshCidr", CIDR, "a CIDR"),
            publicAddress: listen.string("publicAddress", ADDRESS, "an IP address"),
        },
        bird: {
            announce: bird.strings("announce", BIRD_SYMBOL, "BIRD protocol names"),
            drain: bird.strings("drain", BIRD_SYMBOL, "BIRD protocol names"),
            sessions: bird.strings("sessions", BIRD_SYMBOL, "BIRD protocol names"),
        },
        paths: Object.fromEntries(pathKeys.map((k) => [k, paths.string(k, ABSOLUTE_PATH, "an absolute path")])) as unknown as AgentPaths,
    };
    if (settings.bird.announce.length === 0) throw new AgentSettingsError("bird.announce", "must name at least one protocol");
    if (settings.bird.drain.length !== settings.bird.announce.length) {
        throw new AgentSettingsError("bird.drain", "must name one drain protocol for each announce protocol");
    }
    return settings;
}

/** The file's text: stable key order, one key per line where it helps a reader on the host. */
export function formatAgentSettings(settings: AgentSettings): string {
    return JSON.stringify(settings, null, 2) + "\n";
}
