"""The master database of a data directory: the stores registry and the audit log.

Later layers add accounts, profiles, jobs and sessions here; each table is created by the
module that owns it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATES = ("current", "normal", "writeProtected", "disabled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS stores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('current', 'normal', 'writeProtected', 'disabled')),
    attached_at INTEGER NOT NULL);
-- Every store ever attached keeps its id, so that message ids stay valid across
-- detach and attach.
CREATE TABLE IF NOT EXISTS store_ids (uuid TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE);
CREATE UNIQUE INDEX IF NOT EXISTS one_current_store ON stores(state) WHERE state = 'current';
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    details TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StoreRecord:
    id: int
    uuid: str
    name: str
    path: Path
    state: str


class Master:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def stores(self) -> list[StoreRecord]:
        rows = self.conn.execute("SELECT id, uuid, name, path, state FROM stores ORDER BY id")
        return [StoreRecord(r[0], r[1], r[2], Path(r[3]), r[4]) for r in rows]

    def add_store(self, uuid: str, name: str, path: Path, state: str) -> StoreRecord:
        row = self.conn.execute("SELECT id FROM store_ids WHERE uuid = ?", (uuid,)).fetchone()
        known = row[0] if row else None
        cur = self.conn.execute(
            "INSERT INTO stores (id, uuid, name, path, state, attached_at) VALUES (?,?,?,?,?,?)",
            (known, uuid, name, str(path), state, int(time.time())))
        assert cur.lastrowid is not None
        self.conn.execute("INSERT OR IGNORE INTO store_ids VALUES (?, ?)", (uuid, cur.lastrowid))
        return StoreRecord(cur.lastrowid, uuid, name, path, state)

    def knows_store(self, uuid: str) -> bool:
        """Whether this data directory has ever had the store attached."""
        return self.conn.execute("SELECT 1 FROM store_ids WHERE uuid = ?", (uuid,)
                                 ).fetchone() is not None

    def remove_store(self, store_id: int) -> None:
        self.conn.execute("DELETE FROM stores WHERE id = ?", (store_id,))

    def move_store(self, store_id: int, path: Path) -> None:
        self.conn.execute("UPDATE stores SET path = ? WHERE id = ?", (str(path), store_id))

    def rename_store(self, store_id: int, name: str) -> None:
        self.conn.execute("UPDATE stores SET name = ? WHERE id = ?", (name, store_id))

    def set_state(self, store_id: int, state: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if state == "current":
                self.conn.execute("UPDATE stores SET state = 'normal' WHERE state = 'current'")
            self.conn.execute("UPDATE stores SET state = ? WHERE id = ?", (state, store_id))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def audit(self, actor: str, action: str, **details: Any) -> None:
        self.conn.execute("INSERT INTO audit (at, actor, action, details) VALUES (?,?,?,?)",
                          (int(time.time()), actor, action,
                           json.dumps(details, sort_keys=True, default=str)))
