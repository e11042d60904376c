"""Directory services against a real OpenLDAP (tests/directory/slapd.py): the configuration
with a sealed bind password, a sync that creates, updates, disables and marks gone, and logins
with the directory password (a bind as the user) to the console, the API and SMTP AUTH."""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme
from starlette.testclient import TestClient

from mailkeep.core.admin.auth import Authenticator, AuthResult
from mailkeep.core.admin.users import Users
from mailkeep.core.errors import InvalidArgument, MailkeepError
from mailkeep.core.masterdb import MasterDB
from tests.apiclient import api_client, basic, decode, finish
from tests.directory.slapd import Slapd
from tests.helpers import CHEAP, audit_since, call_function, mk_ok
from tests.web.test_journal import archived, server


def config(slapd: Slapd, **extra: Any) -> dict[str, Any]:
    return {"type": "ldap", "server": slapd.host, "port": slapd.ldaps_port,
            "security": "ldaps", "caFile": slapd.ca_file, "bindDn": slapd.bind_dn,
            "bindPassword": slapd.bind_password, "baseDn": slapd.base_dn,
            "groupDn": slapd.group_dn("archive-users"), **extra}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    mk_ok(data, "user", "list")  # the initial administrator
    return data


def configure(data: Path, slapd: Slapd, **extra: Any) -> dict[str, Any]:
    shown: dict[str, Any] = call_function(data, "SetDirectoryServicesConfiguration",
                                          config=json.dumps(config(slapd, **extra)))
    return shown


def sync(api: TestClient, dry_run: bool = False) -> dict[str, Any]:
    body = decode(api.post("/api/invoke/SyncUsersWithDirectoryServices", headers=basic(),
                           data={"dryRun": str(dry_run).lower()}))
    final, log = finish(api, body)
    assert final["statusCode"] == "succeeded", (final, log)
    result: dict[str, Any] = final["result"]
    return result


def console_login(api: TestClient, user: str, password: str) -> Any:
    return api.post("/mcapi/auth/login", json={"userName": user, "password": password})


def test_configuration_keeps_the_bind_password_sealed(data: Path, slapd: Slapd) -> None:
    shown = configure(data, slapd)
    assert "bindPassword" not in shown and shown["hasBindPassword"] is True
    assert shown["loginAttribute"] == "uid" and shown["port"] == slapd.ldaps_port
    assert call_function(data, "GetDirectoryServicesConfiguration") == shown
    stored = (data / "conf" / "directory.json").read_text()
    assert slapd.bind_password not in stored
    assert slapd.bind_password not in json.dumps(audit_since(data))
    # The password does not follow the configuration to another server or account.
    for change in ({"server": "127.0.0.1"}, {"bindDn": "cn=other," + slapd.base_dn},
                   {"verifyCertificate": False}, {"port": slapd.ldap_port}):
        with pytest.raises(InvalidArgument, match="give bindPassword again"):
            call_function(data, "SetDirectoryServicesConfiguration",
                          config=json.dumps(change))
    with pytest.raises(InvalidArgument, match="in clear"):
        call_function(data, "SetDirectoryServicesConfiguration", config=json.dumps(
            {"server": "ldap.example.org", "security": "none", "bindPassword": "x"}))
    assert call_function(data, "GetDirectoryServicesConfiguration") == shown


def test_sync_creates_the_group_members_with_their_names_and_addresses(
        data: Path, slapd: Slapd) -> None:
    configure(data, slapd)
    with api_client(data) as api:
        dry = sync(api, dry_run=True)
        assert sorted(dry["created"]) == ["jmueller", "lilei", "onordmann", "zoë"]
        assert call_function(data, "GetUsers") == [
            u for u in call_function(data, "GetUsers") if u["userName"] == "admin"]
        done = sync(api)
    assert sorted(done["created"]) == sorted(dry["created"])
    assert done["disabled"] == ["onordmann"]
    names = {u["userName"] for u in call_function(data, "GetUsers")}
    assert names == {"admin", "jmueller", "lilei", "onordmann", "zoë"}  # plonely: no member
    for login in ("zoë", "jmueller", "lilei"):
        info = call_function(data, "GetUserInfo", userName=login)
        expected = slapd.user(login)
        assert info["fullName"] == expected.full_name
        assert info["distinguishedName"].lower() == expected.dn.lower()
        assert info["authentication"] == "directoryServices"
        assert info["emailAddresses"][0] == expected.primary  # the primary first
        assert set(info["emailAddresses"]) == set(expected.addresses)  # no X500:, SIP:, ...
        assert info["privileges"] == ["login", "archive"]
    with api_client(data) as api:
        again = sync(api)
    assert again["created"] == [] and again["updated"] == [] and again["unchanged"] == 4


