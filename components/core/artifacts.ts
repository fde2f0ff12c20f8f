/**
 * Every file that lands on a host, in one place: its artifact name, where it goes, who owns it,
 * whether it is secret, which hosts get it, the command that checks it on the host before it
 * replaces the live file, and the command that applies it in place.
 *
 * Everything that needs one of these facts reads it from here: the pushes (components/push.ts
 * and the components that call it), cloud-init's copy of anycast-net, the health unit's paths,
 * nginx's TLS paths, `anycast render` (file modes), the lab (which files a PoP must have, and
 * which paths it relocates), and docs/ARTIFACTS.md, which is generated from this file
 * (`npm run docs`; test/unit/artifacts.test.ts fails when the committed doc differs).
 */
import { FIREWALL_UNIT, NFTABLES_PATH, NFTABLES_TABLE, renderFirewallUnit } from "./render/nftables";


import { AGENT_PROGRAM, DEFAULT_AGENT_PATHS, DEFAULT_SETTINGS_FILE } from "./health/layout";
import { AUTHORIZED_KEYS_PATH, installAuthorizedKeysScript, VALIDATE_AUTHORIZED_KEYS } from "./render/sshkeys";
import { shellQuote } from "./shell";
import { EXPORTERS, ExporterName } from "./monitoring/exporters";
import { PROMETHEUS_PATHS, RULES_FILE } from "./monitoring/prometheus";

/** The artifact names, in the order docs/ARTIFACTS.md lists them. */
export const ARTIFACT_NAMES = [
    "cloud-init.yaml",
    "anycast-net.sh",
    "bird.conf",
    "wg0.conf",
    "nginx.conf",
    "nginx-upstreams.conf",
    "anycast-health",
    "anycast-health.json",
    "anycast-health.service",
    "nftables.conf",
    "authorized_keys",
    "origin.pem",
    "origin.key",
    "origin-pull-ca.pem",
    "bird-exporter.conf",
    "nginx-exporter.conf",
    "alerts.yml",
    "prometheus.yml",
    "prometheus.conf",
] as const;

export type ArtifactName = (typeof ARTIFACT_NAMES)[number];

export type HostRole = "pop" | "origin";

interface ArtifactFacts {
    name: ArtifactName;
    /** One line: what the file is for. */
    description: string;
    /** Where its content comes from (a repo path). */
    source: string;
    /** The roles whose hosts get it. */
    roles: readonly HostRole[];
    /** Holds key material or a password: a Pulumi secret when pushed, owner-only when rendered. */
    secret: boolean;
    /** Only on the origin `anycast:monitoring.origin` names. */
    monitoringOnly?: boolean;
}

/** Written over SSH by a `remote.Command` (components/push.ts). */
export interface PushedArtifact extends ArtifactFacts {
    delivery: "push";
    remotePath: string;
    owner: string;
    group: string;
    /** Octal, as `install -m` takes it. */
    mode: string;
    /**
     * Debian packages the file needs on the host, installed by its push before the check when
     * missing (a host deployed before the file needed them gets them without a new cloud-init).
     */
    packages?: string[];
    /**
     * The packages' own units read this file: it is installed before them, so that their first
     * start (dpkg's postinst starts a service) already runs as configured.
     */
    beforePackages?: boolean;
    /** Shell run on the host with the new file at "$new" before it is installed; a failure keeps the old file. */
    validate?: string;
    /** Shell run on the host after the file is installed: applies it in place. */
    apply?: string;
}

/** Vultr's `userData` of an instance this stack creates; cloud-init runs it at first boot only. */
export interface UserDataArtifact extends ArtifactFacts {
    delivery: "user-data";
}

export type Artifact = PushedArtifact | UserDataArtifact;

export type PushedArtifactName = Exclude<ArtifactName, "cloud-init.yaml">;

const ROOT = { owner: "root", group: "root" } as const;
const PROGRAM = { ...ROOT, mode: "0755" } as const;
const PUBLIC = { ...ROOT, mode: "0644" } as const;
const OWNER_ONLY = { ...ROOT, mode: "0600" } as const;

const NET_SETUP_PATH = "/usr/local/sbin/anycast-net";

/**
 * Every push of an agent file restarts a running agent: it reads its program and settings once,
 * at start. try-restart leaves an agent that is not running yet alone (the unit's push starts it).
 * A restart keeps the announcement: the new agent takes over BIRD's state as it finds it.
 */
const RESTART_AGENT = "systemctl try-restart anycast-health || true";

