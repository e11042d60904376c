"""The private slapd is a peer the directory services tests can trust: its TLS is real (the
right CA is accepted, another refused), its tree holds what `Slapd.users` and `Slapd.groups`
say, read here with ldap3 as a sync would, and its changes are seen by the next search."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trustme
from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPSocketOpenError, LDAPStartTLSError

from tests.directory.slapd import DISABLED, ENABLED, Slapd, User

PEOPLE = "(objectClass=inetOrgPerson)"
ATTRIBUTES = ["uid", "sAMAccountName", "cn", "displayName", "mail", "proxyAddresses",
              "userAccountControl", "memberOf"]


def tls(ca_file: str) -> Tls:
    return Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)


def ldaps(slapd: Slapd, ca_file: str | None = None) -> Server:
    return Server(slapd.host, port=slapd.ldaps_port, use_ssl=True,
                  tls=tls(ca_file or slapd.ca_file), get_info=NONE, connect_timeout=5)


@contextmanager
def starttls(slapd: Slapd, dn: str, password: str) -> Iterator[Connection]:
    """A connection bound as `dn` after StartTLS with the peer's CA."""
    server = Server(slapd.host, port=slapd.ldap_port, tls=tls(slapd.ca_file), get_info=NONE,
                    connect_timeout=5)
    conn = Connection(server, dn, password, receive_timeout=10, raise_exceptions=True)
    conn.open()
    try:
        conn.start_tls()
        conn.bind()
        yield conn
    finally:
        conn.unbind()


@contextmanager
def service(slapd: Slapd) -> Iterator[Connection]:
    with starttls(slapd, slapd.bind_dn, slapd.bind_password) as conn:
        yield conn


def binds(slapd: Slapd, dn: str, password: str) -> bool:
    """Whether a simple bind over LDAPS as `dn` succeeds."""
    conn = Connection(ldaps(slapd), dn, password, receive_timeout=10)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


def addresses(entry: dict[str, list[object]]) -> tuple[str, ...]:
    """How a sync reads addresses: proxyAddresses' "SMTP:" value first, then its "smtp:"
    values (any other type is no address); `mail` alone when there are no proxyAddresses."""
    proxy = [str(v) for v in entry.get("proxyAddresses", [])]
    if not proxy:
        return tuple(str(v) for v in entry["mail"])
    primary = [v[5:] for v in proxy if v.startswith("SMTP:")]
    aliases = [v[5:] for v in proxy if v.startswith("smtp:")]
    assert len(primary) == 1, proxy
    return (primary[0], *aliases)


def read_people(slapd: Slapd, search_filter: str = PEOPLE) -> dict[str, dict[str, list[object]]]:
    """The people matching the filter, by DN, as the service account reads them."""
    with service(slapd) as conn:
        conn.search(slapd.people_dn, search_filter, SUBTREE, attributes=ATTRIBUTES)
        return {e.entry_dn: e.entry_attributes_as_dict for e in conn.entries}


def uac(entry: dict[str, list[object]]) -> int:
    """userAccountControl: ldap3 gives a str without the server's schema (get_info=NONE)."""
    [value] = entry["userAccountControl"]
    return int(str(value))


def same(found: tuple[str, ...], user: User) -> bool:
    return found[0] == user.primary and set(found[1:]) == user.aliases


def test_starttls_checks_the_certificate(slapd: Slapd) -> None:
    with service(slapd) as conn:
        assert conn.tls_started
        assert conn.extend.standard.who_am_i() == f"dn:{slapd.bind_dn}"
    with trustme.CA().cert_pem.tempfile() as other_ca:
        server = Server(slapd.host, port=slapd.ldap_port, tls=tls(other_ca), connect_timeout=5)
        conn = Connection(server, slapd.bind_dn, slapd.bind_password, raise_exceptions=True)
        conn.open()
        # A failed handshake closes the socket: nothing is left to unbind.
        with pytest.raises(LDAPStartTLSError, match="CERTIFICATE_VERIFY_FAILED"):
            conn.start_tls()


def test_ldaps_checks_the_certificate(slapd: Slapd) -> None:
    assert binds(slapd, slapd.bind_dn, slapd.bind_password)
    with trustme.CA().cert_pem.tempfile() as other_ca:
        conn = Connection(ldaps(slapd, other_ca), slapd.bind_dn, slapd.bind_password,
                          raise_exceptions=True)
        with pytest.raises(LDAPSocketOpenError, match="CERTIFICATE_VERIFY_FAILED"):
            conn.open()


def test_the_service_account_reads_the_people_intact(slapd: Slapd) -> None:
    people = read_people(slapd)
    assert set(people) == {u.dn for u in slapd.users.values()}
    for user in slapd.users.values():
        entry = people[user.dn]
        assert entry["uid"] == entry["sAMAccountName"] == [user.login]
        assert entry["cn"] == entry["displayName"] == [user.full_name]
        assert same(addresses(entry), user), (entry, user)
    assert {u.full_name for u in slapd.users.values()} >= {"Zoë Ångström", "Jürgen Müller", "李雷"}
    # Filters with non-ASCII values match, case-insensitively where the schema says so.
    zoe = slapd.user("zoë")
    assert list(read_people(slapd, "(&(objectClass=inetOrgPerson)(uid=ZOË))")) == [zoe.dn]
    assert list(read_people(slapd, "(cn=李雷)")) == [slapd.user("lilei").dn]
    assert list(read_people(slapd, "(proxyAddresses=smtp:ZOE@example.org)")) == [zoe.dn]


