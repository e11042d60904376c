"""One run of a scheduled job: it runs only while its process holds the job's lock
(`<data_dir>/locks/job-<id>.lock`, so never twice at once, not even across processes), it is
recorded in job_results (started, then how it ended), it can be cancelled from any process
(CancelJobAsync marks it in the database), and its action is run by `run_action`, which the
catalog layer gives: it calls the action's function as the job's owner, through the one
invoke path (rights checked at each run, audited as job:<name>)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailkeep.core.admin.locks import RunLock, held, lock_file
from mailkeep.core.admin.users import Users
from mailkeep.core.errors import Cancelled, Conflict, InvalidArgument, NotFound
from mailkeep.core.masterdb import Job, MasterDB
from mailkeep.core.masterdb.jobs import INTERRUPTED
from mailkeep.jobs.engine import describe
from mailkeep.jobs.process import Progress

log = logging.getLogger("mailkeep.jobs")

RunAction = Callable[[Job, Progress], Any]  # runs job.action as job.owner
NAME_RE = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
CANCEL_POLL_S = 0.5  # how often a run looks at the database for CancelJobAsync from elsewhere


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name) or name != name.strip():
        raise InvalidArgument(f"Invalid job name '{name}': 1 to 100 characters, no control "
                              "characters, no surrounding spaces.")
    return name


def check_owner(master: MasterDB, owner: str) -> str:
    """The owner's user name as stored, or NotFound."""
    account = Users(master).account(owner)
    if account is None:
        raise NotFound(f"User '{owner}' does not exist: a job's owner must be a user "
                       "(GetUsers lists them).")
    return account.user_name


def get(master: MasterDB, job_id: int) -> Job:
    job = master.jobs.get(job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist (GetJobs lists the jobs).")
    return job


# -- the lock ---------------------------------------------------------------------------------
def lock_path(data_dir: Path, job_id: int) -> Path:
    return lock_file(data_dir, f"job-{job_id}")


def acquire(data_dir: Path, job_id: int) -> RunLock | None:
    """The job's lock, or None when it is held (the job is running)."""
    return RunLock.acquire(lock_path(data_dir, job_id))


def is_running(data_dir: Path, job_id: int) -> bool:
    """Whether some process holds the job's lock."""
    return held(lock_path(data_dir, job_id))


def recover_interrupted(master: MasterDB, data_dir: Path, now: float) -> int:
    """Runs left without an outcome by a process that ended (their lock is free): failed."""
    count = 0
    for result_id, job_id in master.jobs.unfinished():
        if not is_running(data_dir, job_id):
            master.jobs.finish_result(result_id, "failed", INTERRUPTED, now)
            count += 1
    return count


# -- one run ----------------------------------------------------------------------------------
class JobContext:
    """The context a job's function sees: progress and log passed on, and cancelled by its
    process (cancel-async) or by CancelJobAsync from any process."""

    def __init__(self, inner: Progress, cancelled: Callable[[], bool]) -> None:
        self._inner = inner
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


def execute(master: MasterDB, job: Job, lock: RunLock, result_id: int, ctx: Progress,
            run_action: RunAction, now: Callable[[], float] = time.time) -> Any:
    """Run the job's action, record the outcome in job_results, release the lock. The
    action's result is returned and its exception raised again after recording."""
    outcome, error = "failed", None
    try:
        jctx = JobContext(ctx, lambda: master.jobs.cancel_requested(job.id))
        if master.jobs.cancel_requested(job.id):
            raise Cancelled()
        result = run_action(job, jctx)
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
            master.jobs.finish_result(result_id, outcome, error, now())
        finally:
            lock.release()
        log.info("job %s (%d) %s%s", job.name, job.id, outcome, f": {error}" if error else "")


def run_now(master: MasterDB, data_dir: Path, job_id: int, ctx: Progress,
            run_action: RunAction, now: Callable[[], float] = time.time) -> dict[str, Any]:
    """RunJobAsync without a server in this process (the CLI): run the job here and now, with
    its lock; answer how it ended."""
    job = get(master, job_id)
    lock = acquire(data_dir, job_id)
    if lock is None:
        raise Conflict(f"Job {job.name} (id {job_id}) is running.")
    result_id = master.jobs.start_result(job, "manual", now())
    try:
        execute(master, job, lock, result_id, ctx, run_action, now)
    except Cancelled:
        return {"resultId": result_id, "result": "cancelled", "error": None}
    except Exception as exc:
        return {"resultId": result_id, "result": "failed", "error": describe(exc)[0]}
    return {"resultId": result_id, "result": "succeeded", "error": None}
