"""The process engine: runs administrative functions in worker threads and answers about them by
token, as the Administration API's invoke, get-status and cancel-async need. No HTTP here:
web/admin_api.py maps Snapshots to the envelope and UnknownToken to 404.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mailkeep.core.errors import Cancelled
from mailkeep.core.priority import lower_this_thread
from mailkeep.jobs.process import (
    CANCELLED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    Context,
    FinishedRecord,
    Process,
    ProcessInfo,
    Snapshot,
)
from mailkeep.jobs.shared import SharedProcesses, UnknownRemote

__all__ = [
    "Cancelled",
    "Context",
    "Engine",
    "FinishedRecord",
    "ProcessInfo",
    "Snapshot",
    "UnknownToken",
]

log = logging.getLogger("mailkeep.jobs")


class UnknownToken(Exception):
    """The token is unknown, expired, or another user's: callers cannot tell which (404)."""


def describe(exc: BaseException) -> tuple[str, str]:
    """(message, details) for a failed process, unless the engine is given another way (the
    server gives it the error table's): the user-facing message and the class name. Domain
    errors carry their message in a `message` attribute. Never a traceback."""
    message = getattr(exc, "message", None)
    if not isinstance(message, str) or not message:
        message = str(exc) or type(exc).__name__
    return message, type(exc).__name__


