"""Archiving profiles (properties, sealed secrets, incremental state, automatic execution) and
the worker results of their runs, as stored (profiles/ has the rules)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from mailkeep.core.masterdb.base import Repository

_COLUMNS = "id, properties, secrets, seal_id, state, automatic, pause_s, windows"
RESULT_COLUMNS = ("id", "profile_id", "profile_name", "profile_type", "user_name", "started_by",
                  "start", "complete", "result", "archived", "duplicates", "skipped", "failed",
                  "deleted", "bytes", "error")
INTERRUPTED = "The run was interrupted: the process running it ended before it finished."


class NameTaken(Exception):
    """Another profile has this name."""


class ProfileRows(Repository):
    # -- profiles -----------------------------------------------------------------------------
    def all(self) -> list[tuple[Any, ...]]:
        """(id, properties, secrets, seal id, state, automatic, pause, windows) of each profile;
        properties, secrets and state as JSON text."""
        return self.conn.execute(f"SELECT {_COLUMNS} FROM profiles ORDER BY id").fetchall()

    def get(self, profile_id: int) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(
            f"SELECT {_COLUMNS} FROM profiles WHERE id = ?", (profile_id,)).fetchone()
        return row

    def insert(self, props: dict[str, Any], sealed: dict[str, str], seal_id: str,
               now: float) -> int:
        try:
            cur = self.conn.execute(
                "INSERT INTO profiles (name, type, user_name, properties, secrets, seal_id,"
                " created) VALUES (?,?,?,?,?,?,?) RETURNING id",
                (props["name"], props["type"], props["userName"], json.dumps(props),
                 json.dumps(sealed), seal_id, now))
        except sqlite3.IntegrityError:
            raise NameTaken(props["name"]) from None
        return int(cur.fetchone()[0])

    def update(self, profile_id: int, props: dict[str, Any], sealed: dict[str, str],
               state: dict[str, Any]) -> None:
        try:
            self.conn.execute(
                "UPDATE profiles SET name = ?, user_name = ?, properties = ?, secrets = ?,"
                " state = ? WHERE id = ?",
                (props["name"], props["userName"], json.dumps(props), json.dumps(sealed),
                 json.dumps(state), profile_id))
        except sqlite3.IntegrityError:
            raise NameTaken(props["name"]) from None

    def delete(self, profile_id: int) -> None:
        self.conn.execute("DELETE FROM profiles WHERE id = ?", (profile_id,))

    def set_execution(self, profile_id: int, automatic: bool, pause_s: int,
                      windows: str | None) -> None:
        self.conn.execute("UPDATE profiles SET automatic = ?, pause_s = ?, windows = ?"
                          " WHERE id = ?", (int(automatic), pause_s, windows, profile_id))

    def save_state(self, profile_id: int, state: dict[str, Any]) -> None:
        self.conn.execute("UPDATE profiles SET state = ? WHERE id = ?",
                          (json.dumps(state, separators=(",", ":")), profile_id))

    def sealed_secrets(self, profile_id: int) -> dict[str, str]:
        row = self.conn.execute("SELECT secrets FROM profiles WHERE id = ?",
                                (profile_id,)).fetchone()
        secrets: dict[str, str] = json.loads(row[0]) if row else {}
        return secrets

    # -- worker results -----------------------------------------------------------------------
    def begin_result(self, profile_id: int | None, name: str, kind: str, user_name: str,
                     started_by: str, now: float) -> int:
        cur = self.conn.execute(
            "INSERT INTO worker_results (profile_id, profile_name, profile_type, user_name,"
            " started_by, start, result) VALUES (?,?,?,?,?,?, 'running') RETURNING id",
            (profile_id, name, kind, user_name, started_by, now))
        return int(cur.fetchone()[0])

    def finish_result(self, result_id: int, **columns: Any) -> None:
        values = {k: json.dumps(v) if k in ("failures", "warnings") else v
                  for k, v in columns.items()}
        names = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(f"UPDATE worker_results SET {names} WHERE id = ?",
                          (*values.values(), result_id))

    def running_results(self) -> list[tuple[int, int | None]]:
        """(result id, profile id) of the runs still marked running."""
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT id, profile_id FROM worker_results WHERE result = 'running'")]

    def interrupted(self, result_id: int) -> None:
        self.conn.execute(
            "UPDATE worker_results SET result = 'failed', complete = coalesce(complete, start),"
            " error = ? WHERE id = ? AND result = 'running'", (INTERRUPTED, result_id))

    def results(self, start: float, end: float, profile_id: int | None,
                user_name: str | None) -> list[dict[str, Any]]:
        sql = (f"SELECT {', '.join(RESULT_COLUMNS)} FROM worker_results WHERE start >= ? AND "
               "start < ?")
        params: list[Any] = [start, end]
        if profile_id is not None:
            sql += " AND profile_id = ?"
            params.append(profile_id)
        if user_name is not None:
            sql += " AND user_name = ?"
            params.append(user_name)
        rows = self.conn.execute(sql + " ORDER BY start, id", params).fetchall()
        return [dict(zip(RESULT_COLUMNS, r, strict=True)) for r in rows]

    def result(self, result_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {', '.join(RESULT_COLUMNS)}, failures, warnings, log FROM worker_results"
            " WHERE id = ?", (result_id,)).fetchone()
        if row is None:
            return None
        out = dict(zip(RESULT_COLUMNS, row[:-3], strict=True))
        out["failures"] = json.loads(row[-3])
        out["warnings"] = json.loads(row[-2])
        out["log"] = row[-1]
        return out

    def last_result(self, profile_id: int) -> dict[str, Any] | None:
        """The latest run's id, result, start and complete time (not its log)."""
        row = self.conn.execute("SELECT id, result, start, complete FROM worker_results WHERE"
                                " profile_id = ? ORDER BY start DESC, id DESC LIMIT 1",
                                (profile_id,)).fetchone()
        if row is None:
            return None
        return dict(zip(("id", "result", "start", "complete"), row, strict=True))
