"""Accounts in the master database: names, passwords (Argon2id), roles, privileges, folder rights.

The functions layer projects these methods onto CreateUser, GetUserInfo, ...; `auth.py` checks
credentials against them. Every change is written to the audit log in the same transaction.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailkeep.core.errors import Conflict, InvalidArgument, NotFound
from mailkeep.core.master import Master

PRIVILEGES = ("admin", "login", "changePassword", "archive", "modifyArchiveProfiles", "export",
              "modifyExportProfiles", "delete")
FOLDER_PRIVILEGES = ("read", "write", "delete")
LOGIN_PRIVILEGES = ("windows", "web", "outlook", "windowsCmd", "imap", "api")
ROLES = ("administrator", "operator", "developer")
AUTHENTICATIONS = ("integrated", "directoryServices")
INITIAL_ADMIN = "admin"
INITIAL_PASSWORD = "admin"
MAX_PASSWORD_CHARS = 4096  # Argon2 takes any length; this only bounds work per request

# No "/" (the user name is the top folder of the user's archive) and no ":" (RFC 7617: the
# Basic user-id cannot hold one), no control characters.
NAME_RE = re.compile(r"[^/\\:\x00-\x1f\x7f]{1,100}")
TEXT_RE = re.compile(r"[^\x00-\x1f\x7f]*")
EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name_key TEXT NOT NULL UNIQUE,  -- user_name.lower(): case-insensitive beyond ASCII too
    full_name TEXT, distinguished_name TEXT,
    authentication TEXT NOT NULL CHECK (authentication IN ('integrated', 'directoryServices')),
    password_hash TEXT,
    initial_password INTEGER NOT NULL DEFAULT 0,
    password_generation INTEGER NOT NULL DEFAULT 0,
    role TEXT CHECK (role IS NULL OR role IN ('administrator', 'operator', 'developer')),
    privileges TEXT NOT NULL,  -- JSON arrays from here on
    login_privileges TEXT NOT NULL,
    email_addresses TEXT NOT NULL,
    pop3_user_names TEXT NOT NULL,
    password_changed_at INTEGER,
    created_at INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS user_folder_privileges (
    user_id INTEGER NOT NULL, folder TEXT NOT NULL, privileges TEXT NOT NULL,
    PRIMARY KEY (user_id, folder))""",
    # Global, so that a generation is never reused, not even by a later account of the same name.
    "CREATE TABLE IF NOT EXISTS user_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)

COLUMNS = ("id, user_name, full_name, distinguished_name, authentication, role, privileges, "
           "login_privileges, email_addresses, pop3_user_names")


@dataclass(frozen=True)
class _Row:
    id: int
    user_name: str
    full_name: str | None
    distinguished_name: str | None
    authentication: str
    role: str | None
    privileges: list[str]
    login_privileges: list[str]
    email_addresses: list[str]
    pop3_user_names: list[str]

    @property
    def is_administrator(self) -> bool:
        return "admin" in self.privileges or self.role == "administrator"


def name_key(user_name: str) -> str:
    """The form under which user names are compared (case-insensitive, like the original)."""
    return user_name.lower()


def _check_user_name(user_name: str) -> str:
    if not NAME_RE.fullmatch(user_name) or user_name != user_name.strip():
        raise InvalidArgument(f"Invalid user name '{user_name}'.")
    return user_name


def _parse_list(values: Iterable[str] | str | None) -> list[str]:
    """Items of a list argument: a sequence, or comma-separated text; blanks dropped."""
    if values is None:
        return []
    items = values.split(",") if isinstance(values, str) else list(values)
    return [item.strip() for item in items if item.strip()]


