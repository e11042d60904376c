"""Directory services: accounts from LDAP or Active Directory.

- The configuration (`conf/directory.json`, the owner's alone) names the server, its TLS (LDAPS
  or StartTLS, certificates checked against the system's CAs and an optional caFile), a bind
  account whose password is sealed under the master key like every other secret, the base DN,
  the filter that finds users, an optional group whose members (also through nested groups)
  are the ones synced, and the attributes that give the login name, the full name and the
  email addresses (`mail`, and Active Directory's `proxyAddresses`: "SMTP:" the primary,
  "smtp:" the others, any other kind ignored).
- A sync creates the accounts it finds (authentication directoryServices, with the configured
  privileges), updates their full name, DN and addresses (so that the journal receiver routes
  by them), marks those the directory disables (Active Directory's userAccountControl bit 2)
  and, if asked, those gone from it: such accounts log in nowhere until a sync finds them
  enabled again. It never deletes an account or its archive, and never takes over a local
  (integrated) account of the same name.
- A directory account logs in with its directory password: a bind as its own DN, over the
  configured TLS. Nothing of the password is kept.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldap3 import BASE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn

from mailkeep.core.admin.secrets import open_text, seal_text, secret_key, secret_keys
from mailkeep.core.admin.sessions import Sessions
from mailkeep.core.admin.users import EMAIL_RE, Users, name_key
from mailkeep.core.confdocs import ConfDocument, one_change_at_a_time
from mailkeep.core.errors import InvalidArgument, MailkeepError
from mailkeep.core.fields import Field, FieldError, is_loopback
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.tls import check_ca_file

log = logging.getLogger(__name__)

FILE = "directory.json"
PURPOSE = "directory bind password"
AAD = "directory bind password"
DIRECTORY = "directoryServices"
MAX_ENTRIES = 200_000  # what one sync reads at most
MAX_GROUPS = 10_000  # groups followed when resolving nested membership
MAX_VALUES = 1_000  # values of one attribute taken from one entry
LOGIN_TIMEOUT_S = 10  # what a login's bind may take at most, whatever the timeout setting
TYPES = ("none", "ldap", "activeDirectory")
SECURITIES = ("ldaps", "starttls", "none")

DEFAULTS: dict[str, dict[str, Any]] = {
    "ldap": {"userFilter": "(objectClass=inetOrgPerson)", "loginAttribute": "uid",
             "fullNameAttribute": "cn"},
    "activeDirectory": {"userFilter": "(&(objectCategory=person)(objectClass=user))",
                        "loginAttribute": "sAMAccountName",
                        "fullNameAttribute": "displayName"},
}

FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("type", "string", choices=TYPES, default="none",
          description="none (no directory), ldap or activeDirectory."),
    Field("server", "string", True, "Host name or address of the directory server.",
          format="host"),
    Field("port", "int", True, "Port; default 636 for ldaps, else 389.", low=1, high=65535),
    Field("security", "string", choices=SECURITIES, default="ldaps",
          description="ldaps (TLS from the first byte), starttls, or none (a password would "
          "cross the network in clear: refused unless the server is this machine)."),
    Field("verifyCertificate", "bool", default=True,
          description="Check the server's certificate and name."),
    Field("caFile", "string", True, "PEM file of a private CA to trust (besides the system's).",
          format="absolute-path"),
    Field("timeout", "int", default=15, low=1, high=300,
          description="Seconds a connection, a bind or a search step may take."),
    Field("bindDn", "string", True, "The account mailkeep searches as (empty: anonymous).",
          max_length=1024),
    Field("bindPassword", "string", True, "Its password; write-only, stored sealed.",
          secret=True, max_length=1024),
    Field("baseDn", "string", True, "Where users are searched.", max_length=1024),
    Field("userFilter", "string", True, "LDAP filter of the user entries (default: by type).",
          max_length=4096),
    Field("groupDn", "string", True, "Only members of this group, also through nested groups "
          "(empty: every user the filter finds).", max_length=1024),
    Field("loginAttribute", "string", True, "Attribute holding the login name (default: uid, "
          "or sAMAccountName for Active Directory).", max_length=100),
    Field("fullNameAttribute", "string", True, "Attribute holding the full name.",
          max_length=100),
    Field("emailAttribute", "string", default="mail", description="Attribute holding email "
          "addresses.", max_length=100),
    Field("proxyAddressesAttribute", "string", default="proxyAddresses",
          description="Active Directory's list of addresses (SMTP: primary, smtp: others).",
          max_length=100),
    Field("privileges", "list", default=["login", "archive"], description="Privileges of the "
          "accounts a sync creates.", choices=("login", "archive", "changePassword", "export",
                                               "modifyArchiveProfiles", "modifyExportProfiles")),
    Field("disableMissing", "bool", default=False, description="Accounts gone from the "
          "directory may no longer log in (their archives stay)."),
)}
CONNECTION_KEYS = ("server", "port", "security", "verifyCertificate", "caFile", "bindDn")


@dataclass
class DirectoryUser:
    dn: str
    login: str
    full_name: str | None
    addresses: list[str]
    disabled: bool
    entry_id: str | None = None  # entryUUID or objectGUID: who the entry is, whatever its name


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unchanged: int = 0

    def shown(self, dry_run: bool) -> dict[str, Any]:
        return {"dryRun": dry_run, "created": self.created, "updated": self.updated,
                "disabled": self.disabled, "enabled": self.enabled, "missing": self.missing,
                "skipped": self.skipped, "unchanged": self.unchanged}


class DirectoryError(MailkeepError):
    """The directory could not be reached, or refused the bind account. The message names the
    step and the server's answer, never a password."""


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _values(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [] if value is None else [value]
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in items[:MAX_VALUES]]


