# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2034 # variables for the scripts
#
# Shell functions shared by the bench/run_*.sh scripts, which source this
# file right after `set -euo pipefail`:
#
#   . "$(dirname "$0")/lib.sh"
#
# Sourcing sets ROOT (the repository) and ME (the script's file name, the
# prefix of its messages).  The functions read the scripts' own variables
# where noted (BUILD_DIR, DO_BUILD, LOG, CSV, DRIVER, SERVER_LOG, ...).

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ME=${0##*/}

# ---- Messages and options ----

# log MSG...: a message on stderr, prefixed with the script's name.
log() { echo "$ME: $*" >&2; }

# usage_error MSG...: logs MSG and exits with status 2 (a bad option).
usage_error() {
    log "$*"
    exit 2
}

# unknown_option OPT: the error for an option the script does not take.
unknown_option() { usage_error "unknown option '$1' (see --help)"; }

# print_help: the script's header comment (from line 4 to the line before
# `set -euo pipefail`), without the comment marks.
print_help() {
    sed -n '4,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

# ms_of SECONDS PARTS: milliseconds of SECONDS / PARTS, rounded; empty when
# SECONDS is not a number >= 0.
ms_of() {
    awk -v s="$1" -v n="$2" 'BEGIN {
        if (s !~ /^[0-9]+([.][0-9]*)?$|^[.][0-9]+$/) { exit }
        printf "%d", s * 1000 / n + 0.5 }'
}

# set_windows STATUS: sets WINDOW_MS (a third of RUN_SECONDS) and WARMUP_MS
# (WARMUP), both in ms; logs and exits with STATUS when either is not a
# usable number of seconds.
set_windows() {
    WINDOW_MS=$(ms_of "$RUN_SECONDS" 3)
    WARMUP_MS=$(ms_of "$WARMUP" 1)
    if [ -z "$WINDOW_MS" ] || [ "$WINDOW_MS" -lt 10 ]; then
        log "--seconds: expected at least 0.03, got '$RUN_SECONDS'"
        exit "$1"
    fi
    if [ -z "$WARMUP_MS" ]; then
        log "--warmup: expected seconds, got '$WARMUP'"
        exit "$1"
    fi
}

# ---- Build ----

# build TARGET...: unless DO_BUILD is 0, configures BUILD_DIR (Release) if
# it has no CMake cache yet and builds TARGETs there.
build() {
    if [ "$DO_BUILD" = 1 ]; then
        if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
            log "configuring $BUILD_DIR (Release)"
            cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >&2
        fi
        log "building in $BUILD_DIR"
        cmake --build "$BUILD_DIR" -j2 --target "$@" >&2
    fi
}

# cache_value NAME: the value of NAME in BUILD_DIR's CMake cache, or empty.
cache_value() {
    sed -n "s/^$1:[A-Z]*=//p" "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true
}

# check_build_type: sets BUILD_TYPE; warns when it is not an optimised one.
check_build_type() {
    BUILD_TYPE=$(cache_value CMAKE_BUILD_TYPE)
    case "$BUILD_TYPE" in
    Release | RelWithDebInfo | MinSizeRel) ;;
    *) log "warning: $BUILD_DIR is a '${BUILD_TYPE:-default}' build;" \
           "figures are not representative" ;;
    esac
}

# check_sanitize: warns when BUILD_DIR is built with sanitizers.
check_sanitize() {
    if [ "$(cache_value MI_SANITIZE)" = ON ]; then
        log "warning: $BUILD_DIR is built with sanitizers; figures are not" \
            "representative"
    fi
}

# require_exec FILE...: exits 1 unless every FILE is an executable.
require_exec() {
    local f
    for f in "$@"; do
        if [ ! -x "$f" ]; then
            log "missing $f (build with gRPC and ONNX Runtime on)"
            exit 1
        fi
    done
}

# build_models: builds the models of bench/models into MODELS
# (bench/out/models).
build_models() {
    MODELS=$ROOT/bench/out/models
    /usr/bin/python3 "$ROOT/bench/models/build_models.py" --out "$MODELS" >&2
}

