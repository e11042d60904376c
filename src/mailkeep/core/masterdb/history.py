"""Finished processes of the server's engine: who ran what, when, and how it ended."""

from __future__ import annotations

from typing import Any

from mailkeep.core.masterdb.base import Repository

_KEYS = ("token", "name", "user", "started", "finished", "outcome", "error")


class ProcessHistory(Repository):
    def record(self, token: str, name: str, user: str, started: float, finished: float,
               outcome: str, error: str | None) -> None:
        self.conn.execute("INSERT OR REPLACE INTO process_history VALUES (?,?,?,?,?,?,?)",
                          (token, name, user, started, finished, outcome, error))

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.conn.execute(f"SELECT {', '.join(_KEYS)} FROM process_history"
                                 " ORDER BY finished DESC LIMIT ?", (limit,)).fetchall()
        return [dict(zip(_KEYS, r, strict=True)) for r in rows]

    def failures(self, start: float, end: float, limit: int) -> list[dict[str, Any]]:
        """Processes that ended in [start, end) other than succeeded, oldest first."""
        rows = self.conn.execute(
            f"SELECT {', '.join(_KEYS)} FROM process_history WHERE finished >= ? AND"
            " finished < ? AND outcome != 'succeeded' ORDER BY finished LIMIT ?",
            (start, end, limit)).fetchall()
        return [dict(zip(_KEYS, r, strict=True)) for r in rows]
