"""The scheduler: the server's asyncio task that starts due jobs through the process engine (so
process history and GetServiceStatus see them as usual), wakes at the next due time (at most
every 30 s) or when a job changes, and takes RunJobAsync/CancelJobAsync from the function
workers. A job's run itself is jobs/runs.py's; what its action runs is `run_action`'s (the
catalog layer gives it)."""

from __future__ import annotations

import asyncio
import logging
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailkeep.core.admin.locks import RunLock
from mailkeep.core.errors import Conflict, InvalidArgument, MailkeepError
from mailkeep.core.masterdb import Job, MasterDB
from mailkeep.jobs import runs
from mailkeep.jobs.engine import Engine, UnknownToken
from mailkeep.jobs.process import Context
from mailkeep.jobs.schedule import compute_next

log = logging.getLogger("mailkeep.jobs")

MAX_SLEEP_S = 30.0


@dataclass
class _Run:
    job: Job
    lock: RunLock
    result_id: int
    token: str | None = None
    started: bool = False  # execute() began (else the engine ended it before it ran)
    guard: threading.Lock = field(default_factory=threading.Lock)


def _process_name(action: str) -> str:
    """The process is named by the function its action calls."""
    try:
        words = shlex.split(action)
    except ValueError:
        words = []
    return words[0] if words else "RunJob"


