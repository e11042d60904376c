"""The audit log: who did what, when, with which details (JSON)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from mailkeep.core.masterdb.base import Repository


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: int
    actor: str
    action: str
    details: dict[str, Any]


class AuditLog(Repository):
    def write(self, actor: str, action: str, **details: Any) -> None:
        self.conn.execute("INSERT INTO audit (at, actor, action, details) VALUES (?,?,?,?)",
                          (int(time.time()), actor, action,
                           json.dumps(details, sort_keys=True, default=str)))

    def since(self, after_id: int = 0, limit: int = 1000) -> list[AuditRecord]:
        """Records after `after_id`, oldest first."""
        rows = self.conn.execute("SELECT id, at, actor, action, details FROM audit WHERE id > ?"
                                 " ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
        return [AuditRecord(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def last_id(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0])