/** An exporter's drop-in: installed before its package, then (re)started with it. */
function exporterDropIn(name: ExporterName): Pick<PushedArtifact, "remotePath" | "packages" | "beforePackages" | "apply" | "description"> {
    const unit = EXPORTERS[name].package;
    return {
        remotePath: `/etc/systemd/system/${unit}.service.d/anycast.conf`,
        packages: [unit],
        beforePackages: true,
        description: `Debian's ${unit} (${EXPORTERS[name].description}), as a systemd drop-in: listening on the PoP's ` +
            `mesh address, port ${EXPORTERS[name].port}, for the mesh only (components/core/monitoring/exporters.ts).`,
        apply: `systemctl daemon-reload\nsystemctl enable ${unit} >/dev/null 2>&1 || true\nsystemctl restart ${unit}`,
    };
}

/** Prometheus on the monitoring origin: reloaded when running, (re)started when not (a first push, a failed start). */
const START_OR_RELOAD_PROMETHEUS = "systemctl enable prometheus >/dev/null 2>&1 || true\n" +
    "if systemctl is-active --quiet prometheus; then systemctl reload prometheus; else systemctl reset-failed prometheus 2>/dev/null || true; systemctl restart prometheus; fi";

/**
 * The program's push restarts the agent only once its settings are there: a host upgraded from
 * an agent with another settings file gets the program first and the settings next, and the old
 * agent must not be restarted as the new one in between.
 */
const RESTART_AGENT_WITH_SETTINGS = `if [ -e ${DEFAULT_SETTINGS_FILE} ]; then ${RESTART_AGENT}; fi`;

/**
 * The settings of the bash agent before 0.2. Removing its Command deletes nothing on the host (a
 * push has no delete step), so the new settings' push removes the file it replaces.
 */
const LEGACY_AGENT_ENV = "/etc/anycast/health.env";