class Scheduler:
    """Starts due jobs through the engine. `now` (epoch seconds) is injectable for tests;
    `start(background=False)` leaves the waking to the caller (`await run_due()`)."""

    def __init__(self, data_dir: Path, master: MasterDB, engine: Engine,
                 run_action: runs.RunAction, *, now: Callable[[], float] = time.time,
                 max_sleep_s: float = MAX_SLEEP_S) -> None:
        self.data_dir = data_dir.resolve()
        self.master = master
        self.engine = engine
        self.run_action = run_action
        self.now = now
        self.max_sleep_s = max_sleep_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._main: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._runs: dict[int, _Run] = {}  # job id -> its run in this process
        self._lock = threading.Lock()
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, background: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        count = await asyncio.to_thread(runs.recover_interrupted, self.master, self.data_dir,
                                        self.now())
        if count:
            log.warning("%d job run(s) were interrupted by the end of a process", count)
        if background:
            self._main = asyncio.create_task(self._forever(), name="mailkeep-scheduler")

    async def stop(self) -> None:
        """No new runs; stop the engine (its unfinished processes, jobs among them, are
        cancelled) and record how this scheduler's runs ended. Call before engine.stop()."""
        self._stopping = True
        if self._main is not None:
            self._main.cancel()
            await asyncio.gather(self._main, return_exceptions=True)
            self._main = None
        await self.engine.stop()
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def changed(self) -> None:
        """A job changed: look again (thread-safe)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop is closed
                pass

    async def _forever(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await self.run_due()
                delay = await asyncio.to_thread(self._delay)
            except Exception:  # a bad moment of the database must not end the scheduling
                log.exception("scheduler pass failed")
                delay = self.max_sleep_s
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            self._wake.clear()

    def _delay(self) -> float:
        due = self.master.jobs.next_due()
        if due is None:
            return self.max_sleep_s
        return max(0.0, min(self.max_sleep_s, due - self.now()))

    # -- runs ----------------------------------------------------------------------------------
    async def run_due(self) -> list[int]:
        """Start the jobs that are due now (a job still running is recorded as skipped); the
        result ids of the runs started and skipped."""
        claimed, skipped = await asyncio.to_thread(self._claim_due)
        for run in claimed:
            self._launch(run)
        return sorted([r.result_id for r in claimed] + skipped)

    def _claim_due(self) -> tuple[list[_Run], list[int]]:
        now = self.now()
        jobs = self.master.jobs
        claimed: list[_Run] = []
        skipped: list[int] = []
        for job in jobs.due(now):
            try:
                next_at = compute_next(job.schedule, job.time_zone, now)
            except InvalidArgument as exc:  # the zone vanished from the system's tz database
                log.error("job %s (%d): %s", job.name, job.id, exc.message)
                next_at = None
            if not jobs.claim(job, next_at):
                continue
            lock = runs.acquire(self.data_dir, job.id)
            if lock is None:
                skipped.append(jobs.skipped(job, "schedule", now, "The job was still "
                                            "running: this run was skipped."))
                continue
            claimed.append(_Run(job, lock, jobs.start_result(job, "schedule", now)))
        return claimed, skipped

    def request_run(self, job_id: int) -> int:
        """RunJobAsync: start the job now (from any thread); its result id. Conflict when it
        is running."""
        loop = self._loop
        if loop is None or self._stopping:
            raise Conflict("The scheduler is not running.")
        job = runs.get(self.master, job_id)
        lock = runs.acquire(self.data_dir, job_id)
        if lock is None:
            raise Conflict(f"Job {job.name} (id {job_id}) is running: it is not started twice "
                           "(CancelJobAsync stops it).")
        run = _Run(job, lock, self.master.jobs.start_result(job, "manual", self.now()))
        try:
            loop.call_soon_threadsafe(self._launch, run)
        except RuntimeError:  # the loop is closed: the server is stopping
            self.master.jobs.finish_result(run.result_id, "failed", "The server is stopping.",
                                           self.now())
            lock.release()
            raise Conflict("The server is stopping.") from None
        return run.result_id

    def cancel(self, job_id: int) -> None:
        """CancelJobAsync: ask the running job to stop (from any thread). Through the database
        for a run in any process, and through the engine for a run in this one."""
        job = runs.get(self.master, job_id)
        if not runs.is_running(self.data_dir, job_id):
            raise Conflict(f"Job {job.name} (id {job_id}) is not running.")
        self.master.jobs.request_cancel(job_id)
        with self._lock:
            run = self._runs.get(job_id)
        if run is not None and run.token is not None:
            try:
                self.engine.cancel(run.token, job.owner)
            except UnknownToken:
                pass

    def _launch(self, run: _Run) -> None:
        with self._lock:
            self._runs[run.job.id] = run
        task = asyncio.get_running_loop().create_task(self._follow(run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, run: _Run) -> None:
        """Run through the engine and follow the process to its end; if the engine ended it
        before it began (cancelled while queued, or the server stopping), record that."""

        def work(ctx: Context) -> Any:
            with run.guard:
                if run.started:
                    return None
                run.started = True
                run.token = ctx.token
            return runs.execute(self.master, run.job, run.lock, run.result_id, ctx,
                                self.run_action, now=self.now)

        try:
            snap = await self.engine.invoke(_process_name(run.job.action), work, run.job.owner,
                                            background=True)
            if snap.token is not None:
                run.token = snap.token
                version = snap.status_version
                while snap.status_code == "running":
                    snap = await self.engine.status(snap.token, run.job.owner, version, 60000)
                    version = snap.status_version
        except (UnknownToken, RuntimeError, MailkeepError) as exc:  # purged, or engine stopped
            log.info("following job %s: %s", run.job.name, exc)
        finally:
            with run.guard:
                never_ran, run.started = not run.started, True
            if never_ran:
                await asyncio.to_thread(self._never_ran, run, self._stopping)
            with self._lock:
                if self._runs.get(run.job.id) is run:
                    del self._runs[run.job.id]

    def _never_ran(self, run: _Run, stopping: bool) -> None:
        cancelled = stopping or self.master.jobs.cancel_requested(run.job.id)
        why = "The server stopped before the run began." if stopping else (
            None if cancelled else "The process engine did not run the job.")
        try:
            self.master.jobs.finish_result(run.result_id,
                                           "cancelled" if cancelled else "failed", why,
                                           self.now())
        finally:
            run.lock.release()

    async def wait_idle(self) -> None:
        """Until the runs started so far have ended (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)
