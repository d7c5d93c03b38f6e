#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Scale-out benchmark: the fall-detection workload (modinfer-bench, closed
# loop, the paper's extended protocol, --streams streams with one request
# outstanding each, over one connection) in one run against
#
#   direct      one replica, no balancer (the replica's own gRPC port)
#   haproxy-1   the same replica through haproxy (deploy/local/cluster.sh)
#   haproxy-2   two replicas through haproxy
#
# and prints req/s and latency for each, the balancer's overhead
# (haproxy-1 / direct) and the scaling factor (haproxy-2 / haproxy-1).
# Results go to bench/out/scale-<time>.{csv,txt,log} and the clusters' run
# folders to bench/out/scale-<time>-run/.
#
# Pinning: replica 1 runs on CPU 0 (taskset -c 0), replica 2 on CPU 1, each
# with --workers 1 --grpc-threads 1, so one replica has one core and two
# have two.  haproxy (nbthread 1) and modinfer-bench are not pinned: on this
# 2-core machine they share both cores with the replicas, so the figures
# are those of load generator, balancer and replicas together on two
# cores, and the scaling factor is well below 2 even for a perfect
# balancer.  Set --replica-cpus, --haproxy-cpus and CLIENT_CPUS to try
# other splits.
#
# usage: bench/run_scale.sh [--seconds T] [--warmup W] [--streams S]
#                           [--max-windows N] [--stability PCT]
#                           [--replica-cpus "0 1"] [--haproxy-cpus L]
#                           [--haproxy-threads N] [--base-port P]
#                           [--build-dir DIR] [--no-build]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

BUILD_DIR=$ROOT/build
RUN_SECONDS=6
WARMUP=1
STREAMS=64
MAX_WINDOWS=6
STABILITY=10
REPLICA_CPUS="0 1"
HAPROXY_CPUS=
HAPROXY_THREADS=1
BASE_PORT=52100
DO_BUILD=1

need_arg() {
    if [ $# -lt 2 ] || [ -z "$2" ]; then
        usage_error "option $1 needs a value"
    fi
}
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) print_help; exit 0 ;;
    --no-build) DO_BUILD=0; shift; continue ;;
    esac
    need_arg "$@"
    case $1 in
    --seconds) RUN_SECONDS=$2 ;;
    --warmup) WARMUP=$2 ;;
    --streams) STREAMS=$2 ;;
    --max-windows) MAX_WINDOWS=$2 ;;
    --stability) STABILITY=$2 ;;
    --replica-cpus) REPLICA_CPUS=$2 ;;
    --haproxy-cpus) HAPROXY_CPUS=$2 ;;
    --haproxy-threads) HAPROXY_THREADS=$2 ;;
    --base-port) BASE_PORT=$2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2") ;;
    *) unknown_option "$1" ;;
    esac
    shift 2
done

die() {
    log "$*"
    exit 1
}

set_windows 1
case $STREAMS in
'' | *[!0-9]* | 0) die "--streams: expected a positive integer, got" \
    "'$STREAMS'" ;;
esac
case $BASE_PORT in
'' | *[!0-9]*) die "--base-port: expected a port, got '$BASE_PORT'" ;;
esac
command -v taskset >/dev/null || die "taskset is missing (util-linux)"

# ---- Build ----

build modinfer modinfer-bench fall_model
check_build_type
SERVER=$BUILD_DIR/modinfer
DRIVER=$BUILD_DIR/modinfer-bench
CLUSTER=$ROOT/deploy/local/cluster.sh
PIPELINE=${PIPELINE:-$ROOT/examples/fall-detection/pipeline.json}
require_exec "$SERVER" "$DRIVER"

# ---- Output ----

out_files scale
RUN_DIR=$OUT_BASE-run
: >"$CSV"

GRPC_PORT=$BASE_PORT
HTTP_PORT=$((BASE_PORT + 1))
STATS_PORT=$((BASE_PORT + 2))
REPLICA_GRPC=$((BASE_PORT + 10))
REPLICA_HTTP=$((BASE_PORT + 20))

CLUSTER_UP=0
cluster_stop() {
    if [ "$CLUSTER_UP" = 1 ]; then
        bash "$CLUSTER" stop --run-dir "$RUN_DIR" >>"$LOG" 2>&1 ||
            log "cluster.sh stop failed (see $LOG)"
        CLUSTER_UP=0
    fi
}
trap cluster_stop EXIT
trap 'exit 130' INT TERM

