"""Scheduled jobs: catalog function calls run on a schedule, on demand, and recorded.

- `Jobs`: the `jobs` and `job_results` tables of the master database (what survives a restart:
  the jobs, their next runs as UTC epoch seconds, and every run).
- `acquire_job`: a job runs only while its process holds `<data_dir>/locks/job-<id>.lock`
  (fcntl.flock, non-blocking), so never twice at once, not even across processes.
- `execute`: one run of a job's action through the catalog function call path, as its owner,
  audited as `job:<name>`; the outcome goes to `job_results`.
- `Scheduler`: the server's asyncio task that starts due jobs through the process engine (so
  process history and GetServiceStatus see them as usual), wakes at the next due time (at most
  every 30 s) or when a job changes, and takes RunJobAsync/CancelJobAsync from the function
  workers (`running_scheduler(data_dir)` finds the scheduler of a data directory in this
  process; the CLI, which has none, runs a job synchronously instead).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailkeep.core.admin.locks import RunLock, held, lock_file
from mailkeep.core.admin.users import Users
from mailkeep.core.admin.zones import zone
from mailkeep.core.archive import Archive
from mailkeep.core.errors import Cancelled, Conflict, InvalidArgument, MailkeepError, NotFound
from mailkeep.core.master import Master
from mailkeep.functions.call import Call, Progress
from mailkeep.functions.registry import REGISTRY, ApiArgumentError, Function, parse_args
from mailkeep.jobs.engine import Engine, UnknownToken, describe
from mailkeep.jobs.process import Context, ProcessInfo
from mailkeep.jobs.schedule import Schedule, next_run

log = logging.getLogger("mailkeep.jobs")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, action TEXT NOT NULL,
    owner TEXT NOT NULL, time_zone TEXT NOT NULL, type TEXT NOT NULL, date TEXT,
    interval INTEGER, time TEXT, day_of_week TEXT, day_of_month TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    next_run REAL,  -- UTC epoch seconds; NULL: not scheduled (disabled, manual, once done)
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS job_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, job_name TEXT NOT NULL,
    action TEXT NOT NULL, owner TEXT NOT NULL,
    trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    started REAL NOT NULL, completed REAL,
    result TEXT CHECK (result IS NULL OR
                       result IN ('succeeded', 'failed', 'cancelled', 'skipped')),
    error TEXT);  -- result NULL: running (while the job's lock is held)
CREATE INDEX IF NOT EXISTS job_results_started ON job_results(started);
CREATE INDEX IF NOT EXISTS job_results_job ON job_results(job_id, started);
"""

# Functions an action must not call: a job managing jobs could start loops.
MANAGING = frozenset({"CreateJob", "RenameJob", "SetJobEnabled", "SetJobSchedule",
                      "RunJobAsync", "CancelJobAsync", "DeleteJob"})
NAME_RE = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
MAX_SLEEP_S = 30.0
INTERRUPTED = "Interrupted: the process running the job ended before the run did."
CANCEL_POLL_S = 0.5  # how often a run looks at the database for CancelJobAsync from elsewhere


# -- actions ----------------------------------------------------------------------------------

