"""The installation's configuration documents: the notification mail's settings, the named
connections, the directory service's settings. On the embedded default each is a file of the
data directory's conf/ (conf/<name>, readable by the server's account only); with the master
database in PostgreSQL each is a row of its `meta` table (`conf.<name>`), so that every server
of the installation reads and changes the same one. Their secrets are sealed under the master
key in both (every server has it)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mailkeep.core.backends import database_url
from mailkeep.core.files import private_dir, write_json_atomic
from mailkeep.core.masterdb.installation import lock_document, meta_value, set_meta_value

if TYPE_CHECKING:
    from mailkeep.core.masterdb import MasterDB

F = TypeVar("F", bound=Callable[..., Any])
KEY = "conf."  # + the document's name: its row in the master database's meta
SHARED = ("notification.json", "connections.json", "directory.json")


class ConfDocument:
    """One configuration document (`name`, one of SHARED) of a data directory's installation.
    `master`: the process's master database, whose connection is used in PostgreSQL (else one
    is opened for each read or write)."""

    def __init__(self, data_dir: Path, name: str, master: MasterDB | None = None) -> None:
        assert name in SHARED
        self.name = name
        self.path = data_dir / "conf" / name
        self.master = master if master is not None and master.postgres else None
        self.url = None if self.master is not None else database_url()

    @property
    def shared(self) -> bool:
        """Whether it is kept in PostgreSQL."""
        return self.master is not None or self.url is not None

    def _conn(self) -> Any:
        from mailkeep.core.pgconn import Connection
        assert self.url is not None
        return Connection(self.url)

    def read_text(self) -> str | None:
        """Its text; None if there is none yet. OSError (a file that cannot be read) and
        DatabaseUnavailable pass through."""
        if not self.shared:
            try:
                return self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return None
        if self.master is not None:
            return meta_value(self.master.conn, KEY + self.name)
        conn = self._conn()
        try:
            return meta_value(conn, KEY + self.name)
        finally:
            conn.close()

    def write_json(self, data: dict[str, Any]) -> None:
        """Replace it with `data`, whole (atomically, in both)."""
        if not self.shared:
            private_dir(self.path.parent)
            write_json_atomic(self.path, data, mode=0o600)
            return
        text = json.dumps(data, indent=2, sort_keys=True)
        if self.master is not None:
            self.master.installation.set_meta(KEY + self.name, text)
            return
        conn = self._conn()
        try:
            set_meta_value(conn, KEY + self.name, text)
        finally:
            conn.close()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The document to oneself while a change reads and writes it, in every process and
        every server: an flock of locks/conf-<name>.lock, or in PostgreSQL an advisory
        lock."""
        if not self.shared:
            import fcntl
            locks = private_dir(self.path.parent.parent / "locks")
            fd = os.open(locks / f"conf-{self.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)
            return
        from mailkeep.core.pgconn import Connection
        url = self.master.url if self.master is not None else self.url
        assert url is not None
        conn = Connection(url)
        try:
            conn.execute("BEGIN")
            lock_document(conn, KEY + self.name)
            yield
        finally:
            conn.close()  # (ends the transaction, and its lock)


def one_change_at_a_time(method: F) -> F:
    """A method of a document's owner (its `doc`) that reads the document and writes it
    again: one such change at a time (ConfDocument.locked), so that none is lost."""
    @wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.doc.locked():
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]
