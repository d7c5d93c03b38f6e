#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""modinfer-bench against a live server: its counts agree with the server's.

Starts the real server (mi_server) with the fall-detection pipeline and,
for each protocol (extended, basic, oip-grpc streams, oip-grpc unary
ModelInfer, oip-http), runs a short closed-loop modinfer-bench (concurrency
4, two windows of 500 ms) with --csv, scraping /metrics with urllib before
and after. Checks:

- the bench exits 0 and writes one CSV row with two windows;
- the requests it reports as sent equal exactly the change of the server's
  mi_requests_total for that protocol (all statuses), those it reports ok
  the change of status="ok", and failed the rest (which must be 0);
- an open-loop run at 200 requests/s (two windows of 1 s) measures a
  throughput within 10 % of 200 requests/s, with no errors;
- --help documents every flag the bench accepts; a usage error and a
  target nothing listens on both exit 1.

    /usr/bin/python3 tests/integration/test_bench.py \\
        --bench build/modinfer-bench --binary build/modinfer \\
        --pipeline examples/fall-detection/pipeline.json \\
        --data ../shared/reference/fall-detection/stream.csv

Prints one line per check and a last line "N passed, M failed"; exits 0
when every check passed, 1 otherwise, and 77 (skip) when the bench was not
built, unless CI=true.
"""

import argparse
import csv
import os
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(HERE))

import mi_server  # noqa: E402
from mi_cases import IS_CI, CaseFailure, Results, check, summary  # noqa: E402,E501

HTTP_RE = re.compile(r"http listening on (\S+):(\d+)")
SAMPLE_RE = re.compile(r'^mi_requests_total\{([^}]*)\}\s+(\S+)$')
LABEL_RE = re.compile(r'(\w+)="([^"]*)"')
BENCH_TIMEOUT = 120.0
OPEN_RATE = 200.0

# (name, bench arguments, the server's protocol label)
PROTOCOLS = [
    ("extended", ["--protocol", "extended"], "extended"),
    ("basic", ["--protocol", "basic"], "basic"),
    ("oip-grpc stream", ["--protocol", "oip-grpc"], "oip_grpc"),
    ("oip-grpc unary", ["--protocol", "oip-grpc", "--unary"], "oip_grpc"),
    ("oip-http", ["--protocol", "oip-http"], "oip_http"),
]


def requests_total(http_port):
    """{(protocol, status): value} of mi_requests_total, via urllib."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{http_port}/metrics",
                     timeout=10) as resp:
        check(resp.status == 200, f"GET /metrics: HTTP {resp.status}")
        text = resp.read().decode("utf-8", errors="replace")
    out = {}
    for line in text.splitlines():
        m = SAMPLE_RE.match(line)
        if m:
            labels = dict(LABEL_RE.findall(m.group(1)))
            key = (labels.get("protocol"), labels.get("status"))
            out[key] = out.get(key, 0.0) + float(m.group(2))
    return out


def delta(before, after, protocol):
    """(all statuses, ok) change of mi_requests_total for protocol."""
    total = ok = 0
    for (proto, status), v in after.items():
        if proto != protocol:
            continue
        d = v - before.get((proto, status), 0.0)
        total += d
        if status == "ok":
            ok += d
    return int(round(total)), int(round(ok))


