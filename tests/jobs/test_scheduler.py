"""The scheduler on a real data directory: due runs through the real engine, results, restarts,
the job lock (held by the test, as another process would), cancel, and interrupted runs.
The scheduler's clock is the test's; nothing here waits on wall-clock time to assert."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailkeep.core.errors import Conflict
from mailkeep.core.masterdb import MasterDB
from mailkeep.functions import REGISTRY
from mailkeep.functions.actions import job_runner
from mailkeep.functions.call import Call, Caller, Services
from mailkeep.functions.invoke import Invoker
from mailkeep.functions.registry import function
from mailkeep.jobs import Engine, FinishedRecord
from mailkeep.jobs.runs import lock_path
from mailkeep.jobs.schedule import parse
from mailkeep.jobs.scheduler import Scheduler
from tests.apiclient import archive_with_messages, fast_users
from tests.helpers import CHEAP, call_function

VERIFY = "VerifyStores includeIndexes=false"


class Clock:
    """The scheduler's now(): set by the test."""

    def __init__(self, iso: str) -> None:
        self.t = 0.0
        self.set(iso)

    def set(self, iso: str) -> None:
        self.t = datetime.fromisoformat(iso).astimezone(UTC).timestamp()

    def __call__(self) -> float:
        return self.t


def call(data: Path, name: str, /, **form: str) -> Any:
    """A catalog function in-process: through the test's server on `data` if it made one (its
    clock; RunJobAsync reaches its scheduler), else without a server, as `mailkeep call`."""
    servers = [s for s in SERVERS.values() if s.data == data.resolve()]
    if servers:
        return servers[-1].call(name, **form)
    return call_function(data, name, **form)


def results(data: Path, job_id: int | None = None) -> list[dict[str, Any]]:
    form = {"fromIncluding": "2000-01-01", "toExcluding": "2100-01-01", "timeZoneId": "UTC"}
    if job_id is not None:
        form["jobId"] = str(job_id)
    out: list[dict[str, Any]] = call(data, "GetJobResults", **form)
    return out


