"""The notification outbox: events recorded by any process, until a mail carried them."""

from __future__ import annotations

import time

from mailkeep.core.masterdb.base import BUSY_TIMEOUT_MS, Repository

TEXT_MAX = 2000
ADD_WAIT_MS = 2000  # what an event waits for another writer: it must not hold up its cause


class Outbox(Repository):
    def add(self, kind: str, text: str, at: float | None = None) -> None:
        conn = self.conn
        row = (time.time() if at is None else at, kind, text[:TEXT_MAX])
        if self.db.postgres:  # an insert there waits for no other writer
            conn.execute("INSERT INTO notify_events (at, kind, text) VALUES (?, ?, ?)", row)
            return
        conn.execute(f"PRAGMA busy_timeout={ADD_WAIT_MS}")
        try:
            conn.execute("INSERT INTO notify_events (at, kind, text) VALUES (?, ?, ?)", row)
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def pending(self) -> list[tuple[int, float, str, str]]:
        """(id, at, kind, text) of the events no mail carried yet, oldest first."""
        return [(r[0], r[1], r[2], r[3]) for r in self.conn.execute(
            "SELECT id, at, kind, text FROM notify_events WHERE sent_at IS NULL ORDER BY id")]

    def unsent(self) -> tuple[int, float | None]:
        """(how many events no mail carried yet, when the first of them happened)."""
        count, oldest = self.conn.execute(
            "SELECT count(*), min(at) FROM notify_events WHERE sent_at IS NULL").fetchone()
        return int(count), oldest

    def last_mails(self) -> dict[str, float]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT kind, last_mail FROM notify_kinds")}

    def sent(self, kind: str, ids: list[int], now: float) -> None:
        with self.tx() as conn:
            conn.executemany("UPDATE notify_events SET sent_at = ? WHERE id = ?",
                             [(now, i) for i in ids])
            conn.execute("INSERT INTO notify_kinds VALUES (?, ?) ON CONFLICT (kind) DO UPDATE "
                         "SET last_mail = excluded.last_mail", (kind, now))

    def counts(self, start: float, end: float) -> list[tuple[str, int]]:
        """(kind, events) recorded in [start, end), by kind."""
        return [(r[0], int(r[1])) for r in self.conn.execute(
            "SELECT kind, count(*) FROM notify_events WHERE at >= ? AND at < ? GROUP BY kind"
            " ORDER BY kind", (start, end))]
