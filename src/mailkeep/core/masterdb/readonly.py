"""The stores registry read from a data directory's master database without opening it for
writing, nor importing the modules that do (core/finder.py: a search from the command line)."""

from __future__ import annotations

import os
import sqlite3

from mailkeep.core.files import sqlite_read_only
from mailkeep.core.masterdb.base import BUSY_TIMEOUT_MS
from mailkeep.core.masterdb.schema import FILE, VERSION


def read_only_stores(data_dir: str) -> list[tuple[int, str, str, str]] | None:
    """(id, name, directory, state) of each store in the registry of data_dir's master
    database, read without opening it for writing (nor importing its modules); None when there
    is none yet, it cannot be read so, or its schema is not this version's (MasterDB makes it
    or brings it up to date)."""
    path = os.path.join(data_dir, FILE)
    if os.environ.get("MAILKEEP_DATABASE"):  # in PostgreSQL: MasterDB reads it
        return None
    if not os.path.isfile(path):
        return None
    try:
        conn = sqlite3.connect(sqlite_read_only(path), uri=True,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error:
        return None
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != VERSION:
            return None
        rows = conn.execute("SELECT id, name, path, state FROM stores ORDER BY id")
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]
    except sqlite3.Error:
        return None
    finally:
        conn.close()
