#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Compute benchmark: how much of ONNX Runtime's own throughput on a
# compute-heavy model the server keeps.  Builds bench/out/models/cnn.onnx
# (bench/models/build_models.py: five 3x3 Conv+Relu layers to 56x56, about
# 0.42 GMAC per image), serves the cnn pipeline (bench/models/cnn.json,
# float32 [B,3,224,224] in, no preprocessing) with --workers N, and for
# each batch size B (requests of 1 and 16 images by default):
#
#   served      mi-bench-cnn: closed loop, C unary OIP gRPC ModelInfer calls
#               outstanding, each with B images in raw_input_contents
#   in-process  mi-bench-cnn-inprocess: cnn.onnx through the ORT C API, N
#               threads running batches of B back to back, with the session
#               options the server uses (intra-op 1, inter-op 1, no
#               spinning, no CPU arena, one shared session)
#
# and prints images/s of both and served / in-process (goal >= 0.95).
# The two are measured one after the other for each B, in the same run; the
# server stays up but idle while the in-process baseline runs.  Both
# programs print the sum of the logits of their first batch; the script
# checks that they agree, so both figures describe the same computation.
# Results: bench/out/compute-<time>.{csv,txt,log}.
#
# modinfer-bench cannot drive this model as it is (its workloads are int32
# [9,3] windows and uint8 [B,900,1200,3] images; resize, transpose and cast
# steps would add preprocessing that the ORT baseline does not do), hence
# the dedicated client mi-bench-cnn.
#
# usage: bench/run_compute.sh [--seconds T] [--warmup W] [--workers N]
#                             [--batches "1 16"] [--concurrency C]
#                             [--repeat R] [--server-batching N]
#                             [--build-dir DIR] [--no-build]
#   --concurrency  calls outstanding (default 2 x workers, so that a worker
#                  finds the next request queued when it finishes one)
#   --repeat       served/in-process pairs per batch size (default 1); the
#                  summary ratio divides the sums
#   --server-batching  serve a copy of cnn.json (cnn-batching-N.json, next to
#                  the model) with "batching": {"max_batch_size": N,
#                  "max_queue_delay_us": 0}, so that the server may stack
#                  the images of several requests into one model run; the
#                  in-process baseline still runs batches of B
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

BUILD_DIR=$ROOT/build
RUN_SECONDS=4
WARMUP=1
WORKERS=2
BATCHES="1 16"
CONCURRENCY=
REPEAT=1
SERVER_BATCHING=
DO_BUILD=1
GOAL=0.95

while [ $# -gt 0 ]; do
    case $1 in
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --server-batching) SERVER_BATCHING=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h | --help) print_help; exit 0 ;;
    *) unknown_option "$1" ;;
    esac
done
CONCURRENCY=${CONCURRENCY:-$((2 * WORKERS))}

# ---- Build ----

build modinfer mi-bench-cnn mi-bench-cnn-inprocess
check_build_type
check_sanitize

SERVER=$BUILD_DIR/modinfer
CLIENT=$BUILD_DIR/bench/mi-bench-cnn
INPROC=$BUILD_DIR/bench/mi-bench-cnn-inprocess
require_exec "$SERVER" "$CLIENT" "$INPROC"

build_models
PIPELINE=$MODELS/cnn.json
if [ -n "$SERVER_BATCHING" ]; then
    # Next to the model, so that its relative path still holds.
    PIPELINE=$MODELS/cnn-batching-$SERVER_BATCHING.json
    /usr/bin/python3 - "$MODELS/cnn.json" "$PIPELINE" "$SERVER_BATCHING" <<'EOF'
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    doc = json.load(f)
doc["batching"] = {"max_batch_size": int(sys.argv[3]), "max_queue_delay_us": 0}
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=2)
EOF
fi

# ---- Noise (bench/lib.sh) ----

noise_init

# ---- Output files ----

out_files compute
SERVER_LOG=$OUT_BASE.server.log
SERVER_CPU=$OUT_BASE.server-cpu.csv
echo "batch,run,server_cpu_s" >"$SERVER_CPU"

# ---- Server ----

trap 'stop_server; rm -f "$TIMES_FILE"' EXIT
trap 'exit 130' INT TERM

LOAD_BEFORE=$(loadavg)
noise_start
log "starting the server (workers=$WORKERS)"
start_server "$SERVER" serve "$PIPELINE" --grpc-port 0 --http-port 0 \
    --address 127.0.0.1 --workers "$WORKERS"
log "server pid $SERVER_PID on 127.0.0.1:$PORT"

# ---- Runs ----

# The "check:" line of the last block a program appended to the log.
last_check() {
    sed -n 's/.*sum of the logits of the first batch //p' "$LOG" | tail -n 1
}

