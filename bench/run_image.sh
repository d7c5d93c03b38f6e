#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Image benchmark: the text-detection pipeline of examples/image-detection
# served, against the same pipeline in-process.  For each batch size B
# (images per request; 1, 4 and 16 by default):
#
#   served      a fresh `modinfer serve pipeline.json --workers N`, driven by
#               modinfer-bench --workload image --batch B (closed loop, C
#               requests outstanding, uint8 [B,900,1200,3] in tensor_content
#               of the extended protocol); then the server's /metrics stage
#               sums (mi_stage_duration_seconds_sum: queue, pre, infer, post)
#               and its peak RSS (VmHWM of /proc/<pid>/status), and SIGTERM
#   in-process  mi-bench-image-inprocess --batch B --threads N: the same
#               pipeline file and the same pixels, mi_pipeline_run on N
#               threads sharing one session, no network
#
# and prints images/s of both, served / in-process (goal >= 0.95), latency
# percentiles, the time split pre / model / post, and the peak RSS.  The
# pixels are the driver's --fill (default pattern: a gradient, no text).
# Results: bench/out/image-<time>.{csv,txt,log}.
#
# usage: bench/run_image.sh [--seconds T] [--workers N] [--concurrency C]
#                           [--batches "1 4 16"] [--fill random|pattern]
#                           [--pipeline FILE] [--build-dir DIR] [--no-build]
#   --pipeline     another pipeline file with the same input (default
#                  examples/image-detection/pipeline.json), e.g. a copy
#                  without "batching" to compare
#   --seconds      measured seconds per run (default 20; the driver measures
#                  in windows of T/4 s and the in-process run takes T s
#                  after a warmup of T/4 s)
#   --concurrency  requests outstanding (default: the workers)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$ROOT/build
RUN_SECONDS=20
WORKERS=2
CONCURRENCY=
BATCHES="1 4 16"
FILL=pattern
DO_BUILD=1
GOAL=0.95
PIPELINE=$ROOT/examples/image-detection/pipeline.json

while [ $# -gt 0 ]; do
    case $1 in
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    --fill) FILL=$2; shift 2 ;;
    --pipeline) PIPELINE=$(realpath -m "$2"); shift 2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h | --help)
        sed -n '4,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) echo "run_image.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
CONCURRENCY=${CONCURRENCY:-$WORKERS}
WINDOW_MS=$((RUN_SECONDS * 250))
WARMUP=$(awk -v t="$RUN_SECONDS" 'BEGIN { print t / 4 }')

log() { echo "run_image.sh: $*" >&2; }

# ---- Build and model ----

if [ "$DO_BUILD" = 1 ]; then
    if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
        log "configuring $BUILD_DIR (Release)"
        cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >&2
    fi
    log "building in $BUILD_DIR"
    cmake --build "$BUILD_DIR" -j2 --target modinfer modinfer-bench \
        mi-bench-image-inprocess >&2
fi
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' \
    "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
case "$BUILD_TYPE" in
Release | RelWithDebInfo | MinSizeRel) ;;
*) log "warning: $BUILD_DIR is a '${BUILD_TYPE:-default}' build; figures" \
       "are not representative" ;;
esac
bash "$ROOT/scripts/install-models.sh" >&2

SERVER=$BUILD_DIR/modinfer
DRIVER=$BUILD_DIR/modinfer-bench
INPROC=$BUILD_DIR/bench/mi-bench-image-inprocess
for f in "$SERVER" "$DRIVER" "$INPROC"; do
    if [ ! -x "$f" ]; then
        log "missing $f (build with gRPC and ONNX Runtime on)"
        exit 1
    fi
done

# ---- Output files ----

OUT_DIR=$ROOT/bench/out
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
CSV=$OUT_DIR/image-$STAMP.csv
SERVED_CSV=$OUT_DIR/image-$STAMP.served.csv
INPROC_CSV=$OUT_DIR/image-$STAMP.inprocess.csv
TXT=$OUT_DIR/image-$STAMP.txt
LOG=$OUT_DIR/image-$STAMP.log
SERVER_LOG=$OUT_DIR/image-$STAMP.server.log
: >"$LOG"
echo "batch,served_img_s,p50_ms,p99_ms,errors,inproc_img_s,ratio,queue_s,pre_s,infer_s,post_s,vmhwm_kb" >"$CSV"

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

start_server() {
    "$SERVER" serve "$PIPELINE" --grpc-port 0 --http-port 0 \
        --address 127.0.0.1 --workers "$WORKERS" 2>>"$SERVER_LOG" &
    SERVER_PID=$!
    PORT=
    HTTP_PORT=
    local n0
    n0=$(grep -c "ready: serving" "$SERVER_LOG" || true)
    for _ in $(seq 1 600); do
        if [ "$(grep -c "ready: serving" "$SERVER_LOG" || true)" -gt "$n0" ]; then
            PORT=$(sed -n 's/.*grpc listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
                "$SERVER_LOG" | tail -n 1)
            HTTP_PORT=$(sed -n 's/.*http listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
                "$SERVER_LOG" | tail -n 1)
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
}

