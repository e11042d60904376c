"""Verifying a store against its segments, and rebuilding its catalog from them.

verify re-reads every record (checksum, decode, content hash), checks that every catalog row
points at a valid record and that the full-text index covers every message. recover rebuilds
catalog and index from the segments alone, keeping message numbers.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailkeep.core.errors import CorruptData
from mailkeep.core.files import fsync_dir
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage.catalog import Catalog
from mailkeep.core.storage.store import Store

Report = Callable[[float, str | None], None]  # (percent done, log line or None)


@dataclass
class Problem:
    message: str  # "<number>" of the damaged message, or "" when it is not about one
    text: str


@dataclass
class VerifyResult:
    records: int = 0
    messages: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _noop(percent: float, line: str | None) -> None:
    pass


def _scan_all(store: Store, report: Report, check: Callable[[], None]
              ) -> tuple[dict[tuple[int, int], bytes], dict[tuple[int, int], int],
                         list[seg.Damage], set[int], set[int], int]:
    """Valid message records by location -> content id, entry records by location -> number,
    damaged stretches, tombstoned numbers, and the number of records read."""
    good_msgs: dict[tuple[int, int], bytes] = {}
    entries: dict[tuple[int, int], int] = {}
    damage: list[seg.Damage] = []
    tombstones: set[int] = set()
    dict_ids: set[int] = set()
    numbers = store.segments()
    total = sum(store.segment_path(n).stat().st_size for n in numbers) or 1
    done = 0
    count = 0
    for n in numbers:
        for item in seg.scan(store.segment_path(n), n):
            check()
            if isinstance(item, seg.Damage):
                damage.append(item)
                report(100.0 * (done + item.end) / total,
                       f"segment {n}: damaged bytes {item.start}-{item.end} ({item.reason})")
                continue
            count += 1
            if item.type == seg.MESSAGE:
                cid = bytes.fromhex(item.header["id"])
                try:
                    store.checked_head(item, cid, 0)
                    good_msgs[(n, item.offset)] = cid
                except CorruptData as exc:
                    damage.append(seg.Damage(n, item.offset, item.offset + item.length,
                                             exc.message))
            elif item.type == seg.ENTRY:
                entries[(n, item.offset)] = int(item.header["n"])
            elif item.type == seg.TOMBSTONE:
                tombstones.add(int(item.header["n"]))
            elif item.type == seg.DICTIONARY:
                dict_ids.add(int(item.header["dict"]))
            if count % 1000 == 0:
                report(100.0 * (done + item.offset) / total, f"{count} records verified")
        done += store.segment_path(n).stat().st_size
    return good_msgs, entries, damage, tombstones, dict_ids, count


def verify(store: Store, report: Report = _noop,
           check_cancelled: Callable[[], None] = lambda: None) -> VerifyResult:
    result = VerifyResult()
    good_msgs, entries, damage, tombstones, dict_ids, result.records = _scan_all(
        store, report, check_cancelled)
    cat = store.catalog.conn
    problems = result.problems
    damaged_blobs: set[int] = set()
    for blob_id, cid, s, off, size in cat.execute(
            "SELECT id, content_id, segment, offset, raw_size FROM blobs"):
        result.bytes += size
        if good_msgs.get((s, off)) != bytes(cid):
            damaged_blobs.add(blob_id)
    live_numbers: set[int] = set()
    for number, blob_id, s, off, has_blob, has_folder in cat.execute(
            "SELECT e.number, e.blob_id, e.segment, e.offset, b.id IS NOT NULL,"
            " f.id IS NOT NULL FROM entries e LEFT JOIN blobs b ON b.id = e.blob_id"
            " LEFT JOIN folders f ON f.id = e.folder_id ORDER BY e.number"):
        live_numbers.add(number)
        result.messages += 1
        if not has_blob or not has_folder:
            problems.append(Problem(str(number), "the catalog entry points at a "
                                    + ("message" if not has_blob else "folder")
                                    + " it does not have (run `mailkeep recover`)"))
        elif blob_id in damaged_blobs:
            where = _where(damage, s)
            problems.append(Problem(str(number), "message bytes are damaged or missing" + where))
        elif entries.get((s, off)) != number:
            problems.append(Problem(str(number), "its folder entry record is damaged or missing"
                                    + _where(damage, s)))
    in_segments = set(entries.values()) - tombstones
    for number in sorted(in_segments - live_numbers):
        problems.append(Problem(str(number), "in the segments but missing from the catalog "
                                "(run `mailkeep recover`)"))
    fts_rows = {r[0] for r in cat.execute("SELECT rowid FROM fts")}
    keys = {r[0] for r in cat.execute("SELECT key FROM entries")}
    if fts_rows != keys:
        missing, extra = len(keys - fts_rows), len(fts_rows - keys)
        problems.append(Problem("", f"full-text index disagrees with the catalog: {missing} "
                                f"messages not indexed, {extra} index rows without a message"))
    try:
        if store.writable:
            cat.execute("INSERT INTO fts(fts, rank) VALUES ('integrity-check', 1)")
    except Exception as exc:  # sqlite3.DatabaseError: the index itself is damaged
        problems.append(Problem("", f"full-text index is damaged: {exc}"))
    applied = store.catalog.applied()
    numbers = store.segments()
    if numbers:
        last = numbers[-1]
        size = store.segment_path(last).stat().st_size
        if (last, size) > (applied[0], max(applied[1], len(seg.FILE_HEADER))):
            problems.append(Problem("", f"segment {last} has {size - applied[1]} bytes the "
                                    "catalog does not know"))
    for dict_id in sorted(set(store.catalog.dictionaries()) - dict_ids):
        problems.append(Problem("", f"dictionary {dict_id} is damaged in the segments; the "
                                "messages compressed with it are read through the catalog's "
                                "copy (`mailkeep recover` writes it again)"))
    for d in damage:
        problems.append(Problem("", f"segment {d.segment}: damaged bytes {d.start}-{d.end} "
                                f"({d.reason})"))
    report(100.0, f"{result.records} records verified, {len(problems)} problems")
    return result


def _where(damage: list[seg.Damage], segment: int) -> str:
    spans = [f"{d.start}-{d.end}" for d in damage if d.segment == segment]
    return f" (segment {segment}, damaged bytes {', '.join(spans)})" if spans else ""


@dataclass
class RecoverResult:
    messages: int = 0
    records: int = 0
    problems: list[str] = field(default_factory=list)


def _quarantine_damage(store: Store, result: RecoverResult) -> None:
    """Rewrite each damaged segment with its valid records only; keep the original aside."""
    for n in store.segments():
        path = store.path / "segments" / seg.segment_name(n)
        spans: list[tuple[int, int]] = []
        damaged = False
        for item in seg.scan(path, n, with_payload=False):
            if isinstance(item, seg.Damage):
                damaged = True
                result.problems.append(f"segment {n}: damaged bytes {item.start}-{item.end} "
                                       f"({item.reason}), set aside")
            else:
                spans.append((item.offset, item.length))
        if not damaged:
            continue
        aside = store.path / "segments" / "damaged"
        aside.mkdir(exist_ok=True)
        tmp = path.with_suffix(".rewrite")
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            dst.write(seg.FILE_HEADER)
            for offset, length in spans:
                src.seek(offset)
                left = length
                while left:
                    chunk = src.read(min(seg.CHUNK, left))
                    dst.write(chunk)
                    left -= len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(path, aside / f"{path.name}.{int(time.time())}")
        os.replace(tmp, path)
        fsync_dir(path.parent)
        store.forget_fd(n)


def recover(store: Store, report: Report = _noop) -> RecoverResult:
    """Rebuild the catalog and full-text index from the segments (the recovery records).

    Damaged stretches of a segment are set aside under segments/damaged/ first, so that the
    store verifies clean afterwards; what they held is named in the result.
    """
    store.require_writable()
    result = RecoverResult()
    _quarantine_damage(store, result)
    path = store.path / "catalog.sqlite"
    tmp = store.path / "catalog.rebuild.sqlite"
    for p in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        p.unlink(missing_ok=True)
    old_catalog, old_packer = store.catalog, store.packer
    # What only the old catalog may still know: dictionaries whose records are damaged (the
    # messages compressed with them stay readable) and how far message numbers have gone
    # (numbers once handed out are never handed out again).
    try:
        old_dicts, old_next = old_catalog.dictionaries(), old_catalog.next_number()
    except sqlite3.Error:
        old_dicts, old_next = {}, 0
    store._index_cache.clear()
    store.lost_entries, store.undecodable = [], set()
    store.catalog = Catalog(tmp)
    numbers = store.segments()
    end = (numbers[-1] if numbers else 1, len(seg.FILE_HEADER))
    seen_dicts: set[int] = set()
    try:
        store.catalog.begin()
        for dict_id, data in old_dicts.items():
            store.catalog.add_dictionary(dict_id, data, 0, 0)
        store._refresh_packer()
        for i, n in enumerate(numbers):
            for item in seg.scan(store.segment_path(n), n):
                if isinstance(item, seg.Damage):  # only if it appeared since the rewrite
                    result.problems.append(f"segment {n}: damaged bytes {item.start}-"
                                           f"{item.end} ({item.reason}), skipped")
                    continue
                result.records += 1
                if item.type == seg.DICTIONARY:
                    seen_dicts.add(int(item.header["dict"]))
                store.apply_record(item, result.problems)
                end = (n, item.offset + item.length)
                if result.records % 1000 == 0:
                    report(100.0 * i / len(numbers), f"{result.records} records read")
        if store.catalog.next_number() < old_next:
            store.catalog.set_next_number(old_next)
        store.catalog.set_applied(*end)
        mark = store.compaction_mark()
        if mark is not None:  # rebuilt from these very segments: it matches them
            store.catalog.set_meta("compaction", mark)
        store.catalog.commit()
        result.messages = store.catalog.counts()[0]
    except BaseException:
        store.catalog.close()
        store.catalog, store.packer = old_catalog, old_packer
        raise
    store.catalog.close()
    old_catalog.close()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    os.replace(tmp, path)
    fsync_dir(store.path)
    store.catalog = Catalog(path)
    store._refresh_packer()
    if store._writer is not None:
        store._writer.rewind(*end)
        store.bury_lost_entries()
        missing = {i: d for i, d in store.dictionaries().items() if i not in seen_dicts}
        if missing:  # write them again, so that the segments are self-sufficient once more
            store.begin()
            for dict_id, data in missing.items():
                store._write_dictionary(dict_id, data)
                result.problems.append(f"dictionary {dict_id} was damaged in the segments; "
                                       "written again from the catalog's copy")
            store.commit()
    report(100.0, f"catalog rebuilt: {result.messages} messages from {result.records} records")
    return result
