"""Things that went wrong, and the notification mails that tell an administrator about them.

Any process (the server, a CLI import) records an event in the master database's outbox
(core.masterdb.outbox) with `record_event`: a quick insert that never raises into the operation
that caused it. The server
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

from mailkeep.core.masterdb import MasterDB

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
SHOWN_PER_MAIL = 50
BACKOFF_S = (30, 60, 120, 300, 600, 1800, 3600)


def record_event(master: MasterDB, kind: str, text: str) -> None:
    """Note that something went wrong; never raises (a notification must not fail what
    caused it)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")  # a programming error
    try:
        master.outbox.add(kind, text)
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

    def __init__(self, master: MasterDB, send: Callable[[str, str], str],
                 interval_s: Callable[[], float], configured: Callable[[], bool],
                 clock: Callable[[], float] = time.time, poll_s: float = 5.0) -> None:
        self.master = master
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
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the thread must go on whatever one round met
                log.exception("notification round failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def run_once(self) -> Outcome:
        """One round: mail every kind that is due. Returns what it did."""
        out = Outcome()
        now = self.clock()
        if now < self._next_try:
            return out
        outbox = self.master.outbox
        pending = outbox.pending()
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
        last = outbox.last_mails()
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
            outbox.sent(kind, [e[0] for e in events], now)
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
