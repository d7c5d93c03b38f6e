#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Round-trip benchmark: the loopback round trip of one request over each
# protocol the server speaks, on a pipeline whose model costs nothing.
# Builds bench/out/models/identity.onnx (bench/models/build_models.py) and
# serves bench/models/identity.json: the fall-detection request format
# (int32 [9,3] 'array'), an expand_dims and two renames, and an ONNX
# Identity, so that a request costs the client, the loopback, the protocol
# and the server's own path, and next to nothing of model work.
#
# modinfer-bench then runs closed loop at concurrency 1 (one request
# outstanding: each response sends the next request) with the fall
# workload, a few seconds per protocol, one after the other against the
# same server:
#
#   extended        the paper's extended protocol (bidirectional stream)
#   basic           the paper's basic protocol (bidirectional stream)
#   oip-grpc        Open Inference Protocol, ModelStreamInfer stream
#   oip-grpc-unary  Open Inference Protocol, one ModelInfer call each
#   oip-http        Open Inference Protocol over HTTP/1.1, binary tensors
#
# and prints one table: req/s and the latency percentiles of each, and each
# protocol's p50 divided by the extended protocol's p50 measured in the
# same run.  Before the measured runs, 2 s of unmeasured extended load warm
# the server.  Results: bench/out/rtt-<time>.{csv,txt,log}.
#
# usage: bench/run_rtt.sh [--window-ms MS] [--max-windows N] [--workers N]
#                         [--protocols "extended basic ..."]
#                         [--build-dir DIR] [--no-build]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

BUILD_DIR=$ROOT/build
WINDOW_MS=1000
MAX_WINDOWS=4
WORKERS=2
PROTOCOLS="extended basic oip-grpc oip-grpc-unary oip-http"
DO_BUILD=1

while [ $# -gt 0 ]; do
    case $1 in
    --window-ms) WINDOW_MS=$2; shift 2 ;;
    --max-windows) MAX_WINDOWS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --protocols) PROTOCOLS=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h | --help) print_help; exit 0 ;;
    *) unknown_option "$1" ;;
    esac
done

# ---- Build ----

build modinfer modinfer-bench
check_build_type
check_sanitize

SERVER=$BUILD_DIR/modinfer
DRIVER=$BUILD_DIR/modinfer-bench
require_exec "$SERVER" "$DRIVER"

build_models
PIPELINE=$MODELS/identity.json

# ---- Noise (bench/lib.sh) ----

noise_init

# ---- Output files ----

out_files rtt
SERVER_LOG=$OUT_BASE.server.log

# ---- Server ----

trap 'stop_server; rm -f "$TIMES_FILE"' EXIT
trap 'exit 130' INT TERM

LOAD_BEFORE=$(loadavg)
noise_start
log "starting the server (workers=$WORKERS)"
start_server --need-http "$SERVER" serve "$PIPELINE" --grpc-port 0 \
    --http-port 0 --address 127.0.0.1 --workers "$WORKERS"
log "server pid $SERVER_PID: grpc 127.0.0.1:$PORT, http 127.0.0.1:$HTTP_PORT"

# ---- Runs ----

COMMON=(--model identity --concurrency 1 --drain-ms 3000)
log "warmup: 2 s extended, not measured"
"$DRIVER" --protocol extended --target "127.0.0.1:$PORT" "${COMMON[@]}" \
    --window-ms 2000 --max-windows 1 --quiet >>"$LOG" 2>&1 || true

STATUS=0
for p in $PROTOCOLS; do
    case $p in
    extended | basic | oip-grpc) args=(--protocol "$p"
        --target "127.0.0.1:$PORT") ;;
    oip-grpc-unary) args=(--protocol oip-grpc --unary
        --target "127.0.0.1:$PORT") ;;
    oip-http) args=(--protocol oip-http --target "127.0.0.1:$HTTP_PORT") ;;
    *) log "unknown protocol '$p'"; exit 2 ;;
    esac
    log "$p: concurrency 1, windows of $WINDOW_MS ms (at most $MAX_WINDOWS)"
    drive "$p" "$DRIVER" "${args[@]}" "${COMMON[@]}" \
        --window-ms "$WINDOW_MS" --max-windows "$MAX_WINDOWS" --label "$p" \
        --csv "$CSV"
    check_server
done
stop_server
LOAD_AFTER=$(loadavg)
noise_end

# ---- Table ----

{
    echo "round-trip benchmark $STAMP: identity pipeline, closed loop," \
        "concurrency 1, build ${BUILD_TYPE:-?}, workers=$WORKERS,"
    echo "  windows of ${WINDOW_MS} ms (at most $MAX_WINDOWS per protocol)," \
        "$(nproc) cores, load $LOAD_BEFORE -> $LOAD_AFTER," \
        "other work ${OTHER_CORES} cores"
    awk -F, '
    function col(name) { return $(idx[name]) }
    FNR == 1 {
        for (i = 1; i <= NF; i++) { idx[$i] = i }
        printf "%-15s %8s %8s %8s %8s %9s %9s %6s %9s\n", "protocol",
               "req/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us",
               "errors", "p50/ext"
        next
    }
    {
        n++
        label[n] = col("label"); rps[n] = col("req_per_s")
        p50[n] = col("p50_us"); p90[n] = col("p90_us")
        p99[n] = col("p99_us"); p999[n] = col("p999_us")
        mx[n] = col("max_us")
        errs[n] = col("failed") + col("client_backlog")
        if (label[n] == "extended") { ext = p50[n] }
    }
    END {
        for (i = 1; i <= n; i++) {
            printf "%-15s %8.0f %8.1f %8.1f %8.1f %9.1f %9.1f %6d %9s\n",
                   label[i], rps[i], p50[i], p90[i], p99[i], p999[i], mx[i],
                   errs[i], (ext > 0 ? sprintf("%.2f", p50[i] / ext) : "-")
        }
    }' "$CSV"
} | tee "$TXT"
log "csv: $CSV"
exit "$STATUS"
