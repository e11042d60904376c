"""Login sessions of the management console (`/mcapi`), kept in the master database.

A session id is 32 upper-case hex characters (128 random bits). Only its SHA-256 is stored, so
that a copy of the database opens no session. A session ends at logout, or when it has been
idle longer than its timeout; it survives a server restart. Activity is written at most every
TOUCH_EVERY seconds, so that a busy console does not turn every read into a database write.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from mailkeep.core.master import Master

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    address TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    timeout_s INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_name);
"""
TOUCH_EVERY = 15.0
DEFAULT_TIMEOUT_MIN = 30
MAX_TIMEOUT_MIN = 7 * 24 * 60


@dataclass(frozen=True)
class Session:
    user_name: str
    role: str
    address: str
    created_at: float
    last_seen: float
    timeout_s: int

    @property
    def expires_at(self) -> float:
        return self.last_seen + self.timeout_s


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.strip().upper().encode("ascii", "replace")).hexdigest()


class Sessions:
    def __init__(self, master: Master, clock: Callable[[], float] = time.time) -> None:
        self.master = master
        self.clock = clock
        self._lock = threading.Lock()
        master.conn.executescript(SCHEMA)

    def open(self, user_name: str, role: str, address: str, timeout_min: int) -> str:
        """A new session; returns its id (shown once, to the one who logged in)."""
        session_id = secrets.token_hex(16).upper()
        now = self.clock()
        with self._lock:
            self.master.conn.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_digest(session_id), user_name, role, address, now, now, timeout_min * 60))
            self.master.audit(user_name, "session.login", role=role, address=address,
                              timeout_min=timeout_min)
        return session_id

    def get(self, session_id: str) -> Session | None:
        """The live session with this id (its activity noted), or None."""
        if not session_id:
            return None
        key = _digest(session_id)
        now = self.clock()
        with self._lock:
            row = self.master.conn.execute(
                "SELECT user_name, role, address, created_at, last_seen, timeout_s FROM sessions"
                " WHERE id_hash = ?", (key,)).fetchone()
            if row is None:
                return None
            session = Session(*row)
            if now > session.expires_at:
                self.master.conn.execute("DELETE FROM sessions WHERE id_hash = ?", (key,))
                return None
            if now - session.last_seen >= TOUCH_EVERY:
                self.master.conn.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?",
                                         (now, key))
                session = replace(session, last_seen=now)
        return session

    def close(self, session_id: str) -> bool:
        with self._lock:
            row = self.master.conn.execute("SELECT user_name FROM sessions WHERE id_hash = ?",
                                           (_digest(session_id),)).fetchone()
            if row is None:
                return False
            self.master.conn.execute("DELETE FROM sessions WHERE id_hash = ?",
                                     (_digest(session_id),))
            self.master.audit(row[0], "session.logout")
        return True

    def end_user(self, user_name: str) -> int:
        """End every session of an account (deleted, renamed, password changed)."""
        with self._lock:
            cur = self.master.conn.execute("DELETE FROM sessions WHERE user_name = ? COLLATE "
                                           "NOCASE", (user_name,))
        return int(cur.rowcount)

    def active(self) -> list[Session]:
        """Live sessions, oldest first; expired ones are removed on the way."""
        now = self.clock()
        with self._lock:
            self.master.conn.execute("DELETE FROM sessions WHERE last_seen + timeout_s < ?",
                                     (now,))
            rows = self.master.conn.execute(
                "SELECT user_name, role, address, created_at, last_seen, timeout_s FROM sessions"
                " ORDER BY created_at").fetchall()
        return [Session(*r) for r in rows]
