"""The job functions: in-process as the CLI calls them (checks, shapes, results, the synchronous
RunJobAsync), through `mailkeep call`, and end to end through the real HTTP Administration API
(the server's scheduler runs the job)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from mailkeep.core.errors import Conflict, InvalidArgument, MailkeepError, NotFound
from mailkeep.core.masterdb import MasterDB
from tests.apiclient import api_client, basic, invoke
from tests.helpers import master_sql, mk_ok
from tests.jobs.test_scheduler import HeldLock, call, data_dir, job, results

BASE = {"name": "nightly", "action": "VerifyStores includeIndexes=false", "owner": "admin",
        "timeZoneId": "Europe/Berlin"}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return data_dir(tmp_path)


def create(data: Path, **form: str) -> dict[str, Any]:
    out: dict[str, Any] = call(data, "CreateJob", **{**BASE, **form})
    return out


def test_create_and_get_jobs(data: Path) -> None:
    created = create(data, time="02:00", dayOfWeek="Saturday,Sunday")
    assert set(created) == {"id", "name", "action", "owner", "timeZoneId", "schedule",
                            "enabled", "nextRun", "lastRun", "running"}
    assert created["schedule"] == {"type": "weekly", "date": None, "interval": None,
                                   "time": "02:00:00", "dayOfWeek": "Sunday,Saturday",
                                   "dayOfMonth": None}
    assert created["enabled"] is True and created["lastRun"] is None
    assert created["running"] is False and created["owner"] == "admin"
    assert created["nextRun"].endswith(("T02:00:00+01:00", "T02:00:00+02:00"))
    other = create(data, name="quarterly", action='GetStores includeSize="true"',
                   timeZoneId="w. europe standard time", interval="15")
    assert other["timeZoneId"] == "W. Europe Standard Time"
    assert other["nextRun"][14:16] in ("00", "15", "30", "45")
    manual = create(data, name="on demand", action="VerifyStores --includeIndexes=true")
    assert manual["schedule"]["type"] == "manual" and manual["nextRun"] is None
    assert [j["id"] for j in call(data, "GetJobs")] == [created["id"], other["id"],
                                                       manual["id"]]


@pytest.mark.parametrize(("form", "error", "message"), [
    ({"action": "NoSuchFunction"}, InvalidArgument, "Unknown function NoSuchFunction"),
    ({"action": ""}, InvalidArgument, "empty"),
    ({"action": "VerifyStore includeIndexes=true"}, InvalidArgument, "Missing API argument id"),
    ({"action": "VerifyStores includeIndexes=true colour=red"}, InvalidArgument,
     "Unknown API argument colour"),
    ({"action": "VerifyStores includeIndexes"}, InvalidArgument, "use name=value"),
    ({"action": 'VerifyStores includeIndexes="true'}, InvalidArgument, "quote"),
    ({"action": "RunJobAsync id=1"}, InvalidArgument, "jobs do not manage jobs"),
    ({"action": "DeleteJob id=1"}, InvalidArgument, "jobs do not manage jobs"),
    ({"action": "SetUserPassword userName=admin password=hunter2"}, InvalidArgument,
     "secret"),
    ({"owner": "nobody"}, NotFound, "User 'nobody' does not exist"),
    ({"timeZoneId": "Mars/Base"}, InvalidArgument, "Unknown time zone"),
    ({"time": "02:00", "interval": "15"}, InvalidArgument, "cannot also have time"),
    ({"interval": "7"}, InvalidArgument, "Invalid interval"),
    ({"dayOfMonth": "Last"}, InvalidArgument, "needs time"),
    ({"date": "2020-01-01T10:00:00"}, InvalidArgument, "in the past"),
    ({"name": " padded"}, InvalidArgument, "Invalid job name"),
])
def test_create_refusals_change_nothing(data: Path, form: dict[str, str],
                                        error: type[MailkeepError], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        create(data, **form)
    assert "hunter2" not in info.value.message
    assert call(data, "GetJobs") == []


def test_rename_enable_schedule_delete(data: Path) -> None:
    created = create(data, time="02:00")
    job_id = str(created["id"])
    assert call(data, "RenameJob", id=job_id, name="verify")["name"] == "verify"
    disabled = call(data, "SetJobEnabled", id=job_id, enabled="false")
    assert disabled["enabled"] is False and disabled["nextRun"] is None
    enabled = call(data, "SetJobEnabled", id=job_id, enabled="true")
    assert enabled["nextRun"] == created["nextRun"]
    monthly = call(data, "SetJobSchedule", id=job_id, timeZoneId="Tokyo Standard Time",
                   time="23:30", dayOfMonth="31")
    assert monthly["schedule"]["type"] == "monthly" and monthly["timeZoneId"] == \
        "Tokyo Standard Time"
    assert monthly["nextRun"].endswith("T23:30:00+09:00")
    with pytest.raises(InvalidArgument, match="not both"):
        call(data, "SetJobSchedule", id=job_id, timeZoneId="UTC", time="01:00",
             dayOfWeek="Monday", dayOfMonth="1")
    assert job(data, int(job_id))["schedule"] == monthly["schedule"]  # unchanged
    manual = call(data, "SetJobSchedule", id=job_id, timeZoneId="$Local")
    assert manual["schedule"]["type"] == "manual" and manual["timeZoneId"] == "$Local"
    for name, extra in (("RenameJob", {"name": "x"}), ("SetJobEnabled", {"enabled": "true"}),
                        ("DeleteJob", {}), ("RunJobAsync", {}), ("CancelJobAsync", {})):
        with pytest.raises(NotFound, match="Job 99 does not exist"):
            call(data, name, id="99", **extra)
    before = job(data, int(job_id))
    call(data, "DeleteJob", id=job_id)
    assert call(data, "GetJobs") == []
    with master_sql(data) as db:  # audited, with what the job was
        details = [json.loads(r[0]) for r in db.execute(
            "SELECT details FROM audit WHERE action = 'DeleteJob'").fetchall()][-1]
    assert details["name"] == before["name"] and details["action"] == before["action"]


def test_enabling_checks_the_owner_again(data: Path) -> None:
    from tests.apiclient import fast_users

    users = fast_users(data)
    users.create("carol", ["admin"], password="x-Secret-1")
    created = create(data, owner="CAROL", interval="30")
    assert created["owner"] == "carol"
    call(data, "SetJobEnabled", id=str(created["id"]), enabled="false")
    users.delete("carol")
    users.master.close()
    with pytest.raises(NotFound, match="carol"):
        call(data, "SetJobEnabled", id=str(created["id"]), enabled="true")


def test_run_in_process_and_results(data: Path) -> None:
    """No server: RunJobAsync runs the job in the caller's process and answers its end."""
    created = create(data, time="02:00")
    outcome = call(data, "RunJobAsync", id=str(created["id"]))
    assert outcome["result"] == "succeeded" and outcome["error"] is None
    failing = create(data, name="bad", action="VerifyStore id=42 includeIndexes=true")
    outcome = call(data, "RunJobAsync", id=str(failing["id"]))
    assert outcome["result"] == "failed" and "42" in outcome["error"]
    with pytest.raises(Conflict, match="not running"):
        call(data, "CancelJobAsync", id=str(created["id"]))
    held = HeldLock(data, created["id"])
    try:
        with pytest.raises(Conflict, match="is running"):
            call(data, "RunJobAsync", id=str(created["id"]))
    finally:
        held.release()
    shown = job(data, created["id"])
    assert shown["lastRun"]["resultId"] == outcome["resultId"] - 1
    assert shown["lastRun"]["result"] == "succeeded"
    rows = results(data)
    assert [(r["jobName"], r["result"], r["trigger"]) for r in rows] == [
        ("nightly", "succeeded", "manual"), ("bad", "failed", "manual")]
    assert results(data, failing["id"]) == rows[1:]
    call(data, "DeleteJob", id=str(failing["id"]))
    assert results(data, failing["id"]) == rows[1:]  # the history stays


