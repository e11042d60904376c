"""Login sessions of the management console (`/mcapi`), kept in the master database.

A session id is 32 upper-case hex characters (128 random bits). Only its SHA-256 is stored, so
that a copy of the database opens no session. A session ends at logout, or when it has been
idle longer than its timeout; it survives a server restart. Activity is written at most every
TOUCH_EVERY seconds, so that a busy console does not turn every read into a database write.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from mailkeep.core.admin.users import name_key
from mailkeep.core.masterdb import MasterDB

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


def digest(session_id: str) -> str:
    """What a session is known by: the SHA-256 of its id (the id itself is never kept)."""
    return _digest(session_id)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.strip().upper().encode("ascii", "replace")).hexdigest()


class Sessions:
    """Console sessions over the master database's session rows (core.masterdb.sessions)."""

    def __init__(self, master: MasterDB, clock: Callable[[], float] = time.time) -> None:
        self.master = master
        self.rows = master.sessions
        self.clock = clock

    def open(self, user_name: str, role: str, address: str, timeout_min: int) -> str:
        """A new session; returns its id (shown once, to the one who logged in)."""
        session_id = secrets.token_hex(16).upper()
        with self.master.tx():
            self.rows.insert(_digest(session_id), user_name, role, address, self.clock(),
                             timeout_min * 60)
            self.master.audit.write(user_name, "session.login", role=role, address=address,
                                    timeout_min=timeout_min)
        return session_id

    def get(self, session_id: str) -> Session | None:
        """The live session with this id (its activity noted), or None."""
        if not session_id:
            return None
        key = _digest(session_id)
        now = self.clock()
        row = self.rows.get(key)
        if row is None:
            return None
        session = Session(*row)
        if now > session.expires_at:
            self.rows.delete(key)
            return None
        if now - session.last_seen >= TOUCH_EVERY:
            self.rows.touch(key, now)
            session = replace(session, last_seen=now)
        return session

    def alive(self, key: str) -> bool:
        """Whether the session of this digest is still open (links made in it end with it)."""
        row = self.rows.get(key)
        return row is not None and self.clock() <= Session(*row).expires_at

    def close(self, session_id: str) -> bool:
        key = _digest(session_id)
        with self.master.tx():
            row = self.rows.get(key)
            if row is None:
                return False
            self.rows.delete(key)
            self.master.audit.write(row[0], "session.logout")
        return True

    def end_user(self, user_name: str) -> int:
        """End every session of an account (deleted, renamed, password changed): of every
        spelling of its name, compared as user names are."""
        key = name_key(user_name)
        with self.master.tx():
            return sum(self.rows.delete_user(n) for n in self.rows.user_names()
                       if name_key(n) == key)

    def active(self) -> list[Session]:
        """Live sessions, oldest first; expired ones are removed on the way."""
        return [Session(*r) for r in self.rows.live(self.clock())]
