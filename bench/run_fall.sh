#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs the fall-detection benchmark: builds what it needs, starts the server
# on a free loopback port, drives it with modinfer-bench (closed loop, the
# extended protocol) at 1, 8 and 64 streams (depth 1: one request
# outstanding per stream), stops it with SIGTERM, runs the in-process
# baselines, and prints one table with the ratio of the best served req/s
# to the in-process pipeline (1 thread) and to the model alone.  Every
# figure comes from this run; nothing is compared with numbers from another
# machine or another day.  Results go to
# bench/out/fall-<time>.{csv,inprocess.csv,txt,log}.
#
# Each served row is one modinfer-bench run after an unmeasured warmup run
# of --warmup seconds at the same load: windows of --seconds / 3, until the
# last three agree within --stability % or --max-windows have run; the row
# reports those last three windows, so --seconds is the measured span.
#
# CPU pinning: none by default.  The machine has 2 cores shared with other
# work; the server (2 workers + 1 completion-queue thread) needs both cores
# to show what it can do, and the client needs CPU too, so any fixed split
# would cap one side at one core and pinning to a core that another job is
# using would make things worse.  The scheduler is left to balance them,
# and the in-process baselines run after the server has stopped so they
# have the machine to themselves.  To try a split anyway, set
# SERVER_CPUS and CLIENT_CPUS (taskset -c lists, e.g. 0 and 1).
#
# usage: bench/run_fall.sh [--seconds T] [--warmup W] [--workers N]
#                          [--grpc-threads N] [--streams "1 8 64"]
#                          [--depth D] [--max-windows N] [--stability PCT]
#                          [--build-dir DIR] [--no-build]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$ROOT/build
RUN_SECONDS=5
WARMUP=1
WORKERS=2
GRPC_THREADS=1
STREAMS="1 8 64"
DEPTH=1
MAX_WINDOWS=6
STABILITY=10
DO_BUILD=1

while [ $# -gt 0 ]; do
    case $1 in
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --grpc-threads) GRPC_THREADS=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --depth) DEPTH=$2; shift 2 ;;
    --max-windows) MAX_WINDOWS=$2; shift 2 ;;
    --stability) STABILITY=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h | --help)
        sed -n '4,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) echo "run_fall.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

# Milliseconds of `seconds / parts`, rounded; empty when not a number >= 0.
ms_of() {
    awk -v s="$1" -v n="$2" 'BEGIN {
        if (s !~ /^[0-9]+([.][0-9]*)?$|^[.][0-9]+$/) { exit }
        printf "%d", s * 1000 / n + 0.5 }'
}
WINDOW_MS=$(ms_of "$RUN_SECONDS" 3)
WARMUP_MS=$(ms_of "$WARMUP" 1)
if [ -z "$WINDOW_MS" ] || [ "$WINDOW_MS" -lt 10 ]; then
    echo "run_fall.sh: --seconds: expected at least 0.03, got" \
        "'$RUN_SECONDS'" >&2
    exit 2
fi
if [ -z "$WARMUP_MS" ]; then
    echo "run_fall.sh: --warmup: expected seconds, got '$WARMUP'" >&2
    exit 2
fi
case $DEPTH in
'' | *[!0-9]* | 0) echo "run_fall.sh: --depth: expected a positive" \
    "integer, got '$DEPTH'" >&2; exit 2 ;;
esac

log() { echo "run_fall.sh: $*" >&2; }

# pin <cpus> <command...>: runs the command, under taskset if cpus is set.
pin() {
    local cpus=$1
    shift
    if [ -n "$cpus" ]; then
        taskset -c "$cpus" "$@"
    else
        "$@"
    fi
}

# ---- Build ----

if [ "$DO_BUILD" = 1 ]; then
    if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
        log "configuring $BUILD_DIR (Release)"
        cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >&2
    fi
    log "building in $BUILD_DIR"
    cmake --build "$BUILD_DIR" -j2 --target modinfer modinfer-bench \
        mi-bench-fall-inprocess fall_model >&2
fi
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' \
    "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
SANITIZE=$(sed -n 's/^MI_SANITIZE:[A-Z]*=//p' \
    "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
case "$BUILD_TYPE" in
Release | RelWithDebInfo | MinSizeRel) ;;
*) log "warning: $BUILD_DIR is a '${BUILD_TYPE:-default}' build; figures" \
       "are not representative" ;;
esac
if [ "$SANITIZE" = ON ]; then
    log "warning: $BUILD_DIR is built with sanitizers; figures are not" \
        "representative"
fi

