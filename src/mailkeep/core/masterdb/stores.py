"""The stores registry: which store directories this data directory has attached, under which
id and name, in which state. Ids are never reused (store_ids)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from mailkeep.core.masterdb.base import Repository

STATES = ("current", "normal", "writeProtected", "disabled")
NAME_RE = re.compile(r"^[^/\\\x00-\x1f]{1,100}$")
NAME_RULE = ("1-100 characters, no slashes or control characters, no surrounding spaces, "
             "not . or ..")


def valid_name(name: str) -> bool:
    """Whether a store may be called this (it also names its directory)."""
    return (bool(NAME_RE.match(name)) and name.strip() == name and name not in (".", "..")
            and len(name.encode("utf-8", "surrogateescape")) <= 200)


@dataclass(frozen=True)
class StoreRecord:
    id: int
    uuid: str
    name: str
    path: Path
    state: str


class StoreRegistry(Repository):
    def all(self) -> list[StoreRecord]:
        rows = self.conn.execute("SELECT id, uuid, name, path, state FROM stores ORDER BY id")
        return [StoreRecord(r[0], r[1], r[2], Path(r[3]), r[4]) for r in rows]

    def add(self, uuid: str, name: str, path: Path, state: str) -> StoreRecord:
        with self.tx() as conn:
            row = conn.execute("SELECT id FROM store_ids WHERE uuid = ?", (uuid,)).fetchone()
            values = (uuid, name, str(path), state, int(time.time()))
            if row:  # attached before: its id again
                conn.execute("INSERT INTO stores (id, uuid, name, path, state, attached_at)"
                             " VALUES (?,?,?,?,?,?)", (row[0], *values))
                store_id = int(row[0])
            else:  # a new id, never one a detached store had
                store_id = int(conn.execute(
                    "INSERT INTO stores (uuid, name, path, state, attached_at)"
                    " VALUES (?,?,?,?,?) RETURNING id", values).fetchone()[0])
                conn.execute("INSERT INTO store_ids VALUES (?, ?)", (uuid, store_id))
        return StoreRecord(store_id, uuid, name, path, state)

    def knows(self, uuid: str) -> bool:
        """Whether this data directory has ever had the store attached."""
        return self.conn.execute("SELECT 1 FROM store_ids WHERE uuid = ?", (uuid,)
                                 ).fetchone() is not None

    def remove(self, store_id: int) -> None:
        self.conn.execute("DELETE FROM stores WHERE id = ?", (store_id,))

    def move(self, store_id: int, path: Path) -> None:
        self.conn.execute("UPDATE stores SET path = ? WHERE id = ?", (str(path), store_id))

    def rename(self, store_id: int, name: str) -> None:
        self.conn.execute("UPDATE stores SET name = ? WHERE id = ?", (name, store_id))

    def set_state(self, store_id: int, state: str) -> None:
        """Making a store current makes the previous current one normal, in one transaction."""
        with self.tx() as conn:
            if state == "current":
                conn.execute("UPDATE stores SET state = 'normal' WHERE state = 'current'")
            conn.execute("UPDATE stores SET state = ? WHERE id = ?", (state, store_id))

    # -- indexes selected for a rebuild ------------------------------------------------------
    def selected_indexes(self) -> set[int]:
        return {int(r[0]) for r in self.conn.execute("SELECT store_id FROM store_index_rebuild")}

    def select_indexes(self, store_ids: list[int]) -> None:
        self.conn.executemany("INSERT INTO store_index_rebuild VALUES (?) ON CONFLICT DO NOTHING",
                              [(i,) for i in store_ids])

    def unselect_index(self, store_id: int) -> None:
        self.conn.execute("DELETE FROM store_index_rebuild WHERE store_id = ?", (store_id,))