def test_results_period_and_zone(data: Path) -> None:
    created = create(data, time="02:00")
    master = MasterDB.of(data)
    jobs = master.jobs
    the_job = jobs.get(created["id"])
    # 2026-01-30T23:00:00Z is 2026-01-31T00:00:00 in Berlin
    for epoch in (1769813999.0, 1769814000.0, 1769900399.0, 1769900400.0):
        jobs.finish_result(jobs.start_result(the_job, "schedule", epoch), "succeeded", None,
                           epoch + 2)
    master.close()
    rows = call(data, "GetJobResults", fromIncluding="2026-01-31T00:00:00",
                toExcluding="2026-02-01", timeZoneId="Europe/Berlin", jobId="")
    assert [(r["startTime"], r["completeTime"]) for r in rows] == [
        ("2026-01-31T00:00:00+01:00", "2026-01-31T00:00:02+01:00"),
        ("2026-01-31T23:59:59+01:00", "2026-02-01T00:00:01+01:00")]
    in_tokyo = call(data, "GetJobResults", fromIncluding="2026-01-31T08:00:00",
                    toExcluding="2026-01-31T09:00:00", timeZoneId="Tokyo Standard Time")
    assert [r["startTime"] for r in in_tokyo] == ["2026-01-31T08:00:00+09:00"]
    with pytest.raises(InvalidArgument, match="fromIncluding"):
        call(data, "GetJobResults", fromIncluding="yesterday", toExcluding="2026-02-01",
             timeZoneId="UTC")


