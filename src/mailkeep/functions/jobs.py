"""Job functions: scheduled runs of catalog functions (GetJobs, CreateJob, ..., GetJobResults).

The rows are core.masterdb's, the lock and the runs jobs.runs', the schedule rules jobs.schedule's.
This module declares the original's arguments, checks them and reaches the scheduler of the
server this runs in (RunJobAsync, CancelJobAsync, and a wake-up after every change).
"""

from __future__ import annotations

from typing import Any

from mailkeep.core.admin.users import ROLES
from mailkeep.core.admin.zones import canonical, zone
from mailkeep.core.errors import Conflict, InvalidArgument
from mailkeep.core.fields import Field
from mailkeep.core.masterdb import Job
from mailkeep.functions.actions import job_runner, parse_action, shown_action
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function
from mailkeep.jobs import runs
from mailkeep.jobs.schedule import (
    DAYS,
    INTERVALS,
    Schedule,
    compute_next,
    parse,
    parse_local,
    shown_time,
    to_utc,
)

ID = Field("id", "number", description="The job's id (GetJobs).")
ZONE_TEXT = ("$Local (the server's zone), an IANA id such as Europe/Berlin, or a Windows id "
             "such as W. Europe Standard Time.")

SCHEDULE_RULES = (
    "Schedule: no schedule argument at all = manual (runs only on RunJobAsync); date "
    "(YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SS; the time may be given in time instead; default "
    "00:00) = once; interval = every N minutes on the zone's wall clock, counted from midnight "
    "(15: at :00, :15, :30, :45); time alone = daily; time + dayOfWeek = weekly on those days; "
    "time + dayOfMonth = monthly on that day (Last: the month's last day; a day the month does "
    "not have, e.g. 31 in April: its last day). Any other combination is refused and changes "
    "nothing; so is a run once in the past. Times are wall-clock times in timeZoneId: a time "
    "skipped by the start of daylight saving time runs at the first valid instant after the "
    "gap (02:30 -> 03:00), a time repeated at its end runs once, at the first occurrence "
    "(interval runs run at both). A run the server missed (it was not running) is made up "
    "once when the server is back. A due job that is still running is not started twice: "
    "that run is recorded as skipped.")

JOB_SHAPE = (
    '{"id": int, "name": str, "action": str, "owner": str, "timeZoneId": str, '
    '"schedule": {"type": "once|interval|daily|weekly|monthly|manual", "date": str|null, '
    '"interval": int|null, "time": str|null, "dayOfWeek": str|null, "dayOfMonth": str|null}, '
    '"enabled": bool, "nextRun": str|null, "lastRun": {"resultId": int, "startTime": str, '
    '"completeTime": str, "result": "succeeded|failed|cancelled|skipped"}|null, '
    '"running": bool}')
JOB_TEXT = (
    "A job: schedule.date is YYYY-MM-DD and schedule.time HH:MM:SS (normalized); nextRun is "
    "the next scheduled start in the job's zone, ISO 8601 with offset (e.g. "
    "2026-01-31T02:00:00+01:00), null when disabled, manual or a run once that is done; "
    "lastRun is the latest finished run (times in the job's zone), null if none; running: "
    "a run holds the job's lock now (in any process).")
RESULT_SHAPE = (
    '[{"id": int, "jobId": int, "jobName": str, "action": str, "owner": str, "startTime": str, '
    '"completeTime": str|null, "result": "succeeded|failed|cancelled|skipped|running", '
    '"error": str|null, "trigger": "schedule|manual"}]')


def _schedule_args() -> tuple[Field, ...]:
    return (
        Field("date", "string", True, "Run once: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (no zone "
            "suffix; the zone is timeZoneId)."),
        Field("interval", "number", True, "Run every N minutes from midnight: one of "
            f"{', '.join(map(str, INTERVALS))}."),
        Field("time", "string", True, "HH:MM or HH:MM:SS: daily, or with dayOfWeek/dayOfMonth "
            "weekly/monthly, or the time of a run once."),
        Field("dayOfWeek", "string", True, f"With time: weekly on {', '.join(DAYS)}; several "
            "separated by commas."),
        Field("dayOfMonth", "string", True, "With time: monthly on 1 to 31 or Last."),
    )


def _now(call: Call) -> float:
    return call.services.now()


def _wake(call: Call) -> None:
    if call.services.scheduler is not None:
        call.services.scheduler.changed()


def _whole(value: Any, name: str) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidArgument(f"Invalid value for API argument {name}: a whole number is "
                                  "expected.")
        value = int(value)
    if not -(2**63) <= value < 2**63:
        raise InvalidArgument(f"Invalid value for API argument {name}: out of range.")
    return int(value)


def _id(call: Call) -> int:
    return _whole(call.arg("id"), "id")