STATUS=0
for b in $BATCHES; do
    for r in $(seq 1 "$REPEAT"); do
        log "batch $b, run $r: served (concurrency $CONCURRENCY," \
            "${WARMUP}s + ${RUN_SECONDS}s)"
        TICKS_BEFORE=$(server_ticks)
        if ! "$CLIENT" --target "127.0.0.1:$PORT" --batch "$b" \
            --concurrency "$CONCURRENCY" --seconds "$RUN_SECONDS" \
            --warmup "$WARMUP" --label served --csv "$CSV" >>"$LOG" 2>&1; then
            log "mi-bench-cnn --batch $b reported errors (see $LOG)"
            STATUS=1
        fi
        SERVED_SUM=$(last_check)
        check_server
        echo "$b,$r,$(awk -v t=$(($(server_ticks) - TICKS_BEFORE)) \
            -v hz="$CLK_TCK" 'BEGIN { print t / hz }')" >>"$SERVER_CPU"
        log "batch $b, run $r: in-process ($WORKERS threads)"
        if ! "$INPROC" --model "$MODELS/cnn.onnx" --batch "$b" \
            --threads "$WORKERS" --seconds "$RUN_SECONDS" --warmup "$WARMUP" \
            --csv "$CSV" >>"$LOG" 2>&1; then
            log "mi-bench-cnn-inprocess --batch $b failed (see $LOG)"
            STATUS=1
        fi
        INPROC_SUM=$(last_check)
        if ! awk -v a="$SERVED_SUM" -v b="$INPROC_SUM" 'BEGIN {
                d = a - b; if (d < 0) d = -d
                m = b < 0 ? -b : b
                exit !(a != "" && b != "" && d <= 1e-4 * (m > 1 ? m : 1))
            }'; then
            log "batch $b: served and in-process logits differ" \
                "($SERVED_SUM vs $INPROC_SUM)"
            STATUS=1
        fi
    done
done
stop_server
LOAD_AFTER=$(loadavg)
noise_end

# ---- Table ----

{
    echo "compute benchmark $STAMP: cnn.onnx (0.415 GMAC/image), build" \
        "${BUILD_TYPE:-?}, workers=$WORKERS, concurrency=$CONCURRENCY," \
        "server batching ${SERVER_BATCHING:-off},"
    echo "  ${WARMUP}s warmup + ${RUN_SECONDS}s per row, $(nproc) cores," \
        "load $LOAD_BEFORE -> $LOAD_AFTER," \
        "other work ${OTHER_CORES} cores"
    # CPU per image over warmup + measured time: the server's (from /proc),
    # the client's, and the in-process program's (all its threads).  The
    # CPU ratio inp / (srv + cli) is what the throughput ratio would be if
    # both sides had the two cores to themselves: it hardly moves when
    # other work takes cores from one side's run and not the other's.
    awk -F, -v goal="$GOAL" '
    BEGIN {
        printf "%-5s %-3s %11s %8s %8s %6s %9s %9s %11s %9s %7s %9s\n",
               "batch", "run", "served im/s", "p50 ms", "p99 ms", "errors",
               "srv ms/im", "cli ms/im", "inproc im/s", "inp ms/im", "ratio",
               "cpu ratio"
    }
    FNR == 1 { next }
    FILENAME == ARGV[1] { srv_cpu[$1 SUBSEP $2] = $3; next }
    $1 == "served" {
        b = $2; run[b]++; k = b SUBSEP run[b]
        served[k] = $5; p50[k] = $9; p99[k] = $10; errs[k] = $8
        n_img[k] = $12 * b; cli[k] = $13
        if (!(b in seen)) { seen[b] = 1; order[++nb] = b }
        next
    }
    $1 == "inprocess" {
        b = $2; irun[b]++; k = b SUBSEP irun[b]
        inproc[k] = $5; icpu[k] = ($12 > 0 ? $13 * 1e3 / ($12 * b) : 0)
    }
    END {
        for (i = 1; i <= nb; i++) {
            b = order[i]; ss = 0; si = 0; cs = 0; ci = 0
            for (r = 1; r <= run[b]; r++) {
                k = b SUBSEP r
                ratio = (inproc[k] > 0 ? served[k] / inproc[k] : 0)
                sc = "-"; cc = "-"; cr = "-"
                if ((k in srv_cpu) && n_img[k] > 0) {
                    s_ms = srv_cpu[k] * 1e3 / n_img[k]
                    c_ms = cli[k] * 1e3 / n_img[k]
                    sc = sprintf("%.2f", s_ms); cc = sprintf("%.2f", c_ms)
                    cr = sprintf("%.3f", icpu[k] / (s_ms + c_ms))
                    cs += s_ms + c_ms; ci += icpu[k]
                }
                printf "%-5s %-3d %11.1f %8.1f %8.1f %6d %9s %9s %11.1f %9.2f %7.3f %9s\n",
                       b, r, served[k], p50[k], p99[k], errs[k], sc, cc,
                       inproc[k], icpu[k], ratio, cr
                ss += served[k]; si += inproc[k]
            }
            rows[b] = (si > 0 ? ss / si : 0)
            cpu_rows[b] = (cs > 0 ? ci / cs : 0)
        }
        for (i = 1; i <= nb; i++) {
            b = order[i]
            printf "ratio served/in-process, batch %-3s %.3f  (goal >= %.2f: %s);" \
                   "  by CPU time %.3f\n", b, rows[b], goal,
                   (rows[b] >= goal ? "met" : "not met"), cpu_rows[b]
        }
    }' "$SERVER_CPU" "$CSV"
} | tee "$TXT"
log "csv: $CSV"
exit "$STATUS"