def test_mailkeep_call_runs_a_job(data: Path) -> None:
    def run(*args: str) -> Any:
        return json.loads(mk_ok(data, "call", *args).stdout)

    created = run("CreateJob", "name=nightly", "action=VerifyStores includeIndexes=false",
                  "owner=admin", "timeZoneId=Europe/Berlin", "time=02:00")
    outcome = run("RunJobAsync", f"id={created['id']}")
    assert outcome["result"] == "succeeded"


def test_through_the_http_api(data: Path) -> None:
    with api_client(data) as api:
        meta = {m["name"]: m for m in json.loads(
            api.get("/api/get-metadata", headers=basic()).content.decode("utf-8-sig"))}
        assert meta["CreateJob"]["args"] == [
            {"name": "name", "type": "string", "nullable": False},
            {"name": "action", "type": "string", "nullable": False},
            {"name": "owner", "type": "string", "nullable": False},
            {"name": "timeZoneId", "type": "string", "nullable": False},
            {"name": "date", "type": "string", "nullable": True},
            {"name": "interval", "type": "number", "nullable": True},
            {"name": "time", "type": "string", "nullable": True},
            {"name": "dayOfWeek", "type": "string", "nullable": True},
            {"name": "dayOfMonth", "type": "string", "nullable": True}]
        assert meta["GetJobResults"]["args"] == [
            {"name": "fromIncluding", "type": "string", "nullable": False},
            {"name": "toExcluding", "type": "string", "nullable": False},
            {"name": "timeZoneId", "type": "string", "nullable": False},
            {"name": "jobId", "type": "number", "nullable": True}]
        for name in ("RunJobAsync", "CancelJobAsync", "DeleteJob"):
            assert meta[name]["args"] == [{"name": "id", "type": "number", "nullable": False}]
        assert meta["SetJobEnabled"]["args"][1] == {"name": "enabled", "type": "bool",
                                                    "nullable": False}
        body = invoke(api, "CreateJob", **BASE, time="02:00", date="", interval="")
        assert body["statusCode"] == "succeeded", body["error"]
        job_id = body["result"]["id"]
        refused = invoke(api, "CreateJob", **{**BASE, "owner": "ghost"}, time="02:00")
        assert refused["statusCode"] == "failed"
        assert "ghost" in refused["error"]["message"]

        started = invoke(api, "RunJobAsync", id=job_id)
        assert started["statusCode"] == "succeeded", started["error"]
        assert started["result"]["result"] == "running"
        for _ in range(3000):  # until the server's scheduler has run it (no timing asserted)
            shown = invoke(api, "GetJobs")["result"][0]
            if not shown["running"] and shown["lastRun"] is not None:
                break
            time.sleep(0.01)
        assert shown["lastRun"]["result"] == "succeeded"
        assert shown["lastRun"]["resultId"] == started["result"]["resultId"]
        rows = invoke(api, "GetJobResults", fromIncluding="2000-01-01T00:00:00",
                      toExcluding="2100-01-01T00:00:00", timeZoneId="UTC",
                      jobId=job_id)["result"]
        assert [(r["result"], r["trigger"], r["owner"]) for r in rows] == [
            ("succeeded", "manual", "admin")]
        assert invoke(api, "CancelJobAsync", id=job_id)["error"]["message"].endswith(
            "is not running.")
        assert invoke(api, "DeleteJob", id=job_id)["statusCode"] == "succeeded"
    with master_sql(data) as db:
        history = db.execute(
            """SELECT name, "user", outcome FROM process_history WHERE name = 'VerifyStores'"""
        ).fetchall()
        actors = {r[0] for r in db.execute("SELECT actor FROM audit").fetchall()}
    assert history == [("VerifyStores", "admin", "succeeded")]
    assert "job:nightly" in actors
