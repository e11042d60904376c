"""Merging one store into another: every message of the source filed again in the target, with
its folder, flags and dates. The target re-compresses (and, if it is encrypted, re-seals) the
bytes with its own dictionaries and key; each message is checked against its content id on
the way out of the source. A message the target already holds in that folder is a duplicate
and changes nothing, so a merge that was cut off can simply be run again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from mailkeep.core.storage.store import Store

Report = Callable[[float, str | None], None]
STREAM_ABOVE = 32 << 20  # larger messages go through a temporary file, never into memory
COMMIT_EVERY = 500


@dataclass
class MergeResult:
    messages: int = 0  # entries of the source
    merged: int = 0  # filed in the target
    duplicates: int = 0  # already in the target, in the same folder


def _noop(percent: float, line: str | None) -> None:
    pass


def merge(source: Store, target: Store, report: Report = _noop,
          check_cancelled: Callable[[], None] = lambda: None) -> MergeResult:
    target.require_writable()
    rows = source.catalog.filings()
    result = MergeResult(messages=len(rows))
    try:
        for i, (number, owner, folder, flags, idate, at, size) in enumerate(rows):
            check_cancelled()
            flag_set = frozenset(f for f in flags.split(",") if f)
            internal = float(idate) if idate is not None else None
            fallback = float(idate if idate is not None else at)  # for mail without a Date
            if size > STREAM_ABOVE:
                with tempfile.TemporaryFile() as tmp:
                    for chunk in source.read_chunks(number):
                        tmp.write(chunk)
                    tmp.seek(0)
                    filed = target.add_large_message(tmp, size, owner, folder, flag_set,
                                                     internal, archived_at=at)
                new = filed.number
            else:
                raw = source.read(number)
                cid = target.packer.content_id(raw)
                blob_id, _filed = target.lookup(cid, owner, folder)
                if blob_id is not None:
                    new = target.add_entry(cid, owner, folder, flag_set, internal,
                                           archived_at=at)
                else:
                    prepared = target.packer.prepare(raw, cid, fallback)
                    new = target.add_message(prepared, owner, folder, flag_set, internal,
                                             archived_at=at).number
            if new is None:
                result.duplicates += 1
            else:
                result.merged += 1
            if (i + 1) % COMMIT_EVERY == 0:
                target.commit()
                report(100.0 * (i + 1) / len(rows), f"{i + 1} of {len(rows)} messages merged")
        target.commit()
    except BaseException:
        target.abort()
        raise
    report(100.0, None)
    return result
