#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# A local modinfer cluster: N replicas on 127.0.0.1 behind haproxy.
#
# usage: deploy/local/cluster.sh start  [options] [-- server options...]
#        deploy/local/cluster.sh stop   [--run-dir DIR]
#        deploy/local/cluster.sh status [--run-dir DIR]
#        deploy/local/cluster.sh stop-replica I [--run-dir DIR]
#        deploy/local/cluster.sh drain I [--wait S] [--run-dir DIR]
#
# start: starts N replicas of `modinfer serve PIPELINE`, replica i (from 1)
# on gRPC port REPLICA_GRPC_BASE+i-1 and HTTP port REPLICA_HTTP_BASE+i-1,
# waits until each one logs "ready: serving", writes RUN_DIR/haproxy.cfg,
# checks it with `haproxy -c` and starts haproxy in front of the replicas:
# a gRPC frontend (h2c, `proto h2` to the replicas) and an HTTP/1.1
# frontend for the Open Inference Protocol REST API, with health checks on
# every replica's /v2/health/ready.  Every replica runs with a drain
# delay (--drain-delay-ms below): at SIGTERM it turns not ready but goes on
# serving until haproxy's health checks have taken it out, so a plain
# SIGTERM fails no request.  Everything binds to 127.0.0.1.  The
# processes keep running after the script returns; their pids, logs and
# the generated configuration stay in RUN_DIR.  Words after `--` go to
# every replica (e.g. -- --workers 1).
#
# stop: soft-stops haproxy (SIGUSR1: it closes its listeners and lets open
# connections finish), sends SIGTERM to every replica (each one drains:
# readiness turns false, it serves on for its drain delay, then the gRPC
# server lets open calls finish within its --grace-ms), waits for all of
# them, and removes the pid files.  A replica still running 30 s after its
# drain delay, or haproxy after its hard-stop-after, is killed and
# reported; the exit status is then 1.
#
# stop-replica I: takes replica I out of the cluster without failing a
# request: sends it SIGTERM and waits for it to exit.  The replica turns
# not ready at once, haproxy's health checks mark it DOWN within the drain
# delay and send new calls to the others, and only then does the replica
# close its listeners; plain `kill -TERM` does the same.  Streams still
# open on it are ended with UNAVAILABLE once the requests it accepted are
# answered; their clients must open a new stream.
#
# drain I: the same, with haproxy told first: sets replica I to DRAIN in
# haproxy (no new calls or connections go to it), waits until haproxy has
# no call open on it (at most --wait seconds, default 10: a long-lived
# stream stays open until the replica ends it), then sends it SIGTERM
# twice (the second one cuts its drain delay short: haproxy no longer
# routes to it) and waits for it to exit.
#
# status: every process with its pid and whether it runs, each replica's
# readiness, and haproxy's view of its servers (UP/DOWN, sessions, total).
# Exit status 0 when everything runs and every server is UP, 1 otherwise.
#
# start options:
#   -n, --replicas N         replicas (default 2)
#   --grpc-port P            haproxy's gRPC frontend (default 50051)
#   --http-port P            haproxy's HTTP frontend (default 8000)
#   --stats-port P           haproxy's stats page /stats and /metrics
#                            (default 8404)
#   --replica-grpc-base P    gRPC port of replica 1 (default 50061)
#   --replica-http-base P    HTTP port of replica 1 (default 8061)
#   --pipeline FILE          (default examples/fall-detection/pipeline.json)
#   --binary FILE            modinfer (default build/modinfer)
#   --haproxy FILE           (default /usr/sbin/haproxy)
#   --run-dir DIR            (default deploy/local/run)
#   --balance ALGO           roundrobin or leastconn (default roundrobin)
#   --retry-on LIST          haproxy's retry-on for both backends, quoted
#                            (default "conn-failure empty-response")
#   --stream-timeout T       haproxy's client/server/tunnel inactivity
#                            timeout (default 1h)
#   --check-interval T       health check interval (default 1s; 250ms
#                            while a server changes state); a server is
#                            DOWN after 2 failed checks
#   --drain-delay-ms MS      every replica's --drain-delay-ms: how long it
#                            serves on, not ready, after SIGTERM (default
#                            (2 + 1) x the check interval: the 2 checks
#                            that mark it DOWN and one interval of margin;
#                            3000 for 1s, 1500 for 500ms; 0: none, a
#                            SIGTERM then refuses calls until haproxy
#                            notices)
#   --ready-timeout S        seconds to wait for each replica (default 120)
#   --replica-cpus "L1 L2"   taskset CPU lists, replica i gets the i-th
#                            (cycling); default: no pinning
#   --haproxy-cpus L         taskset CPU list for haproxy (default none)
#   --haproxy-threads N      haproxy's nbthread (default: haproxy's own,
#                            one per CPU it may run on)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROG=cluster.sh

