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
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

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
    -h | --help) print_help; exit 0 ;;
    *) unknown_option "$1" ;;
    esac
done

set_windows 2
case $DEPTH in
'' | *[!0-9]* | 0) usage_error "--depth: expected a positive integer, got" \
    "'$DEPTH'" ;;
esac

# ---- Build ----

build modinfer modinfer-bench mi-bench-fall-inprocess fall_model
check_build_type
check_sanitize

SERVER=$BUILD_DIR/modinfer
DRIVER=$BUILD_DIR/modinfer-bench
INPROC=$BUILD_DIR/bench/mi-bench-fall-inprocess
PIPELINE=${PIPELINE:-$ROOT/examples/fall-detection/pipeline.json}
require_exec "$SERVER" "$DRIVER" "$INPROC"

# ---- Output files ----

# The served rows are modinfer-bench's CSV, the in-process rows
# mi-bench-fall-inprocess's (bench.h): two formats, two files.
out_files fall
INPROC_CSV=$OUT_BASE.inprocess.csv
SERVER_LOG=$OUT_BASE.server.log
SERVER_CPU=$OUT_BASE.server-cpu.csv
: >"$CSV"
: >"$INPROC_CSV"
echo "config,server_cpu_s" >"$SERVER_CPU"

# ---- Server ----

trap stop_server EXIT
trap 'exit 130' INT TERM

LOAD_BEFORE=$(loadavg)
log "starting the server (workers=$WORKERS grpc-threads=$GRPC_THREADS)"
SERVER_CMD=("$SERVER" serve "$PIPELINE" --grpc-port 0 --http-port 0 --address 127.0.0.1
    --workers "$WORKERS" --grpc-threads "$GRPC_THREADS")
if [ -n "${SERVER_CPUS:-}" ]; then
    # taskset execs the server, so $! stays the server's pid.
    SERVER_CMD=(taskset -c "$SERVER_CPUS" "${SERVER_CMD[@]}")
fi
start_server "${SERVER_CMD[@]}"
log "server pid $SERVER_PID on 127.0.0.1:$PORT"

# ---- Served ----

CLK_TCK=$(getconf CLK_TCK)

STATUS=0
for s in $STREAMS; do
    c=$((s * DEPTH))
    label="extended c=$c streams=$s"
    DRIVER_ARGS=(--protocol extended --target "127.0.0.1:$PORT"
        --concurrency "$c" --streams "$s" --drain-ms 3000)
    warmup_point "$label" "${DRIVER_ARGS[@]}"
    TICKS_BEFORE=$(server_ticks)
    stable_point "$label" "${DRIVER_ARGS[@]}"
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        TICKS_AFTER=$(server_ticks)
        echo "$label,$(awk -v t=$((TICKS_AFTER - TICKS_BEFORE)) \
            -v hz="$CLK_TCK" 'BEGIN { print t / hz }')" >>"$SERVER_CPU"
    fi
    check_row_errors "$label"
    check_server
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
LOAD_AFTER=$(loadavg)

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
