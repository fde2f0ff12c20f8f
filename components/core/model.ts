/**
 * The validated, defaulted model of an anycast deployment.
 *
 * This is the single source of truth between the stack config and every renderer: config
 * parsing produces it (see config.ts), the Pulumi components resolve its host-dependent
 * parts (unicast addresses that only exist after a VPS is created), and the renderers turn
 * the resolved per-host plans into text. No Pulumi types here, so everything below is plain
 * data that unit tests and golden files can pin down.
 *
 * Addresses and prefixes are parsed once, by the validator, into IpAddress and IpPrefix values
 * (addressing.ts): renderers read their family and canonical text and never parse them again.
 * The values serialise to that canonical text, and spec-json.ts turns the JSON form back into
 * the typed one where a spec crosses a serialisation boundary (a Pulumi output, a file).
 */
import { IpAddress, IpPrefix } from "./addressing";

/** A BGP community as the user wrote it, classified. */
export type Community =
    | { kind: "standard"; asn: number; value: number }
    | { kind: "large"; global: number; data1: number; data2: number };

export interface BfdSettings {
    /** Desired min TX / required min RX interval in milliseconds. */
    intervalMs: number;
    /** Detection multiplier: the session is down after this many missed packets. */
    multiplier: number;
}

/** One BGP upstream of a PoP (one neighbour; IPv4 prefixes get a second session to neighbor4). */
export interface BgpSettings {
    /** IPv6 neighbour address (Vultr: 2001:19f0:ffff::1). */
    neighbor: IpAddress;
    /** IPv4 neighbour, used only when an IPv4 prefix is announced (Vultr: 169.254.169.254). */
    neighbor4: IpAddress;
    remoteAsn: number;
    /**
     * The AS the Internet sees this upstream as (Vultr: 20473). With a private `anycast:asn` it
     * removes ours on export and becomes the origin (origin-as.ts); undefined on an existing
     * host whose config does not name it.
     */
    publicAsn?: number;
    /** eBGP multihop TTL; 0 means a directly connected neighbour. */
    multihop: number;
    /** Add a static /128 (/32) to the neighbour via the default gateway (Vultr needs it for multihop). */
    staticRouteToNeighbor: boolean;
    /** Hold time in seconds (BGP negotiates the smaller of both sides). */
    holdTime: number;
    keepaliveTime: number;
    /** How long BIRD waits after a session error before reconnecting ([min, max] seconds). */
    errorWaitTime: [number, number];
    connectRetryTime: number;
    /** BFD on the session, or undefined for none (Vultr does not document BFD: off by default). */
    bfd?: BfdSettings;
    /** The session's password; a per-PoP override of the deployment's bgpPassword. */
    password: string;
}

/** Which of a host's addresses the deploy's SSH uses (`anycast:deploy.sshFamily`); absent means IPv6. */
export type SshFamily = 4 | 6;

/**
 * How the host of a PoP or of the origin comes to exist. SSH keys are not part of it: they are
 * pushed (components/host.ts), so a key change never touches the instance.
 */
export type HostSpec =
    | { kind: "vultr"; region: string; plan: string; osId?: number; sshFamily?: SshFamily }
    | {
          kind: "existing";
          sshFamily?: SshFamily;
          /** Unicast address used for SSH, WireGuard endpoints and (IPv6) the BGP source. */
          address: IpAddress;
          /** Additional IPv4 unicast address (for IPv4 BGP sessions), if any. */
          address4?: IpAddress;
          user: string;
          port: number;
      };

export interface PopSpec {
    name: string;
    host: HostSpec;
    bgp: BgpSettings;
    communities: Community[];
    /** Extra prepends of our own ASN (0-3) on every announcement of this PoP. */
    prepend: number;
    /** This PoP's address inside the WireGuard mesh. */
    meshAddress: IpAddress;
    /**
     * Origin names in this PoP's order of preference (`pops[].origins`); empty: the health agent
     * prefers the origin with the shortest measured mesh round-trip time.
     */
    originPreference?: string[];
    /** Drained by the config: announced with GRACEFUL_SHUTDOWN for health.drainSeconds, then withdrawn. */
    drained?: boolean;
}

export interface OriginSpec {
    name: string;
    host: HostSpec;
    /** The port the origin's HTTP service listens on (reached over the mesh). */
    port: number;
    /** Path the health agents request on the origin through the mesh. */
    healthPath: string;
    meshAddress: IpAddress;
}

