"""The user functions through the Administration API in-process, as a MailStore client calls."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.web.app import create_app
from tests.apiclient import CHEAP, LOCAL, basic, decode, postgres_rows

SECRETS = ["Pa55-first-secret", "Pa55-second-secret", "Pa55-third-secret"]


class Api:
    """A TestClient that keeps every response body, to check that no password is echoed."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.bodies: list[bytes] = []

    def post(self, path: str, auth: tuple[str, str] = ("admin", "admin"), **args: Any) -> Any:
        resp = self.client.post(path, data=args, headers=basic(*auth))
        self.bodies.append(resp.content)
        return resp

    def call(self, function_name: str, **args: Any) -> dict[str, Any]:
        return decode(self.post(f"/api/invoke/{function_name}", **args))

    def ok(self, function_name: str, **args: Any) -> Any:
        body = self.call(function_name, **args)
        assert body["statusCode"] == "succeeded", body["error"]
        assert body["error"] is None
        return body["result"]

    def fails(self, function_name: str, **args: Any) -> str:
        body = self.call(function_name, **args)
        assert body["statusCode"] == "failed", body
        assert body["result"] is None
        message: str = body["error"]["message"]
        return message

    def info(self, user_name: str) -> dict[str, Any]:
        info: dict[str, Any] = self.ok("GetUserInfo", userName=user_name)
        return info


@pytest.fixture
def api(data: Path) -> Iterator[Api]:
    app = create_app(data, api_enabled=True, hasher=CHEAP)
    with TestClient(app, client=LOCAL) as client:
        yield Api(client)


def test_create_get_list_rename_delete(api: Api) -> None:
    assert api.ok("CreateUser", userName="alice", privileges="login,archive",
                  fullName="Alice Liddell", distinguishedName="CN=Alice,DC=example,DC=org",
                  authentication="integrated", password=SECRETS[0]) is None
    api.ok("CreateUser", userName="bob", privileges="none")
    assert api.ok("GetUsers") == [
        {"userName": "admin", "fullName": None, "distinguishedName": None},
        {"userName": "alice", "fullName": "Alice Liddell",
         "distinguishedName": "CN=Alice,DC=example,DC=org"},
        {"userName": "bob", "fullName": None, "distinguishedName": None}]
    info = api.info("ALICE")  # names compare case-insensitively
    assert info == {
        "userName": "alice", "fullName": "Alice Liddell",
        "distinguishedName": "CN=Alice,DC=example,DC=org", "authentication": "integrated",
        "emailAddresses": [], "pop3UserNames": [], "privileges": ["login", "archive"],
        "privilegesOnFolders": [],
        "loginPrivileges": ["windows", "web", "outlook", "windowsCmd", "imap", "api"],
        "role": None}
    bob = api.info("bob")
    assert bob["privileges"] == ["none"] and bob["authentication"] == "integrated"

    api.ok("SetUserPrivilegesOnFolder", userName="bob", folder="alice/Inbox", privileges="read")
    assert api.ok("RenameUser", oldUserName="alice", newUserName="alice2") is None
    assert [u["userName"] for u in api.ok("GetUsers")] == ["admin", "alice2", "bob"]
    assert api.info("alice2")["fullName"] == "Alice Liddell"
    assert api.info("bob")["privilegesOnFolders"] == [
        {"folder": "alice2/Inbox", "privileges": ["read"]}]
    assert "does not exist" in api.fails("GetUserInfo", userName="alice")

    assert api.ok("DeleteUser", userName="alice2") is None
    assert [u["userName"] for u in api.ok("GetUsers")] == ["admin", "bob"]
    assert api.fails("GetUserInfo", userName="alice2") == "User 'alice2' does not exist."


