"""A private OpenLDAP server (slapd) on free 127.0.0.1 ports for the directory services tests:
plain LDAP with StartTLS on `ldap_port`, LDAPS on `ldaps_port`, a certificate from a CA of its
own, and a small tree shaped like what a sync meets in Active Directory (sAMAccountName,
proxyAddresses, userAccountControl, nested groups, non-ASCII names, a disabled account).

slapd runs in the foreground as a child of the test process, so it is stopped by PID. The
tree is loaded, and later changed, through real LDAP operations as the rootdn with OpenLDAP's
own tools (ldapadd, ldapmodify, ldapdelete), not with the client library under test: a
mistake of that library cannot cancel itself out. `users` and `groups` always describe the
tree as it is now, so a test compares what a sync found with them."""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import trustme

from tests.helpers import free_port, stop_process

BASE_DN = "dc=example,dc=org"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
SERVICES_DN = f"ou=services,{BASE_DN}"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "Root-pw-9b31"
BIND_DN = f"cn=mailkeep,{SERVICES_DN}"  # the service account a sync binds as
BIND_PASSWORD = "Svc-bind-pw-4d2a"
ENABLED, DISABLED = 512, 514  # userAccountControl: NORMAL_ACCOUNT, plus ACCOUNTDISABLE (0x2)

# Debian's slapd package puts its schema files and modules here.
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

# The attributes AD has and OpenLDAP lacks (the real AD OIDs; the class has a private
# UUID-based OID). proxyAddresses matches case-insensitively, as in AD.
ADLIKE_SCHEMA = """\
dn: cn=adlike,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: adlike
olcAttributeTypes: ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
olcAttributeTypes: ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
olcAttributeTypes: ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  DESC 'AD account flags; bit 0x2 = ACCOUNTDISABLE'
  EQUALITY integerMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
olcObjectClasses: ( 2.25.95671234333316814254377818585887846826.2.1
  NAME 'adLikeMailRecipient'
  DESC 'Auxiliary: AD-like mail attributes for users and groups'
  SUP top AUXILIARY
  MAY ( mail $ proxyAddresses $ sAMAccountName $ userAccountControl ) )
"""

# cn=config, loaded with slapadd -n0. Anonymous clients may only bind (no search of the tree,
# as in AD); any bound account reads everything but passwords. The memberof overlay keeps an
# AD-like memberOf (direct groups only) and drops a deleted entry from its groups' `member`.
CONFIG = """\
dn: cn=config
objectClass: olcGlobal
cn: config
olcTLSCACertificateFile: {dir}/ca.pem
olcTLSCertificateFile: {dir}/server.pem
olcTLSCertificateKeyFile: {dir}/server.key

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {modules}
olcModuleLoad: back_mdb
olcModuleLoad: memberof

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://{schema}/core.ldif
include: file://{schema}/cosine.ldif
include: file://{schema}/inetorgperson.ldif
include: file://{dir}/adlike.ldif

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: unlimited

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {base}
olcRootDN: {root_dn}
olcRootPW: {root_pw}
olcDbDirectory: {dir}/data
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: uid,sAMAccountName,mail,proxyAddresses,cn eq,sub
olcDbIndex: member,memberOf eq
olcAccess: to attrs=userPassword by self write by anonymous auth by * none
olcAccess: to * by users read by * none

dn: olcOverlay={{0}}memberof,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {{0}}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf
"""


@dataclass(frozen=True)
class User:
    """A person of the directory as a sync and a login must see it. `addresses` has the primary
    address first (proxyAddresses' "SMTP:" value, or `mail` for a user without
    proxyAddresses), then the aliases ("smtp:" values) in no significant order; non-SMTP
    proxyAddresses (X500:, X400:, SIP:) are never addresses. `groups` are the names (cn) of
    the groups listing the user as a member, `all_groups` adds those reached through nesting."""

    login: str  # uid, and the same sAMAccountName
    password: str
    dn: str
    full_name: str  # cn and displayName
    addresses: tuple[str, ...]
    groups: frozenset[str]
    all_groups: frozenset[str]
    disabled: bool  # userAccountControl has bit 0x2 (ACCOUNTDISABLE); the LDAP bind works

    @property
    def primary(self) -> str:
        return self.addresses[0]

    @property
    def aliases(self) -> frozenset[str]:
        return frozenset(self.addresses[1:])

    @property
    def user_account_control(self) -> int:
        return DISABLED if self.disabled else ENABLED


