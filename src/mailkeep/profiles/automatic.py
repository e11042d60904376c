"""Automatic execution of profiles on the server: a profile set to automatic runs again a pause
after its last run ended, except within its maintenance windows.

The loop only decides when; `start(profile_id)` (given by the server) runs the profile as an
engine process and returns once that process has ended. A profile running anywhere else (a
manual run, a job, another process) holds its lock and is left alone.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import anyio.to_thread

from mailkeep.core.errors import InvalidArgument
from mailkeep.core.masterdb import MasterDB
from mailkeep.profiles.store import Profiles

log = logging.getLogger("mailkeep.profiles")

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TICK_S = 5.0
Window = tuple[frozenset[int], int, int]  # weekdays (Mon = 0), start and end minute

_WINDOW = re.compile(r"^\s*(?P<days>[A-Za-z]+(?:\s*-\s*[A-Za-z]+)?)\s+(?P<h1>\d{1,2}):"
                     r"(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})\s*$")


def _day(text: str) -> int:
    low = text.strip().lower()[:3]
    if low not in DAYS:
        raise InvalidArgument(f"automaticMaintenanceWindows: {text!r} is not a day (Mon..Sun, "
                              "or Daily).")
    return DAYS.index(low)


def parse_windows(text: str) -> list[Window]:
    out: list[Window] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        m = _WINDOW.match(part)
        if m is None:
            raise InvalidArgument(f"automaticMaintenanceWindows: {part.strip()!r} is not like "
                                  "\"Mon-Fri 08:00-18:00\".")
        days_text = m["days"]
        if days_text.lower() in ("daily", "all"):
            days = frozenset(range(7))
        elif "-" in days_text:
            first, last = (_day(d) for d in days_text.split("-"))
            days = frozenset((first + i) % 7 for i in range((last - first) % 7 + 1))
        else:
            days = frozenset({_day(days_text)})
        start = int(m["h1"]) * 60 + int(m["m1"])
        end = int(m["h2"]) * 60 + int(m["m2"])
        if int(m["m1"]) > 59 or int(m["m2"]) > 59 or start > 1440 or end > 1440 or \
                start == end:
            raise InvalidArgument(f"automaticMaintenanceWindows: {part.strip()!r} is not a "
                                  "time span (00:00-24:00 at most, start and end different).")
        out.append((days, start, end))
    return out


def in_window(windows: list[Window], moment: datetime) -> bool:
    day, minute = moment.weekday(), moment.hour * 60 + moment.minute
    for days, start, end in windows:
        if start < end:
            if day in days and start <= minute < end:
                return True
        elif (day in days and minute >= start) or ((day - 1) % 7 in days and minute < end):
            return True
    return False


class AutoRunner:
    def __init__(self, data_dir: Path, master: MasterDB, start: Callable[[int], Awaitable[None]],
                 now: Callable[[], float] = time.time) -> None:
        self.data_dir = data_dir
        self.master = master
        self.start = start
        self.now = now
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._ended: dict[int, float] = {}  # when our last run of each profile ended

    def due(self) -> list[int]:
        """Profiles to start now (read in a worker thread: it touches the database)."""
        profiles = Profiles(self.master, self.data_dir)
        now = self.now()
        local = datetime.fromtimestamp(now).astimezone()
        out: list[int] = []
        for prof in profiles.all():
            if not prof.automatic or prof.id in self._tasks:
                continue
            last = profiles.last_result(prof.id)
            ended = max(self._ended.get(prof.id, 0.0),
                        (last["complete"] or last["start"]) if last else 0.0)
            if now < ended + prof.pause_s:
                continue
            if prof.windows and in_window(parse_windows(prof.windows), local):
                continue
            if profiles.running(prof.id):
                continue
            out.append(prof.id)
        return out

    async def tick(self) -> None:
        for pid in await anyio.to_thread.run_sync(self.due):
            self._tasks[pid] = asyncio.create_task(self._run(pid))

    async def _run(self, pid: int) -> None:
        try:
            await self.start(pid)
        except Exception:
            log.exception("automatic run of profile %d", pid)
        finally:
            self._ended[pid] = self.now()
            self._tasks.pop(pid, None)

    async def loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a bad tick must not end automatic archiving
                log.exception("automatic profile runs")
            await asyncio.sleep(TICK_S)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