/** The part of an origin the PoPs' proxy and health agent need: where to reach it over the mesh. */
export interface OriginEndpoint {
    name: string;
    meshAddress: IpAddress;
    port: number;
    healthPath: string;
}

/** A stale-content cache on every PoP, served while no origin answers (`failover.staleCache`). */
export interface StaleCacheSpec {
    /** Disk the cache may use on each PoP, in megabytes. */
    maxSizeMb: number;
    /** Seconds a response without caching headers counts as fresh (0: only what the origin's Cache-Control allows is cached). */
    validSeconds: number;
    /** Seconds an entry is kept after its last use: how old stale content may get. */
    keepSeconds: number;
}

/** What the PoPs do when origins fail (`anycast:failover`, see origins.ts). */
export interface FailoverSpec {
    /** Relay through another PoP over the mesh when this PoP cannot reach an origin itself (full mesh only). */
    relay: boolean;
    /** TCP port of each PoP's relay and status endpoint on its mesh address. */
    relayPort: number;
    /** The Retry-After (seconds) of the 503 every PoP answers while no origin is reachable from anywhere. */
    retryAfter: number;
    /** Serve stale content from a small cache on each PoP while no origin answers; undefined: no cache. */
    staleCache?: StaleCacheSpec;
}

export type MeshTopology = "full" | "hub";

export interface MeshSpec {
    cidr: IpPrefix;
    port: number;
    /** "full": every node peers with every other; "hub": PoPs peer only with the origin. */
    topology: MeshTopology;
    /** MTU of wg0 (1420 leaves room for IPv6 + WireGuard overhead on a 1500 link). */
    mtu: number;
    persistentKeepalive: number;
}

export interface FrontDoorSpec {
    /** Zone by name (looked up) or by id; exactly one is set. */
    zone?: string;
    zoneId?: string;
    /** Fully qualified proxied ("orange") name, e.g. www.example.com. */
    hostname: string;
    /** Fully qualified unproxied ("grey") AAAA name, e.g. anycast.example.com. */
    anycastName: string;
    /** "strict": set the zone's SSL mode to Full (strict); "unmanaged": leave the zone setting alone. */
    sslMode: "strict" | "unmanaged";
}

export interface HealthSpec {
    /** Seconds between checks (fractions allowed). */
    interval: number;
    /** Consecutive good checks before a withdrawn PoP announces again. */
    rise: number;
    /** Consecutive bad checks before an announcing PoP withdraws. */
    fall: number;
    /** Per-check timeout in seconds. */
    timeout: number;
    /** Seconds a drained PoP keeps announcing with GRACEFUL_SHUTDOWN before it withdraws. */
    drainSeconds: number;
    /** Flap damping: at most this many withdrawals per hour, then the PoP stays withdrawn. */
    maxWithdrawalsPerHour: number;
    /** TCP port of the agent's HTTP server (status for the other PoPs and `anycast status`, metrics). */
    statusPort: number;
}

export interface FirewallSpec {
    /** CIDRs allowed to reach SSH on every host. Empty: SSH from anywhere (with a warning). */
    adminCidrs: IpPrefix[];
    /** Sources allowed to reach HTTP/HTTPS on the anycast address; undefined: Cloudflare's ranges at deploy time. */
    httpSources?: IpPrefix[];
}

/** How the deploy reaches the hosts (`anycast:deploy`). */
export interface DeploySpec {
    /** The address family SSH uses to every host: the deployer's own when it is known, else IPv6. */
    sshFamily: SshFamily;
    /** The address the hosts see the deployer's SSH come from, when given (checked against adminCidrs). */
    deployerAddress?: IpAddress;
}

/** Prometheus on an origin (`anycast:monitoring`), scraping every PoP over the mesh. */
export interface MonitoringSpec {
    /** The origin whose host runs it. */
    origin: string;
    /** Seconds between scrapes and between rule evaluations. */
    scrapeInterval: number;
    /** Days of samples it keeps. */
    retentionDays: number;
    /** host:port of the Alertmanagers it sends alerts to. */
    alertmanagers: string[];
}

/** A ROA the user has published at their RIR (`anycast:roas`). */
export interface RoaSpec {
    prefix: IpPrefix;
    /** Longest prefix the ROA authorises; defaults to the ROA prefix's own length (RFC 6482). */
    maxLength: number;
    asn: number;
}

