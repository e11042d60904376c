"""Reading a store's catalog for people: one message's entry, a folder's messages, the
folder tree and counts, and full-text search (the query compiled by query.py), newest first
from the index's own order. Catalog (catalog.py) has this part and the writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

TYPE_CHECKING = False  # (typing is not imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from typing import Any

    from mailkeep.core.storage.query import Query


class Hit:
    """One message found. (A plain class: the search from the command line imports neither
    typing nor dataclasses, cli/entry.py.)"""

    __slots__ = ("number", "date", "subject", "sender", "recipients", "owner", "folder", "size",
                 "has_attachment")

    def __init__(self, number: int, date: int, subject: str, sender: str, recipients: str,
                 owner: str, folder: str, size: int, has_attachment: bool) -> None:
        self.number = number
        self.date = date
        self.subject = subject
        self.sender = sender
        self.recipients = recipients
        self.owner = owner
        self.folder = folder
        self.size = size
        self.has_attachment = has_attachment

    def __repr__(self) -> str:
        return "Hit(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


HIT_COLUMNS = ("e.number, b.date, b.subject, b.sender, b.recipients, f.owner, f.path, "
               "b.raw_size, b.has_attachment")
MATCH_CHARS = 4_000_000  # of attachments' text read to name those a page's words were found in
HIT_JOINS = "JOIN blobs b ON b.id = e.blob_id JOIN folders f ON f.id = e.folder_id"
HIT_FROM = f"entries e {HIT_JOINS}"
# what a search may be ordered by besides the date (a column of blobs b)
SORTS = {"from": "b.sender COLLATE NOCASE", "subject": "b.subject COLLATE NOCASE",
         "size": "b.raw_size"}


MAX_DATE = (1 << 36) - 1  # of an entry key's date (catalog.sort_key)
OLD_KEY_SHIFT = 20  # of the catalogs made before the shift was kept in their meta


def key_of_day(epoch: int, shift: int) -> int:
    """The first entry key of a date (seconds) in a catalog whose keys have this shift."""
    return min(max(epoch, 0), MAX_DATE) << shift


class Searching:
    conn: sqlite3.Connection
    _key_shift: int  # 0 until read

    @property
    def key_shift(self) -> int:
        """The catalog's: entry key = date << key_shift | low bits of the number (catalog.py)."""
        if not self._key_shift:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'key_shift'").fetchone()
            self._key_shift = int(row[0]) if row else OLD_KEY_SHIFT
        return self._key_shift

    def count_entries(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM entries").fetchone()[0])

    def entry(self, number: int) -> Hit | None:
        row = self.conn.execute(f"SELECT {HIT_COLUMNS} FROM {HIT_FROM} WHERE e.number = ?",
                                (number,)).fetchone()
        return None if row is None else _hit(row)

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

    def _plan(self, q: Query, index_only: bool = False, join: str = ""
              ) -> tuple[str, list[Any], str]:
        """FROM ... WHERE ... over entries e (and fts) for a compiled query, and the column
        that orders it newest first. With only words and dates (index_only) the index counts
        and orders on its own."""
        conds: list[str] = []
        params: list[Any] = []
        if index_only:
            src, col = "fts", "rowid"
            conds.append("fts MATCH ?")
            params.append(q.match)
        elif q.match is not None:
            src, col = "fts JOIN entries e ON e.key = fts.rowid", "fts.rowid"
            conds.append("fts MATCH ?")
            params.append(q.match)
        else:
            src, col = "entries e", "e.key"
        shift = self.key_shift if (q.date_min, q.date_max) != (None, None) or q.outside else 0
        if q.date_min is not None:
            conds.append(f"{col} >= ?")
            params.append(key_of_day(q.date_min, shift))
        if q.date_max is not None:
            conds.append(f"{col} < ?")
            params.append(key_of_day(q.date_max, shift))
        for lo, hi in q.outside:
            conds.append(f"({col} < ? OR {col} >= ?)")
            params.extend((key_of_day(lo, shift), key_of_day(hi, shift)))
        conds.extend(q.where)
        params.extend(q.params)
        for term in q.exclude:
            conds.append("e.key NOT IN (SELECT rowid FROM fts WHERE fts MATCH ?)")
            params.append(term)
        src += f" {join}" if join else ""
        return src + (" WHERE " + " AND ".join(conds) if conds else ""), params, col

    def search(self, q: Query, limit: int, offset: int = 0, sort: str = "date",
               ascending: bool = False) -> tuple[int, list[Hit]]:
        """Total matching entries and one page of them, newest first (or by SORTS[sort],
        then newest first)."""
        way = "ASC" if ascending else "DESC"
        if sort == "date":
            src, params, col = self._plan(q, index_only=q.match is not None and not q.where
                                          and not q.exclude)
            total = self.conn.execute(f"SELECT count(*) FROM {src}", params).fetchone()[0]
            rows = self.conn.execute(
                f"SELECT {HIT_COLUMNS} FROM (SELECT {col} AS k FROM {src} ORDER BY {col} {way}"
                f" LIMIT ? OFFSET ?) m JOIN entries e ON e.key = m.k {HIT_JOINS}"
                f" ORDER BY e.key {way}", (*params, limit, offset)).fetchall()
            return int(total), [_hit(r) for r in rows]
        expr = SORTS[sort]
        src, params, col = self._plan(q, join="JOIN blobs b ON b.id = e.blob_id")
        total = self.conn.execute(f"SELECT count(*) FROM {src}", params).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT {HIT_COLUMNS} FROM (SELECT e.key AS k FROM {src}"
            f" ORDER BY {expr} {way}, e.key DESC LIMIT ? OFFSET ?) m JOIN entries e"
            f" ON e.key = m.k {HIT_JOINS} ORDER BY {expr} {way}, e.key DESC",
            (*params, limit, offset)).fetchall()
        return int(total), [_hit(r) for r in rows]

    def matched_attachments(self, q: Query, numbers: Sequence[int]) -> dict[int, list[str]]:
        """For the messages `numbers` of a search's page: the names of the attachments whose
        name or text holds one of the words or phrases sought (q.terms), by message number.

        The index says which of them hold a word sought in their attachments at all; for
        those, each attachment's name and text (blob_documents, MATCH_CHARS for the page in
        all) go into a scratch FTS5 table made like the index, so that a word matches there
        exactly when it matched in the index."""
        if not q.terms or not numbers:
            return {}
        marks = ",".join("?" * len(numbers))
        keys = dict(self.conn.execute(f"SELECT key, number FROM entries WHERE number IN"
                                      f" ({marks})", list(numbers)).fetchall())
        # first the index itself: which of them have a word sought in their attachments
        # column at all (names and text); only those are read further
        hit: set[int] = set()
        key_marks = ",".join("?" * len(keys))
        for term in q.terms:
            try:
                hit.update(keys[r[0]] for r in self.conn.execute(
                    f"SELECT rowid FROM fts WHERE fts MATCH ? AND rowid IN ({key_marks})",
                    (f"{{attachments}} : ({term})", *keys)))
            except sqlite3.OperationalError:
                continue  # a term with a column of its own: not one in the attachments
        if not hit:
            return {}
        hit_marks = ",".join("?" * len(hit))
        rows = self.conn.execute(
            f"SELECT e.number, d.text FROM entries e JOIN blob_documents d"
            f" ON d.blob_id = e.blob_id WHERE e.number IN ({hit_marks})",
            sorted(hit)).fetchall()
        from mailkeep.core.mime.cjk import cjk_segment
        from mailkeep.core.mime.parse import document_entries
        from mailkeep.core.storage.catalog import unpack_documents
        share = MATCH_CHARS // len(hit)
        named = [(int(n), name, text) for n, doc in rows
                 for name, text in document_entries(unpack_documents(doc)[:share])
                 if name or text]
        if not named:
            return {}
        scratch = sqlite3.connect(":memory:")
        try:
            scratch.execute("CREATE VIRTUAL TABLE t USING fts5(subject, sender, recipients, body,"
                            " attachments, tokenize='unicode61 remove_diacritics 2')")
            scratch.executemany("INSERT INTO t (rowid, attachments) VALUES (?, ?)",
                                [(i, cjk_segment(f"{name}\n{text}")) for i, (_n, name, text)
                                 in enumerate(named)])  # as the index holds it
            found: set[int] = set()
            for term in q.terms:
                try:
                    found.update(r[0] for r in scratch.execute(
                        "SELECT rowid FROM t WHERE t MATCH ?", (term,)))
                except sqlite3.OperationalError:
                    continue  # a term FTS5 refuses on its own: no attachment is named for it
        finally:
            scratch.close()
        out: dict[int, list[str]] = {}
        for i in sorted(found):
            number, name, _text = named[i]
            if name not in out.setdefault(number, []):
                out[number].append(name)
        return out

    def matches(self, q: Query, number: int) -> bool:
        """Whether message `number` is one the query finds."""
        one = q.and_where("e.number = ?", number)
        src, params, _ = self._plan(one)
        return self.conn.execute(f"SELECT 1 FROM {src} LIMIT 1", params).fetchone() is not None

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

    def iter_numbers(self, q: Query) -> Iterator[int]:
        src, params, _ = self._plan(q)
        for (n,) in self.conn.execute(f"SELECT e.number FROM {src} ORDER BY e.number", params):
            yield int(n)

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


def _hit(row: Sequence[Any]) -> Hit:
    return Hit(int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], row[6], int(row[7]),
               bool(row[8]))
