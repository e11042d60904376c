"""MasterDB: the connection per thread, the write transaction, and the repositories of every
area (the package's doc says more)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailkeep.core.backends import database_url
from mailkeep.core.files import create_private, private, private_dir
from mailkeep.core.masterdb.accounts import AccountRow, Accounts
from mailkeep.core.masterdb.audit import AuditLog
from mailkeep.core.masterdb.base import BUSY_TIMEOUT_MS
from mailkeep.core.masterdb.compliance import ComplianceRows
from mailkeep.core.masterdb.directory import DirectoryRows
from mailkeep.core.masterdb.heads import TreeHeadRows
from mailkeep.core.masterdb.history import ProcessHistory
from mailkeep.core.masterdb.installation import InstallationRows
from mailkeep.core.masterdb.jobs import Job, JobRows, Schedule
from mailkeep.core.masterdb.mfa import AppPasswordRows, MfaRows
from mailkeep.core.masterdb.outbox import Outbox
from mailkeep.core.masterdb.processes import ProcessRows
from mailkeep.core.masterdb.profiles import ProfileRows
from mailkeep.core.masterdb.retention import DeletionRequests, RetentionRows
from mailkeep.core.masterdb.schema import FILE, SCHEMA, SCHEMA_PG, VERSION
from mailkeep.core.masterdb.sessions import SessionRows
from mailkeep.core.masterdb.settings import SettingRows
from mailkeep.core.masterdb.stores import STATES, StoreRecord, StoreRegistry

__all__ = ["FILE", "STATES", "AccountRow", "Job", "MasterDB", "Schedule", "StoreRecord"]

WRITE_LOCK = 0x6D6B6D61  # the advisory lock of the master database's write transactions


class MasterDB:
    stores: StoreRegistry
    audit: AuditLog
    compliance: ComplianceRows
    heads: TreeHeadRows
    retention: RetentionRows
    deletion_requests: DeletionRequests
    accounts: Accounts
    sessions: SessionRows
    settings: SettingRows
    jobs: JobRows
    history: ProcessHistory
    profiles: ProfileRows
    outbox: Outbox
    mfa: MfaRows
    app_passwords: AppPasswordRows
    directory: DirectoryRows
    installation: InstallationRows  # (PostgreSQL only)
    processes: ProcessRows  # (PostgreSQL only)

    def __init__(self, path: Path, *, url: str | None = None) -> None:
        """The database in the SQLite file `path`, or, given `url` (a libpq URL), in that
        PostgreSQL database (`path` then only names the data directory it serves)."""
        self.path = path
        self.url = url
        self.postgres = url is not None
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False
        if self.postgres:
            try:
                self._create_pg()
            except BaseException:
                self.close()
                raise
            self._repositories()
            return
        conn = self.conn
        if conn.execute("PRAGMA user_version").fetchone()[0] < VERSION:
            conn.executescript(SCHEMA)
            if "chain" not in [r[1] for r in conn.execute("PRAGMA table_info(audit)")]:
                conn.execute("ALTER TABLE audit ADD COLUMN chain TEXT")  # version 5
            conn.execute("INSERT OR IGNORE INTO audit_meta VALUES ('chain_from', (SELECT "
                         "coalesce(max(id), 0) + 1 FROM audit WHERE chain IS NULL))")
            conn.execute(f"PRAGMA user_version = {VERSION}")
        self._repositories()

    def _create_pg(self) -> None:
        """The tables, made by the first server to open the database (the others wait for
        it: the same lock as every write transaction). A database of this version is opened
        without waiting for any writer."""
        conn = self.conn
        if conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]:
            row = conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
            if row is not None and int(row[0]) == VERSION:
                return
        with self.tx() as conn:
            known = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]
            version = int(conn.execute("SELECT value FROM meta WHERE key = 'version'")
                          .fetchone()[0]) if known else 0
            if version > VERSION:
                from mailkeep.core.pgconn import DatabaseUnavailable
                raise DatabaseUnavailable(
                    f"the master database is of a later release (schema {version}; this "
                    f"release knows {VERSION})")
            if version < VERSION:
                conn.executescript(SCHEMA_PG)
                conn.execute("INSERT INTO meta VALUES ('version', ?) ON CONFLICT (key) DO "
                             "UPDATE SET value = excluded.value", (str(VERSION),))

    def _repositories(self) -> None:
        self.stores = StoreRegistry(self)
        self.audit = AuditLog(self)
        self.compliance = ComplianceRows(self)
        self.heads = TreeHeadRows(self)
        self.retention = RetentionRows(self)
        self.deletion_requests = DeletionRequests(self)
        self.accounts = Accounts(self)
        self.sessions = SessionRows(self)
        self.settings = SettingRows(self)
        self.jobs = JobRows(self)
        self.history = ProcessHistory(self)
        self.profiles = ProfileRows(self)
        self.outbox = Outbox(self)
        self.mfa = MfaRows(self)
        self.app_passwords = AppPasswordRows(self)
        self.directory = DirectoryRows(self)
        self.installation = InstallationRows(self)
        self.processes = ProcessRows(self)

    @classmethod
    def of(cls, data_dir: Path) -> MasterDB:
        """The master database of a data directory (made with its tables on first use): in
        PostgreSQL when the data directory names one (core/backends.py), else its SQLite
        file."""
        private_dir(data_dir)
        url = database_url(data_dir)
        if url is not None:
            return cls(data_dir / FILE, url=url)
        path = data_dir / FILE
        create_private(path)  # password hashes, the audit log, jobs: the owner's alone
        for side in (".db-wal", ".db-shm"):  # made by SQLite with the database's mode
            private(path.with_suffix(side))
        return cls(path)

    @property
    def conn(self) -> Any:
        """This thread's connection (opened on first use): a sqlite3 connection, or one to
        PostgreSQL that reads the same (core/pgconn.py)."""
        conn: Any = getattr(self._local, "conn", None)
        if conn is not None and self.postgres and conn.closed and not self._local.depth:
            with self._lock:  # lost (a restart of PostgreSQL): this thread connects again
                self._connections.remove(conn)
            conn.close()
            conn = None
        if conn is None:
            if self._closed:
                raise sqlite3.ProgrammingError("the master database is closed")
            if self.url is not None:
                from mailkeep.core.pgconn import Connection
                conn = Connection(self.url)
                conn.execute(f"SET lock_timeout = {BUSY_TIMEOUT_MS}")
            else:
                conn = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def tx(self, exclusive: bool = True) -> Iterator[Any]:
        """A write transaction; a tx() inside another joins it. One at a time, whichever
        process or server writes: BEGIN IMMEDIATE in SQLite, in PostgreSQL a transaction
        that first takes the master database's advisory lock (the repositories read, then
        write, as in SQLite: the audit chain's link, a counter). `exclusive` False: in
        PostgreSQL, a transaction that does not wait for the others (for writes whose rows
        keep themselves consistent, such as a process's status: core/masterdb/processes.py)."""
        conn = self.conn
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        if self.postgres:
            conn.execute("BEGIN")
            try:
                if exclusive:
                    conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        else:
            conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            self._local.depth = 0
            conn.execute("ROLLBACK")
            raise
        self._local.depth = 0
        conn.execute("COMMIT")

    def backup(self, target: Path) -> None:
        """A consistent copy of the database while others use it (SQLite's backup API),
        readable by its owner only (it holds password hashes and the audit log). A database
        in PostgreSQL is backed up with PostgreSQL's own tools (pg_dump, base backups)."""
        if self.postgres:
            from mailkeep.core.errors import Conflict
            raise Conflict("the master database is in PostgreSQL: back it up with "
                           "PostgreSQL's own tools (pg_dump, a base backup), and the segments "
                           "with the object store's (versioning, replication)")
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(target, 0o600)
        copy = sqlite3.connect(target)
        try:
            self.conn.backup(copy)
        finally:
            copy.close()

    def size(self) -> int:
        """Bytes on disk: the database file and its write-ahead log (in PostgreSQL: the
        database's size)."""
        if self.postgres:
            return int(self.conn.execute("SELECT pg_database_size(current_database())")
                       .fetchone()[0])
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name
                                                                            + "-wal"))
                   if p.exists())

    def check(self) -> list[str]:
        """SQLite's integrity check; the problems it finds (none: an empty list). PostgreSQL
        checks its pages itself: here, that every table can be read."""
        if self.postgres:
            try:
                for table in ("stores", "users", "audit", "jobs", "settings", "profiles"):
                    self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            except sqlite3.DatabaseError as exc:
                return [str(exc)]
            return []
        try:
            rows = [r[0] for r in self.conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:  # too damaged to be checked page by page
            return [str(exc)]
        return [] if rows == ["ok"] else rows

    def compact(self) -> tuple[int, int]:
        """Rewrite the database without its free pages and fold the write-ahead log in;
        (bytes before, bytes after)."""
        before = self.size()
        conn = self.conn
        if self.postgres:  # what autovacuum does, now (never VACUUM FULL: it locks out all)
            conn.execute("VACUUM (ANALYZE)")
            return before, self.size()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA optimize")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before, self.size()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> MasterDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
