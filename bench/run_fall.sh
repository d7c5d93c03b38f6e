#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs the fall-detection benchmark: builds what it needs, starts the server
# on a free loopback port, drives it with mi-bench-fall at 1, 8 and 64
# streams (depth 1), stops it with SIGTERM, runs the in-process baselines,
# and prints one table with the ratio of the best served req/s to the
# in-process pipeline (1 thread) and to the model alone.  Every figure comes
# from this run; nothing is compared with numbers from another machine or
# another day.  Results go to bench/out/fall-<time>.{csv,txt,log}.
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
#                          [--depth D] [--build-dir DIR] [--no-build]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$ROOT/build
RUN_SECONDS=5
WARMUP=1
WORKERS=2
GRPC_THREADS=1
STREAMS="1 8 64"
DEPTH=1
DO_BUILD=1

while [ $# -gt 0 ]; do
    case $1 in
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --grpc-threads) GRPC_THREADS=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --depth) DEPTH=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h | --help)
        sed -n '4,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) echo "run_fall.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

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
    cmake --build "$BUILD_DIR" -j2 --target modinfer mi-bench-fall \
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
CLIENT=$BUILD_DIR/bench/mi-bench-fall
INPROC=$BUILD_DIR/bench/mi-bench-fall-inprocess
PIPELINE=${PIPELINE:-$ROOT/examples/fall-detection/pipeline.json}
for f in "$SERVER" "$CLIENT" "$INPROC"; do
    if [ ! -x "$f" ]; then
        log "missing $f (build with gRPC and ONNX Runtime on)"
        exit 1
    fi
done

# ---- Output files ----

OUT_DIR=$ROOT/bench/out
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
CSV=$OUT_DIR/fall-$STAMP.csv
TXT=$OUT_DIR/fall-$STAMP.txt
LOG=$OUT_DIR/fall-$STAMP.log
SERVER_LOG=$OUT_DIR/fall-$STAMP.server.log
SERVER_CPU=$OUT_DIR/fall-$STAMP.server-cpu.csv
: >"$LOG"
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

STATUS=0
for s in $STREAMS; do
    log "mi-bench-fall --streams $s --depth $DEPTH" \
        "(${WARMUP}s warmup + ${RUN_SECONDS}s)"
    TICKS_BEFORE=$(server_ticks)
    if ! pin "${CLIENT_CPUS:-}" "$CLIENT" --target "127.0.0.1:$PORT" \
        --streams "$s" --depth "$DEPTH" --seconds "$RUN_SECONDS" \
        --warmup "$WARMUP" --csv "$CSV" >>"$LOG" 2>&1; then
        log "mi-bench-fall --streams $s reported errors (see $LOG)"
        STATUS=1
    fi
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        TICKS_AFTER=$(server_ticks)
        echo "grpc streams=$s depth=$DEPTH,$(awk -v t=$((TICKS_AFTER - \
            TICKS_BEFORE)) -v hz="$CLK_TCK" 'BEGIN { print t / hz }')" \
            >>"$SERVER_CPU"
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
    --seconds "$RUN_SECONDS" --warmup "$WARMUP" --csv "$CSV" \
    >>"$LOG" 2>&1; then
    log "mi-bench-fall-inprocess failed (see $LOG)"
    STATUS=1
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- Table ----

# Columns: req/s and latency of the measured window; CPU per request over
# warmup + measured time: the server's (from /proc) and the benchmark
# process's own (the gRPC client, or the in-process path).
{
    echo "fall-detection benchmark $STAMP: build ${BUILD_TYPE:-?}," \
        "workers=$WORKERS grpc-threads=$GRPC_THREADS depth=$DEPTH,"
    echo "  ${WARMUP}s warmup + ${RUN_SECONDS}s per row, $(nproc) cores," \
        "load $LOAD_BEFORE -> $LOAD_AFTER, pinning:" \
        "server ${SERVER_CPUS:-none}, client ${CLIENT_CPUS:-none}"
    awk -F, '
    BEGIN {
        printf "%-24s %9s %8s %8s %8s %6s %9s %9s\n", "config", "req/s",
               "p50 us", "p99 us", "p99.9 us", "errors", "srv cpu/r",
               "cli cpu/r"
    }
    FNR == 1 { next }
    FILENAME == ARGV[1] { server_cpu[$1] = $2; next }
    {
        n_all = $14 + 0
        srv = "-"
        cli = "-"
        if (($1 in server_cpu) && n_all > 0) {
            srv = sprintf("%.1f us", server_cpu[$1] * 1e6 / n_all)
        }
        if (n_all > 0) {
            cli = sprintf("%.1f us", $15 * 1e6 / n_all)
        }
        printf "%-24s %9.0f %8.1f %8.1f %8.1f %6d %9s %9s\n",
               $1, $7, $8, $10, $11, $6, srv, cli
        if ($1 ~ /^grpc/ && $7 + 0 > best) { best = $7 + 0; best_cfg = $1 }
        if ($1 == "inprocess-pipeline") { pipe = $7 + 0 }
        if ($1 == "inprocess-model") { model = $7 + 0 }
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
    }' "$SERVER_CPU" "$CSV"
} | tee "$TXT"
log "csv: $CSV"
exit "$STATUS"