export const ARTIFACTS: { readonly [N in ArtifactName]: N extends PushedArtifactName ? PushedArtifact & { name: N } : UserDataArtifact & { name: N } } = {
    "cloud-init.yaml": {
        name: "cloud-init.yaml", delivery: "user-data", roles: ["pop", "origin"], secret: false,
        source: "components/core/render/cloudinit.ts",
        description: "First-boot bootstrap of a host this stack creates on Vultr: packages, sysctls, SSH keys and, on a PoP, " +
            "anycast-net with its boot unit. Vultr replaces an instance whose user data changes, so nothing in it depends " +
            "on the rest of the deployment.",
    },
    "anycast-net.sh": {
        name: "anycast-net.sh", delivery: "push", roles: ["pop"], secret: false, ...PROGRAM,
        source: "components/core/render/netsetup.ts",
        remotePath: NET_SETUP_PATH,
        description: "Puts the anycast address on lo, pins the route to the BGP neighbour, guards the mesh route and seeds " +
            "BIRD's state file; idempotent, run at boot by anycast-net.service and after every push.",
        validate: "bash -n \"$new\"",
        apply: NET_SETUP_PATH,
    },
    "bird.conf": {
        name: "bird.conf", delivery: "push", roles: ["pop"], secret: true,
        owner: "root", group: "bird", mode: "0640",
        source: "components/core/render/bird.ts",
        remotePath: "/etc/bird/bird.conf",
        description: "BIRD 2: the BGP session to the upstream (with its TCP-MD5 password) and the prefixes, announced as " +
            "the health agent's switch says.",
        validate: "bird -p -c \"$new\"",
        // `birdc configure` re-evaluates filters without resetting sessions; start BIRD if it is not running.
        // Enabled every time: a PoP must come back announcing after a reboot.
        apply: "systemctl enable bird >/dev/null 2>&1 || true\n" +
            "if birdc show status >/dev/null 2>&1; then birdc configure; else systemctl start bird; fi",
    },
    "wg0.conf": {
        name: "wg0.conf", delivery: "push", roles: ["pop", "origin"], secret: true, ...OWNER_ONLY,
        source: "components/core/render/wireguard.ts",
        remotePath: "/etc/wireguard/wg0.conf",
        description: "The WireGuard mesh interface: this host's private key and mesh address, and its peers.",
        // wg-quick insists on a file named <interface>.conf.
        validate: "d=$(mktemp -d)\ncp \"$new\" \"$d/wg0.conf\"\nwg-quick strip \"$d/wg0.conf\" >/dev/null\nrm -rf \"$d\"",
        // syncconf applies peer changes without tearing the interface down; the first push brings it up.
        apply: "systemctl enable wg-quick@wg0 >/dev/null 2>&1 || true\n" +
            "if ip link show wg0 >/dev/null 2>&1; then wg syncconf wg0 <(wg-quick strip wg0); else systemctl start wg-quick@wg0; fi",
    },
    "nginx.conf": {
        name: "nginx.conf", delivery: "push", roles: ["pop"], secret: false, ...PUBLIC,
        source: "components/core/render/nginx.ts",
        remotePath: "/etc/nginx/nginx.conf",
        description: "The reverse proxy on the anycast address: HTTPS only for Cloudflare's pulls of this zone, proxied " +
            "to the origin through the mesh, and the health endpoint the agent checks.",
        validate: "nginx -t -q -c \"$new\"",
        // A reload cannot bind the anycast address beside a wildcard listener on the same port (the
        // package's default site holds [::]:80 and 0.0.0.0:80 until our config replaces it): nginx
        // keeps the old config and the reload still exits 0 (the deploy rehearsal found this). So
        // while such a listener exists, restart; otherwise reload, so connections survive a change.
        apply: "systemctl enable nginx >/dev/null 2>&1 || true\n" +
            "if ss -Hltn | awk '$4 ~ /^(\\*|0\\.0\\.0\\.0|\\[::\\]):(80|443)$/ { found = 1 } END { exit !found }'; " +
            "then systemctl restart nginx; else systemctl reload nginx || systemctl restart nginx; fi",
    },
    "nginx-upstreams.conf": {
        name: "nginx-upstreams.conf", delivery: "push", roles: ["pop"], secret: false, ...PUBLIC,
        source: "components/core/render/nginx.ts",
        remotePath: DEFAULT_AGENT_PATHS.upstreamsFile,
        description: "The paths to the origins that nginx.conf includes: every origin directly over the mesh and through " +
            "the other PoPs' relays. Pushed as the starting point (the preferred origin primary); the health agent " +
            "rewrites it from its checks (primary path, broken paths down) and reloads nginx.",
        // Checked with the live nginx.conf that includes it; the first push comes before nginx.conf's.
        apply: "if systemctl is-active --quiet nginx; then nginx -t -q && systemctl reload nginx; fi",
    },
    "anycast-health": {
        name: "anycast-health", delivery: "push", roles: ["pop"], secret: false, ...PROGRAM,
        source: "agent/main.ts",
        remotePath: AGENT_PROGRAM,
        description: "The health agent, the same program on every PoP (agent/ and components/core/health/ bundled by scripts/bundle-agent.mjs " +
            "into one JavaScript file, run by Debian's nodejs): " +
            "announces the prefix only while the local proxy and an origin answer, with rise/fall, drain and flap damping, " +
            "by switching BIRD's static protocols over its control socket.",
        packages: ["nodejs"],
        validate: "node \"$new\" version >/dev/null",
        apply: RESTART_AGENT_WITH_SETTINGS,
    },
    "anycast-health.json": {
        name: "anycast-health.json", delivery: "push", roles: ["pop"], secret: false, ...PUBLIC,
        source: "components/core/render/health.ts",
        remotePath: DEFAULT_SETTINGS_FILE,
        description: "The agent's settings for this PoP (JSON, components/core/health/settings.ts): every value is given, " +
            "the agent has no defaults; checked by the agent itself before it is installed.",
        validate: `${AGENT_PROGRAM} check "$new" >/dev/null`,
        apply: `rm -f ${LEGACY_AGENT_ENV}\n${RESTART_AGENT}`,
    },
    "anycast-health.service": {
        name: "anycast-health.service", delivery: "push", roles: ["pop"], secret: false, ...PUBLIC,
        source: "components/core/render/health.ts",
        remotePath: "/etc/systemd/system/anycast-health.service",
        description: "The systemd unit of the agent: restarts it a second after any exit.",
        apply: "systemctl daemon-reload\nsystemctl enable anycast-health\nsystemctl restart anycast-health",
    },
    "nftables.conf": {
        name: "nftables.conf", delivery: "push", roles: ["pop", "origin"], secret: false, ...PUBLIC,
        source: "components/core/render/nftables.ts",
        remotePath: NFTABLES_PATH,
        description: `The host firewall, one table of its own (${NFTABLES_TABLE}; never flush ruleset): on a created host input ` +
            "is dropped by default, each service opened only to the sources that use it; on an existing server only the " +
            `deployment's own services are guarded. Loaded at boot by ${FIREWALL_UNIT}, which the push installs and enables.`,
        validate: "nft -c -f \"$new\"",
        apply: `printf '%s' ${shellQuote(renderFirewallUnit())} > /etc/systemd/system/${FIREWALL_UNIT}\n` +
            `systemctl daemon-reload\nsystemctl enable ${FIREWALL_UNIT} >/dev/null 2>&1\nnft -f ${NFTABLES_PATH}`,
    },
    "authorized_keys": {
        name: "authorized_keys", delivery: "push", roles: ["pop", "origin"], secret: false, ...PUBLIC,
        source: "components/core/render/sshkeys.ts",
        remotePath: AUTHORIZED_KEYS_PATH,
        description: "anycast:sshPublicKeys, one per line. The apply step merges them into the SSH login user's " +
            "authorized_keys as a managed block (removed keys are revoked, the host's own keys kept), so a key change " +
            "never replaces an instance.",
        validate: VALIDATE_AUTHORIZED_KEYS,
        apply: installAuthorizedKeysScript(),
    },
    "origin.pem": {
        name: "origin.pem", delivery: "push", roles: ["pop"], secret: false, ...PUBLIC,
        source: "components/frontdoor.ts",
        remotePath: "/etc/anycast/tls/origin.pem",
        description: "The certificate nginx serves on 443 (a Cloudflare Origin CA certificate, for Full (strict)).",
    },
    "origin.key": {
        name: "origin.key", delivery: "push", roles: ["pop"], secret: true, ...OWNER_ONLY,
        source: "components/frontdoor.ts",
        remotePath: "/etc/anycast/tls/origin.key",
        description: "The private key of origin.pem.",
    },
    "origin-pull-ca.pem": {
        name: "origin-pull-ca.pem", delivery: "push", roles: ["pop"], secret: false, ...PUBLIC,
        source: "components/frontdoor.ts",
        remotePath: "/etc/anycast/tls/origin-pull-ca.pem",
        description: "The CA that signs the client certificate Cloudflare presents (Authenticated Origin Pulls).",
    },
    "bird-exporter.conf": {
        name: "bird-exporter.conf", delivery: "push", roles: ["pop"], secret: false, ...PUBLIC,
        source: "components/core/monitoring/exporters.ts",
        ...exporterDropIn("bird"),
    },
    "nginx-exporter.conf": {
        name: "nginx-exporter.conf", delivery: "push", roles: ["pop"], secret: false, ...PUBLIC,
        source: "components/core/monitoring/exporters.ts",
        ...exporterDropIn("nginx"),
    },
    "prometheus.conf": {
        name: "prometheus.conf", delivery: "push", roles: ["origin"], monitoringOnly: true, secret: false, ...PUBLIC,
        source: "components/core/monitoring/prometheus.ts",
        remotePath: "/etc/systemd/system/prometheus.service.d/anycast.conf",
        description: `Debian's prometheus, as a systemd drop-in: it reads ${PROMETHEUS_PATHS.config} (not the package's ` +
            "own config) and listens on loopback only. Pushed first: the package it installs then never starts as the package configures it.",
        packages: ["prometheus"],
        beforePackages: true,
        apply: `systemctl daemon-reload\nif [ -e ${PROMETHEUS_PATHS.config} ]; then ${START_OR_RELOAD_PROMETHEUS.replace(/\n/g, "; ")}; fi`,
    },
    "alerts.yml": {
        name: "alerts.yml", delivery: "push", roles: ["origin"], monitoringOnly: true, secret: false, ...PUBLIC,
        source: "components/core/monitoring/alerts.ts",
        remotePath: PROMETHEUS_PATHS.rules,
        description: "The network's alert rules (monitoring/alerts.yml of `anycast render`), for the origin's Prometheus.",
        validate: "promtool check rules \"$new\" >/dev/null",
        apply: "if systemctl is-active --quiet prometheus; then systemctl reload prometheus || systemctl restart prometheus; fi",
    },
    "prometheus.yml": {
        name: "prometheus.yml", delivery: "push", roles: ["origin"], monitoringOnly: true, secret: false, ...PUBLIC,
        source: "components/core/monitoring/prometheus.ts",
        remotePath: PROMETHEUS_PATHS.config,
        description: "Prometheus' config on the monitoring origin: every PoP's agent and exporters over the mesh, and the alert rules.",
        // promtool resolves the rule file beside the config: checked in a directory with the live rules.
        validate: `d=$(mktemp -d)\ncp "$new" "$d/prometheus.yml"\ncp ${PROMETHEUS_PATHS.rules} "$d/${RULES_FILE}"\n` +
            "promtool check config \"$d/prometheus.yml\" >/dev/null || { rm -rf \"$d\"; exit 1; }\nrm -rf \"$d\"",
        apply: START_OR_RELOAD_PROMETHEUS,
    },
};


