"""Every finished process, recorded: who ran what, when, and how it ended (master database and
audit log). The engine calls `record` once per process, from its worker threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailkeep.core.master import Master
from mailkeep.jobs.process import FinishedRecord

log = logging.getLogger("mailkeep.jobs")

SCHEMA = """
CREATE TABLE IF NOT EXISTS process_history (
    token TEXT PRIMARY KEY, name TEXT NOT NULL, user TEXT NOT NULL, started REAL NOT NULL,
    finished REAL NOT NULL, outcome TEXT NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS process_history_finished ON process_history(finished);
"""


class ProcessHistory:
    def __init__(self, db: Path, keep: Callable[[FinishedRecord], bool] = lambda r: True
                 ) -> None:
        self._keep = keep
        self._master = Master(db)  # its own connection: no other module's transaction to join
        self._master.conn.executescript(SCHEMA)
        self._master.conn.execute("PRAGMA synchronous=NORMAL")  # history, not archived mail
        self._lock = threading.Lock()

    def record(self, rec: FinishedRecord) -> None:
        if not self._keep(rec):
            return
        with self._lock:
            self._master.conn.execute(
                "INSERT OR REPLACE INTO process_history VALUES (?,?,?,?,?,?,?)",
                (rec.token, rec.name, rec.user, rec.started, rec.finished, rec.outcome,
                 rec.error))
            self._master.audit(f"api:{rec.user}", f"process.{rec.outcome}", function=rec.name,
                               token=rec.token, seconds=round(rec.finished - rec.started, 3),
                               error=rec.error)
        log.info("%s by %s: %s", rec.name, rec.user, rec.outcome)

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._master.conn.execute(
            "SELECT token, name, user, started, finished, outcome, error FROM process_history"
            " ORDER BY finished DESC LIMIT ?", (limit,)).fetchall()
        keys = ("token", "name", "user", "started", "finished", "outcome", "error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def close(self) -> None:
        self._master.close()
