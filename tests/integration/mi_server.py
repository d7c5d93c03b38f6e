# SPDX-License-Identifier: Apache-2.0
"""Start and stop a real modinfer server for the integration tests.

start() runs `<binary> serve <pipeline> --grpc-port 0 --address 127.0.0.1`,
sends the server's stdout and stderr to a temporary log file, and waits
until the log shows "grpc listening on 127.0.0.1:<port>"; it returns the
process and that port. stop() sends SIGTERM and requires exit code 0 within
10 s. Server wraps both in a context manager that prints the end of the log
when the block fails:

    with mi_server.Server(binary, pipeline, ["--workers", "2"]) as srv:
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        ...
        srv.stop()          # optional: __exit__ stops it otherwise

The log file is deleted after a clean stop and kept (its path printed) when
anything went wrong.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

LISTEN_RE = re.compile(r"grpc listening on (\S+):(\d+)")


class ServerError(RuntimeError):
    """The server did not start, stop, or exit as it should."""


def log_text(proc):
    """The whole log of a process started by start()."""
    try:
        with open(proc.mi_log_path, "r", errors="replace") as f:
            return f.read()
    except OSError as e:
        return f"(cannot read {proc.mi_log_path}: {e})"


def log_tail(proc, lines=40):
    """The last `lines` lines of the server's log."""
    return "\n".join(log_text(proc).splitlines()[-lines:])


def start(binary, pipeline, extra_args=(), ready_timeout=20.0,
          wait_ready=True):
    """Start the server on a free port; returns (proc, port).

    The server listens before its pipeline is loaded; with wait_ready
    (the default) this also waits for its 'ready: serving' line.

    Raises ServerError, with the server's log, when the binary is missing,
    the process exits early, or no listening line appears in ready_timeout
    seconds.
    """
    if not os.access(binary, os.X_OK):
        raise ServerError(f"server binary {binary} is missing or not executable")
    fd, log_path = tempfile.mkstemp(prefix="modinfer-server-", suffix=".log")
    cmd = [str(binary), "serve", str(pipeline), "--grpc-port", "0",
           "--http-port", "0",
           "--address", "127.0.0.1", *map(str, extra_args)]
    with os.fdopen(fd, "ab", buffering=0) as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log)
    proc.mi_log_path = log_path
    proc.mi_cmd = cmd

    deadline = time.monotonic() + ready_timeout
    while True:
        text = log_text(proc)
        match = LISTEN_RE.search(text)
        if match and int(match.group(2)) > 0 and (
                not wait_ready or "ready: serving" in text):
            return proc, int(match.group(2))
        rc = proc.poll()
        if rc is not None:
            raise ServerError(f"server exited with {rc} before listening: "
                              f"{' '.join(cmd)}\n--- server log ({log_path})\n"
                              f"{log_tail(proc)}")
        if time.monotonic() > deadline:
            _kill(proc)
            raise ServerError(f"no 'grpc listening on' line within "
                              f"{ready_timeout:.0f} s: {' '.join(cmd)}\n"
                              f"--- server log ({log_path})\n{log_tail(proc)}")
        time.sleep(0.05)


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def stop(proc, timeout=10.0):
    """Send SIGTERM and wait; raises ServerError unless it exits 0 in time."""
    if proc.poll() is not None:
        raise ServerError(f"server had already exited with {proc.returncode}"
                          f"\n--- server log ({proc.mi_log_path})\n"
                          f"{log_tail(proc)}")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise ServerError(f"server still running {timeout:.0f} s after SIGTERM"
                          f" (killed)\n--- server log ({proc.mi_log_path})\n"
                          f"{log_tail(proc)}") from None
    if rc != 0:
        raise ServerError(f"server exited with {rc} after SIGTERM "
                          f"({time.monotonic() - t0:.2f} s)\n--- server log "
                          f"({proc.mi_log_path})\n{log_tail(proc)}")
    return rc


def remove_log(proc):
    try:
        os.unlink(proc.mi_log_path)
    except OSError:
        pass


class Server:
    """Context manager around start()/stop(); see the module comment."""

    def __init__(self, binary, pipeline, extra_args=(), ready_timeout=20.0,
                 stop_timeout=10.0, wait_ready=True):
        self.wait_ready = wait_ready
        self.binary = binary
        self.pipeline = pipeline
        self.extra_args = list(extra_args)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.proc = None
        self.port = None
        self.failed = False
        self.stopped = False

    def __enter__(self):
        self.proc, self.port = start(self.binary, self.pipeline,
                                     self.extra_args, self.ready_timeout,
                                     self.wait_ready)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines=40):
        return log_tail(self.proc, lines)

    def stop(self):
        """SIGTERM the server once; raises ServerError unless it exits 0."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        try:
            return stop(self.proc, self.stop_timeout)
        except ServerError:
            self.failed = True
            raise

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.failed = True
            if self.proc is not None:
                print(f"--- server log tail ({self.proc.mi_log_path})\n"
                      f"{self.tail()}", file=sys.stderr)
                if not self.stopped:
                    try:
                        self.stop()
                    except ServerError as e:
                        print(f"--- and stopping it failed too: "
                              f"{str(e).splitlines()[0]}", file=sys.stderr)
                _kill(self.proc)
            return False
        if not self.stopped:
            self.stop()
        if self.failed:
            print(f"server log kept: {self.proc.mi_log_path}", file=sys.stderr)
        else:
            remove_log(self.proc)
        return False
