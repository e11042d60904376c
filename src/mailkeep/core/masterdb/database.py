"""MasterDB: the connection per thread, the write transaction, and the repositories of every
area (the package's doc says more)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailkeep.core.files import create_private, private, private_dir
from mailkeep.core.masterdb.accounts import AccountRow, Accounts
from mailkeep.core.masterdb.audit import AuditLog
from mailkeep.core.masterdb.base import BUSY_TIMEOUT_MS
from mailkeep.core.masterdb.compliance import ComplianceRows
from mailkeep.core.masterdb.directory import DirectoryRows
from mailkeep.core.masterdb.heads import TreeHeadRows
from mailkeep.core.masterdb.history import ProcessHistory
from mailkeep.core.masterdb.jobs import Job, JobRows, Schedule
from mailkeep.core.masterdb.mfa import AppPasswordRows, MfaRows
from mailkeep.core.masterdb.outbox import Outbox
from mailkeep.core.masterdb.profiles import ProfileRows
from mailkeep.core.masterdb.retention import DeletionRequests, RetentionRows
from mailkeep.core.masterdb.schema import FILE, SCHEMA, VERSION
from mailkeep.core.masterdb.sessions import SessionRows
from mailkeep.core.masterdb.settings import SettingRows
from mailkeep.core.masterdb.stores import STATES, StoreRecord, StoreRegistry

__all__ = ["FILE", "STATES", "AccountRow", "Job", "MasterDB", "Schedule", "StoreRecord"]


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

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        conn = self.conn
        if conn.execute("PRAGMA user_version").fetchone()[0] < VERSION:
            conn.executescript(SCHEMA)
            if "chain" not in [r[1] for r in conn.execute("PRAGMA table_info(audit)")]:
                conn.execute("ALTER TABLE audit ADD COLUMN chain TEXT")  # version 5
            conn.execute("INSERT OR IGNORE INTO audit_meta VALUES ('chain_from', (SELECT "
                         "coalesce(max(id), 0) + 1 FROM audit WHERE chain IS NULL))")
            conn.execute(f"PRAGMA user_version = {VERSION}")
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

    @classmethod
    def of(cls, data_dir: Path) -> MasterDB:
        """The master database of a data directory (made with its tables on first use)."""
        private_dir(data_dir)
        path = data_dir / FILE
        create_private(path)  # password hashes, the audit log, jobs: the owner's alone
        for side in (".db-wal", ".db-shm"):  # made by SQLite with the database's mode
            private(path.with_suffix(side))
        return cls(path)

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise sqlite3.ProgrammingError("the master database is closed")
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; a tx() inside another joins it."""
        conn = self.conn
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
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
        readable by its owner only (it holds password hashes and the audit log)."""
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(target, 0o600)
        copy = sqlite3.connect(target)
        try:
            self.conn.backup(copy)
        finally:
            copy.close()

    def size(self) -> int:
        """Bytes on disk: the database file and its write-ahead log."""
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name
                                                                            + "-wal"))
                   if p.exists())

    def check(self) -> list[str]:
        """SQLite's integrity check; the problems it finds (none: an empty list)."""
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
