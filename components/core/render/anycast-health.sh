#!/bin/bash
# anycast-health: keeps this PoP's anycast prefix announced only while the PoP can serve.
# Shipped by pulumi-anycast: the same script on every PoP, its settings in the env file.
#
#   anycast-health run       the agent (systemd: anycast-health.service)
#   anycast-health status    print the agent's status (JSON)
#   anycast-health drain     announce with GRACEFUL_SHUTDOWN for DRAIN_SECONDS, then withdraw, until undrain
#   anycast-health undrain   end a drain; the PoP announces again after RISE good checks
#   anycast-health release   forget the flap history (after fixing the cause): a held-down PoP announces again
#
# Every tick it checks (a) the local proxy, nginx's health endpoint on the anycast address, and
# (b) the origin through the WireGuard mesh. BIRD is driven only through STATE_FILE, one line
# `define ANYCAST_STATE = N;` (0 withdrawn, 1 draining: announced with GRACEFUL_SHUTDOWN,
# 2 announced) that bird.conf includes and the export filters read, plus `birdc configure`: that
# re-evaluates the filters and sends UPDATE/WITHDRAW without resetting any session. The agent
# never restarts BIRD; stopping the agent leaves the announcement as it is (drain to take a PoP out).
set -u
# EPOCHREALTIME uses the locale's decimal separator; C makes it a '.'.
export LC_ALL=C

# Where the settings are: the unit sets ANYCAST_HEALTH_ENV; the fallback lets an operator run
# `anycast-health drain` on the host as is. It is the env file's path in the artifact registry
# (components/core/artifacts.ts), and test/render/health.test.ts fails if the two differ.
ENV_FILE=${ANYCAST_HEALTH_ENV:-/etc/anycast/health.env}

# Every setting, all required: the renderer (components/core/render/health.ts, renderHealthEnv)
# writes each one from the stack's config, and the script has no defaults of its own to drift
# from the config's.
SETTINGS=(POP ANYCAST_ADDRESS PROXY_URL ORIGIN_URL INTERVAL RISE FALL TIMEOUT DRAIN_SECONDS
    MAX_WITHDRAWALS_PER_HOUR FLAP_WINDOW_SECONDS STATE_FILE BIRD_SOCKET STATUS_FILE CONTROL_DIR)

die() {
    printf 'anycast-health: %s\n' "$*" >&2
    exit 2
}

# --- settings ---------------------------------------------------------------------------------

