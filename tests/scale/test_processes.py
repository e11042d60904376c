"""A process started through one server of an installation on PostgreSQL is followed and
cancelled through another: two process engines (each with connections of its own to one
database, as two servers have), the process a real function of the test that waits for its
cue. Long polls through the other server are woken by NOTIFY; a process whose server stopped
beating is failed by the first server asked about it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailkeep.core.masterdb import MasterDB
from mailkeep.jobs.engine import Engine, UnknownToken
from mailkeep.jobs.process import Context
from mailkeep.jobs.shared import SharedProcesses


@pytest.fixture
async def servers(pg_url: str, tmp_path: Path) -> AsyncIterator[list[Engine]]:
    engines: list[Engine] = []
    masters: list[MasterDB] = []
    for n in range(2):
        master = MasterDB(tmp_path / f"unused{n}", url=pg_url)
        engine = Engine(grace_ms=50)
        engine.shared = SharedProcesses(master)
        await engine.start()
        engine.shared.start()
        engines.append(engine)
        masters.append(master)
    yield engines
    for engine in engines:
        await engine.stop()
        assert engine.shared is not None
        await asyncio.to_thread(engine.shared.stop)
    for master in masters:
        master.close()


def waiting(cue: threading.Event, steps: int = 3) -> Any:
    def fn(ctx: Context) -> dict[str, int]:
        for i in range(steps):
            ctx.log(f"step {i}")
            ctx.progress(int(100 * i / steps), f"step {i}")
        while not cue.wait(0.05):
            ctx.check_cancelled()
        return {"steps": steps}
    return fn


async def test_another_server_follows_a_process_to_its_end(servers: list[Engine]) -> None:
    a, b = servers
    cue = threading.Event()
    snap = await a.invoke("Probe", waiting(cue), "alice")
    assert snap.status_code == "running" and snap.token
    seen = await b.status(snap.token, "alice", 1, 10_000)  # woken by the first change
    assert seen.status_code == "running" and seen.status_version > 1
    while "step 2" not in (seen.log_output or "") and seen.status_version < 7:
        seen = await b.status(snap.token, "alice", 1, 10_000)
    assert seen.log_output is not None and "step 0\r\nstep 1\r\nstep 2\r\n" in seen.log_output
    assert seen.status_text == "step 2"
    with pytest.raises(UnknownToken):  # another user's: as unknown as a made-up token
        await b.status(snap.token, "mallory", 1, 0)
    with pytest.raises(UnknownToken):
        await b.status("0" * 32, "alice", 1, 0)
    cue.set()
    started = time.monotonic()
    final = await b.status(snap.token, "alice", seen.status_version, 20_000)
    while final.status_code == "running":
        final = await b.status(snap.token, "alice", final.status_version, 20_000)
    assert time.monotonic() - started < 15  # woken, not timed out
    assert final.status_code == "succeeded" and final.result == {"steps": 3}


async def test_a_cancel_through_another_server_stops_the_process(servers: list[Engine]
                                                                ) -> None:
    a, b = servers
    cue = threading.Event()  # never set: only a cancel ends it
    snap = await a.invoke("Probe", waiting(cue), "alice")
    assert snap.token
    await b.status(snap.token, "alice", 1, 10_000)  # (it is in the database)
    b.cancel(snap.token, "alice")
    final = await a.status(snap.token, "alice", 1, 20_000)
    while final.status_code == "running":
        final = await a.status(snap.token, "alice", final.status_version, 20_000)
    assert final.status_code == "cancelled"
    seen = await b.status(snap.token, "alice", 1, 20_000)
    while seen.status_code == "running":
        seen = await b.status(snap.token, "alice", seen.status_version, 20_000)
    assert seen.status_code == "cancelled"


async def test_a_process_whose_server_stopped_beating_is_failed(servers: list[Engine],
                                                                pg_url: str) -> None:
    a, b = servers
    cue = threading.Event()
    snap = await a.invoke("Probe", waiting(cue), "alice")
    assert snap.token and a.shared is not None
    await b.status(snap.token, "alice", 1, 10_000)
    await asyncio.to_thread(a.shared.stop)  # server A is gone: no more heartbeats
    from mailkeep.core.pgconn import Connection
    conn = Connection(pg_url)
    try:  # (its last heartbeat, as it would be after STALE_S: nobody waits half a minute)
        conn.execute("UPDATE processes SET heartbeat = heartbeat - 3600 WHERE token = ?",
                     (snap.token,))
    finally:
        conn.close()
    seen = await b.status(snap.token, "alice", 1, 0)
    assert seen.status_code == "failed"
    assert seen.error is not None and "stopped" in seen.error[0]
    cue.set()
