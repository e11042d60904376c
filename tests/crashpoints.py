"""A `mailkeep` child process that stops itself at a named point of the code, so that the test
can kill it (SIGKILL) exactly there: no sleep, no race with how fast the machine is.

A point is "module:function:k[:mode]" or "module:Class.method:k[:mode]": the k-th call of that
function in the child. Mode "" stops before the call runs, "after" once it has returned, and
"torn" (only for SegmentWriter.append) after writing the first half of the record, as a kill
inside write(2) would leave it. The child runs the same main() as the installed `mailkeep`
entry point, through the CHILD stub below, which wraps the function and SIGSTOPs the process
there; the parent sees the stop with waitpid(WUNTRACED) and kills it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from tests.helpers import CRASH_AT, clean_env

CHILD = r"""
import importlib, os, signal, sys, time

def _install(spec):
    mod_name, attr, count, *mode = spec.split(":")
    mode = mode[0] if mode else ""
    owner = importlib.import_module(mod_name)
    name = attr
    if "." in attr:
        cls_name, name = attr.split(".")
        owner = getattr(owner, cls_name)
    orig = getattr(owner, name)
    calls = [0]

    def stop():
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGSTOP)
        # Go no further: when a thread other than the main one sends it, the main thread
        # may take the SIGSTOP and stop the others only a moment later. The parent kills the
        # stopped process.
        while True:
            time.sleep(60)

    def hooked(*args, **kwargs):
        calls[0] += 1
        if calls[0] != int(count):
            return orig(*args, **kwargs)
        if mode == "torn":
            from mailkeep.core.storage import segments
            writer, type_, header = args[0], args[1], args[2]
            payload = args[3] if len(args) > 3 else kwargs.get("payload", b"")
            data = segments.encode(type_, header, payload)
            writer._fh.write(data[: len(data) // 2])
            writer._fh.flush()
            stop()
        if mode == "after":
            result = orig(*args, **kwargs)
            stop()
            return result
        stop()

    setattr(owner, name, hooked)

if os.environ.get("MK_CRASH_AT"):
    _install(os.environ["MK_CRASH_AT"])
from mailkeep.cli import main
sys.argv[0] = "mailkeep"
sys.exit(main())
"""
HOOKED = [sys.executable, "-c", CHILD]  # `mailkeep` with a crash point from the environment


def start_hooked(args: Sequence[str], point: str | None, stdout: int | IO[Any] | None = None,
                 stderr: int | IO[Any] | None = None) -> subprocess.Popen[bytes]:
    """`mailkeep ARGS` in a child process of its own process group (its helper processes can
    be killed with it); with a point, the child stops itself there (see wait_stopped)."""
    env = clean_env(**{CRASH_AT: point}) if point else clean_env()
    return subprocess.Popen([*HOOKED, *args], stdout=stdout, stderr=stderr, env=env,
                            process_group=0)


def wait_stopped(proc: subprocess.Popen[bytes], point: str, timeout: float = 60) -> None:
    """Waits until the child has stopped itself at its point. Fails the test if the child
    ends first (its exit status is then recorded in proc) or does not get there in time."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status = os.waitpid(proc.pid, os.WUNTRACED | os.WNOHANG)
        if pid:
            if os.WIFSTOPPED(status):
                return
            proc.returncode = os.waitstatus_to_exitcode(status)
            raise AssertionError(
                f"the child ended (exit status {proc.returncode}) before it reached {point}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the child did not reach {point} within {timeout:.0f} s")
        time.sleep(0.005)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 the child (stopped or not), then whatever helper it left in its group."""
    sends = [os.killpg] if proc.returncode is not None else [os.kill, os.killpg]  # not reaped
    for send in sends:
        try:
            send(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@contextmanager
def stopped_at(args: Sequence[str], point: str) -> Iterator[subprocess.Popen[bytes]]:
    """`mailkeep ARGS`, yielded once it has stopped itself at point; killed (kill -9) on
    leaving. What it wrote is kept in a file (it never blocks on it), and shown when it does
    not get there."""
    with tempfile.TemporaryFile() as out:
        proc = start_hooked(args, point, stdout=out, stderr=out)
        try:
            try:
                wait_stopped(proc, point)
            except AssertionError as exc:
                out.seek(0)
                raise AssertionError(f"{exc}:\n{out.read().decode(errors='replace')}") from None
            yield proc
        finally:
            kill(proc)
            proc.wait(timeout=60)
