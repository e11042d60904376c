"""A consistent copy of a store while it is being written: the catalog first (SQLite's backup
API), then the segments up to what that copy of the catalog has applied (segments are
append-only, so the copy holds exactly what its catalog knows)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from mailkeep.core.errors import MailkeepError
from mailkeep.core.files import fsync_dir
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage.catalog import CATALOG, applied_of, backup_catalog
from mailkeep.core.storage.store import COMPACT_DIR, MANIFEST, OLD_SEGMENTS_DIR
from mailkeep.core.storage.tree import HASH, HEADS_FILE, LEAVES, TIMESTAMPS_FILE


class CompactedMeanwhile(MailkeepError):
    """The store was compacted while it was being copied: the copy is not consistent."""


def copy_prefix(src: Path, dst: Path, limit: int | None) -> int:
    """Copy the first `limit` bytes of src (all of it if None); returns the bytes copied."""
    done = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while limit is None or done < limit:
            chunk = fin.read(seg.CHUNK if limit is None else min(seg.CHUNK, limit - done))
            if not chunk:
                break
            fout.write(chunk)
            done += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return done


def _not_compacting(src: Path, name: str) -> None:
    if any((src / d).exists() for d in (COMPACT_DIR, OLD_SEGMENTS_DIR)):
        raise CompactedMeanwhile(f"Store {name} is being compacted: the backup was removed; "
                                 "run CreateBackup again once CompactStore has ended.")


def _copy_tree(src: Path, dst: Path) -> None:
    """The tree's leaves as far as the copied segments go (their records name them), and the
    signed heads over no more than those."""
    leaves = 0
    for n in seg.segment_numbers(dst / "segments"):
        for item in seg.scan(dst / "segments" / seg.segment_name(n), n, with_payload=False):
            if isinstance(item, seg.Record):
                tl = item.header.get("tl")
                if isinstance(tl, dict) and isinstance(tl.get("i"), int):
                    leaves = max(leaves, tl["i"] + 1)
    if (src / LEAVES).exists():
        copy_prefix(src / LEAVES, dst / LEAVES, leaves * HASH)
    for name in (HEADS_FILE, TIMESTAMPS_FILE):
        copy_heads(src / name, dst / name, leaves)


def copy_heads(src: Path, dst: Path, leaves: int) -> None:
    """The lines of a heads file about no more than `leaves` leaves."""
    if src.exists():
        kept = []
        with open(src, "rb") as fh:
            for line in fh:
                try:
                    head = json.loads(line)
                except ValueError:
                    continue
                if isinstance(head, dict) and isinstance(head.get("size"), int) \
                        and head["size"] <= leaves:
                    kept.append(line if line.endswith(b"\n") else line + b"\n")
        with open(dst, "wb") as out:
            out.write(b"".join(kept))
            out.flush()
            os.fsync(out.fileno())


def copy_store(src: Path, dst: Path, exclude_index: bool, name: str,
               log: Callable[[str], None] = lambda line: None) -> None:
    """Copy the store at src (known as `name`) to the new directory dst (without its catalog
    and index when exclude_index: they are rebuilt from the segments when the copy is first
    opened)."""
    dst.mkdir(mode=0o700, parents=True)
    (dst / "segments").mkdir(mode=0o700)
    shutil.copy2(src / MANIFEST, dst / MANIFEST)
    _not_compacting(src, name)
    catalog = dst / CATALOG
    if (src / CATALOG).exists():
        backup_catalog(src / CATALOG, catalog)
        last, offset = applied_of(catalog)
        offset = max(offset, len(seg.FILE_HEADER))
        numbers = seg.segment_numbers(src / "segments")
        if numbers and last not in numbers:  # CompactStore swapped the segments meanwhile
            raise CompactedMeanwhile(f"Store {name} was compacted while it was being backed "
                                     "up: the backup was removed; run CreateBackup again.")
    else:
        numbers = seg.segment_numbers(src / "segments")
        log(f"  store {name} has no catalog: whole segments copied; the catalog is rebuilt "
            "from them when the restored store is first opened")
        last, offset = (numbers[-1] if numbers else 0), -1
    for n in numbers:
        if n > last:
            break
        path = src / "segments" / seg.segment_name(n)
        limit = offset if n == last and offset >= 0 else None
        got = copy_prefix(path, dst / "segments" / seg.segment_name(n), limit)
        if limit is not None and got < limit:
            log(f"  warning: segment {n} of store {name} is shorter ({got} bytes) than its "
                f"catalog says ({limit}); copied as it is")
    _copy_tree(src, dst)
    if exclude_index and catalog.exists():
        catalog.unlink()
        log(f"  store {name}: catalog and index left out (excludeSearchIndexes); they are "
            "rebuilt from the segments when the restored store is opened")
    _not_compacting(src, name)
    fsync_dir(dst / "segments")
    fsync_dir(dst)
