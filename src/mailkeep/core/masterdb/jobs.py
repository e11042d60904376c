"""Scheduled jobs and their runs as stored (jobs/ has the rules and the running)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mailkeep.core.masterdb.base import Repository

INTERRUPTED = "Interrupted: the process running the job ended before the run did."


@dataclass(frozen=True)
class Schedule:
    """A validated schedule, in its stored (normalized) form (jobs/schedule.py has the rules)."""

    type: str  # once | interval | daily | weekly | monthly | manual
    date: str | None = None  # YYYY-MM-DD (once)
    interval: int | None = None  # minutes (interval)
    time: str | None = None  # HH:MM:SS (once, daily, weekly, monthly)
    day_of_week: str | None = None  # "Monday,Friday", in week order from Sunday (weekly)
    day_of_month: str | None = None  # "1".."31" or "Last" (monthly)

    def shown(self) -> dict[str, object]:
        return {"type": self.type, "date": self.date, "interval": self.interval,
                "time": self.time, "dayOfWeek": self.day_of_week,
                "dayOfMonth": self.day_of_month}


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
_RESULT_KEYS = ("id", "jobId", "jobName", "action", "owner", "started", "completed", "result",
                "error", "trigger")


def _job(row: tuple[Any, ...]) -> Job:
    return Job(row[0], row[1], row[2], row[3], row[4],
                  Schedule(row[5], row[6], row[7], row[8], row[9], row[10]), bool(row[11]),
                  row[12])


class JobRows(Repository):
    # -- jobs ---------------------------------------------------------------------------------
    def get(self, job_id: int) -> Job | None:
        row = self.conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?",
                                (job_id,)).fetchone()
        return None if row is None else _job(row)

    def all(self) -> list[Job]:
        return [_job(r) for r in self.conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY id")]

    def create(self, name: str, action: str, owner: str, tz_id: str, s: Schedule,
               next_at: float | None) -> int:
        cur = self.conn.execute(
            "INSERT INTO jobs (name, action, owner, time_zone, type, date, interval, time, "
            "day_of_week, day_of_month, enabled, next_run, created_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,1,?,?) RETURNING id",
            (name, action, owner, tz_id, s.type, s.date, s.interval, s.time, s.day_of_week,
             s.day_of_month, next_at, int(time.time())))
        return int(cur.fetchone()[0])

    def update(self, job_id: int, **columns: Any) -> bool:
        """Change columns of a job; False when there is no such job."""
        names = ", ".join(f"{c} = ?" for c in columns)
        cur = self.conn.execute(f"UPDATE jobs SET {names} WHERE id = ?",
                                (*columns.values(), job_id))
        return cur.rowcount == 1

    def set_schedule(self, job_id: int, tz_id: str, s: Schedule,
                     next_at: float | None) -> bool:
        return self.update(job_id, time_zone=tz_id, type=s.type, date=s.date,
                           interval=s.interval, time=s.time, day_of_week=s.day_of_week,
                           day_of_month=s.day_of_month, next_run=next_at)

    def delete(self, job_id: int) -> bool:
        return self.conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1

    def due(self, now: float) -> list[Job]:
        return [_job(r) for r in self.conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE enabled = 1 AND next_run IS NOT NULL "
            "AND next_run <= ? ORDER BY next_run, id", (now,))]

    def next_due(self) -> float | None:
        row = self.conn.execute("SELECT MIN(next_run) FROM jobs WHERE enabled = 1").fetchone()
        return row[0] if row else None

    def claim(self, job: Job, next_at: float | None) -> bool:
        """Move a due job's next run on; False if someone else (another process) did."""
        cur = self.conn.execute(
            "UPDATE jobs SET next_run = ? WHERE id = ? AND next_run = ? AND enabled = 1",
            (next_at, job.id, job.next_run))
        return cur.rowcount == 1

    def request_cancel(self, job_id: int) -> None:
        self.conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))

    def cancel_requested(self, job_id: int) -> bool:
        row = self.conn.execute("SELECT cancel_requested FROM jobs WHERE id = ?",
                                (job_id,)).fetchone()
        return bool(row and row[0])

    # -- results ------------------------------------------------------------------------------
    def start_result(self, job: Job, trigger: str, now: float) -> int:
        """A run begins (its lock is held): a result without outcome. Another run of the job
        still without one was left by a process that ended: failed."""
        with self.tx() as conn:
            conn.execute("UPDATE jobs SET cancel_requested = 0 WHERE id = ?", (job.id,))
            conn.execute("UPDATE job_results SET result = 'failed', completed = ?, error = ? "
                         "WHERE job_id = ? AND result IS NULL", (now, INTERRUPTED, job.id))
            cur = conn.execute(
                "INSERT INTO job_results (job_id, job_name, action, owner, trigger, started) "
                "VALUES (?,?,?,?,?,?) RETURNING id",
                (job.id, job.name, job.action, job.owner, trigger, now))
            return int(cur.fetchone()[0])

    def finish_result(self, result_id: int, outcome: str, error: str | None,
                      now: float) -> None:
        with self.tx() as conn:
            conn.execute("UPDATE job_results SET result = ?, error = ?, completed = ? "
                         "WHERE id = ? AND result IS NULL", (outcome, error, now, result_id))
            conn.execute("UPDATE jobs SET cancel_requested = 0 WHERE id = "
                         "(SELECT job_id FROM job_results WHERE id = ?)", (result_id,))

    def skipped(self, job: Job, trigger: str, now: float, why: str) -> int:
        cur = self.conn.execute(
            "INSERT INTO job_results (job_id, job_name, action, owner, trigger, started, "
            "completed, result, error) VALUES (?,?,?,?,?,?,?,'skipped',?) RETURNING id",
            (job.id, job.name, job.action, job.owner, trigger, now, now, why))
        return int(cur.fetchone()[0])

    def results(self, start: float, end: float, job_id: int | None) -> list[dict[str, Any]]:
        sql = ("SELECT id, job_id, job_name, action, owner, started, completed, result, error, "
               "trigger FROM job_results WHERE started >= ? AND started < ?")
        params: list[Any] = [start, end]
        if job_id is not None:
            sql += " AND job_id = ?"
            params.append(job_id)
        rows = self.conn.execute(sql + " ORDER BY started, id", params).fetchall()
        return [dict(zip(_RESULT_KEYS, r, strict=True)) for r in rows]

    def last_results(self) -> dict[int, dict[str, Any]]:
        """Each job's latest finished run: {job id: {resultId, started, completed, result}}."""
        rows = self.conn.execute(
            "SELECT r.job_id, r.id, r.started, r.completed, r.result FROM job_results r "
            "WHERE r.id = (SELECT id FROM job_results WHERE job_id = r.job_id AND result "
            "IS NOT NULL ORDER BY started DESC, id DESC LIMIT 1)").fetchall()
        return {r[0]: {"resultId": r[1], "started": r[2], "completed": r[3], "result": r[4]}
                for r in rows}

    def unfinished(self) -> list[tuple[int, int]]:
        """(result id, job id) of the runs without an outcome."""
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT id, job_id FROM job_results WHERE result IS NULL")]
