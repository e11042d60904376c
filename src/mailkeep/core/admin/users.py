"""Accounts in the master database: names, passwords (Argon2id), roles, privileges, folder rights.

The functions layer projects these methods onto CreateUser, GetUserInfo, ...; `auth.py` checks
credentials against them. The rows are core.masterdb's (accounts); the rules are here. Changes
are audited by the one invoke path (functions/invoke.py), which calls these methods.
"""

from __future__ import annotations

import builtins
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailkeep.core.errors import Conflict, InvalidArgument, NotFound
from mailkeep.core.masterdb import AccountRow, MasterDB

PRIVILEGES = ("admin", "login", "changePassword", "archive", "modifyArchiveProfiles", "export",
              "modifyExportProfiles", "delete", "auditor")
# auditor (mailkeep's): may search and read every archive (while the compliance configuration's
# archiveAccess.auditors is on), every read audited; never together with admin or a role.
AUDITOR_ALONE = ("An auditor reads and changes nothing: the privilege 'auditor' does not go "
                 "with 'admin', 'archive', 'delete' or a console role.")
NOT_FOR_AUDITORS = ("admin", "archive", "delete", "modifyArchiveProfiles",
                    "modifyExportProfiles")
FOLDER_PRIVILEGES = ("read", "write", "delete")
LOGIN_PRIVILEGES = ("windows", "web", "outlook", "windowsCmd", "imap", "api")
ROLES = ("administrator", "developer", "operator")  # the management-console roles
AUTHENTICATIONS = ("integrated", "directoryServices")
INITIAL_ADMIN = "admin"
INITIAL_PASSWORD = "admin"
MAX_PASSWORD_CHARS = 4096  # Argon2 takes any length; this only bounds work per request