SERVER=$BUILD_DIR/modinfer
DRIVER=$BUILD_DIR/modinfer-bench
INPROC=$BUILD_DIR/bench/mi-bench-fall-inprocess
PIPELINE=${PIPELINE:-$ROOT/examples/fall-detection/pipeline.json}
for f in "$SERVER" "$DRIVER" "$INPROC"; do
    if [ ! -x "$f" ]; then
        log "missing $f (build with gRPC and ONNX Runtime on)"
        exit 1
    fi
done

# ---- Output files ----

# The served rows are modinfer-bench's CSV, the in-process rows
# mi-bench-fall-inprocess's (bench.h): two formats, two files.
OUT_DIR=$ROOT/bench/out
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
CSV=$OUT_DIR/fall-$STAMP.csv
INPROC_CSV=$OUT_DIR/fall-$STAMP.inprocess.csv
TXT=$OUT_DIR/fall-$STAMP.txt
LOG=$OUT_DIR/fall-$STAMP.log
SERVER_LOG=$OUT_DIR/fall-$STAMP.server.log
SERVER_CPU=$OUT_DIR/fall-$STAMP.server-cpu.csv
: >"$LOG"
: >"$CSV"
: >"$INPROC_CSV"
echo "config,server_cpu_s" >"$SERVER_CPU"

# ---- Server ----

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID" || log "server exited with status $?"
    fi
    SERVER_PID=
}
trap stop_server EXIT
trap 'exit 130' INT TERM

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "starting the server (workers=$WORKERS grpc-threads=$GRPC_THREADS)"
SERVER_CMD=("$SERVER" serve "$PIPELINE" --grpc-port 0 --http-port 0 --address 127.0.0.1
    --workers "$WORKERS" --grpc-threads "$GRPC_THREADS")
if [ -n "${SERVER_CPUS:-}" ]; then
    # taskset execs the server, so $! stays the server's pid.
    SERVER_CMD=(taskset -c "$SERVER_CPUS" "${SERVER_CMD[@]}")
fi
"${SERVER_CMD[@]}" 2>"$SERVER_LOG" &
SERVER_PID=$!

PORT=
for _ in $(seq 1 300); do
    # The port is logged before the pipeline loads; wait for readiness.
    if grep -q "ready: serving" "$SERVER_LOG"; then
        PORT=$(sed -n 's/.*grpc listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
            "$SERVER_LOG" | head -n 1)
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [ -z "$PORT" ]; then
    log "the server did not start; its log:"
    cat "$SERVER_LOG" >&2
    exit 1
fi
log "server pid $SERVER_PID on 127.0.0.1:$PORT"

# ---- Served ----

# The server's CPU time (user + system) in clock ticks.
server_ticks() {
    awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"
}
CLK_TCK=$(getconf CLK_TCK)

# Requests of the CSV row labelled $1 that did not end well (failed, never
# sent, or answered with something that does not match): empty if no row.
row_errors() {
    awk -F, -v label="$1" '
    FNR == 1 { for (i = 1; i <= NF; i++) { idx[$i] = i }; next }
    $(idx["label"]) == label {
        e = $(idx["failed"]) + $(idx["client_backlog"]) + \
            $(idx["bad_response"])
    }
    END { if (e != "") { print e } }' "$CSV"
}

STATUS=0
for s in $STREAMS; do
    c=$((s * DEPTH))
    label="extended c=$c streams=$s"
    DRIVER_ARGS=(--protocol extended --target "127.0.0.1:$PORT"
        --concurrency "$c" --streams "$s" --drain-ms 3000)
    if [ "$WARMUP_MS" -ge 10 ]; then
        log "$label: ${WARMUP}s warmup, not measured"
        pin "${CLIENT_CPUS:-}" "$DRIVER" "${DRIVER_ARGS[@]}" \
            --window-ms "$WARMUP_MS" --max-windows 1 --quiet \
            >>"$LOG" 2>&1 || true
    fi
    log "$label: windows of $WINDOW_MS ms (3 measured, at most $MAX_WINDOWS)"
    TICKS_BEFORE=$(server_ticks)
    if ! pin "${CLIENT_CPUS:-}" "$DRIVER" "${DRIVER_ARGS[@]}" \
        --window-ms "$WINDOW_MS" --max-windows "$MAX_WINDOWS" \
        --stability "$STABILITY" --label "$label" --csv "$CSV" \
        >>"$LOG" 2>&1; then
        log "$label: modinfer-bench failed (see $LOG)"
        STATUS=1
    fi
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        TICKS_AFTER=$(server_ticks)
        echo "$label,$(awk -v t=$((TICKS_AFTER - TICKS_BEFORE)) \
            -v hz="$CLK_TCK" 'BEGIN { print t / hz }')" >>"$SERVER_CPU"
    fi
    errors=$(row_errors "$label")
    if [ -n "$errors" ] && [ "$errors" != 0 ]; then
        log "$label: $errors request errors (see $LOG)"
        STATUS=1
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "the server died; its log:"
        cat "$SERVER_LOG" >&2
        exit 1
    fi
