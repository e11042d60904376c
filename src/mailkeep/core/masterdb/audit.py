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

    def find(self, start: int | None = None, end: int | None = None, actor: str = "",
             action: str = "", limit: int = 100, offset: int = 0
             ) -> tuple[int, list[AuditRecord]]:
        """(how many match, one page of them, newest first): records in [start, end) (epoch
        seconds), whose actor contains `actor` and whose action starts with `action` (both
        without regard to case)."""
        conds, params = [], []  # type: list[str], list[Any]
        if start is not None:
            conds.append("at >= ?")
            params.append(start)
        if end is not None:
            conds.append("at < ?")
            params.append(end)
        if actor:
            conds.append("instr(lower(actor), ?) > 0")
            params.append(actor.lower())
        if action:
            conds.append("substr(lower(action), 1, ?) = ?")
            params.extend([len(action), action.lower()])
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        total = int(self.conn.execute(f"SELECT count(*) FROM audit{where}", params)
                    .fetchone()[0])
        rows = self.conn.execute(f"SELECT id, at, actor, action, details FROM audit{where}"
                                 " ORDER BY id DESC LIMIT ? OFFSET ?",
                                 (*params, limit, offset)).fetchall()
        return total, [AuditRecord(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]