@dataclass(frozen=True)
class Group:
    """A groupOfNames under ou=groups: `members` are the DNs it lists (people and groups);
    `address` is its own mail (and proxyAddresses "SMTP:") if it has one: it is no user."""

    name: str
    dn: str
    members: tuple[str, ...]
    address: str | None = None


@dataclass
class _Person:
    """What the peer wrote for a person (the source of both the entry and its `User`)."""

    login: str
    password: str
    dn: str
    full_name: str
    given_name: str
    surname: str
    primary: str
    aliases: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)  # non-SMTP proxyAddresses
    proxy: bool = True  # False: `mail` only, no proxyAddresses at all
    disabled: bool = False

    def proxy_addresses(self) -> list[str]:
        return [f"SMTP:{self.primary}", *(f"smtp:{a}" for a in self.aliases), *self.others]

    def attributes(self) -> dict[str, list[str]]:
        attrs = {
            "objectClass": ["inetOrgPerson", "adLikeMailRecipient"],
            "uid": [self.login],
            "sAMAccountName": [self.login],
            "cn": [self.full_name],
            "displayName": [self.full_name],
            "givenName": [self.given_name],
            "sn": [self.surname],
            "mail": [self.primary],
            "userAccountControl": [str(DISABLED if self.disabled else ENABLED)],
            "userPassword": [ssha(self.password)],
        }
        if self.proxy:
            attrs["proxyAddresses"] = self.proxy_addresses()
        return attrs


def _escape_rdn(value: str) -> str:
    """An attribute value as it goes into a DN (RFC 4514)."""
    out = "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
    if out[:1] in ("#", " "):
        out = "\\" + out
    return out[:-1] + "\\ " if len(value) > 1 and value.endswith(" ") else out


def _person_dn(rdn: str) -> str:
    return f"{rdn},{PEOPLE_DN}"


def _group_dn(name: str) -> str:
    return f"cn={name},{GROUPS_DN}"


# The loaded tree. archive-users lists Zoë, Ola and the group sales; sales lists Jürgen and
# 李雷 (whose DN is by cn, as in AD, not by login); Pat is in no group and has `mail` only.
PEOPLE = (
    _Person("zoë", "Zoë-pässwörd-1", _person_dn("uid=zoë"), "Zoë Ångström", "Zoë", "Ångström",
            "zoe.angstrom@example.org", ["zoe@example.org", "z.angstrom@example.org"],
            ["X500:/o=Example/ou=Exchange Administrative Group/cn=Recipients/cn=zoe"]),
    _Person("jmueller", "Jm-Passw0rd-7", _person_dn("uid=jmueller"), "Jürgen Müller", "Jürgen",
            "Müller", "juergen.mueller@example.org", ["j.mueller@example.org"],
            ["SIP:juergen.mueller@example.org", "x500:/o=Example/cn=Recipients/cn=jmueller"]),
    _Person("lilei", "Ll-Passw0rd-3", _person_dn("cn=李雷"), "李雷", "雷", "李",
            "li.lei@example.org", ["lilei@example.org"],
            ["X400:c=US;a= ;p=Example;o=Mail;s=Li;g=Lei;"]),
    _Person("onordmann", "On-Passw0rd-5", _person_dn("uid=onordmann"), "Ola Nordmann", "Ola",
            "Nordmann", "ola.nordmann@example.org", ["ola@example.org"], disabled=True),
    _Person("plonely", "Pl-Passw0rd-2", _person_dn("uid=plonely"), "Pat Lonely", "Pat",
            "Lonely", "pat.lonely@example.org", proxy=False),
)
GROUPS = {
    "sales": [_person_dn("uid=jmueller"), _person_dn("cn=李雷")],
    "archive-users": [_person_dn("uid=zoë"), _person_dn("uid=onordmann"), _group_dn("sales")],
}
# Groups may have addresses too: a sync that takes every entry with `mail` takes sales.
GROUP_MAIL = {"sales": "sales@example.org"}


