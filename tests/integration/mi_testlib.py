# SPDX-License-Identifier: Apache-2.0
"""Pieces shared by the gRPC integration tests.

Importing this module imports grpc and mi_proto; when either is missing it
prints a "skip:" line and exits with 77, unless CI=true, where the
ImportError is raised. It also re-exports the CaseFailure/check/fail_on
helpers of mi_cases and provides rpc_text, the one-line-per-case runners
(run_case, Results) with the closing SIGTERM case, starting and leaving a
server with the summary line, the queue-fed request iterator of bidi
streams, and loaders for the generated OIP and gRPC health modules.
"""

import importlib.util
import pathlib
import sys
import time

import mi_cases
import mi_server
from mi_cases import (IS_CI, CaseFailure, check, fail_on, run_one, summary,
                      setup_failed)

try:
    import grpc
    import mi_proto
except ImportError as missing:
    if IS_CI:
        raise
    print(f"skip: {missing} (run with /usr/bin/python3 or install grpcio "
          f"and grpcio-tools)")
    sys.exit(77)

__all__ = ["IS_CI", "grpc", "mi_proto", "CaseFailure", "check", "fail_on",
           "rpc_text", "Results", "run_case", "sigterm_case", "start_server",
           "end_server", "finish", "END", "drain", "load_oip",
           "load_health_pb2"]


def rpc_text(e):
    return f"{e.code().name}: {e.details()!r}"


# ---- Case runner ----

class Results(mi_cases.Results):
    """mi_cases.Results that reports a grpc.RpcError as unexpected."""

    unexpected = (grpc.RpcError,)

    def describe(self, e):
        return rpc_text(e)


def run_case(srv, ctx, name, fn, rpc_errors=False):
    """Runs fn(ctx) and prints its "ok"/"FAIL" line; True when it passed.

    A CaseFailure is a failed expectation; any other exception is reported
    as unexpected, with a short traceback unless rpc_errors is set and it is
    a grpc.RpcError.
    """
    if not srv.alive():
        print(f"FAIL {name}: server is not running (exit code "
              f"{srv.proc.returncode})")
        return False
    explain = None
    if rpc_errors:
        def explain(e):
            return (f"unexpected {rpc_text(e)}"
                    if isinstance(e, grpc.RpcError) else None)
    return run_one(name, fn, ctx, explain=explain)


def sigterm_case(srv):
    """The last case: SIGTERM stops the server with exit code 0."""
    t0 = time.monotonic()
    try:
        if not srv.alive():
            srv.stopped = srv.failed = True
            raise CaseFailure(f"server had exited with {srv.proc.returncode}")
        srv.stop()
        print(f"ok   sigterm_exit_0  ({time.monotonic() - t0:.2f} s)")
        return True
    except (CaseFailure, mi_server.ServerError) as e:
        print(f"FAIL sigterm_exit_0: {str(e).splitlines()[0]}")
        return False


def start_server(binary, pipeline, extra_args=(), **kwargs):
    """A started mi_server.Server, its pid, port and log printed; None,
    after "FAIL server_start" and "0 passed, 1 failed", when it failed."""
    srv = mi_server.Server(binary, pipeline, extra_args, **kwargs)
    try:
        srv.__enter__()
    except mi_server.ServerError as e:
        setup_failed(f"server_start: {e}")
        return None
    print(f"server: pid {srv.proc.pid}, 127.0.0.1:{srv.port}, "
          f"log {srv.proc.mi_log_path}")
    return srv


def end_server(srv, passed, failed, tail=40):
    """Prints the server log's tail when anything failed, leaves srv and
    prints the summary; returns the exit code."""
    if failed:
        srv.failed = True
        print(f"--- server log tail ({srv.proc.mi_log_path})")
        print(srv.tail(tail))
    srv.__exit__(None, None, None)
    return summary(passed, failed)


def finish(srv, res):
    """sigterm_case counted in res, then end_server; the exit code."""
    if sigterm_case(srv):
        res.passed += 1
    else:
        res.failed += 1
    return end_server(srv, res.passed, res.failed)


# ---- Request iterators fed from a queue ----

END = object()


def drain(q):
    """Yields items from q until END; the request iterator of a stream."""
    while True:
        item = q.get()
        if item is END:
            return
        yield item


# ---- Generated modules beyond mi_proto's namespace ----

def load_oip():
    """(grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc); mi_proto.load()
    must have run, as it generates them and puts them on sys.path."""
    import grpc_predict_v2_pb2 as oip
    import grpc_predict_v2_pb2_grpc as oip_grpc
    return oip, oip_grpc


def load_health_pb2(out_dir):
    """The generated grpc/health/v1/health_pb2, imported by path: its
    package name would otherwise collide with the grpc library."""
    path = pathlib.Path(out_dir) / "grpc" / "health" / "v1" / "health_pb2.py"
    spec = importlib.util.spec_from_file_location("mi_health_v1_pb2", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