class Engine:
    """Runs functions in a thread pool it owns; keeps finished processes `retention_s` seconds.

    `on_finished` is called exactly once per process, with its FinishedRecord, from the worker
    thread that ran it (or from the event loop's thread for a process that stop() cancelled
    before it started). It runs before the outcome becomes visible to get-status, so a client
    that has seen the outcome finds it recorded. An exception in it is logged and ignored.
    """

    def __init__(
        self,
        *,
        grace_ms: int = 250,
        default_wait_ms: int = 5000,
        max_wait_ms: int = 60000,
        retention_s: float = 600.0,
        max_workers: int = 8,
        on_finished: Callable[[FinishedRecord], None] | None = None,
        stop_timeout_s: float = 10.0,
        max_log_lines: int = 10000,
        describe: Callable[[BaseException], tuple[str, str]] = describe,
    ) -> None:
        self.grace_ms = grace_ms
        self.default_wait_ms = default_wait_ms
        self.max_wait_ms = max_wait_ms
        self.retention_s = retention_s
        self.max_workers = max_workers
        self.stop_timeout_s = stop_timeout_s
        self.max_log_lines = max_log_lines
        self._on_finished = on_finished
        self._describe = describe
        self._abandoned: dict[str, Callable[[], None]] = {}  # token -> hook, until it runs
        self._lock = threading.Lock()  # guards the table and the expiry queue
        self._processes: dict[str, Process] = {}
        self._expiry: deque[tuple[float, str]] = deque()  # (monotonic deadline, token)
        self._executor: ThreadPoolExecutor | None = None
        # background calls (long-running functions, scheduled jobs): threads of their own,
        # at a lower CPU priority than those that answer people (core/priority.py)
        self._background: ThreadPoolExecutor | None = None
        self._stopped = False
        self.polls_waiting = 0  # get-status calls waiting for a change (the event loop's)
        # several servers (PostgreSQL): processes answered through any of them (shared.py)
        self.shared: SharedProcesses | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the worker pool. invoke() also starts an engine nobody started, but not one
        that was stopped (until start() is called again)."""
        self._stopped = False
        self._ensure_executor()

    async def stop(self) -> None:
        """Cancel every unfinished process, wait up to `stop_timeout_s` for them to reach a safe
        point, then shut the pool down. Processes that never started end as cancelled."""
        self._stopped = True
        executors = [e for e in (self._executor, self._background) if e is not None]
        self._executor = self._background = None
        with self._lock:
            unfinished = [p for p in self._processes.values() if not p.finished]
        for proc in unfinished:
            proc.cancel_requested.set()
        deadline = asyncio.get_running_loop().time() + self.stop_timeout_s
        for proc in unfinished:
            await proc.wait(deadline, None)
        if not executors:
            return
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)
        for proc in unfinished:
            if proc.future is not None and proc.future.cancelled():
                self._complete(proc, CANCELLED, None, None)
        stuck = [p for p in unfinished if not p.finished]
        if stuck:
            log.warning(
                "stopping with %d process(es) still running: %s",
                len(stuck),
                ", ".join(f"{p.name} ({p.user})" for p in stuck),
            )
        else:
            for executor in executors:
                executor.shutdown(wait=True)  # the workers are idle: this joins them at once

    def _ensure_executor(self, background: bool = False) -> ThreadPoolExecutor:
        if self._stopped:
            raise RuntimeError("the process engine is stopped")
        if background:
            if self._background is None:
                self._background = ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="mailkeep-background",
                    initializer=lower_this_thread)
            return self._background
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="mailkeep-job")
        return self._executor

    # -- the API -------------------------------------------------------------------------------

    async def invoke(self, name: str, fn: Callable[[Context], Any], user: str,
                     abandoned: Callable[[], None] | None = None,
                     background: bool = False) -> Snapshot:
        """Run fn(ctx) in a worker; answer its outcome if it ends within the grace period
        (token None), else a running snapshot with a token to poll. `abandoned` is called
        instead of fn when the process ends before a worker took it (the engine stopping).
        `background`: a thread of the background pool, at a lower CPU priority."""
        executor = self._ensure_executor(background)
        self._purge()
        proc = Process(name, user, secrets.token_hex(16), self.max_log_lines)
        with self._lock:
            self._processes[proc.token] = proc
            if abandoned is not None:
                self._abandoned[proc.token] = abandoned
        try:
            proc.future = executor.submit(self._run, proc, fn)
        except BaseException:
            self._forget(proc.token)
            raise
        loop = asyncio.get_running_loop()
        await proc.wait(loop.time() + self.grace_ms / 1000, None)
        snap = proc.snapshot(proc.token, 0)
        if snap.status_code != RUNNING:
            self._forget(proc.token)  # its token was never handed out
            snap.token = None
        elif self.shared is not None:  # in the database before its token is handed out
            await asyncio.to_thread(self.shared.track, proc)
        return snap

    async def status(
        self, token: str, user: str, last_known_version: int, timeout_ms: int | None
    ) -> Snapshot:
        """Answer at once if the status is newer than `last_known_version` (or final), else wait
        for a change up to the timeout. The log carries the lines after `last_known_version`.
        A process another server runs is answered from the database (shared.py)."""
        try:
            proc = self._lookup(token, user)
        except UnknownToken:
            if self.shared is None:
                raise
            try:
                return await self.shared.status(token, user, last_known_version,
                                                self.wait_seconds(timeout_ms))
            except UnknownRemote:
                raise UnknownToken(token) from None
        loop = asyncio.get_running_loop()
        self.polls_waiting += 1
        try:
            await proc.wait(loop.time() + self.wait_seconds(timeout_ms), last_known_version)
        finally:
            self.polls_waiting -= 1
        return proc.snapshot(token, last_known_version)

    def cancel(self, token: str, user: str) -> Snapshot:
        """Ask the process to stop at its next check_cancelled(); answer its current status
        (without log output: the caller's next get-status brings it)."""
        try:
            proc = self._lookup(token, user)
        except UnknownToken:
            if self.shared is None:
                raise
            try:
                return self.shared.cancel(token, user)
            except UnknownRemote:
                raise UnknownToken(token) from None
        proc.cancel_requested.set()
        return proc.snapshot(token, None)

    def running(self) -> list[ProcessInfo]:
        """Unfinished processes, oldest first."""
        self._purge()
        with self._lock:
            procs = list(self._processes.values())
        return sorted((p.info() for p in procs if not p.finished), key=lambda i: i.started)

    def wait_seconds(self, timeout_ms: int | None) -> float:
        """None and -1 mean the default; other negatives mean no wait; capped at max_wait_ms."""
        if timeout_ms is None or timeout_ms == -1:
            timeout_ms = self.default_wait_ms
        return max(0, min(timeout_ms, self.max_wait_ms)) / 1000

    # -- internals -----------------------------------------------------------------------------

    def _lookup(self, token: str, user: str) -> Process:
        self._purge()
        with self._lock:
            proc = self._processes.get(token)
        if proc is None or proc.user != user:
            raise UnknownToken(token)
        return proc

    def _forget(self, token: str) -> None:
        with self._lock:
            self._processes.pop(token, None)

    def _purge(self) -> None:
        """Forget processes whose retention has run out (done lazily, on every access)."""
        now = time.monotonic()
        with self._lock:
            while self._expiry and self._expiry[0][0] <= now:
                self._processes.pop(self._expiry.popleft()[1], None)

    def _run(self, proc: Process, fn: Callable[[Context], Any]) -> None:
        """The worker thread's side: run fn and record how it ended."""
        if proc.cancel_requested.is_set():  # cancelled while it waited for a worker
            self._complete(proc, CANCELLED, None, None)
            return
        with self._lock:
            self._abandoned.pop(proc.token, None)
        proc.ran = True
        try:
            result = fn(Context(proc))
        except Cancelled:
            self._complete(proc, CANCELLED, None, None)
        except Exception as exc:
            self._fail(proc, exc)
        except BaseException as exc:  # SystemExit and the like: record, then let it go on
            self._fail(proc, exc)
            raise
        else:
            self._complete(proc, SUCCEEDED, result, None)

    def _fail(self, proc: Process, exc: BaseException) -> None:
        error = self._describe(exc)
        if isinstance(getattr(exc, "message", None), str):  # a domain error: expected, no trace
            log.info("process %s (%s) failed: %s", proc.name, proc.user, error[0])
        else:
            log.error("process %s (%s) failed", proc.name, proc.user, exc_info=exc)
        self._complete(proc, FAILED, None, error, exc)

    def _complete(
        self, proc: Process, code: str, result: Any, error: tuple[str, str] | None,
        exception: BaseException | None = None,
    ) -> None:
        if not proc.claim():
            return
        with self._lock:
            abandoned = self._abandoned.pop(proc.token, None)
        if abandoned is not None and not proc.ran:
            try:
                abandoned()
            except Exception:
                log.exception("abandoned hook failed for process %s (%s)", proc.name,
                              proc.token)
        record = FinishedRecord(
            proc.name,
            proc.user,
            proc.token,
            proc.started,
            time.time(),
            code,
            error[0] if error else None,
        )
        if self._on_finished is not None:
            try:
                self._on_finished(record)
            except Exception:
                log.exception("on_finished failed for process %s (%s)", proc.name, proc.token)
        proc.publish(code, result, error, exception)
        with self._lock:
            self._expiry.append((time.monotonic() + self.retention_s, proc.token))
