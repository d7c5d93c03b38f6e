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
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

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
    -h | --help) print_help; exit 0 ;;
    *) unknown_option "$1" ;;
    esac
done
CONCURRENCY=${CONCURRENCY:-$WORKERS}
WINDOW_MS=$((RUN_SECONDS * 250))
WARMUP=$(awk -v t="$RUN_SECONDS" 'BEGIN { print t / 4 }')

# ---- Build and model ----

build modinfer modinfer-bench mi-bench-image-inprocess
check_build_type
bash "$ROOT/scripts/install-models.sh" >&2

SERVER=$BUILD_DIR/modinfer
DRIVER=$BUILD_DIR/modinfer-bench
INPROC=$BUILD_DIR/bench/mi-bench-image-inprocess
require_exec "$SERVER" "$DRIVER" "$INPROC"

# ---- Output files ----

out_files image
SERVED_CSV=$OUT_BASE.served.csv
INPROC_CSV=$OUT_BASE.inprocess.csv
SERVER_LOG=$OUT_BASE.server.log
echo "batch,served_img_s,p50_ms,p99_ms,errors,inproc_img_s,ratio,queue_s,pre_s,infer_s,post_s,vmhwm_kb" >"$CSV"

# ---- Server ----

trap stop_server EXIT
trap 'exit 130' INT TERM

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
    start_server --need-http --tries 600 "$SERVER" serve "$PIPELINE" \
        --grpc-port 0 --http-port 0 --address 127.0.0.1 --workers "$WORKERS"
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
    server_metrics "$HTTP_PORT" -s >"$METRICS" || : >"$METRICS"
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