def parse_action(action: str) -> tuple[Function, dict[str, Any]]:
    """The function and typed arguments of an action such as `RunProfile id=3` (shell-like
    quoting; `--name=value` too), checked as the API checks a call; InvalidArgument if not."""
    try:
        words = shlex.split(action)
    except ValueError as exc:
        raise InvalidArgument(f"Invalid action: {exc} (quote a value with spaces as "
                              'name="a value").') from None
    if not words:
        raise InvalidArgument("The action is empty: give a function call such as VerifyStores "
                              "or RunProfile id=3.")
    fn = REGISTRY.get(words[0])
    if fn is None:
        raise InvalidArgument(f"Unknown function {words[0]} in the action (get-metadata lists "
                              "the functions).")
    if fn.name in MANAGING:
        raise InvalidArgument(f"A job cannot call {fn.name}: jobs do not manage jobs.")
    known = {a.name.lower(): a for a in fn.args}
    form: dict[str, str] = {}
    for word in words[1:]:
        text = word[2:] if word.startswith("--") else word
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise InvalidArgument(f"Invalid action argument '{word}': use name=value.")
        arg = known.get(name.lower())
        if arg is not None and arg.secret:
            raise InvalidArgument(f"The action cannot pass {arg.name} of {fn.name}: it is "
                                  "secret, and a job's action is stored and shown in clear.")
        if name.lower() in {n.lower() for n in form}:
            raise InvalidArgument(f"The action passes argument {name} twice.")
        form[name] = value
    try:
        args = parse_args(fn, form)
    except ApiArgumentError as exc:
        raise InvalidArgument(f"Invalid action for {fn.name}: {exc.message}") from None
    for arg in fn.args:
        given = args.get(arg.name)
        if arg.secret_keys and isinstance(given, dict) and any(
                given.get(k) for k in arg.secret_keys):
            raise InvalidArgument(f"The action cannot pass {', '.join(arg.secret_keys)} in "
                                  f"{arg.name} of {fn.name}: a job's action is stored and shown "
                                  "in clear (save a profile and run it with RunProfile).")
    return fn, args


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name) or name != name.strip():
        raise InvalidArgument(f"Invalid job name '{name}': 1 to 100 characters, no control "
                              "characters, no surrounding spaces.")
    return name


# -- the lock ---------------------------------------------------------------------------------

def lock_path(data_dir: Path, job_id: int) -> Path:
    return lock_file(data_dir, f"job-{job_id}")


def acquire_job(data_dir: Path, job_id: int) -> RunLock | None:
    """The job's lock, or None when it is held (the job is running)."""
    return RunLock.acquire(lock_path(data_dir, job_id))


def is_running(data_dir: Path, job_id: int) -> bool:
    """Whether some process holds the job's lock."""
    return held(lock_path(data_dir, job_id))


# -- the tables -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    id: int
    name: str
    action: str
    owner: str
    time_zone: str
    schedule: Schedule
    enabled: bool
    next_run: float | None


_JOB_COLUMNS = ("id, name, action, owner, time_zone, type, date, interval, time, day_of_week, "
                "day_of_month, enabled, next_run")


def _job(row: tuple[Any, ...]) -> Job:
    return Job(row[0], row[1], row[2], row[3], row[4],
               Schedule(row[5], row[6], row[7], row[8], row[9], row[10]), bool(row[11]),
               row[12])