def test_directory_users_log_in_with_their_directory_password(data: Path, slapd: Slapd) -> None:
    configure(data, slapd)
    with api_client(data) as api:
        sync(api)
    call_function(data, "SetUserRole", userName="zoë", role="operator")
    call_function(data, "SetUserPrivileges", userName="jmueller", privileges="admin,login")
    call_function(data, "SetUserRole", userName="onordmann", role="operator")
    zoe, jm = slapd.user("zoë"), slapd.user("jmueller")
    with api_client(data) as api:
        assert console_login(api, "zoë", zoe.password).status_code == 200
        assert console_login(api, "zoë", "not her password").json()["result"]["code"] == 2001
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("jmueller", jm.password)).status_code == 200
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("jmueller", "wrong")).status_code == 401
        # Disabled in the directory: refused although the directory still takes the bind.
        refused = console_login(api, "onordmann", slapd.user("onordmann").password)
        assert refused.status_code == 403 and "disabled in the directory" in refused.text
        # A new password in the directory counts at once, the old one no more.
        slapd.set_password("zoë", "Zoë-new-pässwörd-2")
        assert console_login(api, "zoë", "Zoë-new-pässwörd-2").status_code == 200
        assert console_login(api, "zoë", zoe.password).status_code == 401


def test_smtp_auth_takes_the_directory_password(data: Path, slapd: Slapd) -> None:
    configure(data, slapd)
    with api_client(data) as api:
        sync(api)
    mk_ok(data, "settings", "set", "smtp.auth", "true")
    lilei = slapd.user("lilei")
    with server(data) as (_proc, port), smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=ssl._create_unverified_context())
        client.login("lilei", lilei.password)
        assert client.sendmail(lilei.primary, ["someone@example.net"],
                               b"Subject: hi\r\n\r\nhello\r\n") == {}


def test_a_second_sync_follows_the_directory(data: Path, slapd: Slapd) -> None:
    """Between two syncs an address changes, a user is disabled, one leaves the directory and
    one joins the group: the second sync follows, ends the disabled user's sessions, keeps
    every account and archive, and routes mail by the new address."""
    configure(data, slapd, disableMissing=True)
    call_function(data, "SetUserRole", userName="admin", role="administrator")
    with api_client(data) as api:
        sync(api)
    call_function(data, "SetUserRole", userName="zoë", role="operator")
    with api_client(data) as api:
        session = console_login(api, "zoë", slapd.user("zoë").password)
        sid = {"X-Fs-SessionId": session.json()["result"]["data"]["sessionId"]}
        slapd.set_addresses("jmueller", "juergen@example.org", ["jm@example.org"])
        slapd.disable("zoë")
        slapd.delete_user("lilei")
        slapd.add_member("archive-users", slapd.user("plonely").dn)
        report = sync(api)
        assert report["updated"] == ["jmueller"] and report["disabled"] == ["zoë"]
        assert report["missing"] == ["lilei"] and report["created"] == ["plonely"]
        assert api.get("/mcapi/connection/list", headers=sid).json()["result"]["code"] == 3001
        assert console_login(api, "zoë", slapd.user("zoë").password).status_code == 403
        slapd.enable("zoë")
        assert sync(api)["enabled"] == ["zoë"]
        assert console_login(api, "zoë", slapd.user("zoë").password).status_code == 200
    info = call_function(data, "GetUserInfo", userName="jmueller")
    assert info["emailAddresses"] == ["juergen@example.org", "jm@example.org"]
    assert "lilei" in {u["userName"] for u in call_function(data, "GetUsers")}  # kept


