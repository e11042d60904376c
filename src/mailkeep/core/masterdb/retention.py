"""The retention configuration as stored (one JSON object: core.admin.retention reads it) and
the deletion requests of four-eyes deletion."""

from __future__ import annotations

from dataclasses import dataclass

from mailkeep.core.masterdb.base import Repository


class RetentionRows(Repository):
    def get(self) -> str | None:
        row = self.conn.execute("SELECT config FROM retention WHERE id = 1").fetchone()
        return None if row is None else str(row[0])

    def put(self, config: str) -> None:
        self.conn.execute("INSERT INTO retention VALUES (1, ?) ON CONFLICT (id) DO UPDATE "
                          "SET config = excluded.config", (config,))


@dataclass
class DeletionRequest:
    id: int
    message_id: str
    reason: str
    requested_by: str
    requested_at: float
    state: str  # pending, approved, rejected, failed
    decided_by: str | None
    decided_at: float | None
    note: str | None
    requester: str  # the account that asked (requested_by is how the audit log names it)
    requester_id: int | None  # its id (None: the machine's command line, not an account)


COLUMNS = ("id, message_id, reason, requested_by, requested_at, state, decided_by, decided_at, "
           "note, requester, requester_id")


class DeletionRequests(Repository):
    def add(self, message_id: str, reason: str, requested_by: str, at: float, requester: str,
            requester_id: int | None) -> int:
        cur = self.conn.execute(
            "INSERT INTO deletion_requests (message_id, reason, requested_by, requested_at, "
            "state, requester, requester_id) VALUES (?, ?, ?, ?, 'pending', ?, ?) RETURNING id",
            (message_id, reason, requested_by, at, requester, requester_id))
        return int(cur.fetchone()[0])

    def get(self, request_id: int) -> DeletionRequest | None:
        row = self.conn.execute(f"SELECT {COLUMNS} FROM deletion_requests WHERE id = ?",
                                (request_id,)).fetchone()
        return None if row is None else DeletionRequest(*row)

    def pending_for(self, message_id: str) -> DeletionRequest | None:
        row = self.conn.execute(f"SELECT {COLUMNS} FROM deletion_requests WHERE message_id = ? "
                                "AND state = 'pending'", (message_id,)).fetchone()
        return None if row is None else DeletionRequest(*row)

    def find(self, state: str | None, limit: int) -> list[DeletionRequest]:
        sql = f"SELECT {COLUMNS} FROM deletion_requests"
        params: tuple[object, ...] = ()
        if state:
            sql += " WHERE state = ?"
            params = (state,)
        sql += " ORDER BY id DESC LIMIT ?"
        return [DeletionRequest(*r) for r in self.conn.execute(sql, (*params, limit))]

    def decide(self, request_id: int, state: str, by: str, at: float, note: str | None) -> bool:
        """Set the outcome of a pending request; False if it was not pending any more."""
        cur = self.conn.execute(
            "UPDATE deletion_requests SET state = ?, decided_by = ?, decided_at = ?, note = ? "
            "WHERE id = ? AND state = 'pending'", (state, by, at, note, request_id))
        return cur.rowcount == 1
