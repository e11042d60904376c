"""The import pipeline: raw messages -> content ids -> parse/compress in workers -> one writer.

It takes any stream of RawMessage and SourceProblem (core/message.py); which source reads
which path is decided above it (mailkeep.sources.detect.read_paths).

The writer commits in batches; a message counts as archived (and is reported) only after the
batch holding it is durable. Parsing never fails a message: only I/O errors do.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from mailkeep.core.admin.settings import Settings
from mailkeep.core.archive import Archive
from mailkeep.core.errors import MailkeepError
from mailkeep.core.extraction import WORKER_ENDED
from mailkeep.core.message import Measured, RawMessage, SourceProblem
from mailkeep.core.mime.documents import worker_limits
from mailkeep.core.storage import codec
from mailkeep.core.storage.packing import Packer, Prepared
from mailkeep.core.storage.store import Store

COMMIT_MESSAGES = 1000
COMMIT_SECONDS = 0.5
# An import that archived at least 1/MERGE_SHARE of its store's messages, and MERGE_AFTER,
# merges the index's segments when it leaves more than MERGE_SEGMENTS (Importer._merge_index)
MERGE_SHARE = 4
MERGE_AFTER = 10_000
MERGE_SEGMENTS = 8
BATCH_MESSAGES = 64
BATCH_BYTES = 8 << 20
INLINE_MESSAGES = 300  # below this, starting worker processes costs more than it saves
MAX_PROBLEMS = 1000
IMPORT_MEMORY = 768 << 20  # at least, for a parser worker: it compresses whole batches too


@dataclass
class Outcome:
    status: str  # archived | duplicate | skipped | failed
    origin: str
    message_id: str | None = None
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportStats:
    archived: int = 0
    duplicates: int = 0
    failed: int = 0
    skipped: int = 0
    warnings: int = 0
    bytes: int = 0
    input_total: int = 0  # bytes on disk of all inputs (compressed size for .gz)
    input_done: int = 0  # of those, how many have been read
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def messages_per_second(self) -> float:
        return (self.archived + self.duplicates) / max(self.seconds, 1e-9)

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / max(self.seconds, 1e-9)

    def as_dict(self) -> dict[str, Any]:
        return {"archived": self.archived, "duplicates": self.duplicates,
                "failed": self.failed, "skipped": self.skipped, "warnings": self.warnings,
                "bytes": self.bytes,
                "seconds": round(self.seconds, 3),
                "messagesPerSecond": round(self.messages_per_second, 1),
                "bytesPerSecond": round(self.bytes_per_second)}


def join_folder(base: str, sub: str) -> str:
    """The import's base folder and a source's relative folder, '/'-separated."""
    return "/".join(p for p in (base.strip("/"), sub.strip("/")) if p)


# -- workers --------------------------------------------------------------------------------
# A worker keeps the packer of the newest dictionary it was given. Batches name the dictionary
# to use; a worker that does not have it answers None and gets the batch again with it.
_worker_key: bytes | None = None
_worker_packer: tuple[int | None, Packer] | None = None


def _init_worker(store_key: bytes | None, memory: int) -> None:
    global _worker_key
    _worker_key = store_key
    worker_limits(memory)


def _prepare_one(packer: Packer, raw: bytes, cid: bytes, fallback: float,
                 documents: bool = True) -> Prepared:
    """`documents`: read the text inside attachments too (only in a worker, whose memory and
    time core/mime/documents.py bounds)."""
    return packer.prepare(raw, cid, fallback, documents=documents)  # never raises


def _prepare_batch(items: list[tuple[bytes, bytes, float]], dict_id: int | None,
                   dictionary: bytes | None, documents: bool = True) -> list[Prepared] | None:
    global _worker_packer
    if _worker_packer is None or _worker_packer[0] != dict_id:
        if dict_id is not None and dictionary is None:
            return None
        dicts = {dict_id: dictionary} if dict_id is not None and dictionary else {}
        _worker_packer = (dict_id, Packer(dicts, _worker_key))
    packer = _worker_packer[1]
    return [_prepare_one(packer, raw, cid, fb, documents) for raw, cid, fb in items]


def _trained(fut: Future[bytes | None]) -> bytes | None:
    """A dictionary trained in a worker; None when its pool broke (trained again later)."""
    try:
        return fut.result()
    except (BrokenProcessPool, MemoryError, CancelledError):
        return None


# -- the pipeline ---------------------------------------------------------------------------
@dataclass
class _Flight:
    """A batch on its way through the workers (or already prepared, with no future)."""

    batch: list[_Item]
    future: Future[list[Prepared] | None] | None = None
    work: list[tuple[bytes, bytes, float]] | None = None
    dict_id: int | None = None
    isolate: bool = False  # its worker pool broke: prepared message by message


@dataclass
class _Item:
    msg: RawMessage
    folder: str
    cid: bytes
    prepared: Prepared | None = None  # None: the message bytes are already in the store


class Importer:
    """Imports paths into the archive's current store for one user."""

    def __init__(self, archive: Archive, owner: str = "admin", base_folder: str = "",
                 on_outcome: Callable[[Outcome], None] | None = None,
                 on_progress: Callable[[ImportStats], None] | None = None,
                 workers: int | None = None) -> None:
        self.archive = archive
        self.owner = owner
        self.base_folder = base_folder.strip("/")
        self.on_outcome = on_outcome or (lambda o: None)
        self.on_progress = on_progress or (lambda s: None)
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        conf = Settings(archive.master)
        self.documents = bool(conf.get("archive.attachment_text"))
        self.memory = int(conf.get("archive.extract_memory")) << 20
        self.stats = ImportStats()
        self.store_rec, self.store = archive.current_store()
        # Other stores are consulted for duplicates too (a message already archived in last
        # year's store is not archived again); the current one is not opened twice.
        self.others: list[Store] = []
        for rec in archive.stores():
            if rec.id != self.store_rec.id and rec.state != "disabled":
                try:
                    self.others.append(archive.open_store(rec))
                except MailkeepError:
                    pass  # unreadable here (no key, no disk): it cannot be consulted
        self._pool: ProcessPoolExecutor | None = None
        self._inflight: deque[_Flight] = deque()
        self._training: tuple[Future[bytes | None], int] | None = None
        self._dict_cache: tuple[int | None, bytes | None] = (None, None)
        self._batch: list[_Item] = []
        self._batch_bytes = 0
        self._uncommitted: list[Outcome] = []
        self._pending_keys: set[tuple[bytes, str]] = set()
        self._pending_blobs: set[bytes] = set()
        self._last_commit = time.monotonic()
        self._seen = 0

    # public --------------------------------------------------------------------------------
    def run(self, items: Iterable[RawMessage | SourceProblem]) -> ImportStats:
        """Archive every message of `items`; a stream that is `Measured` (read_paths) also
        gives the progress in bytes of its input."""
        measured = items if isinstance(items, Measured) else None
        try:
            for item in items:
                if measured is not None:
                    self.stats.input_total = measured.bytes_total
                    self.stats.input_done = measured.bytes_done
                if isinstance(item, SourceProblem):
                    self._problem(item)
                else:
                    self._take(item)
            self._flush_batch()
            self._drain(0)
            self._commit()
            if self._training is not None:  # a dictionary on its way: install it too
                _trained(self._training[0])
                self._learn()
            self._merge_index()
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
            self.store.abort()  # a no-op after the last commit; drops a half batch on error
        self.stats.finished = time.monotonic()
        self.stats.input_done = self.stats.input_total
        self.on_progress(self.stats)
        return self.stats

    def _merge_index(self) -> None:
        """An import that made a quarter or more of the store's messages (MERGE_SHARE), and
        left its index in more than MERGE_SEGMENTS segments, merges them into one: each
        segment costs a search's every lookup in the index more (docs/storage.md), and the
        nightly upkeep may be hours away. A smaller import leaves that to the upkeep. (In
        PostgreSQL: the planner's statistics of the catalog, which autovacuum may take a
        while to gather.)"""
        catalog = self.store.catalog
        made = self.stats.archived
        if made < MERGE_AFTER or made * MERGE_SHARE < catalog.count_entries():
            return
        analyze = getattr(catalog, "analyze", None)
        if analyze is not None:  # PostgreSQL (catalog_pg.py): its planner's figures
            analyze()
        if catalog.index_segments(again=True) > MERGE_SEGMENTS:
            catalog.merge_index()

    # per message ---------------------------------------------------------------------------
    def _problem(self, item: SourceProblem) -> None:
        if item.skipped:
            self.stats.skipped += 1
            self.on_outcome(Outcome("skipped", item.origin, reason=item.reason))
        else:
            self._fail(item.origin, item.reason)

    def _fail(self, origin: str, reason: str) -> None:
        self.stats.failed += 1
        if len(self.stats.problems) < MAX_PROBLEMS:
            self.stats.problems.append((origin, reason))
        self.on_outcome(Outcome("failed", origin, reason=reason))

    def _is_duplicate_elsewhere(self, data: bytes, folder: str) -> bool:
        for other in self.others:
            if other.lookup(other.packer.content_id(data), self.owner, folder)[1]:
                return True
        return False

    def _take(self, msg: RawMessage) -> None:
        folder = join_folder(self.base_folder, msg.folder)
        self.stats.bytes += msg.size
        if msg.stream is not None:
            self._take_large(msg, folder)
            return
        assert msg.data is not None
        cid = self.store.packer.content_id(msg.data)
        key = (cid, folder)
        blob_id, filed = self.store.lookup(cid, self.owner, folder)
        if filed or key in self._pending_keys or self._is_duplicate_elsewhere(msg.data, folder):
            self._uncommitted.append(Outcome("duplicate", msg.origin))
            self.stats.duplicates += 1
            self._maybe_commit()
            return
        self._pending_keys.add(key)
        item = _Item(msg, folder, cid)
        if blob_id is not None or cid in self._pending_blobs:
            self._flush_batch()  # keep order: the batch may hold the message's bytes
            self._inflight.append(_Flight([item]))  # only a new entry: nothing to prepare
        else:
            self._pending_blobs.add(cid)
            self._batch.append(item)
            self._batch_bytes += msg.size
            if len(self._batch) >= BATCH_MESSAGES or self._batch_bytes >= BATCH_BYTES:
                self._flush_batch()
        self._drain(self._max_inflight())

    def _take_large(self, msg: RawMessage, folder: str) -> None:
        # Commit what came before: a failure of this message aborts its batch, and that must
        # not take messages with it that are about to be reported as archived.
        self._flush_batch()
        self._drain(0)
        self._commit()
        assert msg.stream is not None
        try:
            filed = self.store.add_large_message(msg.stream, msg.size, self.owner, folder,
                                                 msg.flags, msg.internal_date)
        except OSError as exc:
            self.store.abort()
            self._fail(msg.origin, f"cannot read: {exc}")
            return
        finally:
            msg.close()
        self._record(msg, filed.number, filed.warnings)
        self._commit()

    def _max_inflight(self) -> int:
        return 2 * self.workers + 2 if self._pool is not None else 0

    def _current_dictionary(self) -> tuple[int | None, bytes | None]:
        dict_id = self.store.packer.codec.dict_id
        if dict_id is None:
            return None, None
        if self._dict_cache[0] != dict_id:
            self._dict_cache = (dict_id, self.store.dictionaries()[dict_id])
        return self._dict_cache

    def _start_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(max(self.workers, 1), mp_context=ctx,
                                             initializer=_init_worker,
                                             initargs=(self.store._store_key,
                                                       max(self.memory, IMPORT_MEMORY)))
        return self._pool

    def _flush_batch(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        work = [(it.msg.data or b"", it.cid, it.msg.internal_date or time.time())
                for it in batch]
        self._seen += len(batch)
        if self._pool is None and self._seen > INLINE_MESSAGES and self.workers > 1:
            self._start_pool()
        if self._pool is None:
            packer = self.store.packer
            for it, (raw, cid, fb) in zip(batch, work, strict=True):
                it.prepared = _prepare_one(packer, raw, cid, fb, documents=False)
            if not (self.documents and any(it.prepared and it.prepared.info.has_attachment
                                           for it in batch)):
                self._inflight.append(_Flight(batch))
                return
            # The text inside attachments is read only in a worker, whose memory and time
            # are bounded (core/mime/documents.py): never in this process.
            self._start_pool()
        dict_id, _ = self._current_dictionary()
        fut = self._submit(work, dict_id, None)
        self._inflight.append(_Flight(batch, fut, work, dict_id))

    def _submit(self, work: list[tuple[bytes, bytes, float]], dict_id: int | None,
                dictionary: bytes | None) -> Future[list[Prepared] | None]:
        return self._start_pool().submit(_prepare_batch, work, dict_id, dictionary,
                                         self.documents)

    def _prepared(self, flight: _Flight) -> list[Prepared]:
        """The prepared batch of a flight; a worker that ended (a hostile attachment took its
        memory or would not stop) is replaced, and the batch prepared again message by
        message, a message that ends a worker again without its attachments' text."""
        assert flight.future is not None and flight.work is not None
        if not flight.isolate:
            try:
                result = flight.future.result()
                if result is None:  # that worker lacks the dictionary: send it along
                    result = self._submit(flight.work, flight.dict_id, self.store.dictionaries()[
                        flight.dict_id or 0]).result()
                assert result is not None
                return result
            except (BrokenProcessPool, MemoryError):
                self._restart_pool(flight)
        dictionary: bytes | None = self.store.dictionaries()[flight.dict_id] \
            if flight.dict_id is not None else None
        out: list[Prepared] = []
        for one in flight.work:
            try:
                got = self._submit([one], flight.dict_id, dictionary).result()
                assert got is not None
                out.extend(got)
            except (BrokenProcessPool, MemoryError):
                self._restart_pool(flight)
                raw, cid, fb = one
                prep = _prepare_one(self.store.packer, raw, cid, fb, documents=False)
                prep.info.warnings = "\n".join(w for w in (prep.info.warnings, WORKER_ENDED)
                                               if w)
                out.append(prep)
        return out

    def _restart_pool(self, current: _Flight) -> None:
        """After a worker ended: a new pool. What was in flight in the old one and is not
        prepared yet is prepared message by message when its turn comes (sent again as
        batches, the one that holds the hostile message would break the new pool while
        innocent messages wait in it)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._training is not None:
            self._training = None  # asked again at a later commit
        self._start_pool()
        for flight in self._inflight:
            if flight is current or flight.future is None or flight.work is None:
                continue
            if not flight.future.done() or flight.future.cancelled() or \
                    flight.future.exception() is not None:
                flight.isolate = True

    def _drain(self, keep: int) -> None:
        """Write finished batches in order until at most `keep` are in flight."""
        while len(self._inflight) > keep:
            flight = self._inflight[0]
            if flight.future is not None:
                for it, prep in zip(flight.batch, self._prepared(flight), strict=True):
                    it.prepared = prep
            self._inflight.popleft()
            for it in flight.batch:
                self._write(it)
            self._maybe_commit()

    def _write(self, it: _Item) -> None:
        msg = it.msg
        self._pending_keys.discard((it.cid, it.folder))
        self._pending_blobs.discard(it.cid)
        if it.prepared is None:
            self._record(msg, self.store.add_entry(it.cid, self.owner, it.folder, msg.flags,
                                                   msg.internal_date), [])
            return
        filed = self.store.add_message(it.prepared, self.owner, it.folder, msg.flags,
                                       msg.internal_date)
        warnings = it.prepared.info.warnings.split("\n") if it.prepared.info.warnings else []
        self._record(msg, filed.number, warnings)

    def _record(self, msg: RawMessage, number: int | None, warnings: list[str]) -> None:
        if number is None:
            self.stats.duplicates += 1
            self._uncommitted.append(Outcome("duplicate", msg.origin))
            return
        self._uncommitted.append(Outcome("archived", msg.origin,
                                         f"{self.store_rec.id}:{number}", warnings=warnings))

    def _maybe_commit(self) -> None:
        if (len(self._uncommitted) >= COMMIT_MESSAGES
                or time.monotonic() - self._last_commit >= COMMIT_SECONDS):
            self._commit()

    def _learn(self) -> None:
        """Keep the store's compression dictionary fresh without stalling the import: the
        training runs in a worker and is installed at a later commit."""
        if self._training is not None:
            fut, newest = self._training
            if fut.done():
                self._training = None
                trained = _trained(fut)
                if trained is not None:
                    self.store.install_dictionary(trained, newest)
                    self.store.commit()
        elif self.store.dictionary_due():
            samples, newest = self.store.dictionary_samples()
            if self._pool is not None:
                self._training = (self._pool.submit(codec.train, samples), newest)
            else:
                self.store.install_dictionary(codec.train(samples), newest)
                self.store.commit()

    def _commit(self) -> None:
        self.store.commit()
        self._last_commit = time.monotonic()
        for o in self._uncommitted:
            if o.status == "archived":
                self.stats.archived += 1
                if o.warnings:
                    self.stats.warnings += 1
            self.on_outcome(o)
        self._uncommitted.clear()
        self.on_progress(self.stats)
        self._learn()  # after reporting: what is durable is reported whatever happens next