die() {
    echo "$PROG: $*" >&2
    exit 1
}
log() { echo "$PROG: $*" >&2; }

usage() {
    sed -n '4,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

if [ $# -lt 1 ]; then
    usage >&2
    exit 2
fi
CMD=$1
shift
case $CMD in
start | stop | status | drain | stop-replica) ;;
-h | --help | help) usage; exit 0 ;;
*) echo "$PROG: unknown command '$CMD' (start, stop, status, stop-replica" \
    "or drain)" >&2
    exit 2 ;;
esac

REPLICAS=2
GRPC_PORT=50051
HTTP_PORT=8000
STATS_PORT=8404
REPLICA_GRPC_BASE=50061
REPLICA_HTTP_BASE=8061
PIPELINE=$ROOT/examples/fall-detection/pipeline.json
BINARY=$ROOT/build/modinfer
HAPROXY=/usr/sbin/haproxy
RUN_DIR=$ROOT/deploy/local/run
BALANCE=roundrobin
RETRY_ON="conn-failure empty-response"
STREAM_TIMEOUT=1h
CHECK_INTERVAL=1s
# haproxy's fall count: a server is DOWN after this many failed checks.
CHECK_FALL=2
DRAIN_DELAY_MS=
READY_TIMEOUT=120
REPLICA_CPUS=
HAPROXY_CPUS=
HAPROXY_THREADS=
SERVER_ARGS=()
DRAIN_INDEX=
DRAIN_WAIT=10

need_arg() {
    if [ $# -lt 2 ] || [ -z "$2" ]; then
        echo "$PROG: option $1 needs a value" >&2
        exit 2
    fi
}
need_port() {
    case $2 in
    '' | *[!0-9]*) echo "$PROG: $1: expected a port number, got '$2'" >&2
        exit 2 ;;
    esac
    if [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
        echo "$PROG: $1: port $2 is out of range" >&2
        exit 2
    fi
}

while [ $# -gt 0 ]; do
    opt=$1
    case $opt in
    --) shift; SERVER_ARGS=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    --run-dir) need_arg "$@"; RUN_DIR=$(realpath -m "$2"); shift 2; continue ;;
    esac
    if [ "$CMD" = drain ] || [ "$CMD" = stop-replica ]; then
        case $opt in
        --wait) if [ "$CMD" = drain ]; then
                need_arg "$@"; DRAIN_WAIT=$2; shift 2; continue
            fi ;;
        -*) ;;
        *) if [ -z "$DRAIN_INDEX" ]; then DRAIN_INDEX=$opt; shift; continue; fi ;;
        esac
    fi
    if [ "$CMD" != start ]; then
        echo "$PROG: $CMD: unexpected argument '$opt' (see --help)" >&2
        exit 2
    fi
    need_arg "$@"
    case $opt in
    -n | --replicas) REPLICAS=$2 ;;
    --grpc-port) need_port "$opt" "$2"; GRPC_PORT=$2 ;;
    --http-port) need_port "$opt" "$2"; HTTP_PORT=$2 ;;
    --stats-port) need_port "$opt" "$2"; STATS_PORT=$2 ;;
    --replica-grpc-base) need_port "$opt" "$2"; REPLICA_GRPC_BASE=$2 ;;
    --replica-http-base) need_port "$opt" "$2"; REPLICA_HTTP_BASE=$2 ;;
    --pipeline) PIPELINE=$(realpath -m "$2") ;;
    --binary) BINARY=$(realpath -m "$2") ;;
    --haproxy) HAPROXY=$2 ;;
    --balance) BALANCE=$2 ;;
    --retry-on) RETRY_ON=$2 ;;
    --stream-timeout) STREAM_TIMEOUT=$2 ;;
    --check-interval) CHECK_INTERVAL=$2 ;;
    --drain-delay-ms) DRAIN_DELAY_MS=$2 ;;
    --ready-timeout) READY_TIMEOUT=$2 ;;
    --replica-cpus) REPLICA_CPUS=$2 ;;
    --haproxy-cpus) HAPROXY_CPUS=$2 ;;
    --haproxy-threads) HAPROXY_THREADS=$2 ;;
    *) echo "$PROG: unknown option '$opt' (see --help)" >&2; exit 2 ;;
    esac
    shift 2
