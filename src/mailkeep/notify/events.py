"""Things that went wrong, and the notification mails that tell an administrator about them.

Any process (the server, a CLI import) records an event in the master database's outbox with
`record_event`: a quick insert that never raises into the operation that caused it. The server
runs one `Notifier` thread that reads the outbox and mails it with the saved notification
settings: grouped per kind (the first event of a kind goes out at once; later ones of that kind
wait for `notify.interval` seconds after the last mail and then go out together, with their
count), retried with growing pauses when sending fails, and logged. Events stay in the outbox
until a mail carried them, so a restart loses none.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailkeep.core.master import Master

log = logging.getLogger("mailkeep.notify")

KINDS = {
    "process.failed": "A process failed",
    "process.cancelled": "A process was cancelled",
    "verify.damage": "Verification found damage",
    "store.unavailable": "A store cannot be opened",
    "disk.low": "The disk is nearly full",
    "auth.lockout": "An account was locked out after failed logins",
    "import.failures": "An import could not archive some messages",
    "profile.failed": "An archiving profile failed",
    "profile.errors": "An archiving profile could not archive some messages",
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_events (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    sent_at REAL);
CREATE INDEX IF NOT EXISTS notify_pending ON notify_events(sent_at) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS notify_kinds (kind TEXT PRIMARY KEY, last_mail REAL NOT NULL);
"""
SHOWN_PER_MAIL = 50
BACKOFF_S = (30, 60, 120, 300, 600, 1800, 3600)


def record_event(db: Path | Master, kind: str, text: str) -> None:
    """Note that something went wrong; never raises (a notification must not fail what
    caused it) and never waits long."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")  # a programming error
    try:
        conn = db.conn if isinstance(db, Master) else sqlite3.connect(db, timeout=2)
        try:
            conn.executescript(SCHEMA)
            conn.execute("INSERT INTO notify_events (at, kind, text) VALUES (?, ?, ?)",
                         (time.time(), kind, text[:2000]))
            if not isinstance(db, Master):
                conn.commit()
        finally:
            if not isinstance(db, Master):
                conn.close()
    except sqlite3.Error as exc:
        log.warning("could not record a %s notification: %s", kind, exc)


@dataclass
class Outcome:
    mails: int = 0
    events: int = 0
    failed: str | None = None


class Notifier:
    """Mails the outbox. `send(subject, body)` sends with the saved settings and raises on
    failure; `interval_s()` reads the grouping interval (a setting, so it may change)."""

    def __init__(self, db: Path, send: Callable[[str, str], str],
                 interval_s: Callable[[], float], configured: Callable[[], bool],
                 clock: Callable[[], float] = time.time, poll_s: float = 5.0) -> None:
        self.db = db
        self.send = send
        self.interval_s = interval_s
        self.configured = configured
        self.clock = clock
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._next_try = 0.0
        self._warned_unconfigured = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mailkeep-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        conn.executescript(SCHEMA)
        try:
            while not self._stop.is_set():
                try:
                    self.run_once(conn)
                except Exception:  # the thread must go on whatever one round met
                    log.exception("notification round failed")
                self._wake.wait(self.poll_s)
                self._wake.clear()
        finally:
            conn.close()

    def run_once(self, conn: sqlite3.Connection) -> Outcome:
        """One round: mail every kind that is due. Returns what it did."""
        out = Outcome()
        now = self.clock()
        if now < self._next_try:
            return out
        pending = conn.execute("SELECT id, at, kind, text FROM notify_events WHERE sent_at IS "
                               "NULL ORDER BY id").fetchall()
        if not pending:
            return out
        if not self.configured():
            if not self._warned_unconfigured:
                log.warning("%d notification(s) not sent: the notification mail is not "
                            "configured (mail/configuration/set or SetSmtpSettings)",
                            len(pending))
                self._warned_unconfigured = True
            return out
        self._warned_unconfigured = False
        last = dict(conn.execute("SELECT kind, last_mail FROM notify_kinds").fetchall())
        by_kind: dict[str, list[tuple[int, float, str]]] = {}
        for event_id, at, kind, text in pending:
            by_kind.setdefault(kind, []).append((event_id, at, text))
        interval = self.interval_s()
        for kind, events in by_kind.items():
            if now - last.get(kind, 0.0) < interval:
                continue  # grouped: goes out when the interval since the last mail is over
            subject, body = compose_mail(kind, events)
            try:
                summary = self.send(subject, body)
            except Exception as exc:
                self._failures += 1
                pause = BACKOFF_S[min(self._failures, len(BACKOFF_S)) - 1]
                self._next_try = now + pause
                out.failed = str(getattr(exc, "message", None) or exc)
                log.warning("notification mail (%s, %d event(s)) not sent: %s; next try in "
                            "%d s", kind, len(events), out.failed, pause)
                return out
            self._failures = 0
            ids = [e[0] for e in events]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("UPDATE notify_events SET sent_at = ? WHERE id = ?",
                             [(now, i) for i in ids])
            conn.execute("INSERT OR REPLACE INTO notify_kinds VALUES (?, ?)", (kind, now))
            conn.execute("COMMIT")
            log.info("notification mail sent (%s, %d event(s)): %s", kind, len(events), summary)
            out.mails += 1
            out.events += len(events)
        return out


def compose_mail(kind: str, events: list[tuple[int, float, str]]) -> tuple[str, str]:
    """(subject, body) of one mail carrying these events of one kind."""
    title = KINDS[kind]
    count = len(events)
    subject = title if count == 1 else f"{title} ({count} times)"
    lines = [f"{title}: {count} event(s) since the last notification of this kind.", ""]
    for _id, at, text in events[:SHOWN_PER_MAIL]:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
        lines.append(f"{stamp}  {text}")
    if count > SHOWN_PER_MAIL:
        lines.append(f"... and {count - SHOWN_PER_MAIL} more (the audit log has them all).")
    lines += ["", "-- mailkeep"]
    return subject, "\r\n".join(lines) + "\r\n"