# ---- Output files ----

# out_files NAME: sets OUT_DIR (bench/out, created), STAMP (the time),
# OUT_BASE (OUT_DIR/NAME-STAMP) and CSV, TXT and LOG (OUT_BASE.csv, .txt
# and .log); empties LOG.
out_files() {
    OUT_DIR=$ROOT/bench/out
    mkdir -p "$OUT_DIR"
    STAMP=$(date +%Y%m%d-%H%M%S)
    OUT_BASE=$OUT_DIR/$1-$STAMP
    CSV=$OUT_BASE.csv
    TXT=$OUT_BASE.txt
    LOG=$OUT_BASE.log
    : >"$LOG"
}

# ---- Machine load ----

# loadavg: the 1, 5 and 15 minute load averages.
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Work on the machine that is not this benchmark's: busy CPU time of all
# cores (/proc/stat: user, nice, system and steal; not interrupts, which
# loopback traffic of our own would fill) minus the CPU time of this shell
# and everything it started and reaped (the server, the clients), over the
# wall time.  The load average cannot tell the two apart; this can.

# noise_init: sets CLK_TCK and TIMES_FILE (a temporary file: the script
# removes it on exit).
noise_init() {
    CLK_TCK=$(getconf CLK_TCK)
    TIMES_FILE=$(mktemp)
}

# machine_busy_s: busy CPU seconds of all cores since boot.
machine_busy_s() {
    awk -v hz="$CLK_TCK" '/^cpu / {
        print ($2 + $3 + $4 + $9) / hz; exit }' /proc/stat
}

# own_cpu: sets OWN_CPU_S.  `times` must run in this shell, not in a $(...)
# subshell, whose own times and children's are its own.
own_cpu() {
    times >"$TIMES_FILE"
    OWN_CPU_S=$(awk '{ for (i = 1; i <= NF; i++) { split($i, a, /[ms]/)
                           t += a[1] * 60 + a[2] } } END { print t }' \
        "$TIMES_FILE")
}

# noise_start: the start of the span noise_end measures.
noise_start() {
    NOISE_T0=$(date +%s.%N)
    NOISE_BUSY0=$(machine_busy_s)
    own_cpu
    NOISE_OWN0=$OWN_CPU_S
}

# noise_end: sets OTHER_CORES: the other work in cores, averaged over the
# run (call once every process the script started has been reaped).
noise_end() {
    own_cpu
    OTHER_CORES=$(awk -v t0="$NOISE_T0" -v t1="$(date +%s.%N)" \
        -v b0="$NOISE_BUSY0" -v b1="$(machine_busy_s)" -v o0="$NOISE_OWN0" \
        -v o1="$OWN_CPU_S" 'BEGIN { x = ((b1 - b0) - (o1 - o0)) / (t1 - t0)
                                    printf "%.2f", (x < 0 ? 0 : x) }')
}

# ---- Server ----

SERVER_PID=

# start_server [--need-http] [--tries N] COMMAND...: runs COMMAND (a
# `modinfer serve ... --address 127.0.0.1` command line) in the background,
# its stderr appended to SERVER_LOG, and waits, polling every 0.1 s at most
# N times (default 300), for a new "ready: serving" line in SERVER_LOG (the
# ports are logged before the pipeline loads).  Sets SERVER_PID, and PORT
# and HTTP_PORT from the "grpc/http listening on" lines.  Exits 1, showing
# the log, if the server died or timed out without a gRPC port (or, with
# --need-http, without an HTTP port).
start_server() {
    local need_http=0 tries=300 n0
    while :; do
        case $1 in
        --need-http) need_http=1; shift ;;
        --tries) tries=$2; shift 2 ;;
        *) break ;;
        esac
    done
    : >>"$SERVER_LOG"
    n0=$(grep -c "ready: serving" "$SERVER_LOG" || true)
    "$@" 2>>"$SERVER_LOG" &
    SERVER_PID=$!
    PORT=
    HTTP_PORT=
    for _ in $(seq 1 "$tries"); do
        if [ "$(grep -c "ready: serving" "$SERVER_LOG" || true)" -gt "$n0" ]
        then
            PORT=$(sed -n \
                's/.*grpc listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
                "$SERVER_LOG" | tail -n 1)
            HTTP_PORT=$(sed -n \
                's/.*http listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
                "$SERVER_LOG" | tail -n 1)
            break
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if [ -z "$PORT" ] || { [ "$need_http" = 1 ] && [ -z "$HTTP_PORT" ]; }
    then
        log "the server did not start; its log:"
        cat "$SERVER_LOG" >&2
        exit 1
    fi
}

