"""Console sessions as stored (core.admin.sessions has the rules)."""

from __future__ import annotations

from typing import Any

from mailkeep.core.masterdb.base import Repository

_COLUMNS = "user_name, role, address, created_at, last_seen, timeout_s"


class SessionRows(Repository):
    def insert(self, id_hash: str, user_name: str, role: str, address: str, now: float,
               timeout_s: int) -> None:
        self.conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (id_hash, user_name, role, address, now, now, timeout_s))

    def get(self, id_hash: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(
            f"SELECT {_COLUMNS} FROM sessions WHERE id_hash = ?", (id_hash,)).fetchone()
        return row

    def touch(self, id_hash: str, now: float) -> None:
        self.conn.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, id_hash))

    def delete(self, id_hash: str) -> None:
        self.conn.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))

    def user_names(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT DISTINCT user_name FROM sessions")}

    def delete_user(self, user_name: str) -> int:
        """The sessions of exactly this spelling (compare names with users.name_key)."""
        cur = self.conn.execute("DELETE FROM sessions WHERE user_name = ?", (user_name,))
        return int(cur.rowcount)

    def live(self, now: float) -> list[tuple[Any, ...]]:
        """The sessions not expired at `now`, oldest first; expired ones are removed."""
        self.conn.execute("DELETE FROM sessions WHERE last_seen + timeout_s < ?", (now,))
        return self.conn.execute(f"SELECT {_COLUMNS} FROM sessions ORDER BY created_at"
                                 ).fetchall()