def _parse_flags(values: Iterable[str] | str | None, allowed: tuple[str, ...], what: str
                 ) -> list[str]:
    """Canonical flags in declaration order; names match case-insensitively; "none" is empty."""
    by_lower = {name.lower(): name for name in allowed}
    chosen: set[str] = set()
    items = _parse_list(values)
    for item in items:
        if item.lower() == "none":
            continue
        if item.lower() not in by_lower:
            raise InvalidArgument(f"Invalid {what} '{item}'.")
        chosen.add(by_lower[item.lower()])
    if chosen and any(item.lower() == "none" for item in items):
        raise InvalidArgument(f"The {what} 'none' cannot be combined with others.")
    return [name for name in allowed if name in chosen]


def _shown(flags: list[str]) -> list[str]:
    return flags or ["none"]


def _optional_text(value: str | None, what: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > limit or not TEXT_RE.fullmatch(value):
        raise InvalidArgument(f"Invalid {what}.")
    return value


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for value in values:
        if value.lower() not in seen:
            seen.add(value.lower())
            kept.append(value)
    return kept


def _email_addresses(values: Iterable[str] | str | None) -> list[str]:
    addresses = _parse_list(values)
    for address in addresses:
        if len(address) > 254 or not EMAIL_RE.fullmatch(address):
            raise InvalidArgument(f"Invalid email address '{address}'.")
    return _unique(addresses)


def _pop3_user_names(values: Iterable[str] | str | None) -> list[str]:
    names = _parse_list(values)
    for name in names:
        if len(name) > 256 or not TEXT_RE.fullmatch(name):
            raise InvalidArgument(f"Invalid POP3 user name '{name}'.")
    return _unique(names)


def _folder(folder: str) -> str:
    path = folder.strip().strip("/")
    parts = path.split("/")
    if (not path or len(path) > 1000 or not TEXT_RE.fullmatch(path)
            or any(not part.strip() for part in parts)):
        raise InvalidArgument(f"Invalid folder '{folder}'.")
    return path


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates; the error object would hold the text
        return False
    return True


def _password(password: str) -> str:
    # The original's only rule is "not empty"; a longer policy belongs in a setting, not here.
    if not password:
        raise InvalidArgument("The password must not be empty.")
    if not _encodable(password):
        raise InvalidArgument("The password contains characters that are not valid text.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidArgument(f"The password must not be longer than {MAX_PASSWORD_CHARS} "
                              "characters.")
    return password


def _role(role: str | None) -> str | None:
    if role is None or role == "":
        return None
    by_lower = {r.lower(): r for r in ROLES}
    if role.lower() not in by_lower:
        raise InvalidArgument(f"Invalid role '{role}'.")
    return by_lower[role.lower()]


def _authentication(authentication: str | None) -> str:
    if authentication is None or authentication == "":
        return "integrated"
    by_lower = {a.lower(): a for a in AUTHENTICATIONS}
    if authentication.lower() not in by_lower:
        raise InvalidArgument(f"Invalid authentication '{authentication}'.")
    return by_lower[authentication.lower()]


def _under(folder: str, user_name: str) -> bool:
    """Whether a folder lies in the archive of a user (whose top folder is the user name)."""
    return name_key(folder.split("/", 1)[0]) == name_key(user_name)


class Users:
    """The accounts of one data directory.

    Methods that change something take a keyword-only `actor` for the audit log. All
    validation happens before any write; a failed call changes nothing. The master connection
    is shared, so every access here holds one lock and writes run in `BEGIN IMMEDIATE`.
    """

    def __init__(self, master: Master, *, hasher: PasswordHasher | None = None) -> None:
        self.master = master
        self.hasher = hasher or PasswordHasher()
        self._lock = threading.RLock()
        self._dummy_hash: str | None = None
        with self._lock:
            for statement in SCHEMA:
                master.conn.execute(statement)

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self.master.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _find(self, conn: sqlite3.Connection, user_name: str) -> _Row | None:
        row = conn.execute(f"SELECT {COLUMNS} FROM users WHERE name_key = ?",
                           (name_key(user_name),)).fetchone()
        if row is None:
            return None
        lists = [json.loads(value) for value in row[6:]]
        return _Row(row[0], row[1], row[2], row[3], row[4], row[5], *lists)

    def _require(self, conn: sqlite3.Connection, user_name: str) -> _Row:
        row = self._find(conn, user_name)
        if row is None:
            raise NotFound(f"User '{user_name}' does not exist.")
        return row

    def _update(self, conn: sqlite3.Connection, row: _Row, **columns: Any) -> None:
        names = ", ".join(f"{name} = ?" for name in columns)
        conn.execute(f"UPDATE users SET {names} WHERE id = ?", (*columns.values(), row.id))

    def _next_generation(self, conn: sqlite3.Connection) -> int:
        value: int = conn.execute(
            "INSERT INTO user_counters VALUES ('password_generation', 1) ON CONFLICT (name) "
            "DO UPDATE SET value = value + 1 RETURNING value").fetchone()[0]
        return value

    def _keep_an_administrator(self, conn: sqlite3.Connection, row: _Row, what: str) -> None:
        others = conn.execute(
            "SELECT COUNT(*) FROM users WHERE id != ? AND (role = 'administrator' OR "
            "EXISTS (SELECT 1 FROM json_each(users.privileges) WHERE value = 'admin'))",
            (row.id,)).fetchone()[0]
        if row.is_administrator and not others:
            raise Conflict(f"User '{row.user_name}' is the last administrator and {what}.")

    def _hashed(self, password: str | None) -> dict[str, Any]:
        """Password columns but the generation; hashed before any transaction (Argon2 is slow
        on purpose, and the master database should not wait for it)."""
        if password is None:
            return {}
        return {"password_hash": self.hasher.hash(password),
                "initial_password": int(password == INITIAL_PASSWORD),
                "password_changed_at": int(time.time())}

    # -- accounts -------------------------------------------------------------------------

    def ensure_initial_admin(self) -> bool:
        """Create "admin" with password "admin" if there is no account at all."""
        with self._lock:
            if self.master.conn.execute("SELECT 1 FROM users LIMIT 1").fetchone():
                return False
        secret = self._hashed(INITIAL_PASSWORD)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM users LIMIT 1").fetchone():
                return False
            self._insert(conn, INITIAL_ADMIN, ["admin", "login"], "administrator",
                         authentication="integrated", secret=secret,
                         login_privileges=list(LOGIN_PRIVILEGES))
            self.master.audit("system", "user.create", user=INITIAL_ADMIN,
                              privileges=["admin", "login"], role="administrator", initial=True)
        return True

    def create(self, user_name: str, privileges: Iterable[str] | str,
               full_name: str | None = None, distinguished_name: str | None = None,
               authentication: str | None = "integrated", password: str | None = None, *,
               login_privileges: Iterable[str] | str | None = None, role: str | None = None,
               actor: str = "system") -> None:
        """CreateUser. Without `login_privileges` the account may log in through every way
        (its `login` privilege still decides whether it may log in at all)."""
        _check_user_name(user_name)
        flags = _parse_flags(privileges, PRIVILEGES, "privilege")
        logins = (list(LOGIN_PRIVILEGES) if login_privileges is None
                  else _parse_flags(login_privileges, LOGIN_PRIVILEGES, "login privilege"))
        full = _optional_text(full_name, "full name", 256)
        dn = _optional_text(distinguished_name, "distinguished name", 1024)
        auth = _authentication(authentication)
        chosen_role = _role(role)
        if password is not None:
            _password(password)
        if self.exists(user_name):  # before spending a hash on it
            raise Conflict(f"User '{user_name}' already exists.")
        secret = self._hashed(password)  # outside the lock: other callers need not wait
        with self._write() as conn:
            if self._find(conn, user_name):
                raise Conflict(f"User '{user_name}' already exists.")
            self._insert(conn, user_name, flags, chosen_role, full_name=full,
                         distinguished_name=dn, authentication=auth, secret=secret,
                         login_privileges=logins)
            self.master.audit(actor, "user.create", user=user_name, privileges=flags,
                              login_privileges=logins, full_name=full, distinguished_name=dn,
                              authentication=auth, role=chosen_role,
                              has_password=password is not None)

    def _insert(self, conn: sqlite3.Connection, user_name: str, privileges: list[str],
                role: str | None, *, authentication: str, secret: dict[str, Any],
                login_privileges: list[str], full_name: str | None = None,
                distinguished_name: str | None = None) -> None:
        columns: dict[str, Any] = {
            "user_name": user_name, "name_key": name_key(user_name), "full_name": full_name,
            "distinguished_name": distinguished_name, "authentication": authentication,
            "role": role, "privileges": json.dumps(privileges),
            "login_privileges": json.dumps(login_privileges), "email_addresses": "[]",
            "pop3_user_names": "[]", "created_at": int(time.time()),
            **secret}
        if secret:
            columns["password_generation"] = self._next_generation(conn)
        conn.execute(f"INSERT INTO users ({', '.join(columns)}) "
                     f"VALUES ({', '.join('?' for _ in columns)})", tuple(columns.values()))

    def delete(self, user_name: str, *, actor: str = "system") -> None:
        """DeleteUser. The archive folder of the user stays; its folder rights go."""
        with self._write() as conn:
            row = self._require(conn, user_name)
            self._keep_an_administrator(conn, row, "cannot be deleted")
            conn.execute("DELETE FROM user_folder_privileges WHERE user_id = ?", (row.id,))
            conn.execute("DELETE FROM users WHERE id = ?", (row.id,))
            self.master.audit(actor, "user.delete", user=row.user_name)

    def rename(self, old_user_name: str, new_user_name: str, *, actor: str = "system") -> None:
        """RenameUser. Folder rights (of every account) on the user's archive follow the new
        name; renaming the archive folder itself in the stores is the caller's job."""
        _check_user_name(new_user_name)
        with self._write() as conn:
            row = self._require(conn, old_user_name)
            other = self._find(conn, new_user_name)
            if other is not None and other.id != row.id:
                raise Conflict(f"User '{new_user_name}' already exists.")
            self._update(conn, row, user_name=new_user_name, name_key=name_key(new_user_name))
            moved = conn.execute("SELECT user_id, folder FROM user_folder_privileges").fetchall()
            for user_id, folder in moved:
                if _under(folder, row.user_name):
                    renamed = new_user_name + folder[len(folder.split("/", 1)[0]):]
                    conn.execute("UPDATE OR REPLACE user_folder_privileges SET folder = ? "
                                 "WHERE user_id = ? AND folder = ?", (renamed, user_id, folder))
            self.master.audit(actor, "user.rename", old=row.user_name, new=new_user_name)

    def get(self, user_name: str) -> dict[str, Any]:
        """GetUserInfo, plus `loginPrivileges` and `role`."""
        with self._lock:
            conn = self.master.conn
            row = self._require(conn, user_name)
            folders = conn.execute("SELECT folder, privileges FROM user_folder_privileges "
                                   "WHERE user_id = ? ORDER BY folder", (row.id,)).fetchall()
        return {
            "userName": row.user_name, "fullName": row.full_name,
            "distinguishedName": row.distinguished_name, "authentication": row.authentication,
            "emailAddresses": row.email_addresses, "pop3UserNames": row.pop3_user_names,
            "privileges": _shown(row.privileges),
            "privilegesOnFolders": [{"folder": folder, "privileges": json.loads(flags)}
                                    for folder, flags in folders],
            "loginPrivileges": _shown(row.login_privileges), "role": row.role}

    def list(self) -> list[dict[str, Any]]:
        """GetUsers, sorted by user name."""
        with self._lock:
            rows = self.master.conn.execute(
                "SELECT user_name, full_name, distinguished_name FROM users ORDER BY name_key"
            ).fetchall()
        return [{"userName": r[0], "fullName": r[1], "distinguishedName": r[2]} for r in rows]

    def exists(self, user_name: str) -> bool:
        with self._lock:
            return self._find(self.master.conn, user_name) is not None

    # -- settings of one account ----------------------------------------------------------

    def _set(self, user_name: str, action: str, actor: str, **columns: Any) -> None:
        with self._write() as conn:
            row = self._require(conn, user_name)
            self._update(conn, row, **columns)
            shown = {name: json.loads(value) if name in _JSON_COLUMNS else value
                     for name, value in columns.items()}
            self.master.audit(actor, action, user=row.user_name, **shown)

    def set_password(self, user_name: str, password: str, *, actor: str = "system") -> None:
        """SetUserPassword. The only rule is the original's: not empty (and a length cap)."""
        _password(password)
        if not self.exists(user_name):  # before spending a hash on it
            raise NotFound(f"User '{user_name}' does not exist.")
        secret = self._hashed(password)  # outside the lock: other callers need not wait
        with self._write() as conn:
            row = self._require(conn, user_name)
            self._update(conn, row, **secret, password_generation=self._next_generation(conn))
            self.master.audit(actor, "user.password", user=row.user_name)

    def set_full_name(self, user_name: str, full_name: str | None, *,
                      actor: str = "system") -> None:
        self._set(user_name, "user.full_name", actor,
                  full_name=_optional_text(full_name, "full name", 256))

    def set_distinguished_name(self, user_name: str, distinguished_name: str | None, *,
                               actor: str = "system") -> None:
        self._set(user_name, "user.distinguished_name", actor,
                  distinguished_name=_optional_text(distinguished_name, "distinguished name",
                                                    1024))

    def set_authentication(self, user_name: str, authentication: str, *,
                           actor: str = "system") -> None:
        """SetUserAuthentication. Changes the password generation: cached logins end."""
        auth = _authentication(authentication)
        with self._write() as conn:
            row = self._require(conn, user_name)
            self._update(conn, row, authentication=auth,
                         password_generation=self._next_generation(conn))
            self.master.audit(actor, "user.authentication", user=row.user_name,
                              authentication=auth)

    def set_email_addresses(self, user_name: str, email_addresses: Iterable[str] | str | None,
                            *, actor: str = "system") -> None:
        self._set(user_name, "user.email_addresses", actor,
                  email_addresses=json.dumps(_email_addresses(email_addresses)))

    def set_pop3_user_names(self, user_name: str, pop3_user_names: Iterable[str] | str | None,
                            *, actor: str = "system") -> None:
        self._set(user_name, "user.pop3_user_names", actor,
                  pop3_user_names=json.dumps(_pop3_user_names(pop3_user_names)))

    def set_login_privileges(self, user_name: str, login_privileges: Iterable[str] | str, *,
                             actor: str = "system") -> None:
        """SetUserLoginPrivileges: none, windows, web, outlook, windowsCmd, imap, api."""
        flags = _parse_flags(login_privileges, LOGIN_PRIVILEGES, "login privilege")
        self._set(user_name, "user.login_privileges", actor, login_privileges=json.dumps(flags))

    def set_privileges(self, user_name: str, privileges: Iterable[str] | str, *,
                       actor: str = "system") -> None:
        """SetUserPrivileges. The last administrator keeps `admin`."""
        flags = _parse_flags(privileges, PRIVILEGES, "privilege")
        with self._write() as conn:
            row = self._require(conn, user_name)
            if "admin" not in flags and row.role != "administrator":
                self._keep_an_administrator(conn, row, "must keep the privilege 'admin'")
            self._update(conn, row, privileges=json.dumps(flags))
            self.master.audit(actor, "user.privileges", user=row.user_name,
                              old=row.privileges, new=flags)

    def set_role(self, user_name: str, role: str | None, *, actor: str = "system") -> None:
        """The management role (administrator, operator, developer), or None."""
        chosen = _role(role)
        with self._write() as conn:
            row = self._require(conn, user_name)
            if chosen != "administrator" and "admin" not in row.privileges:
                self._keep_an_administrator(conn, row, "must keep the role 'administrator'")
            self._update(conn, row, role=chosen)
            self.master.audit(actor, "user.role", user=row.user_name, old=row.role, new=chosen)

    def set_privileges_on_folder(self, user_name: str, folder: str,
                                 privileges: Iterable[str] | str, *,
                                 actor: str = "system") -> None:
        """SetUserPrivilegesOnFolder; "none" removes the user's rights on that folder."""
        path = _folder(folder)
        flags = _parse_flags(privileges, FOLDER_PRIVILEGES, "folder privilege")
        with self._write() as conn:
            row = self._require(conn, user_name)
            conn.execute("DELETE FROM user_folder_privileges WHERE user_id = ? AND folder = ?",
                         (row.id, path))
            if flags:
                conn.execute("INSERT INTO user_folder_privileges VALUES (?, ?, ?)",
                             (row.id, path, json.dumps(flags)))
            self.master.audit(actor, "user.folder_privileges", user=row.user_name,
                              folder=path, privileges=_shown(flags))

    def clear_privileges_on_folders(self, user_name: str, *, actor: str = "system") -> None:
        with self._write() as conn:
            row = self._require(conn, user_name)
            conn.execute("DELETE FROM user_folder_privileges WHERE user_id = ?", (row.id,))
            self.master.audit(actor, "user.folder_privileges_clear", user=row.user_name)

    # -- credentials ----------------------------------------------------------------------

    def _dummy(self) -> str:
        """A hash of nothing, verified against for accounts without one (made once; a race
        only makes it twice)."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    def verify_password(self, user_name: str, password: str) -> bool:
        """Whether the password is the account's. Unknown accounts, accounts without a
        password and directory accounts cost one hash too, so timing tells nothing."""
        if not password or len(password) > MAX_PASSWORD_CHARS or not _encodable(password):
            return False
        with self._lock:
            found = self.master.conn.execute(
                "SELECT id, password_hash FROM users WHERE name_key = ? "
                "AND authentication = 'integrated'", (name_key(user_name),)).fetchone()
        stored = found[1] if found and found[1] else None
        try:
            self.hasher.verify(stored or self._dummy(), password)
        except (VerificationError, InvalidHashError):
            return False
        if stored is None:
            return False
        if self.hasher.check_needs_rehash(stored):
            rehashed = self.hasher.hash(password)
            with self._lock:  # same password, new parameters: the generation stays
                self.master.conn.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                    (rehashed, found[0], stored))
        return True

    def has_initial_password(self, user_name: str) -> bool:
        """Whether the account's password is still "admin" (False for unknown accounts)."""
        with self._lock:
            row = self.master.conn.execute(
                "SELECT initial_password FROM users WHERE name_key = ?",
                (name_key(user_name),)).fetchone()
        return bool(row and row[0])

    def any_initial_password(self) -> bool:
        """Whether some administrator still has the password "admin" (the API then answers
        loopback clients only)."""
        with self._lock:
            rows = self.master.conn.execute(
                "SELECT user_name FROM users WHERE initial_password = 1").fetchall()
        return any(self.is_administrator(r[0]) for r in rows)

    def password_generation(self, user_name: str) -> int:
        """A number that changes with every password (or authentication) change."""
        with self._lock:
            row = self.master.conn.execute(
                "SELECT password_generation FROM users WHERE name_key = ?",
                (name_key(user_name),)).fetchone()
        if row is None:
            raise NotFound(f"User '{user_name}' does not exist.")
        generation: int = row[0]
        return generation

    def effective_role(self, user_name: str) -> str | None:
        """The management-console role: the account's role, or administrator for an account
        with the admin privilege; None for an unknown account or one without a role."""
        with self._lock:
            row = self._find(self.master.conn, user_name)
        if row is None:
            return None
        if row.role is not None:
            return row.role
        return "administrator" if "admin" in row.privileges else None

    def is_administrator(self, user_name: str) -> bool:
        """Privilege `admin` or role `administrator` (False for unknown accounts)."""
        with self._lock:
            row = self._find(self.master.conn, user_name)
        return row is not None and row.is_administrator


_JSON_COLUMNS = ("privileges", "login_privileges", "email_addresses", "pop3_user_names")
