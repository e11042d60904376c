"""A store's catalog: messages, folders, entries and the full-text index, in one SQLite file.

Everything here is derived from the store's segments and can be rebuilt from them. The one
writer applies records in batches (`BEGIN IMMEDIATE`); readers open their own connections.
"""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from collections.abc import Iterator, Sequence

from mailkeep.core.files import create_private, sqlite_read_only
from mailkeep.core.mime.cjk import cjk_segment
from mailkeep.core.storage.catalog_search import MAX_DATE, Searching

TYPE_CHECKING = False  # (typing is not imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from mailkeep.core.storage.packing import BlobInfo

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dictionaries (id INTEGER PRIMARY KEY, data BLOB NOT NULL,
    segment INTEGER NOT NULL, offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    id INTEGER PRIMARY KEY,
    content_id BLOB NOT NULL UNIQUE,
    segment INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
    raw_size INTEGER NOT NULL,
    date INTEGER NOT NULL,
    subject TEXT NOT NULL, sender TEXT NOT NULL, recipients TEXT NOT NULL,
    message_id TEXT,
    has_attachment INTEGER NOT NULL,
    warnings TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS blobs_attached ON blobs(id) WHERE has_attachment = 1;
-- The text inside a message's attachments, as its index rows hold it (a contentless FTS5 row
-- is deleted by giving the values it was made of: a message's text is extracted again, this is
-- not, being costly and bounded by time).
CREATE TABLE IF NOT EXISTS blob_documents (blob_id INTEGER PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY, owner TEXT NOT NULL, path TEXT NOT NULL, UNIQUE (owner, path));
CREATE TABLE IF NOT EXISTS entries (
    key INTEGER PRIMARY KEY,  -- sort key (date, then number); also the entry's FTS rowid
    number INTEGER NOT NULL UNIQUE,
    blob_id INTEGER NOT NULL REFERENCES blobs(id),
    folder_id INTEGER NOT NULL REFERENCES folders(id),
    flags TEXT NOT NULL, internal_date INTEGER, archived_at INTEGER NOT NULL,
    segment INTEGER NOT NULL, offset INTEGER NOT NULL,
    attached INTEGER NOT NULL DEFAULT 0,  -- its message has attachments (blobs.has_attachment)
    UNIQUE (blob_id, folder_id));
CREATE INDEX IF NOT EXISTS entries_folder ON entries(folder_id);
-- The SMTP envelope a journaled message arrived with (MAIL FROM, RCPT TO as a JSON list).
CREATE TABLE IF NOT EXISTS envelopes (number INTEGER PRIMARY KEY, mail_from TEXT NOT NULL,
    rcpt_to TEXT NOT NULL);
-- The body is the first column: FTS5 writes a column's number before each term's positions
-- in any other column, and most terms are the body's. (Catalogs made before have subject,
-- sender, recipients, body, attachments; every statement names its columns, so both read
-- alike.) The column sizes stay: they are what lists the index's rows (index_rowids).
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    body, subject, sender, recipients, attachments,
    content='', tokenize='unicode61 remove_diacritics 2');
"""

# has:attachment reads the entries whose messages have attachments from an index of their
# own (made after the column: catalogs made before have it added when first opened to write)
ATTACHED_INDEX = "CREATE INDEX IF NOT EXISTS entries_attached ON entries(key) WHERE attached = 1"

CATALOG = "catalog.sqlite"  # its file in the store directory
MERGE_PAGES = 2_000  # of the index merged in one transaction (Catalog.merge_index)
PACK_FROM = 200  # characters of attachment text from which blob_documents keeps it compressed
INDEX_HELD_CHARS = 8 << 20  # full-text writes held back (_fts), at most, in characters
SHORT = 512  # display strings kept in the catalog; the full text is in the index
# entry key = date seconds << shift | low bits of the message number. The index stores each
# term's rows as differences of these keys, so every bit here costs about a bit per (term,
# message): 8 bits leave room for 256 messages dated the same second (more take the keys after
# them: add_entry) and keep the index a quarter smaller than 20 did. A catalog keeps its shift
# in meta (key_shift); those made before it was kept have 20 (catalog_search.OLD_KEY_SHIFT).
KEY_SHIFT = 8
PROBES = 8  # keys tried one by one after a taken one, before add_entry jumps


def sort_key(date: int, number: int, shift: int = KEY_SHIFT) -> int:
    """Entries sort newest first by this key, which is also their FTS rowid, so that the
    index itself yields matches in date order and a date range is a rowid range."""
    return (min(max(date, 0), MAX_DATE) << shift) | (number & ((1 << shift) - 1))


def pack_documents(text: str) -> str | bytes:
    """How blob_documents keeps a message's attachment text: zlib-compressed (a BLOB) when
    that saves room, as text otherwise (and in catalogs written before: both are read)."""
    if len(text) < PACK_FROM:
        return text
    return zlib.compress(text.encode("utf-8", "surrogatepass"), 6)


def unpack_documents(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return zlib.decompress(value).decode("utf-8", "surrogatepass")
    return str(value)


def attachment_column(names: str, documents: str) -> str:
    """What the index's attachments column holds: the names, then the text inside."""
    return "\n".join(part for part in (names, documents) if part)


