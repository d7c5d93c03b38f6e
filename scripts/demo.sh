#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The demo: installs what is missing, builds, starts the server on the
# fall-detection pipeline, sends the two client samples of the reference
# vectors with the demo client, prints the confidences, and stops the
# server.  Port: MI_DEMO_PORT (default 50051, the paper's port).
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/setup.sh

build=${MI_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target modinfer fall_model >/dev/null

port=${MI_DEMO_PORT:-50051}
log=$(mktemp /tmp/modinfer-demo.XXXXXX.log)
"$build/modinfer" serve examples/fall-detection/pipeline.json \
    --address 127.0.0.1 --grpc-port "$port" \
    --http-port "${MI_DEMO_HTTP_PORT:-0}" 2>"$log" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
    if grep -q "ready: serving" "$log"; then
        break
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
sed 's/^/server: /' "$log"

/usr/bin/python3 examples/fall-detection/client.py --port "$port"

kill -TERM "$server"
wait "$server"
trap - EXIT
sed 's/^/server: /' "$log" | tail -n 2
rm -f "$log"
