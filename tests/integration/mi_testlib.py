# SPDX-License-Identifier: Apache-2.0
"""Pieces shared by the gRPC integration tests.

Importing this module imports grpc and mi_proto; when either is missing it
prints a "skip:" line and exits with 77, unless CI=true, where the
ImportError is raised. It also provides the CaseFailure/check/fail_on
helpers, rpc_text, the one-line-per-case runner with its closing SIGTERM
case, the queue-fed request iterator of bidi streams, and loaders for the
generated OIP and gRPC health modules.
"""

import importlib.util
import os
import pathlib
import sys
import time
import traceback

import mi_server

IS_CI = os.environ.get("CI", "").lower() == "true"

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
           "rpc_text", "run_case", "sigterm_case", "END", "drain",
           "load_oip", "load_health_pb2"]


class CaseFailure(AssertionError):
    """A case's expectation did not hold; the message says which."""


def check(cond, message):
    if not cond:
        raise CaseFailure(message)


def fail_on(problems, limit=6):
    """Raises CaseFailure listing up to limit of problems, if there are any."""
    if problems:
        more = (f"\n    ... and {len(problems) - limit} more"
                if len(problems) > limit else "")
        raise CaseFailure(f"{len(problems)} problem(s):\n    "
                          + "\n    ".join(problems[:limit]) + more)


def rpc_text(e):
    return f"{e.code().name}: {e.details()!r}"


# ---- Case runner ----

def run_case(srv, ctx, name, fn, rpc_errors=False):
    """Runs fn(ctx) and prints its "ok"/"FAIL" line; True when it passed.

    A CaseFailure is a failed expectation; any other exception is reported
    as unexpected, with a short traceback unless rpc_errors is set and it is
    a grpc.RpcError.
    """
    t0 = time.monotonic()
    if not srv.alive():
        print(f"FAIL {name}: server is not running (exit code "
              f"{srv.proc.returncode})")
        return False
    try:
        note = fn(ctx)
        ok = True
        print(f"ok   {name}  ({time.monotonic() - t0:.2f} s)"
              + (f"  {note}" if note else ""))
    except CaseFailure as e:
        ok = False
        print(f"FAIL {name}  ({time.monotonic() - t0:.2f} s): {e}")
    except Exception as e:  # a test bug or an unexpected error
        ok = False
        if rpc_errors and isinstance(e, grpc.RpcError):
            print(f"FAIL {name}  ({time.monotonic() - t0:.2f} s): "
                  f"unexpected {rpc_text(e)}")
        else:
            print(f"FAIL {name}: unexpected {type(e).__name__}: {e}")
            traceback.print_exc(limit=4, file=sys.stdout)
    sys.stdout.flush()
    return ok


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