/** Held by every push that installs packages: a host's pushes run in parallel, apt one at a time. */
const PACKAGES_LOCK = "/run/lock/anycast-packages.lock";

/**
 * Installs Debian packages that are missing, from the host's own apt sources (on a Vultr Debian 12
 * host: Debian's). A host's pushes run in parallel and apt takes one at a time: they queue on
 * PACKAGES_LOCK (two `apt-get update`s at once break the package lists; the deploy rehearsal
 * found it). Another apt (cloud-init's, unattended-upgrades) is waited for: dpkg's lock by
 * DPkg::Lock::Timeout, the lists' lock (which that option does not cover) by retrying the update.
 */
export function installPackagesScript(packages: string[]): string {
    for (const p of packages) if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p)) throw new Error(`"${p}" is not a Debian package name`);
    // An array, so that one package or several are quoted alike (and shellcheck has nothing to guess).
    const list = packages.map(shellQuote).join(" ");
    return [
        `packages=(${list})`,
        `exec 9>${PACKAGES_LOCK}`,
        `flock -w 1200 9`,
        `missing=()`,
        `for p in "\${packages[@]}"; do dpkg-query -W -f='\${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done`,
        `if [ "\${#missing[@]}" -gt 0 ]; then`,
        `    export DEBIAN_FRONTEND=noninteractive`,
        `    install_missing() { apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "\${missing[@]}" >/dev/null; }`,
        // Lists refreshed within the hour (by the push before this one) are used as they are; an
        // install that fails on them (a package the archive has replaced since) updates first.
        `    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | head -n 1)" ] || ! install_missing 2>/dev/null; then`,
        `        for try in $(seq 1 60); do`,
        `            apt-get -o DPkg::Lock::Timeout=600 update -qq && break`,
        `            [ "$try" -lt 60 ] || exit 1`,
        `            sleep 5`,
        `        done`,
        `        install_missing`,
        `    fi`,
        `fi`,
        `exec 9>&-`,
    ].join("\n");
}

