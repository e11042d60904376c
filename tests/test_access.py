"""Who may do what: the holes an attacker found in the trust boundary, each produced for real
against the server (in-process where the transport is not the point, a real `mailkeep serve`
where it is) and shown refused."""

from __future__ import annotations

import hashlib
import json
import os
import smtplib
import ssl
import stat
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mailkeep.core.admin.auth import Authenticator
from mailkeep.core.admin.users import Users
from mailkeep.core.masterdb import MasterDB
from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, api_client, basic, decode, finish
from tests.helpers import CHEAP, call_function, free_port, mk, mk_ok, serving
from tests.web.test_journal import archived, message, server

TLS = ssl._create_unverified_context()  # the server's own self-signed certificate


def console(api: TestClient, user: str, password: str) -> dict[str, str]:
    resp = api.post("/mcapi/auth/login", json={"userName": user, "password": password})
    assert resp.status_code == 200, resp.text
    return {"X-Fs-SessionId": resp.json()["result"]["data"]["sessionId"]}


def create_connection(api: TestClient, session: dict[str, str], name: str) -> Any:
    return api.post("/mcapi/connection/create", headers=session,
                    json={"name": name, "type": "smtp", "serverName": "smtp.example.org"})


def outbox(data: Path) -> list[tuple[str, str]]:
    master = MasterDB.of(data)
    try:
        return [(kind, text) for kind, text in master.conn.execute(
            "SELECT kind, text FROM notify_events ORDER BY id")]
    finally:
        master.close()


# -- 1. forwarded addresses ---------------------------------------------------------------------
def test_initial_password_is_refused_through_a_proxy_on_this_machine(tmp_path: Path) -> None:
    """The documented --no-tls set-up behind a proxy on the same host: every request comes
    from loopback, but one that a proxy passes on (it names the client it forwards for) is not
    from this machine, so admin/admin is refused, to the API and to the console alike. The
    same request without the header, from someone at the server, still works."""
    with api_client(tmp_path / "data") as api:
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        resp = api.post("/api/invoke/GetServerInfo", headers={**basic(), **forwarded})
        assert resp.status_code == 403 and "initial password" in resp.text
        resp = api.post("/mcapi/auth/login", headers={"Forwarded": "for=203.0.113.7"},
                        json={"userName": "admin", "password": "admin"})
        assert resp.status_code == 403 and resp.json()["result"]["code"] == 2003
        assert api.post("/api/invoke/GetServerInfo", headers=basic()).status_code == 200


# -- 2. a console session keeps no role of its own ---------------------------------------------
def test_demoted_administrator_loses_the_session_rights_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with api_client(data) as api:
        decode(api.post("/api/invoke/CreateUser", headers=basic(), data={
            "userName": "ann", "privileges": "admin,login", "password": "Ann-pass-1"}))
        session = console(api, "ann", "Ann-pass-1")
        assert create_connection(api, session, "c1").status_code == 200
        decode(api.post("/api/invoke/SetUserPrivileges", headers=basic(), data={
            "userName": "ann", "privileges": "login"}))
        decode(api.post("/api/invoke/SetUserRole", headers=basic(), data={
            "userName": "ann", "role": "operator"}))
        resp = create_connection(api, session, "c2")
        assert resp.status_code == 403 and resp.json()["result"]["code"] == 3002
        # Taking login away ends what is left of the session.
        decode(api.post("/api/invoke/SetUserPrivileges", headers=basic(), data={
            "userName": "ann", "privileges": "none"}))
        resp = api.get("/mcapi/connection/list", headers=session)
        assert resp.json()["result"]["code"] == 3001
    assert [c["name"] for c in call_function(data, "GetConnections")["connections"]] == ["c1"]


# -- 3. the shell's password reset ends console sessions ---------------------------------------
def test_password_reset_from_the_shell_ends_console_sessions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with api_client(data) as api:
        session = console(api, "admin", "admin")
        assert api.get("/mcapi/connection/list", headers=session).status_code == 200
        mk_ok(data, "user", "password", "admin", "--password", "Recovered-pass-1")
        resp = api.get("/mcapi/connection/list", headers=session)
        assert resp.json()["result"]["code"] == 3001


