"""What every server of an installation on PostgreSQL must agree on, kept in the database
(the table meta): the id of the master key, and the key that signs tree heads (sealed under
the master key). An installation on SQLite has one server, and keeps both in its data
directory."""

from __future__ import annotations

from mailkeep.core.masterdb.base import Repository


class InstallationRows(Repository):
    def get(self, key: str) -> str | None:
        assert self.db.postgres
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (f"installation.{key}",)
                                ).fetchone()
        return None if row is None else str(row[0])

    def settle(self, key: str, value: str) -> str:
        """The value of `key`: `value` if it had none (the first server to ask sets it), else
        the one it has."""
        assert self.db.postgres
        self.conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                          (f"installation.{key}", value))
        found = self.get(key)
        assert found is not None
        return found
