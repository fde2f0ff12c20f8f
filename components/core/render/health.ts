/**
 * The PoP's health agent: /usr/local/sbin/anycast-health (the same script on every PoP), its
 * parameters /etc/anycast/health.env (per PoP) and its systemd unit.
 *
 * The agent is the only writer of the BIRD announcement switch after boot (docs/ARTIFACTS.md):
 * it checks the local proxy and the origin through the mesh every `interval`, applies
 * rise/fall hysteresis, drain (GRACEFUL_SHUTDOWN, then withdraw) and flap damping, and moves
 * BIRD by rewriting /etc/bird/anycast-state.conf and running `birdc configure`, never by
 * restarting BIRD or resetting sessions. Bash + curl + birdc, because those are on every PoP and
 * a tick costs two short-lived processes (one curl for both checks, one mv for the status).
 */
import { familyOf } from "../addressing";
import { PopRenderInput } from "../model";
import { HEALTH_ENDPOINT } from "./nginx";
import { BIRD_STATE_FILE } from "./bird";

/** Where the agent's files live on a PoP; the script has the same defaults built in. */
export const HEALTH_PATHS = {
    script: "/usr/local/sbin/anycast-health",
    env: "/etc/anycast/health.env",
    unit: "/etc/systemd/system/anycast-health.service",
    /** The announcement switch bird.conf includes. */
    stateFile: BIRD_STATE_FILE,
    /** Debian's bird2 control socket. */
    birdSocket: "/run/bird/bird.ctl",
    statusFile: "/run/anycast/health.json",
    /** Holds the drain switch and the flap history; tmpfs, so a reboot clears both. */
    controlDir: "/run/anycast",
} as const;

/** Flap damping counts withdrawals within this window (the "per hour" of maxWithdrawalsPerHour). */
export const FLAP_WINDOW_SECONDS = 3600;

/** The agent script. Kept here as text so the package needs no asset files; see the golden copy. */
export function renderHealthAgent(): string {
    return AGENT_SCRIPT;
}

/** Seconds as the agent parses them: plain decimal, millisecond precision (the agent's clock). */
function seconds(value: number): string {
    return String(Math.round(value * 1000) / 1000);
}

function urlHost(address: string): string {
    return familyOf(address) === 6 ? `[${address}]` : address;
}

/** /etc/anycast/health.env: KEY=value lines the agent reads as data (values are literal, unquoted). */
export function renderHealthEnv(input: PopRenderInput): string {
    const h = input.health;
    const values: [string, string][] = [
        ["POP", input.pop.name],
        ["ANYCAST_ADDRESS", input.deployment.address],
        ["PROXY_URL", `http://${urlHost(input.deployment.address)}${HEALTH_ENDPOINT}`],
        ["ORIGIN_URL", `http://${urlHost(input.origin.meshAddress)}:${input.origin.port}${input.origin.healthPath}`],
        ["INTERVAL", seconds(h.interval)],
        ["RISE", String(h.rise)],
        ["FALL", String(h.fall)],
        ["TIMEOUT", seconds(h.timeout)],
        ["DRAIN_SECONDS", seconds(h.drainSeconds)],
        ["MAX_WITHDRAWALS_PER_HOUR", String(h.maxWithdrawalsPerHour)],
        ["FLAP_WINDOW_SECONDS", String(FLAP_WINDOW_SECONDS)],
        ["STATE_FILE", HEALTH_PATHS.stateFile],
        ["BIRD_SOCKET", HEALTH_PATHS.birdSocket],
        ["STATUS_FILE", HEALTH_PATHS.statusFile],
        ["CONTROL_DIR", HEALTH_PATHS.controlDir],
    ];
    for (const [key, value] of values) {
        // One line per key is the whole format: a newline in a value would inject another key.
        if (/[\r\n]/.test(value)) throw new Error(`health env ${key} contains a line break: ${JSON.stringify(value)}`);
    }
    return [
        `# ${HEALTH_PATHS.env} for PoP ${input.pop.name}, rendered by pulumi-anycast: do not edit on the host.`,
        `# Read by ${HEALTH_PATHS.script} as KEY=value lines; values are literal (not shell, no quotes).`,
        ...values.map(([key, value]) => `${key}=${value}`),
    ].join("\n") + "\n";
}

