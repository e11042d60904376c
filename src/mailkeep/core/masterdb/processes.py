"""The processes of the servers of an installation on PostgreSQL, as rows (jobs/shared.py): the
server that runs one writes its status there, so that any server answers get-status and
cancel-async for it; NOTIFY on the channel `mailkeep_process` (payload: the token) says that a
row changed."""

from __future__ import annotations

import json
from typing import Any

from mailkeep.core.masterdb.base import Repository

CHANNEL = "mailkeep_process"
_COLUMNS = ("token, name, user_name, node, started, version, status_code, percent, status_text,"
            " result, error_message, error_details, cancel_requested, heartbeat, finished_at")

SCHEMA = """
CREATE TABLE IF NOT EXISTS processes (
    token TEXT PRIMARY KEY, name TEXT NOT NULL, user_name TEXT NOT NULL, node TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL, version BIGINT NOT NULL,
    status_code TEXT NOT NULL, percent INTEGER, status_text TEXT, result TEXT,
    error_message TEXT, error_details TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    heartbeat DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS process_log (
    token TEXT NOT NULL, version BIGINT NOT NULL, line TEXT NOT NULL,
    PRIMARY KEY (token, version));
"""


class ProcessRows(Repository):
    def ensure(self) -> None:
        with self.tx() as conn:
            conn.executescript(SCHEMA)

    def put(self, row: dict[str, Any], lines: list[tuple[int, str]]) -> None:
        """A process's status as its server has it now, and its new log lines; NOTIFY."""
        with self.db.tx(exclusive=False) as conn:
            conn.execute(
                f"INSERT INTO processes ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,false,?,?)"
                " ON CONFLICT (token) DO UPDATE SET version = excluded.version, status_code ="
                " excluded.status_code, percent = excluded.percent, status_text ="
                " excluded.status_text, result = excluded.result, error_message ="
                " excluded.error_message, error_details = excluded.error_details, heartbeat ="
                " excluded.heartbeat, finished_at = excluded.finished_at"
                " WHERE processes.version <= excluded.version",  # (never back in time)
                (row["token"], row["name"], row["user"], row["node"], row["started"],
                 row["version"], row["status_code"], row["percent"], row["status_text"],
                 None if row["result"] is None else json.dumps(row["result"]),
                 row["error"][0] if row["error"] else None,
                 row["error"][1] if row["error"] else None, row["heartbeat"],
                 row["finished_at"]))
            if lines:
                conn.executemany("INSERT INTO process_log VALUES (?, ?, ?) ON CONFLICT DO"
                                 " NOTHING", [(row["token"], v, t) for v, t in lines])
            conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, row["token"]))

    def get(self, token: str) -> dict[str, Any] | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM processes WHERE token = ?",
                                (token,)).fetchone()
        if row is None:
            return None
        keys = [k.strip() for k in _COLUMNS.split(",")]
        out = dict(zip(keys, row, strict=True))
        out["result"] = None if out["result"] is None else json.loads(out["result"])
        return out

    def log_after(self, token: str, version: int) -> list[str]:
        return [str(r[0]) for r in self.conn.execute(
            "SELECT line FROM process_log WHERE token = ? AND version > ? ORDER BY version",
            (token, version))]

    def request_cancel(self, token: str) -> None:
        with self.db.tx(exclusive=False) as conn:
            conn.execute("UPDATE processes SET cancel_requested = true WHERE token = ?",
                         (token,))
            conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, token))

    def cancel_requested(self, tokens: list[str]) -> list[str]:
        return [str(r[0]) for r in self.conn.execute(
            "SELECT token FROM processes WHERE token = ANY(?) AND cancel_requested",
            (tokens,))]

    def abandon(self, token: str, heartbeat: float, now: float, message: str) -> bool:
        """A running process whose server stopped beating (as of `heartbeat`): failed."""
        with self.db.tx(exclusive=False) as conn:
            done: bool = conn.execute(
                "UPDATE processes SET status_code = 'failed', version = version + 1,"
                " error_message = ?, error_details = 'server_gone', finished_at = ? WHERE"
                " token = ? AND status_code = 'running' AND heartbeat = ?",
                (message, now, token, heartbeat)).rowcount == 1
            if done:
                conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, token))
            return done

    def forget_before(self, when: float) -> None:
        with self.db.tx(exclusive=False) as conn:
            conn.execute("DELETE FROM process_log WHERE token IN (SELECT token FROM processes"
                         " WHERE finished_at < ?)", (when,))
            conn.execute("DELETE FROM processes WHERE finished_at < ?", (when,))
