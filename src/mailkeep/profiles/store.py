"""Profiles, their sealed secrets, their incremental state and their worker results, in the
master database; and the lock that keeps a profile from running twice at once."""

from __future__ import annotations

import json
import secrets as pysecrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailkeep.core.admin.locks import RunLock, held, lock_file
from mailkeep.core.admin.places import checked_place, roots_of
from mailkeep.core.admin.secrets import open_text, seal_text, secret_key, secret_keys
from mailkeep.core.admin.settings import Settings
from mailkeep.core.admin.users import Users
from mailkeep.core.errors import Conflict, InvalidArgument, MailkeepError, NotFound
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.masterdb.profiles import NameTaken
from mailkeep.profiles import schema

RESULTS = ("succeeded", "completedWithWarnings", "completedWithErrors", "failed", "cancelled")
MAX_FAILURES = 1000  # kept per result; the counts are exact whatever the number
MAX_LOG = 1 << 20  # characters of log kept per result


class ProfileSecretError(MailkeepError):
    """A profile's sealed secret cannot be opened (or the key to seal it cannot be made)."""


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


def _exposed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a stored secret would reach another server or account than before, or the
    same one less protected: without TLS, without checking its certificate, trusting another
    CA."""
    if any(after.get(k) != before.get(k) for k in ("host", "login", "port", "type")):
        return True
    return ((after.get("security") == "none" and before.get("security") != "none")
            or (bool(before.get("verifyCertificate", True))
                and not after.get("verifyCertificate", True))
            or after.get("caFile") != before.get("caFile"))


class Profiles:
    def __init__(self, master: MasterDB, data_dir: Path) -> None:
        self.master = master
        self.rows = master.profiles
        self.data_dir = data_dir

    # -- profiles ---------------------------------------------------------------------------
    def _row(self, row: tuple[Any, ...]) -> Profile:
        pid, props, secrets, seal_id, state, automatic, pause_s, windows = row
        return Profile(pid, json.loads(props), set(json.loads(secrets)), seal_id,
                       json.loads(state), bool(automatic), pause_s, windows)

    def all(self) -> list[Profile]:
        return [self._row(r) for r in self.rows.all()]

    def get(self, profile_id: int) -> Profile:
        row = self.rows.get(profile_id)
        if row is None:
            raise NotFound(f"There is no profile with id {profile_id} (see GetProfiles).")
        return self._row(row)

    def _check_user(self, props: dict[str, Any]) -> None:
        if not Users(self.master).exists(props["userName"]):
            raise InvalidArgument(f"Invalid profile properties: userName "
                                  f"{props['userName']!r} is not a mailkeep user (CreateUser).")

    def check_place(self, props: dict[str, Any]) -> None:
        """A watched directory or Maildir must lie outside the data directory (a profile that
        deletes what it archived would take the master key with it) and within paths.allowed;
        checked when the profile is saved and again before each run (a symbolic link changed
        since)."""
        if "path" in props:
            roots = roots_of(Settings(self.master).get("paths.allowed"))
            try:
                watched = checked_place(Path(props["path"]), self.data_dir, "path", roots)
            except InvalidArgument as exc:
                raise InvalidArgument(f"Invalid profile properties: {exc.message}") from None
            # nor hold, or lie in, a store's directory (a store may live outside the data
            # directory): archiving a store's own files, and deleting them, loses the store
            for rec in self.master.stores.all():
                store = rec.path.resolve()
                if store == watched or store.is_relative_to(watched) or \
                        watched.is_relative_to(store):
                    raise InvalidArgument(f"Invalid profile properties: path {props['path']} "
                                          f"{'holds' if store.is_relative_to(watched) else 'is in'}"
                                          f" the directory of store {rec.name!r}: choose a "
                                          "directory outside every store.")

    def check(self, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """Checked properties and secrets of a new (or temporary) profile."""
        props, secrets = schema.normalize(given)
        schema.needs_secret(props, secrets)
        self._check_user(props)
        self.check_place(props)
        return props, secrets

    def create(self, given: Any) -> Profile:
        props, secrets = self.check(given)
        seal_id = pysecrets.token_hex(16)
        sealed = self._seal(seal_id, secrets)
        try:
            profile_id = self.rows.insert(props, sealed, seal_id, time.time())
        except NameTaken:
            raise Conflict(f"A profile named {props['name']!r} already exists.") from None
        return self.get(profile_id)

    def update(self, profile_id: int, given: Any) -> Profile:
        """A partial update: fields not given keep their values, secrets included."""
        prof = self.get(profile_id)
        props, new_secrets = schema.normalize(given, prof.properties)
        secrets = self.secrets(prof)
        moved = any(props.get(k) != prof.properties.get(k) for k in ("host", "login"))
        if _exposed(prof.properties, props) and not new_secrets and secrets:
            # A write-only password must not follow the profile to another server or account,
            # nor go to the same one less protected.
            raise InvalidArgument("Invalid profile properties: give password (or accessToken) "
                                  "again when host, login, port or type changes, or when "
                                  "security, verifyCertificate or caFile would let it reach "
                                  "the server less protected.")
        secrets = new_secrets if _exposed(prof.properties, props) else {**secrets,
                                                                        **new_secrets}
        schema.needs_secret(props, secrets)
        self._check_user(props)
        self.check_place(props)
        if props.get("type") in ("imap", "pop3") and moved:
            state: dict[str, Any] = {}  # another mailbox: its UIDs mean nothing here
        else:
            state = prof.state
        try:
            self.rows.update(profile_id, props, self._seal(prof.seal_id, secrets), state)
        except NameTaken:
            raise Conflict(f"A profile named {props['name']!r} already exists.") from None
        return self.get(profile_id)

    def delete(self, profile_id: int) -> Profile:
        prof = self.get(profile_id)
        with self.lock(prof):
            self.rows.delete(profile_id)
        return prof

    def set_execution(self, profile_id: int, automatic: bool, pause_s: int | None,
                      windows: str | None) -> Profile:
        prof = self.get(profile_id)
        self.rows.set_execution(profile_id, automatic,
                                prof.pause_s if pause_s is None else pause_s, windows)
        return self.get(profile_id)

    def save_state(self, profile_id: int, state: dict[str, Any]) -> None:
        self.rows.save_state(profile_id, state)

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
        sealed = self.rows.sealed_secrets(prof.id)
        if not sealed:
            return {}
        self._key()  # the master key (made if there is none)
        keys = secret_keys(self.data_dir, "profile secrets")
        try:
            return {k: open_text(keys, v, f"profile {prof.seal_id} {k}")
                    for k, v in sealed.items()}
        except ValueError:
            raise ProfileSecretError(f"The password of profile {prof.name!r} cannot be "
                                     "decrypted with this data directory's master key; set "
                                     "it again (UpdateProfile).") from None

    def reseal(self) -> int:
        """Seal every profile's secrets again under the current master key (after a
        renewal); how many profiles hold secrets."""
        count = 0
        for prof in self.all():
            secrets = self.secrets(prof)
            if secrets:
                self.rows.update(prof.id, prof.properties, self._seal(prof.seal_id, secrets),
                                 prof.state)
                count += 1
        return count

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
        result_id = self.rows.begin_result(prof.id if prof else None, props["name"],
                                           props["type"], props["userName"], started_by, now)
        return WorkerResult(result_id, prof, props["name"], props["type"], props["userName"],
                            started_by, now)

    def finish_result(self, res: WorkerResult) -> None:
        log = "\r\n".join(res.log)
        self.rows.finish_result(
            res.id, complete=res.complete, result=res.result, archived=res.archived,
            duplicates=res.duplicates, skipped=res.skipped, failed=res.failed,
            deleted=res.deleted, bytes=res.bytes, error=res.error,
            failures=res.failures[:MAX_FAILURES], warnings=res.warnings, log=log[-MAX_LOG:])

    def _interrupted(self) -> None:
        """Runs whose process ended without finishing them (a crash, a kill) are failed."""
        for rid, pid in self.rows.running_results():
            if pid is None or not self.running(pid):
                self.rows.interrupted(rid)

    def results(self, start: float, end: float, profile_id: int | None,
                user_name: str | None) -> list[dict[str, Any]]:
        self._interrupted()
        return self.rows.results(start, end, profile_id, user_name)

    def result(self, result_id: int) -> dict[str, Any]:
        self._interrupted()
        row = self.rows.result(result_id)
        if row is None:
            raise NotFound(f"There is no worker result with id {result_id} "
                           "(see GetWorkerResults).")
        return row

    def last_result(self, profile_id: int) -> dict[str, Any] | None:
        """The latest run's id, result, start and complete time (not its log)."""
        row = self.rows.last_result(profile_id)
        if row is not None and row["result"] == "running" and not self.running(profile_id):
            self._interrupted()
            return self.rows.last_result(profile_id)
        return row