def shown_time(epoch: float | None, tz_id: str) -> str | None:
    """An instant as ISO 8601 in a zone, with its offset: 2026-01-31T02:00:00+01:00."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, zone(tz_id)).isoformat(timespec="seconds")


def compute_next(schedule: Schedule, tz_id: str, now: float) -> float | None:
    at = next_run(schedule, zone(tz_id), datetime.fromtimestamp(now, UTC))
    return at.timestamp() if at is not None else None


class Jobs:
    """The jobs and their results in one master database. Thread-safe (one lock)."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self._lock = threading.RLock()
        with self._lock:
            master.conn.executescript(SCHEMA)

    # -- validation --------------------------------------------------------------------------

    def check_owner(self, owner: str) -> str:
        """The owner's user name as stored, or NotFound."""
        with self._lock:
            users = Users(self.master)
            if not users.exists(owner):
                raise NotFound(f"User '{owner}' does not exist: a job's owner must be a user "
                               "(GetUsers lists them).")
            name: str = users.get(owner)["userName"]
            return name

    # -- jobs ----------------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with self._lock:
            row = self.master.conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?",
                                           (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"Job {job_id} does not exist (GetJobs lists the jobs).")
        return _job(row)

    def all(self) -> list[Job]:
        with self._lock:
            rows = self.master.conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY id"
                                            ).fetchall()
        return [_job(r) for r in rows]

    def create(self, name: str, action: str, owner: str, tz_id: str, schedule: Schedule,
               next_at: float | None, actor: str) -> int:
        s = schedule
        with self._lock:
            cur = self.master.conn.execute(
                "INSERT INTO jobs (name, action, owner, time_zone, type, date, interval, time, "
                "day_of_week, day_of_month, enabled, next_run, created_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,1,?,?)",
                (name, action, owner, tz_id, s.type, s.date, s.interval, s.time, s.day_of_week,
                 s.day_of_month, next_at, int(time.time())))
            assert cur.lastrowid is not None
            self.master.audit(actor, "job.create", id=cur.lastrowid, name=name, call=action,
                              owner=owner, timeZoneId=tz_id, schedule=s.shown())
            return cur.lastrowid

    def _change(self, job_id: int, actor: str, action: str, details: dict[str, Any],
                **columns: Any) -> None:
        names = ", ".join(f"{c} = ?" for c in columns)
        with self._lock:
            cur = self.master.conn.execute(f"UPDATE jobs SET {names} WHERE id = ?",
                                           (*columns.values(), job_id))
            if cur.rowcount != 1:
                raise NotFound(f"Job {job_id} does not exist (GetJobs lists the jobs).")
            self.master.audit(actor, action, id=job_id, **details)

    def rename(self, job_id: int, name: str, actor: str) -> None:
        self._change(job_id, actor, "job.rename", {"name": name}, name=name)

    def set_enabled(self, job_id: int, enabled: bool, next_at: float | None,
                    actor: str) -> None:
        self._change(job_id, actor, "job.enable" if enabled else "job.disable", {},
                     enabled=int(enabled), next_run=next_at)

    def set_schedule(self, job_id: int, tz_id: str, s: Schedule, next_at: float | None,
                     actor: str) -> None:
        self._change(job_id, actor, "job.schedule", {"timeZoneId": tz_id,
                                                     "schedule": s.shown()},
                     time_zone=tz_id, type=s.type, date=s.date, interval=s.interval,
                     time=s.time, day_of_week=s.day_of_week, day_of_month=s.day_of_month,
                     next_run=next_at)

    def delete(self, job_id: int, actor: str) -> None:
        with self._lock:
            cur = self.master.conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            if cur.rowcount != 1:
                raise NotFound(f"Job {job_id} does not exist (GetJobs lists the jobs).")
            self.master.audit(actor, "job.delete", id=job_id)

    def due(self, now: float) -> list[Job]:
        with self._lock:
            rows = self.master.conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE enabled = 1 AND next_run IS NOT NULL "
                "AND next_run <= ? ORDER BY next_run, id", (now,)).fetchall()
        return [_job(r) for r in rows]

    def next_due(self) -> float | None:
        with self._lock:
            row = self.master.conn.execute(
                "SELECT MIN(next_run) FROM jobs WHERE enabled = 1").fetchone()
        return row[0] if row else None

    def claim(self, job: Job, next_at: float | None) -> bool:
        """Move a due job's next run on; False if someone else (another process) did."""
        with self._lock:
            cur = self.master.conn.execute(
                "UPDATE jobs SET next_run = ? WHERE id = ? AND next_run = ? AND enabled = 1",
                (next_at, job.id, job.next_run))
            return cur.rowcount == 1

    def request_cancel(self, job_id: int) -> None:
        with self._lock:
            self.master.conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?",
                                     (job_id,))

    def cancel_requested(self, job_id: int) -> bool:
        with self._lock:
            row = self.master.conn.execute("SELECT cancel_requested FROM jobs WHERE id = ?",
                                           (job_id,)).fetchone()
        return bool(row and row[0])

    # -- results -------------------------------------------------------------------------------

    def start_result(self, job: Job, trigger: str, now: float) -> int:
        """A run begins (its lock is held): a result without outcome. Another run of the job
        still without one was left by a process that ended: failed."""
        with self._lock:
            self.master.conn.execute("UPDATE jobs SET cancel_requested = 0 WHERE id = ?",
                                     (job.id,))
            self.master.conn.execute(
                "UPDATE job_results SET result = 'failed', completed = ?, error = ? "
                "WHERE job_id = ? AND result IS NULL", (now, INTERRUPTED, job.id))
            cur = self.master.conn.execute(
                "INSERT INTO job_results (job_id, job_name, action, owner, trigger, started) "
                "VALUES (?,?,?,?,?,?)", (job.id, job.name, job.action, job.owner, trigger, now))
            assert cur.lastrowid is not None
            return cur.lastrowid

    def finish_result(self, result_id: int, outcome: str, error: str | None,
                      now: float) -> None:
        with self._lock:
            self.master.conn.execute(
                "UPDATE job_results SET result = ?, error = ?, completed = ? WHERE id = ? "
                "AND result IS NULL", (outcome, error, now, result_id))
            self.master.conn.execute(
                "UPDATE jobs SET cancel_requested = 0 WHERE id = "
                "(SELECT job_id FROM job_results WHERE id = ?)", (result_id,))

    def skipped(self, job: Job, trigger: str, now: float, why: str) -> int:
        with self._lock:
            cur = self.master.conn.execute(
                "INSERT INTO job_results (job_id, job_name, action, owner, trigger, started, "
                "completed, result, error) VALUES (?,?,?,?,?,?,?,'skipped',?)",
                (job.id, job.name, job.action, job.owner, trigger, now, now, why))
            assert cur.lastrowid is not None
            return cur.lastrowid

    def results(self, start: float, end: float, job_id: int | None) -> list[dict[str, Any]]:
        sql = ("SELECT id, job_id, job_name, action, owner, started, completed, result, error, "
               "trigger FROM job_results WHERE started >= ? AND started < ?")
        params: list[Any] = [start, end]
        if job_id is not None:
            sql += " AND job_id = ?"
            params.append(job_id)
        with self._lock:
            rows = self.master.conn.execute(sql + " ORDER BY started, id", params).fetchall()
        keys = ("id", "jobId", "jobName", "action", "owner", "started", "completed", "result",
                "error", "trigger")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def last_results(self) -> dict[int, dict[str, Any]]:
        """Each job's latest finished run: {job id: {resultId, started, completed, result}}."""
        with self._lock:
            rows = self.master.conn.execute(
                "SELECT r.job_id, r.id, r.started, r.completed, r.result FROM job_results r "
                "WHERE r.id = (SELECT id FROM job_results WHERE job_id = r.job_id AND result "
                "IS NOT NULL ORDER BY started DESC, id DESC LIMIT 1)").fetchall()
        return {r[0]: {"resultId": r[1], "started": r[2], "completed": r[3], "result": r[4]}
                for r in rows}

    def unfinished(self) -> list[tuple[int, int]]:
        """(result id, job id) of the runs without an outcome."""
        with self._lock:
            rows = self.master.conn.execute(
                "SELECT id, job_id FROM job_results WHERE result IS NULL").fetchall()
        return [(r[0], r[1]) for r in rows]


