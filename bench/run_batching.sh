#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Batching benchmark: the highest fall-detection load the server sustains
# with a p99 latency of 10 ms or less, without and with dynamic batching,
# in one run.  Two copies of examples/fall-detection/pipeline.json are
# served one after the other (never at once: they would share the two
# cores), on a free loopback port, with the same server options:
#
#   unbatched  the pipeline with its "batching" object removed
#   batched    "batching": {"max_batch_size": 64, "max_queue_delay_us": 0}
#
# Against each, modinfer-bench (extended protocol, the paper's clients'
# request format) runs:
#
#   0. 2 s at 5000 req/s, not measured, to warm the fresh server;
#   1. an open-loop sweep of offered load (--rates, default 10000 to
#      70000 req/s in steps of 10000): requests go out on schedule whether
#      or not answers came back, each point measured over short windows
#      until 3 agree (--window-ms, --max-windows);
#   2. --refine more rates between the highest sustained rate of the
#      sweep and the next one (by default 3: 22500, 25000, 27500 when 20000
#      passed and 30000 did not), so that the ratio is not only a count
#      of sweep steps;
#   3. closed loop at 64 and 256 requests outstanding (--concurrency):
#      the throughput the server reaches when it sets the pace.
#
# A rate is *sustained* when the achieved throughput is at least 95 % of
# the offered rate, the p99 latency is at most 10 ms, and no request
# failed.  The table gives, for each server, the highest sustained rate,
# the closed-loop maxima, the mean batch size (from the server's
# /metrics), the ratio batched / unbatched of the sustained rates, and the
# batched figure against the goal of 50,000 req/s.
#
# Results: bench/out/batching-<time>.{csv,txt,log}, the latency plots
# bench/out/batching-<time>-{unbatched,batched}.png (modinfer-bench --plot,
# needs gnuplot), the closed-loop rows in batching-<time>-closed.csv, the
# server logs, and the two pipeline copies in bench/out/batching-<time>/.
#
# usage: bench/run_batching.sh [--rates LIST] [--concurrency LIST]
#                              [--window-ms MS] [--max-windows N]
#                              [--workers N] [--grpc-threads N]
#                              [--p99-ms MS] [--refine N]
#                              [--build-dir DIR] [--no-build]
#   LIST is comma-separated, as modinfer-bench takes it.
#   --refine N  after the sweep, N more rates evenly between the highest
#               sustained rate and the next rate of the sweep (default 3;
#               0: none), so that the limit is known to a quarter step
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

BUILD_DIR=$ROOT/build
RATES=10000,20000,30000,40000,50000,60000,70000
CONCURRENCY=64,256
WINDOW_MS=1000
MAX_WINDOWS=4
WORKERS=2
GRPC_THREADS=1
P99_MS=10
GOAL=50000
WARMUP_RATE=5000
REFINE=3
DO_BUILD=1

while [ $# -gt 0 ]; do
    case $1 in
    --rates) RATES=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --window-ms) WINDOW_MS=$2; shift 2 ;;
    --max-windows) MAX_WINDOWS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --grpc-threads) GRPC_THREADS=$2; shift 2 ;;
    --p99-ms) P99_MS=$2; shift 2 ;;
    --refine) REFINE=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h | --help) print_help; exit 0 ;;
    *) unknown_option "$1" ;;
    esac
done

# ---- Build ----

build modinfer modinfer-bench fall_model
check_build_type
check_sanitize

SERVER=$BUILD_DIR/modinfer
DRIVER=$BUILD_DIR/modinfer-bench
require_exec "$SERVER" "$DRIVER"

# ---- Noise (bench/lib.sh) ----

noise_init

# ---- Output files and pipeline copies ----

out_files batching
BASE=$OUT_BASE
mkdir -p "$BASE"
CLOSED_CSV=$BASE-closed.csv
BATCHES=$BASE.batch-size.csv
echo "label,executions,requests" >"$BATCHES"

# The copies live in another folder, so their model path is made absolute.
SRC_PIPELINE=${PIPELINE:-$ROOT/examples/fall-detection/pipeline.json}
/usr/bin/python3 - "$SRC_PIPELINE" "$BASE" <<'EOF'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8") as f:
    doc = json.load(f)
path = doc["model"]["path"]
if not os.path.isabs(path):
    doc["model"]["path"] = os.path.join(os.path.dirname(os.path.abspath(src)),
                                        path)
