"""Profiles, their sealed secrets, their incremental state and their worker results, in the
master database; and the lock that keeps a profile from running twice at once."""

from __future__ import annotations

import json
import secrets as pysecrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailkeep.core.admin.locks import RunLock, held, lock_file
from mailkeep.core.admin.secrets import open_text, seal_text, secret_key
from mailkeep.core.errors import Conflict, InvalidArgument, MailkeepError, NotFound
from mailkeep.core.master import Master
from mailkeep.profiles import schema

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    user_name TEXT NOT NULL, properties TEXT NOT NULL, secrets TEXT NOT NULL DEFAULT '{}',
    seal_id TEXT NOT NULL, state TEXT NOT NULL DEFAULT '{}',
    automatic INTEGER NOT NULL DEFAULT 0, pause_s INTEGER NOT NULL DEFAULT 300,
    windows TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS worker_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, profile_id INTEGER, profile_name TEXT NOT NULL,
    profile_type TEXT NOT NULL, user_name TEXT NOT NULL, started_by TEXT NOT NULL,
    start REAL NOT NULL, complete REAL, result TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, error TEXT,
    failures TEXT NOT NULL DEFAULT '[]', warnings TEXT NOT NULL DEFAULT '[]',
    log TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS worker_results_start ON worker_results(start);