# The env file is KEY=value lines read as data, never sourced: a value (a URL path, say) is not
# code. Only its values count, never the process environment's.
load_settings() {
    local line key missing=()
    local -A seen=()
    [[ -r $ENV_FILE ]] || die "cannot read the settings file $ENV_FILE"
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%$'\r'}
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        key=${line%%=*}
        if [[ $line != *=* || " ${SETTINGS[*]} " != *" $key "* ]]; then
            printf 'anycast-health: %s: ignoring line: %s\n' "$ENV_FILE" "$line" >&2
            continue
        fi
        printf -v "$key" '%s' "${line#*=}"
        [[ -n ${!key} ]] && seen[$key]=1
    done <"$ENV_FILE"
    for key in "${SETTINGS[@]}"; do
        [[ -n ${seen[$key]:-} ]] || missing+=("$key")
    done
    ((${#missing[@]} == 0)) || die "$ENV_FILE does not set ${missing[*]} (every setting is required)"

    DRAIN_FILE=$CONTROL_DIR/drain
    # Withdrawal times (epoch ms) survive agent restarts here, so a restart does not reset flap damping.
    WITHDRAWALS_FILE=$CONTROL_DIR/withdrawals
    # `anycast-health release` leaves this for the running agent: forget the flap history (an
    # operator who fixed the cause of the flapping), so a held-down PoP may announce again.
    RELEASE_FILE=$CONTROL_DIR/release
}

# Decimal seconds ("0.1", "2", "2.5") to integer milliseconds in variable $1, without forking bc.
seconds_to_ms() {
    local whole frac
    [[ $2 =~ ^([0-9]+)(\.([0-9]*))?$ ]] || die "$3 must be a number of seconds, got '$2'"
    whole=${BASH_REMATCH[1]}
    frac=${BASH_REMATCH[3]}000
    printf -v "$1" '%d' "$((10#$whole * 1000 + 10#${frac:0:3}))"
}

positive_int() {
    [[ $1 =~ ^[1-9][0-9]*$ ]] || die "$2 must be a positive integer, got '$1'"
}

# The numeric settings, checked and converted once before the agent runs.
validate_settings() {
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

# --- time -------------------------------------------------------------------------------------

log() {
    printf 'anycast-health[%s]: %s\n' "$POP" "$*" >&2
}

# Milliseconds since the epoch into NOW_MS (a builtin: no date(1) fork per tick).
now() {
    local us=${EPOCHREALTIME//[.,]/}
    NOW_MS=$((10#$us / 1000))
}

# Sleep with the read builtin on a pipe nobody writes to: no sleep(1) fork per tick.
sleep_ms() {
    local secs
    printf -v secs '%d.%03d' "$(($1 / 1000))" "$(($1 % 1000))"
    read -r -t "$secs" -u "$SLEEP_FD" _ || true
}

# --- the announcement switch ------------------------------------------------------------------

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
        if ! printf 'define ANYCAST_STATE = %d;\n' "$WANTED" >"$tmp" || ! mv -f "$tmp" "$STATE_FILE"; then
            ((SYNC_FAILING++ == 0)) && log "cannot write $STATE_FILE, retrying every tick"
            return 1
        fi
        WRITTEN=$WANTED
        APPLIED=-1
    fi
    if ((APPLIED != WANTED)); then
        if ! out=$(birdc -s "$BIRD_SOCKET" configure 2>&1); then
            ((SYNC_FAILING++ == 0)) && log "birdc configure failed, retrying every tick: ${out//$'\n'/ | }"
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

# --- flap damping -----------------------------------------------------------------------------

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
    printf '%s\n' "${WITHDRAWALS[@]}" >"$tmp" && mv -f "$tmp" "$WITHDRAWALS_FILE"
}

# Forget withdrawals older than the window; the oldest kept one is first.
prune_withdrawals() {
    local kept=() t pruned=0
    for t in "${WITHDRAWALS[@]}"; do
        if ((NOW_MS - t < WINDOW_MS)); then kept+=("$t"); else pruned=1; fi
    done
    WITHDRAWALS=("${kept[@]}")
    ((pruned)) && save_withdrawals
    return 0
}

held_until_ms() {
    HELD_UNTIL_MS=$((WITHDRAWALS[0] + WINDOW_MS))
}

# Past the limit: withdrawn until the oldest counted withdrawal leaves the window. $1: what led here.
hold_down() {
    held_until_ms
    set_state held-down "$1${#WITHDRAWALS[@]} withdrawals within ${FLAP_WINDOW_SECONDS}s, held down for $(( (HELD_UNTIL_MS - NOW_MS + 999) / 1000 ))s"
}

# A health-driven withdrawal: counted for flap damping, and held down past the limit.
withdraw() {
    WITHDRAWALS+=("$NOW_MS")
    save_withdrawals
    if ((${#WITHDRAWALS[@]} >= MAX_WITHDRAWALS_PER_HOUR)); then
        hold_down "$1; "
    else
        set_state withdrawn "$1"
    fi
}

# `anycast-health release` asked to forget the flap history.
apply_release() {
    [[ -e $RELEASE_FILE ]] || return 0
    rm -f "$RELEASE_FILE"
    WITHDRAWALS=()
    save_withdrawals
    [[ $STATE == held-down ]] && set_state withdrawn "flap damping released by the operator"
    return 0
}

# --- checks -----------------------------------------------------------------------------------

# Measure: one curl for both checks, in parallel, so a tick costs one process and at most TIMEOUT.
# Sets PROXY_OK / ORIGIN_OK and what each check saw.
probe() {
    local out num code rc
    PROXY_OK=false ORIGIN_OK=false
    PROXY_DETAIL="no answer" ORIGIN_DETAIL="no answer"
    out=$(curl --silent --globoff --noproxy '*' --parallel --parallel-immediate --max-time "$TIMEOUT" \
        -o /dev/null -o /dev/null -w '%{urlnum} %{http_code} %{exitcode}\n' "$PROXY_URL" "$ORIGIN_URL" 2>/dev/null)
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
}

# Judge: from what probe saw, is this PoP healthy, and if not, why. Counts checks in a row.
assess() {
    if [[ $PROXY_OK == true && $ORIGIN_OK == true ]]; then
        HEALTHY=true
        ((GOOD++, BAD = 0))
        return 0
    fi
    HEALTHY=false
    ((BAD++, GOOD = 0))
    if [[ $PROXY_OK == false ]]; then
        BAD_REASON="proxy check failed ($PROXY_DETAIL)"
    else
        BAD_REASON="origin check failed ($ORIGIN_DETAIL)"
    fi
}

# --- status -----------------------------------------------------------------------------------

json_string() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf -v "$2" '"%s"' "$s"
}

write_status() {
    local pop reason held=null drain=false applied=false tmp=$STATUS_FILE.tmp.$$
    json_string "$POP" pop
    json_string "$LAST_REASON" reason
    [[ $STATE == held-down ]] && held=$HELD_UNTIL_MS
    [[ -e $DRAIN_FILE ]] && drain=true
    in_sync && applied=true
    printf '{"pop":%s,"state":"%s","anycast_state":%d,"healthy":%s,"proxy_ok":%s,"origin_ok":%s,"consecutive_good":%d,"consecutive_bad":%d,"withdrawals_last_hour":%d,"held_until":%s,"drain_requested":%s,"bird_applied":%s,"since":%d,"updated":%d,"last_reason":%s}\n' \
        "$pop" "$STATE" "$WANTED" "$HEALTHY" "$PROXY_OK" "$ORIGIN_OK" "$GOOD" "$BAD" "${#WITHDRAWALS[@]}" \
        "$held" "$drain" "$applied" "$SINCE_MS" "$NOW_MS" "$reason" \
        >"$tmp" && mv -f "$tmp" "$STATUS_FILE"
}

# --- the state machine, one tick --------------------------------------------------------------

# $1: whether a drain is requested.
step_announced() {
    if [[ $1 == true ]]; then
        DRAIN_UNTIL_MS=$((NOW_MS + DRAIN_MS))
        set_state draining "drain requested: GRACEFUL_SHUTDOWN for ${DRAIN_SECONDS}s, then withdraw"
    elif ((BAD >= FALL)); then
        withdraw "$BAD_REASON, $BAD checks in a row"
    fi
}

step_draining() {
    if [[ $1 == false ]]; then
        set_state announced "undrained before the drain ended"
    elif ((BAD >= FALL)); then
        set_state withdrawn "drained; $BAD_REASON, $BAD checks in a row"
    elif ((NOW_MS >= DRAIN_UNTIL_MS)); then
        set_state withdrawn "drained"
    fi
}

step_held_down() {
    if ((${#WITHDRAWALS[@]} < MAX_WITHDRAWALS_PER_HOUR)); then
        set_state withdrawn "flap damping over: ${#WITHDRAWALS[@]} withdrawals within ${FLAP_WINDOW_SECONDS}s"
    else
        held_until_ms
    fi
}

# Withdrawn and not drained: announce after RISE good checks, unless flap damping holds it down.
step_withdrawn() {
    [[ $1 == false ]] || return 0
    if ((${#WITHDRAWALS[@]} >= MAX_WITHDRAWALS_PER_HOUR)); then
        hold_down ""
    elif ((GOOD >= RISE)); then
        set_state announced "healthy, $GOOD checks in a row"
    fi
}

tick() {
    local drained=false
    now
    probe
    assess
    apply_release
    prune_withdrawals
    [[ -e $DRAIN_FILE ]] && drained=true
    case $STATE in
        announced) step_announced "$drained" ;;
        draining) step_draining "$drained" ;;
        held-down) step_held_down ;;
    esac
    # Not part of the case: a PoP released from hold-down in this tick may announce in the same tick.
    [[ $STATE == withdrawn ]] && step_withdrawn "$drained"
    in_sync || sync_state
    write_status
}

# --- the agent --------------------------------------------------------------------------------

preflight() {
    validate_settings
    command -v curl >/dev/null || die "curl is not installed"
    command -v birdc >/dev/null || die "birdc is not installed"
    mkdir -p "$CONTROL_DIR" "${STATUS_FILE%/*}" || die "cannot create $CONTROL_DIR"
}

# A restart (a config push restarts the agent) keeps an announced PoP announced while its checks
# pass; the first start after boot (no status in /run yet) starts withdrawn, as a new PoP does.
restore_state() {
    local previous=""
    GOOD=0 BAD=0 HEALTHY=false PROXY_OK=false ORIGIN_OK=false BAD_REASON=""
    now
    SINCE_MS=$NOW_MS
    load_withdrawals
    prune_withdrawals
    [[ -r $STATE_FILE ]] && read -r previous <"$STATE_FILE"
    if [[ -e $STATUS_FILE && $previous =~ ^define\ ANYCAST_STATE\ =\ 2\; && ! -e $DRAIN_FILE ]]; then
        STATE=announced
        LAST_REASON="agent restarted while announced"
    else
        STATE=withdrawn
        LAST_REASON="agent started"
    fi
    state_value "$STATE"
}

run_agent() {
    preflight
    exec {SLEEP_FD}<> <(:)
    trap 'log "stopping; the announcement stays as it is"; exit 0' TERM INT
    restore_state
    log "starting in state $STATE (ANYCAST_STATE = $WANTED) for $ANYCAST_ADDRESS, checking $PROXY_URL and $ORIGIN_URL every ${INTERVAL}s"
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

# --- the operator's commands ------------------------------------------------------------------

show_status() {
    local line
    [[ -r $STATUS_FILE ]] || die "no status in $STATUS_FILE: is anycast-health running?"
    read -r line <"$STATUS_FILE" && printf '%s\n' "$line"
}

request_drain() {
    { mkdir -p "$CONTROL_DIR" && : >"$DRAIN_FILE"; } || die "cannot create $DRAIN_FILE"
    echo "drain requested: $POP announces with GRACEFUL_SHUTDOWN for ${DRAIN_SECONDS}s, then withdraws until 'anycast-health undrain'"
}

end_drain() {
    rm -f "$DRAIN_FILE" || die "cannot remove $DRAIN_FILE"
    echo "undrained: $POP announces again after $RISE good checks"
}

request_release() {
    { mkdir -p "$CONTROL_DIR" && : >"$RELEASE_FILE"; } || die "cannot create $RELEASE_FILE"
    echo "flap history cleared: $POP announces again after $RISE good checks, if it is not drained"
}

case ${1:-} in
    run | status | drain | undrain | release) load_settings ;;
    *)
        echo "usage: anycast-health run|status|drain|undrain|release" >&2
        exit 64
        ;;
esac
case $1 in
    run) run_agent ;;
    status) show_status ;;
    drain) request_drain ;;
    undrain) end_drain ;;
    release) request_release ;;
esac