done

STATE=$RUN_DIR/cluster.env

# alive PIDFILE: true when the pid file names a running process.
alive() {
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# wait_gone PID SECONDS: true when the process is gone within SECONDS.
wait_gone() {
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$pid" 2>/dev/null
}

# time_ms T: haproxy's time T (a number with us, ms, s, m, h or d, or a
# bare number of milliseconds) in whole milliseconds; fails on anything else.
time_ms() {
    local n unit
    if [[ ! $1 =~ ^([0-9]+)(us|ms|s|m|h|d)?$ ]]; then
        return 1
    fi
    n=${BASH_REMATCH[1]}
    unit=${BASH_REMATCH[2]:-ms}
    case $unit in
    us) echo $(((n + 999) / 1000)) ;;
    ms) echo "$n" ;;
    s) echo $((n * 1000)) ;;
    m) echo $((n * 60000)) ;;
    h) echo $((n * 3600000)) ;;
    d) echo $((n * 86400000)) ;;
    esac
}

# stop_wait: seconds to wait for a replica after SIGTERM: its drain delay,
# then 30 s for its grace period and the rest of its exit.
stop_wait() {
    echo $(((${DRAIN_DELAY_MS:-0} + 999) / 1000 + 30))
}

# ---- stop ----

cmd_stop() {
    local status=0 pids=() f pid name hpid
    if [ ! -f "$STATE" ]; then
        log "no cluster in $RUN_DIR (no cluster.env)"
        return 0
    fi
    # shellcheck disable=SC1090
    . "$STATE"
    # 1. haproxy stops accepting; open connections go on for now.
    hpid=
    if alive "$RUN_DIR/haproxy.pid"; then
        hpid=$(cat "$RUN_DIR/haproxy.pid")
        kill -USR1 "$hpid"
        log "haproxy (pid $hpid): soft stop (SIGUSR1)"
    fi
    # 2. Every replica drains at once.
    for ((i = 1; i <= REPLICAS; i++)); do
        f=$RUN_DIR/replica-$i.pid
        if alive "$f"; then
            pid=$(cat "$f")
            kill -TERM "$pid"
            pids+=("$i:$pid")
        fi
    done
    for entry in "${pids[@]+"${pids[@]}"}"; do
        name=replica-${entry%%:*}
        pid=${entry#*:}
        if wait_gone "$pid" "$(stop_wait)"; then
            log "$name (pid $pid) stopped"
        else
            log "$name (pid $pid) still running $(stop_wait) s after" \
                "SIGTERM: killed (see $RUN_DIR/$name.log)"
            kill -KILL "$pid" 2>/dev/null || true
            status=1
        fi
    done
    rm -f "$RUN_DIR"/replica-*.pid
    # 3. haproxy exits once its last connection closed, at the latest
    #    after hard-stop-after.
    if [ -n "$hpid" ]; then
        if wait_gone "$hpid" 35; then
            log "haproxy (pid $hpid) stopped"
        else
            log "haproxy (pid $hpid) still running: killed"
            kill -KILL "$hpid" 2>/dev/null || true
            status=1
        fi
    fi
    rm -f "$RUN_DIR/haproxy.pid" "$STATE"
    return "$status"
}

# ---- stop-replica, drain ----

# replica_pid: checks DRAIN_INDEX against the cluster and prints the pid of
# that replica, which must be running.
replica_pid() {
    local i=$DRAIN_INDEX f
    case $i in
    '' | *[!0-9]*) echo "$PROG: $CMD: expected a replica number, got" \
        "'$i'" >&2; exit 2 ;;
    esac
    if [ "$i" -lt 1 ] || [ "$i" -gt "$REPLICAS" ]; then
        die "$CMD: no replica $i (the cluster has 1 to $REPLICAS)"
    fi
    f=$RUN_DIR/replica-$i.pid
    alive "$f" || die "replica-$i is not running"
    cat "$f"
}

