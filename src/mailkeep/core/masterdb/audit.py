"""The audit log: who did what, when, with which details (JSON).

The records form a hash chain: each record's `chain` is SHA-256 over the previous record's
chain and this record's id, time, actor, action and details, as stored. `verify` walks it: a
record changed, or one removed from the middle, breaks the chain at that place. Removing the
newest records, or rewriting the whole chain, is only seen against a head noted earlier
(`mailkeep audit verify --expect ID:HASH`; the signed tree heads of the tamper evidence will
carry it off the machine). Records written before the chain existed are counted, not checked.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from mailkeep.core.masterdb.base import Repository


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: int
    actor: str
    action: str
    details: dict[str, Any]


def link(prev: str, rid: int, at: int, actor: str, action: str, details: str) -> str:
    """The chain value of a record following the record whose chain is `prev` ("" at the
    start of the chain)."""
    body = json.dumps([rid, at, actor, action, details], ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


@dataclass
class ChainReport:
    records: int = 0
    unchained: int = 0  # written before the chain existed
    last_id: int = 0
    head: str = ""  # the newest record's chain
    problems: list[str] = field(default_factory=list)


class AuditLog(Repository):
    def write(self, actor: str, action: str, **details: Any) -> None:
        text = json.dumps(details, sort_keys=True, default=str)
        at = int(time.time())
        with self.tx() as conn:  # the previous link and this one, by one writer at a time
            last = conn.execute("SELECT id, chain FROM audit ORDER BY id DESC LIMIT 1"
                                ).fetchone()
            rid = (last[0] if last else 0) + 1
            chain = link((last[1] or "") if last else "", rid, at, actor, action, text)
            conn.execute("INSERT INTO audit (id, at, actor, action, details, chain) VALUES "
                         "(?,?,?,?,?,?)", (rid, at, actor, action, text, chain))

    def verify(self, expect: tuple[int, str] | None = None) -> ChainReport:
        """Walk the chain from the first record (read in one transaction). `expect`: a
        (record id, chain) noted earlier, which the chain must still pass through."""
        report = ChainReport()
        prev = ""
        started = False
        seen_expected = expect is None
        conn = self.conn
        conn.execute("BEGIN")
        try:
            rows = conn.execute("SELECT id, at, actor, action, details, chain FROM audit "
                                "ORDER BY id")
            for rid, at, actor, action, details, chain in rows:
                report.records += 1
                if started and rid != report.last_id + 1:
                    report.problems.append(f"records {report.last_id + 1} to {rid - 1} are "
                                           "missing")
                report.last_id = rid
                if chain is None:
                    if started:
                        report.problems.append(f"record {rid} ({action} by {actor}) is not "
                                               "linked into the chain")
                    else:
                        report.unchained += 1
                    continue
                if chain != link(prev, rid, at, actor, action, details):
                    report.problems.append(f"record {rid} ({action} by {actor}) does not "
                                           "match the chain: it was changed, or the record "
                                           "before it was removed or changed")
                if expect is not None and rid == expect[0]:
                    seen_expected = True
                    if chain != expect[1]:
                        report.problems.append(f"record {rid} is not the one noted: the log "
                                               "was rewritten from there on or before")
                prev, started = chain, True
        finally:
            conn.execute("ROLLBACK")
        if not seen_expected and expect is not None:
            report.problems.append(f"record {expect[0]}, noted earlier, is gone: the newest "
                                   "records were removed")
        report.head = prev
        return report

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
