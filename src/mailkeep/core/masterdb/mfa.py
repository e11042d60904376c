"""Multi-factor login and app passwords as stored (core.admin.mfa has the rules)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mailkeep.core.masterdb.base import Repository


@dataclass(frozen=True)
class MfaRow:
    user_id: int
    secret: str | None  # sealed: the one in force (None: MFA is not on)
    pending: str | None  # sealed: set up, not yet confirmed
    last_step: int
    recovery: list[str]  # SHA-256 digests of the unused recovery codes

    @property
    def confirmed(self) -> bool:
        return self.secret is not None


@dataclass(frozen=True)
class AppPasswordRow:
    id: int
    user_id: int
    name: str
    created_at: float
    last_used: float | None


class MfaRows(Repository):
    def get(self, user_id: int) -> MfaRow | None:
        row = self.conn.execute("SELECT user_id, secret, pending, last_step, recovery FROM "
                                "user_mfa WHERE user_id = ?", (user_id,)).fetchone()
        if row is None:
            return None
        return MfaRow(row[0], row[1], row[2], row[3], json.loads(row[4]))

    def start(self, user_id: int, pending: str, now: float) -> None:
        """A new secret set up (replacing one set up before); the one in force stays."""
        self.conn.execute("INSERT INTO user_mfa (user_id, pending, created_at) VALUES (?, ?, ?) "
                          "ON CONFLICT (user_id) DO UPDATE SET pending = excluded.pending",
                          (user_id, pending, now))

    def confirm(self, user_id: int, pending: str, step: int, recovery: list[str]) -> bool:
        """The pending secret (the one a code was checked against) in force from the code's
        step on; False if it is no longer the pending one."""
        cur = self.conn.execute(
            "UPDATE user_mfa SET secret = pending, pending = NULL, last_step = ?, recovery = ? "
            "WHERE user_id = ? AND pending = ?", (step, json.dumps(recovery), user_id, pending))
        return cur.rowcount == 1

    def use_step(self, user_id: int, step: int) -> bool:
        """Take the code of `step`, once: False if it (or a later one) was taken already."""
        cur = self.conn.execute("UPDATE user_mfa SET last_step = ? WHERE user_id = ? AND "
                                "last_step < ?", (step, user_id, step))
        return cur.rowcount == 1

    def use_recovery(self, user_id: int, digest: str) -> bool:
        """Take one recovery code, once: False if it is not (or no longer) there."""
        with self.tx() as conn:
            row = conn.execute("SELECT recovery FROM user_mfa WHERE user_id = ?",
                               (user_id,)).fetchone()
            codes = json.loads(row[0]) if row else []
            if digest not in codes:
                return False
            codes.remove(digest)
            conn.execute("UPDATE user_mfa SET recovery = ? WHERE user_id = ?",
                         (json.dumps(codes), user_id))
            return True

    def delete(self, user_id: int) -> bool:
        return self.conn.execute("DELETE FROM user_mfa WHERE user_id = ?",
                                 (user_id,)).rowcount == 1

    def all_sealed(self) -> list[tuple[int, str | None, str | None]]:
        return [(r[0], r[1], r[2]) for r in self.conn.execute(
            "SELECT user_id, secret, pending FROM user_mfa")]

    def reseal(self, user_id: int, secret: str | None, pending: str | None) -> None:
        self.conn.execute("UPDATE user_mfa SET secret = ?, pending = ? WHERE user_id = ?",
                          (secret, pending, user_id))


class AppPasswordRows(Repository):
    def add(self, user_id: int, name: str, digest: str, now: float) -> None:
        self.conn.execute("INSERT INTO app_passwords (user_id, name, digest, created_at) "
                          "VALUES (?, ?, ?, ?)", (user_id, name, digest, now))

    def of(self, user_id: int) -> list[AppPasswordRow]:
        return [AppPasswordRow(*r) for r in self.conn.execute(
            "SELECT id, user_id, name, created_at, last_used FROM app_passwords WHERE "
            "user_id = ? ORDER BY name", (user_id,))]

    def find(self, digest: str) -> AppPasswordRow | None:
        row = self.conn.execute("SELECT id, user_id, name, created_at, last_used FROM "
                                "app_passwords WHERE digest = ?", (digest,)).fetchone()
        return AppPasswordRow(*row) if row else None

    def used(self, password_id: int, now: float) -> None:
        self.conn.execute("UPDATE app_passwords SET last_used = ? WHERE id = ?",
                          (now, password_id))

    def delete(self, user_id: int, name: str | None = None) -> int:
        if name is None:
            return self.conn.execute("DELETE FROM app_passwords WHERE user_id = ?",
                                     (user_id,)).rowcount
        return self.conn.execute("DELETE FROM app_passwords WHERE user_id = ? AND name = ?",
                                 (user_id, name)).rowcount