# wait_replica_gone I PID: waits for replica I to exit after SIGTERM; kills
# it and fails when it outlives stop_wait.
wait_replica_gone() {
    if ! wait_gone "$2" "$(stop_wait)"; then
        kill -KILL "$2" 2>/dev/null || true
        die "replica-$1 (pid $2) still running $(stop_wait) s after" \
            "SIGTERM: killed"
    fi
    rm -f "$RUN_DIR/replica-$1.pid"
}

cmd_stop_replica() {
    local i=$DRAIN_INDEX pid
    [ -f "$STATE" ] || die "no cluster in $RUN_DIR (no cluster.env)"
    # shellcheck disable=SC1090
    . "$STATE"
    pid=$(replica_pid) || exit $?
    kill -TERM "$pid"
    log "replica-$i (pid $pid): SIGTERM; not ready, serving on for" \
        "${DRAIN_DELAY_MS:-0} ms while haproxy takes it out"
    wait_replica_gone "$i" "$pid"
    log "replica-$i (pid $pid) stopped"
}

# stats_csv: haproxy's statistics as CSV (empty when it does not answer).
stats_csv() {
    curl -s --max-time 2 "http://127.0.0.1:$STATS_PORT/stats;csv" || true
}

# set_state BACKEND SERVER ACTION: the stats page's admin form.
set_state() {
    local out
    out=$(curl -s --max-time 2 -o /dev/null -w '%{http_code} %{redirect_url}' \
        -d "s=$2&action=$3&b=$1" "http://127.0.0.1:$STATS_PORT/stats" ||
        true)
    case $out in
    *st=DONE*) return 0 ;;
    *) log "haproxy did not apply '$3' to $1/$2 (answer: '$out')"
        return 1 ;;
    esac
}

cmd_drain() {
    local i=$DRAIN_INDEX pid waited open code
    [ -f "$STATE" ] || die "no cluster in $RUN_DIR (no cluster.env)"
    # shellcheck disable=SC1090
    . "$STATE"
    case $DRAIN_WAIT in
    '' | *[!0-9]*) die "--wait: expected seconds, got '$DRAIN_WAIT'" ;;
    esac
    pid=$(replica_pid) || exit $?
    alive "$RUN_DIR/haproxy.pid" || die "haproxy is not running"
    set_state grpc_replicas "r$i" drain || exit 1
    set_state http_replicas "r$i" drain || exit 1
    log "replica-$i: DRAIN in haproxy; waiting for its open calls" \
        "(at most ${DRAIN_WAIT}s)"
    waited=0
    while :; do
        open=$(stats_csv | awk -F, -v s="r$i" '
            $1 ~ /^(grpc|http)_replicas$/ && $2 == s { n += $5 }
            END { print n + 0 }')
        if [ "$open" -eq 0 ]; then
            break
        fi
        if [ "$waited" -ge $((DRAIN_WAIT * 10)) ]; then
            log "replica-$i: $open calls still open (streams); the replica" \
                "ends them after answering what it accepted"
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -TERM "$pid"
    # haproxy no longer routes to it, so its drain delay would only wait.
    # Once it is not ready it has taken the first SIGTERM (two signals sent
    # at once may merge into one), and a second one cuts the delay short.
    waited=0
    while [ "$waited" -lt 50 ] && kill -0 "$pid" 2>/dev/null; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:$((REPLICA_HTTP_BASE + i - 1))/v2/health/ready" \
            || true)
        if [ "$code" != 200 ]; then
            kill -TERM "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    wait_replica_gone "$i" "$pid"
    log "replica-$i (pid $pid) drained and stopped"
}