def recover_interrupted(jobs: Jobs, data_dir: Path, now: float) -> int:
    """Runs left without an outcome by a process that ended (their lock is free): failed."""
    count = 0
    for result_id, job_id in jobs.unfinished():
        if not is_running(data_dir, job_id):
            jobs.finish_result(result_id, "failed", INTERRUPTED, now)
            count += 1
    return count


# -- one run ----------------------------------------------------------------------------------

class JobContext:
    """The context a job's function sees: the owner as its user, progress and log passed on,
    and cancelled by its process (cancel-async) or by CancelJobAsync from any process."""

    def __init__(self, inner: Progress, owner: str, cancelled: Callable[[], bool]) -> None:
        self._inner = inner
        self.user = owner
        self._cancelled = cancelled
        self._checked = 0.0

    def progress(self, percent: int | None, text: str | None = None) -> None:
        self._inner.progress(percent, text)

    def log(self, line: str) -> None:
        self._inner.log(line)

    def check_cancelled(self) -> None:
        self._inner.check_cancelled()
        now = time.monotonic()
        if now - self._checked >= CANCEL_POLL_S:
            self._checked = now
            if self._cancelled():
                raise Cancelled()


def execute(data_dir: Path, job: Job, lock: RunLock, result_id: int, ctx: Progress, *,
            now: Callable[[], float] = time.time,
            others: Callable[[], list[ProcessInfo]] | None = None) -> Any:
    """Run the job's action as its owner through the catalog function call path, record the
    outcome in job_results (and the audit log, as `job:<name>`), release the lock. The
    function's result is returned and its exception raised again after recording."""
    master = Master(data_dir / "mailkeep.db")
    jobs = Jobs(master)
    actor = f"job:{job.name}"
    outcome, error = "failed", None
    try:
        jctx = JobContext(ctx, job.owner, lambda: jobs.cancel_requested(job.id))
        if jobs.cancel_requested(job.id):
            raise Cancelled()
        fn, args = parse_action(job.action)
        if not Users(master).exists(job.owner):
            raise NotFound(f"The owner {job.owner} of job {job.name} no longer exists.")

        def open_archive() -> Archive:
            archive = Archive(data_dir)
            archive.actor = actor
            return archive

        call = Call(open_archive, args, jctx, jobs=others)
        try:
            result = fn.run(call)
            if fn.changes:
                call.archive.master.audit(actor, f"api.{fn.name}", args=fn.audit_args(args),
                                          job=job.id)
        finally:
            if call.opened is not None:
                call.opened.close()
        outcome = "succeeded"
        return result
    except Cancelled:
        outcome = "cancelled"
        raise
    except BaseException as exc:
        error = describe(exc)[0]
        raise
    finally:
        try:
            jobs.finish_result(result_id, outcome, error, now())
            master.audit(actor, f"job.{outcome}", id=job.id, resultId=result_id,
                         call=job.action, owner=job.owner, error=error)
        finally:
            lock.release()
            master.close()
        log.info("job %s (%d) %s%s", job.name, job.id, outcome, f": {error}" if error else "")


