"""Run locks: a job or a profile runs only while its process holds an exclusive flock on
`<data_dir>/locks/<name>.lock`, whichever process that is; a crash releases it. In an
installation on PostgreSQL (several servers), the lock of that name in the database instead
(core/masterdb/runlocks.py), whichever server holds it."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

from mailkeep.core.backends import database_url


def lock_file(data_dir: Path, name: str) -> Path:
    return data_dir / "locks" / f"{name}.lock"


class RunLock:
    def __init__(self, fd: int, conn: Any = None) -> None:
        self._fd = fd
        self._conn = conn  # (in PostgreSQL: the connection that holds it)
        self._guard = threading.Lock()

    @classmethod
    def acquire(cls, path: Path, attempts: int = 3) -> RunLock | None:
        """The lock, or None when it is held. A few quick attempts ride out held()'s probes,
        which hold it for microseconds."""
        url = database_url()
        if url is not None:
            from mailkeep.core.masterdb.runlocks import try_lock
            conn = try_lock(url, path.stem)
            return None if conn is None else cls(-1, conn)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for attempt in range(attempts):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if attempt + 1 < attempts:
                    time.sleep(0.01)
                continue
            except BaseException:
                os.close(fd)
                raise
            return cls(fd)
        return None

    def release(self) -> None:
        with self._guard:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()  # (the lock goes with its connection)
                return
            if self._fd < 0:
                return
            fd, self._fd = self._fd, -1
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def held(path: Path) -> bool:
    """Whether some process holds the lock (a probe: takes and drops it if free)."""
    url = database_url()
    if url is not None:
        from mailkeep.core.masterdb.runlocks import is_held
        return is_held(url, path.stem)
    if not path.exists():
        return False
    lock = RunLock.acquire(path, attempts=1)
    if lock is None:
        return True
    lock.release()
    return False