# ---- status ----

cmd_status() {
    local status=0 f pid ready code
    if [ ! -f "$STATE" ]; then
        echo "no cluster in $RUN_DIR"
        return 1
    fi
    # shellcheck disable=SC1090
    . "$STATE"
    printf '%-10s %8s %-8s %-22s %s\n' process pid state grpc http
    for ((i = 1; i <= REPLICAS; i++)); do
        f=$RUN_DIR/replica-$i.pid
        pid=$(cat "$f" 2>/dev/null || echo -)
        if alive "$f"; then
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
                "http://127.0.0.1:$((REPLICA_HTTP_BASE + i - 1))/v2/health/ready" \
                || true)
            if [ "$code" = 200 ]; then ready=ready; else
                ready="not-ready($code)"; status=1; fi
        else
            ready=stopped
            status=1
        fi
        printf '%-10s %8s %-8s %-22s %s\n' "replica-$i" "$pid" "$ready" \
            "127.0.0.1:$((REPLICA_GRPC_BASE + i - 1))" \
            "127.0.0.1:$((REPLICA_HTTP_BASE + i - 1))"
    done
    f=$RUN_DIR/haproxy.pid
    pid=$(cat "$f" 2>/dev/null || echo -)
    if alive "$f"; then
        printf '%-10s %8s %-8s %-22s %s  (stats 127.0.0.1:%s/stats)\n' \
            haproxy "$pid" running "127.0.0.1:$GRPC_PORT" \
            "127.0.0.1:$HTTP_PORT" "$STATS_PORT"
        echo
        printf '%-14s %-10s %-10s %5s %8s\n' backend server state cur total
        # haproxy's stats CSV: pxname,svname,...,scur(5),...,stot(8),
        # ...,status(18)
        if ! curl -s --max-time 2 "http://127.0.0.1:$STATS_PORT/stats;csv" |
            awk -F, '
            $1 ~ /^(grpc|http)_replicas$/ && $2 !~ /^(FRONTEND|BACKEND)$/ {
                printf "%-14s %-10s %-10s %5s %8s\n", $1, $2, $18, $5, $8
                if ($18 != "UP") { down = 1 }
            }
            END { exit down }'; then
            status=1
        fi
    else
        printf '%-10s %8s %-8s\n' haproxy "$pid" stopped
        status=1
    fi
    return "$status"
}

# ---- start ----