def run_now(data_dir: Path, job_id: int, ctx: Progress, now: Callable[[], float] = time.time
            ) -> dict[str, Any]:
    """RunJobAsync without a server in this process (the CLI): run the job here and now, with
    its lock; answer how it ended."""
    master = Master(data_dir / "mailkeep.db")
    try:
        jobs = Jobs(master)
        job = jobs.get(job_id)
        lock = acquire_job(data_dir, job_id)
        if lock is None:
            raise Conflict(f"Job {job.name} (id {job_id}) is running.")
        result_id = jobs.start_result(job, "manual", now())
    finally:
        master.close()
    try:
        execute(data_dir, job, lock, result_id, ctx, now=now)
    except Cancelled:
        return {"resultId": result_id, "result": "cancelled", "error": None}
    except Exception as exc:
        return {"resultId": result_id, "result": "failed", "error": describe(exc)[0]}
    return {"resultId": result_id, "result": "succeeded", "error": None}


# -- the scheduler ----------------------------------------------------------------------------

_SCHEDULERS: dict[Path, Scheduler] = {}
_SCHEDULERS_LOCK = threading.Lock()


def running_scheduler(data_dir: Path) -> Scheduler | None:
    """The started scheduler of this data directory in this process, if any."""
    with _SCHEDULERS_LOCK:
        return _SCHEDULERS.get(data_dir.resolve())


def clock(data_dir: Path) -> Callable[[], float]:
    """The time the jobs of this data directory go by: the scheduler's clock, else time.time."""
    sched = running_scheduler(data_dir)
    return sched.now if sched is not None else time.time


@dataclass
class _Run:
    job: Job
    lock: RunLock
    result_id: int
    token: str | None = None
    started: bool = False  # execute() began (else the engine ended it before it ran)
    guard: threading.Lock = field(default_factory=threading.Lock)


