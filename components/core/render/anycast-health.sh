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
# Every tick it checks (a) the local proxy, nginx's health endpoint on the anycast address,
# (b) every origin through the WireGuard mesh, and (c) every other PoP's status (its agent's own
# view, served by its nginx on its mesh address). From (b) and (c) it keeps the paths to the
# origins, directly or through another PoP's relay, and writes them for nginx (UPSTREAMS_FILE:
# the best working path primary, broken ones down). A PoP is healthy while its proxy answers and
# one path works. Without a path it withdraws only for a local fault: another PoP that is
# announced still reaches an origin. When no PoP reaches any origin (a global fault) every PoP
# stays announced and nginx answers 503 at once; such a fault is never a withdrawal, so it costs
# no flap damping. BIRD is driven only through STATE_FILE, one line
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
SETTINGS=(POP ANYCAST_ADDRESS PROXY_URL ORIGINS ORIGIN_URLS ORIGIN_SERVERS ORIGIN_PREFERENCE PEERS
    PEER_STATUS_URLS PEER_SERVERS RELAY MESH_TOPOLOGY INTERVAL RISE FALL TIMEOUT DRAIN_SECONDS
    MAX_WITHDRAWALS_PER_HOUR FLAP_WINDOW_SECONDS PASSIVE_FAIL_TIMEOUT STATE_FILE BIRD_SOCKET STATUS_FILE
    CONTROL_DIR UPSTREAMS_FILE NGINX_PID_FILE)

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

# A space-separated list setting into the array named $1; "-" is the empty list (no setting may be empty).
split_list() {
    local -n list=$1
    # shellcheck disable=SC2034 # list is a nameref: assigning it fills the caller's array
    if [[ $2 == - ]]; then list=(); else read -r -a list <<<"$2"; fi
}

