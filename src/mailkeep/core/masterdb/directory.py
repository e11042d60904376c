"""What the last directory sync found of each directory account (core.admin.directory has the
rules): its entry's DN, whether the directory disables it, whether it was gone."""

from __future__ import annotations

from dataclasses import dataclass

from mailkeep.core.masterdb.base import Repository


@dataclass(frozen=True)
class DirectoryRow:
    user_id: int
    dn: str
    disabled: bool
    missing: bool
    synced_at: float


class DirectoryRows(Repository):
    def get(self, user_id: int) -> DirectoryRow | None:
        row = self.conn.execute("SELECT user_id, dn, disabled, missing, synced_at FROM "
                                "directory_accounts WHERE user_id = ?", (user_id,)).fetchone()
        return None if row is None else DirectoryRow(row[0], row[1], bool(row[2]),
                                                     bool(row[3]), row[4])

    def put(self, user_id: int, dn: str, disabled: bool, now: float) -> None:
        self.conn.execute("INSERT OR REPLACE INTO directory_accounts VALUES (?, ?, ?, 0, ?)",
                          (user_id, dn, int(disabled), now))

    def set_missing(self, user_id: int, now: float) -> None:
        self.conn.execute("UPDATE directory_accounts SET missing = 1, synced_at = ? WHERE "
                          "user_id = ?", (now, user_id))

    def all(self) -> list[DirectoryRow]:
        return [DirectoryRow(r[0], r[1], bool(r[2]), bool(r[3]), r[4]) for r in self.conn.execute(
            "SELECT user_id, dn, disabled, missing, synced_at FROM directory_accounts")]
