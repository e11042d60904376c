"""The compliance configuration as stored: one JSON object (core.admin.compliance reads it)."""

from __future__ import annotations

from mailkeep.core.masterdb.base import Repository


class ComplianceRows(Repository):
    def get(self) -> str | None:
        row = self.conn.execute("SELECT config FROM compliance WHERE id = 1").fetchone()
        return None if row is None else str(row[0])

    def put(self, config: str) -> None:
        self.conn.execute("INSERT INTO compliance VALUES (1, ?) ON CONFLICT (id) DO UPDATE "
                          "SET config = excluded.config", (config,))
