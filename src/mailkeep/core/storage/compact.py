"""Compaction: rewrite a store's segments without what no message number refers to any more.

What stays, byte for byte and in order: every dictionary record, the one message record the
catalog uses for each message that is still filed somewhere, and every tombstone (it names the
tree leaves of what it deleted: core/storage/tree.py). Entry records are written afresh from
the catalog (so they carry the folders as they are now, after any MoveFolder, and what they
were filed as under `filed`, which their tree leaf commits to); folder records are kept inert
(`{"op": "kept", "was": ...}`: applied already, kept for their leaves); one tombstone keeps
the highest message number ever handed out. Message numbers do not change.

Crash safety: the new segments are built in `segments.compact/` and fsynced, then marked
complete with a compaction id, then swapped in for `segments/` (the old ones renamed to
`segments.precompact/`), then the catalog's locations are updated in one transaction that also
records the id. Opening the store for writing finishes or undoes an interrupted compaction
(Store._finish_compaction): before the swap the old segments are kept, after it the new ones;
a catalog that missed the update is rebuilt from the new segments.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from mailkeep.core.errors import CorruptData, StoreUnavailable
from mailkeep.core.files import fsync_dir
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage.store import (
    COMPACT_DIR,
    COMPACTION_MARK,
    SEGMENT_BYTES,
    Store,
)

Report = Callable[[float, str | None], None]  # (percent done, log line or None)
FILED = ("owner", "folder", "flags", "idate", "at")  # what an entry's tree leaf commits to


@dataclass
class CompactResult:
    bytes_before: int
    bytes_after: int
    records_before: int
    records_after: int
    messages_dropped: int  # message records no entry referred to


def _noop(percent: float, line: str | None) -> None:
    pass


def compact(store: Store, report: Report = _noop,
            check_cancelled: Callable[[], None] = lambda: None,
            before_swap: Callable[[], None] = lambda: None) -> CompactResult:
    """`before_swap` may raise to stop at the last moment (a legal hold placed meanwhile)."""
    if store.objects is not None:
        raise StoreUnavailable(f"store {store.name!r} keeps its segments in object storage: "
                               "compacting it is not supported yet")
    store.require_writable()
    store.commit()
    cat = store.catalog
    live_blobs = cat.live_blobs()
    entries = cat.entry_records()
    envelopes = cat.envelopes()
    known_blobs = cat.content_ids()
    unknown_entries: dict[int, tuple[int, int]] = {}  # numbers in the segments, not live
    tombstoned: set[int] = set()
    old_numbers = store.segments()
    work = store.path / COMPACT_DIR
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    total = sum(store.segment_path(n).stat().st_size for n in old_numbers) or 1
    first = (old_numbers[-1] + 1) if old_numbers else 1
    writer = seg.SegmentWriter(work, first, len(seg.FILE_HEADER), SEGMENT_BYTES)
    blob_moves: dict[int, tuple[int, int, int]] = {}
    entry_moves: dict[int, tuple[int, int]] = {}
    dict_moves: dict[int, tuple[int, int]] = {}
    read = records = kept = 0
    try:
        for n in old_numbers:
            path = store.segment_path(n)
            with open(path, "rb") as source:
                for item in seg.scan(path, n, with_payload=False):
                    check_cancelled()
                    if isinstance(item, seg.Damage):
                        raise CorruptData(
                            f"segment {n} of store {store.name!r} has damaged bytes at "
                            f"{item.start}-{item.end} ({item.reason}): run `mailkeep verify` "
                            "and `mailkeep recover` before compacting")
                    records += 1
                    where = (n, item.offset)
                    if item.type == seg.MESSAGE and bytes.fromhex(
                            item.header["id"]) not in known_blobs:
                        raise CorruptData(
                            f"segment {n} offset {item.offset} of store {store.name!r} holds "
                            "a message the catalog does not know (it could not be decoded, or "
                            "the catalog is behind): run `mailkeep verify`; compaction would "
                            "drop it")
                    if item.type == seg.ENTRY and where not in entries:
                        unknown_entries.setdefault(int(item.header["n"]), where)
                    elif item.type == seg.TOMBSTONE:
                        tombstoned.add(int(item.header["n"]))
                    if item.type == seg.DICTIONARY:
                        new = writer.copy(item, source)
                        dict_moves[int(item.header["dict"])] = (new.segment, new.offset)
                    elif item.type == seg.TOMBSTONE and "tl" in item.header:
                        writer.copy(item, source)  # it accounts for the leaves dropped here
                    elif item.type == seg.FOLDER and "tl" in item.header:
                        # applied already to the entries rewritten here: kept inert, for its
                        # tree leaf
                        was = item.header.get("was") if item.header.get("op") == "kept" \
                            else {k: v for k, v in item.header.items() if k != "tl"}
                        writer.append(seg.FOLDER, {"op": "kept", "was": was,
                                                   "tl": item.header["tl"]})
                    elif item.type == seg.MESSAGE and where in live_blobs:
                        new = writer.copy(item, source)
                        blob_moves[live_blobs[where]] = (new.segment, new.offset, new.length)
                    elif item.type == seg.ENTRY and where in entries:
                        number, owner, folder, flags, idate, at = entries[where]
                        header = {
                            "n": number, "id": item.header["id"], "owner": owner,
                            "folder": folder, "flags": [f for f in flags.split(",") if f],
                            "idate": idate, "at": at}
                        if envelopes.get(number) is not None:
                            header["env"] = envelopes[number]
                        if "tl" in item.header:  # its leaf stays; and what it was filed as
                            header["tl"] = item.header["tl"]
                            filed = {k: item.header.get("filed", item.header).get(k)
                                     for k in FILED}
                            if any(filed[k] != header[k] for k in FILED):
                                header["filed"] = filed
                        new = writer.append(seg.ENTRY, header)
                        entry_moves[number] = (new.segment, new.offset)
                    else:
                        continue
                    kept += 1
                    if kept % 1000 == 0:
                        report(95.0 * (read + item.offset) / total,
                               f"{kept} of {records} records kept so far")
            read += path.stat().st_size
        orphans = sorted(set(unknown_entries) - tombstoned - set(entry_moves))
        if orphans:
            raise CorruptData(f"message {orphans[0]} of store {store.name!r} is filed in the "
                              "segments but not in the catalog (its bytes may be undecodable): "
                              "run `mailkeep verify`; compaction would drop it")
        missing = len(live_blobs) - len(blob_moves), len(entries) - len(entry_moves)
        if any(missing):
            raise CorruptData(f"{missing[0]} messages and {missing[1]} entries of store "
                              f"{store.name!r} were not found where the catalog says: run "
                              "`mailkeep verify` before compacting")
        highest = cat.next_number() - 1
        if highest > 0 and highest not in entry_moves:
            writer.append(seg.TOMBSTONE, {"n": highest, "at": 0,
                                          "reason": "compacted: numbers up to here are used"})
            kept += 1
        end = (writer.segment, writer.offset)
        writer.close()
        compaction = uuid.uuid4().hex
        mark = work / COMPACTION_MARK
        with open(mark, "w", encoding="ascii") as fh:
            fh.write(compaction + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(work)
        check_cancelled()  # the last moment to stop: nothing has changed yet
        before_swap()
        store.tree.sync()  # the leaves of the records dropped now must be on disk
    except BaseException:
        writer.close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    after = sum(p.stat().st_size for p in work.glob("*.seg"))
    report(96.0, "new segments written; switching over")

    dropped = store.adopt_compaction(blob_moves, entry_moves, dict_moves, end, compaction)
    report(100.0, None)
    return CompactResult(total if old_numbers else 0, after, records, kept, dropped)