def ssha(password: str) -> str:
    """A salted SHA-1 userPassword value ({SSHA}), as slapd itself stores passwords: the tree
    holds no password in clear, and a bind proves slapd checked the hash."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _line(name: str, value: str) -> str:
    """One LDIF line; a value that is not a plain ASCII SAFE-STRING (RFC 2849) goes base64."""
    if (value and (value[0] in " :<" or value[-1] == " ")) or not all(
            " " <= c <= "~" for c in value):
        return f"{name}:: {base64.b64encode(value.encode()).decode()}"
    return f"{name}: {value}"


def _add(dn: str, attrs: dict[str, list[str]]) -> str:
    lines = [_line("dn", dn), "changetype: add"]
    lines += [_line(name, v) for name, values in attrs.items() for v in values]
    return "\n".join(lines) + "\n"


def _modify(dn: str, *changes: tuple[str, str, Sequence[str]]) -> str:
    """A modify record: each change is (add|delete|replace, attribute, values)."""
    lines = [_line("dn", dn), "changetype: modify"]
    for op, name, values in changes:
        lines += [f"{op}: {name}", *(_line(name, v) for v in values), "-"]
    return "\n".join(lines) + "\n"


def _delete(dn: str) -> str:
    return f"{_line('dn', dn)}\nchangetype: delete\n"


def _program(name: str, *dirs: str) -> str:
    found = shutil.which(name) or next(
        (f"{d}/{name}" for d in dirs if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        raise RuntimeError(
            f"{name} is not installed (packages slapd and ldap-utils; `make test` installs "
            "them): the directory services tests need a real LDAP server")
    return found


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


class Slapd:
    """slapd serving `base_dn` on `host`: LDAP on `ldap_port` (StartTLS offered, plain binds
    allowed), LDAPS on `ldaps_port`, with a certificate from `ca` (a new CA unless one is
    given; its PEM is `ca_file`) for localhost, 127.0.0.1 and this machine's hostname. The
    service account `bind_dn`/`bind_password` reads the tree; `root_dn`/`root_password` may
    change it. Start it with `with Slapd() as slapd:` (or start() and stop())."""

    host = "localhost"  # ldap3 checks the certificate against this name, not 127.0.0.1
    base_dn = BASE_DN
    people_dn = PEOPLE_DN
    groups_dn = GROUPS_DN
    bind_dn = BIND_DN
    bind_password = BIND_PASSWORD
    root_dn = ROOT_DN
    root_password = ROOT_PASSWORD

    def __init__(self, ca: trustme.CA | None = None) -> None:
        self.slapd = _program("slapd", "/usr/sbin")
        self.slapadd = _program("slapadd", "/usr/sbin")
        self.ldapmodify = _program("ldapmodify", "/usr/bin")
        self.ldapdelete = _program("ldapdelete", "/usr/bin")
        self.ldapwhoami = _program("ldapwhoami", "/usr/bin")
        self.ca = ca or trustme.CA()
        self.dir = Path(tempfile.mkdtemp(prefix="mailkeep-slapd-"))
        self.ca_file = str(self.dir / "ca.pem")
        self.ldap_port = self.ldaps_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._people: dict[str, _Person] = {}
        self._groups: dict[str, list[str]] = {}
        self._changed = False
        cert = self.ca.issue_cert("localhost", "127.0.0.1", socket.gethostname())
        self.ca.cert_pem.write_to_path(self.ca_file)
        cert.cert_chain_pems[0].write_to_path(str(self.dir / "server.pem"))
        cert.private_key_pem.write_to_path(str(self.dir / "server.key"))
        (self.dir / "adlike.ldif").write_text(ADLIKE_SCHEMA)
        (self.dir / "root.pw").write_text(ROOT_PASSWORD)  # for -y: no newline
        (self.dir / "root.pw").chmod(0o600)
        (self.dir / "data").mkdir()
        (self.dir / "config").mkdir()
        (self.dir / "config.ldif").write_text(CONFIG.format(
            dir=self.dir, modules=MODULE_DIR, schema=SCHEMA_DIR, base=BASE_DN,
            root_dn=ROOT_DN, root_pw=ssha(ROOT_PASSWORD)), encoding="utf-8")
        # OpenLDAP's tools read ~/.ldaprc, ldap.conf and LDAP* variables: only ours count.
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("LDAP")}
        self._env.update(LDAPTLS_CACERT=self.ca_file, LDAPTLS_REQCERT="demand")

    # -- the process ----------------------------------------------------------------------------
    @property
    def ldap_url(self) -> str:
        return f"ldap://{self.host}:{self.ldap_port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.host}:{self.ldaps_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "slapd is not running"
        return self.proc.pid

    def start(self, timeout: float = 10) -> None:
        """Start slapd and load the tree; return once the service account's bind over
        StartTLS with the CA's certificate check works (or raise, with slapd's log)."""
        subprocess.run([self.slapadd, "-q", "-n0", "-F", str(self.dir / "config"),
                        "-l", str(self.dir / "config.ldif")],
                       check=True, capture_output=True, env=self._env)
        deadline = time.monotonic() + timeout
        # A free port may be taken again before slapd binds it: then try other ports.
        for _ in range(5):
            if self._listen(deadline):
                break
        else:
            raise RuntimeError(f"slapd could not bind free ports: {self.log()}")
        self._load(services=True)
        self._tool(self.ldapwhoami, "-ZZ", "-D", BIND_DN, "-w", BIND_PASSWORD, input="")

    def _listen(self, deadline: float) -> bool:
        """Run slapd on two new free ports until both accept connections: True; False if it
        exited because a port was taken. Anything else raises."""
        self.ldap_port, self.ldaps_port = free_port(), free_port()
        with open(self.dir / "slapd.log", "ab") as log:
            self.proc = subprocess.Popen(
                [self.slapd, "-d", "stats", "-F", str(self.dir / "config"), "-h",
                 f"ldap://127.0.0.1:{self.ldap_port}/ ldaps://127.0.0.1:{self.ldaps_port}/"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        while not (_accepts(self.ldap_port) and _accepts(self.ldaps_port)):
            if self.proc.poll() is not None:
                self.proc = None
                if "Address already in use" in self.log():
                    return False
                raise RuntimeError(f"slapd exited at start: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"slapd did not listen in time: {self.log()}")
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """SIGTERM to our slapd (kill if it does not go within 10 s), then remove its files."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Slapd:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log(self) -> str:
        """slapd's own log (-d stats: connections, binds, operations and their results)."""
        path = self.dir / "slapd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- what the tree holds ----------------------------------------------------------------------
    @property
    def users(self) -> dict[str, User]:
        """Every person of the tree as it is now, by login."""
        return {login: self.user(login) for login in self._people}

    def user(self, login: str) -> User:
        p = self._people[login]
        direct = frozenset(name for name, members in self._groups.items() if p.dn in members)
        reached, todo = set(direct), list(direct)
        while todo:
            dn = _group_dn(todo.pop())
            for name, members in self._groups.items():
                if dn in members and name not in reached:
                    reached.add(name)
                    todo.append(name)
        return User(login=p.login, password=p.password, dn=p.dn, full_name=p.full_name,
                    addresses=(p.primary, *p.aliases), groups=direct,
                    all_groups=frozenset(reached), disabled=p.disabled)

    @property
    def groups(self) -> dict[str, Group]:
        return {name: Group(name, _group_dn(name), tuple(members), GROUP_MAIL.get(name))
                for name, members in self._groups.items()}

    def group_dn(self, name: str) -> str:
        return _group_dn(name)

    def _load(self, services: bool) -> None:
        """Add the tree as loaded (the base, ou=services and the service account too if
        asked)."""
        self._people = {p.login: copy.deepcopy(p) for p in PEOPLE}
        self._groups = {name: list(members) for name, members in GROUPS.items()}
        ous = ["people", "groups"] + (["services"] if services else [])
        records = [_add(f"ou={ou},{BASE_DN}", {"objectClass": ["organizationalUnit"], "ou": [ou]})
                   for ou in ous]
        if services:
            records.insert(0, _add(BASE_DN, {"objectClass": ["dcObject", "organization"],
                                              "dc": ["example"], "o": ["Example"]}))
            records.append(_add(BIND_DN, {
                "objectClass": ["applicationProcess", "simpleSecurityObject"],
                "cn": ["mailkeep"], "userPassword": [ssha(BIND_PASSWORD)]}))
        records += [_add(p.dn, p.attributes()) for p in self._people.values()]
        records += [self._group_entry(name) for name in ("sales", "archive-users")]
        self._ldapmodify("\n".join(records))  # sales first: archive-users lists it
        self._changed = False

    def _group_entry(self, name: str) -> str:
        attrs = {"objectClass": ["groupOfNames"], "cn": [name], "member": self._groups[name]}
        if name in GROUP_MAIL:
            attrs["objectClass"].append("adLikeMailRecipient")
            attrs["mail"] = [GROUP_MAIL[name]]
            attrs["proxyAddresses"] = [f"SMTP:{GROUP_MAIL[name]}"]
        return _add(_group_dn(name), attrs)

    # -- changes between two syncs (real LDAP operations as the rootdn) ---------------------------
    def set_addresses(self, login: str, primary: str, aliases: Iterable[str] = ()) -> User:
        """New primary address (`mail` and proxyAddresses' "SMTP:") and aliases ("smtp:");
        the user's non-SMTP proxyAddresses stay. A user without proxyAddresses gets them only
        when given aliases."""
        p = self._people[login]
        p.primary, p.aliases = primary, list(aliases)
        p.proxy = p.proxy or bool(p.aliases)
        changes: list[tuple[str, str, Sequence[str]]] = [("replace", "mail", [primary])]
        if p.proxy:
            changes.append(("replace", "proxyAddresses", p.proxy_addresses()))
        self._ldapmodify(_modify(p.dn, *changes))
        return self.user(login)

    def add_user(self, login: str, full_name: str, password: str, primary: str,
                 aliases: Iterable[str] = (), groups: Iterable[str] = (),
                 disabled: bool = False) -> User:
        """A new person uid=LOGIN under ou=people (given name and surname from the full name),
        listed as a member of `groups`."""
        given, _, surname = full_name.rpartition(" ")
        p = _Person(login, password, _person_dn(f"uid={_escape_rdn(login)}"), full_name,
                    given or full_name, surname, primary, list(aliases), disabled=disabled)
        records = [_add(p.dn, p.attributes())]
        for name in groups:
            records.append(_modify(_group_dn(name), ("add", "member", [p.dn])))
        self._ldapmodify("\n".join(records))
        self._people[login] = p
        for name in groups:
            self._groups[name].append(p.dn)
        return self.user(login)

    def delete_user(self, login: str) -> None:
        """Delete the person's entry; slapd drops it from the groups listing it."""
        p = self._people.pop(login)
        self._ldapmodify(_delete(p.dn))
        for members in self._groups.values():
            if p.dn in members:
                members.remove(p.dn)

    def disable(self, login: str) -> User:
        """userAccountControl 514 (ACCOUNTDISABLE): the bind still works, a client must look."""
        return self._set_disabled(login, True)

    def enable(self, login: str) -> User:
        """userAccountControl 512 again."""
        return self._set_disabled(login, False)

    def _set_disabled(self, login: str, disabled: bool) -> User:
        p = self._people[login]
        self._ldapmodify(_modify(p.dn, ("replace", "userAccountControl",
                                        [str(DISABLED if disabled else ENABLED)])))
        p.disabled = disabled
        return self.user(login)

    def set_password(self, login: str, password: str) -> User:
        """A new password: the old one no longer binds."""
        p = self._people[login]
        self._ldapmodify(_modify(p.dn, ("replace", "userPassword", [ssha(password)])))
        p.password = password
        return self.user(login)

    def add_member(self, group: str, dn: str) -> None:
        """List `dn` (a person or a group) as a member of `group`."""
        self._ldapmodify(_modify(_group_dn(group), ("add", "member", [dn])))
        self._groups[group].append(dn)

    def remove_member(self, group: str, dn: str) -> None:
        """A group must keep a member (groupOfNames): remove one of several."""
        self._ldapmodify(_modify(_group_dn(group), ("delete", "member", [dn])))
        self._groups[group].remove(dn)

    def apply_ldif(self, ldif: str) -> None:
        """Any other change: LDIF change records (with changetype), applied as the rootdn.
        `users` and `groups` do not follow such a change, and reset() undoes it only below
        ou=people and ou=groups."""
        self._ldapmodify(ldif)

    def reset(self) -> None:
        """Back to the tree as loaded, if anything was changed: ou=people and ou=groups are
        deleted and loaded again (the entries get new entryUUIDs)."""
        if not self._changed:
            return
        self._tool(self.ldapdelete, "-D", ROOT_DN, "-y", str(self.dir / "root.pw"), "-r",
                   GROUPS_DN, PEOPLE_DN, input="")
        self._load(services=False)

    def _ldapmodify(self, ldif: str) -> None:
        self._changed = True
        self._tool(self.ldapmodify, "-D", ROOT_DN, "-y", str(self.dir / "root.pw"),
                   input=ldif)

    def _tool(self, program: str, *args: str, input: str) -> None:
        """An OpenLDAP client tool against our plain LDAP port; a failure raises."""
        done = subprocess.run([program, "-x", "-H", f"ldap://127.0.0.1:{self.ldap_port}/",
                               *args], input=input.encode(), capture_output=True,
                              env=self._env, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(program).name} {' '.join(args)} exited with "
                               f"{done.returncode}: {done.stderr.decode(errors='replace')}")