write_config() {
    local i g h
    {
        cat <<EOF
# Generated by deploy/local/cluster.sh; see deploy/local/README.md.
global
    pidfile $RUN_DIR/haproxy.pid
    stats socket $RUN_DIR/haproxy.sock mode 600 level admin
    # A soft stop (SIGUSR1, cluster.sh stop) waits for open connections,
    # long-lived streams included, at most this long.
    hard-stop-after 30s
    maxconn 4096
EOF
        if [ -n "$HAPROXY_THREADS" ]; then
            echo "    nbthread $HAPROXY_THREADS"
        fi
        cat <<EOF

defaults
    mode http
    timeout connect 2s
    # Inactivity timeouts.  A bidirectional gRPC stream may stay quiet for
    # long; these must be longer than any pause a client makes on a stream,
    # or haproxy cuts the stream.  tunnel covers the connections that
    # haproxy handles as tunnels once both sides stream.
    timeout client $STREAM_TIMEOUT
    timeout server $STREAM_TIMEOUT
    timeout tunnel $STREAM_TIMEOUT
    timeout client-fin 30s
    timeout server-fin 30s
    # Idle keep-alive connections and slow request headers (HTTP/1.1).
    timeout http-request 10s
    timeout http-keep-alive 60s
    timeout check 2s
    # A request whose connection to a replica failed, or that was sent and
    # got nothing back when the replica's connection closed (a crash), is
    # sent again, to another replica (redispatch).  Inference requests are
    # idempotent, so replaying them is safe.
    retries 3
    option redispatch 1
    retry-on $RETRY_ON

frontend grpc
    # gRPC clients speak HTTP/2 without TLS (h2c, prior knowledge).
    bind 127.0.0.1:$GRPC_PORT proto h2
    default_backend grpc_replicas

frontend http
    bind 127.0.0.1:$HTTP_PORT
    default_backend http_replicas

frontend stats
    bind 127.0.0.1:$STATS_PORT
    stats enable
    stats uri /stats
    stats refresh 5s
    # Loopback only: the page's forms (and cluster.sh drain) may set a
    # server to DRAIN or MAINT.
    stats admin if TRUE
    http-request use-service prometheus-exporter if { path /metrics }

backend grpc_replicas
    # With HTTP/2 every gRPC call (a unary call or a whole stream) is one
    # request to haproxy, so the calls of one client connection are spread
    # over the replicas one by one.
    balance $BALANCE
    option httpchk GET /v2/health/ready
    http-check expect status 200
    default-server check inter $CHECK_INTERVAL fastinter 250ms fall $CHECK_FALL rise 2
    # Which replica answered: visible to clients as response metadata.
    http-response set-header x-served-by %[srv_name]
EOF
        for ((i = 1; i <= REPLICAS; i++)); do
            g=$((REPLICA_GRPC_BASE + i - 1))
            h=$((REPLICA_HTTP_BASE + i - 1))
            echo "    server r$i 127.0.0.1:$g proto h2 check-proto h1 port $h"
        done
        cat <<EOF

backend http_replicas
    balance $BALANCE
    # Wait for the whole request body before picking a replica: a request
    # must be in haproxy's buffer to be sent again after a replica crashed
    # mid-request (retry-on above).  Inference bodies are small; gRPC
    # streams (the other backend) must not be buffered.
    option http-buffer-request
    option httpchk GET /v2/health/ready
    http-check expect status 200
    default-server check inter $CHECK_INTERVAL fastinter 250ms fall $CHECK_FALL rise 2
    http-response set-header x-served-by %[srv_name]
EOF
        for ((i = 1; i <= REPLICAS; i++)); do
            h=$((REPLICA_HTTP_BASE + i - 1))
            echo "    server r$i 127.0.0.1:$h"
        done
    } >"$RUN_DIR/haproxy.cfg"
}

# pinned CPUS CMD...: exec CMD, under taskset when CPUS is set.
pinned_prefix() {
    if [ -n "$1" ]; then
        echo "taskset -c $1"
    fi
}