# stop_server: stops the server with SIGTERM, if it runs, and reaps it.
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID" || log "server exited with status $?"
    fi
    SERVER_PID=
}

# check_server [LABEL]: exits 1, showing SERVER_LOG, if the server died.
# shellcheck disable=SC2120 # LABEL is optional
check_server() {
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "${1:+$1: }the server died; its log:"
        cat "$SERVER_LOG" >&2
        exit 1
    fi
}

# server_ticks: the server's CPU time (user + system) in clock ticks.
server_ticks() {
    awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"
}

# server_metrics PORT [CURL_OPTION...]: the /metrics page of the server
# whose HTTP port on 127.0.0.1 is PORT.
server_metrics() {
    local port=$1
    shift
    curl "$@" "http://127.0.0.1:$port/metrics"
}

# ---- modinfer-bench runs ----

# pin CPUS COMMAND...: runs COMMAND, under taskset if CPUS is set.
pin() {
    local cpus=$1
    shift
    if [ -n "$cpus" ]; then
        taskset -c "$cpus" "$@"
    else
        "$@"
    fi
}

# drive LABEL COMMAND...: runs COMMAND (modinfer-bench) with its output
# appended to LOG; when it fails, says so and sets STATUS=1.
drive() {
    local label=$1
    shift
    if ! "$@" >>"$LOG" 2>&1; then
        log "$label: modinfer-bench failed (see $LOG)"
        STATUS=1
    fi
}

# warmup_point LABEL ARG...: unless WARMUP_MS is below 10, one unmeasured
# window of WARMUP_MS of `DRIVER ARG...`, the client pinned to CLIENT_CPUS.
warmup_point() {
    local label=$1
    shift
    if [ "$WARMUP_MS" -ge 10 ]; then
        log "$label: ${WARMUP}s warmup, not measured"
        pin "${CLIENT_CPUS:-}" "$DRIVER" "$@" --window-ms "$WARMUP_MS" \
            --max-windows 1 --quiet >>"$LOG" 2>&1 || true
    fi
}

# stable_point LABEL ARG...: `DRIVER ARG...` in windows of WINDOW_MS until
# the last 3 agree within STABILITY % or MAX_WINDOWS have run, the client
# pinned to CLIENT_CPUS; one row labelled LABEL in CSV.
stable_point() {
    local label=$1
    shift
    log "$label: windows of $WINDOW_MS ms (3 measured, at most" \
        "$MAX_WINDOWS)"
    drive "$label" pin "${CLIENT_CPUS:-}" "$DRIVER" "$@" \
        --window-ms "$WINDOW_MS" --max-windows "$MAX_WINDOWS" \
        --stability "$STABILITY" --label "$label" --csv "$CSV"
}

# row_errors LABEL: requests of the CSV row labelled LABEL that did not end
# well (failed, never sent, or answered with something that does not
# match): empty if no row.
row_errors() {
    awk -F, -v label="$1" '
    FNR == 1 { for (i = 1; i <= NF; i++) { idx[$i] = i }; next }
    $(idx["label"]) == label {
        e = $(idx["failed"]) + $(idx["client_backlog"]) + \
            $(idx["bad_response"])
    }
    END { if (e != "") { print e } }' "$CSV"
}

# check_row_errors LABEL: when the row labelled LABEL has request errors,
# says so and sets STATUS=1.
check_row_errors() {
    local errors
    errors=$(row_errors "$1")
    if [ -n "$errors" ] && [ "$errors" != 0 ]; then
        log "$1: $errors request errors (see $LOG)"
        STATUS=1
    fi
}