def test_a_local_account_is_never_taken_over(data: Path, slapd: Slapd) -> None:
    call_function(data, "CreateUser", userName="jmueller", privileges="admin,login",
                  password="Local-pass-1")
    configure(data, slapd)
    with api_client(data) as api:
        report = sync(api)
        assert report["skipped"] == ["jmueller"]
        info = call_function(data, "GetUserInfo", userName="jmueller")
        assert info["authentication"] == "integrated" and info["privileges"] == ["admin", "login"]
        # The directory's password is not this account's.
        assert api.post("/api/invoke/GetServerInfo", headers=basic(
            "jmueller", slapd.user("jmueller").password)).status_code == 401


def test_a_directory_with_a_certificate_we_do_not_trust_changes_nothing(
        data: Path, slapd: Slapd, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    configure(data, slapd, caFile=str(other))
    with pytest.raises(MailkeepError, match="CERTIFICATE_VERIFY_FAILED|certificate") as failed:
        call_function(data, "SyncUsersWithDirectoryServices")
    assert slapd.bind_password not in failed.value.message
    assert {u["userName"] for u in call_function(data, "GetUsers")} == {"admin"}
    # StartTLS on the plain port, with the right CA: works.
    configure(data, slapd, security="starttls", port=slapd.ldap_port)
    assert sorted(call_function(data, "SyncUsersWithDirectoryServices")["created"]) == [
        "jmueller", "lilei", "onordmann", "zoë"]


def test_sync_runs_as_a_scheduled_job(data: Path, slapd: Slapd) -> None:
    configure(data, slapd)
    job = call_function(data, "CreateJob", name="directory", owner="admin",
                        action="SyncUsersWithDirectoryServices", timeZoneId="UTC",
                        date="2030-01-01T00:00:00")
    outcome = call_function(data, "RunJobAsync", id=str(job["id"]))
    assert outcome["result"] == "succeeded", outcome
    assert "zoë" in {u["userName"] for u in call_function(data, "GetUsers")}


def test_the_journal_routes_by_the_synced_addresses(data: Path, slapd: Slapd) -> None:
    """An alias that only the directory knows (proxyAddresses "smtp:") routes journaled mail
    into its owner's archive once a sync brought it in."""
    configure(data, slapd)
    with api_client(data) as api:
        sync(api)
    zoe = slapd.user("zoë")
    alias = sorted(zoe.aliases)[0]
    raw = (b"From: x@example.net\r\nSubject: to an alias\r\n"
           b"Message-ID: <a1@example.net>\r\n\r\nhi\r\n")
    with server(data) as (_proc, port), smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        assert client.sendmail("x@example.net", [alias], raw) == {}
    assert [folder for folder, _env in archived(data).values()] == ["zoë/Inbox"]


def test_a_reused_login_does_not_inherit_the_account(data: Path, slapd: Slapd) -> None:
    """jmueller, an administrator in mailkeep, leaves; a new person gets the login jmueller
    (a new entry, even under the same DN). The sync does not hand the old account, its rights
    and its archive to the new person: it leaves the entry out and says why."""
    configure(data, slapd)
    with api_client(data) as api:
        sync(api)
    call_function(data, "SetUserPrivileges", userName="jmueller", privileges="admin,login")
    slapd.delete_user("jmueller")
    slapd.add_user("jmueller", "Eve Intruder", "Eve-pass-123", "eve@example.org",
                   groups=("archive-users",))
    with api_client(data) as api:
        report = sync(api)
        assert report["skipped"] == ["jmueller"] and report["updated"] == []
        info = call_function(data, "GetUserInfo", userName="jmueller")
        assert info["fullName"] == "Jürgen Müller" and "eve@example.org" not in \
            info["emailAddresses"]
        # The directory takes Eve's password for that DN now: mailkeep does not, for this
        # account (it is not hers), on the API as on the console.
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("jmueller", "Eve-pass-123")).status_code != 200


