"""The signed tree heads of the stores (core/heads.py signs them): every one ever signed."""

from __future__ import annotations

from mailkeep.core.masterdb.base import Repository


class TreeHeadRows(Repository):
    def add(self, store_uuid: str, size: int, root: str, at: int, signed: str) -> None:
        self.conn.execute("INSERT INTO tree_heads (store_uuid, size, root, at, signed) "
                          "VALUES (?, ?, ?, ?, ?)", (store_uuid, size, root, at, signed))

    def latest(self, store_uuid: str) -> str | None:
        row = self.conn.execute("SELECT signed FROM tree_heads WHERE store_uuid = ? "
                                "ORDER BY size DESC, id DESC LIMIT 1", (store_uuid,)).fetchone()
        return None if row is None else str(row[0])

    def of_store(self, store_uuid: str, since: int = 0) -> list[str]:
        return [str(r[0]) for r in self.conn.execute(
            "SELECT signed FROM tree_heads WHERE store_uuid = ? AND at >= ? ORDER BY id",
            (store_uuid, since))]

    def newest_unstamped(self) -> list[tuple[int, str]]:
        """(row id, signed head) of each store's newest head, if it has no time-stamp."""
        return [(int(r[0]), str(r[1])) for r in self.conn.execute(
            "SELECT h.id, h.signed FROM tree_heads h WHERE h.tst IS NULL AND h.id = "
            "(SELECT id FROM tree_heads WHERE store_uuid = h.store_uuid "
            "ORDER BY size DESC, id DESC LIMIT 1)")]

    def set_timestamp(self, row_id: int, tst: str) -> None:
        self.conn.execute("UPDATE tree_heads SET tst = ? WHERE id = ?", (tst, row_id))

    def timestamps(self, store_uuid: str | None = None) -> list[tuple[str, str]]:
        """(signed head, time-stamp) of the heads that have one."""
        sql = "SELECT signed, tst FROM tree_heads WHERE tst IS NOT NULL"
        params: tuple[str, ...] = ()
        if store_uuid is not None:
            sql += " AND store_uuid = ?"
            params = (store_uuid,)
        return [(str(r[0]), str(r[1])) for r in self.conn.execute(sql + " ORDER BY id", params)]

    def all(self, since: int = 0) -> list[str]:
        return [str(r[0]) for r in self.conn.execute(
            "SELECT signed FROM tree_heads WHERE at >= ? ORDER BY id", (since,))]