# -- 4. a job runs with its owner's rights, checked at each run ---------------------------------
def test_job_of_a_demoted_owner_fails_and_says_so(tmp_path: Path) -> None:
    """A job created by an administrator who is then demoted runs no more: its result says
    why, the refusal is in the audit log and a notification is queued. Nothing it would have
    done happened: the owner did not make itself an administrator again."""
    data = tmp_path / "data"
    mk_ok(data, "user", "list")  # the data directory with its initial administrator
    call_function(data, "CreateUser", userName="mallory", privileges="admin,login",
                  password="Mallory-pass-1")
    job = call_function(data, "CreateJob", name="promote", owner="mallory",
                        action="SetUserPrivileges userName=mallory privileges=admin,login",
                        timeZoneId="$Local", date="2030-01-01T00:00:00")
    call_function(data, "SetUserPrivileges", userName="mallory", privileges="login")
    outcome = call_function(data, "RunJobAsync", id=str(job["id"]))
    assert outcome["result"] == "failed"
    assert "mallory" in outcome["error"] and "not an administrator" in outcome["error"]
    assert call_function(data, "GetUserInfo", userName="mallory")["privileges"] == ["login"]
    assert any(kind == "process.failed" and "promote" in text and "refused" in text
               for kind, text in outbox(data))


# -- 5. login and loginPrivileges ----------------------------------------------------------------
def test_an_account_without_the_login_privilege_logs_in_nowhere(tmp_path: Path) -> None:
    """privileges=admin without login: refused by the API (403), the console (2003) and SMTP
    AUTH alike; with login it works everywhere."""
    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "smtp.auth", "true")
    mk_ok(data, "call", "CreateUser", "userName=nolog", "privileges=admin",
          "password=Nolog-pass-1")
    with api_client(data) as api:
        resp = api.post("/api/invoke/GetServerInfo", headers=basic("nolog", "Nolog-pass-1"))
        assert resp.status_code == 403 and "privilege login" in resp.text
        resp = api.post("/mcapi/auth/login", json={"userName": "nolog",
                                                    "password": "Nolog-pass-1"})
        assert resp.status_code == 403 and resp.json()["result"]["code"] == 2003
    with server(data) as (_proc, port), smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=TLS)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("nolog", "Nolog-pass-1")
    mk_ok(data, "call", "SetUserPrivileges", "userName=nolog", "privileges=admin,login")
    with api_client(data) as api:
        resp = api.post("/api/invoke/GetServerInfo", headers=basic("nolog", "Nolog-pass-1"))
        assert resp.status_code == 200


def test_the_last_administrator_keeps_login(tmp_path: Path) -> None:
    mk_ok(tmp_path / "data", "user", "list")  # the data directory with its administrator
    result = mk(tmp_path / "data", "call", "SetUserPrivileges", "userName=admin",
                "privileges=admin")
    assert result.exit_code == 4 and "must keep the privilege 'login'" in result.stderr


# -- 6. SMTP AUTH ---------------------------------------------------------------------------------
def test_smtp_auth_answers_nothing_about_passwords_outside_the_networks(tmp_path: Path) -> None:
    """From outside smtp.networks no password is looked at: the client is refused at its
    greeting (554), whatever it would send, and nothing counts towards a lockout."""
    data = tmp_path / "data"
    for args in (["settings", "set", "smtp.auth", "true"],
                 ["settings", "set", "smtp.networks", "192.0.2.0/24"],
                 ["call", "CreateUser", "userName=journal", "privileges=archive,login",
                  "password=Journal-pass-1"]):
        mk_ok(data, *args)
    replies = []
    with server(data) as (_proc, port):
        for _password in ("Journal-pass-1", "wrong", "Journal-pass-1"):
            with pytest.raises(smtplib.SMTPConnectError) as refused:
                smtplib.SMTP("127.0.0.1", port, timeout=10)
            replies.append((refused.value.smtp_code, refused.value.smtp_error))
    assert replies == [(554, b"5.7.1 This client may not journal to mailkeep")] * 3