def test_create_conflicts_and_bad_arguments_change_nothing(api: Api) -> None:
    api.ok("CreateUser", userName="carol", privileges="login")
    assert api.fails("CreateUser", userName="Carol", privileges="admin") == (
        "User 'Carol' already exists.")
    assert api.fails("CreateUser", userName="dave", privileges="login,superuser") == (
        "Invalid value 'superuser' for API argument privileges: use one of none, admin, "
         "login, changePassword, archive, modifyArchiveProfiles, export, modifyExportProfiles, "
         "delete, auditor.")
    assert api.fails("CreateUser", userName="dave", privileges="login",
                     loginPrivileges="web,telepathy") == (
        "Invalid value 'telepathy' for API argument loginPrivileges: "
        "use one of none, windows, web, outlook, windowsCmd, imap, api.")
    assert api.fails("CreateUser", userName="dave", privileges="login",
                     authentication="kerberos") == "Invalid authentication 'kerberos'."
    assert api.fails("CreateUser", userName="da/ve", privileges="login") == (
        "Invalid user name 'da/ve'.")
    assert "Missing API argument privileges" in api.fails("CreateUser", userName="dave")
    assert api.fails("RenameUser", oldUserName="carol", newUserName="admin") == (
        "User 'admin' already exists.")
    assert [u["userName"] for u in api.ok("GetUsers")] == ["admin", "carol"]
    assert api.info("carol")["privileges"] == ["login"]


def test_setters_round_trip(api: Api) -> None:
    api.ok("CreateUser", userName="erin", privileges="login")
    assert api.ok("SetUserFullName", userName="erin", fullName="Erin Example") is None
    assert api.info("erin")["fullName"] == "Erin Example"
    api.ok("SetUserFullName", userName="erin", fullName="")
    assert api.info("erin")["fullName"] is None

    api.ok("SetUserDistinguishedName", userName="erin", distinguishedName="CN=Erin")
    assert api.info("erin")["distinguishedName"] == "CN=Erin"
    api.ok("SetUserDistinguishedName", userName="erin")
    assert api.info("erin")["distinguishedName"] is None

    api.ok("SetUserEmailAddresses", userName="erin",
           emailAddresses="erin@example.org, Erin@Example.org ,e@example.net")
    assert api.info("erin")["emailAddresses"] == ["erin@example.org", "e@example.net"]
    api.ok("SetUserEmailAddresses", userName="erin", emailAddresses="")
    assert api.info("erin")["emailAddresses"] == []

    api.ok("SetUserPop3UserNames", userName="erin", pop3UserNames="erin,erin.alt")
    assert api.info("erin")["pop3UserNames"] == ["erin", "erin.alt"]

    api.ok("SetUserPrivileges", userName="erin", privileges="export,LOGIN,delete")
    assert api.info("erin")["privileges"] == ["login", "export", "delete"]
    api.ok("SetUserPrivileges", userName="erin", privileges="none")
    assert api.info("erin")["privileges"] == ["none"]

    api.ok("SetUserLoginPrivileges", userName="erin", loginPrivileges="imap,web")
    assert api.info("erin")["loginPrivileges"] == ["web", "imap"]
    api.ok("SetUserLoginPrivileges", userName="erin", loginPrivileges="none")
    assert api.info("erin")["loginPrivileges"] == ["none"]

    api.ok("SetUserAuthentication", userName="erin", authentication="directoryServices")
    assert api.info("erin")["authentication"] == "directoryServices"
    api.ok("SetUserAuthentication", userName="erin", authentication="integrated")
    assert api.info("erin")["authentication"] == "integrated"

    api.ok("SetUserPrivilegesOnFolder", userName="erin", folder="erin", privileges="read,write")
    api.ok("SetUserPrivilegesOnFolder", userName="erin", folder="/admin/Sent/",
           privileges="read")
    assert api.info("erin")["privilegesOnFolders"] == [
        {"folder": "admin/Sent", "privileges": ["read"]},
        {"folder": "erin", "privileges": ["read", "write"]}]
    api.ok("SetUserPrivilegesOnFolder", userName="erin", folder="admin/Sent", privileges="none")
    assert api.info("erin")["privilegesOnFolders"] == [
        {"folder": "erin", "privileges": ["read", "write"]}]
    assert api.ok("ClearUserPrivilegesOnFolders", userName="erin") is None
    assert api.info("erin")["privilegesOnFolders"] == []