# No "/" (the user name is the top folder of the user's archive) and no ":" (RFC 7617: the
# Basic user-id cannot hold one), no control characters.
NAME_RE = re.compile(r"[^/\\:\x00-\x1f\x7f]{1,100}")
TEXT_RE = re.compile(r"[^\x00-\x1f\x7f]*")
EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")

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

    All validation happens before any write; a failed call changes nothing. Writes that read
    and then change (the last administrator, a rename) run in one transaction.
    """

    def __init__(self, master: MasterDB, *, hasher: PasswordHasher | None = None) -> None:
        self.master = master
        self.rows = master.accounts
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    # -- plumbing -------------------------------------------------------------------------

    def _require(self, user_name: str) -> AccountRow:
        row = self.rows.find(name_key(user_name))
        if row is None:
            raise NotFound(f"User '{user_name}' does not exist.")
        return row

    def _keep_an_administrator(self, row: AccountRow, what: str) -> None:
        if row.is_administrator and not self.rows.other_administrators(row.id):
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
        if self.rows.any():
            return False
        secret = self._hashed(INITIAL_PASSWORD)
        with self.master.tx():
            if self.rows.any():
                return False
            self._insert(INITIAL_ADMIN, ["admin", "login"], "administrator",
                         authentication="integrated", secret=secret,
                         login_privileges=list(LOGIN_PRIVILEGES))
            # Not a call of anyone's: the server made it, and says so.
            self.master.audit.write("system", "user.create", user=INITIAL_ADMIN,
                                    privileges=["admin", "login"], role="administrator",
                                    initial=True)
        return True

    def create(self, user_name: str, privileges: Iterable[str] | str,
               full_name: str | None = None, distinguished_name: str | None = None,
               authentication: str | None = "integrated", password: str | None = None, *,
               login_privileges: Iterable[str] | str | None = None,
               role: str | None = None) -> None:
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
        if "auditor" in flags and (chosen_role or set(flags) & set(NOT_FOR_AUDITORS)):
            raise InvalidArgument(AUDITOR_ALONE)
        if password is not None:
            _password(password)
        if self.exists(user_name):  # before spending a hash on it
            raise Conflict(f"User '{user_name}' already exists.")
        secret = self._hashed(password)  # outside the transaction: other callers need not wait
        with self.master.tx():
            if self.rows.find(name_key(user_name)):
                raise Conflict(f"User '{user_name}' already exists.")
            self._insert(user_name, flags, chosen_role, full_name=full,
                         distinguished_name=dn, authentication=auth, secret=secret,
                         login_privileges=logins)

    def _insert(self, user_name: str, privileges: list[str], role: str | None, *,
                authentication: str, secret: dict[str, Any], login_privileges: list[str],
                full_name: str | None = None, distinguished_name: str | None = None) -> None:
        columns: dict[str, Any] = {
            "user_name": user_name, "name_key": name_key(user_name), "full_name": full_name,
            "distinguished_name": distinguished_name, "authentication": authentication,
            "role": role, "privileges": privileges, "login_privileges": login_privileges,
            "email_addresses": [], "pop3_user_names": [], **secret}
        if secret:
            columns["password_generation"] = self.rows.next_generation()
        self.rows.insert(columns)

    def delete(self, user_name: str) -> None:
        """DeleteUser. The archive folder of the user stays; its folder rights go."""
        with self.master.tx():
            row = self._require(user_name)
            self._keep_an_administrator(row, "cannot be deleted")
            self.rows.delete(row.id)

    def rename(self, old_user_name: str, new_user_name: str) -> None:
        """RenameUser. Folder rights (of every account) on the user's archive follow the new
        name; renaming the archive folder itself in the stores is the caller's job."""
        _check_user_name(new_user_name)
        with self.master.tx():
            row = self._require(old_user_name)
            other = self.rows.find(name_key(new_user_name))
            if other is not None and other.id != row.id:
                raise Conflict(f"User '{new_user_name}' already exists.")
            self.rows.update(row.id, user_name=new_user_name, name_key=name_key(new_user_name))
            for account_id, folder in self.rows.all_folder_privileges():
                if _under(folder, row.user_name):
                    renamed = new_user_name + folder[len(folder.split("/", 1)[0]):]
                    self.rows.move_folder_privilege(account_id, folder, renamed)

    def get(self, user_name: str) -> dict[str, Any]:
        """GetUserInfo, plus `loginPrivileges` and `role`."""
        row = self._require(user_name)
        folders = self.rows.folder_privileges(row.id)
        return {
            "userName": row.user_name, "fullName": row.full_name,
            "distinguishedName": row.distinguished_name, "authentication": row.authentication,
            "emailAddresses": row.email_addresses, "pop3UserNames": row.pop3_user_names,
            "privileges": _shown(row.privileges),
            "privilegesOnFolders": [{"folder": folder, "privileges": flags}
                                    for folder, flags in folders],
            "loginPrivileges": _shown(row.login_privileges), "role": row.role}

    def list(self) -> list[dict[str, Any]]:
        """GetUsers, sorted by user name."""
        return [{"userName": name, "fullName": full, "distinguishedName": dn}
                for name, full, dn in self.rows.names()]

    def exists(self, user_name: str) -> bool:
        return self.rows.find(name_key(user_name)) is not None

    def account(self, user_name: str) -> AccountRow | None:
        return self.rows.find(name_key(user_name))

    # -- settings of one account ----------------------------------------------------------

    def _set(self, user_name: str, **columns: Any) -> AccountRow:
        """Change columns of an account; the row as it was before."""
        with self.master.tx():
            row = self._require(user_name)
            self.rows.update(row.id, **columns)
        return row

    def set_password(self, user_name: str, password: str) -> None:
        """SetUserPassword. The only rule is the original's: not empty (and a length cap)."""
        _password(password)
        if not self.exists(user_name):  # before spending a hash on it
            raise NotFound(f"User '{user_name}' does not exist.")
        secret = self._hashed(password)  # outside the transaction: other callers need not wait
        with self.master.tx():
            row = self._require(user_name)
            self.rows.update(row.id, **secret, password_generation=self.rows.next_generation())

    def set_full_name(self, user_name: str, full_name: str | None) -> None:
        self._set(user_name, full_name=_optional_text(full_name, "full name", 256))

    def set_distinguished_name(self, user_name: str, distinguished_name: str | None) -> None:
        self._set(user_name, distinguished_name=_optional_text(
            distinguished_name, "distinguished name", 1024))

    def set_authentication(self, user_name: str, authentication: str) -> None:
        """SetUserAuthentication. Changes the password generation: cached logins end."""
        auth = _authentication(authentication)
        with self.master.tx():
            row = self._require(user_name)
            self.rows.update(row.id, authentication=auth,
                             password_generation=self.rows.next_generation())

    def set_email_addresses(self, user_name: str,
                            email_addresses: Iterable[str] | str | None) -> None:
        self._set(user_name, email_addresses=_email_addresses(email_addresses))

    def set_pop3_user_names(self, user_name: str,
                            pop3_user_names: Iterable[str] | str | None) -> None:
        self._set(user_name, pop3_user_names=_pop3_user_names(pop3_user_names))

    def set_login_privileges(self, user_name: str, login_privileges: Iterable[str] | str
                             ) -> builtins.list[str]:
        """SetUserLoginPrivileges: none, windows, web, outlook, windowsCmd, imap, api. Returns
        the ones the account had."""
        flags = _parse_flags(login_privileges, LOGIN_PRIVILEGES, "login privilege")
        return self._set(user_name, login_privileges=flags).login_privileges

    def set_privileges(self, user_name: str, privileges: Iterable[str] | str
                       ) -> builtins.list[str]:
        """SetUserPrivileges. The last administrator keeps `admin` and `login`. Returns the
        privileges the account had."""
        flags = _parse_flags(privileges, PRIVILEGES, "privilege")
        with self.master.tx():
            row = self._require(user_name)
            if "auditor" in flags and (row.role or set(flags) & set(NOT_FOR_AUDITORS)):
                raise InvalidArgument(AUDITOR_ALONE)
            if "admin" not in flags and row.role != "administrator":
                self._keep_an_administrator(row, "must keep the privilege 'admin'")
            if "login" not in flags:
                self._keep_an_administrator(row, "must keep the privilege 'login'")
            self.rows.update(row.id, privileges=flags)
        return row.privileges

    def set_role(self, user_name: str, role: str | None) -> str | None:
        """The management role (administrator, operator, developer), or None. Returns the
        role the account had."""
        chosen = _role(role)
        with self.master.tx():
            row = self._require(user_name)
            if chosen is not None and "auditor" in row.privileges:
                raise InvalidArgument(AUDITOR_ALONE)
            if chosen != "administrator" and "admin" not in row.privileges:
                self._keep_an_administrator(row, "must keep the role 'administrator'")
            # a role overrides the admin privilege in the console: the last account that
            # administers there keeps doing so
            console_admin = row.role == "administrator" or (row.role is None
                                                            and "admin" in row.privileges)
            if (chosen not in (None, "administrator") and console_admin
                    and not self.rows.other_console_administrators(row.id)):
                raise Conflict(f"User '{row.user_name}' is the last administrator of the "
                               f"console and cannot take the role '{chosen}'.")
            self.rows.update(row.id, role=chosen)
        return row.role

    def set_privileges_on_folder(self, user_name: str, folder: str,
                                 privileges: Iterable[str] | str) -> None:
        """SetUserPrivilegesOnFolder; "none" removes the user's rights on that folder."""
        path = _folder(folder)
        flags = _parse_flags(privileges, FOLDER_PRIVILEGES, "folder privilege")
        with self.master.tx():
            row = self._require(user_name)
            self.rows.set_folder_privileges(row.id, path, flags)

    def clear_privileges_on_folders(self, user_name: str) -> None:
        with self.master.tx():
            row = self._require(user_name)
            self.rows.clear_folder_privileges(row.id)

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
        found = self.rows.password_hash(name_key(user_name))
        stored = found[1] if found and found[1] else None
        try:
            self.hasher.verify(stored or self._dummy(), password)
        except (VerificationError, InvalidHashError):
            return False
        if stored is None or found is None:
            return False
        if self.hasher.check_needs_rehash(stored):
            self.rows.rehash(found[0], stored, self.hasher.hash(password))
        return True

    def has_initial_password(self, user_name: str) -> bool:
        """Whether the account's password is still "admin" (False for unknown accounts)."""
        return self.rows.has_initial_password(name_key(user_name))

    def any_initial_password(self) -> bool:
        """Whether some administrator still has the password "admin" (the API then answers
        loopback clients only)."""
        return any(self.is_administrator(name) for name in self.rows.with_initial_password())

    def new_generation(self, user_name: str) -> None:
        """Make logins verified before now (the authenticator's cache) be verified again: the
        way an account logs in changed (MFA, app passwords)."""
        row = self._require(user_name)
        self.rows.update(row.id, password_generation=self.rows.next_generation())

    def password_generation(self, user_name: str) -> int:
        """A number that changes with every password (or authentication) change."""
        generation = self.rows.generation(name_key(user_name))
        if generation is None:
            raise NotFound(f"User '{user_name}' does not exist.")
        return generation

    def effective_role(self, user_name: str) -> str | None:
        """The management-console role: the account's role, or administrator for an account
        with the admin privilege; None for an unknown account or one without a role."""
        row = self.rows.find(name_key(user_name))
        if row is None:
            return None
        if row.role is not None:
            return row.role
        return "administrator" if "admin" in row.privileges else None

    def login_refusal(self, user_name: str, way: str) -> str | None:
        """Why the account may not log in `way` ("api", "web" or "smtp") now; None: it may.
        Every way needs the privilege `login`; the Administration API and the console also
        the login privilege of their name (SMTP AUTH has none of its own). Read at every
        request: a privilege taken away counts at once."""
        row = self.rows.find(name_key(user_name))
        if row is None:
            return f"User {user_name} does not exist."
        return self.refusal_for(row, way)

    def refusal_for(self, row: AccountRow, way: str) -> str | None:
        """login_refusal of an account row just read."""
        if "login" not in row.privileges:
            return f"User {row.user_name} may not log in (it lacks the privilege login)."
        if row.authentication == "directoryServices":
            directory = self.master.directory.get(row.id)
            if directory is not None and (directory.disabled or directory.missing):
                return (f"User {row.user_name} is "
                        + ("disabled in" if directory.disabled else "no longer in")
                        + " the directory.")
        if way in ("api", "web") and way not in row.login_privileges:
            what = "the Administration API" if way == "api" else "the management console"
            return (f"User {row.user_name} may not log in to {what} (its login privileges "
                    f"lack {way}).")
        return None

    def is_administrator(self, user_name: str) -> bool:
        """Privilege `admin` or role `administrator` (False for unknown accounts)."""
        row = self.rows.find(name_key(user_name))
        return row is not None and row.is_administrator
