"""What every repository of the master database shares: its database's connection of this
thread, and its write transaction."""

from __future__ import annotations

import sqlite3

TYPE_CHECKING = False  # (typing nor contextlib is imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from mailkeep.core.masterdb import MasterDB

BUSY_TIMEOUT_MS = 10_000  # how long a statement waits for another process's write


class Repository:
    def __init__(self, db: MasterDB) -> None:
        self.db = db

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.db.tx()
