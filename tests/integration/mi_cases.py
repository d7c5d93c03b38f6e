# SPDX-License-Identifier: Apache-2.0
"""Pieces shared by all the integration tests; imports no grpc.

CaseFailure, check and fail_on for expectations; run_one and Results,
which print one line per case ("ok   name  (0.12 s)" or "FAIL name ...");
summary, setup_failed and skip_or_fail for the last line and the exit
code (0, 1, or 77 for a skip, which CI=true turns into a failure); pick for
--case; reference_args for the options of the fall-detection tests; and
load_windows for the reference windows of vectors.json. mi_testlib
re-exports them for the gRPC tests.
"""

import argparse
import json
import os
import pathlib
import sys
import time
import traceback

IS_CI = os.environ.get("CI", "").lower() == "true"

GROUPS = ("client_samples", "dataset_windows", "benchmark_windows")


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


# ---- One line per case ----

def print_ok(name, t0, note=None):
    print(f"ok   {name}  ({time.monotonic() - t0:.2f} s)"
          + (f"  {note}" if note else ""))


def run_one(name, fn, ctx, expected=(CaseFailure,), tb_limit=4,
            explain=None):
    """Runs fn(ctx) and prints its "ok"/"FAIL" line; True when it passed.

    An exception of expected is a failed expectation. Any other is
    reported as unexpected with a traceback of tb_limit frames, unless
    explain(e) gives the text to print instead.
    """
    t0 = time.monotonic()
    try:
        note = fn(ctx)
        ok = True
        print_ok(name, t0, note)
    except expected as e:
        ok = False
        print(f"FAIL {name}  ({time.monotonic() - t0:.2f} s): {e}")
    except Exception as e:  # a test bug or an unexpected error
        ok = False
        text = explain(e) if explain is not None else None
        if text is not None:
            print(f"FAIL {name}  ({time.monotonic() - t0:.2f} s): {text}")
        else:
            print(f"FAIL {name}: unexpected {type(e).__name__}: {e}")
            traceback.print_exc(limit=tb_limit, file=sys.stdout)
    sys.stdout.flush()
    return ok


class Results:
    """Counts checks run one after another, printing a line for each.

    run(name, fn, *args) returns True when fn passed. A CaseFailure is a
    failed check; exceptions of the class's unexpected types are reported
    as "unexpected" with describe(e); any other exception propagates.
    """

    unexpected = ()

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def describe(self, e):
        return f"{type(e).__name__}: {e}"

    def run(self, name, fn, *args):
        t0 = time.monotonic()
        try:
            note = fn(*args)
        except CaseFailure as e:
            self.failed += 1
            print(f"FAIL {name}  ({time.monotonic() - t0:.2f} s): {e}")
            sys.stdout.flush()
            return False
        except self.unexpected as e:
            self.failed += 1
            print(f"FAIL {name}: unexpected {self.describe(e)}")
            sys.stdout.flush()
            return False
        self.passed += 1
        print_ok(name, t0, note)
        sys.stdout.flush()
        return True


# ---- The last line and the exit code ----

def summary(passed, failed):
    """Prints "N passed, M failed"; returns the exit code."""
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def setup_failed(what):
    """Prints "FAIL <what>" and "0 passed, 1 failed"; returns 1."""
    print(f"FAIL {what}")
    return summary(0, 1)


def skip_or_fail(why):
    """A missing prerequisite: a skip (77), or a setup failure with CI=true."""
    if IS_CI:
        return setup_failed(f"setup: {why}")
    print(f"skip: {why}")
    return 77


def pick(cases, patterns):
    """The (name, fn) cases whose name contains one of patterns (all when
    there are none)."""
    return [(n, f) for n, f in cases
            if not patterns or any(c in n for c in patterns)]


# ---- The fall-detection tests' options and reference data ----

def reference_args(doc, server_arg_example, stream_csv=False, cases=True):
    """An ArgumentParser with --binary, --pipeline, --vectors, --proto,
    --server-arg and, with cases, --case and --list."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--binary", required=True, help="the modinfer executable")
    p.add_argument("--pipeline", required=True,
                   help="examples/fall-detection/pipeline.json")
    p.add_argument("--vectors", required=True,
                   help="reference/fall-detection/vectors.json")
    if stream_csv:
        p.add_argument("--stream-csv",
                       help="stream.csv (default: beside vectors.json)")
    p.add_argument("--proto", help="proto folder (default: <repo>/proto)")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra server argument, e.g. "
                        f"--server-arg={server_arg_example}")
    if cases:
        p.add_argument("--case", action="append", default=[],
                       help="run only cases whose name contains this")
        p.add_argument("--list", action="store_true",
                       help="list cases and exit")
    return p


def load_windows(vectors, groups=GROUPS, n_elements=None, n_windows=None):
    """The reference windows of vectors.json (its path, or its parsed
    content): dicts with id, label, raw, flat (the raw values in one list)
    and want (output_f32). With n_elements or n_windows, a window of
    another size or another count of windows is a ValueError."""
    if not isinstance(vectors, dict):
        vectors = json.loads(pathlib.Path(vectors).read_text())
    windows = []
    for group in groups:
        for w in vectors[group]:
            flat = [int(v) for row in w["raw"] for v in row]
            if n_elements is not None and len(flat) != n_elements:
                raise ValueError(f"{group} id {w['id']}: {len(flat)} values")
            windows.append({"id": int(w["id"]) if "id" in w else None,
                            "label": w.get("name") or f"{group}#{w.get('id')}",
                            "raw": w["raw"], "flat": flat,
                            "want": float(w["output_f32"])})
    if n_windows is not None and len(windows) != n_windows:
        raise ValueError(f"vectors.json has {len(windows)} windows, "
                         f"want {n_windows}")
    return windows