def test_an_entry_the_archive_cannot_take_does_not_stop_the_sync(data: Path, slapd: Slapd
                                                                 ) -> None:
    """A member with a 300-character name, and a login two entries claim: each is left out
    and logged, and the rest of the sync still happens, including marking a user who left
    the group (disableMissing)."""
    configure(data, slapd, disableMissing=True)
    with api_client(data) as api:
        sync(api)
    slapd.add_user("longname", "L" * 150 + " " + "N" * 149, "Long-pass-1", "long@example.org",
                   groups=("archive-users",))
    slapd.remove_member("archive-users", slapd.user("zoë").dn)
    with api_client(data) as api:
        report = sync(api)
    assert report["skipped"] == ["longname"] and report["missing"] == ["zoë"]
    assert "longname" not in {u["userName"] for u in call_function(data, "GetUsers")}


def test_a_directory_account_named_like_the_journal_owner_gets_no_routing(
        data: Path, slapd: Slapd) -> None:
    """smtp.owner is "journal": a directory user given that login files into its own archive,
    not where routing says (only a local journal account does)."""
    configure(data, slapd)
    slapd.add_user("journal", "Not The Journal", "Journal-pass-9", "nj@example.org",
                   groups=("archive-users",))
    with api_client(data) as api:
        sync(api)
    mk_ok(data, "settings", "set", "smtp.auth", "true")
    raw = (b"From: boss@example.org\r\nSubject: planted\r\n"
           b"Message-ID: <p1@example.org>\r\n\r\nx\r\n")
    with server(data) as (_proc, port), smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=ssl._create_unverified_context())
        client.login("journal", "Journal-pass-9")
        assert client.sendmail("boss@example.org", [slapd.user("zoë").primary], raw) == {}
    assert [folder for folder, _env in archived(data).values()] == ["journal/Inbox"]


def test_switching_the_directory_off_does_not_free_the_bind_password(data: Path,
                                                                    slapd: Slapd) -> None:
    """type none and back, to point the sealed bind password at another server: each step
    that would send it elsewhere asks for it again."""
    configure(data, slapd)
    for change in ({"type": "none"}, {"type": "activeDirectory"}):
        with pytest.raises(InvalidArgument, match="give bindPassword again"):
            call_function(data, "SetDirectoryServicesConfiguration", config=json.dumps(change))
    call_function(data, "SetDirectoryServicesConfiguration",
                  config=json.dumps({"type": "none", "bindPassword": ""}))
    shown = call_function(data, "GetDirectoryServicesConfiguration")
    assert shown["type"] == "none" and shown["hasBindPassword"] is False


def test_a_directory_that_never_answers_stalls_no_other_login(data: Path) -> None:
    """The directory accepts connections and never answers (an outage, a firewall dropping
    packets). While one login from an address waits for its bind, the next from that address
    is answered at once ("busy", not counted as a failure), and logins of local accounts go
    on: nothing waits on the stuck bind."""
    tarpit = socket.create_server(("127.0.0.1", 0))
    arrived = threading.Event()
    release = threading.Event()

    def hold() -> None:
        conn, _ = tarpit.accept()
        arrived.set()
        release.wait(30)
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        call_function(data, "SetDirectoryServicesConfiguration", config=json.dumps({
            "type": "ldap", "server": "localhost", "port": tarpit.getsockname()[1],
            "security": "none", "baseDn": "dc=example,dc=org", "timeout": 30}))
        call_function(data, "CreateUser", userName="dana", privileges="login",
                      authentication="directoryServices",
                      distinguishedName="uid=dana,ou=people,dc=example,dc=org")
        call_function(data, "CreateUser", userName="local", privileges="login",
                      password="Local-pass-1")
        master = MasterDB.of(data)
        auth = Authenticator(Users(master, hasher=CHEAP))
        first: list[AuthResult] = []
        waiting = threading.Thread(
            target=lambda: first.append(auth.check("dana", "pw-1", "203.0.113.5")))
        waiting.start()
        assert arrived.wait(10)  # the first bind is in flight, stuck
        assert auth.check("dana", "pw-2", "203.0.113.5").reason == "busy"
        assert auth.check("local", "Local-pass-1", "203.0.113.5").ok
        assert auth.check("local", "wrong", "198.51.100.7").reason == "bad-credentials"
        assert waiting.is_alive()  # all of that while the bind was still stuck
        release.set()
        waiting.join(30)
        assert first[0].reason == "bad-credentials"
        master.close()
    finally:
        release.set()
        holder.join(30)
        tarpit.close()