/** The systemd unit; the agent restarts on any exit, a second later. */
export function renderHealthUnit(): string {
    return [
        "[Unit]",
        "Description=anycast health agent: announce the anycast prefix only while this PoP can serve",
        "After=bird.service nginx.service wg-quick@wg0.service",
        "",
        "[Service]",
        "Type=simple",
        `Environment=ANYCAST_HEALTH_ENV=${HEALTH_PATHS.env}`,
        `ExecStart=${HEALTH_PATHS.script} run`,
        "Restart=always",
        "RestartSec=1",
        // /run/anycast holds the drain switch and the flap history: they must outlive an agent
        // restart (every config push restarts it), and the status file there tells a restart from a boot.
        "RuntimeDirectory=anycast",
        "RuntimeDirectoryPreserve=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        // The state file is replaced by rename inside /etc/bird; BIRD's socket may not exist yet at start.
        "ReadWritePaths=/etc/bird -/run/bird",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ].join("\n");
}

const AGENT_SCRIPT = `#!/bin/bash
# anycast-health: keeps this PoP's anycast prefix announced only while the PoP can serve.
# Rendered by pulumi-anycast; the same script on every PoP, its parameters in the env file.
#
#   anycast-health run       the agent (systemd: anycast-health.service)
#   anycast-health status    print the agent's status (JSON)
#   anycast-health drain     announce with GRACEFUL_SHUTDOWN for DRAIN_SECONDS, then withdraw, until undrain
#   anycast-health undrain   end a drain; the PoP announces again after RISE good checks
#   anycast-health release   forget the flap history (after fixing the cause): a held-down PoP announces again
#
# Every tick it checks (a) the local proxy, nginx's health endpoint on the anycast address, and
# (b) the origin through the WireGuard mesh. BIRD is driven only through STATE_FILE, one line
# \`define ANYCAST_STATE = N;\` (0 withdrawn, 1 draining: announced with GRACEFUL_SHUTDOWN,
# 2 announced) that bird.conf includes and the export filters read, plus \`birdc configure\`: that
# re-evaluates the filters and sends UPDATE/WITHDRAW without resetting any session. The agent
# never restarts BIRD; stopping the agent leaves the announcement as it is (drain to take a PoP out).
set -u
# EPOCHREALTIME uses the locale's decimal separator; C makes it a '.'.
export LC_ALL=C

ENV_FILE=\${ANYCAST_HEALTH_ENV:-/etc/anycast/health.env}
KNOWN_KEYS=" POP ANYCAST_ADDRESS PROXY_URL ORIGIN_URL INTERVAL RISE FALL TIMEOUT DRAIN_SECONDS MAX_WITHDRAWALS_PER_HOUR FLAP_WINDOW_SECONDS STATE_FILE BIRD_SOCKET STATUS_FILE CONTROL_DIR "

die() {
    printf 'anycast-health: %s\\n' "$*" >&2
    exit 2
}

# The env file is KEY=value lines read as data, never sourced: a value (a URL path, say) is not code.
# Its values win over the process environment, which wins over the defaults below.
load_env() {
    local line key
    [[ -r $ENV_FILE ]] || return 0
    while IFS= read -r line || [[ -n $line ]]; do
        line=\${line%$'\\r'}
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        key=\${line%%=*}
        if [[ $line != *=* || $KNOWN_KEYS != *" $key "* ]]; then
            printf 'anycast-health: %s: ignoring line: %s\\n' "$ENV_FILE" "$line" >&2
            continue
        fi
        printf -v "$key" '%s' "\${line#*=}"
    done <"$ENV_FILE"
}
load_env

: "\${POP:=$HOSTNAME}"
: "\${ANYCAST_ADDRESS:=}"
: "\${PROXY_URL:=http://[$ANYCAST_ADDRESS]/.well-known/anycast-health}"
: "\${ORIGIN_URL:=}"
: "\${INTERVAL:=0.2}"
: "\${RISE:=3}"
: "\${FALL:=2}"
: "\${TIMEOUT:=0.5}"
: "\${DRAIN_SECONDS:=3}"
: "\${MAX_WITHDRAWALS_PER_HOUR:=6}"
: "\${FLAP_WINDOW_SECONDS:=3600}"
: "\${STATE_FILE:=/etc/bird/anycast-state.conf}"
: "\${BIRD_SOCKET:=/run/bird/bird.ctl}"
: "\${STATUS_FILE:=/run/anycast/health.json}"
: "\${CONTROL_DIR:=/run/anycast}"

DRAIN_FILE=$CONTROL_DIR/drain
# Withdrawal times (epoch ms) survive agent restarts here, so a restart does not reset flap damping.
WITHDRAWALS_FILE=$CONTROL_DIR/withdrawals
# \`anycast-health release\` leaves this for the running agent: forget the flap history (an
# operator who fixed the cause of the flapping), so a held-down PoP may announce again.
RELEASE_FILE=$CONTROL_DIR/release

# Decimal seconds ("0.1", "2", "2.5") to integer milliseconds in variable $1, without forking bc.
seconds_to_ms() {
    local whole frac
    [[ $2 =~ ^([0-9]+)(\\.([0-9]*))?$ ]] || die "$3 must be a number of seconds, got '$2'"
    whole=\${BASH_REMATCH[1]}
    frac=\${BASH_REMATCH[3]}000
    printf -v "$1" '%d' "$((10#$whole * 1000 + 10#\${frac:0:3}))"
}

positive_int() {
    [[ $1 =~ ^[1-9][0-9]*$ ]] || die "$2 must be a positive integer, got '$1'"
}

validate() {
    [[ -n $ORIGIN_URL ]] || die "ORIGIN_URL is not set (in $ENV_FILE)"
    [[ -n $ANYCAST_ADDRESS || $PROXY_URL != *'[]'* ]] || die "ANYCAST_ADDRESS or PROXY_URL must be set (in $ENV_FILE)"
    seconds_to_ms INTERVAL_MS "$INTERVAL" INTERVAL
    ((INTERVAL_MS > 0)) || die "INTERVAL must be above 0"
    seconds_to_ms TIMEOUT_MS "$TIMEOUT" TIMEOUT
    ((TIMEOUT_MS > 0)) || die "TIMEOUT must be above 0"
    seconds_to_ms DRAIN_MS "$DRAIN_SECONDS" DRAIN_SECONDS
    seconds_to_ms WINDOW_MS "$FLAP_WINDOW_SECONDS" FLAP_WINDOW_SECONDS
    positive_int "$RISE" RISE
    positive_int "$FALL" FALL
    positive_int "$MAX_WITHDRAWALS_PER_HOUR" MAX_WITHDRAWALS_PER_HOUR
}

log() {
    printf 'anycast-health[%s]: %s\\n' "$POP" "$*" >&2
}

# Milliseconds since the epoch into NOW_MS (a builtin: no date(1) fork per tick).
now() {
    local us=\${EPOCHREALTIME//[.,]/}
    NOW_MS=$((10#$us / 1000))
}

# Sleep with the read builtin on a pipe nobody writes to: no sleep(1) fork per tick.
sleep_ms() {
    local secs
    printf -v secs '%d.%03d' "$(($1 / 1000))" "$(($1 % 1000))"
    read -r -t "$secs" -u "$SLEEP_FD" _ || true
}

# --- the announcement switch ----------------------------------------------------------------

STATE=withdrawn        # announced | withdrawn | draining | held-down
WANTED=0               # the ANYCAST_STATE value the state machine wants
WRITTEN=-1             # the value last written to STATE_FILE (-1: not yet)
APPLIED=-1             # the value BIRD last accepted with birdc configure (-1: unknown)
SYNC_FAILING=0

state_value() {
    case $1 in
        announced) WANTED=2 ;;
        draining) WANTED=1 ;;
        *) WANTED=0 ;;
    esac
}

# Bring STATE_FILE and then BIRD to WANTED. The file is written atomically (temp + rename: a
# reader never sees half a line) and kept apart from what BIRD accepted: if birdc fails (BIRD
# restarting, socket missing) the file must still follow every decision, because a BIRD that
# starts reads the file, and the next tick retries birdc.
sync_state() {
    local tmp=$STATE_FILE.tmp.$$ out
    if ((WRITTEN != WANTED)); then
        if ! printf 'define ANYCAST_STATE = %d;\\n' "$WANTED" >"$tmp" || ! mv -f "$tmp" "$STATE_FILE"; then
            ((SYNC_FAILING++ == 0)) && log "cannot write $STATE_FILE, retrying every tick"
            return 1
        fi
        WRITTEN=$WANTED
        APPLIED=-1
    fi
    if ((APPLIED != WANTED)); then
        if ! out=$(birdc -s "$BIRD_SOCKET" configure 2>&1); then
            ((SYNC_FAILING++ == 0)) && log "birdc configure failed, retrying every tick: \${out//$'\\n'/ | }"
            return 1
        fi
        APPLIED=$WANTED
    fi
    ((SYNC_FAILING > 0)) && log "BIRD applied ANYCAST_STATE = $WANTED after $SYNC_FAILING failed attempts"
    SYNC_FAILING=0
    return 0
}

in_sync() {
    ((WRITTEN == WANTED && APPLIED == WANTED))
}

# Move to state $1 for reason $2; touches the file and BIRD only when the announced value changes.
set_state() {
    [[ $1 == "$STATE" ]] && return 0
    log "$STATE -> $1: $2"
    STATE=$1
    SINCE_MS=$NOW_MS
    LAST_REASON=$2
    state_value "$STATE"
    in_sync || sync_state
}

# --- flap damping ---------------------------------------------------------------------------

WITHDRAWALS=()

load_withdrawals() {
    local t
    [[ -r $WITHDRAWALS_FILE ]] || return 0
    while read -r t; do
        [[ $t =~ ^[0-9]+$ ]] && WITHDRAWALS+=("$t")
    done <"$WITHDRAWALS_FILE"
}

save_withdrawals() {
    local tmp=$WITHDRAWALS_FILE.tmp.$$
    printf '%s\\n' "\${WITHDRAWALS[@]}" >"$tmp" && mv -f "$tmp" "$WITHDRAWALS_FILE"
}

# Forget withdrawals older than the window; the oldest kept one is first.
prune_withdrawals() {
    local kept=() t pruned=0
    for t in "\${WITHDRAWALS[@]}"; do
        if ((NOW_MS - t < WINDOW_MS)); then kept+=("$t"); else pruned=1; fi
    done
    WITHDRAWALS=("\${kept[@]}")
    ((pruned)) && save_withdrawals
    return 0
}

held_until_ms() {
    HELD_UNTIL_MS=$((WITHDRAWALS[0] + WINDOW_MS))
}

# Past the limit: withdrawn until the oldest counted withdrawal leaves the window. $1: what led here.
hold_down() {
    held_until_ms
    set_state held-down "$1\${#WITHDRAWALS[@]} withdrawals within \${FLAP_WINDOW_SECONDS}s, held down for $(( (HELD_UNTIL_MS - NOW_MS + 999) / 1000 ))s"
}

# A health-driven withdrawal: counted for flap damping, and held down past the limit.
withdraw() {
    WITHDRAWALS+=("$NOW_MS")
    save_withdrawals
    if ((\${#WITHDRAWALS[@]} >= MAX_WITHDRAWALS_PER_HOUR)); then
        hold_down "$1; "
    else
        set_state withdrawn "$1"
    fi
}

# --- checks ---------------------------------------------------------------------------------

# One curl for both checks, in parallel, so a tick costs one process and at most TIMEOUT.
check() {
    local out num code rc
    PROXY_OK=false ORIGIN_OK=false
    PROXY_DETAIL="no answer" ORIGIN_DETAIL="no answer"
    out=$(curl --silent --globoff --noproxy '*' --parallel --parallel-immediate --max-time "$TIMEOUT" \\
        -o /dev/null -o /dev/null -w '%{urlnum} %{http_code} %{exitcode}\\n' "$PROXY_URL" "$ORIGIN_URL" 2>/dev/null)
    while read -r num code rc; do
        case $num in
            0)
                PROXY_DETAIL="http $code, curl exit $rc"
                [[ $rc == 0 && $code == 200 ]] && PROXY_OK=true
                ;;
            1)
                ORIGIN_DETAIL="http $code, curl exit $rc"
                [[ $rc == 0 && $code == 2[0-9][0-9] ]] && ORIGIN_OK=true
                ;;
        esac
    done <<<"$out"
    if [[ $PROXY_OK == true && $ORIGIN_OK == true ]]; then
        HEALTHY=true
        ((GOOD++, BAD = 0))
    else
        HEALTHY=false
        ((BAD++, GOOD = 0))
        if [[ $PROXY_OK == false ]]; then
            BAD_REASON="proxy check failed ($PROXY_DETAIL)"
        else
            BAD_REASON="origin check failed ($ORIGIN_DETAIL)"
        fi
    fi
}

# --- status ---------------------------------------------------------------------------------

json_string() {
    local s=\${1//\\\\/\\\\\\\\}
    s=\${s//\\"/\\\\\\"}
    printf -v "$2" '"%s"' "$s"
}

write_status() {
    local pop reason held=null drain=false applied=false tmp=$STATUS_FILE.tmp.$$
    json_string "$POP" pop
    json_string "$LAST_REASON" reason
    [[ $STATE == held-down ]] && held=$HELD_UNTIL_MS
    [[ -e $DRAIN_FILE ]] && drain=true
    in_sync && applied=true
    printf '{"pop":%s,"state":"%s","anycast_state":%d,"healthy":%s,"proxy_ok":%s,"origin_ok":%s,"consecutive_good":%d,"consecutive_bad":%d,"withdrawals_last_hour":%d,"held_until":%s,"drain_requested":%s,"bird_applied":%s,"since":%d,"updated":%d,"last_reason":%s}\\n' \\
        "$pop" "$STATE" "$WANTED" "$HEALTHY" "$PROXY_OK" "$ORIGIN_OK" "$GOOD" "$BAD" "\${#WITHDRAWALS[@]}" \\
        "$held" "$drain" "$applied" "$SINCE_MS" "$NOW_MS" "$reason" \\
        >"$tmp" && mv -f "$tmp" "$STATUS_FILE"
}

# --- the agent ------------------------------------------------------------------------------

tick() {
    now
    check
    if [[ -e $RELEASE_FILE ]]; then
        rm -f "$RELEASE_FILE"
        WITHDRAWALS=()
        save_withdrawals
        [[ $STATE == held-down ]] && set_state withdrawn "flap damping released by the operator"
    fi
    prune_withdrawals
    local drained=false
    [[ -e $DRAIN_FILE ]] && drained=true
    case $STATE in
        announced)
            if [[ $drained == true ]]; then
                DRAIN_UNTIL_MS=$((NOW_MS + DRAIN_MS))
                set_state draining "drain requested: GRACEFUL_SHUTDOWN for \${DRAIN_SECONDS}s, then withdraw"
            elif ((BAD >= FALL)); then
                withdraw "$BAD_REASON, $BAD checks in a row"
            fi
            ;;
        draining)
            if [[ $drained == false ]]; then
                set_state announced "undrained before the drain ended"
            elif ((BAD >= FALL)); then
                set_state withdrawn "drained; $BAD_REASON, $BAD checks in a row"
            elif ((NOW_MS >= DRAIN_UNTIL_MS)); then
                set_state withdrawn "drained"
            fi
            ;;
        held-down)
            if ((\${#WITHDRAWALS[@]} < MAX_WITHDRAWALS_PER_HOUR)); then
                set_state withdrawn "flap damping over: \${#WITHDRAWALS[@]} withdrawals within \${FLAP_WINDOW_SECONDS}s"
            else
                held_until_ms
            fi
            ;;
    esac
    # Not an elif chain: a PoP released from hold-down in this tick may announce in the same tick.
    if [[ $STATE == withdrawn && $drained == false ]]; then
        if ((\${#WITHDRAWALS[@]} >= MAX_WITHDRAWALS_PER_HOUR)); then
            hold_down ""
        elif ((GOOD >= RISE)); then
            set_state announced "healthy, $GOOD checks in a row"
        fi
    fi
    in_sync || sync_state
    write_status
}

run_agent() {
    validate
    command -v curl >/dev/null || die "curl is not installed"
    command -v birdc >/dev/null || die "birdc is not installed"
    mkdir -p "$CONTROL_DIR" "\${STATUS_FILE%/*}" || die "cannot create $CONTROL_DIR"
    exec {SLEEP_FD}<> <(:)
    trap 'log "stopping; the announcement stays as it is"; exit 0' TERM INT

    GOOD=0 BAD=0 HEALTHY=false PROXY_OK=false ORIGIN_OK=false BAD_REASON=""
    now
    SINCE_MS=$NOW_MS
    load_withdrawals
    prune_withdrawals
    local previous=""
    [[ -r $STATE_FILE ]] && read -r previous <"$STATE_FILE"
    # A restart (a config push restarts the agent) keeps an announced PoP announced while its checks
    # pass; the first start after boot (no status in /run yet) starts withdrawn, as a new PoP does.
    if [[ -e $STATUS_FILE && $previous =~ ^define\\ ANYCAST_STATE\\ =\\ 2\\; && ! -e $DRAIN_FILE ]]; then
        STATE=announced
        LAST_REASON="agent restarted while announced"
        BAD=0
    else
        STATE=withdrawn
        LAST_REASON="agent started"
    fi
    state_value "$STATE"
    log "starting in state $STATE (ANYCAST_STATE = $WANTED), checking $PROXY_URL and $ORIGIN_URL every \${INTERVAL}s"
    # Assert the starting state once, so BIRD and the agent agree from the first tick.
    sync_state

    local next=$NOW_MS
    while :; do
        tick
        now
        next=$((next + INTERVAL_MS))
        # Behind schedule (slow checks): start the next tick now rather than bursting to catch up.
        ((next < NOW_MS)) && next=$NOW_MS
        sleep_ms $((next - NOW_MS))
    done
}

case \${1:-} in
    run) run_agent ;;
    status)
        [[ -r $STATUS_FILE ]] || die "no status in $STATUS_FILE: is anycast-health running?"
        read -r line <"$STATUS_FILE" && printf '%s\\n' "$line"
        ;;
    drain)
        { mkdir -p "$CONTROL_DIR" && : >"$DRAIN_FILE"; } || die "cannot create $DRAIN_FILE"
        echo "drain requested: $POP announces with GRACEFUL_SHUTDOWN for \${DRAIN_SECONDS}s, then withdraws until 'anycast-health undrain'"
        ;;
    undrain)
        rm -f "$DRAIN_FILE" || die "cannot remove $DRAIN_FILE"
        echo "undrained: $POP announces again after $RISE good checks"
        ;;
    release)
        { mkdir -p "$CONTROL_DIR" && : >"$RELEASE_FILE"; } || die "cannot create $RELEASE_FILE"
        echo "flap history cleared: $POP announces again after $RISE good checks, if it is not drained"
        ;;
    *)
        echo "usage: anycast-health run|status|drain|undrain|release" >&2
        exit 64
        ;;
esac
`;