def test_smtp_auth_failures_lock_out_the_api_too_and_notify(tmp_path: Path) -> None:
    """Wrong passwords over SMTP AUTH count with the API's: after five the account is locked
    for that address on every interface, the right password included, and the lockout is
    queued as a notification."""
    data = tmp_path / "data"
    for args in (["settings", "set", "smtp.auth", "true"],
                 ["call", "CreateUser", "userName=journal", "privileges=admin,login",
                  "password=Journal-pass-1"]):
        mk_ok(data, *args)
    port, smtp_port = free_port(), free_port()
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port),
                 "--smtp-port", str(smtp_port), port=port, smtp_port=smtp_port):
        for i in range(5):
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                client.starttls(context=TLS)
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    client.login("journal", f"guess {i}")
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False,
                          timeout=30) as http:
            resp = http.post("/api/invoke/GetServerInfo",
                             headers=basic("journal", "Journal-pass-1"))
    assert resp.status_code == 401 and "Too many failed logins" in resp.text
    assert any(kind == "auth.lockout" and "journal" in text for kind, text in outbox(data))


def test_an_archiving_user_cannot_file_into_someone_elses_archive(tmp_path: Path) -> None:
    """eve may archive her own mail over SMTP AUTH; a message she sends to alice's address
    lands in eve's archive, not alice's. The journal's own account still routes by address."""
    data = tmp_path / "data"
    for args in (["settings", "set", "smtp.auth", "true"],
                 ["call", "CreateUser", "userName=alice", "privileges=login"],
                 ["call", "SetUserEmailAddresses", "userName=alice",
                  "emailAddresses=alice@example.org"],
                 ["call", "CreateUser", "userName=eve", "privileges=archive,login",
                  "password=Eve-pass-1"],
                 ["call", "CreateUser", "userName=journal", "privileges=archive,login",
                  "password=Journal-pass-1"]):
        mk_ok(data, *args)
    forged, journaled = message(1), message(2)
    with server(data) as (_proc, port):
        for user, password, raw in (("eve", "Eve-pass-1", forged),
                                    ("journal", "Journal-pass-1", journaled)):
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.starttls(context=TLS)
                client.login(user, password)
                assert client.sendmail("ceo@example.org", ["alice@example.org"], raw) == {}
    folders = {folder for folder, _env in archived(data).values()}
    assert folders == {"eve/Inbox", "alice/Inbox"}
    got = archived(data)
    assert got[hashlib.sha256(forged).hexdigest()][0] == "eve/Inbox"
    assert got[hashlib.sha256(journaled).hexdigest()][0] == "alice/Inbox"