def test_bad_values_fail_clearly_and_change_nothing(api: Api) -> None:
    api.ok("CreateUser", userName="frank", privileges="login,archive")
    api.ok("SetUserEmailAddresses", userName="frank", emailAddresses="frank@example.org")
    api.ok("SetUserPrivilegesOnFolder", userName="frank", folder="frank", privileges="read")
    before = api.info("frank")
    cases = [
        ("SetUserPrivileges", {"privileges": "login,root"},
         "Invalid value 'root' for API argument privileges: use one of none, admin, login, "
         "changePassword, archive, modifyArchiveProfiles, export, modifyExportProfiles, "
         "delete, auditor."),
        ("SetUserPrivileges", {"privileges": "none,login"},
         "The privilege 'none' cannot be combined with others."),
        ("SetUserLoginPrivileges", {"loginPrivileges": "smoke-signals"},
         ("Invalid value 'smoke-signals' for API argument loginPrivileges: "
         "use one of none, windows, web, outlook, windowsCmd, imap, api.")),
        ("SetUserPrivilegesOnFolder", {"folder": "frank", "privileges": "read,execute"},
         ("Invalid value 'execute' for API argument privileges: "
         "use one of none, read, write, delete.")),
        ("SetUserPrivilegesOnFolder", {"folder": "//", "privileges": "read"},
         "Invalid folder '//'."),
        ("SetUserEmailAddresses", {"emailAddresses": "ok@example.org,not-an-address"},
         "Invalid email address 'not-an-address'."),
        ("SetUserAuthentication", {"authentication": "magic"},
         "Invalid authentication 'magic'."),
        ("SetUserPassword", {"password": ""}, "The password must not be empty."),
    ]
    for name, args, message in cases:
        assert api.fails(name, userName="frank", **args) == message, name
    assert api.fails("RenameUser", oldUserName="frank", newUserName="a:b") == (
        "Invalid user name 'a:b'.")
    assert api.info("frank") == before


def test_unknown_users_fail_clearly(api: Api) -> None:
    cases: list[tuple[str, dict[str, str]]] = [
        ("GetUserInfo", {}), ("DeleteUser", {}), ("SetUserPassword", {"password": SECRETS[2]}),
        ("SetUserFullName", {"fullName": "X"}), ("SetUserEmailAddresses", {}),
        ("SetUserPrivileges", {"privileges": "login"}),
        ("SetUserPrivilegesOnFolder", {"folder": "admin", "privileges": "read"}),
        ("ClearUserPrivilegesOnFolders", {}),
        ("SetUserAuthentication", {"authentication": "integrated"}),
        ("SetUserLoginPrivileges", {"loginPrivileges": "web"}),
        ("SetUserDistinguishedName", {}), ("SetUserPop3UserNames", {}),
    ]
    for name, args in cases:
        assert api.fails(name, userName="ghost", **args) == "User 'ghost' does not exist.", name
    assert api.fails("RenameUser", oldUserName="ghost", newUserName="spirit") == (
        "User 'ghost' does not exist.")
    assert [u["userName"] for u in api.ok("GetUsers")] == ["admin"]
    assert all(SECRETS[2].encode() not in body for body in api.bodies)


def test_last_administrator_is_kept(api: Api) -> None:
    message = api.fails("DeleteUser", userName="admin")
    assert message == "User 'admin' is the last administrator and cannot be deleted."
    # The initial admin also has the role administrator, so it stays one without the privilege.
    api.ok("SetUserPrivileges", userName="admin", privileges="login")
    info = api.info("admin")
    assert info["privileges"] == ["login"] and info["role"] == "administrator"
    assert [u["userName"] for u in api.ok("GetUsers")] == ["admin"]


