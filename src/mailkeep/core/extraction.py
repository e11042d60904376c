"""Text extraction for the index, away from the store writer and with a deadline.

The store writer acknowledges mail only after its group commit, and it files one batch at a
time: whatever it does per message, every other sender waits for. So the writer only
compresses, seals and writes (C code, linear in the bytes); reading a message's MIME structure
and decoding its text happens here first, in worker processes (a message's parse never holds
the interpreter the writer and the SMTP receiver run in).

Two lanes, each a pool of its own: messages up to SMALL_BYTES (nearly all mail; the text of
one costs milliseconds) never queue behind large ones, whose text may take a good part of a
second. The workers run at a lower priority than the server: on a busy machine the receiver and
the writer, which answer everyone, come first.

Each extraction has a deadline (setting archive.extract_timeout). A message whose text is not
extracted in time is archived all the same, byte for byte, indexed by its headers only (read
from at most parse.HEADER_BYTES) with a warning; its worker is killed and replaced. A worker's
memory is bounded (setting archive.extract_memory); a worker that ends while it reads the text
inside a message's attachments (out of memory, or a library stuck past its deadline: see
core/mime/documents.py) is replaced and the message extracted again without that text, with a
warning; if that ends its worker too, it is indexed by its headers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future

from pebble import ProcessExpired, ProcessPool

from mailkeep.core.mime.documents import worker_limits
from mailkeep.core.mime.parse import HEADERS_ONLY, IndexFields, extract, header_section
from mailkeep.core.storage.packing import index_fields

log = logging.getLogger("mailkeep.extraction")

SMALL_BYTES = 256 << 10
WORKER_NICENESS = 10
MIN_WORKERS = 2  # one slow message never holds up the next, even on one core
MAX_WORKERS = 4
TASKS_PER_WORKER = 1000  # then the worker is replaced (whatever memory it kept goes with it)
DEFAULT_MEMORY = 1024 << 20  # bytes a worker may allocate (setting archive.extract_memory)


def headers_only(raw: bytes, why: str) -> IndexFields:
    """The headers' fields of a message whose text could not be extracted, with a warning."""
    fields = extract(header_section(raw))
    fields.body = ""
    fields.attachments = ""
    fields.documents = ""
    # what parsing a header section alone notes (a multipart not closed...) is not news
    fields.warnings = [f"{HEADERS_ONLY}{why}): found by its headers only"]
    return fields


WORKER_ENDED = ("the text inside its attachments is not indexed: reading it ended the worker "
                "(out of memory, or stuck past its deadline)")


def _warned(done: Callable[[IndexFields], None]) -> Callable[[IndexFields], None]:
    def with_warning(fields: IndexFields) -> None:
        fields.warnings = [*fields.warnings, WORKER_ENDED]
        done(fields)
    return with_warning


def _start_worker(memory_bytes: int) -> None:
    os.nice(WORKER_NICENESS)
    worker_limits(memory_bytes)


class Extractor:
    """The pools of extraction workers. `timeout` gives the deadline in seconds, asked per
    message (a setting may change while the server runs)."""

    def __init__(self, timeout: Callable[[], float], workers: int | None = None,
                 documents: Callable[[], bool] = lambda: True,
                 memory: Callable[[], int] = lambda: DEFAULT_MEMORY) -> None:
        self.timeout = timeout
        self.documents = documents  # read the text inside attachments (a setting)
        self.memory = memory  # bytes of memory a worker may take (a setting)
        self.workers = workers or max(MIN_WORKERS, min(MAX_WORKERS, os.cpu_count() or 1))
        self.timed_out = 0
        self._pools: dict[bool, ProcessPool] = {}  # small? -> its lane
        self._lock = threading.Lock()
        self._busy = threading.Condition(self._lock)
        self._in_flight = 0
        self._futures: set[Future[IndexFields]] = set()  # held until their callbacks ran
        self._stopped = False

    def _lane(self, size: int) -> ProcessPool:
        if self._stopped:
            raise RuntimeError("the extraction workers are stopped")
        small = size <= SMALL_BYTES
        pool = self._pools.get(small)
        if pool is None:
            # forkserver: the workers do not inherit the server's threads, sockets or keys
            pool = self._pools[small] = ProcessPool(
                max_workers=self.workers, max_tasks=TASKS_PER_WORKER,
                initializer=_start_worker, initargs=(self.memory(),),
                context=multiprocessing.get_context("forkserver"))
        return pool

    def extract(self, head: bytes, size: int, done: Callable[[IndexFields], None]) -> None:
        """Extract in a worker; `done` is called once, in another thread, with the fields."""
        with self._lock:
            self._in_flight += 1
        try:
            self._schedule(head, size, self.documents(), done)
        except Exception:
            with self._lock:
                self._in_flight -= 1
                self._busy.notify_all()
            raise

    def _schedule(self, head: bytes, size: int, documents: bool,
                  done: Callable[[IndexFields], None]) -> None:
        seconds = self.timeout()
        with self._lock:
            future = self._lane(size).schedule(index_fields, args=(head, size, documents),
                                               timeout=seconds)
            self._futures.add(future)

        def finished(fut: Future[IndexFields]) -> None:
            again = False
            try:
                fields = self._outcome(fut, head, seconds, documents)
                if fields is None:  # its worker ended: once more, without attachments' text
                    try:
                        self._schedule(head, size, False, _warned(done))
                        again = True
                        return
                    except Exception:  # stopped meanwhile: its headers, rather than lose it
                        fields = headers_only(head, "its extraction failed")
                done(fields)
            except Exception:
                log.exception("an extraction's callback failed")
            finally:
                with self._lock:
                    self._futures.discard(fut)
                    if not again:
                        self._in_flight -= 1
                        self._busy.notify_all()

        future.add_done_callback(finished)

    def _outcome(self, fut: Future[IndexFields], head: bytes, seconds: float, documents: bool
                 ) -> IndexFields | None:
        """The fields; None when the worker ended while it read the attachments' text too."""
        try:
            return fut.result()
        except TimeoutError:
            self.timed_out += 1
            log.warning("a message's text took longer than %s s to extract: indexed by its "
                        "headers only", seconds)
            return headers_only(head, f"not extracted within {seconds:g} s")
        except ProcessExpired as exc:
            log.warning("text extraction of a message ended its worker (%s)", exc)
            return None if documents else headers_only(head, "its extraction failed")
        except Exception as exc:  # the pool itself failed: headers only, rather than lose it
            log.warning("text extraction could not run in a worker: %s", exc)
            return headers_only(head, "its extraction failed")

    def wait(self, seconds: float) -> bool:
        """Wait until no extraction is in flight; False if some still are after `seconds`."""
        with self._lock:
            return self._busy.wait_for(lambda: self._in_flight == 0, timeout=seconds)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.stop()  # type: ignore[no-untyped-call]
            pool.join()
