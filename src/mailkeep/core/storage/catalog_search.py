"""Reading a store's catalog for people: one message's entry, a folder's messages, the
folder tree and counts, and full-text search (the query compiled by query.py), newest first
from the index's own order. Catalog (catalog.py) has this part and the writes."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence

from mailkeep.core.storage.catalog_rows import Rows

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


COUNT_EXACT = 10_000  # matches a search counts one by one; past them its total is estimated
COUNT_STEPS = 3_000_000  # of SQLite's virtual machine, that counting may take (about 10 ms)
TICK = 10_000  # steps between two looks at that
SAMPLES = 8  # slices of the key range counted for an estimated total
SAMPLE_SHARES = (128, 16)  # 1/128 of the range in all, then 1/16 if fewer than
SAMPLE_ENOUGH = 200  # matches were in them
FEW_ENTRIES = 5_000  # in a search's folders, below which it goes through their entries
# What a search kept to few folders costs (Searching._few), on two cores: asking the index for
# one entry's row, for each word (FTS5 reads the word's place in every segment, each an SQL
# lookup of its own); reading one of its matches.
LOOKUP_US = 30.0  # and for each segment:
LOOKUP_US_PER_SEGMENT = 5.0
MATCH_US = 0.17
SEGMENTS_UNKNOWN = 16
# A search whose matches are each looked up in entries (has:attachment or many folders with
# words) counts those among the oldest SCAN_ROWS the index finds (about 5 ms), the rest
# estimated
SCAN_ROWS = 10_000


class Plan:
    """A search over one catalog: FROM (src) and WHERE (conds, with params) of a query, but
    for its dates: the column of entry keys that orders it (col) and the key range [lo, hi)
    its dates allow (None: no bound)."""

    __slots__ = ("src", "conds", "params", "col", "lo", "hi", "index")

    def __init__(self, src: str, conds: list[str], params: list[Any], col: str,
                 lo: int | None, hi: int | None, index: str | None = None) -> None:
        self.src, self.conds, self.params, self.col, self.lo, self.hi = (
            src, conds, params, col, lo, hi)
        self.index = index  # the match expression, when each match is looked up in entries

    def each_range(self, ranges: list[tuple[int, int]]) -> tuple[str, list[Any]]:
        """One statement: the sum of the counts in each key range [a, b), each its own
        subquery (FTS5 takes a single range for each of its scans)."""
        parts, params = [], []
        for a, b in ranges:
            sql, p = self.sql(a, b)
            parts.append(f"(SELECT count(*) FROM {sql})")
            params.extend(p)
        return "SELECT " + " + ".join(parts), params

    def oldest_finds(self, rows: int, lo: int | None = None, hi: int | None = None
                     ) -> tuple[str, list[Any]]:
        """SELECT of (finds read, the newest of their keys, the matches among them) over the
        oldest `rows` finds of the index (in the key range [lo, hi) if given), for a plan that
        looks each of them up in entries."""
        assert self.index is not None and self.src.startswith("fts JOIN entries e ")
        assert self.conds[0] == "fts MATCH ?"  # the index's, as _plan puts it first
        finds, params = Plan("fts", ["fts MATCH ?"], [self.index], "rowid", self.lo,
                             self.hi).sql(lo, hi)
        test = " AND ".join(f"({c})" for c in self.conds[1:]) or "1"
        return (f"SELECT count(*), max(fts.rowid), count(CASE WHEN {test} THEN 1 END) FROM"
                f" (SELECT rowid FROM {finds} ORDER BY rowid LIMIT {rows}) fts"
                f" {self.src[len('fts '):]}", [*self.params[1:], *params])  # (in text order)

    def in_ranges(self, ranges: list[tuple[int, int]]) -> tuple[str, list[Any]]:
        """FROM ... WHERE ... and its parameters, in any of these key ranges [a, b)."""
        cond = " OR ".join([f"({self.col} >= ? AND {self.col} < ?)"] * len(ranges))
        conds = [*self.conds, f"({cond})"]
        return (self.src + " WHERE " + " AND ".join(conds),
                [*self.params, *(k for r in ranges for k in r)])

    def sql(self, lo: int | None = None, hi: int | None = None) -> tuple[str, list[Any]]:
        """FROM ... WHERE ... and its parameters; with lo or hi, in that key range instead."""
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        conds, params = list(self.conds), list(self.params)
        for bound, op in ((lo, ">="), (hi, "<")):
            if bound is not None:  # one bound each way: FTS5 takes a single one
                conds.append(f"{self.col} {op} ?")
                params.append(bound)
        return self.src + (" WHERE " + " AND ".join(conds) if conds else ""), params


class Searching(Rows):
    conn: sqlite3.Connection
    _key_shift: int  # 0 until read
    _segments: int  # of the index; 0 until read
    _attached: bool | None  # whether entries has its column attached; None until read

    @property
    def key_shift(self) -> int:
        """The catalog's: entry key = date << key_shift | low bits of the number (catalog.py)."""
        if not self._key_shift:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'key_shift'").fetchone()
            self._key_shift = int(row[0]) if row else OLD_KEY_SHIFT
        return self._key_shift

    def entry(self, number: int) -> Hit | None:
        row = self.conn.execute(f"SELECT {HIT_COLUMNS} FROM {HIT_FROM} WHERE e.number = ?",
                                (number,)).fetchone()
        return None if row is None else _hit(row)

    def _folder_set(self, q: Query) -> tuple[str, int] | None:
        """For a search kept to some folders (folder:, user:, a caller's scope): their ids (as
        SQL) and the entries they hold, counted up to FEW_ENTRIES + 1; None for any other,
        and for one kept to every folder of the catalog (an administrator's own archive, which
        an import filled): that one is searched as if it were kept to none."""
        if not q.folders:
            return None
        conds = " AND ".join(f"({c})" for c, _ in q.folders)
        params = [p for _, ps in q.folders for p in ps]
        found = [int(r[0]) for r in self.conn.execute(
            f"SELECT id FROM folders WHERE {conds}", params)]
        if found and len(found) == self.conn.execute("SELECT count(*) FROM folders"
                                                     ).fetchone()[0]:
            return None  # every folder of this catalog: nothing to keep the search to
        ids = ",".join(map(str, found))
        held = self.conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM entries WHERE folder_id"
                                 f" IN ({ids}) LIMIT {FEW_ENTRIES + 1})").fetchone()[0]
        return ids, int(held)

    def _plan(self, q: Query, index_only: bool = False, join: str = "",
              folders: tuple[str, int] | None = None, by_entry: bool = False) -> Plan:
        """FROM ... WHERE ... over entries e (and fts) for a compiled query, and the column
        that orders it newest first. With only words and dates (index_only) the index counts
        and orders on its own.

        A search kept to folders holding at most FEW_ENTRIES entries (`folders`, from
        _folder_set) takes their keys, gathered once: without words it goes through them, with
        words the index either checks its matches against them or, `by_entry`, is asked for
        each of them (_few). Past FEW_ENTRIES, each match is looked up in entries for its
        folder."""
        conds: list[str] = []
        params: list[Any] = []
        index = None
        if folders is None:  # (search() finds them first, to choose its way)
            folders = self._folder_set(q)
        few = folders is not None and folders[1] <= FEW_ENTRIES
        if folders is not None and not few:
            index_only = False
        if index_only:
            src, col = "fts", "rowid"
            conds.append("fts MATCH ?")
            params.append(q.match)
        elif q.match is not None:
            src, col = "fts JOIN entries e ON e.key = fts.rowid", "fts.rowid"
            conds.append("fts MATCH ?")
            params.append(q.match)
            index = q.match
        else:
            src, col = "entries e", "e.key"
        if q.attached is not None:
            conds.append(self._attached_sql(q.attached, driven=q.match is None))
        if folders is not None:
            ids = folders[0]
            keys = f"(SELECT key FROM entries WHERE folder_id IN ({ids}))"
            if few and q.match is not None:  # "+": not a rowid the index is asked for
                conds.append(f"{'' if by_entry else '+'}{col} IN {keys}")
            elif few:
                conds.append(f"e.key IN {keys}")
            else:  # "+": never the index the search is driven by (has:attachment would
                # probe (blob_id, folder_id) for every pair of the two lists)
                conds.append(f"+e.folder_id IN ({ids})")
        shift = self.key_shift
        lo = None if q.date_min is None else key_of_day(q.date_min, shift)
        hi = None if q.date_max is None else key_of_day(q.date_max, shift)
        for a, b in q.outside:
            conds.append(f"({col} < ? OR {col} >= ?)")
            params.extend((key_of_day(a, shift), key_of_day(b, shift)))
        conds.extend(q.where)
        params.extend(q.params)
        for term in q.exclude:
            conds.append("e.key NOT IN (SELECT rowid FROM fts WHERE fts MATCH ?)")
            params.append(term)
        src += f" {join}" if join else ""
        return Plan(src, conds, params, col, lo, hi, index)

    def has_attached_column(self) -> bool:
        """Whether entries says which of them have attachments (catalogs made before had it
        added when first opened to write; one only ever read may not have it yet)."""
        if self._attached is None:
            self._attached = any(r[1] == "attached" for r in self.conn.execute(
                "PRAGMA table_info(entries)"))
        return self._attached

    def _attached_sql(self, attached: bool, driven: bool) -> str:
        """has:attachment (or -has:attachment) on entries e. `driven`: with no words, a
        search for those with attachments is read from their index (entries_attached)."""
        if not self.has_attached_column():
            return (f"+e.blob_id {'' if attached else 'NOT '}IN"
                    " (SELECT id FROM blobs WHERE has_attachment = 1)")
        return f"{'' if driven and attached else '+'}e.attached = {int(attached)}"

    def snapshot(self) -> _Snapshot:
        """A read transaction around a search's statements, so that all of them see the same
        catalog: the folders a scope names are found first and their ids used after, and a
        folder moved in between must not bring other messages in. (Inside a transaction the
        caller has open, that one.)"""
        return _Snapshot(self.conn)

    def search(self, q: Query, limit: int, offset: int = 0, sort: str = "date",
               ascending: bool = False, exact: bool = False) -> tuple[int, bool, list[Hit]]:
        """(total, whether that total is exact, one page) of the matching entries, newest
        first (or by SORTS[sort], then newest first). The total is counted one by one up to
        COUNT_EXACT matches (and COUNT_STEPS of work), and estimated past them unless
        `exact`: count_matches(). A page that is not full gives the total itself."""
        with self.snapshot():
            return self._search(q, limit, offset, sort, ascending, exact)

    def _search(self, q: Query, limit: int, offset: int, sort: str, ascending: bool,
                exact: bool) -> tuple[int, bool, list[Hit]]:
        way = "ASC" if ascending else "DESC"
        folders = self._folder_set(q)
        index_only = (q.match is not None and not q.where and not q.exclude
                      and q.attached is None)
        if folders is not None and folders[1] <= FEW_ENTRIES and sort == "date":
            return self._few(q, folders, index_only, limit, offset, ascending)
        if sort == "date":
            plan = self._plan(q, index_only=index_only, folders=folders)
            col = plan.col
            sql, params = plan.sql()
            rows = self.conn.execute(
                f"SELECT {HIT_COLUMNS} FROM (SELECT {col} AS k FROM {sql}"
                f" ORDER BY {col} {way} LIMIT ? OFFSET ?) m JOIN entries e ON e.key = m.k"
                f" {HIT_JOINS} ORDER BY e.key {way}", (*params, limit, offset)).fetchall()
        else:
            expr = SORTS[sort]
            plan = self._plan(q, join="JOIN blobs b ON b.id = e.blob_id", folders=folders)
            sql, params = plan.sql()
            rows = self.conn.execute(
                f"SELECT {HIT_COLUMNS} FROM (SELECT e.key AS k FROM {sql}"
                f" ORDER BY {expr} {way}, e.key DESC LIMIT ? OFFSET ?) m JOIN entries e"
                f" ON e.key = m.k {HIT_JOINS} ORDER BY {expr} {way}, e.key DESC",
                (*params, limit, offset)).fetchall()
        if len(rows) < limit and (rows or offset == 0):  # the last page: all are seen
            return offset + len(rows), True, [_hit(r) for r in rows]
        total, is_exact = self.count_matches(plan, exact, prefix="*" in (q.match or ""))
        total = max(total, offset + len(rows))  # never fewer than those seen
        return total, is_exact, [_hit(r) for r in rows]

    def _few(self, q: Query, folders: tuple[str, int], index_only: bool, limit: int,
             offset: int, ascending: bool) -> tuple[int, bool, list[Hit]]:
        """search() kept to folders holding at most FEW_ENTRIES entries: every matching key
        at once (so the total is exact), the page from them. With words, the index is either
        asked for each of the folders' entries, or read for all its matches and each checked
        against the folders' keys, whichever costs less: a lookup costs about LOOKUP_US and
        LOOKUP_US_PER_SEGMENT for each segment of the index, for each word, a match read
        MATCH_US; how many matches there are is estimated from slices of the index
        (_index_matches). A prefix is always read for its matches."""
        by_entry = False
        if q.match is not None and "*" not in q.match:  # a prefix (word*): FTS5 would expand
            # it again for each lookup, and for each slice that estimates its matches
            words = max(1, len(re.findall(r'[^\s"]+', " ".join(re.findall(r'"[^"]*"',
                                                                            q.match)))))
            lookups = folders[1] * words * (LOOKUP_US + self.index_segments()
                                            * LOOKUP_US_PER_SEGMENT)
            by_entry = lookups < self._index_matches(q.match) * MATCH_US
        plan = self._plan(q, index_only=index_only, folders=folders, by_entry=by_entry)
        sql, params = plan.sql()
        keys = sorted((k for (k,) in self.conn.execute(f"SELECT {plan.col} FROM {sql}",
                                                       params)), reverse=not ascending)
        page = keys[offset:offset + limit]
        if not page:
            return len(keys), True, []
        rows = self.conn.execute(
            f"SELECT {HIT_COLUMNS} FROM {HIT_FROM} WHERE e.key IN ({','.join('?' * len(page))})"
            f" ORDER BY e.key {'ASC' if ascending else 'DESC'}", page).fetchall()
        return len(keys), True, [_hit(r) for r in rows]

    def index_segments(self, again: bool = False) -> int:
        """The segments of the full-text index (from its structure record), read once (or
        `again`)."""
        if again or not self._segments:
            self._segments = SEGMENTS_UNKNOWN
            row = self.conn.execute("SELECT block FROM fts_data WHERE id = 10").fetchone()
            if row is not None and isinstance(row[0], bytes) and len(row[0]) > 6:
                values: list[int] = []
                value = 0
                for byte in row[0][4:16]:  # a 4-byte cookie, then varints: levels, segments
                    value = (value << 7) | (byte & 0x7F)
                    if not byte & 0x80:
                        values.append(value)
                        value = 0
                        if len(values) == 2:
                            break
                if len(values) == 2 and 0 < values[1] < 10_000:
                    self._segments = values[1]
        return self._segments

    def _key_range(self) -> tuple[int, int] | None:
        """[first, last + 1) of the catalog's entry keys; None when it has none."""
        first, last = self.conn.execute(  # (two queries: each then reads one end)
            "SELECT (SELECT min(key) FROM entries), (SELECT max(key) FROM entries)").fetchone()
        return None if first is None else (int(first), int(last) + 1)

    def _index_matches(self, match: str) -> int:
        """About how many rows of the index a match expression finds: those in SAMPLES
        slices of the keys, 1/SAMPLE_SHARES[0] of them in all, scaled."""
        keys = self._key_range()
        if keys is None:
            return 0
        span = keys[1] - keys[0]
        width = max(1, span // (SAMPLES * SAMPLE_SHARES[0]))
        sql, params = Plan("fts", ["fts MATCH ?"], [match], "rowid", None, None).each_range(
            _slices(keys[0], span, width))
        return int(self.conn.execute(sql, params).fetchone()[0]) * span // (SAMPLES * width)

    def count_matches(self, plan: Plan, exact: bool = False, prefix: bool = False
                      ) -> tuple[int, bool]:
        """(how many entries a plan finds, whether that is exact). Counting costs a step for
        every match: a million matches would cost every search of a common word tens of
        milliseconds. So past COUNT_EXACT matches, or COUNT_STEPS of SQLite's work, the total
        is estimated. The oldest COUNT_EXACT + 1 matches are counted (or, when each of the
        index's finds is looked up in entries, those among its oldest SCAN_ROWS finds: SQLite's
        steps stand for little of a lookup's work); the rest, in the part of
        the search's key (date) range above them, from the matches in SAMPLES slices of it,
        spread evenly over it and 1/128 of it in all (1/16 if they held fewer than
        SAMPLE_ENOUGH), scaled to it, under COUNT_STEPS of work of their own; the sum is
        rounded to two figures. Where the slices ran out of work, or the range is too narrow
        to slice, the range the oldest matches took is scaled instead; so it is for a prefix
        (word*), which costs FTS5 its whole work again in each slice, work no step counts.
        With neither, the caller has the page to go by. `exact` counts them all."""
        sql, params = plan.sql()
        if exact:
            return int(self.conn.execute(f"SELECT count(*) FROM {sql}", params).fetchone()[0]
                       ), True
        # (oldest first: FTS5 reads its lists backwards only by loading them whole)
        cap = None
        if plan.index is not None and not prefix:  # each of the index's finds looked up
            counted = self._bounded(*plan.oldest_finds(SCAN_ROWS + 1))
            if counted is not None and counted[0] > SCAN_ROWS:
                cap = int(counted[1]) + 1  # n matches below it
            elif counted is not None:  # all of the index's finds were read
                return int(counted[2]), True
            n, oldest = (-1, None) if counted is None else (int(counted[2]), None)
        else:
            counted = self._bounded(f"SELECT count(*), max(k) FROM (SELECT {plan.col} AS k"
                                    f" FROM {sql} ORDER BY {plan.col} LIMIT {COUNT_EXACT + 1})",
                                    params)
            n, oldest = (-1, None) if counted is None else (int(counted[0]), counted[1])
            if 0 <= n <= COUNT_EXACT:
                return n, True
        first, end = self._key_range() or (0, 0)  # (n >= 0: there are entries)
        lo = first if plan.lo is None else max(first, plan.lo)
        hi = end if plan.hi is None else min(end, plan.hi)
        # The oldest n matches were counted: exactly n have keys up to `oldest` (below `cap`
        # when fewer were found there). What is estimated is the rest, above it.
        if n > COUNT_EXACT and oldest is not None:
            base, bottom = n, max(lo, int(oldest) + 1)
        elif cap is not None:
            base, bottom = n, max(lo, cap)
        else:
            base, bottom = 0, lo
        span = hi - bottom
        rest: float | None = None
        for share in () if prefix or span <= 0 else SAMPLE_SHARES:
            width = span // (SAMPLES * share)
            if width < 1:  # too narrow a range to slice: its matches are few, or a flood's
                break
            ranges = _slices(bottom, span, width)
            if plan.index is not None:  # each find looked up: no more than SCAN_ROWS of them
                got = self._sample_finds(plan, ranges)
            elif plan.col == "e.key":  # one statement: SQLite reads entries by each range
                sql, params = plan.in_ranges(ranges)
                got = self._bounded(f"SELECT count(*) FROM {sql}", params)
            else:  # FTS5 takes one range a statement
                got = self._bounded(*plan.each_range(ranges))
            if got is None:  # out of work
                rest = None
                break
            rest = float(got[-1]) * span / (SAMPLES * width)
            if got[0] >= SAMPLE_ENOUGH:
                break
        if span <= 0:
            rest = 0.0
        elif rest is None and base and bottom > lo:  # the oldest matches' range, scaled
            rest = base * span / (bottom - lo)
        if rest is None:  # nothing to go by but the page
            return 0, False
        estimate = base + rest
        estimate = int(float(f"{estimate:.2g}"))
        return max(estimate, min(max(n, 0), COUNT_EXACT)), False

    def _sample_finds(self, plan: Plan, ranges: list[tuple[int, int]]
                      ) -> tuple[int, float] | None:
        """(matches seen, matches estimated) in these key ranges, for a plan that looks
        each of the index's finds up in entries: no more than SCAN_ROWS finds are read, an
        equal share of them the oldest of each range; a range with more finds has the matches
        among those read scaled by the part of it they took."""
        rows = max(1, SCAN_ROWS // len(ranges))
        seen, estimated = 0, 0.0
        for a, b in ranges:
            got = self._bounded(*plan.oldest_finds(rows, a, b))
            if got is None:
                return None
            read, newest, matched = int(got[0]), got[1], int(got[2])
            seen += matched
            estimated += (matched * (b - a) / (int(newest) + 1 - a) if read >= rows
                          else matched)
        return seen, estimated

    def _bounded(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """The one row of a statement run under COUNT_STEPS of work; None if it ran out."""
        ticks = 0

        def tick() -> int:
            nonlocal ticks
            ticks += 1
            return ticks > COUNT_STEPS // TICK

        self.conn.set_progress_handler(tick, TICK)
        try:
            return tuple(self.conn.execute(sql, params).fetchone())
        except sqlite3.OperationalError as exc:
            if "interrupt" not in str(exc):
                raise
            return None
        finally:
            self.conn.set_progress_handler(None, 0)

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
        from mailkeep.core.storage.catalog import unpack_documents
        return named_attachments(q, [(int(n), unpack_documents(doc)) for n, doc in rows])

    def matches(self, q: Query, number: int) -> bool:
        """Whether message `number` is one the query finds."""
        with self.snapshot():
            sql, params = self._plan(q.and_where("e.number = ?", number)).sql()
            return self.conn.execute(f"SELECT 1 FROM {sql} LIMIT 1",
                                     params).fetchone() is not None

    def iter_numbers(self, q: Query) -> Iterator[int]:
        """The numbers of the entries q finds, in order: read at once in one snapshot (8 bytes
        each), so that the caller may change the catalog while it goes through them."""
        from array import array
        with self.snapshot():
            sql, params = self._plan(q).sql()
            numbers = array("q", (n for (n,) in self.conn.execute(
                f"SELECT e.number FROM {sql} ORDER BY e.number", params)))
        yield from numbers


def named_attachments(q: Query, documents: list[tuple[int, str]]) -> dict[int, list[str]]:
    """Of messages (number, the text kept of their attachments) whose attachments hold a word
    sought: the names of the attachments whose name or text holds one of the words or phrases
    sought (q.terms), by message number. Each attachment's name and text (MATCH_CHARS for the
    page in all) go into a scratch FTS5 table made like the index, so that a word matches there
    exactly when it matched in the index (in either engine's: catalog_pg.py takes FTS5's words
    too)."""
    from mailkeep.core.mime.cjk import cjk_segment
    from mailkeep.core.mime.parse import document_entries
    if not documents:
        return {}
    share = MATCH_CHARS // len(documents)
    named = [(n, name, text) for n, doc in documents
             for name, text in document_entries(doc[:share]) if name or text]
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


def _slices(start: int, span: int, width: int) -> list[tuple[int, int]]:
    """SAMPLES key ranges [a, a + width), spread evenly over [start, start + span)."""
    return [(start + span * i // SAMPLES, start + span * i // SAMPLES + width)
            for i in range(SAMPLES)]


def _hit(row: Sequence[Any]) -> Hit:
    return Hit(int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], row[6], int(row[7]),
               bool(row[8]))


class _Snapshot:
    """BEGIN ... COMMIT around a search, unless a transaction is open already (a plain
    class: contextlib is not imported for a search from the command line)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.began = False

    def __enter__(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self.began = True

    def __exit__(self, kind: object, *exc: object) -> None:
        if self.began and self.conn.in_transaction:  # (a read: nothing to keep either way;
            # after an error, COMMIT could fail over a statement left open and hide it)
            self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
