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
from collections.abc import Iterable
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


# Read as bytes and decoded here, so that a value written around mailkeep (not UTF-8, a blob)
# shows, replaced, instead of failing the whole listing.
# (PostgreSQL checks each value's type and encoding itself.)
_SHOWN = ("id, CAST(at AS INTEGER), CAST(actor AS BLOB), CAST(action AS BLOB), "
          "CAST(details AS BLOB)")
_SHOWN_PG = "id, at, actor, action, details"


def _record(row: tuple[Any, ...]) -> AuditRecord:
    def text(value: Any) -> str:
        if isinstance(value, str):
            return value
        return bytes(value or b"").decode("utf-8", "replace")

    try:
        details = json.loads(text(row[4]))
        if not isinstance(details, dict):
            raise ValueError
    except ValueError:
        details = {"unreadable": text(row[4])[:1000]}
    return AuditRecord(row[0], int(row[1] or 0), text(row[2]), text(row[3]), details)


class AuditLog(Repository):
    def write(self, actor: str, action: str, /, **details: Any) -> None:
        text = json.dumps(details, sort_keys=True, default=str)
        at = int(time.time())
        with self.tx() as conn:  # the previous link and this one, by one writer at a time
            last = conn.execute("SELECT id, chain FROM audit ORDER BY id DESC LIMIT 1"
                                ).fetchone()
            rid = (last[0] if last else 0) + 1
            chain = link((last[1] or "") if last else "", rid, at, actor, action, text)
            conn.execute("INSERT INTO audit (id, at, actor, action, details, chain) VALUES "
                         "(?,?,?,?,?,?)", (rid, at, actor, action, text, chain))

    @property
    def _shown(self) -> str:
        return _SHOWN_PG if self.db.postgres else _SHOWN

    def chain_from(self) -> int:
        """The first record id the chain covers: records before it were written before the
        chain existed (set once, when the database got the chain; missing: every record)."""
        row = self.conn.execute("SELECT value FROM audit_meta WHERE key = 'chain_from'"
                                ).fetchone()
        try:
            return max(1, int(row[0])) if row else 1
        except (TypeError, ValueError):
            return 1

    def verify(self, expect: tuple[int, str] | None = None) -> ChainReport:
        """Walk the chain from the first record (read in one transaction). `expect`: a
        (record id, chain) noted earlier, which the chain must still pass through. A value
        that mailkeep never writes (not UTF-8, a blob, a number where text belongs) is a
        problem of its record, not a failure of the walk."""
        report = ChainReport()
        prev = ""
        seen_expected = expect is None
        conn: Any = self.db.conn  # in SQLite, its text_factory too
        postgres = self.db.postgres
        rows: Iterable[tuple[Any, ...]]
        if postgres:  # one snapshot; its columns' types and encoding checked by PostgreSQL
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        else:
            conn.execute("BEGIN")
            factory = conn.text_factory
            conn.text_factory = bytes  # decoded here: a bad byte names its record
        try:
            first = self.chain_from()
            if postgres:
                rows = ((rid, at, actor.encode(), action.encode(), details.encode(),
                         None if chain is None else chain.encode(),
                         b"integertexttexttext" + (b"null" if chain is None else b"text"))
                        for rid, at, actor, action, details, chain in conn.execute(
                            "SELECT id, at, actor, action, details, chain FROM audit "
                            "ORDER BY id"))
            else:
                rows = conn.execute(
                    "SELECT id, at, actor, action, details, chain, typeof(at) || "
                    "typeof(actor) || typeof(action) || typeof(details) || typeof(chain) "
                    "FROM audit ORDER BY id")
            for rid, at, actor_b, action_b, details_b, chain_b, types in rows:
                report.records += 1
                if report.records > 1 and rid != report.last_id + 1:
                    report.problems.append(f"records {report.last_id + 1} to {rid - 1} are "
                                           "missing")
                report.last_id = rid
                if rid < 1:
                    report.problems.append(f"record {rid}: mailkeep never writes such an id")
                    continue
                try:
                    if types.decode() not in ("integertexttexttexttext",
                                              "integertexttexttextnull"):
                        raise ValueError
                    actor, action, details = (actor_b.decode(), action_b.decode(),
                                              details_b.decode())
                    chain = None if chain_b is None else chain_b.decode()
                except (ValueError, AttributeError):
                    report.problems.append(f"record {rid} holds values mailkeep never writes "
                                           "(not text, or not UTF-8)")
                    continue
                if chain is None:
                    if rid >= first:
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
                prev = chain
        finally:
            if not postgres:
                conn.text_factory = factory
            conn.execute("ROLLBACK")
        if not seen_expected and expect is not None:
            report.problems.append(f"record {expect[0]}, noted earlier, is gone: the newest "
                                   "records were removed")
        report.head = prev
        return report

    def since(self, after_id: int = 0, limit: int = 1000) -> list[AuditRecord]:
        """Records after `after_id`, oldest first."""
        rows = self.conn.execute(f"SELECT {self._shown} FROM audit WHERE id > ? ORDER BY id "
                                 "LIMIT ?",
                                 (after_id, limit)).fetchall()
        return [_record(r) for r in rows]

    def last_id(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0])

    def find(self, start: int | None = None, end: int | None = None, actor: str = "",
             action: str = "", limit: int = 100, offset: int = 0, obj: str = ""
             ) -> tuple[int, list[AuditRecord]]:
        """(how many match, one page of them, newest first): records in [start, end) (epoch
        seconds), whose actor contains `actor`, whose action starts with `action` and whose
        details contain `obj` (a message id, a user or store name; all without regard to
        case)."""
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
        if obj:
            conds.append("instr(lower(details), ?) > 0")
            params.append(json.dumps(obj)[1:-1].lower())  # as the details hold it
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        total = int(self.conn.execute(f"SELECT count(*) FROM audit{where}", params)
                    .fetchone()[0])
        rows = self.conn.execute(f"SELECT {self._shown} FROM audit{where}"
                                 " ORDER BY id DESC LIMIT ? OFFSET ?",
                                 (*params, limit, offset)).fetchall()
        return total, [_record(r) for r in rows]