"""

RESULTS = ("succeeded", "completedWithWarnings", "completedWithErrors", "failed", "cancelled")
MAX_FAILURES = 1000  # kept per result; the counts are exact whatever the number
MAX_LOG = 1 << 20  # characters of log kept per result


class ProfileSecretError(MailkeepError):
    code = "key_missing"


@dataclass
class Profile:
    id: int
    properties: dict[str, Any]  # without secrets
    secret_names: set[str]
    seal_id: str
    state: dict[str, Any]
    automatic: bool
    pause_s: int
    windows: str | None

    @property
    def name(self) -> str:
        return str(self.properties["name"])

    @property
    def type(self) -> str:
        return str(self.properties["type"])

    @property
    def user_name(self) -> str:
        return str(self.properties["userName"])


@dataclass
class WorkerResult:
    id: int
    profile: Profile | None
    profile_name: str
    profile_type: str
    user_name: str
    started_by: str
    start: float
    complete: float | None = None
    result: str = "running"
    archived: int = 0
    duplicates: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    bytes: int = 0
    error: str | None = None

    def __post_init__(self) -> None:
        self.failures: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.log: list[str] = []


class Profiles:
    def __init__(self, master: Master, data_dir: Path) -> None:
        self.master = master
        self.conn = master.conn
        self.data_dir = data_dir
        self.conn.executescript(SCHEMA)

    # -- profiles ---------------------------------------------------------------------------
    def _row(self, row: tuple[Any, ...]) -> Profile:
        pid, props, secrets, seal_id, state, automatic, pause_s, windows = row
        return Profile(pid, json.loads(props), set(json.loads(secrets)), seal_id,
                       json.loads(state), bool(automatic), pause_s, windows)

    _COLUMNS = "id, properties, secrets, seal_id, state, automatic, pause_s, windows"

    def all(self) -> list[Profile]:
        rows = self.conn.execute(f"SELECT {self._COLUMNS} FROM profiles ORDER BY id")
        return [self._row(r) for r in rows]

    def get(self, profile_id: int) -> Profile:
        row = self.conn.execute(f"SELECT {self._COLUMNS} FROM profiles WHERE id = ?",
                                (profile_id,)).fetchone()
        if row is None:
            raise NotFound(f"There is no profile with id {profile_id} (see GetProfiles).")
        return self._row(row)

    def _check_user(self, props: dict[str, Any]) -> None:
        from mailkeep.core.admin.users import Users

        if not Users(self.master).exists(props["userName"]):
            raise InvalidArgument(f"Invalid profile properties: userName "
                                  f"{props['userName']!r} is not a mailkeep user (CreateUser).")

    def check(self, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """Checked properties and secrets of a new (or temporary) profile."""
        props, secrets = schema.normalize(given)
        schema.needs_secret(props, secrets)
        self._check_user(props)
        return props, secrets

    def create(self, given: Any) -> Profile:
        props, secrets = self.check(given)
        seal_id = pysecrets.token_hex(16)
        sealed = self._seal(seal_id, secrets)
        try:
            cur = self.conn.execute(
                "INSERT INTO profiles (name, type, user_name, properties, secrets, seal_id,"
                " created) VALUES (?,?,?,?,?,?,?)",
                (props["name"], props["type"], props["userName"], json.dumps(props),
                 json.dumps(sealed), seal_id, time.time()))
        except sqlite3.IntegrityError:
            raise Conflict(f"A profile named {props['name']!r} already exists.") from None
        assert cur.lastrowid is not None
        return self.get(cur.lastrowid)

    def update(self, profile_id: int, given: Any) -> Profile:
        """A partial update: fields not given keep their values, secrets included."""
        prof = self.get(profile_id)
        props, new_secrets = schema.normalize(given, prof.properties)
        secrets = self.secrets(prof)
        moved = any(props.get(k) != prof.properties.get(k) for k in ("host", "login"))
        if moved and not new_secrets:
            # A write-only password must not follow the profile to another server or account.
            raise InvalidArgument("Invalid profile properties: give password (or accessToken) "
                                  "again when host or login changes.")
        secrets = new_secrets if moved else {**secrets, **new_secrets}
        schema.needs_secret(props, secrets)
        self._check_user(props)
        if props.get("type") in ("imap", "pop3") and moved:
            state: dict[str, Any] = {}  # another mailbox: its UIDs mean nothing here
        else:
            state = prof.state
        try:
            self.conn.execute(
                "UPDATE profiles SET name = ?, user_name = ?, properties = ?, secrets = ?,"
                " state = ? WHERE id = ?",
                (props["name"], props["userName"], json.dumps(props),
                 json.dumps(self._seal(prof.seal_id, secrets)), json.dumps(state), profile_id))
        except sqlite3.IntegrityError:
            raise Conflict(f"A profile named {props['name']!r} already exists.") from None
        return self.get(profile_id)

    def delete(self, profile_id: int) -> Profile:
        prof = self.get(profile_id)
        with self.lock(prof):
            self.conn.execute("DELETE FROM profiles WHERE id = ?", (profile_id,))
        return prof

    def set_execution(self, profile_id: int, automatic: bool, pause_s: int | None,
                      windows: str | None) -> Profile:
        prof = self.get(profile_id)
        self.conn.execute("UPDATE profiles SET automatic = ?, pause_s = ?, windows = ?"
                          " WHERE id = ?", (int(automatic), prof.pause_s if pause_s is None
                                            else pause_s, windows, profile_id))
        return self.get(profile_id)

    def save_state(self, profile_id: int, state: dict[str, Any]) -> None:
        self.conn.execute("UPDATE profiles SET state = ? WHERE id = ?",
                          (json.dumps(state, separators=(",", ":")), profile_id))

    # -- secrets ----------------------------------------------------------------------------
    def _key(self) -> bytes:
        try:
            return secret_key(self.data_dir, "profile secrets")
        except OSError as exc:
            raise ProfileSecretError(f"the master key (conf/master.key) that seals profile "
                                     f"passwords could not be created: {exc.strerror}"
                                     ) from None

    def _seal(self, seal_id: str, secrets: dict[str, str]) -> dict[str, str]:
        if not secrets:
            return {}
        key = self._key()
        return {k: seal_text(key, v, f"profile {seal_id} {k}") for k, v in secrets.items()}

    def secrets(self, prof: Profile) -> dict[str, str]:
        row = self.conn.execute("SELECT secrets FROM profiles WHERE id = ?",
                                (prof.id,)).fetchone()
        sealed: dict[str, str] = json.loads(row[0]) if row else {}
        if not sealed:
            return {}
        key = self._key()
        try:
            return {k: open_text(key, v, f"profile {prof.seal_id} {k}")
                    for k, v in sealed.items()}
        except ValueError:
            raise ProfileSecretError(f"The password of profile {prof.name!r} cannot be "
                                     "decrypted with this data directory's master key; set "
                                     "it again (UpdateProfile).") from None

    # -- running ----------------------------------------------------------------------------
    def _lock_path(self, profile_id: int) -> Path:
        return lock_file(self.data_dir, f"profile-{profile_id}")

    @contextmanager
    def lock(self, prof: Profile) -> Iterator[None]:
        """Held while the profile runs (across processes too; a crash releases it)."""
        lock = RunLock.acquire(self._lock_path(prof.id))
        if lock is None:
            raise Conflict(f"Profile {prof.name!r} (id {prof.id}) is running already.")
        try:
            yield
        finally:
            lock.release()

    def running(self, profile_id: int) -> bool:
        return held(self._lock_path(profile_id))

    # -- worker results ---------------------------------------------------------------------
    def begin_result(self, prof: Profile | None, props: dict[str, Any], started_by: str
                     ) -> WorkerResult:
        now = time.time()
        cur = self.conn.execute(
            "INSERT INTO worker_results (profile_id, profile_name, profile_type, user_name,"
            " started_by, start, result) VALUES (?,?,?,?,?,?, 'running')",
            (prof.id if prof else None, props["name"], props["type"], props["userName"],
             started_by, now))
        assert cur.lastrowid is not None
        return WorkerResult(cur.lastrowid, prof, props["name"], props["type"],
                            props["userName"], started_by, now)

    def finish_result(self, res: WorkerResult) -> None:
        log = "\r\n".join(res.log)
        self.conn.execute(
            "UPDATE worker_results SET complete = ?, result = ?, archived = ?, duplicates = ?,"
            " skipped = ?, failed = ?, deleted = ?, bytes = ?, error = ?, failures = ?,"
            " warnings = ?, log = ? WHERE id = ?",
            (res.complete, res.result, res.archived, res.duplicates, res.skipped, res.failed,
             res.deleted, res.bytes, res.error, json.dumps(res.failures[:MAX_FAILURES]),
             json.dumps(res.warnings), log[-MAX_LOG:], res.id))

    _RESULT_COLUMNS = ("id, profile_id, profile_name, profile_type, user_name, started_by,"
                       " start, complete, result, archived, duplicates, skipped, failed,"
                       " deleted, bytes, error")

    def _interrupted(self) -> None:
        """Runs whose process ended without finishing them (a crash, a kill) are failed."""
        rows = self.conn.execute("SELECT id, profile_id FROM worker_results WHERE result ="
                                 " 'running'").fetchall()
        for rid, pid in rows:
            if pid is None or not self.running(pid):
                self.conn.execute(
                    "UPDATE worker_results SET result = 'failed', complete = coalesce("
                    "complete, start), error = 'The run was interrupted: the process running "
                    "it ended before it finished.' WHERE id = ? AND result = 'running'",
                    (rid,))

    def results(self, start: float, end: float, profile_id: int | None,
                user_name: str | None) -> list[dict[str, Any]]:
        self._interrupted()
        sql = f"SELECT {self._RESULT_COLUMNS} FROM worker_results WHERE start >= ? AND start < ?"
        params: list[Any] = [start, end]
        if profile_id is not None:
            sql += " AND profile_id = ?"
            params.append(profile_id)
        if user_name is not None:
            sql += " AND user_name = ?"
            params.append(user_name)
        rows = self.conn.execute(sql + " ORDER BY start, id", params).fetchall()
        keys = [k.strip() for k in self._RESULT_COLUMNS.split(",")]
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def result(self, result_id: int) -> dict[str, Any]:
        self._interrupted()
        row = self.conn.execute(
            f"SELECT {self._RESULT_COLUMNS}, failures, warnings, log FROM worker_results"
            " WHERE id = ?", (result_id,)).fetchone()
        if row is None:
            raise NotFound(f"There is no worker result with id {result_id} "
                           "(see GetWorkerResults).")
        keys = [k.strip() for k in self._RESULT_COLUMNS.split(",")]
        out = dict(zip(keys, row[:-3], strict=True))
        out["failures"] = json.loads(row[-3])
        out["warnings"] = json.loads(row[-2])
        out["log"] = row[-1]
        return out

    def last_result(self, profile_id: int) -> dict[str, Any] | None:
        """The latest run's id, result, start and complete time (not its log)."""
        row = self.conn.execute("SELECT id, result, start, complete FROM worker_results WHERE"
                                " profile_id = ? ORDER BY start DESC, id DESC LIMIT 1",
                                (profile_id,)).fetchone()
        if row is None:
            return None
        if row[1] == "running" and not self.running(profile_id):
            self._interrupted()
            return self.last_result(profile_id)
        return dict(zip(("id", "result", "start", "complete"), row, strict=True))