def run_bench(bench, args, csv_path):
    """Runs the bench with --csv; returns (exit code, output, CSV rows)."""
    if os.path.exists(csv_path):
        os.unlink(csv_path)
    cmd = [bench, "--quiet", "--csv", csv_path, *map(str, args)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=BENCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CaseFailure(f"{' '.join(cmd)} ran for more than "
                          f"{BENCH_TIMEOUT:.0f} s") from None
    output = done.stdout + done.stderr
    rows = []
    if os.path.exists(csv_path):
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
    return done.returncode, output, rows


def closed_loop_matches(ctx, args, protocol):
    before = requests_total(ctx.http_port)
    target = (f"127.0.0.1:{ctx.http_port}" if protocol == "oip_http"
              else f"127.0.0.1:{ctx.grpc_port}")
    rc, output, rows = run_bench(
        ctx.bench, [*args, "--target", target, "--data", ctx.data,
                    "--concurrency", "4", "--window-ms", "500",
                    "--max-windows", "2"], ctx.csv)
    check(rc == 0, f"exit status {rc}:\n{output}")
    check(len(rows) == 1, f"{len(rows)} CSV rows, want 1:\n{output}")
    after = requests_total(ctx.http_port)
    row = rows[0]
    sent, ok, failed = int(row["sent"]), int(row["ok"]), int(row["failed"])
    total, total_ok = delta(before, after, protocol)
    check(row["windows"] == "2", f"windows={row['windows']}, want 2")
    check(sent > 0, f"nothing sent:\n{output}")
    check(sent == total,
          f"bench sent {sent}, server counted {total} requests "
          f"(protocol={protocol})")
    check(ok == total_ok,
          f"bench ok {ok}, server counted {total_ok} with status ok")
    check(failed == total - total_ok,
          f"bench failed {failed}, server counted {total - total_ok} "
          f"errors")
    check(failed == 0 and row["errors"] == "-",
          f"errors on a healthy server: {row['errors']}")
    return (f"sent={sent} ok={ok} failed={failed} "
            f"({float(row['req_per_s']):.0f} req/s)")


def open_loop_rate(ctx):
    rc, output, rows = run_bench(
        ctx.bench, ["--target", f"127.0.0.1:{ctx.grpc_port}",
                    "--data", ctx.data, "--rate", str(OPEN_RATE),
                    "--window-ms", "1000", "--max-windows", "2"], ctx.csv)
    check(rc == 0, f"exit status {rc}:\n{output}")
    check(len(rows) == 1, f"{len(rows)} CSV rows, want 1:\n{output}")
    row = rows[0]
    rate = float(row["req_per_s"])
    offered = float(row["offered_per_s"])
    check(abs(rate - OPEN_RATE) <= 0.1 * OPEN_RATE,
          f"measured {rate:.1f} req/s at a rate of {OPEN_RATE:.0f}")
    check(abs(offered - OPEN_RATE) <= 0.1 * OPEN_RATE,
          f"offered {offered:.1f} req/s at a rate of {OPEN_RATE:.0f}")
    check(row["errors"] == "-", f"errors: {row['errors']}")
    return f"{rate:.1f} req/s measured, {offered:.1f} offered"


def help_lists_flags(ctx):
    done = subprocess.run([ctx.bench, "--help"], capture_output=True,
                          text=True, timeout=30)
    check(done.returncode == 0, f"--help exited {done.returncode}")
    text = done.stdout
    flags = ["--protocol", "--unary", "--target", "--model", "--concurrency",
             "--rate", "--devices", "--streams", "--max-outstanding",
             "--channels", "--threads", "--window-ms", "--max-windows",
             "--stability", "--drain-ms", "--connect-timeout-ms",
             "--workload", "--data", "--input", "--batch", "--fill",
             "--seed", "--csv", "--plot", "--label", "--quiet", "--help"]
    missing = [f for f in flags if f not in text]
    check(not missing, f"--help does not mention {missing}")


def usage_and_connection_errors(ctx):
    done = subprocess.run([ctx.bench, "--no-such-flag"], capture_output=True,
                          text=True, timeout=30)
    check(done.returncode == 1 and "--no-such-flag" in done.stderr,
          f"unknown flag: exit {done.returncode}, {done.stderr!r}")
    # A port nothing listens on: bind one, close it, aim at it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for proto in ("extended", "oip-http"):
        done = subprocess.run(
            [ctx.bench, "--protocol", proto, "--target", f"127.0.0.1:{port}",
             "--data", ctx.data, "--connect-timeout-ms", "500"],
            capture_output=True, text=True, timeout=60)
        check(done.returncode == 1 and "cannot connect" in done.stderr,
              f"{proto} to a closed port: exit {done.returncode}, "
              f"{done.stderr!r}")


class Context:
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()

    if not os.access(args.bench, os.X_OK):
        if IS_CI:
            print(f"FAIL: {args.bench} is missing")
            return 1
        print(f"skip: {args.bench} is missing (build modinfer-bench)")
        return 77

    results = Results()
    ctx = Context()
    ctx.bench = args.bench
    ctx.data = args.data
    with tempfile.TemporaryDirectory(prefix="modinfer-bench-") as tmp, \
            mi_server.Server(args.binary, args.pipeline,
                             ["--workers", "2"]) as srv:
        m = HTTP_RE.search(mi_server.log_text(srv.proc))
        if m is None:
            print("FAIL: no 'http listening on' line in the server log")
            return 1
        ctx.grpc_port = srv.port
        ctx.http_port = int(m.group(2))
        ctx.csv = os.path.join(tmp, "bench.csv")

        results.run("help lists every flag", help_lists_flags, ctx)
        results.run("usage and connection errors exit 1",
                    usage_and_connection_errors, ctx)
        for name, bench_args, protocol in PROTOCOLS:
            results.run(f"closed loop {name}: counts match the server",
                        closed_loop_matches, ctx, bench_args, protocol)
        results.run(f"open loop at {OPEN_RATE:.0f} req/s",
                    open_loop_rate, ctx)
        srv.stop()
    return summary(results.passed, results.failed)


if __name__ == "__main__":
    sys.exit(main())