# Sum of mi_stage_duration_seconds_sum for one stage.
stage_sum() {
    awk -v s="stage=\"$1\"" '/^mi_stage_duration_seconds_sum/ && index($0, s) {
        t += $NF } END { printf "%.3f", t }' "$METRICS"
}

# ---- Runs ----

STATUS=0
METRICS=$(mktemp)
trap 'stop_server; rm -f "$METRICS"' EXIT
for b in $BATCHES; do
    start_server
    log "batch $b: served (pid $SERVER_PID, concurrency $CONCURRENCY," \
        "windows of ${WINDOW_MS} ms)"
    if ! "$DRIVER" --workload image --batch "$b" --fill "$FILL" \
        --target "127.0.0.1:$PORT" --model image-detection \
        --concurrency "$CONCURRENCY" --window-ms "$WINDOW_MS" \
        --max-windows 5 --label "batch=$b" --csv "$SERVED_CSV" \
        --quiet >>"$LOG" 2>&1; then
        log "modinfer-bench --batch $b failed (see $LOG)"
        STATUS=1
    fi
    curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$METRICS" || : >"$METRICS"
    HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
    QUEUE_S=$(stage_sum queue)
    PRE_S=$(stage_sum pre)
    INFER_S=$(stage_sum infer)
    POST_S=$(stage_sum post)
    stop_server

    log "batch $b: in-process ($WORKERS threads, ${WARMUP}s + ${RUN_SECONDS}s)"
    if ! "$INPROC" --pipeline "$PIPELINE" --batch "$b" --threads "$WORKERS" \
        --fill "$FILL" --seconds "$RUN_SECONDS" --warmup "$WARMUP" \
        --csv "$INPROC_CSV" >>"$LOG" 2>&1; then
        log "mi-bench-image-inprocess --batch $b failed (see $LOG)"
        STATUS=1
    fi
    # served: the last row of the driver's CSV (req_per_s, p50_us, p99_us,
    # failed); in-process: req_per_s of its last row.
    SERVED=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        { r = $c["req_per_s"]; p50 = $c["p50_us"]; p99 = $c["p99_us"]
          f = $c["failed"] }
        END { print r, p50, p99, f }' "$SERVED_CSV")
    INPROC_RATE=$(awk -F, 'NR > 1 { r = $7 } END { print r + 0 }' "$INPROC_CSV")
    read -r S_RATE S_P50 S_P99 S_FAILED <<<"$SERVED"
    awk -v b="$b" -v sr="$S_RATE" -v p50="$S_P50" -v p99="$S_P99" \
        -v f="$S_FAILED" -v ir="$INPROC_RATE" -v q="$QUEUE_S" -v pre="$PRE_S" \
        -v inf="$INFER_S" -v post="$POST_S" -v hwm="$HWM" 'BEGIN {
        si = sr * b; ii = ir * b
        printf "%d,%.3f,%.1f,%.1f,%d,%.3f,%.3f,%s,%s,%s,%s,%s\n", b, si,
               p50 / 1e3, p99 / 1e3, f, ii, (ii > 0 ? si / ii : 0), q, pre,
               inf, post, hwm }' >>"$CSV"
done

# ---- Table ----

{
    echo "image benchmark $STAMP: ${PIPELINE#"$ROOT"/}," \
        "build ${BUILD_TYPE:-?}, workers=$WORKERS, concurrency=$CONCURRENCY," \
        "fill=$FILL, $(nproc) cores"
    awk -F, -v goal="$GOAL" '
    NR == 1 {
        printf "%5s %11s %9s %9s %6s %11s %7s   %-28s %10s\n", "batch",
               "served im/s", "p50 ms", "p99 ms", "errors", "inproc im/s",
               "ratio", "server time pre/model/post", "peak RSS"
        next
    }
    {
        t = $9 + $10 + $11
        split_ = (t > 0 ? sprintf("%4.1f%% / %4.1f%% / %4.1f%%", 100 * $9 / t,
                                  100 * $10 / t, 100 * $11 / t) : "-")
        printf "%5d %11.2f %9.1f %9.1f %6d %11.2f %7.3f   %-28s %7.0f MB\n",
               $1, $2, $3, $4, $5, $6, $7, split_, $12 / 1024
        r[NR] = $7; bb[NR] = $1
    }
    END {
        for (i = 2; i <= NR; i++) {
            printf "ratio served/in-process, batch %-3s %.3f  (goal >= %.2f: %s)\n",
                   bb[i], r[i], goal, (r[i] >= goal ? "met" : "not met")
        }
    }' "$CSV"
} | tee "$TXT"
log "csv: $CSV; driver and in-process output: $LOG"
exit "$STATUS"
