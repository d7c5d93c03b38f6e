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

ROOT=$(cd "$(dirname "$0")/.." && pwd)
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
    -h | --help)
        sed -n '4,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) echo "run_rtt.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

log() { echo "run_rtt.sh: $*" >&2; }

# ---- Build ----

if [ "$DO_BUILD" = 1 ]; then
    if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
        log "configuring $BUILD_DIR (Release)"
        cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >&2
    fi
    log "building in $BUILD_DIR"
    cmake --build "$BUILD_DIR" -j2 --target modinfer modinfer-bench >&2
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
for f in "$SERVER" "$DRIVER"; do
    if [ ! -x "$f" ]; then
        log "missing $f (build with gRPC and ONNX Runtime on)"
        exit 1
    fi
done

MODELS=$ROOT/bench/out/models
/usr/bin/python3 "$ROOT/bench/models/build_models.py" --out "$MODELS" >&2
PIPELINE=$MODELS/identity.json

# ---- Noise ----

# Work on the machine that is not this benchmark's: busy CPU time of all
# cores (/proc/stat: user, nice, system and steal; not interrupts, which
# loopback traffic of our own would fill) minus the CPU time of this shell
# and everything it started and reaped (the server, the clients), over the
# wall time.  The load average cannot tell the two apart; this can.
CLK_TCK=$(getconf CLK_TCK)
TIMES_FILE=$(mktemp)
machine_busy_s() {
    awk -v hz="$CLK_TCK" '/^cpu / {
        print ($2 + $3 + $4 + $9) / hz; exit }' /proc/stat
}
# Sets OWN_CPU_S.  `times` must run in this shell, not in a $(...) subshell,
# whose own times and children's are its own.
own_cpu() {
    times >"$TIMES_FILE"
    OWN_CPU_S=$(awk '{ for (i = 1; i <= NF; i++) { split($i, a, /[ms]/)
                           t += a[1] * 60 + a[2] } } END { print t }' \
        "$TIMES_FILE")
}
noise_start() {
    NOISE_T0=$(date +%s.%N)
    NOISE_BUSY0=$(machine_busy_s)
    own_cpu
    NOISE_OWN0=$OWN_CPU_S
}
# Sets OTHER_CORES: the other work in cores, averaged over the run (call
# once every process the script started has been reaped).
noise_end() {
    own_cpu
    OTHER_CORES=$(awk -v t0="$NOISE_T0" -v t1="$(date +%s.%N)" \
        -v b0="$NOISE_BUSY0" -v b1="$(machine_busy_s)" -v o0="$NOISE_OWN0" \
        -v o1="$OWN_CPU_S" 'BEGIN { x = ((b1 - b0) - (o1 - o0)) / (t1 - t0)
                                    printf "%.2f", (x < 0 ? 0 : x) }')
}

# ---- Output files ----

OUT_DIR=$ROOT/bench/out
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
CSV=$OUT_DIR/rtt-$STAMP.csv
TXT=$OUT_DIR/rtt-$STAMP.txt
LOG=$OUT_DIR/rtt-$STAMP.log
SERVER_LOG=$OUT_DIR/rtt-$STAMP.server.log
: >"$LOG"

# ---- Server ----

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID" || log "server exited with status $?"
    fi
    SERVER_PID=
}
trap 'stop_server; rm -f "$TIMES_FILE"' EXIT
trap 'exit 130' INT TERM

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
noise_start
log "starting the server (workers=$WORKERS)"
"$SERVER" serve "$PIPELINE" --grpc-port 0 --http-port 0 --address 127.0.0.1 \
    --workers "$WORKERS" 2>"$SERVER_LOG" &
SERVER_PID=$!
PORT=
for _ in $(seq 1 300); do
    if grep -q "ready: serving" "$SERVER_LOG"; then
        PORT=$(sed -n 's/.*grpc listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
            "$SERVER_LOG" | head -n 1)
        HTTP_PORT=$(sed -n \
            's/.*http listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
            "$SERVER_LOG" | head -n 1)
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [ -z "$PORT" ] || [ -z "$HTTP_PORT" ]; then
    log "the server did not start; its log:"
    cat "$SERVER_LOG" >&2
    exit 1
fi
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
    if ! "$DRIVER" "${args[@]}" "${COMMON[@]}" --window-ms "$WINDOW_MS" \
        --max-windows "$MAX_WINDOWS" --label "$p" --csv "$CSV" \
        >>"$LOG" 2>&1; then
        log "$p: modinfer-bench failed (see $LOG)"
        STATUS=1
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "the server died; its log:"
        cat "$SERVER_LOG" >&2
        exit 1
    fi
done
stop_server
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
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