def index_columns(subject: str, sender: str, recipients: str, body: str, attachments: str
                  ) -> tuple[str, str, str, str, str]:
    return (cjk_segment(subject), cjk_segment(sender), cjk_segment(recipients),
            cjk_segment(body), cjk_segment(attachments))


def connect(path: str | os.PathLike[str], readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(sqlite_read_only(path), uri=True,
                               isolation_level=None, check_same_thread=False)
    else:
        create_private(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Pages freed (by merging the index: merge_index) can be given back to the file system
        # without rewriting the file. (A catalog made before has it from its next VACUUM, the
        # upkeep's; the mode is set before any table, and before the journal's.)
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        # Durability comes from the segments: a commit lost in a power cut leaves the
        # catalog behind the segment, and opening the store re-applies the tail.
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA cache_size=-16000")  # KiB
    return conn


class Catalog(Searching):
    def __init__(self, path: str | os.PathLike[str], readonly: bool = False) -> None:
        self.file = os.fspath(path)
        self.readonly = readonly
        self.conn = connect(path, readonly)
        self._key_shift = 0  # 0: not read yet
        self._segments = 0  # of the full-text index: a search's cost hint, read once
        self._attached: bool | None = None  # whether entries has its column: read once
        self._folders: dict[tuple[str, str], int] = {}
        self._index_rows: list[tuple[str, tuple[Any, ...]]] = []  # full-text writes held back
        self._index_chars = 0
        self._next_number = 0  # 0: not read yet; kept in memory, written at commit
        self._next_dirty = False
        if not readonly:
            fresh = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'entries'").fetchone() is None
            self.conn.executescript(SCHEMA)
            if fresh:
                self.set_meta("key_shift", KEY_SHIFT)
            elif not self.has_attached_column():
                self._add_attached_column()
            self.conn.execute(ATTACHED_INDEX)

    def _add_attached_column(self) -> None:
        """A catalog made before entries.attached: the column, filled from the blobs, in one
        transaction (about a second for a million entries)."""
        self.begin()
        try:
            self.conn.execute("ALTER TABLE entries ADD COLUMN attached INTEGER NOT NULL"
                              " DEFAULT 0")
            self.conn.execute("UPDATE entries SET attached = 1 WHERE blob_id IN"
                              " (SELECT id FROM blobs WHERE has_attachment = 1)")
            self.conn.execute(ATTACHED_INDEX)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        self._attached = True

    def close(self) -> None:
        if not self.readonly:
            # Fold the WAL back in, so the store directory is complete when copied.
            self.rollback()
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()

    def _fts(self, sql: str, params: tuple[Any, ...]) -> None:
        """A full-text write (its params start with the rowid), held back until the
        transaction commits or more than INDEX_HELD_CHARS of text wait, then written in rowid
        order. FTS5 gathers the terms of the rows it is given in memory and writes them out as
        a new segment of its index when a row comes with a lower rowid than the one before,
        and whenever another statement of the transaction opens a savepoint, which an INSERT
        into the catalog's other tables does. Written as they came, between those inserts,
        every message became a segment of its own, and merging them cost more than all the
        rest of archiving it; held back and sorted, a transaction's messages make one segment
        per megabyte of terms. Writes to different rows commute; those to one row (a delete,
        then its new values) keep their order."""
        self._index_rows.append((sql, params))
        self._index_chars += sum(len(v) for v in params if isinstance(v, str))
        if self._index_chars > INDEX_HELD_CHARS:
            self._flush_index()

    def _flush_index(self) -> None:
        rows, self._index_rows, self._index_chars = self._index_rows, [], 0
        rows.sort(key=lambda row: int(row[1][0]))  # stable: one row's writes keep their order
        for sql, params in rows:
            self.conn.execute(sql, params)

    # -- meta ---------------------------------------------------------------------------
    def set_meta(self, key: str, value: object) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    # -- writes (inside a transaction held by the writer) -------------------------------
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._flush_index()
        if self._next_dirty:
            self.set_meta("next_number", self._next_number)
            self._next_dirty = False
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self._index_rows, self._index_chars = [], 0  # held back: never written
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self._next_number, self._next_dirty = 0, False

    def begin_read(self) -> None:
        """A read transaction that sees one state of the catalog until end_read() (WAL: a
        writer goes on committing meanwhile)."""
        self.conn.execute("BEGIN")

    def end_read(self) -> None:
        self.conn.execute("ROLLBACK")

    def add_dictionary(self, dict_id: int, data: bytes, segment: int, offset: int) -> None:
        self.conn.execute("INSERT OR REPLACE INTO dictionaries VALUES (?, ?, ?, ?)",
                          (dict_id, data, segment, offset))

    def dictionaries(self) -> dict[int, bytes]:
        return {i: bytes(d) for i, d in self.conn.execute("SELECT id, data FROM dictionaries")}

    def add_blob(self, content_id: bytes, segment: int, offset: int, length: int,
                 raw_size: int, info: BlobInfo) -> int:
        cur = self.conn.execute(
            "INSERT INTO blobs (content_id, segment, offset, length, raw_size, date, subject,"
            " sender, recipients, message_id, has_attachment, warnings)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (content_id, segment, offset, length, raw_size, info.date, info.subject[:SHORT],
             info.sender[:SHORT], info.recipients[:SHORT], info.message_id,
             int(info.has_attachment), info.warnings))
        blob_id = int(cur.fetchone()[0])
        if info.documents:
            # kept: a contentless index deletes a row only given the values it was made of
            self.conn.execute("INSERT OR REPLACE INTO blob_documents VALUES (?, ?)",
                              (blob_id, pack_documents(info.documents)))
        return blob_id

    def blob_documents(self, blob_id: int) -> str:
        """The text inside a stored message's attachments that its index rows hold."""
        row = self.conn.execute("SELECT text FROM blob_documents WHERE blob_id = ?",
                                (blob_id,)).fetchone()
        return "" if row is None else unpack_documents(row[0])

    def folder_id(self, owner: str, path: str) -> int:
        key = (owner, path)
        fid = self._folders.get(key)
        if fid is None:
            row = self.conn.execute("SELECT id FROM folders WHERE owner = ? AND path = ?",
                                    key).fetchone()
            if row is None:
                fid = int(self.conn.execute("INSERT INTO folders (owner, path) VALUES (?, ?)"
                                            " RETURNING id", key).fetchone()[0])
            else:
                fid = row[0]
            self._folders[key] = fid
        return fid

    def add_entry(self, number: int, blob_id: int, folder_id: int, flags: Sequence[str],
                  internal_date: int | None, archived_at: int, segment: int, offset: int,
                  date: int, index: tuple[str, str, str, str, str]) -> None:
        key = sort_key(date, number, self.key_shift)
        row = (number, blob_id, folder_id, ",".join(flags), internal_date, archived_at, segment,
               offset)
        # Same second and same low bits is rare, and order within a second is free: the next
        # keys are tried. A second with more messages than low bits (a flood of mail dated
        # alike, which anyone can send) takes the keys after it; past PROBES tries, the key
        # after the last one taken in a window that doubles each time, so that finding a free
        # key past a run of n costs about log n lookups, however the floods are interleaved.
        tries, span = 0, 1 << self.key_shift
        while self.conn.execute("INSERT INTO entries (key, number, blob_id, folder_id, flags,"
                                " internal_date, archived_at, segment, offset, attached)"
                                " VALUES (?,?,?,?,?,?,?,?,?, (SELECT has_attachment FROM blobs"
                                " WHERE id = ?)) ON CONFLICT(key) DO NOTHING RETURNING key",
                                (key, *row, blob_id)).fetchone() is None:
            tries += 1
            if tries < PROBES:
                key += 1
                continue
            top = self.conn.execute("SELECT max(key) FROM entries WHERE key >= ? AND key < ?",
                                    (key, key + span)).fetchone()[0]
            key = (key if top is None else int(top)) + 1
            span *= 2
        self._fts("INSERT INTO fts (rowid, subject, sender, recipients, body, attachments)"
                  " VALUES (?,?,?,?,?,?)", (key, *index))
        if number >= self.next_number():
            self._next_number = number + 1
            self._next_dirty = True

    def delete_entry(self, number: int, index: tuple[str, str, str, str, str]) -> None:
        """Drop an entry; a contentless index needs the indexed values to forget them."""
        row = self.conn.execute("SELECT key FROM entries WHERE number = ?", (number,)).fetchone()
        if row is None:
            return
        self.conn.execute("DELETE FROM entries WHERE key = ?", (row[0],))
        self.conn.execute("DELETE FROM envelopes WHERE number = ?", (number,))
        self._fts("INSERT INTO fts (fts, rowid, subject, sender, recipients, body,"
                  " attachments) VALUES ('delete', ?,?,?,?,?,?)", (row[0], *index))

    def move_folder(self, owner: str, path: str, to_owner: str, to_path: str) -> int:
        """Move a folder and everything below it (path "" is the owner's whole archive);
        message numbers stay. A folder that meets an existing one is merged into it (a
        message already there stays where it was). Returns the folders moved."""
        rows = sorted(((fid, p) for fid, p in self.conn.execute(
            "SELECT id, path FROM folders WHERE owner = ?", (owner,)) if under(p, path)),
            key=lambda r: len(r[1]))  # parents first
        for fid, old in rows:
            new = rebase(old, path, to_path)
            target = self.find_folder(to_owner, new)
            if target is None:
                self.conn.execute("UPDATE folders SET owner = ?, path = ? WHERE id = ?",
                                  (to_owner, new, fid))
                continue
            self.conn.execute(
                "UPDATE entries SET folder_id = ? WHERE folder_id = ? AND blob_id NOT IN"
                " (SELECT blob_id FROM entries WHERE folder_id = ?)", (target, fid, target))
            self.drop_folder_id(fid)
        self._folders.clear()
        return len(rows)

    def add_envelope(self, number: int, envelope: dict[str, Any]) -> None:
        self.conn.execute("INSERT OR REPLACE INTO envelopes VALUES (?, ?, ?)",
                          (number, str(envelope.get("from", "")),
                           json.dumps(list(envelope.get("to", [])))))

    # -- reads ----------------------------------------------------------------------------
    def find_folder(self, owner: str, path: str) -> int | None:
        row = self.conn.execute("SELECT id FROM folders WHERE owner = ? AND path = ?",
                                (owner, path)).fetchone()
        return None if row is None else int(row[0])

    def entry_location(self, number: int) -> tuple[int, int, int, int, bytes] | None:
        """(blob segment, offset, length, raw size, content id) of a message number."""
        row = self.conn.execute(
            "SELECT b.segment, b.offset, b.length, b.raw_size, b.content_id FROM entries e"
            " JOIN blobs b ON b.id = e.blob_id WHERE e.number = ?", (number,)).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], bytes(row[4]))



    def entry_record(self, number: int) -> tuple[int, int] | None:
        """(segment, offset) of an entry's own record."""
        row = self.conn.execute("SELECT segment, offset FROM entries WHERE number = ?",
                                (number,)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    # -- reading the text inside attachments of what is stored already (core/reindex.py) ----
    def replace_blob_index(self, blob_id: int, old: tuple[str, str, str, str, str],
                           new: tuple[str, str, str, str, str], documents: str,
                           warnings: str) -> int:
        """Give every entry of a stored message new index rows (`old`: the values its rows
        were made of); its kept attachment text and warnings with them. Returns the entries."""
        keys = [r[0] for r in self.conn.execute("SELECT key FROM entries WHERE blob_id = ?",
                                                (blob_id,))]
        for key in keys:
            self._fts("INSERT INTO fts (fts, rowid, subject, sender, recipients, body,"
                      " attachments) VALUES ('delete', ?,?,?,?,?,?)", (key, *old))
            self._fts("INSERT INTO fts (rowid, subject, sender, recipients, body, attachments)"
                      " VALUES (?,?,?,?,?,?)", (key, *new))
        if documents:
            self.conn.execute("INSERT OR REPLACE INTO blob_documents VALUES (?, ?)",
                              (blob_id, pack_documents(documents)))
        else:
            self.conn.execute("DELETE FROM blob_documents WHERE blob_id = ?", (blob_id,))
        self.conn.execute("UPDATE blobs SET warnings = ? WHERE id = ?", (warnings, blob_id))
        return len(keys)







    # -- what the store's upkeep reads: dictionaries, verify, compaction, merging ------------
    def sample_blobs(self, max_length: int, limit: int
                     ) -> list[tuple[int, bytes, int, int, int]]:
        """(id, content id, segment, offset, length) of the newest messages stored in one
        piece of at most max_length bytes, newest first."""
        return [(r[0], bytes(r[1]), r[2], r[3], r[4]) for r in self.conn.execute(
            "SELECT id, content_id, segment, offset, length FROM blobs WHERE length < ?"
            " ORDER BY id DESC LIMIT ?", (max_length, limit))]

    def blob_location(self, blob_id: int) -> tuple[bytes, int, int, int, int]:
        """(content id, segment, offset, length, date) of a stored message."""
        row = self.conn.execute(
            "SELECT content_id, segment, offset, length, date FROM blobs WHERE id = ?",
            (blob_id,)).fetchone()
        return bytes(row[0]), row[1], row[2], row[3], row[4]

    def blob_locations(self) -> Iterator[tuple[int, bytes, int, int, int]]:
        """(id, content id, segment, offset, raw size) of every stored message."""
        for blob_id, cid, s, off, size in self.conn.execute(
                "SELECT id, content_id, segment, offset, raw_size FROM blobs"):
            yield blob_id, bytes(cid), s, off, size

    def entry_checks(self) -> Iterator[tuple[int, int, int, int, bool, bool]]:
        """(number, blob id, segment, offset, blob row exists, folder row exists) of every
        entry, by number."""
        for row in self.conn.execute(
                "SELECT e.number, e.blob_id, e.segment, e.offset, b.id IS NOT NULL,"
                " f.id IS NOT NULL FROM entries e LEFT JOIN blobs b ON b.id = e.blob_id"
                " LEFT JOIN folders f ON f.id = e.folder_id ORDER BY e.number"):
            yield row[0], row[1], row[2], row[3], bool(row[4]), bool(row[5])

    def index_rowids(self) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT rowid FROM fts")}

    def entry_keys(self) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT key FROM entries")}

    def check_index(self) -> None:
        """FTS5's own integrity check; sqlite3.DatabaseError when the index is damaged."""
        self.conn.execute("INSERT INTO fts(fts, rank) VALUES ('integrity-check', 1)")

    def live_blobs(self) -> dict[tuple[int, int], int]:
        """(segment, offset) -> id of the stored messages some entry still files."""
        return {(s, o): blob_id for blob_id, s, o in self.conn.execute(
            "SELECT b.id, b.segment, b.offset FROM blobs b"
            " WHERE EXISTS (SELECT 1 FROM entries e WHERE e.blob_id = b.id)")}

    def entry_records(self) -> dict[tuple[int, int], tuple[int, str, str, str, int | None, int]]:
        """(segment, offset) of each entry's record -> (number, owner, folder, flags,
        internal date, archived at), as the catalog has them now."""
        return {(s, o): (n, owner, path, flags, idate, at) for n, s, o, owner, path, flags,
                idate, at in self.conn.execute(
                    "SELECT e.number, e.segment, e.offset, f.owner, f.path, e.flags,"
                    " e.internal_date, e.archived_at FROM entries e"
                    " JOIN folders f ON f.id = e.folder_id")}

    def envelopes(self) -> dict[int, dict[str, Any]]:
        """number -> envelope of every journaled entry."""
        return {n: {"from": f, "to": json.loads(t)} for n, f, t in self.conn.execute(
            "SELECT number, mail_from, rcpt_to FROM envelopes")}

    def filings(self) -> list[tuple[int, str, str, str, int | None, int, int]]:
        """(number, owner, folder, flags, internal date, archived at, raw size) of every
        entry, by number (what merging files again elsewhere)."""
        return self.conn.execute(
            "SELECT e.number, f.owner, f.path, e.flags, e.internal_date, e.archived_at,"
            " b.raw_size FROM entries e JOIN folders f ON f.id = e.folder_id"
            " JOIN blobs b ON b.id = e.blob_id ORDER BY e.number").fetchall()

    def relocate(self, blob_moves: dict[int, tuple[int, int, int]],
                 entry_moves: dict[int, tuple[int, int]],
                 dict_moves: dict[int, tuple[int, int]], end: tuple[int, int],
                 compaction: str) -> int:
        """Point the catalog at compacted segments, in one transaction that records the
        compaction's id; returns how many messages no entry files were dropped."""
        conn = self.conn
        self.begin()
        try:
            conn.executemany("UPDATE blobs SET segment = ?, offset = ?, length = ? WHERE id = ?",
                             [(*loc, blob_id) for blob_id, loc in blob_moves.items()])
            conn.executemany("UPDATE entries SET segment = ?, offset = ? WHERE number = ?",
                             [(*loc, number) for number, loc in entry_moves.items()])
            conn.executemany("UPDATE dictionaries SET segment = ?, offset = ? WHERE id = ?",
                             [(*loc, dict_id) for dict_id, loc in dict_moves.items()])
            dropped = int(conn.execute("DELETE FROM blobs WHERE NOT EXISTS (SELECT 1 FROM"
                                       " entries e WHERE e.blob_id = blobs.id)").rowcount)
            conn.execute("DELETE FROM blob_documents WHERE blob_id NOT IN (SELECT id FROM"
                         " blobs)")
            self.set_applied(*end)
            self.set_meta("compaction", compaction)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return dropped

    def check(self) -> list[str]:
        """SQLite's and the full-text index's own integrity checks; the problems found."""
        try:
            rows = [r[0] for r in self.conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:  # too damaged to be checked page by page
            rows = [str(exc)]
        problems = [] if rows == ["ok"] else [f"catalog: {r}" for r in rows]
        try:
            self.check_index()
        except sqlite3.DatabaseError as exc:
            problems.append(f"full-text index: {exc}")
        return problems

    def maintain(self) -> tuple[int, int]:
        """Merge the full-text index's segments (searches read fewer), refresh the query
        planner's statistics, rewrite the file without free pages; (bytes before, after)."""
        def size() -> int:
            folder, name = os.path.split(self.file)
            return sum(os.stat(os.path.join(folder, n)).st_size
                       for n in os.listdir(folder or ".") if n.startswith(name))

        before = size()
        self._flush_index()
        self.conn.execute("INSERT INTO fts(fts) VALUES ('optimize')")
        self.conn.execute("ANALYZE")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.execute("VACUUM")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before, size()

    def merge_index(self, pages: int = MERGE_PAGES) -> None:
        """Merge the full-text index's segments into one, as maintain() does, but about
        `pages` pages of it at a time, each step a transaction of its own: another writer (the
        journal's) waits for one step at most; then give the pages freed back."""
        while True:
            before = self.conn.total_changes
            self.begin()
            try:
                self.conn.execute("INSERT INTO fts(fts, rank) VALUES ('merge', ?)", (-pages,))
                self.commit()  # (with any index rows still held back)
            except BaseException:
                self.rollback()
                raise
            if self.conn.total_changes - before < 2:  # (FTS5: nothing was left to merge)
                self._segments = 0  # read again when next asked
                # the replaced segments' pages back to the file system (executescript: the
                # pragma frees a page each step)
                self.conn.executescript("PRAGMA incremental_vacuum;")
                return

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file now."""
        self.conn.execute("PRAGMA wal_checkpoint(FULL)")



def under(path: str, top: str) -> bool:
    """Whether folder path lies in the subtree of top ("" is the whole archive)."""
    return not top or path == top or path.startswith(top + "/")


def full_name(owner: str, path: str) -> str:
    """A folder as the API names it: "alice/Inbox", or "alice" for the archive's root."""
    return f"{owner}/{path}" if path else owner


def rebase(path: str, top: str, new_top: str) -> str:
    """The path of a folder of top's subtree once top is moved to new_top."""
    rest = path[len(top):].lstrip("/") if top else path
    return "/".join(p for p in (new_top, rest) if p)


def backup_catalog(src: Path, dst: Path) -> None:
    """A consistent copy of a catalog that may be being written (SQLite's backup API)."""
    source = sqlite3.connect(src, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def applied_of(path: Path) -> tuple[int, int]:
    """(segment, offset) up to which the catalog file at `path` has applied the segments."""
    conn = sqlite3.connect(sqlite_read_only(path), uri=True)
    try:
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN "
                                 "('applied_segment', 'applied_offset')").fetchall())
    finally:
        conn.close()
    return int(rows.get("applied_segment", 1)), int(rows.get("applied_offset", 0))


def compaction_of(path: Path) -> str | None:
    """The compaction id the catalog file at `path` knows (read-only; None when it knows none
    or cannot be read)."""
    try:
        conn = sqlite3.connect(sqlite_read_only(path), uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'compaction'").fetchone()
            return row[0] if row else None
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None
