#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs what building, testing and running modinfer needs, idempotently:
# Debian packages (only when one is missing, so a second run takes well
# under a second) and ONNX Runtime (scripts/install-ort.sh).  Run as root on
# Debian 12, or as a user with sudo.
set -euo pipefail

cd "$(dirname "$0")/.."

packages=(
    build-essential cmake pkg-config git
    libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
    libjansson-dev libmicrohttpd-dev libcmocka-dev
    python3 python3-grpcio python3-grpc-tools python3-onnx python3-numpy
    curl prometheus gnuplot-nox imagemagick
    libcurl4-openssl-dev haproxy docker-registry python3-yaml
)
# npm fetches ONNX Runtime; Node.js may already come from elsewhere.
if ! command -v npm >/dev/null 2>&1; then
    packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} > 0)); then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo_cmd=(sudo)
    fi
    # Tests need only promtool from the prometheus package: keep the
    # package's daemon from starting (and listening) while it installs.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
        "${sudo_cmd[@]}" chmod +x "$policy"
        own_policy=1
    fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$own_policy" = 1 ]; then
        "${sudo_cmd[@]}" rm -f "$policy"
    fi
fi

bash scripts/install-ort.sh
bash scripts/install-models.sh