# The lists: names, check URLs and nginx servers of the origins and the peers, pairwise.
validate_lists() {
    local name
    split_list ORIGIN_NAMES "$ORIGINS"
    split_list ORIGIN_URL_LIST "$ORIGIN_URLS"
    split_list ORIGIN_SERVER_LIST "$ORIGIN_SERVERS"
    split_list PEER_NAMES "$PEERS"
    split_list PEER_URL_LIST "$PEER_STATUS_URLS"
    split_list PEER_SERVER_LIST "$PEER_SERVERS"
    N_DIRECT=${#ORIGIN_NAMES[@]}
    N_PEERS=${#PEER_NAMES[@]}
    ((N_DIRECT > 0)) || die "ORIGINS names no origin"
    ((${#ORIGIN_URL_LIST[@]} == N_DIRECT && ${#ORIGIN_SERVER_LIST[@]} == N_DIRECT)) ||
        die "ORIGINS, ORIGIN_URLS and ORIGIN_SERVERS must list as many entries"
    ((${#PEER_URL_LIST[@]} == N_PEERS && ${#PEER_SERVER_LIST[@]} == N_PEERS)) ||
        die "PEERS, PEER_STATUS_URLS and PEER_SERVERS must list as many entries"
    PREFERRED=()
    if [[ $ORIGIN_PREFERENCE != measured ]]; then
        split_list PREFERRED "$ORIGIN_PREFERENCE"
        for name in "${PREFERRED[@]}"; do
            [[ " ${ORIGIN_NAMES[*]} " == *" $name "* ]] || die "ORIGIN_PREFERENCE names $name, which is not in ORIGINS"
        done
    fi
    [[ $RELAY == yes || $RELAY == no ]] || die "RELAY must be yes or no, got '$RELAY'"
    [[ $MESH_TOPOLOGY == full || $MESH_TOPOLOGY == hub ]] || die "MESH_TOPOLOGY must be full or hub, got '$MESH_TOPOLOGY'"
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
    positive_int "$PASSIVE_FAIL_TIMEOUT" PASSIVE_FAIL_TIMEOUT
    validate_lists
    # How long a peer's view counts after its last change: a few of its ticks, each of which may
    # take a check timeout.
    VIEW_MAX_AGE_MS=$((4 * (INTERVAL_MS + TIMEOUT_MS)))
    # How long this PoP waits, once it has lost every path, before it believes a peer that still
    # reaches an origin: long enough for a peer sharing the fault to have noticed it too, so a
    # global fault never passes for a local one. Against a frozen origin every tick lasts a whole
    # timeout, and the peer's ticks run up to one behind ours: one tick for that, one for its view
    # to be written and fetched, and a timeout more.
    CONFIRM_MS=$((2 * (INTERVAL_MS + TIMEOUT_MS) + TIMEOUT_MS))
    # How long no other PoP may answer at all before this PoP counts itself cut off from the mesh:
    # longer than a peer's view stays fresh, so a few slow or lost status fetches are not enough.
    ISOLATION_MS=$((VIEW_MAX_AGE_MS > CONFIRM_MS ? VIEW_MAX_AGE_MS : CONFIRM_MS))
    # The status file's longest silence: a quarter of VIEW_MAX_AGE_MS, so a peer sees its seq move
    # several times before it would count the view stale.
    STATUS_REFRESH_MS=$((INTERVAL_MS + TIMEOUT_MS))
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

# --- paths to the origins --------------------------------------------------------------------
#
# Path k < N_DIRECT is origin k over the mesh. With RELAY=yes, path N_DIRECT + j goes through peer
# j's relay: its nginx on its mesh address, which forwards to the origins that peer reaches itself
# (never to another relay, so a request crosses at most one). Each path has rise/fall hysteresis
# of its own, a smoothed round-trip time (the TCP connect time of its checks; through a relay, the
# time to the peer plus the peer's own best) and its failures among its last 16 checks.

# Direct paths in the order of preference: ORIGIN_PREFERENCE, then the order of ORIGINS.
order_direct_paths() {
    local name k
    DIRECT_ORDER=()
    for name in "${PREFERRED[@]}"; do
        for ((k = 0; k < N_DIRECT; k++)); do
            [[ ${ORIGIN_NAMES[k]} == "$name" ]] && DIRECT_ORDER+=("$k")
        done
    done
    for ((k = 0; k < N_DIRECT; k++)); do
        [[ " ${PREFERRED[*]} " == *" ${ORIGIN_NAMES[k]} "* ]] || DIRECT_ORDER+=("$k")
    done
}

setup_paths() {
    local k j
    PATH_NAME=("${ORIGIN_NAMES[@]}") PATH_SERVER=("${ORIGIN_SERVER_LIST[@]}")
    if [[ $RELAY == yes ]]; then
        for ((j = 0; j < N_PEERS; j++)); do
            PATH_NAME+=("via ${PEER_NAMES[j]}") PATH_SERVER+=("${PEER_SERVER_LIST[j]}")
        done
    fi
    N_PATHS=${#PATH_NAME[@]}
    # Every path starts up, as the pushed UPSTREAMS_FILE has it; FALL failed checks take one down.
    for ((k = 0; k < N_PATHS; k++)); do
        PATH_UP[k]=1 PATH_GOOD[k]=0 PATH_BAD[k]=0 PATH_SRTT[k]=0 PATH_HISTORY[k]=0
    done
    for ((j = 0; j < N_PEERS; j++)); do
        PEER_SEQ[j]="" PEER_SEQ_MS[j]=0 PEER_STATE[j]=unknown PEER_SERVING[j]=false PEER_DIRECT_UP[j]=0
        PEER_BEST_US[j]=-1 PEER_LAST_MS[j]=0 PEER_LAST_TAKES_OVER[j]=0
    done
    order_direct_paths
    PRIMARY=${DIRECT_ORDER[0]}
    UPSTREAMS_WRITTEN="" RELOAD_PENDING=0 RELOAD_FAILING=0
}

# Seconds with up to 6 decimals (curl's timings) into integer microseconds in variable $1 (at least 1).
seconds_to_us() {
    local frac us=1
    if [[ $2 =~ ^([0-9]+)(\.([0-9]*))?$ ]]; then
        frac=${BASH_REMATCH[3]}000000
        us=$((10#${BASH_REMATCH[1]} * 1000000 + 10#${frac:0:6}))
    fi
    printf -v "$1" '%d' "$((us > 0 ? us : 1))"
}

# One check of path $1: $2 is 1 when it worked, $3 its round-trip sample in µs, $4 what it saw.
record_check() {
    local k=$1 ok=$2 sample=$3
    PATH_HISTORY[k]=$((((PATH_HISTORY[k] << 1) | (1 - ok)) & 0xffff))
    if ((ok)); then
        ((PATH_GOOD[k]++, PATH_BAD[k] = 0))
        if ((PATH_SRTT[k] == 0)); then PATH_SRTT[k]=$sample; else PATH_SRTT[k]=$(((3 * PATH_SRTT[k] + sample) / 4)); fi
        if ((!PATH_UP[k] && PATH_GOOD[k] >= RISE)); then
            PATH_UP[k]=1
            log "path ${PATH_NAME[k]} up: $RISE checks in a row"
        fi
    else
        ((PATH_BAD[k]++, PATH_GOOD[k] = 0))
        if ((PATH_UP[k] && PATH_BAD[k] >= FALL)); then
            PATH_UP[k]=0
            log "path ${PATH_NAME[k]} down: $4, $FALL checks in a row"
        fi
    fi
}

# The cost of path $1 in SCORE (µs): its smoothed round-trip time, plus a quarter for each of its
# last 16 checks that failed, so a lossy path loses to a clean one of similar delay.
path_score() {
    local history=${PATH_HISTORY[$1]} fails=0
    while ((history)); do ((fails += history & 1, history >>= 1)); done
    SCORE=$((PATH_SRTT[$1] * (4 + fails) / 4))
}

# The best working path among $@ into BEST (-1: none) and its cost into BEST_SCORE. With a
# configured ORIGIN_PREFERENCE for direct paths, the first working one in that order.
best_of() {
    local k
    BEST=-1 BEST_SCORE=0
    for k in "$@"; do
        ((PATH_UP[k])) || continue
        if ((k < N_DIRECT)) && [[ $ORIGIN_PREFERENCE != measured ]]; then
            BEST=$k
            return 0
        fi
        path_score "$k"
        if ((BEST < 0 || SCORE < BEST_SCORE)); then BEST=$k BEST_SCORE=$SCORE; fi
    done
}

# The primary path: a direct one while any works, a relay only when none does. A working primary
# stays unless another one of its kind is clearly cheaper (by a fifth and by a millisecond), so
# round-trip noise does not move traffic back and forth.
choose_primary() {
    local k relays=()
    best_of "${DIRECT_ORDER[@]}"
    if ((BEST < 0)); then
        for ((k = N_DIRECT; k < N_PATHS; k++)); do relays+=("$k"); done
        best_of "${relays[@]}"
    fi
    if ((BEST >= 0 && PRIMARY >= 0 && BEST != PRIMARY && PATH_UP[PRIMARY])) &&
        (((BEST < N_DIRECT) == (PRIMARY < N_DIRECT))); then
        if ((BEST < N_DIRECT)) && [[ $ORIGIN_PREFERENCE != measured ]]; then
            PRIMARY=$BEST
            return 0
        fi
        path_score "$PRIMARY"
        ((BEST_SCORE * 5 < SCORE * 4 && SCORE - BEST_SCORE > 1000)) || BEST=$PRIMARY
    fi
    PRIMARY=$BEST
}

# --- the paths, for nginx -----------------------------------------------------------------------

# One upstream block into BLOCK: $1 its name, $2 its keepalive pool, $3 its primary path (-1:
# none), then every path it lists in order. The primary first; working paths are backups, broken
# ones down. The same layout as the pushed file (components/core/render/nginx.ts).
upstream_block() {
    local name=$1 keepalive=$2 primary=$3 k
    shift 3
    BLOCK="upstream $name {"$'\n'"    zone $name 64k;"$'\n'
    ((primary >= 0)) && server_line "$primary" ""
    for k in "$@"; do
        ((k == primary)) && continue
        if ((PATH_UP[k])); then server_line "$k" " backup"; else server_line "$k" " down"; fi
    done
    BLOCK+="    keepalive $keepalive;"$'\n'"}"$'\n'
}

# Path $1's server line, with $2 its role (" backup", " down" or nothing for the primary), onto BLOCK.
server_line() {
    local line
    printf -v line '    server %s max_fails=1 fail_timeout=%ds%s;   # %s\n' "${PATH_SERVER[$1]}" "$PASSIVE_FAIL_TIMEOUT" "$2" "${PATH_NAME[$1]}"
    BLOCK+=$line
}

render_upstreams() {
    local k all=("${DIRECT_ORDER[@]}") relay_primary=-1
    for ((k = N_DIRECT; k < N_PATHS; k++)); do all+=("$k"); done
    UPSTREAMS="# $UPSTREAMS_FILE for PoP $POP: the paths to the origins."$'\n'
    UPSTREAMS+="# Written by anycast-health from its checks (primary, backup, down); nginx.conf includes it."$'\n'
    upstream_block origin 32 "$PRIMARY" "${all[@]}"
    UPSTREAMS+=$BLOCK$'\n'
    UPSTREAMS+="# What this PoP relays for the other PoPs: its own direct paths only, never another relay."$'\n'
    ((PRIMARY >= 0 && PRIMARY < N_DIRECT)) && relay_primary=$PRIMARY
    upstream_block origin_direct 16 "$relay_primary" "${DIRECT_ORDER[@]}"
    UPSTREAMS+=$BLOCK
}

# "primary origin (0.4 ms); backup origin2, via ams; down via sgp", for the log.
describe_paths() {
    local k backup="" down=""
    if ((PRIMARY >= 0)); then
        path_score "$PRIMARY"
        printf -v PATHS_TEXT 'primary %s (%d.%d ms)' "${PATH_NAME[PRIMARY]}" "$((SCORE / 1000))" "$((SCORE % 1000 / 100))"
    else
        PATHS_TEXT="no path works: every request gets the 503"
    fi
    for ((k = 0; k < N_PATHS; k++)); do
        ((k == PRIMARY)) && continue
        if ((PATH_UP[k])); then backup+="${backup:+, }${PATH_NAME[k]}"; else down+="${down:+, }${PATH_NAME[k]}"; fi
    done
    [[ -n $backup ]] && PATHS_TEXT+="; backup $backup"
    [[ -n $down ]] && PATHS_TEXT+="; down $down"
    return 0
}

# Bring UPSTREAMS_FILE to the paths as they are now and have nginx reload it (SIGHUP to its
# master: it starts workers with the new file and lets the old ones finish their requests). The
# file is written atomically and only when it changes; a failed reload is retried every tick.
sync_upstreams() {
    local tmp=$UPSTREAMS_FILE.tmp.$$ pid=""
    render_upstreams
    if [[ $UPSTREAMS != "$UPSTREAMS_WRITTEN" ]]; then
        if ! printf '%s' "$UPSTREAMS" >"$tmp" || ! mv -f "$tmp" "$UPSTREAMS_FILE"; then
            ((RELOAD_FAILING++ == 0)) && log "cannot write $UPSTREAMS_FILE, retrying every tick"
            return 1
        fi
        UPSTREAMS_WRITTEN=$UPSTREAMS RELOAD_PENDING=1
        describe_paths
        log "nginx: $PATHS_TEXT"
    fi
    ((RELOAD_PENDING)) || return 0
    if read -r pid <"$NGINX_PID_FILE" 2>/dev/null && [[ $pid =~ ^[0-9]+$ ]] && kill -HUP "$pid" 2>/dev/null; then
        ((RELOAD_FAILING > 0)) && log "nginx reloaded after $RELOAD_FAILING failed attempts"
        RELOAD_PENDING=0 RELOAD_FAILING=0
    else
        ((RELOAD_FAILING++ == 0)) && log "cannot reload nginx (pid file $NGINX_PID_FILE), retrying every tick"
    fi
    return 0
}

# --- checks -----------------------------------------------------------------------------------

# Measure: one curl for every check, in parallel, so a tick costs one process and at most TIMEOUT:
# the proxy, each origin directly, and each peer's status (into CONTROL_DIR/peer-<j>.json).
probe() {
    local out num code rc connect k j outs=(-o /dev/null) urls=("$PROXY_URL")
    for ((k = 0; k < N_DIRECT; k++)); do
        outs+=(-o /dev/null) urls+=("${ORIGIN_URL_LIST[k]}")
        CHECK_OK[k]=0 CHECK_RTT[k]=0 CHECK_DETAIL[k]="no answer"
    done
    for ((j = 0; j < N_PEERS; j++)); do
        outs+=(-o "$CONTROL_DIR/peer-$j.json") urls+=("${PEER_URL_LIST[j]}")
        PEER_FETCHED[j]=0 PEER_RTT[j]=0
    done
    PROXY_OK=false PROXY_DETAIL="no answer"
    # curl pairs the n-th -o with the n-th URL.
    out=$(curl --silent --globoff --noproxy '*' --parallel --parallel-immediate --max-time "$TIMEOUT" \
        "${outs[@]}" -w '%{urlnum} %{http_code} %{exitcode} %{time_connect}\n' "${urls[@]}" 2>/dev/null)
    while read -r num code rc connect; do
        [[ $num =~ ^[0-9]+$ ]] || continue
        if ((num == 0)); then
            PROXY_DETAIL="http $code, curl exit $rc"
            [[ $rc == 0 && $code == 200 ]] && PROXY_OK=true
        elif ((num <= N_DIRECT)); then
            k=$((num - 1))
            CHECK_DETAIL[k]="http $code, curl exit $rc"
            if [[ $rc == 0 && $code == 2[0-9][0-9] ]]; then
                CHECK_OK[k]=1
                seconds_to_us "CHECK_RTT[$k]" "$connect"
            fi
        else
            j=$((num - 1 - N_DIRECT))
            [[ $rc == 0 && $code == 200 ]] && read_peer "$j" "$connect"
        fi
    done <<<"$out"
}

# Peer $1's status as its agent wrote it (one JSON line, this script's own format), fetched in
# $2 seconds to connect. Its seq moves every tick, so a view that stops changing goes stale.
read_peer() {
    local j=$1 line=""
    read -r line <"$CONTROL_DIR/peer-$j.json" || [[ -n $line ]] || return 0
    [[ $line =~ \"seq\":([0-9]+) ]] || return 0
    if [[ ${BASH_REMATCH[1]} != "${PEER_SEQ[j]}" ]]; then PEER_SEQ[j]=${BASH_REMATCH[1]} PEER_SEQ_MS[j]=$NOW_MS; fi
    [[ $line =~ \"state\":\"([a-z-]+)\" ]] && PEER_STATE[j]=${BASH_REMATCH[1]}
    [[ $line =~ \"serving\":(true|false) ]] && PEER_SERVING[j]=${BASH_REMATCH[1]}
    [[ $line =~ \"direct_up\":([0-9]+) ]] && PEER_DIRECT_UP[j]=${BASH_REMATCH[1]}
    [[ $line =~ \"best_us\":(-?[0-9]+) ]] && PEER_BEST_US[j]=${BASH_REMATCH[1]}
    PEER_FETCHED[j]=1 LAST_ANSWER_MS=$NOW_MS
    seconds_to_us "PEER_RTT[$j]" "$2"
    if peer_fresh "$j"; then
        PEER_LAST_MS[j]=$NOW_MS
        PEER_LAST_TAKES_OVER[j]=0
        [[ ${PEER_STATE[j]} == announced && ${PEER_SERVING[j]} == true ]] && PEER_LAST_TAKES_OVER[j]=1
    fi
    return 0
}

# Peer $1 answered this tick with a view that is still changing.
peer_fresh() {
    ((PEER_FETCHED[$1] && NOW_MS - PEER_SEQ_MS[$1] < VIEW_MAX_AGE_MS))
}

# Every path gets this tick's result: directly, its own check; through a relay, whether the peer
# answered with a fresh view in which it reaches an origin itself.
update_paths() {
    local k j ok why
    for ((k = 0; k < N_DIRECT; k++)); do
        record_check "$k" "${CHECK_OK[k]}" "${CHECK_RTT[k]}" "${CHECK_DETAIL[k]}"
    done
    if [[ $RELAY == yes ]]; then
        for ((j = 0; j < N_PEERS; j++)); do
            ok=0 why="${PEER_NAMES[j]} does not answer"
            ((PEER_FETCHED[j])) && why="${PEER_NAMES[j]} reaches no origin"
            peer_fresh "$j" && ((PEER_DIRECT_UP[j] > 0 && PEER_BEST_US[j] >= 0)) && ok=1
            record_check "$((N_DIRECT + j))" "$ok" "$((PEER_RTT[j] + (PEER_BEST_US[j] > 0 ? PEER_BEST_US[j] : 0)))" "$why"
        done
    fi
    DIRECT_UP=0 BEST_US=-1 SERVING=false
    for ((k = 0; k < N_PATHS; k++)); do
        ((PATH_UP[k])) || continue
        SERVING=true
        ((k < N_DIRECT)) || continue
        ((DIRECT_UP++))
        path_score "$k"
        ((BEST_US < 0 || SCORE < BEST_US)) && BEST_US=$SCORE
    done
    choose_primary
}

# Judge: is this PoP healthy and, if not, is the fault its own (counted towards a withdrawal) or
# one every PoP shares (FAULT=global: never a withdrawal)? Counts checks in a row.
assess() {
    if [[ $PROXY_OK == false ]]; then
        HEALTHY=false FAULT=proxy
        ((BAD++, GOOD = 0))
        BAD_REASON="proxy check failed ($PROXY_DETAIL)"
        return 0
    fi
    if [[ $SERVING == true ]]; then
        HEALTHY=true FAULT=none NOT_SERVING_SINCE_MS=0
        ((GOOD++, BAD = 0))
        return 0
    fi
    HEALTHY=false GOOD=0
    ((NOT_SERVING_SINCE_MS > 0)) || NOT_SERVING_SINCE_MS=$NOW_MS
    classify_origin_fault
    if [[ $FAULT == local ]]; then
        ((BAD++))
        BAD_REASON="no origin reachable from here (${CHECK_DETAIL[*]}) while $TAKEOVER reaches one and is announced"
    else
        BAD=0
        BAD_REASON="no PoP reaches an origin: staying announced, nginx answers 503"
    fi
}

# No path from here: local when another PoP is announced and reaches an origin (its view is newer
# than this fault plus CONFIRM_MS), or, cut off from the whole mesh (no peer has answered since
# this PoP lost its paths, for ISOLATION_MS), when one was so just before. Otherwise global:
# every PoP would lose the same origins, and the last announced PoP never withdraws for an origin
# fault. In a hub mesh a PoP cut off from the hub cannot tell that from the hub being down: it
# counts as global.
classify_origin_fault() {
    local j confirmed=$((NOT_SERVING_SINCE_MS + CONFIRM_MS)) answered=0
    FAULT=global TAKEOVER=""
    for ((j = 0; j < N_PEERS; j++)); do
        ((PEER_FETCHED[j])) || continue
        answered=1
        if peer_fresh "$j" && ((PEER_SEQ_MS[j] >= confirmed)) &&
            [[ ${PEER_STATE[j]} == announced && ${PEER_SERVING[j]} == true ]]; then
            FAULT=local TAKEOVER=${PEER_NAMES[j]}
            return 0
        fi
    done
    ((answered == 0 && N_PEERS > 0 && LAST_ANSWER_MS < NOT_SERVING_SINCE_MS && NOW_MS >= NOT_SERVING_SINCE_MS + ISOLATION_MS)) &&
        [[ $MESH_TOPOLOGY == full ]] || return 0
    for ((j = 0; j < N_PEERS; j++)); do
        if ((PEER_LAST_TAKES_OVER[j] && PEER_LAST_MS[j] >= NOT_SERVING_SINCE_MS - VIEW_MAX_AGE_MS)); then
            FAULT=local TAKEOVER="${PEER_NAMES[j]} (before this PoP lost the mesh)"
            return 0
        fi
    done
}

# --- status -----------------------------------------------------------------------------------

json_string() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf -v "$2" '"%s"' "$s"
}

# Each path as JSON into PATHS_JSON: name, kind, up, its role in nginx, round-trip and failures.
paths_json() {
    local k kind role up history fails entry
    PATHS_JSON="" PATHS_KEY=""
    for ((k = 0; k < N_PATHS; k++)); do
        kind=direct
        ((k < N_DIRECT)) || kind=relay
        role=down up=false
        ((PATH_UP[k])) && role=backup up=true
        ((k == PRIMARY)) && role=primary
        history=${PATH_HISTORY[k]} fails=0
        while ((history)); do ((fails += history & 1, history >>= 1)); done
        printf -v entry '{"name":"%s","kind":"%s","up":%s,"role":"%s","rtt_us":%d,"failed_of_16":%d}' \
            "${PATH_NAME[k]}" "$kind" "$up" "$role" "${PATH_SRTT[k]}" "$fails"
        PATHS_JSON+=${PATHS_JSON:+,}$entry PATHS_KEY+="$role "
    done
}

# The status, also what the other PoPs read (seq, state, serving, direct_up, best_us). Written
# (a rename, so a process start) when what it says changes, and at least every STATUS_REFRESH_MS
# so that its seq keeps moving for the peers; the counters and round trips in between are not
# worth a process start per tick, which on a small VPS costs as much as the checks themselves.
write_status() {
    local pop reason held=null drain=false applied=false tmp=$STATUS_FILE.tmp.$$ primary=null key
    json_string "$POP" pop
    json_string "$LAST_REASON" reason
    [[ $STATE == held-down ]] && held=$HELD_UNTIL_MS
    [[ -e $DRAIN_FILE ]] && drain=true
    in_sync && applied=true
    ((PRIMARY >= 0)) && json_string "${PATH_NAME[PRIMARY]}" primary
    paths_json
    key="$STATE $WANTED $HEALTHY $PROXY_OK $SERVING $DIRECT_UP $FAULT $primary $PATHS_KEY ${#WITHDRAWALS[@]} $held $drain $applied $SINCE_MS $reason"
    [[ $key == "$STATUS_KEY" ]] && ((NOW_MS - STATUS_WRITTEN_MS < STATUS_REFRESH_MS)) && return 0
    STATUS_KEY=$key STATUS_WRITTEN_MS=$NOW_MS
    printf '{"pop":%s,"seq":%d,"state":"%s","anycast_state":%d,"healthy":%s,"proxy_ok":%s,"origin_ok":%s,"serving":%s,"direct_up":%d,"best_us":%d,"fault":"%s","primary":%s,"paths":[%s],"consecutive_good":%d,"consecutive_bad":%d,"withdrawals_last_hour":%d,"held_until":%s,"drain_requested":%s,"bird_applied":%s,"since":%d,"updated":%d,"tick_ms":%d,"last_reason":%s}\n' \
        "$pop" "$SEQ" "$STATE" "$WANTED" "$HEALTHY" "$PROXY_OK" "$SERVING" "$SERVING" "$DIRECT_UP" "$BEST_US" "$FAULT" "$primary" "$PATHS_JSON" \
        "$GOOD" "$BAD" "${#WITHDRAWALS[@]}" "$held" "$drain" "$applied" "$SINCE_MS" "$NOW_MS" "$TICK_MS" "$reason" \
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
    # How long a tick takes here (checks, work and the interval), smoothed: the time the agent
    # needs to act on a fault is a number of ticks, and on a busy machine a tick outlasts
    # INTERVAL + TIMEOUT (status: tick_ms).
    ((TICK_STARTED_MS > 0)) && TICK_MS=$(((TICK_MS > 0 ? 3 * TICK_MS + NOW_MS - TICK_STARTED_MS : 4 * (NOW_MS - TICK_STARTED_MS)) / 4))
    TICK_STARTED_MS=$NOW_MS
    ((SEQ++))
    probe
    update_paths
    sync_upstreams
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
    GOOD=0 BAD=0 HEALTHY=false PROXY_OK=false SERVING=false BAD_REASON="" FAULT=none SEQ=0
    NOT_SERVING_SINCE_MS=0 DIRECT_UP=0 BEST_US=-1 LAST_ANSWER_MS=0
    STATUS_KEY="" STATUS_WRITTEN_MS=0 TICK_MS=0 TICK_STARTED_MS=0
    setup_paths
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
    log "starting in state $STATE (ANYCAST_STATE = $WANTED) for $ANYCAST_ADDRESS, checking $PROXY_URL, $N_DIRECT origin(s) (${ORIGIN_NAMES[*]}) and $N_PEERS other PoP(s) every ${INTERVAL}s; relay $RELAY"
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
