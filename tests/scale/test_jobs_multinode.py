"""Scheduled jobs of an installation on PostgreSQL with three servers (three schedulers, each
on a data directory of its own, with connections of their own to one database): a job that
falls due on all three at once runs once, and while it runs its lock is every server's."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from mailkeep.jobs.runs import is_running, lock_path
from mailkeep.jobs.scheduler import Scheduler
from tests.helpers import mk_ok
from tests.jobs.test_scheduler import Clock, Records, call, make, results, schedulers

__all__ = ["schedulers"]  # (the fixture: each scheduler made is stopped at the end)


@pytest.mark.usefixtures("scaled")
async def test_a_job_due_on_three_servers_runs_once(tmp_path: Path,
                                                    schedulers: list[Scheduler]) -> None:
    nodes = [tmp_path / f"node{n}" for n in range(3)]
    mk_ok(nodes[0], "user", "list")  # the installation: its admin, its master key
    mk_ok(nodes[0], "store", "create", "Main")
    for node in nodes[1:]:
        (node / "conf").mkdir(parents=True)
        shutil.copy2(nodes[0] / "conf" / "master.key", node / "conf" / "master.key")
    clock = Clock("2026-03-01T12:00:00+00:00")
    records = [Records() for _ in nodes]
    servers = [make(node, schedulers, clock, rec) for node, rec in zip(nodes, records,
                                                                       strict=True)]
    for s in servers:
        await s.start(background=False)
    created = call(nodes[0], "CreateJob", name="once", action="GetStores", owner="admin",
                   timeZoneId="UTC", date="2026-03-01T13:00:00")
    clock.set("2026-03-01T13:00:01+00:00")
    started = await asyncio.gather(*(s.run_due() for s in servers))
    for s in servers:
        await s.wait_idle()
    assert sorted(len(ids) for ids in started) == [0, 0, 1]  # one server took it
    [run] = results(nodes[1], created["id"])  # the same, seen from any server
    assert run["result"] == "succeeded"
    assert sum(len(r.items) for r in records) == 1
    assert not any(await asyncio.gather(*(s.run_due() for s in servers)))  # never again


@pytest.mark.usefixtures("scaled")
def test_a_job_s_lock_is_every_server_s(tmp_path: Path) -> None:
    """The run lock of a job in the database: taken by one server's process, every other
    server sees it held, and it is free again once that process lets go (or dies)."""
    from mailkeep.jobs.runs import acquire
    a, b = tmp_path / "a", tmp_path / "b"
    lock = acquire(a, 7)
    assert lock is not None
    try:
        assert is_running(b, 7)
        assert acquire(b, 7) is None
        assert not lock_path(a, 7).exists()  # (no file: the database holds it)
    finally:
        lock.release()
    assert not is_running(b, 7)
    again = acquire(b, 7)
    assert again is not None
    again.release()
