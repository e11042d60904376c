"""Finished processes of the server's engine: who ran what, when, and how it ended."""

from __future__ import annotations

from typing import Any

from mailkeep.core.masterdb.base import Repository

_KEYS = ("token", "name", "user", "started", "finished", "outcome", "error")
_SELECTED = ", ".join(f'"{k}"' for k in _KEYS)  # "user": a reserved word in PostgreSQL


class ProcessHistory(Repository):
    def record(self, token: str, name: str, user: str, started: float, finished: float,
               outcome: str, error: str | None) -> None:
        self.conn.execute("INSERT INTO process_history VALUES (?,?,?,?,?,?,?) ON CONFLICT "
                          "(token) DO UPDATE SET name = excluded.name, \"user\" = "
                          "excluded.\"user\", started = excluded.started, finished = "
                          "excluded.finished, outcome = excluded.outcome, error = excluded.error",
                          (token, name, user, started, finished, outcome, error))

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.conn.execute(f"SELECT {_SELECTED} FROM process_history"
                                 " ORDER BY finished DESC LIMIT ?", (limit,)).fetchall()
        return [dict(zip(_KEYS, r, strict=True)) for r in rows]

    def failures(self, start: float, end: float, limit: int) -> list[dict[str, Any]]:
        """Processes that ended in [start, end) other than succeeded, oldest first."""
        rows = self.conn.execute(
            f"SELECT {_SELECTED} FROM process_history WHERE finished >= ? AND"
            " finished < ? AND outcome != 'succeeded' ORDER BY finished LIMIT ?",
            (start, end, limit)).fetchall()
        return [dict(zip(_KEYS, r, strict=True)) for r in rows]