cmd_start() {
    local i g h log_file cpus cpu_list=() pid ports=() p waited csv up
    local inter_ms
    case $REPLICAS in
    '' | *[!0-9]* | 0) die "--replicas: expected a positive integer, got" \
        "'$REPLICAS'" ;;
    esac
    case $BALANCE in
    roundrobin | leastconn) ;;
    *) die "--balance: expected roundrobin or leastconn, got '$BALANCE'" ;;
    esac
    case $READY_TIMEOUT in
    '' | *[!0-9]*) die "--ready-timeout: expected seconds, got" \
        "'$READY_TIMEOUT'" ;;
    esac
    inter_ms=$(time_ms "$CHECK_INTERVAL") ||
        die "--check-interval: expected a time such as 500ms or 1s, got" \
            "'$CHECK_INTERVAL'"
    # A replica that got SIGTERM must serve on until haproxy has marked it
    # DOWN: CHECK_FALL failed checks, the first up to one interval after
    # the signal (later ones come faster, every fastinter), plus margin.
    if [ -z "$DRAIN_DELAY_MS" ]; then
        DRAIN_DELAY_MS=$(((CHECK_FALL + 1) * inter_ms))
    fi
    case $DRAIN_DELAY_MS in
    '' | *[!0-9]*) die "--drain-delay-ms: expected milliseconds, got" \
        "'$DRAIN_DELAY_MS'" ;;
    esac
    if [ "$DRAIN_DELAY_MS" -gt 0 ] &&
        [ "$DRAIN_DELAY_MS" -le $((CHECK_FALL * inter_ms)) ]; then
        log "warning: --drain-delay-ms $DRAIN_DELAY_MS is not above" \
            "$CHECK_FALL checks of $CHECK_INTERVAL: haproxy may still route" \
            "to a stopping replica after it closed its listeners"
    fi
    [ -x "$BINARY" ] || die "modinfer binary $BINARY is missing or not" \
        "executable (build it, or pass --binary)"
    [ -f "$PIPELINE" ] || die "pipeline file $PIPELINE does not exist"
    [ -x "$HAPROXY" ] || die "haproxy $HAPROXY is missing (apt-get install" \
        "haproxy, or pass --haproxy)"
    command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
    if [ -n "$REPLICA_CPUS$HAPROXY_CPUS" ]; then
        command -v taskset >/dev/null || die "taskset is missing" \
            "(util-linux)"
    fi

    mkdir -p "$RUN_DIR"
    if [ -f "$STATE" ]; then
        for f in "$RUN_DIR"/replica-*.pid "$RUN_DIR/haproxy.pid"; do
            if alive "$f"; then
                die "a cluster is already running in $RUN_DIR" \
                    "($(basename "$f" .pid) pid $(cat "$f")); stop it first"
            fi
        done
        rm -f "$STATE"
    fi
    rm -f "$RUN_DIR"/replica-*.pid "$RUN_DIR"/replica-*.log \
        "$RUN_DIR/haproxy.pid" "$RUN_DIR/haproxy.log"

    ports=("$GRPC_PORT" "$HTTP_PORT" "$STATS_PORT")
    for ((i = 1; i <= REPLICAS; i++)); do
        ports+=("$((REPLICA_GRPC_BASE + i - 1))" "$((REPLICA_HTTP_BASE + i - 1))")
    done
    # Two uses of one port would only show up as a confusing bind error.
    p=$(printf '%s\n' "${ports[@]}" | sort | uniq -d | head -n 1)
    [ -z "$p" ] || die "port $p is used twice; choose other ports"
    for p in "${ports[@]}"; do
        if [ "$p" -gt 65535 ]; then
            die "port $p is out of range (lower the base ports or --replicas)"
        fi
    done

    # Remember the settings for stop and status.
    {
        printf 'REPLICAS=%q\n' "$REPLICAS"
        printf 'GRPC_PORT=%q\nHTTP_PORT=%q\nSTATS_PORT=%q\n' \
            "$GRPC_PORT" "$HTTP_PORT" "$STATS_PORT"
        printf 'REPLICA_GRPC_BASE=%q\nREPLICA_HTTP_BASE=%q\n' \
            "$REPLICA_GRPC_BASE" "$REPLICA_HTTP_BASE"
        printf 'DRAIN_DELAY_MS=%q\n' "$DRAIN_DELAY_MS"
    } >"$STATE"

    read -r -a cpu_list <<<"$REPLICA_CPUS"
    for ((i = 1; i <= REPLICAS; i++)); do
        g=$((REPLICA_GRPC_BASE + i - 1))
        h=$((REPLICA_HTTP_BASE + i - 1))
        cpus=
        if [ ${#cpu_list[@]} -gt 0 ]; then
            cpus=${cpu_list[$(((i - 1) % ${#cpu_list[@]}))]}
        fi
        log_file=$RUN_DIR/replica-$i.log
        # The words after -- come last, so they may override these.
        # shellcheck disable=SC2046  # the taskset prefix splits on purpose
        $(pinned_prefix "$cpus") "$BINARY" serve "$PIPELINE" \
            --address 127.0.0.1 --grpc-port "$g" --http-port "$h" \
            --drain-delay-ms "$DRAIN_DELAY_MS" \
            "${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"}" \
            </dev/null >"$log_file" 2>&1 &
        echo $! >"$RUN_DIR/replica-$i.pid"
        log "replica-$i: pid $! on 127.0.0.1:$g (gRPC), :$h (HTTP)," \
            "drain delay ${DRAIN_DELAY_MS} ms${cpus:+, cpus $cpus}"
    done

    for ((i = 1; i <= REPLICAS; i++)); do
        log_file=$RUN_DIR/replica-$i.log
        waited=0
        until grep -q "ready: serving" "$log_file"; do
            if ! alive "$RUN_DIR/replica-$i.pid" ||
                [ "$waited" -ge $((READY_TIMEOUT * 10)) ]; then
                log "replica-$i did not become ready; the end of its log" \
                    "($log_file):"
                tail -n 20 "$log_file" >&2
                cmd_stop >/dev/null 2>&1 || true
                exit 1
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    done

    write_config
    if ! "$HAPROXY" -c -q -f "$RUN_DIR/haproxy.cfg" >"$RUN_DIR/haproxy.log" \
        2>&1; then
        log "haproxy rejects $RUN_DIR/haproxy.cfg:"
        cat "$RUN_DIR/haproxy.log" >&2
        cmd_stop >/dev/null 2>&1 || true
        exit 1
    fi
    # -db: stay in the foreground (of this background job), logging to
    # haproxy.log; -Ws is not used, so SIGUSR1 is a plain soft stop.
    # shellcheck disable=SC2046
    $(pinned_prefix "$HAPROXY_CPUS") "$HAPROXY" -db -f "$RUN_DIR/haproxy.cfg" \
        </dev/null >>"$RUN_DIR/haproxy.log" 2>&1 &
    pid=$!
    echo "$pid" >"$RUN_DIR/haproxy.pid"

    # Up when the stats page answers and every replica is UP in both
    # backends (each check must pass `rise` times).
    waited=0
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "haproxy exited at start; its log ($RUN_DIR/haproxy.log):"
            tail -n 20 "$RUN_DIR/haproxy.log" >&2
            cmd_stop >/dev/null 2>&1 || true
            exit 1
        fi
        csv=$(curl -s --max-time 2 "http://127.0.0.1:$STATS_PORT/stats;csv" ||
            true)
        up=$(printf '%s\n' "$csv" |
            awk -F, '$1 ~ /^(grpc|http)_replicas$/ && $18 == "UP" &&
                     $2 !~ /^(FRONTEND|BACKEND)$/ { n++ } END { print n + 0 }')
        if [ "$up" -ge $((2 * REPLICAS)) ]; then
            break
        fi
        if [ "$waited" -ge 300 ]; then
            log "haproxy does not see all replicas UP after 30 s;" \
                "status follows"
            cmd_status >&2 || true
            cmd_stop >/dev/null 2>&1 || true
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    # haproxy rewrites the pid file with its own pid (the same: -db).
    log "haproxy: pid $pid; gRPC 127.0.0.1:$GRPC_PORT, HTTP" \
        "127.0.0.1:$HTTP_PORT, stats" \
        "http://127.0.0.1:$STATS_PORT/stats${HAPROXY_CPUS:+ (cpus $HAPROXY_CPUS)}"
    echo "cluster up: $REPLICAS replicas behind haproxy (run dir $RUN_DIR)"
}

case $CMD in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
stop-replica) cmd_stop_replica ;;
drain) cmd_drain ;;
esac
