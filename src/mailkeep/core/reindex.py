"""Reading the text inside the attachments of mail stored before it was read (the setting
archive.attachment_text was off, or the store was made by a version without it).

A process (IndexAttachmentText) works through each store's messages with attachments, by id, in
batches of BATCH: reads each message's first bytes, extracts its fields with the text inside its
attachments in worker processes (bounded in memory and time like every extraction: a worker that
ends is replaced, and that message is read again in a worker without the text, with a warning,
and marked as read), and gives the
message's index rows the new text in one transaction per batch, with the catalog's mark of how
far it went (DOCUMENTS_MARK). A process stopped at any moment (cancelled, the server restarted,
the machine lost power) goes on from that mark when started again; a finished store is not read
again. Writing goes through `apply`: in a server, the store writer's thread, between two of its
batches, so that mail keeps arriving while a store is read again.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from mailkeep.core.archive import Archive
from mailkeep.core.extraction import WORKER_ENDED
from mailkeep.core.masterdb.stores import StoreRecord
from mailkeep.core.mime.documents import worker_limits
from mailkeep.core.mime.parse import DOCUMENT_START, IndexFields
from mailkeep.core.storage.packing import index_fields
from mailkeep.core.storage.store import Store
from mailkeep.core.storage.store_write import DOCUMENTS_MARK

BATCH = 50

Apply = Callable[[Callable[[Archive], int]], int]


@dataclass
class Outcome:
    stores: int = 0
    messages: int = 0  # read again
    changed: int = 0  # whose index rows changed
    ended_workers: int = 0
    skipped: list[str] = field(default_factory=list)  # stores left out, and why


def _fields(head: bytes, size: int) -> IndexFields:
    return index_fields(head, size, documents=True)


def _plain_fields(head: bytes, size: int) -> IndexFields:
    return index_fields(head, size, documents=False)


class _Pool:
    """Worker processes for the extraction, bounded like every other (worker_limits)."""

    def __init__(self, workers: int, memory: int) -> None:
        self.workers = max(1, workers)
        self.memory = memory
        self.ended = 0
        self._pool: ProcessPoolExecutor | None = None

    def _get(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("forkserver"),
                initializer=worker_limits, initargs=(self.memory,))
        return self._pool

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def fields(self, items: list[tuple[bytes, int]]) -> list[IndexFields | None]:
        """Each message's fields with its attachments' text. One that ends a worker is read
        again (in a worker) without that text, marked as read so that it is not tried again;
        one that ends that worker too is left as it is (None)."""
        futures = [self._get().submit(_fields, head, size) for head, size in items]
        try:
            return [f.result() for f in futures]
        except BrokenProcessPool:
            self._restart()
        out: list[IndexFields | None] = []
        for head, size in items:  # one by one: only the one that ends a worker loses its text
            try:
                out.append(self._get().submit(_fields, head, size).result())
                continue
            except BrokenProcessPool:
                self._restart()
                self.ended += 1
            try:
                fields = self._get().submit(_plain_fields, head, size).result()
            except BrokenProcessPool:
                self._restart()
                out.append(None)
                continue
            fields.documents = DOCUMENT_START  # read: no attachment's text to be had
            fields.columns = None  # made again from the fields, with that mark
            fields.warnings.append(WORKER_ENDED)
            out.append(fields)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def mark(store: Store) -> int:
    return int(store.catalog.get_meta(DOCUMENTS_MARK, "0") or 0)


def pending(store: Store) -> int:
    """Messages with attachments in `store` not read for their text yet."""
    return store.catalog.count_attachment_blobs(mark(store))


def run(archive: Archive, records: list[StoreRecord], apply: Apply,
        progress: Callable[[int, str], None], cancelled: Callable[[], bool],
        memory: int, workers: int = 2) -> Outcome:
    """Read the attachments of every message in the stores `records` that was not read yet;
    `progress(percent, line)` after each batch; stops (what is done stays done) once
    `cancelled()`."""
    out = Outcome()
    todo: list[tuple[StoreRecord, int]] = []
    for rec in records:
        if rec.state == "writeProtected":
            out.skipped.append(f"{rec.name}: write-protected")
            continue
        todo.append((rec, pending(archive.open_store(rec))))
    total = sum(n for _rec, n in todo) or 1
    pool = _Pool(workers, memory)
    done = 0
    try:
        for rec, count in todo:
            out.stores += 1
            progress(100 * done // total, f"store {rec.name} (id {rec.id}): {count} message(s)"
                     " with attachments to read")
            store = archive.open_store(rec)
            after = mark(store)
            while not cancelled():
                batch = store.catalog.attachment_blobs(after, BATCH)
                if not batch:
                    break
                heads = [(store.blob_head(blob_id), size) for blob_id, size in batch]
                found = [(blob_id, fields) for (blob_id, _s), fields
                         in zip(batch, pool.fields(heads), strict=True) if fields is not None]
                last = batch[-1][0]
                out.changed += apply(_writer(rec.id, found, last))
                out.messages += len(batch)
                done += len(batch)
                after = last
                progress(min(99, 100 * done // total), "")
    finally:
        pool.close()
    out.ended_workers = pool.ended
    return out


def _writer(store_id: int, found: list[tuple[int, IndexFields]], last: int
            ) -> Callable[[Archive], int]:
    def write(archive: Archive) -> int:
        store = archive.open_store(archive.find_store(store_id), write=True)
        return store.replace_documents(found, last)
    return write


def direct(archive: Archive) -> Apply:
    """`apply` without a store writer (a command line on its own): in this process."""
    def apply(fn: Callable[[Archive], Any]) -> int:
        return int(fn(archive))
    return apply
