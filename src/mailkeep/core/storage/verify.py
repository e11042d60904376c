"""Verifying a store against its segments, and rebuilding its catalog from them.

verify re-reads every record (checksum, decode, content hash), checks that every catalog row
points at a valid record and that the full-text index covers every message. A store that
another writer holds (a running server's) is verified as it stood at one moment: the catalog
is read in one read transaction, and the segments only up to the point that catalog had
applied; what the writer adds meanwhile is not looked at (nor taken for damage). Only FTS5's
own integrity check, a write statement, is left out then. recover rebuilds
catalog and index from the segments alone, keeping message numbers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailkeep.core.errors import CorruptData, MailkeepError
from mailkeep.core.files import fsync_dir
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage.store import Store
from mailkeep.core.storage.tree_records import TreeReport, check_records

Report = Callable[[float, str | None], None]  # (percent done, log line or None)


class VerifyFailed(MailkeepError):
    """Verification found damage; `details` names the damaged messages, `report` (when set)
    has everything that was found, store by store."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details
        self.report: dict[str, Any] | None = None


class RecoverFailed(MailkeepError):
    """Recovery could not rebuild a store; `details` says why."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


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


def _scan_all(store: Store, report: Report, check: Callable[[], None],
              upto: tuple[int, int] | None = None
              ) -> tuple[dict[tuple[int, int], bytes], dict[tuple[int, int], int],
                         list[seg.Damage], set[int], set[int], int]:
    """Valid message records by location -> content id, entry records by location -> number,
    damaged stretches, tombstoned numbers, and the number of records read. `upto`: (segment,
    offset) where to stop (records from there on are another writer's, not yet committed)."""
    good_msgs: dict[tuple[int, int], bytes] = {}
    entries: dict[tuple[int, int], int] = {}
    damage: list[seg.Damage] = []
    tombstones: set[int] = set()
    dict_ids: set[int] = set()
    numbers = store.segments()
    if upto is not None:
        numbers = [n for n in numbers if n <= upto[0]]
    total = sum(store.segment_path(n).stat().st_size for n in numbers) or 1
    done = 0
    count = 0
    for n in numbers:
        for item in seg.scan(store.segment_path(n), n):
            check()
            if upto is not None and n == upto[0] and (
                    item.start if isinstance(item, seg.Damage) else item.offset) >= upto[1]:
                break  # the writer's, after the moment verified
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
    if store.writable:
        return _verify(store, report, check_cancelled, None)
    # Another writer holds the store: everything as it stood when this read transaction
    # began (WAL: the writer goes on committing meanwhile).
    mark = store.compaction_mark()
    store.catalog.begin_read()
    try:
        upto = store.catalog.applied()  # the first read fixes the moment
        store._refresh_packer()  # dictionaries learnt since the store was opened
        result = _verify(store, report, check_cancelled, upto)
    finally:
        store.catalog.end_read()
    if store.compaction_mark() != mark:
        raise MailkeepError(f"store {store.name!r} was compacted while it was verified: "
                            "verify it again")
    return result


def _verify(store: Store, report: Report, check_cancelled: Callable[[], None],
            upto: tuple[int, int] | None) -> VerifyResult:
    result = VerifyResult()
    good_msgs, entries, damage, tombstones, dict_ids, result.records = _scan_all(
        store, report, check_cancelled, upto)
    cat = store.catalog
    problems = result.problems
    damaged_blobs: set[int] = set()
    for blob_id, cid, s, off, size in cat.blob_locations():
        result.bytes += size
        if good_msgs.get((s, off)) != cid:
            damaged_blobs.add(blob_id)
    live_numbers: set[int] = set()
    for number, blob_id, s, off, has_blob, has_folder in cat.entry_checks():
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
    fts_rows = cat.index_rowids()
    keys = cat.entry_keys()
    if fts_rows != keys:
        missing, extra = len(keys - fts_rows), len(fts_rows - keys)
        problems.append(Problem("", f"full-text index disagrees with the catalog: {missing} "
                                f"messages not indexed, {extra} index rows without a message"))
    try:
        if store.writable:
            cat.check_index()
    except Exception as exc:  # sqlite3.DatabaseError: the index itself is damaged
        problems.append(Problem("", f"full-text index is damaged: {exc}"))
    applied = store.catalog.applied()
    numbers = store.segments()
    if numbers and upto is None:  # (when another writer holds it, its tail is its business)
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
    result.messages, result.records, problems = store.rebuild_catalog(report)
    result.problems += problems
    # What the damage took is declared lost in the tree (a record with a leaf of its own): the
    # store verifies clean again, and its history says what was lost and when.
    tree = TreeReport()
    check_records(store, tree, store.tree.packed_hashes())
    if tree.missing:
        ranges = _ranges(tree.missing)
        store.declare_lost(ranges, "records lost to damage; recovered")
        result.problems.append(f"{len(tree.missing)} records of the store's history are lost "
                               "(declared so in its tree)")
    return result


def _ranges(numbers: list[int]) -> list[list[int]]:
    """Sorted numbers as [first, last] runs."""
    out: list[list[int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out
