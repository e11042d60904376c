"""What every repository of the master database shares: its database's connection of this
thread, and its write transaction."""

from __future__ import annotations

TYPE_CHECKING = False  # (typing nor contextlib is imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from contextlib import AbstractContextManager
    from typing import Any, Protocol

    class Cursor(Protocol):
        """What the repositories read of a statement: sqlite3's cursor, or core/pgconn.py's."""

        @property
        def rowcount(self) -> int: ...
        def fetchone(self) -> Any: ...
        def fetchall(self) -> list[Any]: ...
        def __iter__(self) -> Iterator[Any]: ...

    class Connection(Protocol):
        """A connection to either engine, as the repositories use it."""

        def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...
        def executemany(self, sql: str, rows: Iterable[Any], /) -> Cursor: ...
        def executescript(self, script: str, /) -> Any: ...

    from mailkeep.core.masterdb import MasterDB

BUSY_TIMEOUT_MS = 10_000  # how long a statement waits for another process's write


class Repository:
    def __init__(self, db: MasterDB) -> None:
        self.db = db

    @property
    def conn(self) -> Connection:
        conn: Connection = self.db.conn
        return conn

    def tx(self) -> AbstractContextManager[Connection]:
        return self.db.tx()
