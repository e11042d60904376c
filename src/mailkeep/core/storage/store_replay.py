"""Bringing a store's catalog up to date with its segments, which are the truth: the tail past
what the catalog applied is replayed when the store is opened for writing (a torn last record
is cut), a catalog that cannot be read is set aside and rebuilt, `rebuild_catalog` rebuilds
it from every record (recover), and a compaction is finished or undone on open and adopted by
the store when it completes (core/storage/compact.py writes the new segments)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailkeep.core.errors import CorruptData
from mailkeep.core.files import fsync_dir
from mailkeep.core.mime.parse import extract
from mailkeep.core.storage import segment_objects
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage.catalog import CATALOG, Catalog, compaction_of

if TYPE_CHECKING:  # (imported where used: psycopg only in an installation on PostgreSQL)
    from mailkeep.core.storage.catalog_pg import PgCatalog
from mailkeep.core.storage.manifest import segments_past
from mailkeep.core.storage.packing import PARTIAL_INDEX_BYTES, blob_info
from mailkeep.core.storage.store_base import (
    COMPACT_DIR,
    COMPACTION_MARK,
    OLD_SEGMENTS_DIR,
    SEGMENT_BYTES,
    keep_damaged,
)
from mailkeep.core.storage.store_write import Writing

Report = Callable[[float, str | None], None]  # (percent done, log line or None)


def _noop(percent: float, line: str | None) -> None:
    pass


class Replay(Writing):
    def behind_segments(self) -> bool:
        """Whether the segments hold records past what the catalog has applied (or the
        catalog is missing altogether): cheap, two stats and a meta read."""
        if self.catalog_url is None and not (self.path / CATALOG).exists():
            return bool(self.segments())
        return segments_past(self.path, self.catalog.applied())

    def replay_tail(self) -> None:
        """Apply the valid records past what the catalog knows and cut a torn write at the
        end; then the segment writer goes on after the last good record."""
        seg_dir = self.path / "segments"
        seg_dir.mkdir(exist_ok=True)
        applied_seg, applied_off = self.catalog.applied()
        if self.objects is not None:
            self._stage_from_objects(applied_seg, applied_off)
        numbers = seg.segment_numbers(seg_dir)
        if not numbers:
            self._writer = seg.SegmentWriter(seg_dir, 1, len(seg.FILE_HEADER), SEGMENT_BYTES)
            return
        applied_off = max(applied_off, len(seg.FILE_HEADER))
        last_seg, end_off = applied_seg, applied_off
        tail = [n for n in numbers if n >= applied_seg]
        self.catalog.begin()
        try:
            for n in tail:
                path = self.segment_path(n)
                start = applied_off if n == applied_seg else None
                if start is not None and path.stat().st_size < start:
                    # Shorter than what the catalog knows: damage, not a torn write. Leave it
                    # for verify to name, and write on in a fresh segment.
                    self.recovered_on_open.append(f"segment {n} is shorter than the catalog says")
                    last_seg, end_off = max(numbers) + 1, len(seg.FILE_HEADER)
                    break
                last_seg, end_off = n, start if start is not None else len(seg.FILE_HEADER)
                for item in seg.scan(path, n, start):
                    if isinstance(item, seg.Damage):
                        if item.end >= path.stat().st_size:
                            self.recovered_on_open.append(
                                f"cut a torn write of {item.end - item.start} bytes "
                                f"at the end of segment {n}")
                            break
                        self.recovered_on_open.append(
                            f"segment {n} bytes {item.start}-{item.end}: {item.reason}")
                        end_off = item.end
                        continue
                    self.apply_record(item)
                    self._replayed_leaf(item)
                    end_off = item.offset + item.length
            self.tree.flush()
            self.catalog.set_applied(last_seg, end_off)
            self.keep_tree_state()
            self.catalog.commit()
        except BaseException:
            self.catalog.rollback()
            self.tree.drop_pending()
            raise
        self._refresh_packer()
        self._writer = seg.SegmentWriter(seg_dir, last_seg, end_off, SEGMENT_BYTES)

    def _stage_from_objects(self, applied_seg: int, applied_off: int) -> None:
        """Before a writer goes on with a store in object storage: its directory as the
        catalog says the objects are, no more (what lies past was never committed: a commit
        cut off between the local write and the catalog's, here or on another server)."""
        assert self.objects is not None
        seg_dir = self.path / "segments"
        for n in seg.segment_numbers(seg_dir):
            if n > applied_seg:
                (seg_dir / seg.segment_name(n)).unlink()
        path = seg_dir / seg.segment_name(applied_seg)
        catalog = self._pg_catalog()
        if catalog.parts(applied_seg):
            segment_objects.download(self.objects, catalog, applied_seg, path, upto=applied_off)
        elif path.exists():  # nothing of it is stored: start it again
            path.unlink()
        self._uploaded = (applied_seg, applied_off if catalog.parts(applied_seg) else 0)

    def _replayed_leaf(self, rec: seg.Record) -> None:
        leaf = rec.header.get("tl")
        if isinstance(leaf, dict) and isinstance(leaf.get("i"), int) \
                and leaf["i"] == self.tree.size:
            self._derive_leaf(rec, leaf["i"], {})

    def _derive_leaf(self, rec: seg.Record, index: int, m_leaves: dict[str, int | None]) -> None:
        """Add the leaf of a record whose leaf the tree's file lost."""
        if rec.type == seg.ENTRY and rec.header.get("id") not in m_leaves:
            blob_id = self.catalog.find_blob(bytes.fromhex(rec.header["id"]))
            m_leaves[rec.header["id"]] = (self.message_leaf(blob_id)
                                          if blob_id is not None else None)
        if rec.type == seg.DICTIONARY and rec.payload is None:
            rec = self.record_at(rec.segment, rec.offset, rec.length)
        what = self.committed(rec, m_leaves)
        if what is not None:
            self.tree.add_known(index, rec.type, what)

    def restore_tree(self) -> None:
        """Derive again the leaves a crash took from the end of the tree's file (it is
        appended to after the segments are durable, and synced only before a head is signed or
        a compaction): from the headers of the records that carry them."""
        try:
            expected = int(self.catalog.get_meta("tree_leaves", "0") or 0)
        except ValueError:
            expected = 0
        stored = self.tree.stored_size()
        if stored >= expected:
            return
        found: dict[int, seg.Record] = {}
        for n in self.segments():
            for item in seg.scan(self.segment_path(n), n, with_payload=False):
                if isinstance(item, seg.Record):
                    leaf = item.header.get("tl")
                    if isinstance(leaf, dict) and isinstance(leaf.get("i"), int) \
                            and leaf["i"] >= stored:
                        found[leaf["i"]] = item
        m_leaves: dict[str, int | None] = {}
        for i in sorted(found):
            rec = found[i]
            if rec.type == seg.MESSAGE:
                m_leaves[rec.header["id"]] = i
                if self._sealer is not None:  # its raw bytes are hashed: read it whole
                    rec = self.record_at(rec.segment, rec.offset, rec.length)
            self._derive_leaf(rec, i, m_leaves)
        self.tree.flush()
        if self.tree.size < expected:
            self.recovered_on_open.append(
                f"the tree lost leaves {self.tree.size}-{expected - 1} and no record holds "
                "them any more (see `mailkeep verify`)")
        else:
            self.recovered_on_open.append(f"derived {len(found)} tree leaves a crash had "
                                          "lost again from the records")

    def apply_record(self, rec: seg.Record, problems: list[str] | None = None) -> None:
        """Bring the catalog up to date with one valid record (replay and recovery)."""
        h = rec.header
        cat = self.catalog
        if rec.type == seg.DICTIONARY:
            assert rec.payload is not None
            if bool(h.get("sealed")) != (self._sealer is not None):
                raise CorruptData("dictionary record does not match the store's encryption")
            cat.add_dictionary(int(h["dict"]), rec.payload, rec.segment, rec.offset)
            self._refresh_packer()
        elif rec.type == seg.MESSAGE:
            cid = bytes.fromhex(h["id"])
            if cat.find_blob(cid) is not None:
                return
            try:
                head, size = self.checked_head(rec, cid, PARTIAL_INDEX_BYTES)
            except (CorruptData, KeyError, ValueError) as exc:
                self.undecodable.add(cid)
                if problems is not None:
                    problems.append(f"message record at segment {rec.segment} offset "
                                    f"{rec.offset} cannot be decoded: {exc}")
                return
            info = blob_info(extract(head), h.get("date") or time.time())
            new_id = cat.add_blob(cid, rec.segment, rec.offset, rec.length, size, info)
            self._remember_index(new_id, info.date, info.index)
        elif rec.type == seg.ENTRY:
            blob_id = cat.find_blob(bytes.fromhex(h["id"]))
            if blob_id is None:
                undecodable = bytes.fromhex(h["id"]) in self.undecodable
                if problems is not None:
                    problems.append(f"message {h['n']} in {h['owner']}/{h['folder']}: " + (
                        "its bytes are there but cannot be decoded; left in place"
                        if undecodable else "its message record is lost"))
                if not undecodable:  # only what is really gone is buried
                    self.lost_entries.append(int(h["n"]))
                    tl: dict[str, Any] = h["tl"] if isinstance(h.get("tl"), dict) else {}
                    self.lost_leaves[int(h["n"])] = (tl.get("i"), tl.get("m"))
                if int(h["n"]) >= cat.next_number():  # its number is never handed out again
                    cat.set_next_number(int(h["n"]) + 1)
                return
            fid = cat.folder_id(h["owner"], h["folder"])
            if cat.has_entry(blob_id, fid):
                return
            date, index = self._blob_index(blob_id)
            cat.add_entry(int(h["n"]), blob_id, fid, h.get("flags", []), h.get("idate"),
                          int(h["at"]), rec.segment, rec.offset, date, index)
            if isinstance(h.get("env"), dict):
                cat.add_envelope(int(h["n"]), h["env"])
        elif rec.type == seg.TOMBSTONE:
            self._drop_entry(int(h["n"]))
            if int(h["n"]) >= cat.next_number():
                cat.set_next_number(int(h["n"]) + 1)
        elif rec.type == seg.FOLDER:
            self._apply_folder(h)

    def _open_catalog(self) -> Catalog | PgCatalog:
        """The catalog; for the writer, an unreadable one is set aside and rebuilt from the
        segments (a fresh catalog replays them all on open). In PostgreSQL, the store's
        schema there (made on the first open)."""
        if self.catalog_url is not None:
            from mailkeep.core.storage.catalog_pg import PgCatalog
            pg = PgCatalog(self.catalog_url, self.id, readonly=not self.writable)
            self._fresh_catalog = self.writable and pg.fresh
            if pg.fresh and seg.segment_numbers(self.path / "segments"):
                self.recovered_on_open.append("the catalog was missing in PostgreSQL; rebuilt"
                                              " from the segments")
            return pg
        path = self.path / CATALOG
        # Made new on this open, so rebuilt from the segments (see __init__).
        self._fresh_catalog = self.writable and not path.exists()
        if self._fresh_catalog and seg.segment_numbers(self.path / "segments"):
            self.recovered_on_open.append("catalog was missing; rebuilt from the segments")
        try:
            catalog = Catalog(path, readonly=not self.writable and path.exists())
            catalog.touch()  # one that is no database, or damaged there, fails here
            return catalog
        except sqlite3.DatabaseError as exc:
            if not self.writable:
                self.close_lock()
                raise CorruptData(f"the catalog of store {self.name!r} cannot be read ({exc}): "
                                  f"run `mailkeep recover {self.name}`") from None
            aside = self._set_catalog_aside("damaged")
            self.recovered_on_open.append(f"catalog was unreadable ({exc}); set aside as "
                                          f"{aside.name} and rebuilt from the segments")
            self._fresh_catalog = True
            return Catalog(path)

    def _set_catalog_aside(self, why: str) -> Path:
        if self.catalog_url is not None:
            from mailkeep.core.storage.catalog_pg import set_catalog_aside
            name = set_catalog_aside(self.catalog_url, self.id, f"{why}{int(time.time())}")
            return Path(name)
        path = self.path / CATALOG
        aside = path.with_name(f"catalog.{why}-{int(time.time())}.sqlite")
        for suffix in ("", "-wal", "-shm"):
            src = path.with_name(path.name + suffix)
            if src.exists():
                os.replace(src, aside.with_name(aside.name + suffix))
        return aside

    def _finish_compaction(self) -> None:
        """Finish or undo a compaction a crash cut off (see core/storage/compact.py)."""
        segments, work = self.path / "segments", self.path / COMPACT_DIR
        old = self.path / OLD_SEGMENTS_DIR
        if not segments.exists() and (work / COMPACTION_MARK).exists():
            os.rename(work, segments)  # cut off between the two renames of the swap
            fsync_dir(self.path)
        if work.exists():
            shutil.rmtree(work)  # never swapped in: the old segments are whole
            self.recovered_on_open.append("an unfinished compaction was discarded")
        expected = self.compaction_mark()
        if expected is None:
            if old.exists():  # cannot happen (the mark is written before the swap): keep it
                self.recovered_on_open.append(f"{OLD_SEGMENTS_DIR}/ left in place: the "
                                              "current segments carry no compaction mark")
            return
        catalog = self.path / CATALOG
        if self.catalog_url is not None:
            from mailkeep.core.storage.catalog_pg import catalog_exists, compaction_in
            rebuild = catalog_exists(self.catalog_url, self.id) and compaction_in(
                self.catalog_url, self.id) != expected
        else:
            rebuild = catalog.exists() and compaction_of(catalog) != expected
        if rebuild:
            # The catalog does not know these segments (its update was cut off, or lost
            # in a power cut): rebuilt from them, it will.
            self._set_catalog_aside("compacted")
            self.recovered_on_open.append("the catalog did not match the compacted segments: "
                                          "rebuilt from them")
        if old.exists():
            keep_damaged(old, segments)
            shutil.rmtree(old)
            self.recovered_on_open.append("finished an interrupted compaction")

    def stop_writing(self) -> None:
        """Close the segment writer and every open segment (compaction swaps them)."""
        self.commit()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for number in list(self._fds):
            self.forget_fd(number)

    def start_writing(self) -> None:
        self._index_cache.clear()
        self.replay_tail()

    def adopt_compaction(self, blob_moves: dict[int, tuple[int, int, int]],
                         entry_moves: dict[int, tuple[int, int]],
                         dict_moves: dict[int, tuple[int, int]], end: tuple[int, int],
                         compaction: str) -> int:
        """Swap in the compacted segments (complete and marked in COMPACT_DIR) and point the
        catalog at them; returns how many messages no entry files were dropped. A crash at
        any point is finished or undone by the next writable open (_finish_compaction)."""
        self.stop_writing()
        os.rename(self.path / "segments", self.path / OLD_SEGMENTS_DIR)
        os.rename(self.path / COMPACT_DIR, self.path / "segments")
        fsync_dir(self.path)
        # If this fails, the next writable open rebuilds the catalog from the new segments.
        dropped = self.catalog.relocate(blob_moves, entry_moves, dict_moves, end, compaction)
        # The old segments go only once the catalog's update is on disk (a power cut must not
        # leave the old directory gone and the catalog still pointing into it); what recover
        # set aside in segments/damaged/ moves over to the new segments.
        self.catalog.checkpoint()
        old = self.path / OLD_SEGMENTS_DIR
        keep_damaged(old, self.path / "segments")
        shutil.rmtree(old, ignore_errors=True)
        self.start_writing()
        return dropped

    def rebuild_catalog(self, report: Report = _noop) -> tuple[int, int, list[str]]:
        """Rebuild the catalog and full-text index from the segments alone (the recovery
        records), keeping message numbers; (messages, records read, problems). With the
        segments in object storage, under the store's write lock all along, the parts the old
        catalog names carried over (what names the segments)."""
        self.require_writable()
        if self.objects is not None:
            self.resume_writing()
            try:
                return self._rebuild_catalog(report)
            finally:
                self.pause_writing()
        return self._rebuild_catalog(report)

    def _rebuild_catalog(self, report: Report) -> tuple[int, int, list[str]]:
        problems: list[str] = []
        records = 0
        path = self.path / CATALOG
        tmp = self.path / "catalog.rebuild.sqlite"
        for p in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            p.unlink(missing_ok=True)
        old_catalog, old_packer = self.catalog, self.packer
        # What only the old catalog may still know: dictionaries whose records are damaged
        # (the messages compressed with them stay readable) and how far message numbers have
        # gone (numbers once handed out are never handed out again).
        try:
            old_dicts, old_next = old_catalog.dictionaries(), old_catalog.next_number()
        except sqlite3.Error:
            old_dicts, old_next = {}, 0
        self._index_cache.clear()
        self.lost_entries, self.undecodable, self.lost_leaves = [], set(), {}
        from mailkeep.core.storage.catalog_pg import (
            PgCatalog,
            replace_catalog,
            set_catalog_aside,
        )
        rebuilt: Catalog | PgCatalog = (
            Catalog(tmp) if self.catalog_url is None
            else PgCatalog(self.catalog_url, self.id, suffix="rebuild"))
        self.catalog = rebuilt
        numbers = self.segments()
        end = (numbers[-1] if numbers else 1, len(seg.FILE_HEADER))
        seen_dicts: set[int] = set()
        leaves = 0  # the records' leaves: one past the highest
        try:
            self.catalog.begin()
            for dict_id, data in old_dicts.items():
                self.catalog.add_dictionary(dict_id, data, 0, 0)
            self._refresh_packer()
            for i, n in enumerate(numbers):
                for item in seg.scan(self.segment_path(n), n):
                    if isinstance(item, seg.Damage):  # only if it appeared since a rewrite
                        problems.append(f"segment {n}: damaged bytes {item.start}-"
                                        f"{item.end} ({item.reason}), skipped")
                        continue
                    records += 1
                    leaf = item.header.get("tl")
                    if isinstance(leaf, dict) and isinstance(leaf.get("i"), int):
                        leaves = max(leaves, leaf["i"] + 1)
                    if item.type == seg.DICTIONARY:
                        seen_dicts.add(int(item.header["dict"]))
                    self.apply_record(item, problems)
                    end = (n, item.offset + item.length)
                    if records % 1000 == 0:
                        report(100.0 * i / len(numbers), f"{records} records read")
            if self.catalog.next_number() < old_next:
                self.catalog.set_next_number(old_next)
            self.catalog.set_applied(*end)
            mark = self.compaction_mark()
            if mark is not None:  # rebuilt from these very segments: it matches them
                self.catalog.set_meta("compaction", mark)
            if isinstance(rebuilt, PgCatalog) and isinstance(old_catalog, PgCatalog):
                taken = rebuilt.take_leaves(old_catalog)  # the tree's leaves are catalog rows
                self.catalog.set_meta("tree_leaves", max(taken, leaves))
                if self.objects is not None:
                    rebuilt.take_parts(old_catalog)
            self.catalog.commit()
            messages = self.catalog.counts()[0]
        except BaseException:
            self.catalog.close()
            if isinstance(rebuilt, PgCatalog):
                set_catalog_aside(rebuilt.url, self.id, "failedrebuild")
            self.catalog, self.packer = old_catalog, old_packer
            raise
        self.catalog.close()
        if isinstance(old_catalog, PgCatalog):
            # The rebuilt schema takes the store's name; the connection that holds the
            # store's write lock goes on, reading it under that name.
            replace_catalog(old_catalog.url, self.id, "rebuild")
            old_catalog.forget_cached()
            self.catalog = old_catalog
            forget = getattr(self.tree, "forget", None)
            if forget is not None:
                forget()
        else:
            old_catalog.close()
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            os.replace(tmp, path)
            fsync_dir(self.path)
            self.catalog = Catalog(path)
        if isinstance(self.catalog, PgCatalog):
            self.restore_tree()  # (leaves the old catalog could not give: from the records)
        self._refresh_packer()
        if self._writer is not None:
            self._writer.rewind(*end)
            self.bury_lost_entries()
            missing = {i: d for i, d in self.dictionaries().items() if i not in seen_dicts}
            if missing:  # write them again, so that the segments are self-sufficient again
                self.begin()
                for dict_id, data in missing.items():
                    self._write_dictionary(dict_id, data)
                    problems.append(f"dictionary {dict_id} was damaged in the segments; "
                                    "written again from the catalog's copy")
                self.commit()
        report(100.0, f"catalog rebuilt: {messages} messages from {records} records")
        return messages, records, problems
