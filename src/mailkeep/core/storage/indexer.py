"""Full-text rows written by a thread, on the catalog's own connection and transaction.

Tokenizing and merging the FTS5 index is the largest single cost of archiving a message, and
SQLite releases the GIL while it works: done here, it overlaps the importer's own Python work
(reading, hashing, writing segments). The catalog flushes this queue before it commits or
rolls back, so a transaction always holds the rows of exactly its messages.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from typing import Any

QUEUE_ROWS = 256  # bounded: each row may carry up to a megabyte of text


class IndexWriter:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue(QUEUE_ROWS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mailkeep-index", daemon=True)
        self._thread.start()

    def put(self, sql: str, params: tuple[Any, ...]) -> None:
        self._raise_pending()
        self._queue.put((sql, params))

    def flush(self) -> None:
        """Wait until every queued row is written; re-raise what failed in the thread."""
        self._queue.join()
        self._raise_pending()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _raise_pending(self) -> None:
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:  # after a failure, drop the rest of the batch
                    self._conn.execute(*item)
            except BaseException as exc:  # handed to the writer's thread at the next call
                self._error = exc
            finally:
                self._queue.task_done()