# -- 7. a stored password goes nowhere less protected --------------------------------------------
def test_a_profile_password_is_not_sent_in_clear_after_a_downgrade(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mk_ok(data, "user", "list")  # the data directory with its administrator
    prof = call_function(data, "CreateProfile", properties=json.dumps({
        "name": "mbox", "type": "imap", "userName": "admin", "host": "imap.example.org",
        "login": "alice", "password": "Imap-Secret-9", "security": "starttls"}))
    for weaker in ({"security": "none"}, {"verifyCertificate": False}, {"port": 143}):
        with pytest.raises(Exception, match="give password") as refused:
            call_function(data, "UpdateProfile", id=str(prof["id"]),
                          properties=json.dumps(weaker))
        assert "Imap-Secret-9" not in str(refused.value)
    moved = call_function(data, "UpdateProfile", id=str(prof["id"]), properties=json.dumps(
        {"security": "none", "password": "Imap-Secret-9"}))
    assert moved["properties"]["security"] == "none"


# -- 8. file modes ---------------------------------------------------------------------------------
def _wider(root: Path) -> list[str]:
    """What under root group or others may use."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.filemode(mode)}")
    return found


def test_every_file_is_private_whatever_the_directory_was(tmp_path: Path) -> None:
    """A data directory made 0755 before the first start, and a backup directory made 0755:
    after a server has run and made a backup, and mail came in through a command run with
    umask 022, nothing in them is open to group or others."""
    data, backups = tmp_path / "data", tmp_path / "backups"
    data.mkdir(mode=0o755)
    backups.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    os.chmod(backups, 0o755)
    old = os.umask(0o022)
    try:
        port = free_port()
        with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port),
                     port=port):
            with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False,
                              timeout=60) as http:
                resp = http.post("/api/invoke/CreateBackup", headers=basic(),
                                 data={"path": str(backups / "b1")})
                assert resp.status_code == 200
        eml = tmp_path / "one.eml"
        eml.write_bytes(message(1))
        mk_ok(data, "import", str(eml))  # in this process, whose umask lets files be read
    finally:
        os.umask(old)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    if not os.environ.get("MAILKEEP_DATABASE"):  # the master database is not in PostgreSQL
        assert stat.S_IMODE((data / "mailkeep.db").stat().st_mode) == 0o600
    assert _wider(data) == []
    assert _wider(backups / "b1") == []


# -- also: bounded hashing, and path errors that tell nothing -----------------------------------
def test_password_checks_run_at_most_max_hashing_at_once(tmp_path: Path) -> None:
    """Sixteen logins at once with different passwords (nothing cached): no more than
    max_hashing hashes run at the same moment, each costing Argon2's memory."""
    master = MasterDB.of(tmp_path / "data")
    running = peak = 0
    lock = threading.Lock()
    entered = threading.Barrier(2)  # two got in: the bound is reached, now the others queue

    class Counting(Users):
        def verify_password(self, user_name: str, password: str) -> bool:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
                first_two = running <= 2 and peak <= 2
            if first_two:
                try:
                    entered.wait(timeout=10)
                except threading.BrokenBarrierError:
                    pass
            try:
                return super().verify_password(user_name, password)
            finally:
                with lock:
                    running -= 1

    users = Counting(master, hasher=CHEAP)
    users.ensure_initial_admin()
    auth = Authenticator(users, max_hashing=2, max_failures=100)
    threads = [threading.Thread(target=auth.check, args=("admin", f"guess {i}", f"10.0.0.{i}"))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    master.close()
    assert peak == 2


def test_path_errors_tell_a_remote_caller_nothing_about_other_files(tmp_path: Path) -> None:
    """AttachStore and a profile's caFile give the same answer for a path that does not exist,
    a directory, a file that is not what is wanted and one nobody may read."""
    data = tmp_path / "data"
    plain = tmp_path / "notes.txt"
    plain.write_text("not a store, not a certificate\n")
    fake = tmp_path / "fakestore"
    fake.mkdir()
    (fake / "store.json").write_text("{garbage")
    with api_client(data) as api:
        def attach(path: Path) -> str:
            body, _log = finish(api, decode(api.post(
                "/api/invoke/AttachStore", headers=basic(), data={"name": "x", "path": str(path)})))
            assert body["statusCode"] == "failed"
            return str(body["error"]["message"]).replace(str(path), "<path>")

        def ca_file(path: Path) -> str:
            body = decode(api.post("/api/invoke/CreateProfile", headers=basic(), data={
                "properties": json.dumps({
                    "name": "p", "type": "imap", "userName": "admin", "host": "mail.example.org",
                    "login": "a", "password": "x", "caFile": str(path)})}))
            assert body["statusCode"] == "failed"
            return str(body["error"]["message"]).replace(str(path), "<path>")

        paths = [tmp_path / "missing", tmp_path, plain, fake]
        assert len({attach(p) for p in paths}) == 1, [attach(p) for p in paths]
        assert len({ca_file(p) for p in paths}) == 1, [ca_file(p) for p in paths]


def test_the_console_app_is_built_with_the_same_checks(tmp_path: Path) -> None:
    """create_app answers the console login of an account with login privileges none with
    2003, whatever else it holds (the matrix of the rest is in the function tests)."""
    data = tmp_path / "data"
    call_function(data, "CreateUser", userName="web0", privileges="admin,login",
                  password="Web0-pass-1", loginPrivileges="api")
    with TestClient(create_app(data, api_enabled=True, hasher=CHEAP), client=LOCAL) as api:
        resp = api.post("/mcapi/auth/login", json={"userName": "web0",
                                                    "password": "Web0-pass-1"})
        assert resp.status_code == 403 and "lack web" in resp.json()["result"]["message"]
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("web0", "Web0-pass-1")).status_code == 200