def test_anonymous_clients_see_nothing(slapd: Slapd) -> None:
    conn = Connection(Server(slapd.host, port=slapd.ldap_port, connect_timeout=5))
    try:
        conn.bind()
        assert not conn.search(slapd.base_dn, "(objectClass=*)", SUBTREE)
        assert conn.entries == []
    finally:
        conn.unbind()


def test_users_bind_with_their_password_only(slapd: Slapd) -> None:
    for user in slapd.users.values():
        assert binds(slapd, user.dn, user.password), user
        assert not binds(slapd, user.dn, user.password + "x"), user
    assert not binds(slapd, slapd.user("zoë").dn, "Zoe-passwort-1")  # not an ASCII folding


def test_nested_groups_resolve_from_the_data(slapd: Slapd) -> None:
    with service(slapd) as conn:
        conn.search(slapd.groups_dn, "(objectClass=groupOfNames)", SUBTREE,
                    attributes=["cn", "member"])
        members = {e.entry_dn: set(e.member.values) for e in conn.entries}
        names = {e.entry_dn: e.cn.value for e in conn.entries}
        conn.search(slapd.people_dn, PEOPLE, SUBTREE, attributes=["memberOf"])
        member_of = {e.entry_dn: set(e.memberOf.values) for e in conn.entries}

    def reached(dn: str) -> set[str]:
        direct = {g for g, m in members.items() if dn in m}
        return direct.union(*(reached(g) for g in direct))

    for user in slapd.users.values():
        assert {names[g] for g in member_of[user.dn]} == user.groups, user
        assert {names[g] for g in reached(user.dn)} == user.all_groups, user
    assert slapd.user("jmueller").all_groups == {"sales", "archive-users"}
    assert slapd.user("plonely").all_groups == frozenset()


def test_the_disabled_account_carries_its_flag(slapd: Slapd) -> None:
    disabled = read_people(slapd, "(userAccountControl:1.2.840.113556.1.4.803:=2)")
    assert list(disabled) == [u.dn for u in slapd.users.values() if u.disabled]
    ola = slapd.user("onordmann")
    assert ola.disabled and uac(disabled[ola.dn]) == DISABLED
    assert binds(slapd, ola.dn, ola.password)  # OpenLDAP does not refuse it: clients must


def test_changes_are_seen_by_the_next_search(slapd: Slapd) -> None:
    slapd.set_addresses("jmueller", "juergen@example.org", ["jm@example.org"])
    pat = slapd.set_addresses("plonely", "pat@example.org")
    new = slapd.add_user("ünal", "Ünal Öztürk", "Ün-pässwort", "uenal@example.org",
                         ["oeztuerk@example.org"], groups=["sales"])
    lilei = slapd.user("lilei")
    slapd.delete_user("lilei")
    slapd.disable("zoë")
    slapd.enable("onordmann")
    zoe_password = slapd.user("zoë").password
    zoe = slapd.set_password("zoë", "Neu-pässwort-2")

    people = read_people(slapd)
    assert set(people) == {u.dn for u in slapd.users.values()}
    assert lilei.dn not in people and new.dn in people
    for user in slapd.users.values():
        entry = people[user.dn]
        assert same(addresses(entry), user), (entry, user)
        assert uac(entry) == user.user_account_control, user
    assert addresses(people[pat.dn]) == ("pat@example.org",)
    assert "SIP:juergen.mueller@example.org" in people[slapd.user("jmueller").dn]["proxyAddresses"]
    assert [u.login for u in slapd.users.values() if u.disabled] == ["zoë"]
    assert uac(people[zoe.dn]) == DISABLED
    assert uac(people[slapd.user("onordmann").dn]) == ENABLED
    assert new.all_groups == {"sales", "archive-users"}
    assert binds(slapd, new.dn, "Ün-pässwort")
    assert binds(slapd, zoe.dn, "Neu-pässwort-2") and not binds(slapd, zoe.dn, zoe_password)
    with service(slapd) as conn:  # the deleted user left its group
        conn.search(slapd.group_dn("sales"), "(objectClass=*)", BASE, attributes=["member"])
        assert set(conn.entries[0].member.values) == set(slapd.groups["sales"].members)
        assert lilei.dn not in conn.entries[0].member.values

    slapd.reset()
    assert {u.login for u in slapd.users.values()} == {
        "zoë", "jmueller", "lilei", "onordmann", "plonely"}
    people = read_people(slapd)
    assert set(people) == {u.dn for u in slapd.users.values()}
    assert binds(slapd, zoe.dn, zoe_password)