def _schedule(call: Call) -> Schedule:
    return parse(call.arg("date"), call.arg("interval"), call.arg("time"),
                 call.arg("dayOfWeek"), call.arg("dayOfMonth"))


def _next(schedule: Schedule, tz_id: str, now: float) -> float | None:
    at = compute_next(schedule, tz_id, now)
    if at is None and schedule.type == "once":
        raise InvalidArgument(f"The run once at {schedule.date}T{schedule.time} ({tz_id}) lies "
                              "in the past.")
    return at


def _shown(call: Call, job: Job, last: dict[int, dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    if last is None:
        last = call.master.jobs.last_results()
    run = last.get(job.id)
    tz = job.time_zone
    return {
        "id": job.id, "name": job.name, "action": job.action, "owner": job.owner,
        "timeZoneId": tz, "schedule": job.schedule.shown(), "enabled": job.enabled,
        "nextRun": shown_time(job.next_run, tz) if job.enabled else None,
        "lastRun": None if run is None else {
            "resultId": run["resultId"], "startTime": shown_time(run["started"], tz),
            "completeTime": shown_time(run["completed"], tz), "result": run["result"]},
        "running": runs.is_running(call.data_dir, job.id),
    }


@function("GetJobs", f"All jobs, by id. {JOB_TEXT}", f"[{JOB_SHAPE}]", changes=False, roles=ROLES)
def get_jobs(call: Call) -> list[dict[str, Any]]:
    last = call.master.jobs.last_results()
    return [_shown(call, job, last) for job in call.master.jobs.all()]


@function("CreateJob", "Create an enabled job that runs action, a catalog function call as "
          "`mailkeep call` takes it: `FunctionName name=value name2=\"value with spaces\"` "
          "(shell quoting; --name=value too), e.g. VerifyStores or RunProfile id=3. The "
          "function and its arguments are checked now; functions that manage jobs and secret "
          "arguments (passwords) are refused. The job runs as owner (an existing user; the "
          "process is that user's) and is audited as job:<name>. " + SCHEDULE_RULES +
          f" Answers the new job. {JOB_TEXT}", JOB_SHAPE,
          Field("name", "string", description="The job's name (1-100 characters)."),
          Field("action", "string", description="The function call, e.g. VerifyStores.",
                mask=shown_action),
          Field("owner", "string", description="The user the job runs as."),
          Field("timeZoneId", "string", description=f"The schedule's zone: {ZONE_TEXT}"),
          *_schedule_args())
def create_job(call: Call) -> dict[str, Any]:
    name = runs.check_name(call.arg("name"))
    action = call.arg("action")
    parse_action(action)
    tz_id = canonical(call.arg("timeZoneId"))
    schedule = _schedule(call)
    owner = runs.check_owner(call.master, call.arg("owner"))
    job_id = call.master.jobs.create(name, action, owner, tz_id, schedule,
                                     _next(schedule, tz_id, _now(call)))
    _wake(call)
    return _shown(call, runs.get(call.master, job_id))


@function("RenameJob", f"Rename a job. Answers the job. {JOB_TEXT}", JOB_SHAPE, ID,
          Field("name", "string", description="The new name (1-100 characters)."))
def rename_job(call: Call) -> dict[str, Any]:
    name = runs.check_name(call.arg("name"))
    job = runs.get(call.master, _id(call))
    call.master.jobs.update(job.id, name=name)
    call.note(before=job.name)
    return _shown(call, runs.get(call.master, job.id))


@function("SetJobEnabled", "Enable or disable a job. A disabled job has no next run and is "
          "not started by its schedule (RunJobAsync still runs it); enabling checks the action "
          "and the owner again and schedules the next run from now (a missed run is not made "
          f"up). Answers the job. {JOB_TEXT}", JOB_SHAPE, ID,
          Field("enabled", "bool", description="true: runs on its schedule; false: only on "
              "demand."))
def set_job_enabled(call: Call) -> dict[str, Any]:
    job = runs.get(call.master, _id(call))
    enabled = bool(call.arg("enabled"))
    next_at = None
    if enabled and job.enabled:  # already enabled: the next run stays
        next_at = job.next_run
    elif enabled:
        parse_action(job.action)
        runs.check_owner(call.master, job.owner)
        next_at = compute_next(job.schedule, job.time_zone, _now(call))
    call.master.jobs.update(job.id, enabled=int(enabled), next_run=next_at)
    _wake(call)
    return _shown(call, runs.get(call.master, job.id))


@function("SetJobSchedule", "Replace a job's schedule and zone (schedule arguments left out "
          "are not part of the new schedule; none at all: manual). The action and the owner "
          f"are checked again. {SCHEDULE_RULES} Answers the job. {JOB_TEXT}", JOB_SHAPE, ID,
          Field("timeZoneId", "string", description=f"The schedule's zone: {ZONE_TEXT}"),
          *_schedule_args())
def set_job_schedule(call: Call) -> dict[str, Any]:
    job = runs.get(call.master, _id(call))
    tz_id = canonical(call.arg("timeZoneId"))
    schedule = _schedule(call)
    parse_action(job.action)
    runs.check_owner(call.master, job.owner)
    next_at = _next(schedule, tz_id, _now(call))
    if not job.enabled:
        next_at = None
    call.master.jobs.set_schedule(job.id, tz_id, schedule, next_at)
    call.note(before={"timeZoneId": job.time_zone, "schedule": job.schedule.shown()})
    _wake(call)
    return _shown(call, runs.get(call.master, job.id))


RUN_SHAPE = ('{"resultId": int, "result": "running|succeeded|failed|cancelled", '
             '"error": str|null}')


@function("RunJobAsync", "Start a job now, enabled or not (trigger manual in its results). "
          "Through the server: the server's scheduler starts it in its process engine and this "
          "answers at once with result running; follow it with GetJobs (running) or "
          "GetJobResults (resultId). In-process from the CLI (no server in that process): the "
          "job runs here and now, and this answers how it ended. Either way it runs as its "
          "owner, holding the job's lock: a running job (in any process) is not started twice "
          "(a conflict error).", RUN_SHAPE, ID)
def run_job_async(call: Call) -> dict[str, Any]:
    job_id = _id(call)
    scheduler = call.services.scheduler
    if scheduler is not None:
        return {"resultId": scheduler.request_run(job_id), "result": "running", "error": None}
    return runs.run_now(call.master, call.data_dir, job_id, call.ctx,
                        job_runner(call.invoker), call.services.now)


@function("CancelJobAsync", "Ask a running job to stop (in whichever process runs it); it ends "
          "as cancelled at its function's next safe point (GetJobResults shows it). A job "
          "that is not running is a conflict error.", "null", ID)
def cancel_job_async(call: Call) -> None:
    job_id = _id(call)
    scheduler = call.services.scheduler
    if scheduler is not None:
        scheduler.cancel(job_id)
        return
    job = runs.get(call.master, job_id)
    if not runs.is_running(call.data_dir, job_id):
        raise Conflict(f"Job {job.name} (id {job_id}) is not running.")
    call.master.jobs.request_cancel(job_id)


@function("DeleteJob", "Delete a job; its results stay (GetJobResults). A running job cannot "
          "be deleted (CancelJobAsync first).", "null", ID)
def delete_job(call: Call) -> None:
    job_id = _id(call)
    job = runs.get(call.master, job_id)
    lock = runs.acquire(call.data_dir, job_id)
    if lock is None:
        raise Conflict(f"Job {job.name} (id {job_id}) is running: cancel it first.")
    try:
        call.master.jobs.delete(job_id)
        runs.lock_path(call.data_dir, job_id).unlink(missing_ok=True)
    finally:
        lock.release()
    call.note(name=job.name, action=job.action, owner=job.owner)
    _wake(call)


@function("GetJobResults", "The runs of all jobs (or of jobId) that started in "
          "[fromIncluding, toExcluding), oldest first, times in timeZoneId (ISO 8601 with "
          "offset). fromIncluding and toExcluding are YYYY-MM-DDTHH:MM:SS (or YYYY-MM-DD) in "
          "timeZoneId. result: succeeded, failed (error says why), cancelled, skipped (the job "
          "was still running when its schedule was due), or running (completeTime null). "
          "trigger: schedule or manual (RunJobAsync). Results of deleted jobs are kept.",
          RESULT_SHAPE,
          Field("fromIncluding", "string", description="Start of the period, e.g. "
              "2026-01-31T00:00:00."),
          Field("toExcluding", "string", description="End of the period (excluded)."),
          Field("timeZoneId", "string", description=f"The zone of the times: {ZONE_TEXT}"),
          Field("jobId", "number", True, "Only this job's runs; empty: all jobs."),
          changes=False, roles=ROLES)
def get_job_results(call: Call) -> list[dict[str, Any]]:
    tz_id = canonical(call.arg("timeZoneId"))
    tz = zone(tz_id)
    start = to_utc(parse_local(call.arg("fromIncluding"), "fromIncluding"), tz).timestamp()
    end = to_utc(parse_local(call.arg("toExcluding"), "toExcluding"), tz).timestamp()
    job_id = call.arg("jobId")
    rows = call.master.jobs.results(start, end,
                                    None if job_id is None else _whole(job_id, "jobId"))
    out = []
    for row in rows:
        started, completed = row.pop("started"), row.pop("completed")
        out.append({**{k: row[k] for k in ("id", "jobId", "jobName", "action", "owner")},
                    "startTime": shown_time(started, tz_id),
                    "completeTime": shown_time(completed, tz_id),
                    "result": row["result"] or "running", "error": row["error"],
                    "trigger": row["trigger"]})
    return out