doc.pop("batching", None)
with open(os.path.join(out, "unbatched.json"), "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=2)
doc["batching"] = {"max_batch_size": 64, "max_queue_delay_us": 0}
with open(os.path.join(out, "batched.json"), "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=2)
EOF

# ---- Servers ----

SERVER_LOG=
trap 'stop_server; rm -f "$TIMES_FILE"' EXIT
trap 'exit 130' INT TERM

# serve <pipeline> <log>: starts a server on <pipeline>, its stderr in
# <log>; sets SERVER_PID, PORT and HTTP_PORT.
serve() {
    SERVER_LOG=$2
    start_server "$SERVER" serve "$1" --grpc-port 0 --http-port 0 \
        --address 127.0.0.1 --workers "$WORKERS" \
        --grpc-threads "$GRPC_THREADS"
}

# Executions and requests of the model so far, from /metrics.
batch_counts() {
    server_metrics "$HTTP_PORT" -sf | awk '
        /^mi_batch_size_count/ { n = $NF }
        /^mi_batch_size_sum/ { s = $NF }
        END { printf "%d,%d\n", n, s }'
}

# The criterion, shared by the refinement and the table.  Columns are
# found by name in the CSV header, so that added columns do not break it.
# shellcheck disable=SC2016 # awk code, expanded by awk
SUSTAINED_AWK='
function col(name) { return $(idx[name]) }
function sustained() {
    return col("req_per_s") >= 0.95 * col("rate") &&
           col("p99_us") / 1000 <= p99_max && col("failed") + 0 == 0 &&
           col("client_backlog") + 0 == 0
}'

# refine_rates <label>: the --refine rates between the highest sustained
# rate of the label's rows and the lowest rate above it, comma-separated;
# empty when every rate was sustained.
refine_rates() {
    awk -F, -v p99_max="$P99_MS" -v want="$1" -v n="$REFINE" \
        "$SUSTAINED_AWK"'
    FNR == 1 { for (i = 1; i <= NF; i++) { idx[$i] = i }; next }
    col("label") == want {
        r = col("rate") + 0; rate[++m] = r
        if (sustained() && r > best) { best = r }
    }
    END {
        for (i = 1; i <= m; i++) {
            if (rate[i] > best && (above == "" || rate[i] < above)) {
                above = rate[i]
            }
        }
        if (above == "" || n < 1) { exit }
        for (k = 1; k <= n; k++) {
            printf "%s%d", (k > 1 ? "," : ""),
                   best + k * (above - best) / (n + 1) + 0.5
        }
    }' "$CSV"
}

LOAD_BEFORE=$(loadavg)
noise_start
STATUS=0
for label in unbatched batched; do
    serve "$BASE/$label.json" "$BASE-$label.server.log"
    log "$label: server pid $SERVER_PID on 127.0.0.1:$PORT" \
        "(workers=$WORKERS grpc-threads=$GRPC_THREADS)"
    # Unmeasured: the first requests of a fresh server (ORT's first runs,
    # page faults, thread start-up) would otherwise land in the first
    # window of the first point.
    log "$label: warmup, 2 s at ${WARMUP_RATE} req/s (not measured)"
    "$DRIVER" --protocol extended --target "127.0.0.1:$PORT" \
        --rate "$WARMUP_RATE" --window-ms 2000 --max-windows 1 \
        --drain-ms 3000 --quiet >>"$LOG" 2>&1 || true
    log "$label: open loop, rates $RATES"
    drive "$label" "$DRIVER" --protocol extended --target "127.0.0.1:$PORT" \
        --rate "$RATES" --window-ms "$WINDOW_MS" \
        --max-windows "$MAX_WINDOWS" --drain-ms 3000 --label "$label" \
        --csv "$CSV" --plot "$BASE-$label.png"
    FINE=$(refine_rates "$label")
    if [ -n "$FINE" ]; then
        log "$label: open loop, refining: rates $FINE"
        drive "$label" "$DRIVER" --protocol extended \
            --target "127.0.0.1:$PORT" --rate "$FINE" \
            --window-ms "$WINDOW_MS" --max-windows "$MAX_WINDOWS" \
            --drain-ms 3000 --label "$label" --csv "$CSV" \
            --plot "$BASE-$label-refine.png"
    fi
    log "$label: closed loop, concurrency $CONCURRENCY"
    drive "$label" "$DRIVER" --protocol extended \
        --target "127.0.0.1:$PORT" --concurrency "$CONCURRENCY" \
        --window-ms "$WINDOW_MS" --max-windows "$MAX_WINDOWS" \
        --drain-ms 3000 --label "$label" --csv "$CLOSED_CSV"
    check_server "$label"
    echo "$label,$(batch_counts)" >>"$BATCHES"
    stop_server
done
LOAD_AFTER=$(loadavg)
noise_end

# ---- Table ----

{
    echo "batching benchmark $STAMP: fall-detection, extended protocol," \
        "build ${BUILD_TYPE:-?}, workers=$WORKERS grpc-threads=$GRPC_THREADS,"
    echo "  windows of ${WINDOW_MS} ms (at most $MAX_WINDOWS per point)," \
        "$(nproc) cores, load $LOAD_BEFORE -> $LOAD_AFTER," \
        "other work ${OTHER_CORES} cores"
    echo "  sustained: req/s >= 95% of the offered rate, p99 <= ${P99_MS} ms," \
        "no failed request"
    awk -F, -v p99_max="$P99_MS" -v goal="$GOAL" "$SUSTAINED_AWK"'
    FNR == 1 {
        delete idx
        for (i = 1; i <= NF; i++) { idx[$i] = i }
        file++
        next
    }
    file == 1 {   # batch sizes
        if (col("executions") > 0) {
            mean_batch[col("label")] = col("requests") / col("executions")
        }
        next
    }
    file == 2 {   # closed loop
        closed[col("label"), col("concurrency")] = col("req_per_s")
        cl_p99[col("label"), col("concurrency")] = col("p99_us") / 1000
        if (!(col("concurrency") in seen_c)) {
            seen_c[col("concurrency")] = 1; conc[++nc] = col("concurrency")
        }
        next
    }
    {             # open loop: kept, printed by label and rate at the end
        n++
        lab[n] = col("label"); rate[n] = col("rate") + 0
        ok[n] = sustained()
        line[n] = sprintf("%8.0f %10.1f %10.1f %9.3f %9.3f %7d %s",
                          rate[n], col("offered_per_s"), col("req_per_s"),
                          col("p50_us") / 1000, col("p99_us") / 1000,
                          col("failed") + col("client_backlog"),
                          (ok[n] ? "yes" : "no"))
        if (!(lab[n] in seen_l)) { seen_l[lab[n]] = 1; labels[++nl] = lab[n] }
    }
    END {
        printf "%-10s %8s %10s %10s %9s %9s %7s %s\n", "server", "rate/s",
               "offered/s", "req/s", "p50 ms", "p99 ms", "failed",
               "sustained"
        for (j = 1; j <= nl; j++) {
            l = labels[j]
            # Selection by rate: a few dozen rows at most.
            delete done
            for (;;) {
                pick = 0
                for (i = 1; i <= n; i++) {
                    if (lab[i] == l && !(i in done) &&
                        (pick == 0 || rate[i] < rate[pick])) {
                        pick = i
                    }
                }
                if (pick == 0) { break }
                done[pick] = 1
                printf "%-10s %s\n", l, line[pick]
                if (ok[pick] && rate[pick] > best[l]) { best[l] = rate[pick] }
                if (!ok[pick] && !(l in first_fail)) {
                    first_fail[l] = rate[pick]
                }
            }
        }
        print ""
        printf "%-10s %14s", "server", "max sustained"
        for (i = 1; i <= nc; i++) {
            printf " %17s", "closed c=" conc[i] " req/s"
        }
        printf " %10s\n", "mean batch"
        for (j = 1; j <= nl; j++) {
            l = labels[j]
            printf "%-10s %14s", l, (best[l] > 0 ? sprintf("%.0f", best[l]) \
                                                 : "none")
            for (i = 1; i <= nc; i++) {
                k = l SUBSEP conc[i]
                printf " %17s", ((k in closed) ? \
                    sprintf("%.0f (p99 %.1f)", closed[k], cl_p99[k]) : "-")
            }
            printf " %10s\n", ((l in mean_batch) ? \
                sprintf("%.2f", mean_batch[l]) : "-")
            if ((l in first_fail) && best[l] > first_fail[l]) {
                printf "  note: %s failed at %.0f req/s but passed at a " \
                       "higher rate (noise)\n", l, first_fail[l]
            }
        }
        if (best["unbatched"] > 0 && best["batched"] > 0) {
            printf "ratio batched/unbatched (max sustained): %.2f\n",
                   best["batched"] / best["unbatched"]
        } else {
            printf "ratio batched/unbatched (max sustained): n/a\n"
        }
        printf "batched max sustained vs goal %d req/s: %.2f (%s)\n", goal,
               best["batched"] / goal,
               (best["batched"] >= goal ? "met" : "not met")
    }' "$BATCHES" "$CLOSED_CSV" "$CSV"
} | tee "$TXT"
log "csv: $CSV, $CLOSED_CSV; plots: $BASE-*.png"
exit "$STATUS"
