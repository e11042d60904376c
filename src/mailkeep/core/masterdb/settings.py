"""Server settings as stored: a key and its value as JSON text; declared in core.admin.settings."""

from __future__ import annotations

from mailkeep.core.masterdb.base import Repository


class SettingRows(Repository):
    def get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                          "SET value = excluded.value", (key, value))

    def delete(self, key: str) -> None:
        self.conn.execute("DELETE FROM settings WHERE key = ?", (key,))
