"""Accounts on a real master database: initial admin, lifecycle, validation, passwords, folder
rights and the audit log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher

from mailkeep.core.admin.users import Users
from mailkeep.core.errors import Conflict, InvalidArgument, NotFound
from mailkeep.core.masterdb import MasterDB
from mailkeep.functions.call import Caller
from tests.helpers import call_function

SECRET = "s3cret-Pa55word"


def fast_hasher(time_cost: int = 1) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=8, parallelism=1)


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


def audit_rows(master: MasterDB) -> list[tuple[str, str, dict[str, Any]]]:
    rows = master.conn.execute("SELECT actor, action, details FROM audit ORDER BY id")
    return [(actor, action, json.loads(details)) for actor, action, details in rows]


# -- initial admin ---------------------------------------------------------------------------

def test_initial_admin_is_created_once(users: Users) -> None:
    assert users.ensure_initial_admin() is True
    assert users.ensure_initial_admin() is False
    info = users.get("admin")
    assert info["privileges"] == ["admin", "login"]
    assert info["role"] == "administrator"
    assert users.verify_password("admin", "admin")
    assert users.has_initial_password("admin")
    assert users.any_initial_password()
    assert users.is_administrator("ADMIN")
    users.set_password("admin", SECRET)
    assert not users.has_initial_password("admin")
    assert not users.any_initial_password()
    assert users.verify_password("admin", SECRET)
    assert not users.verify_password("admin", "admin")


def test_no_initial_admin_when_accounts_exist(users: Users) -> None:
    users.create("bob", ["login"])
    assert users.ensure_initial_admin() is False
    assert not users.exists("admin")
    assert not users.has_initial_password("nobody")


# -- create, get, list -----------------------------------------------------------------------

def test_create_and_get_in_the_original_shape(users: Users) -> None:
    users.create("Bob", "login, archive", full_name="Bob Builder",
                 distinguished_name="CN=Bob,DC=example", password=SECRET)
    info = users.get("bob")
    assert info == {
        "userName": "Bob", "fullName": "Bob Builder", "distinguishedName": "CN=Bob,DC=example",
        "authentication": "integrated", "emailAddresses": [], "pop3UserNames": [],
        "privileges": ["login", "archive"], "privilegesOnFolders": [],
        "loginPrivileges": ["windows", "web", "outlook", "windowsCmd", "imap", "api"],
        "role": None}
    assert SECRET not in json.dumps(info)
    assert "argon2" not in json.dumps(info)


def test_privilege_names_are_canonical_and_none_means_empty(users: Users) -> None:
    users.create("a", ["LOGIN", "admin", "login"])
    assert users.get("a")["privileges"] == ["admin", "login"]
    users.create("b", "none")
    assert users.get("b")["privileges"] == ["none"]
    users.create("c", [])
    assert users.get("c")["privileges"] == ["none"]


def test_list_is_sorted_without_regard_to_case(users: Users) -> None:
    for name in ("charlie", "Bob", "alice"):
        users.create(name, ["login"], full_name=name.title())
    assert users.list() == [
        {"userName": "alice", "fullName": "Alice", "distinguishedName": None},
        {"userName": "Bob", "fullName": "Bob", "distinguishedName": None},
        {"userName": "charlie", "fullName": "Charlie", "distinguishedName": None}]


def test_user_names_are_case_insensitive(users: Users) -> None:
    users.create("Jörg", ["login"])
    with pytest.raises(Conflict, match="User 'JÖRG' already exists."):
        users.create("JÖRG", ["login"])
    assert users.get("jörg")["userName"] == "Jörg"


@pytest.mark.parametrize("name", ["", " bob", "bob ", "a/b", "a\\b", "a:b", "a\x00b", "x" * 101])
def test_invalid_user_names(users: Users, name: str) -> None:
    with pytest.raises(InvalidArgument, match="Invalid user name"):
        users.create(name, ["login"])
    assert users.list() == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"privileges": ["login", "fly"]}, "Invalid privilege 'fly'."),
    ({"privileges": "none,admin"}, "'none' cannot be combined"),
    ({"privileges": [], "authentication": "kerberos"}, "Invalid authentication 'kerberos'."),
    ({"privileges": [], "password": ""}, "must not be empty"),
    ({"privileges": [], "role": "boss"}, "Invalid role 'boss'."),
    ({"privileges": [], "login_privileges": "web,telnet"}, "Invalid login privilege 'telnet'."),
    ({"privileges": [], "full_name": "a\nb"}, "Invalid full name."),
])
def test_create_validates_everything_first(users: Users, master: MasterDB,
                                           kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        users.create("bob", **kwargs)
    assert not users.exists("bob")
    assert audit_rows(master) == []


def test_unknown_user(users: Users) -> None:
    for call in (lambda: users.get("ghost"), lambda: users.delete("ghost"),
                 lambda: users.rename("ghost", "spirit"),
                 lambda: users.set_password("ghost", SECRET),
                 lambda: users.set_full_name("ghost", "G"),
                 lambda: users.set_privileges("ghost", ["login"]),
                 lambda: users.clear_privileges_on_folders("ghost"),
                 lambda: users.password_generation("ghost")):
        with pytest.raises(NotFound, match=r"^User 'ghost' does not exist\.$"):
            call()
    assert not users.is_administrator("ghost")
    assert not users.verify_password("ghost", SECRET)


# -- rename and delete -----------------------------------------------------------------------

def test_rename(users: Users) -> None:
    users.create("bob", ["login"], password=SECRET)
    users.create("carol", ["login"])
    users.set_privileges_on_folder("bob", "bob/Inbox", ["read"])
    users.set_privileges_on_folder("carol", "Bob/Sent", "read,write")
    users.set_privileges_on_folder("carol", "bobby/x", "read")
    with pytest.raises(Conflict, match="User 'CAROL' already exists."):
        users.rename("bob", "CAROL")
    users.rename("bob", "Robert")
    assert not users.exists("bob")
    assert users.verify_password("robert", SECRET)
    assert users.get("robert")["privilegesOnFolders"] == [
        {"folder": "Robert/Inbox", "privileges": ["read"]}]
    assert users.get("carol")["privilegesOnFolders"] == [
        {"folder": "Robert/Sent", "privileges": ["read", "write"]},
        {"folder": "bobby/x", "privileges": ["read"]}]
    users.rename("robert", "ROBERT")  # a change of case only
    assert users.get("robert")["userName"] == "ROBERT"
    with pytest.raises(InvalidArgument):
        users.rename("robert", "a/b")


def test_the_last_administrator_stays(users: Users) -> None:
    users.ensure_initial_admin()
    with pytest.raises(Conflict, match="last administrator and cannot be deleted"):
        users.delete("admin")
    users.set_privileges("admin", ["login"])  # still an administrator through the role
    with pytest.raises(Conflict, match="must keep the role 'administrator'"):
        users.set_role("admin", "operator")
    users.set_privileges("admin", ["admin", "login"])
    users.set_role("admin", None)  # still an administrator through the privilege
    with pytest.raises(Conflict, match="must keep the privilege 'admin'"):
        users.set_privileges("admin", ["login"])
    users.create("root", ["login"], role="administrator")
    assert users.is_administrator("root")
    users.set_privileges("admin", ["login"])
    assert not users.is_administrator("admin")
    with pytest.raises(Conflict):
        users.set_role("root", "operator")
    with pytest.raises(Conflict):
        users.delete("root")
    users.delete("admin")
    assert [u["userName"] for u in users.list()] == ["root"]


def test_delete_removes_folder_rights(users: Users, master: MasterDB) -> None:
    users.ensure_initial_admin()
    users.create("bob", ["login"])
    users.set_privileges_on_folder("bob", "bob", ["read"])
    users.delete("bob")
    users.create("bob", ["login"])
    assert users.get("bob")["privilegesOnFolders"] == []
    assert master.conn.execute("SELECT COUNT(*) FROM user_folder_privileges").fetchone()[0] == 0


# -- settings --------------------------------------------------------------------------------

def test_names_addresses_and_login_privileges(users: Users) -> None:
    users.create("bob", ["login"], full_name="Bob")
    users.set_full_name("bob", None)
    users.set_distinguished_name("bob", "CN=Bob")
    users.set_email_addresses("bob", "bob@example.com, Bob@Example.com ,b@example.org")
    users.set_pop3_user_names("bob", ["bob", "bob2"])
    users.set_login_privileges("bob", "web,api")
    users.set_authentication("bob", "directoryservices")
    info = users.get("bob")
    assert info["fullName"] is None
    assert info["distinguishedName"] == "CN=Bob"
    assert info["emailAddresses"] == ["bob@example.com", "b@example.org"]
    assert info["pop3UserNames"] == ["bob", "bob2"]
    assert info["loginPrivileges"] == ["web", "api"]
    assert info["authentication"] == "directoryServices"
    users.set_login_privileges("bob", "none")
    users.set_email_addresses("bob", None)
    info = users.get("bob")
    assert info["loginPrivileges"] == ["none"]
    assert info["emailAddresses"] == []


def test_bad_settings_change_nothing(users: Users) -> None:
    users.create("bob", ["login"])
    users.set_email_addresses("bob", ["bob@example.com"])
    before = users.get("bob")
    for call in (lambda: users.set_email_addresses("bob", ["ok@example.com", "not an address"]),
                 lambda: users.set_privileges("bob", ["login", "root"]),
                 lambda: users.set_authentication("bob", "ldap"),
                 lambda: users.set_role("bob", "king"),
                 lambda: users.set_pop3_user_names("bob", ["a\tb"]),
                 lambda: users.set_privileges_on_folder("bob", "bob//x", ["read"]),
                 lambda: users.set_privileges_on_folder("bob", "bob", ["read", "execute"])):
        with pytest.raises(InvalidArgument):
            call()
    assert users.get("bob") == before


def test_folder_privileges(users: Users) -> None:
    users.create("bob", ["login"])
    users.set_privileges_on_folder("bob", "bob/Inbox", "write, read")
    users.set_privileges_on_folder("bob", "/alice/", ["read"])
    users.set_privileges_on_folder("bob", "bob/Inbox", ["read", "delete"])
    assert users.get("bob")["privilegesOnFolders"] == [
        {"folder": "alice", "privileges": ["read"]},
        {"folder": "bob/Inbox", "privileges": ["read", "delete"]}]
    users.set_privileges_on_folder("bob", "alice", "none")
    assert [f["folder"] for f in users.get("bob")["privilegesOnFolders"]] == ["bob/Inbox"]
    users.clear_privileges_on_folders("bob")
    assert users.get("bob")["privilegesOnFolders"] == []


# -- passwords -------------------------------------------------------------------------------

def test_passwords_and_generation(users: Users) -> None:
    users.create("bob", ["login"])
    assert not users.verify_password("bob", "")  # no password yet
    first = users.password_generation("bob")
    users.set_password("bob", SECRET)
    second = users.password_generation("BOB")
    assert second != first
    assert users.verify_password("bob", SECRET)
    assert users.verify_password("BoB", SECRET)
    assert not users.verify_password("bob", SECRET.upper())
    assert not users.verify_password("bob", "")
    assert not users.verify_password("bob", "x" * 5000)
    users.set_password("bob", SECRET)  # the same password again still counts as a change
    assert users.password_generation("bob") not in (first, second)
    before = users.password_generation("bob")
    users.set_authentication("bob", "directoryServices")
    assert users.password_generation("bob") != before
    assert not users.verify_password("bob", SECRET)  # no directory here: nobody gets in


def test_generations_are_never_reused(users: Users) -> None:
    users.ensure_initial_admin()
    users.create("bob", ["login"], password=SECRET)
    old = users.password_generation("bob")
    users.delete("bob")
    users.create("bob", ["login"], password=SECRET)
    assert users.password_generation("bob") != old


def test_bad_passwords_are_refused_without_echo(users: Users) -> None:
    users.create("bob", ["login"], password=SECRET)
    for bad in ("", "y" * 4097, "ab\udcffcd"):
        with pytest.raises(InvalidArgument) as caught:
            users.set_password("bob", bad)
        assert not bad or bad not in str(caught.value)
    assert users.verify_password("bob", SECRET)
    assert not users.verify_password("bob", "ab\udcffcd")


def test_hash_is_argon2id_and_never_plain(users: Users, master: MasterDB) -> None:
    users.create("bob", ["login"], password=SECRET)
    stored = master.conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$")
    assert SECRET not in stored


def test_unknown_accounts_cost_a_hash_too(master: MasterDB) -> None:
    hasher = CountingHasher()
    users = Users(master, hasher=hasher)
    users.create("bob", ["login"])  # without a password
    users.create("dir", ["login"], authentication="directoryServices", password=SECRET)
    for name in ("ghost", "bob", "dir"):
        assert not users.verify_password(name, SECRET)
    assert hasher.verified == 3


def test_stronger_parameters_rehash_on_login(master: MasterDB) -> None:
    Users(master, hasher=fast_hasher()).create("bob", ["login"], password=SECRET)
    generation = Users(master, hasher=fast_hasher()).password_generation("bob")
    stronger = Users(master, hasher=fast_hasher(time_cost=2))
    assert stronger.verify_password("bob", SECRET)
    stored = master.conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert "t=2" in stored
    assert stronger.password_generation("bob") == generation
    assert stronger.verify_password("bob", SECRET)


def test_accounts_survive_reopening(tmp_path: Path) -> None:
    first = MasterDB.of(tmp_path)
    Users(first, hasher=fast_hasher()).create("bob", ["login"], password=SECRET)
    first.close()
    again = MasterDB.of(tmp_path)
    try:
        users = Users(again, hasher=fast_hasher())
        assert users.verify_password("bob", SECRET)
        assert users.ensure_initial_admin() is False
    finally:
        again.close()


# -- audit -----------------------------------------------------------------------------------

def test_every_change_is_audited_without_secrets(tmp_path: Path) -> None:
    """Through the user functions (the one invoke path writes the audit record of each call):
    who, what, the arguments with the password masked, and the value before where the
    function notes it."""
    data = tmp_path / "data"
    master = MasterDB.of(data.resolve())
    Users(master, hasher=fast_hasher()).ensure_initial_admin()
    Users(master, hasher=fast_hasher()).create("alice", ["admin"], password=SECRET)
    alice = Caller("alice", "api", address="192.0.2.7")
    calls = [
        ("CreateUser", {"userName": "bob", "privileges": "login", "password": SECRET}),
        ("SetUserPassword", {"userName": "bob", "password": SECRET + "2"}),
        ("SetUserFullName", {"userName": "bob", "fullName": "Bob"}),
        ("SetUserDistinguishedName", {"userName": "bob", "distinguishedName": "CN=Bob"}),
        ("SetUserAuthentication", {"userName": "bob", "authentication": "integrated"}),
        ("SetUserEmailAddresses", {"userName": "bob", "emailAddresses": "bob@example.com"}),
        ("SetUserPop3UserNames", {"userName": "bob", "pop3UserNames": "bob"}),
        ("SetUserLoginPrivileges", {"userName": "bob", "loginPrivileges": "web"}),
        ("SetUserPrivileges", {"userName": "bob", "privileges": "login,archive"}),
        ("SetUserRole", {"userName": "bob", "role": "operator"}),
        ("SetUserPrivilegesOnFolder", {"userName": "bob", "folder": "bob",
                                       "privileges": "read"}),
        ("ClearUserPrivilegesOnFolders", {"userName": "bob"}),
        ("RenameUser", {"oldUserName": "bob", "newUserName": "robert"}),
        ("DeleteUser", {"userName": "robert"}),
    ]
    for name, form in calls:
        call_function(data, name, caller=alice, **form)
    rows = audit_rows(master)
    master.close()
    assert rows[0][:2] == ("system", "user.create")  # the initial administrator
    assert [action for _, action, _ in rows[1:]] == [name for name, _ in calls]
    assert {actor for actor, _, _ in rows[1:]} == {"api:alice"}
    assert all(d["outcome"] == "succeeded" and d["address"] == "192.0.2.7" for _, _, d in rows[1:])
    assert rows[1][2]["args"] == {"userName": "bob", "privileges": ["login"], "password": "***"}
    assert rows[2][2]["args"]["password"] == "***"
    assert rows[9][2]["before"] == ["login"]
    assert rows[9][2]["args"]["privileges"] == ["login", "archive"]
    assert rows[13][2]["args"] == {"oldUserName": "bob", "newUserName": "robert"}
    text = json.dumps(rows)
    assert SECRET not in text
    assert "argon2" not in text


def test_failed_changes_are_audited_and_change_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    master = MasterDB.of(data.resolve())
    users = Users(master, hasher=fast_hasher())
    users.ensure_initial_admin()
    count = len(audit_rows(master))
    with pytest.raises(Conflict):
        call_function(data, "DeleteUser", userName="admin")
    with pytest.raises(Conflict):
        call_function(data, "CreateUser", userName="ADMIN", privileges="login",
                      password=SECRET)
    rows = audit_rows(master)[count:]
    assert [(a, d["outcome"]) for _, a, d in rows] == [("DeleteUser", "failed"),
                                                       ("CreateUser", "failed")]
    assert "last administrator" in rows[0][2]["error"]
    assert SECRET not in json.dumps(rows)
    assert [u["userName"] for u in users.list()] == ["admin"]
    master.close()


def test_the_last_console_administrator_keeps_the_role(users: Users) -> None:
    """A role overrides the admin privilege in the console: the one account that administers
    there cannot make itself an operator (it would still have the privilege, for the API, but
    no one could administer in the console), until another account administers there."""
    users.ensure_initial_admin()
    users.set_role("admin", None)  # an administrator through the privilege alone
    assert users.effective_role("admin") == "administrator"
    with pytest.raises(Conflict, match="last administrator of the console"):
        users.set_role("admin", "operator")
    assert users.effective_role("admin") == "administrator"
    users.create("second", ["login", "admin"])
    users.set_role("admin", "operator")
    assert users.effective_role("admin") == "operator"
