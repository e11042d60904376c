"""What the last directory sync found of each directory account (core.admin.directory has the
rules): its entry's DN, whether the directory disables it, whether it was gone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailkeep.core.masterdb.base import Repository


@dataclass(frozen=True)
class DirectoryRow:
    user_id: int
    dn: str
    entry_id: str | None
    disabled: bool
    missing: bool
    synced_at: float


class DirectoryRows(Repository):
    def get(self, user_id: int) -> DirectoryRow | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM directory_accounts WHERE "
                                "user_id = ?", (user_id,)).fetchone()
        return None if row is None else _row(row)

    def by_entry(self, entry_id: str) -> DirectoryRow | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM directory_accounts WHERE "
                                "entry_id = ?", (entry_id,)).fetchone()
        return None if row is None else _row(row)

    def put(self, user_id: int, dn: str, entry_id: str | None, disabled: bool,
            now: float) -> None:
        self.conn.execute(f"INSERT INTO directory_accounts ({_COLUMNS}) VALUES "
                          "(?, ?, ?, ?, 0, ?) ON CONFLICT (user_id) DO UPDATE SET dn = "
                          "excluded.dn, entry_id = excluded.entry_id, disabled = "
                          "excluded.disabled, missing = 0, synced_at = excluded.synced_at",
                          (user_id, dn, entry_id, int(disabled), now))

    def set_missing(self, user_id: int, now: float) -> None:
        self.conn.execute("UPDATE directory_accounts SET missing = 1, synced_at = ? WHERE "
                          "user_id = ?", (now, user_id))

    def all(self) -> list[DirectoryRow]:
        return [_row(r) for r in self.conn.execute(
            f"SELECT {_COLUMNS} FROM directory_accounts")]


_COLUMNS = "user_id, dn, entry_id, disabled, missing, synced_at"


def _row(r: Any) -> DirectoryRow:
    return DirectoryRow(r[0], r[1], r[2], bool(r[3]), bool(r[4]), r[5])