done
stop_server

# ---- In-process baselines ----

log "mi-bench-fall-inprocess (${WARMUP}s warmup + ${RUN_SECONDS}s each)"
if ! pin "${CLIENT_CPUS:-}" "$INPROC" --pipeline "$PIPELINE" \
    --seconds "$RUN_SECONDS" --warmup "$WARMUP" --csv "$INPROC_CSV" \
    >>"$LOG" 2>&1; then
    log "mi-bench-fall-inprocess failed (see $LOG)"
    STATUS=1
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- Table ----

# Columns: req/s and latency of the measured span (the served rows' last
# three windows); errors over the whole row; CPU per request: the server's
# (from /proc, over the measured modinfer-bench run: all its windows and the
# drain, not the warmup run) and the benchmark process's own (modinfer-bench's
# cpu_us_per_req, over the same span; or the in-process path, warmup
# included), both divided by the requests that ended in that span.
{
    echo "fall-detection benchmark $STAMP: build ${BUILD_TYPE:-?}," \
        "workers=$WORKERS grpc-threads=$GRPC_THREADS depth=$DEPTH,"
    echo "  served: ${WARMUP}s warmup run + windows of ${WINDOW_MS} ms" \
        "(last 3 of at most $MAX_WINDOWS measured); in-process:" \
        "${WARMUP}s warmup + ${RUN_SECONDS}s;"
    echo "  $(nproc) cores, load $LOAD_BEFORE -> $LOAD_AFTER, pinning:" \
        "server ${SERVER_CPUS:-none}, client ${CLIENT_CPUS:-none}"
    awk -F, -v stability="$STABILITY" '
    function col(name) { return (name in idx) ? $(idx[name]) : "" }
    function us(x) { return sprintf("%.1f us", x) }
    BEGIN {
        printf "%-26s %9s %8s %8s %8s %6s %9s %9s\n", "config", "req/s",
               "p50 us", "p99 us", "p99.9 us", "errors", "srv cpu/r",
               "cli cpu/r"
    }
    FNR == 1 {
        delete idx
        for (i = 1; i <= NF; i++) { idx[$i] = i }
        next
    }
    FILENAME == ARGV[1] { server_cpu[$1] = $2; next }
    FILENAME == ARGV[2] {
        # modinfer-bench rows
        cfg = col("label")
        done = col("ok") + col("failed")
        errs = col("failed") + col("client_backlog") + col("bad_response")
        srv = "-"
        cli = "-"
        if ((cfg in server_cpu) && done > 0) {
            srv = us(server_cpu[cfg] * 1e6 / done)
        }
        if (done > 0) { cli = us(col("cpu_us_per_req")) }
        rate = col("req_per_s") + 0
        if (col("stable") != "yes") {
            unstable = unstable sprintf("\n  %s: %s after %d windows", cfg,
                                        col("stable"), col("windows"))
        }
        if (rate > best) { best = rate; best_cfg = cfg }
    }
    FILENAME == ARGV[3] {
        # mi-bench-fall-inprocess rows
        cfg = col("config")
        errs = col("errors")
        srv = "-"
        cli = "-"
        if (col("all_requests") > 0) {
            cli = us(col("cpu_s") * 1e6 / col("all_requests"))
        }
        rate = col("req_per_s") + 0
        if (cfg == "inprocess-pipeline") { pipe = rate }
        if (cfg == "inprocess-model") { model = rate }
    }
    {
        printf "%-26s %9.0f %8.1f %8.1f %8.1f %6d %9s %9s\n", cfg, rate,
               col("p50_us"), col("p99_us"), col("p999_us"), errs, srv, cli
    }
    END {
        if (best > 0 && pipe > 0) {
            printf "ratio served/in-process pipeline (1 thread): %.3f" \
                   "  (best served: %s, %.0f req/s)\n", best / pipe,
                   best_cfg, best
        }
        if (best > 0 && model > 0) {
            printf "ratio served/model alone (ORT, batch 1):     %.3f\n",
                   best / model
        }
        if (unstable != "") {
            printf "not stable (last 3 windows not within %s%% of their " \
                   "mean):%s\n", stability, unstable
        }
    }' "$SERVER_CPU" "$CSV" "$INPROC_CSV"
} | tee "$TXT"
log "csv: $CSV, $INPROC_CSV"
exit "$STATUS"
