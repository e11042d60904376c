"""The one writer of a server: a thread that owns the current store and files what it is given.

Whatever arrives while the writer is busy is taken together: appended, fsynced and committed
once (a group commit), and only then is each filing's `done` called with its outcome. A crash
before that call loses only filings nobody was told about; a crash after it loses nothing.
The SMTP journal receiver and the archiving profiles both file through it, so they never fight
over the store's write lock. A message's text is extracted before it reaches the writer, in
worker processes and with a deadline (core/extraction.py): whatever one message costs to read,
the writer only compresses and writes it, and the mail of other senders is not held up.
After `idle_close_s` without work the writer closes the store, so that another process (an
import from the command line) can write it meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mailkeep.core.admin.settings import Settings
from mailkeep.core.archive import Archive
from mailkeep.core.errors import MailkeepError
from mailkeep.core.extraction import DEFAULT_MEMORY, Extractor, headers_only
from mailkeep.core.keys import KeyRing
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.mime.documents import HARD_GRACE_S
from mailkeep.core.mime.parse import IndexFields
from mailkeep.core.storage.packing import PARTIAL_INDEX_BYTES
from mailkeep.core.storage.store import Store

log = logging.getLogger("mailkeep.writer")

BATCH_MAX = 500  # filings in one group commit
BATCH_WAIT_S = 0.005  # how long the writer waits for company once it has one filing
IDLE_CLOSE_S = 2.0
TASK_TIMEOUT_S = 3600.0  # a task not run by then (the writer stopped): its caller is told
SETTINGS_EVERY_S = 5.0  # how long the extraction deadline read from the settings is kept

Targets = list[tuple[str, str]]  # (owner, folder)


@dataclass
class Filed:
    """Where a filing went: "store:number" per new entry; none at all means it was filed
    there before (a duplicate)."""

    numbers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def duplicate(self) -> bool:
        return not self.numbers


@dataclass
class Filing:
    """One message to file. `targets` may be computed by the writer from its archive (the
    journal routes by the users' addresses). Large messages come as `stream` (`size` bytes,
    one target). `done` is called in the writer thread, once, with Filed or the exception
    that kept the message out; it must not block."""

    targets: Targets | Callable[[Archive], Targets]
    done: Callable[[Filed | BaseException], None]
    raw: bytes | None = None
    stream: BinaryIO | None = None
    size: int = 0
    flags: frozenset[str] = frozenset()
    internal_date: float | None = None
    envelope: dict[str, Any] | None = None
    fields: IndexFields | None = None  # the text to index, once extracted
    order: object | None = None  # filings with the same key are filed in the order submitted
    ready: bool = False  # extracted: the writer may take it
    source: str = "other"  # what gave it (journal, profile, upload): for the metrics


@dataclass
class _Task:
    """Work on the stores done by the writer between two batches (run_task)."""

    fn: Callable[[Archive], Any]
    future: Future[Any] = field(default_factory=Future)


class StoreWriter:
    def __init__(self, data_dir: Path, master: MasterDB, keys: KeyRing | None = None,
                 idle_close_s: float = IDLE_CLOSE_S,
                 on_batch: Callable[[list[Filing], list[Filed | BaseException], float], None]
                 | None = None) -> None:
        """`on_batch(filings, outcomes, seconds)` is told of each batch once its filings are
        told (the metrics count them): in the writer thread, it must not block."""
        self.data_dir = data_dir
        self.on_batch = on_batch
        self._extracting = 0
        self.master = master
        self.keys = keys
        self.idle_close_s = idle_close_s
        self.queue: queue.Queue[Filing | _Task | None] = queue.Queue()
        self.batches = 0
        self.last_error: str | None = None
        self._others: list[Store] | None = None  # the older stores, once looked up
        self._others_of: int | None = None  # ... for this current store
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._extractor: Extractor | None = None
        self._deadline: tuple[float, float] | None = None  # (seconds, read at)
        self._documents = True  # archive.attachment_text, read with the deadline
        self._in_order: dict[object, deque[Filing]] = {}  # order key -> filings not yet queued

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mailkeep-writer",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        extractor, self._extractor = self._extractor, None
        if extractor is not None:  # what is being extracted is filed before the writer stops
            extractor.wait(2 * self._extract_timeout() + HARD_GRACE_S + 10)  # a retry, too
            extractor.stop()
        if thread is not None:
            self.queue.put(None)
            thread.join(timeout=60)

    def __enter__(self) -> StoreWriter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- filing -----------------------------------------------------------------------------
    def submit(self, filing: Filing) -> None:
        """File a message: its text is extracted first (in a worker), then the writer takes
        it; `filing.done` says what became of it."""
        if self._thread is None:
            self.start()
        if filing.order is not None:
            with self._lock:
                self._in_order.setdefault(filing.order, deque()).append(filing)
        head = None if filing.fields is not None else self._head(filing)
        if head is None:
            self._ready(filing)
            return

        def extracted(fields: IndexFields) -> None:
            filing.fields = fields
            with self._lock:
                self._extracting -= 1
            self._ready(filing)

        with self._lock:
            self._extracting += 1
        try:
            self.extractor.extract(head, len(filing.raw) if filing.raw is not None
                                   else filing.size, extracted)
        except Exception as exc:  # no worker can be started: headers only, the mail goes in
            log.warning("text extraction is not available: %s", exc)
            extracted(headers_only(head, "its extraction failed"))

    def extracting(self) -> int:
        """Filings whose text is being extracted, not yet queued for the writer."""
        return self._extracting

    def _ready(self, filing: Filing) -> None:
        """Extracted (or nothing to extract): to the writer, after the filings of its order
        key submitted before it."""
        filing.ready = True
        if filing.order is None:
            self.queue.put(filing)
            return
        with self._lock:
            waiting = self._in_order[filing.order]
            while waiting and waiting[0].ready:
                self.queue.put(waiting.popleft())
            if not waiting:
                del self._in_order[filing.order]

    @staticmethod
    def _head(filing: Filing) -> bytes | None:
        """The bytes to extract the text from; None: the writer reads them itself."""
        if filing.raw is not None:
            return filing.raw[:PARTIAL_INDEX_BYTES]
        if filing.stream is None:
            return None
        try:
            start = filing.stream.tell()
            head = filing.stream.read(min(filing.size, PARTIAL_INDEX_BYTES))
            filing.stream.seek(start)
        except OSError:
            return None  # the writer meets the error, and says so
        return head

    @property
    def extractor(self) -> Extractor:
        with self._lock:
            if self._extractor is None:
                self._extractor = Extractor(self._extract_timeout,
                                            documents=self._attachment_text,
                                            memory=self._extract_memory)
            return self._extractor

    def _extract_timeout(self) -> float:
        """Setting archive.extract_timeout, read again every few seconds."""
        now = time.monotonic()
        if self._deadline is None or now - self._deadline[1] > SETTINGS_EVERY_S:
            try:
                conf = Settings(self.master)
                seconds = float(conf.get("archive.extract_timeout"))
                self._documents = bool(conf.get("archive.attachment_text"))
            except Exception:  # the master database is busy: keep what we had
                seconds = self._deadline[0] if self._deadline else 20.0
            self._deadline = (seconds, now)
        return self._deadline[0]

    def _extract_memory(self) -> int:
        """Setting archive.extract_memory, in bytes (read when a pool of workers starts)."""
        try:
            return int(Settings(self.master).get("archive.extract_memory")) << 20
        except Exception:  # the master database is busy: the default
            return DEFAULT_MEMORY

    def _attachment_text(self) -> bool:
        """Setting archive.attachment_text (read when the deadline is)."""
        self._extract_timeout()
        return self._documents

    # -- the thread -------------------------------------------------------------------------
    def _open(self) -> Archive:
        return Archive(self.data_dir, self.master, self.keys)

    def _close(self, archive: Archive | None) -> None:
        self._others = None
        if archive is not None:
            try:
                archive.close()  # aborts an unfinished batch; its records are rewound
            except Exception:  # the store may be gone altogether
                log.exception("closing the archive")

    def _run(self) -> None:
        archive: Archive | None = None
        try:
            while True:
                try:
                    first = self.queue.get(timeout=self.idle_close_s if archive else None)
                except queue.Empty:
                    self._close(archive)
                    archive = None
                    continue
                if first is None:
                    return
                if archive is None:
                    archive = self._open()
                if isinstance(first, _Task):
                    archive = self._do(archive, first)
                    continue
                batch = [first]
                tasks: list[_Task] = []
                deadline = time.monotonic() + BATCH_WAIT_S
                while len(batch) < BATCH_MAX and batch[-1].stream is None:
                    try:
                        item = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if item is None:
                        self.queue.put(None)
                        break
                    if isinstance(item, _Task):
                        tasks.append(item)
                        break
                    batch.append(item)
                archive = self._file(archive, batch)
                for task in tasks:
                    archive = self._do(archive, task)
        finally:
            self._close(archive)
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        """The writer stopped: tasks still queued are told so (their callers do not wait);
        filings stay queued, in order, for the next writer thread."""
        kept: list[Filing] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Task):
                item.future.set_exception(RuntimeError("the store writer stopped"))
            elif item is not None:
                kept.append(item)
        for item in kept:
            self.queue.put(item)

    def run_task(self, fn: Callable[[Archive], Any]) -> Any:
        """Run fn(archive) in the writer thread, between two batches, and return what it
        returns (or raise what it raised): work that writes a store the writer may be
        writing, without waiting for the writer to let go of it. Keep it short: mail waits.
        Not from the writer thread itself (a filing's callback): it would wait for itself."""
        with self._lock:
            if self._thread is not None and threading.current_thread() is self._thread:
                raise RuntimeError("run_task called from the writer thread")
        if self._thread is None:
            self.start()
        task = _Task(fn)
        self.queue.put(task)
        return task.future.result(timeout=TASK_TIMEOUT_S)

    def _do(self, archive: Archive, task: _Task) -> Archive:
        try:
            task.future.set_result(task.fn(archive))
            return archive
        except BaseException as exc:
            task.future.set_exception(exc)
            self._close(archive)  # whatever it left half done is rolled back
            return self._open()

    def _duplicate_elsewhere(self, archive: Archive, current: int, raw: bytes,
                             targets: Targets) -> bool:
        """Filed in every target folder of an older store already (not archived again)."""
        if self._others is None or self._others_of != current:  # a new store became current
            self._others, self._others_of = [], current
            for rec in archive.stores():
                if rec.id != current and rec.state != "disabled":
                    try:
                        self._others.append(archive.open_store(rec))
                    except MailkeepError:
                        pass  # unreadable here: it cannot be consulted
        if not self._others:
            return False
        return all(any(o.lookup(o.packer.content_id(raw), owner, folder)[1]
                       for o in self._others) for owner, folder in targets)

    def _file_one(self, archive: Archive, rec_id: int, store: Store, f: Filing) -> Filed:
        targets = f.targets(archive) if callable(f.targets) else f.targets
        out = Filed()
        if f.stream is not None:
            store.commit()  # what came before is not at risk if this one fails
            owner, folder = targets[0]
            filed = store.add_large_message(f.stream, f.size, owner, folder, f.flags,
                                            f.internal_date, f.fields)
            if filed.number is not None:
                out.numbers.append(f"{rec_id}:{filed.number}")
            out.warnings = list(filed.warnings)
            return out
        assert f.raw is not None
        cid = store.packer.content_id(f.raw)
        if self._duplicate_elsewhere(archive, rec_id, f.raw, targets):
            return out
        for owner, folder in targets:
            blob_id, filed_there = store.lookup(cid, owner, folder)
            if filed_there:
                continue
            if blob_id is not None:
                number = store.add_entry(cid, owner, folder, f.flags, f.internal_date,
                                         envelope=f.envelope)
            else:
                prepared = store.packer.prepare(f.raw, cid, f.internal_date or time.time(),
                                                f.fields)
                if prepared.info.warnings:
                    out.warnings = prepared.info.warnings.split("\n")
                number = store.add_message(prepared, owner, folder, f.flags, f.internal_date,
                                           envelope=f.envelope).number
            if number is not None:
                out.numbers.append(f"{rec_id}:{number}")
        return out

    def _file(self, archive: Archive, batch: list[Filing]) -> Archive:
        """File a batch, commit, then tell each filing; returns the archive to use next (a
        fresh one after a failure, so that the next batch finds the store as it is now)."""
        outcomes: list[Filed | BaseException] = []
        started = time.monotonic()
        try:
            rec, store = archive.current_store()
            for f in batch:
                outcomes.append(self._file_one(archive, rec.id, store, f))
            store.commit()  # fsync of the segment, then the catalog: now it is durable
            archive.sign_heads()
            self.batches += 1
            self.last_error = None
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            if isinstance(exc, MailkeepError | OSError):
                log.warning("%d message(s) not archived: %s", len(batch), message)
            else:
                log.exception("%d message(s) not archived", len(batch))
            self.last_error = message
            self._close(archive)
            archive = self._open()
            outcomes = [exc] * len(batch)
        finally:
            for f in batch:
                if f.stream is not None:
                    f.stream.close()
        for f, outcome in zip(batch, outcomes, strict=True):
            try:
                f.done(outcome)
            except Exception:
                log.exception("a filing's done callback failed")
        if self.on_batch is not None:
            try:
                self.on_batch(batch, outcomes, time.monotonic() - started)
            except Exception:
                log.exception("the batch observer failed")
        return archive

