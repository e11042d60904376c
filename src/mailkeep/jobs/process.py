"""One process's state, shared by its worker thread (which writes it) and the asyncio side (which
reads it and waits for changes). engine.py owns the table of processes and the threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from mailkeep.core.errors import Cancelled

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"



@dataclass
class Snapshot:
    """One answer about a process, in the terms of the Administration API's envelope."""

    token: str | None  # None when the call finished within invoke's grace period
    status_version: int
    status_code: str  # "running" | "succeeded" | "failed" | "cancelled"
    percent_progress: int | None
    status_text: str | None
    result: Any  # the JSON-able result when succeeded, else None
    error: tuple[str, str] | None  # (message, details) when failed
    log_output: str | None  # log text added after the version the caller knew, or None
    exception: BaseException | None = None  # what it failed with (for an interface's table)


@dataclass(frozen=True)
class ProcessInfo:
    """A running process, as GetServiceStatus lists it."""

    name: str
    user: str
    token: str
    started: float  # epoch seconds
    percent: int | None


@dataclass(frozen=True)
class FinishedRecord:
    """What on_finished receives once per process: enough for history and audit."""

    name: str
    user: str
    token: str
    started: float  # epoch seconds
    finished: float  # epoch seconds
    outcome: str  # "succeeded" | "failed" | "cancelled"
    error: str | None  # the user-facing message when failed


class Progress(Protocol):
    """How a running function reports and is stopped: Context below, a job's context, the
    command line's terminal."""

    def progress(self, percent: int | None, text: str | None = None) -> None: ...

    def log(self, line: str) -> None: ...

    def check_cancelled(self) -> None: ...


Waiters = list[tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]]


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _wake(waiters: Waiters) -> None:
    for loop, fut in waiters:
        try:
            loop.call_soon_threadsafe(_set_done, fut)
        except RuntimeError:  # that loop is closed; nobody is waiting there any more
            pass


def _crlf(line: str) -> str:
    return line.rstrip("\r\n").replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n"


class Process:
    """Status, log and waiters of one process. Every field is read and written under `lock`.

    Waiting is one future per event loop, created by the first waiter after a change and shared
    by all later ones; a change takes the futures out and completes each with one
    call_soon_threadsafe, so a thousand long polls cost one wake-up, and changes nobody waits
    for cost nothing.
    """

    def __init__(self, name: str, user: str, token: str, max_log_lines: int) -> None:
        self.name = name
        self.user = user
        self.token = token
        self.started = time.time()
        self.lock = threading.Lock()
        self.cancel_requested = threading.Event()
        self.future: Future[None] | None = None  # the executor's handle, set by the engine
        self.version = 1
        self.status_code = RUNNING
        self.percent: int | None = None
        self.text: str | None = None
        self.result: Any = None
        self.error: tuple[str, str] | None = None
        self.exception: BaseException | None = None
        self.ran = False  # a worker began running it
        self.claimed = False  # an outcome is being recorded; later outcomes are ignored
        self._log: deque[tuple[int, str]] = deque(maxlen=max_log_lines)
        self._waiters: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}

    @property
    def finished(self) -> bool:
        return self.status_code != RUNNING

    def _bump(self) -> Waiters:
        """A change: the next version, and the waiters to wake once the lock is released."""
        self.version += 1
        waiters = list(self._waiters.items())
        self._waiters.clear()
        return waiters

    def set_progress(self, percent: int | None, text: str | None) -> None:
        with self.lock:
            if self.claimed:
                return
            self.percent = None if percent is None else max(0, min(100, int(percent)))
            if text is not None:
                self.text = text
            waiters = self._bump()
        _wake(waiters)

    def add_log(self, line: str) -> None:
        text = _crlf(line)
        with self.lock:
            if self.claimed:
                return
            waiters = self._bump()
            self._log.append((self.version, text))
        _wake(waiters)

    def claim(self) -> bool:
        """True for the first caller that may record an outcome; progress and log stop here."""
        with self.lock:
            if self.claimed:
                return False
            self.claimed = True
            return True

    def publish(self, code: str, result: Any, error: tuple[str, str] | None,
                exception: BaseException | None = None) -> None:
        with self.lock:
            self.status_code = code
            self.result = result if code == SUCCEEDED else None
            self.error = error if code == FAILED else None
            self.exception = exception if code == FAILED else None
            waiters = self._bump()
        _wake(waiters)

    def snapshot(self, token: str | None, log_after: int | None) -> Snapshot:
        """The current status; the log lines added after version `log_after` (None: no log)."""
        with self.lock:
            lines: list[str] = []
            if log_after is not None:
                for version, text in reversed(self._log):
                    if version <= log_after:
                        break
                    lines.append(text)
            return Snapshot(
                token=token,
                status_version=self.version,
                status_code=self.status_code,
                percent_progress=self.percent,
                status_text=self.text,
                result=self.result,
                error=self.error,
                log_output="".join(reversed(lines)) or None,
                exception=self.exception,
            )

    def log_entries(self) -> list[tuple[int, str]]:
        """(version, line) of the log kept (jobs/shared.py writes them to the database)."""
        with self.lock:
            return list(self._log)

    def info(self) -> ProcessInfo:
        with self.lock:
            return ProcessInfo(self.name, self.user, self.token, self.started, self.percent)

    async def wait(self, deadline: float, after_version: int | None) -> None:
        """Return when the process is finished, its version passes `after_version` (None: wait
        for the end only), or the event loop's clock reaches `deadline`."""
        loop = asyncio.get_running_loop()
        while True:
            with self.lock:
                if self.finished or (after_version is not None and self.version > after_version):
                    return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                fut = self._waiters.get(loop)
                if fut is None or fut.done():
                    fut = self._waiters[loop] = loop.create_future()
            # asyncio.wait, unlike wait_for, leaves the shared future alone on timeout
            await asyncio.wait((fut,), timeout=remaining)


class Context:
    """What a running function sees: who started it, and how to report and be stopped.

    Calls after the function has returned are ignored. Safe to call from any thread.
    """

    def __init__(self, process: Process) -> None:
        self._process = process
        self.user = process.user
        self.name = process.name
        self.token = process.token  # to tell this process apart from the others, never shown

    def progress(self, percent: int | None, text: str | None = None) -> None:
        """Set the percentage (clamped to 0..100; None: unknown) and, if given, the status
        text (None keeps the previous text). Each call is a new status version."""
        self._process.set_progress(percent, text)

    def log(self, line: str) -> None:
        """Add one log line; it is stored ending in CRLF. Each call is a new status version."""
        self._process.add_log(line)

    @property
    def cancel_requested(self) -> bool:
        return self._process.cancel_requested.is_set()

    def check_cancelled(self) -> None:
        """A safe point: raises Cancelled once a cancel was asked."""
        if self._process.cancel_requested.is_set():
            raise Cancelled()
