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
from at most HEADER_BYTES) with a warning; its worker is killed and replaced. A worker that
dies (a message that exhausted its memory) gives the same result.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future

from pebble import ProcessExpired, ProcessPool

from mailkeep.core.mime.parse import IndexFields, extract
from mailkeep.core.storage.packing import index_fields

log = logging.getLogger("mailkeep.extraction")

HEADER_BYTES = 256 << 10  # the header section read when the text could not be extracted
SMALL_BYTES = 256 << 10
WORKER_NICENESS = 10
MIN_WORKERS = 2  # one slow message never holds up the next, even on one core
MAX_WORKERS = 4
TASKS_PER_WORKER = 1000  # then the worker is replaced (whatever memory it kept goes with it)


def header_section(raw: bytes, limit: int = HEADER_BYTES) -> bytes:
    """The header section of a message (up to the first empty line), at most `limit` bytes and
    cut at a line's end."""
    head = raw[:limit]
    for blank in (b"\r\n\r\n", b"\n\n"):
        at = head.find(blank)
        if at >= 0:
            return head[:at + len(blank)]
    cut = head.rfind(b"\n")
    return head[:cut + 1] if len(raw) > limit and cut >= 0 else head


def headers_only(raw: bytes, why: str) -> IndexFields:
    """The headers' fields of a message whose text could not be extracted, with a warning."""
    fields = extract(header_section(raw))
    fields.body = ""
    fields.attachments = ""
    fields.documents = ""
    # what parsing a header section alone notes (a multipart not closed...) is not news
    fields.warnings = [f"text not indexed ({why}): found by its headers only"]
    return fields


def _lower_priority() -> None:
    os.nice(WORKER_NICENESS)


class Extractor:
    """The pools of extraction workers. `timeout` gives the deadline in seconds, asked per
    message (a setting may change while the server runs)."""

    def __init__(self, timeout: Callable[[], float], workers: int | None = None,
                 documents: Callable[[], bool] = lambda: True) -> None:
        self.timeout = timeout
        self.documents = documents  # read the text inside attachments (a setting)
        self.workers = workers or max(MIN_WORKERS, min(MAX_WORKERS, os.cpu_count() or 1))
        self.timed_out = 0
        self._pools: dict[bool, ProcessPool] = {}  # small? -> its lane
        self._lock = threading.Lock()
        self._busy = threading.Condition(self._lock)
        self._in_flight = 0

    def _lane(self, size: int) -> ProcessPool:
        small = size <= SMALL_BYTES
        pool = self._pools.get(small)
        if pool is None:
            # forkserver: the workers do not inherit the server's threads, sockets or keys
            pool = self._pools[small] = ProcessPool(
                max_workers=self.workers, max_tasks=TASKS_PER_WORKER,
                initializer=_lower_priority,
                context=multiprocessing.get_context("forkserver"))
        return pool

    def extract(self, head: bytes, size: int, done: Callable[[IndexFields], None]) -> None:
        """Extract in a worker; `done` is called once, in another thread, with the fields."""
        seconds = self.timeout()
        with self._lock:
            self._in_flight += 1
            try:
                future = self._lane(size).schedule(index_fields,
                                                   args=(head, size, self.documents()),
                                                   timeout=seconds)
            except Exception:
                self._in_flight -= 1
                raise

        def finished(fut: Future[IndexFields]) -> None:
            try:
                fields = self._outcome(fut, head, seconds)
                done(fields)
            except Exception:
                log.exception("an extraction's callback failed")
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._busy.notify_all()

        future.add_done_callback(finished)

    def _outcome(self, fut: Future[IndexFields], head: bytes, seconds: float) -> IndexFields:
        try:
            return fut.result()
        except TimeoutError:
            self.timed_out += 1
            log.warning("a message's text took longer than %s s to extract: indexed by its "
                        "headers only", seconds)
            return headers_only(head, f"not extracted within {seconds:g} s")
        except ProcessExpired as exc:
            log.warning("text extraction of a message ended its worker (%s)", exc)
            return headers_only(head, "its extraction failed")
        except Exception as exc:  # the pool itself failed: headers only, rather than lose it
            log.warning("text extraction could not run in a worker: %s", exc)
            return headers_only(head, "its extraction failed")

    def wait(self, seconds: float) -> bool:
        """Wait until no extraction is in flight; False if some still are after `seconds`."""
        with self._lock:
            return self._busy.wait_for(lambda: self._in_flight == 0, timeout=seconds)

    def stop(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.stop()  # type: ignore[no-untyped-call]
            pool.join()