def test_new_user_authenticates_and_non_admin_is_refused(api: Api, data: Path) -> None:
    api.ok("CreateUser", userName="heidi", privileges="login")
    api.ok("SetUserPassword", userName="heidi", password=SECRETS[0])
    resp = api.post("/api/invoke/GetUsers", ("heidi", SECRETS[0]))
    assert resp.status_code == 403 and "not an administrator" in resp.text
    assert api.post("/api/invoke/GetUsers", ("heidi", "wrong")).status_code == 401

    api.ok("SetUserPrivileges", userName="heidi", privileges="admin,login")
    assert [u["userName"] for u in decode(api.post("/api/invoke/GetUsers", ("heidi", SECRETS[0])))
            ["result"]] == ["admin", "heidi"]

    # A new password ends the old one at once (the generation changes, the cache forgets it).
    api.ok("SetUserPassword", userName="heidi", password=SECRETS[1])
    assert api.post("/api/invoke/GetUsers", ("heidi", SECRETS[0])).status_code == 401
    body = decode(api.post("/api/invoke/SetUserFullName", ("heidi", SECRETS[1]),
                           userName="heidi", fullName="Heidi"))
    assert body["statusCode"] == "succeeded"
    assert api.info("heidi")["fullName"] == "Heidi"

    # Taking admin away closes the API to that account again.
    api.ok("SetUserPrivileges", userName="heidi", privileges="login")
    assert api.post("/api/invoke/GetUsers", ("heidi", SECRETS[1])).status_code == 403
    # A user created with a password can authenticate straight away.
    api.ok("CreateUser", userName="ivan", privileges="admin,login", password=SECRETS[2])
    assert decode(api.post("/api/invoke/GetUserInfo", ("ivan", SECRETS[2]), userName="ivan")
                  )["result"]["privileges"] == ["admin", "login"]


def test_passwords_are_never_echoed(api: Api, data: Path) -> None:
    api.ok("CreateUser", userName="judy", privileges="admin,login", password=SECRETS[0])
    api.ok("SetUserPassword", userName="judy", password=SECRETS[1])
    api.fails("CreateUser", userName="judy", privileges="login", password=SECRETS[2])
    api.fails("CreateUser", userName="kim", privileges="bogus", password=SECRETS[2])
    api.fails("SetUserPassword", userName="nobody", password=SECRETS[2])
    api.fails("SetUserPassword", userName="judy", password=SECRETS[2], unexpected="x")
    api.ok("GetUserInfo", userName="judy")
    api.ok("GetUsers")
    api.post("/api/invoke/GetUsers", ("judy", SECRETS[2]))  # a wrong password: 401
    api.post("/api/invoke/GetUsers", ("judy", SECRETS[1]))
    api.client.get("/api/get-metadata", headers=basic())
    assert len(api.bodies) >= 10
    for body in api.bodies:
        for secret in SECRETS:
            assert secret.encode() not in body
    # Nor does the master database keep one (audit log included), only Argon2 hashes.
    stored = b"".join(p.read_bytes() for p in data.glob("mailkeep.db*"))
    if os.environ.get("MAILKEEP_DATABASE"):  # no such files: the rows in PostgreSQL
        stored += postgres_rows(data).encode()
    for secret in SECRETS:
        assert secret.encode() not in stored


def test_metadata_lists_the_user_functions(api: Api) -> None:
    resp = api.client.get("/api/get-metadata", headers=basic())
    meta = {f["name"]: f for f in json.loads(resp.content.decode("utf-8-sig"))}
    names = ["GetUsers", "GetUserInfo", "CreateUser", "DeleteUser", "RenameUser",
             "SetUserPassword", "SetUserFullName", "SetUserEmailAddresses", "SetUserPrivileges",
             "SetUserPrivilegesOnFolder", "ClearUserPrivilegesOnFolders",
             "SetUserAuthentication", "SetUserLoginPrivileges", "SetUserDistinguishedName",
             "SetUserPop3UserNames"]
    for name in names:
        # reading is for every management role; changing for administrators
        roles = ["administrator", "developer", "operator"] if name.startswith("Get") else [
            "administrator"]
        assert meta[name]["longRunning"] is False and meta[name]["roles"] == roles
    assert meta["CreateUser"]["args"] == [
        {"name": "userName", "type": "string", "nullable": False},
        {"name": "privileges", "type": "string", "nullable": False},
        {"name": "fullName", "type": "string", "nullable": True},
        {"name": "distinguishedName", "type": "string", "nullable": True},
        {"name": "authentication", "type": "string", "nullable": True},
        {"name": "password", "type": "string", "nullable": True},
        {"name": "loginPrivileges", "type": "string", "nullable": True}]
    assert meta["GetUsers"]["args"] == []