def _dn_key(dn: str) -> str:
    """A DN compared as directories do: attribute names and values without regard to case,
    spaces around the separators ignored."""
    try:
        return ",".join(f"{a.lower()}={v.lower()}" for a, v, _sep in parse_dn(dn))
    except (LDAPException, ValueError, IndexError):
        return dn.strip().lower()


def addresses(mail: list[str], proxy: list[str]) -> list[str]:
    """The primary address first (proxyAddresses' "SMTP:", else the first mail), then the
    others; without duplicates (case-insensitive) and without what is not an address."""
    primary = [p[5:] for p in proxy if p.startswith("SMTP:")]
    others = [p[5:] for p in proxy if p.startswith("smtp:")]
    out: list[str] = []
    for address in [*primary, *mail, *others]:
        address = address.strip()
        if EMAIL_RE.fullmatch(address) and len(address) <= 254 \
                and address.lower() not in {a.lower() for a in out}:
            out.append(address)
    return out


class Directory:
    def __init__(self, master: MasterDB, data_dir: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.master = master
        self.data_dir = data_dir
        self.clock = clock
        self.doc = ConfDocument(data_dir, FILE, master)  # (in PostgreSQL: every server's)

    # -- configuration ------------------------------------------------------------------------
    def _load(self) -> tuple[dict[str, Any], str | None]:
        text = self.doc.read_text()
        try:
            stored = json.loads(text) if text is not None else {}
        except (ValueError, RecursionError):
            stored = None
        if not isinstance(stored, dict):
            raise MailkeepError(f"the directory service's settings ({FILE}) cannot be read: "
                                "set them again (SetDirectoryServicesConfiguration)")
        conf = {name: stored.get(name, f.default) for name, f in FIELDS.items()
                if name != "bindPassword"}
        return conf, stored.get("bindPassword")

    def config(self) -> dict[str, Any]:
        """As shown: every field, the bind password never (hasBindPassword says whether one is
        kept)."""
        conf, sealed = self._load()
        return {**self._effective(conf), "hasBindPassword": sealed is not None}

    @staticmethod
    def _effective(conf: dict[str, Any]) -> dict[str, Any]:
        out = dict(conf)
        for name, value in DEFAULTS.get(str(conf["type"]), {}).items():
            if not out.get(name):
                out[name] = value
        if out.get("port") is None and out["type"] != "none":
            out["port"] = 636 if out["security"] == "ldaps" else 389
        return out

    @one_change_at_a_time
    def configure(self, changes: Any) -> dict[str, Any]:
        """Change fields (the others keep their values); checked as a whole before it is
        saved. The bind password is asked for again when it would go to another server or
        account, or less protected."""
        if not isinstance(changes, dict):
            raise InvalidArgument("config: a JSON object of the fields to change is expected.")
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise InvalidArgument(f"config: unknown field(s) {', '.join(unknown)} (known: "
                                  f"{', '.join(FIELDS)}).")
        conf, sealed = self._load()
        before = self._effective(conf)
        password = None
        for name, value in changes.items():
            try:
                checked = FIELDS[name].take(value)
            except FieldError as exc:
                raise InvalidArgument(f"config: {exc.message}") from None
            if name == "bindPassword":
                password = checked
            else:
                conf[name] = checked
        after = self._effective(conf)
        if after.get("caFile") != before.get("caFile"):
            check_ca_file(after.get("caFile"))
        moved = any(after.get(k) != before.get(k) for k in ("type", *CONNECTION_KEYS))
        if sealed is not None and password is None and moved:
            raise InvalidArgument("config: give bindPassword again when type, server, port, "
                                  "security, verifyCertificate, caFile or bindDn changes.")
        if after["type"] != "none":
            for name in ("server", "baseDn"):
                if not after.get(name):
                    raise InvalidArgument(f"config: {name} is needed for a directory.")
            if after["security"] == "none" and not is_loopback(str(after["server"])):
                raise InvalidArgument("config: security none would send passwords in clear "
                                      "over the network: use ldaps or starttls (none only for "
                                      "a directory on this machine).")
        stored: dict[str, Any] = dict(conf)
        if password is not None:
            stored["bindPassword"] = (seal_text(secret_key(self.data_dir, PURPOSE), password,
                                                AAD) if password else None)
        elif sealed is not None:
            stored["bindPassword"] = sealed
        self.doc.write_json(stored)
        return self.config()

    @one_change_at_a_time
    def reseal(self) -> bool:
        """The bind password sealed under the current master key (RenewMasterKey)."""
        conf, sealed = self._load()
        if not sealed:
            return False
        stored: dict[str, Any] = dict(conf)
        text = open_text(secret_keys(self.data_dir, PURPOSE), sealed, AAD)
        stored["bindPassword"] = seal_text(secret_key(self.data_dir, PURPOSE), text, AAD)
        self.doc.write_json(stored)
        return True

    # -- the server -----------------------------------------------------------------------------
    def _server(self, conf: dict[str, Any]) -> Server:
        verify = bool(conf["verifyCertificate"])
        tls = Tls(validate=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE,
                  ca_certs_file=conf.get("caFile"))
        return Server(str(conf["server"]), port=int(conf["port"]),
                      use_ssl=conf["security"] == "ldaps", tls=tls,
                      connect_timeout=int(conf["timeout"]), get_info="NO_INFO")

    def _connect(self, conf: dict[str, Any], dn: str | None, password: str | None,
                 step: str) -> Connection:
        """A bound connection; DirectoryError (bind account) or None-like failure."""
        conn = Connection(self._server(conf), user=dn or None, password=password or None,
                          receive_timeout=int(conf["timeout"]), read_only=True,
                          raise_exceptions=False, auto_bind="NONE")
        try:
            conn.open()
            if conf["security"] == "starttls" and not conn.start_tls():
                raise DirectoryError(f"{step}: StartTLS failed: {_result(conn)}")
            if not conn.bind():
                raise DirectoryError(f"{step}: the bind was refused: {_result(conn)}")
        except LDAPException as exc:
            _close(conn)
            raise DirectoryError(f"{step}: {type(exc).__name__}: {exc}") from None
        except DirectoryError:
            _close(conn)
            raise
        return conn

    def _service(self) -> tuple[dict[str, Any], Connection]:
        conf, sealed = self._load()
        conf = self._effective(conf)
        if conf["type"] == "none":
            raise InvalidArgument("No directory is configured: SetDirectoryServicesConfiguration "
                                  "first.")
        password = open_text(secret_keys(self.data_dir, PURPOSE), sealed, AAD) if sealed else None
        return conf, self._connect(conf, conf.get("bindDn"), password,
                                   f"bind as {conf.get('bindDn') or 'anonymous'}")

    def users(self, log_line: Callable[[str], None] = log.info) -> list[DirectoryUser]:
        """The directory's users as the configuration selects them."""
        conf, conn = self._service()
        try:
            allowed = self._members(conn, conf) if conf.get("groupDn") else None
            return list(self._entries(conn, conf, allowed, log_line))
        finally:
            _close(conn)

    def _entries(self, conn: Connection, conf: dict[str, Any], allowed: set[str] | None,
                 log_line: Callable[[str], None]) -> Iterator[DirectoryUser]:
        login_attr, name_attr = conf["loginAttribute"], conf["fullNameAttribute"]
        attrs = [login_attr, name_attr, conf["emailAttribute"], "userAccountControl",
                 "entryUUID", "objectGUID"]
        if conf["type"] == "activeDirectory" or conf.get("proxyAddressesAttribute"):
            attrs.append(conf["proxyAddressesAttribute"])
        count = 0
        try:
            results = conn.extend.standard.paged_search(
                str(conf["baseDn"]), str(conf["userFilter"]), SUBTREE, attributes=attrs,
                paged_size=500, generator=True)
            for item in results:
                if item.get("type") != "searchResEntry":
                    continue
                count += 1
                if count > MAX_ENTRIES:
                    log_line(f"more than {MAX_ENTRIES} entries: the rest is not read")
                    break
                dn = str(item["dn"])
                if allowed is not None and _dn_key(dn) not in allowed:
                    continue
                raw = item.get("raw_attributes", {})
                got = {k.lower(): v for k, v in raw.items()}
                login = _first(got.get(login_attr.lower()))
                if not login:
                    log_line(f"{dn}: no {login_attr}: left out")
                    continue
                control = _first(got.get("useraccountcontrol"))
                disabled = bool(control and control.strip().isdigit() and int(control) & 2)
                yield DirectoryUser(
                    dn, login.strip(), _first(got.get(name_attr.lower())),
                    addresses(_values(got.get(conf["emailAttribute"].lower())),
                              _values(got.get(str(conf["proxyAddressesAttribute"]).lower()))),
                    disabled, _id_of(got))
        except LDAPException as exc:
            raise DirectoryError(f"search of {conf['baseDn']}: {type(exc).__name__}: {exc}"
                                 ) from None
        if conn.result and conn.result.get("result") not in (0, None):
            raise DirectoryError(f"search of {conf['baseDn']}: {_result(conn)}")

    def _members(self, conn: Connection, conf: dict[str, Any]) -> set[str]:
        """DN keys of every entry in the group, also through nested groups (cycles and
        repeats followed once)."""
        members: set[str] = set()
        todo, seen = [str(conf["groupDn"])], set()
        while todo:
            group = todo.pop()
            key = _dn_key(group)
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > MAX_GROUPS:
                raise DirectoryError(f"group {conf['groupDn']}: more than {MAX_GROUPS} groups "
                                     "nested in it")
            ok = conn.search(group, "(objectClass=*)", BASE,
                             attributes=["member", "uniqueMember", "objectClass"])
            if not ok:
                if group == conf["groupDn"]:
                    raise DirectoryError(f"group {group}: {_result(conn)}")
                members.add(key)  # a member that is no group we can read: a user, perhaps
                continue
            entry = conn.response[0].get("raw_attributes", {}) if conn.response else {}
            got = {k.lower(): v for k, v in entry.items()}
            classes = {c.lower() for c in _values(got.get("objectclass"))}
            if not classes & {"groupofnames", "groupofuniquenames", "group"}:
                members.add(key)
                continue
            for dn in _values(got.get("member")) + _values(got.get("uniquemember")):
                todo.append(dn.split("#", 1)[0] if "#" in dn else dn)
        return members

    # -- sync -------------------------------------------------------------------------------------
    def sync(self, dry_run: bool = False,
             log_line: Callable[[str], None] = log.info) -> SyncReport:
        """One pass over the directory. An entry that cannot be taken as it is (a name the
        archive does not allow, a login two entries claim, a login that now names another
        entry than the account's) is left out and logged; the others, and the marking of
        accounts gone from the directory, go on."""
        conf, _sealed = self._load()
        conf = self._effective(conf)
        found = self.users(log_line)
        report = SyncReport()
        now = self.clock()
        seen_ids: set[int] = set()
        by_login: dict[str, list[DirectoryUser]] = {}
        for entry in found:
            by_login.setdefault(name_key(entry.login), []).append(entry)
        for entries in by_login.values():
            if len(entries) > 1:
                log_line(f"login {entries[0].login!r} is claimed by {len(entries)} entries "
                         f"({'; '.join(e.dn for e in entries)}): left out")
                report.skipped.append(entries[0].login)
                continue
            entry = entries[0]
            try:
                account_id = self._take(entry, conf, dry_run, report, log_line, now)
            except MailkeepError as exc:
                log_line(f"{entry.dn}: left out: {exc.message}")
                report.skipped.append(entry.login)
                continue
            if account_id is not None:
                seen_ids.add(account_id)
        for row in self.master.directory.all():
            if row.user_id in seen_ids or row.missing:
                continue
            name = self._name_of(row.user_id)
            if name is None or name_key(name) in by_login:
                continue
            log_line(f"{name}: gone from the directory"
                     + ("; may not log in" if conf["disableMissing"] else ""))
            if conf["disableMissing"]:
                report.missing.append(name)
                if not dry_run:
                    self.master.directory.set_missing(row.user_id, now)
                    Sessions(self.master).end_user(name)
        return report

    def _take(self, entry: DirectoryUser, conf: dict[str, Any], dry_run: bool,
              report: SyncReport, log_line: Callable[[str], None], now: float) -> int | None:
        """Create or update the account of one entry; its id (None: none, or a dry run)."""
        users = Users(self.master)
        account = users.account(entry.login)
        if account is not None and account.authentication != DIRECTORY:
            log_line(f"{entry.login}: a local account of that name exists: not taken over")
            report.skipped.append(entry.login)
            return None
        if entry.entry_id is not None:
            other = self.master.directory.by_entry(entry.entry_id)
            if other is not None and (account is None or other.user_id != account.id):
                log_line(f"{entry.dn}: its entry belongs to the account "
                         f"{self._name_of(other.user_id)!r} (renamed in the directory?): left "
                         "out; rename that account to follow it")
                report.skipped.append(entry.login)
                return None
        if account is None:
            report.created.append(entry.login)
            log_line(f"{entry.login}: created ({entry.dn})")
            if entry.disabled:
                report.disabled.append(entry.login)
            if dry_run:
                return None
            with self.master.tx():
                users.create(entry.login, conf["privileges"], full_name=entry.full_name,
                             distinguished_name=entry.dn, authentication=DIRECTORY)
                users.set_email_addresses(entry.login, entry.addresses)
                created = users.account(entry.login)
                assert created is not None
                self.master.directory.put(created.id, entry.dn, entry.entry_id,
                                          entry.disabled, now)
            return created.id
        before = self.master.directory.get(account.id)
        if before is not None and before.entry_id and entry.entry_id \
                and before.entry_id != entry.entry_id:
            # The login was given to someone else: the new person does not inherit the old
            # one's account, rights and archive.
            log_line(f"{entry.login}: now names another directory entry ({entry.dn}) than the "
                     "account's: left out (delete or rename the old account to let it in)")
            report.skipped.append(entry.login)
            return account.id
        changed = (account.full_name != entry.full_name
                   or account.distinguished_name != entry.dn
                   or account.email_addresses != entry.addresses)
        was_off = before is not None and (before.disabled or before.missing)
        if changed:
            report.updated.append(entry.login)
            log_line(f"{entry.login}: updated")
        if entry.disabled and not was_off:
            report.disabled.append(entry.login)
            log_line(f"{entry.login}: disabled in the directory: may not log in")
        elif was_off and not entry.disabled:
            report.enabled.append(entry.login)
            log_line(f"{entry.login}: enabled again")
        if not changed and entry.disabled == was_off:
            report.unchanged += 1
        if dry_run:
            return account.id
        with self.master.tx():
            if changed:
                users.set_full_name(entry.login, entry.full_name)
                users.set_distinguished_name(entry.login, entry.dn)
                users.set_email_addresses(entry.login, entry.addresses)
            self.master.directory.put(account.id, entry.dn, entry.entry_id, entry.disabled,
                                      now)
        if entry.disabled and not was_off:
            Sessions(self.master).end_user(account.user_name)
        return account.id

    def _name_of(self, user_id: int) -> str | None:
        return self.master.accounts.name_of(user_id)

    # -- logins -------------------------------------------------------------------------------
    def bind(self, user_name: str, password: str) -> bool:
        """Whether the directory takes the password of this directory account (a bind as its
        DN). False when it is unknown, has no DN, or the directory cannot be reached."""
        users = Users(self.master)
        account = users.account(user_name)
        if account is None or account.authentication != DIRECTORY or not password:
            return False
        dn = account.distinguished_name
        if not dn:
            return False
        conf, _sealed = self._load()
        conf = self._effective(conf)
        if conf["type"] == "none":
            return False
        conf["timeout"] = min(int(conf["timeout"]), LOGIN_TIMEOUT_S)  # a login waits no longer
        try:
            conn = self._connect(conf, dn, password, f"bind as {dn}")
        except DirectoryError as exc:
            log.info("directory login of %r refused: %s", user_name, exc.message)
            return False
        try:
            known = self.master.directory.get(account.id)
            if known is not None and known.entry_id and _entry_id(conn, dn) != known.entry_id:
                # The DN now names another entry (the login given to someone new): its
                # password is not this account's.
                log.warning("directory login of %r refused: %s is no longer the entry the "
                            "account was made from", user_name, dn)
                return False
            return True
        finally:
            _close(conn)



def _id_of(got: dict[str, Any]) -> str | None:
    """entryUUID, or objectGUID as hex, of an entry's raw attributes (names lower-case)."""
    guid = got.get("objectguid")
    raw_guid = guid[0] if isinstance(guid, list) and guid else guid
    return _first(got.get("entryuuid")) or (
        raw_guid.hex() if isinstance(raw_guid, bytes) and raw_guid else None)


def _entry_id(conn: Connection, dn: str) -> str | None:
    """entryUUID (or objectGUID, as hex) of the entry at dn, as the bound user reads it."""
    try:
        if not conn.search(dn, "(objectClass=*)", BASE, attributes=["entryUUID", "objectGUID"]):
            return None
    except LDAPException:
        return None
    raw = conn.response[0].get("raw_attributes", {}) if conn.response else {}
    return _id_of({k.lower(): v for k, v in raw.items()})


def _close(conn: Connection) -> None:
    try:
        conn.unbind()
    except LDAPException:
        pass  # a failed StartTLS closed the socket already


def _result(conn: Connection) -> str:
    result = conn.result or {}
    return f"{result.get('description', 'error')} {result.get('message', '')}".strip()