class Scheduler:
    """Starts due jobs through the engine. `now` (epoch seconds) is injectable for tests;
    `start(background=False)` leaves the waking to the caller (`await run_due()`)."""

    def __init__(self, data_dir: Path, engine: Engine, *, now: Callable[[], float] = time.time,
                 max_sleep_s: float = MAX_SLEEP_S) -> None:
        self.data_dir = data_dir.resolve()
        self.engine = engine
        self.now = now
        self.max_sleep_s = max_sleep_s
        self._jobs: Jobs | None = None  # opened by start()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._main: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._runs: dict[int, _Run] = {}  # job id -> its run in this process
        self._lock = threading.Lock()

    @property
    def jobs(self) -> Jobs:
        if self._jobs is None:
            raise Conflict("The scheduler is not running.")
        return self._jobs

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, background: bool = True) -> None:
        if self._jobs is None:
            self._jobs = Jobs(Master(self.data_dir / "mailkeep.db"))
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        with _SCHEDULERS_LOCK:  # a second server on the same directory in this process
            _SCHEDULERS.setdefault(self.data_dir, self)  # runs due jobs, but is not found
        count = await asyncio.to_thread(recover_interrupted, self.jobs, self.data_dir,
                                        self.now())
        if count:
            log.warning("%d job run(s) were interrupted by the end of a process", count)
        if background:
            self._main = asyncio.create_task(self._forever(), name="mailkeep-scheduler")

    async def stop(self) -> None:
        """No new runs; stop the engine (its unfinished processes, jobs among them, are
        cancelled) and record how this scheduler's runs ended. Call before engine.stop()."""
        with _SCHEDULERS_LOCK:
            if _SCHEDULERS.get(self.data_dir) is self:
                del _SCHEDULERS[self.data_dir]
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
        if self._jobs is not None:
            self._jobs.master.close()
            self._jobs = None

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
        due = self.jobs.next_due()
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
        claimed: list[_Run] = []
        skipped: list[int] = []
        for job in self.jobs.due(now):
            try:
                next_at = compute_next(job.schedule, job.time_zone, now)
            except InvalidArgument as exc:  # the zone vanished from the system's tz database
                log.error("job %s (%d): %s", job.name, job.id, exc.message)
                next_at = None
            if not self.jobs.claim(job, next_at):
                continue
            lock = acquire_job(self.data_dir, job.id)
            if lock is None:
                skipped.append(self.jobs.skipped(job, "schedule", now, "The job was still "
                                                 "running: this run was skipped."))
                continue
            claimed.append(_Run(job, lock, self.jobs.start_result(job, "schedule", now)))
        return claimed, skipped

    def request_run(self, job_id: int) -> int:
        """RunJobAsync: start the job now (from any thread); its result id. Conflict when it
        is running."""
        loop = self._loop
        if loop is None:
            raise Conflict("The scheduler is not running.")
        job = self.jobs.get(job_id)
        lock = acquire_job(self.data_dir, job_id)
        if lock is None:
            raise Conflict(f"Job {job.name} (id {job_id}) is running: it is not started twice "
                           "(CancelJobAsync stops it).")
        run = _Run(job, lock, self.jobs.start_result(job, "manual", self.now()))
        try:
            loop.call_soon_threadsafe(self._launch, run)
        except RuntimeError:  # the loop is closed: the server is stopping
            self.jobs.finish_result(run.result_id, "failed", "The server is stopping.",
                                    self.now())
            lock.release()
            raise Conflict("The server is stopping.") from None
        return run.result_id

    def cancel(self, job_id: int) -> None:
        """CancelJobAsync: ask the running job to stop (from any thread). Through the database
        for a run in any process, and through the engine for a run in this one."""
        job = self.jobs.get(job_id)
        if not is_running(self.data_dir, job_id):
            raise Conflict(f"Job {job.name} (id {job_id}) is not running.")
        self.jobs.request_cancel(job_id)
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
        try:
            name = parse_action(run.job.action)[0].name  # the process is named by its function
        except MailkeepError:
            name = "RunJob"  # execute() records why it cannot run

        def others(own: str) -> Callable[[], list[ProcessInfo]]:
            return lambda: [p for p in self.engine.running() if p.token != own]

        def work(ctx: Context) -> Any:
            with run.guard:
                if run.started:
                    return None
                run.started = True
                run.token = ctx.token
            return execute(self.data_dir, run.job, run.lock, run.result_id, ctx, now=self.now,
                           others=others(ctx.token))

        try:
            snap = await self.engine.invoke(name, work, run.job.owner)
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
                stopping = running_scheduler(self.data_dir) is not self
                await asyncio.to_thread(self._never_ran, run, stopping)
            with self._lock:
                if self._runs.get(run.job.id) is run:
                    del self._runs[run.job.id]

    def _never_ran(self, run: _Run, stopping: bool) -> None:
        outcome = "cancelled" if stopping or self.jobs.cancel_requested(run.job.id) else "failed"
        why = "The server stopped before the run began." if stopping else (
            None if outcome == "cancelled" else "The process engine did not run the job.")
        try:
            self.jobs.finish_result(run.result_id, outcome, why, self.now())
        finally:
            run.lock.release()

    async def wait_idle(self) -> None:
        """Until the runs started so far have ended (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)