def job(data: Path, job_id: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = [j for j in call(data, "GetJobs") if j["id"] == job_id]
    assert found
    return found[0]


def audit_actions(data: Path, actor: str) -> list[str]:
    master = MasterDB.of(data)
    try:
        return [r[0] for r in master.conn.execute(
            "SELECT action FROM audit WHERE actor = ? ORDER BY id", (actor,))]
    finally:
        master.close()


class HeldLock:
    """The job's lock held as another process would hold it: a real flock on its own open
    file description."""

    def __init__(self, data: Path, job_id: int) -> None:
        path = lock_path(data.resolve(), job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class Waiter:
    """A catalog function registered for these tests only: it runs until released, stopping
    at its safe points when cancelled."""

    NAME = "JobTestWait"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def run(self, call: Call) -> None:
        self.started.set()
        while not self.release.is_set():
            call.ctx.check_cancelled()
            self.release.wait(0.01)


@pytest.fixture
def waiter() -> Iterator[Waiter]:
    w = Waiter()
    function(Waiter.NAME, "Test only: waits until released.", "null", changes=False)(w.run)
    try:
        yield w
    finally:
        w.release.set()
        REGISTRY.functions.pop(Waiter.NAME, None)


def data_dir(tmp_path: Path) -> Path:
    data = archive_with_messages(tmp_path / "data", tmp_path / "mail", 3)
    users = fast_users(data)
    users.ensure_initial_admin()
    users.master.close()
    return data


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return data_dir(tmp_path)


class Records:
    def __init__(self) -> None:
        self.items: list[FinishedRecord] = []

    def __call__(self, rec: FinishedRecord) -> None:
        self.items.append(rec)


@pytest.fixture
async def schedulers(data: Path) -> AsyncIterator[list[Scheduler]]:
    """Schedulers made by the test; each is stopped at the end."""
    made: list[Scheduler] = []
    yield made
    for s in made:
        await SERVERS.pop(id(s)).stop()


class Server:
    """What `mailkeep serve` builds around its scheduler (see web/app.py): the master database,
    an engine, the services and the invoker the jobs' actions run through."""

    def __init__(self, data: Path, clock: Clock, records: Records | None) -> None:
        self.data = data.resolve()
        self.master = MasterDB.of(self.data)
        engine = Engine(grace_ms=20, default_wait_ms=300, max_wait_ms=3000,
                        on_finished=records)
        self.services = Services(data.resolve(), self.master, engine=engine, hasher=CHEAP)
        self.invoker = Invoker(self.services)
        self.scheduler = Scheduler(data, self.master, engine, job_runner(self.invoker),
                                   now=clock)
        self.services.scheduler = self.scheduler

    def call(self, name: str, /, **form: str) -> Any:
        """A function as the server's API runs it (RunJobAsync reaches this scheduler)."""
        return self.invoker.call(name, Caller("admin", "api"), form=form)

    async def stop(self) -> None:
        await self.scheduler.stop()
        self.services.close()
        self.master.close()


SERVERS: dict[int, Server] = {}


def make(data: Path, made: list[Scheduler], clock: Clock,
         records: Records | None = None) -> Scheduler:
    server = Server(data, clock, records)
    SERVERS[id(server.scheduler)] = server
    made.append(server.scheduler)
    return server.scheduler


async def test_a_due_job_runs_is_recorded_and_rescheduled(
        data: Path, schedulers: list[Scheduler]) -> None:
    clock = Clock("2026-01-15T12:00:00+00:00")
    records = Records()
    s = make(data, schedulers, clock, records)
    await s.start(background=False)
    created = call(data, "CreateJob", name="nightly", action=VERIFY, owner="admin",
                   timeZoneId="Europe/Berlin", time="02:00")
    assert created["nextRun"] == "2026-01-16T02:00:00+01:00"
    assert await s.run_due() == []  # not yet
    clock.set("2026-01-16T01:00:05+00:00")
    [rid] = await s.run_due()
    await s.wait_idle()
    [res] = results(data)
    assert res["id"] == rid and res["result"] == "succeeded" and res["trigger"] == "schedule"
    assert res["startTime"] == "2026-01-16T01:00:05+00:00" and res["error"] is None
    shown = job(data, created["id"])
    assert shown["nextRun"] == "2026-01-17T02:00:00+01:00" and not shown["running"]
    assert shown["lastRun"] == {"resultId": rid, "startTime": "2026-01-16T02:00:05+01:00",
                                "completeTime": "2026-01-16T02:00:05+01:00",
                                "result": "succeeded"}
    assert await s.run_due() == []  # the same due time never runs twice
    # the engine ran it as the owner; the audit log names the job
    assert [(r.name, r.user, r.outcome) for r in records.items] == [
        ("VerifyStores", "admin", "succeeded")]
    assert audit_actions(data, "job:nightly") == ["VerifyStores"]


async def test_failures_are_recorded(data: Path, schedulers: list[Scheduler]) -> None:
    clock = Clock("2026-01-15T12:00:00+00:00")
    s = make(data, schedulers, clock)
    await s.start(background=False)
    users = fast_users(data)
    users.create("bob", ["admin"], password="x-Secret-1")
    bad_store = call(data, "CreateJob", name="one store", action="VerifyStore id=999 "
                     "includeIndexes=true", owner="admin", timeZoneId="UTC", interval="60")
    gone = call(data, "CreateJob", name="bob's", action="GetStores", owner="bob",
                timeZoneId="UTC", interval="60")
    users.delete("bob")
    users.master.close()
    clock.set("2026-01-15T13:00:00+00:00")
    assert len(await s.run_due()) == 2
    await s.wait_idle()
    by_job = {r["jobId"]: r for r in results(data)}
    assert by_job[bad_store["id"]]["result"] == "failed"
    assert "999" in by_job[bad_store["id"]]["error"]
    assert by_job[gone["id"]]["result"] == "failed"
    assert "owner bob" in by_job[gone["id"]]["error"]


async def test_jobs_and_next_runs_survive_a_restart(
        data: Path, schedulers: list[Scheduler]) -> None:
    clock = Clock("2026-01-15T12:07:00+00:00")
    first = make(data, schedulers, clock)
    await first.start(background=False)
    created = call(data, "CreateJob", name="quarter", action="GetStores", owner="admin",
                   timeZoneId="W. Europe Standard Time", interval="15")
    assert created["nextRun"] == "2026-01-15T13:15:00+01:00"
    clock.set("2026-01-15T12:15:00+00:00")
    assert len(await first.run_due()) == 1
    await first.wait_idle()
    await first.stop()

    second = make(data, schedulers, clock)  # a new process on the same data directory
    shown = job(data, created["id"])
    assert shown["nextRun"] == "2026-01-15T13:30:00+01:00"
    await second.start(background=False)
    clock.set("2026-01-15T12:30:00+00:00")
    assert len(await second.run_due()) == 1
    await second.wait_idle()  # that run has ended (still running, the next would be skipped)
    # down for three days: the missed runs are made up once, then the schedule goes on
    clock.set("2026-01-18T09:01:00+00:00")
    assert len(await second.run_due()) == 1
    assert await second.run_due() == []
    await second.wait_idle()
    assert job(data, created["id"])["nextRun"] == "2026-01-18T10:15:00+01:00"
    assert [r["result"] for r in results(data)] == ["succeeded"] * 3


async def test_a_running_job_is_not_started_twice(
        data: Path, schedulers: list[Scheduler]) -> None:
    clock = Clock("2026-01-15T12:00:00+00:00")
    s = make(data, schedulers, clock)
    await s.start(background=False)
    created = call(data, "CreateJob", name="verify", action=VERIFY, owner="admin",
                   timeZoneId="UTC", interval="5")
    held = HeldLock(data, created["id"])  # "running in another process"
    try:
        assert job(data, created["id"])["running"] is True
        clock.set("2026-01-15T12:05:00+00:00")
        [rid] = await s.run_due()
        [res] = results(data)
        assert res["id"] == rid and res["result"] == "skipped"
        assert "still running" in res["error"]
        with pytest.raises(Conflict, match="is running"):
            s.request_run(created["id"])
        with pytest.raises(Conflict, match="is running"):
            call(data, "DeleteJob", id=str(created["id"]))
        assert job(data, created["id"])["nextRun"] == "2026-01-15T12:10:00+00:00"
    finally:
        held.release()
    assert job(data, created["id"])["running"] is False
    clock.set("2026-01-15T12:10:00+00:00")
    await s.run_due()
    await s.wait_idle()
    assert [r["result"] for r in results(data)] == ["skipped", "succeeded"]


async def test_run_and_cancel_through_the_scheduler(
        data: Path, schedulers: list[Scheduler], waiter: Waiter) -> None:
    clock = Clock("2026-01-15T12:00:00+00:00")
    s = make(data, schedulers, clock)
    await s.start(background=False)
    created = call(data, "CreateJob", name="wait", action=Waiter.NAME, owner="admin",
                   timeZoneId="UTC")
    assert created["schedule"]["type"] == "manual" and created["nextRun"] is None
    with pytest.raises(Conflict, match="not running"):
        s.cancel(created["id"])
    # RunJobAsync, as a function worker thread calls it
    rid = await asyncio.to_thread(call, data, "RunJobAsync", id=str(created["id"]))
    assert rid["result"] == "running"
    assert await asyncio.to_thread(waiter.started.wait, 30)
    assert job(data, created["id"])["running"] is True
    with pytest.raises(Conflict):
        await asyncio.to_thread(call, data, "RunJobAsync", id=str(created["id"]))
    await asyncio.to_thread(call, data, "CancelJobAsync", id=str(created["id"]))
    await s.wait_idle()
    [res] = results(data)
    assert res["id"] == rid["resultId"] and res["result"] == "cancelled"
    assert res["trigger"] == "manual"
    assert job(data, created["id"])["running"] is False


def test_cancel_reaches_a_run_in_another_process(data: Path, waiter: Waiter) -> None:
    """No scheduler here: RunJobAsync runs in the calling thread (the CLI's way); CancelJobAsync
    from elsewhere reaches it through the database."""
    created = call(data, "CreateJob", name="wait", action=Waiter.NAME, owner="admin",
                   timeZoneId="UTC")
    outcome: list[dict[str, Any]] = []
    runner = threading.Thread(target=lambda: outcome.append(
        call(data, "RunJobAsync", id=str(created["id"]))))
    runner.start()
    try:
        assert waiter.started.wait(30)
        with pytest.raises(Conflict, match="is running"):
            call(data, "RunJobAsync", id=str(created["id"]))
        call(data, "CancelJobAsync", id=str(created["id"]))
    finally:
        runner.join(30)
    assert outcome and outcome[0]["result"] == "cancelled"
    assert [r["result"] for r in results(data)] == ["cancelled"]


async def test_interrupted_runs_are_failed_at_start(
        data: Path, schedulers: list[Scheduler]) -> None:
    created = call(data, "CreateJob", name="n", action="GetStores", owner="admin",
                   timeZoneId="UTC")
    master = MasterDB.of(data)
    jobs = master.jobs
    rid = jobs.start_result(jobs.get(created["id"]), "manual", 1_700_000_000.0)
    master.close()
    [res] = results(data)
    assert res["result"] == "running" and res["completeTime"] is None
    s = make(data, schedulers, Clock("2026-01-15T12:00:00+00:00"))
    await s.start(background=False)
    [res] = results(data)
    assert res["id"] == rid and res["result"] == "failed" and "Interrupted" in res["error"]
    # a run left without outcome is also closed when the job next starts (its lock is ours)
    master = MasterDB.of(data)
    jobs = master.jobs
    first = jobs.start_result(jobs.get(created["id"]), "manual", 1_700_000_100.0)
    second = jobs.start_result(jobs.get(created["id"]), "manual", 1_700_000_200.0)
    master.close()
    assert [(r["id"], r["result"]) for r in results(data)] == [
        (rid, "failed"), (first, "failed"), (second, "running")]


async def test_the_background_loop_wakes_on_a_change(
        data: Path, schedulers: list[Scheduler]) -> None:
    """With its task running, a job that is due runs once the scheduler is told of a change,
    without anyone calling run_due (the functions tell it after every change)."""
    clock = Clock("2026-01-15T12:00:00+00:00")
    s = make(data, schedulers, clock)
    s.max_sleep_s = 3600  # only a change can wake it in time
    await s.start()
    master = MasterDB.of(data)
    jobs = master.jobs
    job_id = jobs.create("soon", "GetStores", "admin", "UTC", parse(interval=5), clock())
    master.close()
    s.changed()
    for _ in range(3000):  # until the scheduler's task has run it (no timing asserted)
        found = results(data)
        if found and found[0]["result"] != "running":
            break
        await asyncio.sleep(0.01)
    assert [(r["jobId"], r["result"]) for r in results(data)] == [(job_id, "succeeded")]
    assert job(data, job_id)["nextRun"] == "2026-01-15T12:05:00+00:00"