cluster_start() {
    local n=$1
    log "starting $n replica(s) behind haproxy"
    CLUSTER_UP=1
    if ! bash "$CLUSTER" start --run-dir "$RUN_DIR" --replicas "$n" \
        --binary "$SERVER" --pipeline "$PIPELINE" \
        --grpc-port "$GRPC_PORT" --http-port "$HTTP_PORT" \
        --stats-port "$STATS_PORT" --replica-grpc-base "$REPLICA_GRPC" \
        --replica-http-base "$REPLICA_HTTP" \
        --replica-cpus "$REPLICA_CPUS" \
        ${HAPROXY_CPUS:+--haproxy-cpus "$HAPROXY_CPUS"} \
        --haproxy-threads "$HAPROXY_THREADS" \
        -- --workers 1 --grpc-threads 1 >>"$LOG" 2>&1; then
        tail -n 20 "$LOG" >&2
        die "cluster.sh start failed (see $LOG)"
    fi
}

STATUS=0
# measure LABEL PORT: one modinfer-bench point against 127.0.0.1:PORT.
measure() {
    local label=$1 port=$2
    local args=(--protocol extended --target "127.0.0.1:$port"
        --concurrency "$STREAMS" --streams "$STREAMS" --drain-ms 3000)
    warmup_point "$label" "${args[@]}"
    stable_point "$label" "${args[@]}"
    check_row_errors "$label"
}

LOAD_BEFORE=$(loadavg)
# One replica: measured directly and through haproxy, same process.
cluster_start 1
measure direct "$REPLICA_GRPC"
measure haproxy-1 "$GRPC_PORT"
cluster_stop
cluster_start 2
measure haproxy-2 "$GRPC_PORT"
# Both replicas must have served: haproxy spreads the streams.
for i in 1 2; do
    n=$(server_metrics $((REPLICA_HTTP + i - 1)) -s --max-time 5 |
        awk '/^mi_requests_total\{/ { s += $2 } END { printf "%d", s }')
    echo "haproxy-2: replica $i answered $n requests" >>"$LOG"
    if [ "${n:-0}" -eq 0 ]; then
        log "haproxy-2: replica $i answered nothing"
        STATUS=1
    fi
done
cluster_stop
LOAD_AFTER=$(loadavg)

read -r -a CPUS <<<"$REPLICA_CPUS"
{
    echo "scale-out benchmark $STAMP: build ${BUILD_TYPE:-?}, fall-detection," \
        "extended protocol, closed loop, $STREAMS streams x 1 request,"
    echo "  ${WARMUP}s warmup + windows of $WINDOW_MS ms (last 3 of at most" \
        "$MAX_WINDOWS); $(nproc) cores, load $LOAD_BEFORE -> $LOAD_AFTER"
    echo "  pinning: replica 1 cpu ${CPUS[0]:-none}, replica 2 cpu" \
        "${CPUS[1]:-${CPUS[0]:-none}} (--workers 1 --grpc-threads 1 each);" \
        "haproxy (nbthread $HAPROXY_THREADS) cpus ${HAPROXY_CPUS:-any}," \
        "load generator cpus ${CLIENT_CPUS:-any}:"
    echo "  the load generator and haproxy share the cores with the replicas"
    awk -F, '
    function col(name) { return (name in idx) ? $(idx[name]) : "" }
    BEGIN {
        printf "%-10s %9s %9s %9s %7s %7s\n", "config", "req/s", "p50 us",
               "p99 us", "errors", "stable"
    }
    FNR == 1 { for (i = 1; i <= NF; i++) { idx[$i] = i }; next }
    {
        cfg = col("label")
        rate[cfg] = col("req_per_s") + 0
        printf "%-10s %9.0f %9.1f %9.1f %7d %7s\n", cfg, rate[cfg],
               col("p50_us"), col("p99_us"),
               col("failed") + col("client_backlog") + col("bad_response"),
               col("stable")
    }
    END {
        if (rate["direct"] > 0 && rate["haproxy-1"] > 0) {
            printf "balancer overhead: haproxy-1 / direct = %.3f" \
                   " (%.1f %% less throughput)\n",
                   rate["haproxy-1"] / rate["direct"],
                   100 * (1 - rate["haproxy-1"] / rate["direct"])
        }
        if (rate["haproxy-1"] > 0 && rate["haproxy-2"] > 0) {
            printf "scaling factor:    haproxy-2 / haproxy-1 = %.3f\n",
                   rate["haproxy-2"] / rate["haproxy-1"]
        }
    }' "$CSV"
} | tee "$TXT"
log "csv: $CSV; log: $LOG"
exit "$STATUS"