/** The registry entry of a name, or an error naming it (for names that come from outside the type system). */
export function artifact(name: string): Artifact {
    if (!(ARTIFACT_NAMES as readonly string[]).includes(name)) {
        throw new Error(`"${name}" is not an artifact in components/core/artifacts.ts`);
    }
    return ARTIFACTS[name as ArtifactName];
}

/** Every artifact, in registry order. */
export function allArtifacts(): Artifact[] {
    return ARTIFACT_NAMES.map((n) => ARTIFACTS[n]);
}

/** The artifacts a host of this role gets, in registry order; user data only when the stack creates the host. */
export function artifactsFor(role: HostRole, options: { createdOnVultr: boolean; monitoring?: boolean }): Artifact[] {
    return allArtifacts().filter((a) => a.roles.includes(role) && (a.delivery === "push" || options.createdOnVultr) &&
        (!a.monitoringOnly || options.monitoring === true));
}

/**
 * The shell a push runs on the host (bash, the file on stdin): it receives the file into a
 * private temporary file, validates it there, installs it atomically with its owner and mode,
 * and applies it. A failed check leaves the live file alone.
 */
export function pushScript(artifact: PushedArtifact): string {
    const lines = [
        "set -eu",
        `new=$(mktemp "/tmp/anycast-${artifact.name.replace(/[^A-Za-z0-9._-]/g, "_")}.XXXXXX")`,
        "trap 'rm -f \"$new\"' EXIT",
        "umask 077",
        "cat > \"$new\"",
    ];
    const packages = artifact.packages?.length ? [installPackagesScript(artifact.packages)] : [];
    if (!artifact.beforePackages) lines.push(...packages);
    if (artifact.validate) lines.push(artifact.validate);
    // Installed beside the live file, then renamed over it: a reader (nginx, BIRD, the agent) never sees half a file.
    lines.push(`install -D -o ${artifact.owner} -g ${artifact.group} -m ${artifact.mode} "$new" ${artifact.remotePath}.anycast-new`,
        `mv -f ${artifact.remotePath}.anycast-new ${artifact.remotePath}`);
    if (artifact.beforePackages) lines.push(...packages);
    if (artifact.apply) lines.push(artifact.apply);
    return lines.join("\n");
}