/** RPKI origin validation of one announced prefix, from one origin AS, against `anycast:roas` (RFC 6811). */
export interface RpkiFinding {
    prefix: IpPrefix;
    /** The origin AS the Internet sees: `asn`, or with a private `asn` the upstream's public AS. */
    originAsn: number;
    /** With a private `asn`: the PoPs whose announcements carry this origin. */
    pops?: string[];
    /** "unchecked" when no `anycast:roas` were given. */
    state: "valid" | "invalid" | "not-found" | "unchecked";
    /** Which ROA makes it valid, or why it is invalid / not found. */
    detail: string;
}

/** The whole deployment after validation. */
export interface AnycastSpec {
    asn: number;
    /** Announced prefixes, first is IPv6 and holds the anycast address. */
    prefixes: IpPrefix[];
    /** The anycast service address (a /128 on every PoP's loopback). */
    address: IpAddress;
    bgpPassword: string;
    /** Private key the config pushes log in with (a secret). */
    sshPrivateKey: string;
    /** OpenSSH public keys installed on new Vultr instances. */
    sshPublicKeys: string[];
    pops: PopSpec[];
    /** The first origin: the hub of a hub mesh, and the one stacks with a single origin have. */
    origin: OriginSpec;
    /** Every origin (`anycast:origins`, or the single `anycast:origin`), origin first. */
    origins: OriginSpec[];
    failover: FailoverSpec;
    mesh: MeshSpec;
    frontDoor: FrontDoorSpec;
    health: HealthSpec;
    firewall: FirewallSpec;
    deploy: DeploySpec;
    /** Prometheus on an origin, when `anycast:monitoring` is set. */
    monitoring?: MonitoringSpec;
    /** The ROAs from `anycast:roas` (empty: not checked). */
    roas: RoaSpec[];
    /** Each announced prefix's RPKI state against `roas`, in `prefixes` order (per origin the Internet sees). */
    rpki: RpkiFinding[];
    /** Non-fatal findings (documentation resources, risky choices), shown to the user. */
    warnings: ConfigIssue[];
}

export interface ConfigIssue {
    /** The config key, e.g. `anycast:pops[1].bgp.holdTime`. */
    key: string;
    message: string;
}

/**
 * What a renderer needs about one host once the cloud has created it: the addresses that only
 * exist at deploy time (Vultr assigns them), resolved to plain strings.
 */
export interface HostAddresses {
    /** The host's own unicast IPv6 (BGP source, WireGuard endpoint). */
    ipv6: string;
    /** The host's unicast IPv4, if it has one. */
    ipv4?: string;
}

/** A WireGuard peer as seen from one node. */
export interface WireGuardPeer {
    name: string;
    publicKey: string;
    /** Where to reach the peer (its unicast address, never the anycast one) and port. */
    endpoint: string;
    allowedIps: string[];
}

/** One node's WireGuard interface. */
export interface WireGuardNode {
    name: string;
    privateKey: string;
    /** Address with prefix length, e.g. 10.200.0.2/24. */
    address: string;
    listenPort: number;
    mtu: number;
    persistentKeepalive: number;
    peers: WireGuardPeer[];
}

/** Everything the renderers need to produce one PoP's files. */
export interface PopRenderInput {
    /** What every PoP announces: the origin AS, the prefixes, and the service address inside them. */
    announcement: { asn: number; prefixes: IpPrefix[]; address: IpAddress };
    pop: PopSpec;
    host: HostAddresses;
    origin: OriginEndpoint;
    /** Every origin, in the order of the config; default [origin]. */
    origins?: OriginEndpoint[];
    /** The other PoPs: the health agent exchanges its view of the origins with them, and relays through them (failover.relay). */
    peers?: Array<{ name: string; meshAddress: IpAddress }>;
    /** Origin failover settings; default DEFAULT_FAILOVER (origins.ts). */
    failover?: FailoverSpec;
    /**
     * The WireGuard mesh network; with it, anycast-net keeps mesh traffic off the uplink when wg0 is
     * down. Its topology tells the health agent whether a PoP cut off from the mesh can know it (full).
     */
    mesh?: { cidr: IpPrefix; topology?: MeshTopology };
    health: HealthSpec;
}
