"""GetServiceStatus's job list: through the real ASGI app, and in-process as the CLI calls it."""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from mailkeep.core.masterdb import MasterDB
from mailkeep.functions.call import Services
from mailkeep.functions.invoke import Invoker
from mailkeep.jobs.process import ProcessInfo
from tests.apiclient import api_client, archive_with_messages, finish, invoke
from tests.helpers import SHELL

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return archive_with_messages(tmp_path / "data", tmp_path / "mail", 40)


class Writer:
    """A write transaction of its own on the master database, as another process holds one."""

    def __init__(self, data: Path) -> None:
        self.master = MasterDB.of(data.resolve())
        self.held: AbstractContextManager[Any] | None = None

    def hold(self) -> None:
        self.held = self.master.tx()
        self.held.__enter__()

    def release(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            held.__exit__(None, None, None)  # nothing was written


@pytest.fixture
def master_locked(data: Path) -> Iterator[Writer]:
    """A writer holding the master database (once told to hold it): a process that writes it
    waits (busy_timeout, 10 s) and so stays running until the test releases it."""
    writer = Writer(data)
    try:
        yield writer
    finally:
        writer.release()
        writer.master.close()


class DayOldProcesses:
    """Stands in for the server's engine, whose processes cannot be made a day old in a test:
    answers `running()` as the engine does."""

    def __init__(self, infos: list[ProcessInfo]) -> None:
        self.infos = infos

    def running(self) -> list[ProcessInfo]:
        return self.infos


def service_status(data: Path, engine: Any = None) -> dict[str, Any]:
    master = MasterDB.of(data.resolve())
    try:
        result: dict[str, Any] = Invoker(Services(data.resolve(), master, engine=engine)).call(
            "GetServiceStatus", SHELL)
    finally:
        master.close()
    return result


def test_service_status_lists_a_running_process_until_it_ends(
        data: Path, master_locked: Writer) -> None:
    with api_client(data) as api:
        idle = invoke(api, "GetServiceStatus")["result"]
        assert idle["jobs"] == [] and list(idle)[-3:] == ["jobs", "unsentNotifications",
                                                        "warnings"]

        master_locked.hold()
        started = time.time()
        body = invoke(api, "RebuildStoreIndex", id="1", folder="")
        assert body["statusCode"] == "running" and body["token"], body
        status = invoke(api, "GetServiceStatus")
        assert status["statusCode"] == "succeeded", status
        jobs = status["result"]["jobs"]
        assert [(j["function"], j["user"]) for j in jobs] == [("RebuildStoreIndex", "admin")]
        job = jobs[0]
        assert set(job) == {"function", "user", "startedAt", "runningSeconds",
                            "percentProgress"}
        assert ISO_UTC.match(job["startedAt"]), job
        assert abs(calendar.timegm(time.strptime(job["startedAt"], "%Y-%m-%dT%H:%M:%SZ"))
                   - started) < 5
        assert 0 <= job["runningSeconds"] < 10
        assert job["percentProgress"] is None or 0 <= job["percentProgress"] <= 100
        assert body["token"] not in json.dumps(status)  # tokens stay with their starter
        assert status["result"]["warnings"] == []

        master_locked.release()
        final, _ = finish(api, body)
        assert final["statusCode"] == "succeeded", final
        assert invoke(api, "GetServiceStatus")["result"]["jobs"] == []


def test_service_status_in_process_has_no_jobs(data: Path) -> None:
    result = service_status(data)
    assert result["jobs"] == [] and result["warnings"] == []


def test_service_status_warns_about_a_process_running_for_over_a_day(data: Path) -> None:
    now = time.time()
    infos = [ProcessInfo("VerifyStores", "alice", "a" * 32, now - 25 * 3600, 40),
             ProcessInfo("VerifyStore", "admin", "b" * 32, now - 60, None)]
    result = service_status(data, engine=DayOldProcesses(infos))
    assert [(j["function"], j["user"], j["percentProgress"]) for j in result["jobs"]] == [
        ("VerifyStores", "alice", 40), ("VerifyStore", "admin", None)]
    assert result["jobs"][0]["runningSeconds"] >= 25 * 3600
    assert 60 <= result["jobs"][1]["runningSeconds"] < 120
    assert len(result["warnings"]) == 1
    assert "VerifyStores started by alice" in result["warnings"][0]
    assert "25 hours" in result["warnings"][0]
    assert "a" * 32 not in json.dumps(result) and "b" * 32 not in json.dumps(result)
