"""Automatic execution of profiles: maintenance windows, when AutoRunner finds a profile due,
SetProfileServerSideExecution's checks, and an automatic run in the real app."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import mailkeep.profiles.automatic as automatic
from mailkeep.core.errors import InvalidArgument
from mailkeep.core.masterdb import MasterDB
from mailkeep.profiles.automatic import AutoRunner, in_window, parse_windows
from mailkeep.profiles.store import Profile, Profiles
from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, fast_users
from tests.helpers import CHEAP
from tests.profiles.conftest import counts, create, eml, failed, ok, past

ALL = frozenset(range(7))
MONDAY = datetime(2024, 1, 1)  # a Monday


def at(day: str, clock: str) -> datetime:
    """A local moment in the week of MONDAY: at("Wed", "12:00")."""
    hours, minutes = (int(x) for x in clock.split(":"))
    return MONDAY + timedelta(days=automatic.DAYS.index(day.lower()), hours=hours,
                              minutes=minutes)


# -- windows ----------------------------------------------------------------------------------
def test_parse_windows() -> None:
    assert parse_windows("Mon-Fri 08:00-18:00") == [(frozenset(range(5)), 480, 1080)]
    assert parse_windows(" mon - fri  8:00 - 18:00 ") == [(frozenset(range(5)), 480, 1080)]
    assert parse_windows("Daily 22:00-02:00") == [(ALL, 1320, 120)]
    assert parse_windows("Sat-Mon 10:00-12:00") == [(frozenset({5, 6, 0}), 600, 720)]
    assert parse_windows("Sun 00:00-24:00; Wed 12:30-13:00;") == [
        (frozenset({6}), 0, 1440), (frozenset({2}), 750, 780)]
    assert parse_windows("Monday 01:00-02:00") == [(frozenset({0}), 60, 120)]
    assert parse_windows("Fri-Fri 01:00-02:00") == [(frozenset({4}), 60, 120)]
    assert parse_windows("") == [] and parse_windows(" ; ") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("Someday 08:00-09:00", "is not a day"),
    ("Mon-Funday 08:00-09:00", "is not a day"),
    ("Mon 8-9", "is not like"),
    ("Mon 08:00", "is not like"),
    ("08:00-09:00", "is not like"),
    ("Mon 08:00-09:00 extra", "is not like"),
    ("Mon 08:60-09:00", "is not a time span"),
    ("Mon 25:00-26:00", "is not a time span"),
    ("Mon 23:00-24:30", "is not a time span"),
    ("Mon 10:00-10:00", "is not a time span"),
    ("Mon 08:00-09:00; Tue", "is not like"),
])
def test_parse_windows_refuses_bad_input(text: str, expected: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_windows(text)
    assert info.value.message.startswith("automaticMaintenanceWindows: ")
    assert expected in info.value.message


@pytest.mark.parametrize(("windows", "moment", "inside"), [
    ("Mon-Fri 08:00-18:00", at("Wed", "12:00"), True),
    ("Mon-Fri 08:00-18:00", at("Wed", "08:00"), True),
    ("Mon-Fri 08:00-18:00", at("Wed", "17:59"), True),
    ("Mon-Fri 08:00-18:00", at("Wed", "18:00"), False),  # the end is not inside
    ("Mon-Fri 08:00-18:00", at("Wed", "07:59"), False),
    ("Mon-Fri 08:00-18:00", at("Sat", "12:00"), False),
    ("Daily 00:00-24:00", at("Sun", "23:59"), True),
    ("Daily 22:00-02:00", at("Tue", "23:00"), True),
    ("Daily 22:00-02:00", at("Wed", "01:59"), True),
    ("Daily 22:00-02:00", at("Wed", "02:00"), False),
    ("Daily 22:00-02:00", at("Wed", "21:59"), False),
    # A window passing midnight belongs to the day it starts on.
    ("Fri 22:00-02:00", at("Fri", "23:00"), True),
    ("Fri 22:00-02:00", at("Sat", "01:00"), True),
    ("Fri 22:00-02:00", at("Fri", "01:00"), False),
    ("Fri 22:00-02:00", at("Sat", "23:00"), False),
    ("Sun 22:00-02:00", at("Mon", "01:00"), True),  # across the end of the week
    ("Sun 22:00-02:00", at("Sun", "01:00"), False),
    # A day range wrapping around the week.
    ("Sat-Mon 10:00-12:00", at("Sat", "11:00"), True),
    ("Sat-Mon 10:00-12:00", at("Sun", "11:00"), True),
    ("Sat-Mon 10:00-12:00", at("Mon", "11:00"), True),
    ("Sat-Mon 10:00-12:00", at("Tue", "11:00"), False),
    ("Sat-Mon 10:00-12:00", at("Fri", "11:00"), False),
    ("Sun 00:00-24:00", at("Sun", "23:59"), True),
    ("Sun 00:00-24:00", at("Mon", "00:00"), False),
    ("Mon 08:00-09:00; Thu 20:00-21:00", at("Thu", "20:30"), True),
    ("Mon 08:00-09:00; Thu 20:00-21:00", at("Thu", "21:30"), False),
    ("", at("Wed", "12:00"), False),
])
def test_in_window(windows: str, moment: datetime, inside: bool) -> None:
    assert in_window(parse_windows(windows), moment) is inside


# -- AutoRunner.due ---------------------------------------------------------------------------
@pytest.fixture
def profiles(tmp_path: Path) -> Iterator[Profiles]:
    """A real data directory with user alice, read without a server."""
    data = tmp_path / "data"
    users = fast_users(data)
    users.create("alice", "login")
    users.master.close()
    master = MasterDB.of(data)
    try:
        yield Profiles(master, data)
    finally:
        master.close()


def new_profile(profiles: Profiles, name: str, auto: bool = True, pause: int = 60,
                windows: str | None = None) -> Profile:
    drop = profiles.data_dir.parent / f"drop-{name}"
    drop.mkdir()
    prof = profiles.create({"name": name, "type": "directory", "userName": "alice",
                            "path": str(drop)})
    return profiles.set_execution(prof.id, auto, pause, windows)


def finished_run(profiles: Profiles, prof: Profile, complete: float) -> None:
    res = profiles.begin_result(prof, prof.properties, "automatic")
    res.complete, res.result = complete, "succeeded"
    profiles.finish_result(res)


async def never(profile_id: int) -> None:
    raise AssertionError("due() must not start anything")


def due(profiles: Profiles, now: float) -> list[int]:
    return AutoRunner(profiles.data_dir, profiles.master, never, now=lambda: now).due()


def test_due_at_once_then_after_the_pause(profiles: Profiles) -> None:
    prof = new_profile(profiles, "auto", pause=60)
    manual = new_profile(profiles, "manual", auto=False)
    now = time.time()
    assert due(profiles, now) == [prof.id]  # never ran: due at once
    finished_run(profiles, prof, complete=now)
    finished_run(profiles, manual, complete=now - 86400)
    assert due(profiles, now + 1) == []
    assert due(profiles, now + 59) == []
    assert due(profiles, now + 60) == [prof.id]
    assert due(profiles, now + 3600) == [prof.id]
    profiles.set_execution(prof.id, False, None, None)
    assert due(profiles, now + 3600) == []
    assert profiles.get(prof.id).pause_s == 60  # pause None keeps it


def test_a_run_without_end_counts_from_its_start(profiles: Profiles) -> None:
    """A run that was interrupted (complete unknown) counts from when it started."""
    prof = new_profile(profiles, "auto", pause=60)
    res = profiles.begin_result(prof, prof.properties, "automatic")  # never finished
    assert due(profiles, res.start + 30) == []
    assert due(profiles, res.start + 61) == [prof.id]


def test_not_due_inside_a_maintenance_window(profiles: Profiles) -> None:
    prof = new_profile(profiles, "auto", windows="Wed 11:00-13:00; Sat-Mon 22:00-02:00")
    assert due(profiles, at("Wed", "12:00").timestamp()) == []
    assert due(profiles, at("Wed", "13:00").timestamp()) == [prof.id]
    assert due(profiles, at("Wed", "10:59").timestamp()) == [prof.id]
    assert due(profiles, at("Sun", "01:00").timestamp()) == []
    assert due(profiles, at("Tue", "01:00").timestamp()) == []  # Monday's window
    assert due(profiles, at("Tue", "02:00").timestamp()) == [prof.id]


def test_not_due_while_its_lock_is_held(profiles: Profiles) -> None:
    prof = new_profile(profiles, "auto")
    other = new_profile(profiles, "other")
    now = time.time()
    with profiles.lock(prof):
        assert due(profiles, now) == [other.id]
    assert due(profiles, now) == [prof.id, other.id]


async def test_tick_starts_each_due_profile_once(profiles: Profiles) -> None:
    prof = new_profile(profiles, "auto", pause=60)
    started: list[int] = []
    release = asyncio.Event()
    clock = [time.time()]

    async def start(profile_id: int) -> None:
        started.append(profile_id)
        await release.wait()

    runner = AutoRunner(profiles.data_dir, profiles.master, start, now=lambda: clock[0])

    async def tick() -> None:
        """One tick, then until each run it started has got to start() (a tick that starts
        nothing makes no task: nothing can call start() after it)."""
        before = dict(runner._tasks)
        await runner.tick()
        new = [t for pid, t in runner._tasks.items() if before.get(pid) is not t]
        calls = len(started) + len(new)
        while len(started) < calls and not all(t.done() for t in new):
            await asyncio.sleep(0)

    await tick()
    assert started == [prof.id]
    await tick()  # still running: not started again
    assert started == [prof.id]
    running = runner._tasks[prof.id]
    release.set()
    await asyncio.wait_for(running, 10)  # the run ends
    assert runner._tasks == {}
    clock[0] += 30  # our run ended 30 s ago: within the pause
    await tick()
    assert started == [prof.id]
    clock[0] += 31
    await tick()
    assert started == [prof.id, prof.id]
    await runner.stop()


# -- SetProfileServerSideExecution ------------------------------------------------------------
def test_set_server_side_execution_checks(api: TestClient, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    pid = create(api, name="d", type="directory", userName="alice", path=str(drop))["id"]

    def set_exec(**args: Any) -> Any:
        return ok(api, "SetProfileServerSideExecution", id=pid, **args)

    def refused(**args: Any) -> str:
        return failed(api, "SetProfileServerSideExecution", id=pid, **args)

    for pause in (0, 5, 9, 10.5, 604801):
        assert "from 10 to 604800" in refused(automatic=False,
                                              automaticPauseBetweenExecutions=pause), pause
    assert "is not a day" in refused(automatic=False,
                                     automaticMaintenanceWindows="Someday 08:00-09:00")
    assert "is not like" in refused(automatic=False, automaticMaintenanceWindows="Mon 8-9")
    assert "time span" in refused(automatic=False,
                                  automaticMaintenanceWindows="Mon 10:00-10:00")
    assert "There is no profile" in failed(api, "SetProfileServerSideExecution", id=99,
                                           automatic=False)
    assert ok(api, "GetProfiles", raw=False)[0]["serverSideExecution"] == {
        "automatic": False, "automaticPauseBetweenExecutions": 300,
        "automaticMaintenanceWindows": None}  # nothing changed by the refused calls

    shown = set_exec(automatic=False, automaticPauseBetweenExecutions=10,
                     automaticMaintenanceWindows="Mon-Fri 08:00-18:00")["serverSideExecution"]
    assert shown == {"automatic": False, "automaticPauseBetweenExecutions": 10,
                     "automaticMaintenanceWindows": "Mon-Fri 08:00-18:00"}
    shown = set_exec(automatic=False, automaticMaintenanceWindows="  ")["serverSideExecution"]
    assert shown == {"automatic": False, "automaticPauseBetweenExecutions": 10,
                     "automaticMaintenanceWindows": None}
    # Automatic, but in a window all the time: the server must leave it alone.
    shown = set_exec(automatic=True, automaticPauseBetweenExecutions=604800,
                     automaticMaintenanceWindows="Daily 00:00-24:00")["serverSideExecution"]
    assert shown == {"automatic": True, "automaticPauseBetweenExecutions": 604800,
                     "automaticMaintenanceWindows": "Daily 00:00-24:00"}


# -- the real app -----------------------------------------------------------------------------
class Decisions:
    """What the server's AutoRunner decided at each tick (the profiles due()), to wait for
    ticks that have really happened instead of sleeping through them."""

    def __init__(self) -> None:
        self.made: list[list[int]] = []
        self.changed = threading.Condition()

    def recording(self, due: Callable[[AutoRunner], list[int]]
                  ) -> Callable[[AutoRunner], list[int]]:
        def recorded(runner: AutoRunner) -> list[int]:
            out = due(runner)
            with self.changed:
                self.made.append(out)
                self.changed.notify_all()
            return out
        return recorded

    def wait(self, ticks: int, timeout: float = 30) -> list[list[int]]:
        """The decisions of the next `ticks` ticks (those begun from now on)."""
        with self.changed:
            first = len(self.made) + 1  # one may be under way: it began before now
            assert self.changed.wait_for(lambda: len(self.made) >= first + ticks, timeout), (
                f"{len(self.made) - first} of {ticks} ticks in {timeout} s")
            return self.made[first:first + ticks]


def test_the_server_runs_an_automatic_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(automatic, "TICK_S", 0.2)  # look for due profiles often (default 5 s)
    decisions = Decisions()
    monkeypatch.setattr(AutoRunner, "due", decisions.recording(AutoRunner.due))
    data = tmp_path / "data"
    drop = tmp_path / "drop"
    drop.mkdir()
    for i in range(5):
        (drop / f"{i}.eml").write_bytes(eml(i, "auto"))
        past(drop / f"{i}.eml")
    app = create_app(data, api_enabled=True, hasher=CHEAP)
    with TestClient(app, client=LOCAL) as api:
        ok(api, "CreateUser", userName="alice", privileges="login")
        pid = create(api, name="auto", type="directory", userName="alice", path=str(drop),
                     targetFolder="Auto")["id"]
        ok(api, "SetProfileServerSideExecution", id=pid, automatic=True,
           automaticPauseBetweenExecutions=10)
        deadline = time.monotonic() + 20
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            runs = ok(api, "GetWorkerResults", fromIncluding="2000-01-01T00:00:00",
                      toExcluding="2100-01-01T00:00:00", timeZoneID="$Local")
            if runs and runs[0]["result"] != "running":
                break
            time.sleep(0.1)
        assert len(runs) == 1, runs
        [first] = runs
        assert first["executionStartedBy"] == "automatic"
        assert (first["result"], first["itemsArchived"], first["profileID"]) == (
            "succeeded", 5, pid)
        assert counts(data) == {"Auto": 5}
        # Five ticks after the run: the pause of 10 s keeps it from running again.
        assert decisions.wait(5) == [[]] * 5
        again = ok(api, "GetWorkerResults", fromIncluding="2000-01-01T00:00:00",
                   toExcluding="2100-01-01T00:00:00", timeZoneID="$Local")
        assert [r["id"] for r in again] == [first["id"]]
        assert ok(api, "GetProfiles", raw=False)[0]["lastResult"]["id"] == first["id"]
