#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The whole test suite: installs what is missing, then builds and runs every
# ctest twice, once in a warnings-as-errors release build and once under
# ASan+UBSan (with LeakSanitizer).  With CI=true a missing dependency fails
# the run instead of skipping a test.  Ends with one line of counts.
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/setup.sh

jobs=$(nproc)
total_pass=0
total_fail=0

run_suite() {
    local name=$1 dir=$2
    shift 2
    echo "== $name: configure and build ($dir)"
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$jobs" 2>&1 | grep -E "warning|error" || true
    cmake --build "$dir" -j"$jobs" >/dev/null
    echo "== $name: ctest"
    local out rc=0
    out=$(mktemp)
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" 2>&1 | tee "$out" ||
        rc=$?
    local line pass total
    line=$(grep -E "tests passed, [0-9]+ tests failed out of" "$out" | tail -n1)
    pass=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2 \1/' |
        awk '{print $1 - $2}')
    total=$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')
    rm -f "$out"
    if [ -z "$line" ]; then
        echo "== $name: no test summary"
        total_fail=$((total_fail + 1))
        return
    fi
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + total - pass))
    if [ "$rc" -ne 0 ] && [ "$pass" -eq "$total" ]; then
        total_fail=$((total_fail + 1))
    fi
}

run_suite release build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMI_WERROR=ON
run_suite asan build-asan -DCMAKE_BUILD_TYPE=Debug -DMI_SANITIZE=ON \
    -DMI_WERROR=ON

echo "test summary: $total_pass passed, $total_fail failed (release + asan)"
[ "$total_fail" -eq 0 ]
