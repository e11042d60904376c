"""What a store's catalog reads and writes the same way in SQLite (catalog.py,
catalog_search.py) and in PostgreSQL (catalog_pg.py): statements both engines take as they
are. Each engine's class adds its own (its writes of the index, its searches, its locks)."""

from __future__ import annotations

import json

TYPE_CHECKING = False  # (typing is not imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


class Rows:
    """The statements both catalogs share; `conn` is a sqlite3 connection or a
    core/pgconn.py one, which read the same."""

    conn: Any
    _folders: dict[tuple[str, str], int]
    _next_number: int  # 0 until read
    _next_dirty: bool

    # the stored messages whose attachments' text is not read yet (core/reindex.py)
    _UNREAD = ("FROM blobs WHERE has_attachment = 1 AND id > ? AND id NOT IN"
               " (SELECT blob_id FROM blob_documents)")

    def set_meta(self, key: str, value: object) -> None:
        raise NotImplementedError

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def applied(self) -> tuple[int, int]:
        seg = int(self.get_meta("applied_segment", "1") or 1)
        off = int(self.get_meta("applied_offset", "0") or 0)
        return seg, off

    def set_applied(self, segment: int, offset: int) -> None:
        self.set_meta("applied_segment", segment)
        self.set_meta("applied_offset", offset)

    def next_number(self) -> int:
        if self._next_number == 0:
            self._next_number = int(self.get_meta("next_number", "1") or 1)
        return self._next_number

    def set_next_number(self, number: int) -> None:
        self._next_number = number
        self._next_dirty = True

    def touch(self) -> None:
        """Read the file's schema and a table (not the dictionaries themselves, 11 MB in a
        store of a million messages, which a search does not need)."""
        self.conn.execute("SELECT count(*) FROM dictionaries").fetchone()

    def blob_exists(self, blob_id: int) -> bool:
        return self.conn.execute("SELECT 1 FROM blobs WHERE id = ?", (blob_id,)
                                 ).fetchone() is not None

    def blob_warnings(self, blob_id: int) -> str:
        row = self.conn.execute("SELECT warnings FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        return "" if row is None or row[0] is None else str(row[0])

    def forget_cached_folders(self) -> None:
        self._folders.clear()

    def drop_folder_id(self, fid: int) -> bool:
        """Remove a folder row that holds no messages; False if it holds some."""
        if self.conn.execute("SELECT 1 FROM entries WHERE folder_id = ? LIMIT 1",
                             (fid,)).fetchone() is not None:
            return False
        self.conn.execute("DELETE FROM folders WHERE id = ?", (fid,))
        self._folders.clear()
        return True

    def empty_folders(self) -> list[tuple[str, str]]:
        """(owner, path) of the folder rows that hold no messages of their own."""
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT owner, path FROM folders f WHERE NOT EXISTS"
            " (SELECT 1 FROM entries e WHERE e.folder_id = f.id) ORDER BY owner, path")]

    def envelope(self, number: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT mail_from, rcpt_to FROM envelopes WHERE number = ?",
                                (number,)).fetchone()
        return None if row is None else {"from": row[0], "to": json.loads(row[1])}

    def find_blob(self, content_id: bytes) -> int | None:
        row = self.conn.execute("SELECT id FROM blobs WHERE content_id = ?",
                                (content_id,)).fetchone()
        return None if row is None else int(row[0])

    def has_entry(self, blob_id: int, folder_id: int) -> bool:
        return self.conn.execute("SELECT 1 FROM entries WHERE blob_id = ? AND folder_id = ?",
                                 (blob_id, folder_id)).fetchone() is not None

    def entry_warnings(self, number: int) -> list[str]:
        """What was noted when the message of an entry was indexed (text not extracted...)."""
        row = self.conn.execute("SELECT b.warnings FROM entries e JOIN blobs b ON"
                                " b.id = e.blob_id WHERE e.number = ?", (number,)).fetchone()
        return [w for w in (row[0] if row else "").split("\n") if w]

    def entry_blob(self, number: int) -> int | None:
        """The stored message an entry files."""
        row = self.conn.execute("SELECT blob_id FROM entries WHERE number = ?",
                                (number,)).fetchone()
        return None if row is None else int(row[0])

    def attachment_blobs(self, after: int, limit: int) -> list[tuple[int, int]]:
        """(id, raw size) of stored messages with attachments not read for their text (no
        blob_documents row), by id, after blob `after`."""
        return [(int(r[0]), int(r[1])) for r in self.conn.execute(
            f"SELECT id, raw_size {self._UNREAD} ORDER BY id LIMIT ?", (after, limit))]

    def count_attachment_blobs(self, after: int) -> int:
        return int(self.conn.execute(f"SELECT count(*) {self._UNREAD}", (after,)).fetchone()[0])

    def newest_blob_id(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM blobs").fetchone()[0])

    def filed_as(self) -> Iterator[tuple[int, tuple[str, str, list[str], int | None, int,
                                                     bytes]]]:
        """(number, (owner, folder, flags, internal date, archived at, content id)) of every
        entry as the catalog has them, by number (what verify compares with the tree's
        filings; read as it goes, not held: a million of them took 300 MB)."""
        for n, owner, path, flags, idate, at, cid in self.conn.execute(
                "SELECT e.number, f.owner, f.path, e.flags, e.internal_date, e.archived_at,"
                " b.content_id FROM entries e JOIN folders f ON f.id = e.folder_id"
                " JOIN blobs b ON b.id = e.blob_id ORDER BY e.number"):
            yield int(n), (owner, path, sorted(f for f in flags.split(",") if f), idate,
                           int(at), bytes(cid))

    def content_ids(self) -> set[bytes]:
        return {bytes(c) for (c,) in self.conn.execute("SELECT content_id FROM blobs")}

    def count_entries(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM entries").fetchone()[0])

    def folder_numbers(self, folder_id: int) -> list[int]:
        """The message numbers filed directly in a folder, oldest first."""
        return [int(n) for (n,) in self.conn.execute(
            "SELECT number FROM entries WHERE folder_id = ? ORDER BY key", (folder_id,))]

    def entry_flags(self, number: int) -> tuple[list[str], int | None]:
        row = self.conn.execute("SELECT flags, internal_date FROM entries WHERE number = ?",
                                (number,)).fetchone()
        if row is None:
            return [], None
        return [f for f in row[0].split(",") if f], row[1]

    def retention_rows(self) -> Iterator[tuple[int, int, int]]:
        """(number, date sent, archived at) of every entry, by number."""
        for n, sent, at in self.conn.execute(
                "SELECT e.number, b.date, e.archived_at FROM entries e"
                " JOIN blobs b ON b.id = e.blob_id ORDER BY e.number"):
            yield int(n), int(sent), int(at)

    def entry_dates(self, number: int) -> tuple[int, int] | None:
        """(date sent, archived at) of one entry."""
        row = self.conn.execute("SELECT b.date, e.archived_at FROM entries e JOIN blobs b"
                                " ON b.id = e.blob_id WHERE e.number = ?", (number,)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def folders(self, owner: str | None = None) -> list[tuple[str, str, int, int]]:
        """(owner, path, messages, bytes) for every folder, empty ones included."""
        sql = ("SELECT f.owner, f.path, count(e.number), coalesce(sum(b.raw_size), 0)"
               " FROM folders f LEFT JOIN entries e ON e.folder_id = f.id"
               " LEFT JOIN blobs b ON b.id = e.blob_id")
        params: tuple[Any, ...] = ()
        if owner is not None:
            sql += " WHERE f.owner = ?"
            params = (owner,)
        sql += " GROUP BY f.id ORDER BY f.owner, f.path"
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in self.conn.execute(sql, params)]

    def archived_between(self, start: int, end: int) -> tuple[int, int]:
        """(entries, raw bytes) archived in [start, end), epoch seconds."""
        n, size = self.conn.execute(
            "SELECT count(*), coalesce(sum(b.raw_size), 0) FROM entries e JOIN blobs b ON"
            " b.id = e.blob_id WHERE e.archived_at >= ? AND e.archived_at < ?",
            (start, end)).fetchone()
        return int(n), int(size)

    def counts(self) -> tuple[int, int, int]:
        """(entries, distinct messages, raw bytes of distinct messages)."""
        e = self.conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        b, s = self.conn.execute("SELECT count(*), coalesce(sum(raw_size), 0) FROM blobs"
                                 ).fetchone()
        return int(e), int(b), int(s)

    def documented_blobs(self, after: int, limit: int) -> list[tuple[int, bytes, str]]:
        """(id, content id, warnings) of the stored messages whose attachments' text the
        index holds, by id, after `after`."""
        return [(int(r[0]), bytes(r[1]), str(r[2] or "")) for r in self.conn.execute(
            "SELECT b.id, b.content_id, b.warnings FROM blobs b JOIN blob_documents d ON"
            " d.blob_id = b.id WHERE b.id > ? ORDER BY b.id LIMIT ?", (after, limit))]

    def count_documents(self) -> int:
        """Stored messages whose attachments' text the index holds."""
        return int(self.conn.execute("SELECT count(*) FROM blob_documents").fetchone()[0])
