"""The management-console API in-process: sessions, roles, mail/configuration get/set, the
configuration file's failure codes, and that no password ever comes back."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, fast_users, invoke
from tests.helpers import CHEAP, master_sql

SECRET = "s3cret-Relay-Pass"
SMTP = {"serverName": "smtp.example.org", "useSmtpOverSsl": False, "useStartTls": True,
        "port": 587, "fromMailAddress": "archive@example.org",
        "toMailAddress": "ops@example.org, oncall@example.org",
        "mailSubject": "!!! mailkeep notification !!!", "encoding": "us-ascii", "timeOut": 30,
        "authenticationType": "SMTP", "userName": "relay", "smtpAuthenticationType": "plain"}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    users = fast_users(tmp_path / "data")
    users.ensure_initial_admin()
    users.create("dev", "login", password="dev-pass", role="developer")
    users.create("op", "login", password="op-pass", role="operator")
    users.create("plain", "login", password="plain-pass")
    users.master.close()
    return tmp_path / "data"


@contextmanager
def client(data: Path, address: tuple[str, int] = LOCAL) -> Iterator[TestClient]:
    app = create_app(data, api_enabled=True, hasher=CHEAP)
    with TestClient(app, client=address) as c:
        yield c


@pytest.fixture
def mc(data: Path) -> Iterator[TestClient]:
    with client(data) as c:
        yield c


def body(resp: Any) -> dict[str, Any]:
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    out: dict[str, Any] = resp.json()
    assert list(out) == ["result"]
    return out["result"]


def err(resp: Any, status: int, code: int) -> str:
    got = body(resp)
    assert (resp.status_code, got["status"], got["code"]) == (status, "error", code), got
    assert set(got) == {"status", "code", "message"}
    message: str = got["message"]
    return message


def login(mc: TestClient, user: str = "admin", password: str = "admin", **extra: Any) -> str:
    resp = mc.post("/mcapi/auth/login", json={"userName": user, "password": password, **extra})
    got = body(resp)
    assert resp.status_code == 200 and got["status"] == "success", got
    sid: str = got["data"]["sessionId"]
    return sid


def h(sid: str, alias: bool = False) -> dict[str, str]:
    return {("X-As-SessionId" if alias else "X-Fs-SessionId"): sid}


def get_conf(mc: TestClient, sid: str) -> dict[str, Any]:
    resp = mc.get("/mcapi/mail/configuration/get", headers=h(sid))
    got = body(resp)
    assert resp.status_code == 200, got
    conf: dict[str, Any] = got["data"]["configuration"]
    return conf


def set_conf(mc: TestClient, sid: str, conf: dict[str, Any], wrapped: bool = True) -> Any:
    payload = ({"result": {"status": "success", "data": {"configuration": conf}}} if wrapped
               else {"configuration": conf})
    return mc.post("/mcapi/mail/configuration/set", json=payload, headers=h(sid))


def test_login_session_and_logout(mc: TestClient, data: Path) -> None:
    resp = mc.post("/mcapi/auth/login", json={"userName": "ADMIN", "password": "admin",
                                              "getRole": True})
    got = body(resp)["data"]
    assert re.fullmatch(r"[0-9A-F]{32}", got["sessionId"])
    assert got["role"] == "administrator" and got["serverName"] and got["serverId"]
    sid = got["sessionId"]
    assert "role" not in body(mc.post("/mcapi/auth/login", json={
        "userName": "admin", "password": "admin"}))["data"]
    # Form fields work as well as JSON.
    form = body(mc.post("/mcapi/auth/login", data={"userName": "op", "password": "op-pass",
                                                   "timeout": "5", "getRole": "true"}))
    assert form["data"]["role"] == "operator"
    assert get_conf(mc, sid)["authenticationType"] == "None"
    assert body(mc.get("/mcapi/mail/configuration/get", headers=h(sid, alias=True)))[
        "status"] == "success"
    sessions = invoke(mc, "GetActiveSessions")["result"]
    assert {(s["userName"], s["role"]) for s in sessions} >= {("admin", "administrator"),
                                                             ("op", "operator")}
    assert sid not in json.dumps(sessions)
    assert body(mc.post("/mcapi/auth/logout", headers=h(sid)))["status"] == "success"
    err(mc.get("/mcapi/mail/configuration/get", headers=h(sid)), 403, 3001)
    err(mc.get("/mcapi/mail/configuration/get"), 403, 3001)
    err(mc.get("/mcapi/mail/configuration/get", headers=h("0" * 32)), 403, 3001)


def test_login_failures(mc: TestClient, data: Path) -> None:
    err(mc.post("/mcapi/auth/login", json={"userName": "admin", "password": "nope"}), 401, 2001)
    # An account without a management role logs in as a user of its own archive: it may
    # search it, and nothing of the administration.
    plain = body(mc.post("/mcapi/auth/login", json={"userName": "plain", "password": "plain-pass",
                                                    "getRole": True}))
    assert plain["data"]["role"] == "user"
    found = body(mc.post("/mcapi/archive/search", json={"query": ""},
                         headers=h(plain["data"]["sessionId"])))
    assert found["status"] == "success" and found["data"]["total"] == 0
    err(mc.get("/mcapi/mail/configuration/get", headers=h(plain["data"]["sessionId"])),
        403, 3002)
    err(mc.post("/mcapi/auth/login", json={"userName": "admin"}), 400, 1002)
    err(mc.post("/mcapi/auth/login", json={"userName": "admin", "password": "admin",
                                           "timeout": 0}), 400, 1002)
    err(mc.post("/mcapi/auth/login", content=b"{not json",
                headers={"Content-Type": "application/json"}), 400, 1001)
    err(mc.get("/mcapi/auth/login"), 405, 1005)
    err(mc.get("/mcapi/no/such"), 404, 1003)
    err(mc.get("/mcapi"), 404, 1003)
    err(mc.put("/mcapi/mail/configuration/set"), 405, 1005)
    for _ in range(5):
        mc.post("/mcapi/auth/login", json={"userName": "dev", "password": "wrong"})
    resp = mc.post("/mcapi/auth/login", json={"userName": "dev", "password": "dev-pass"})
    err(resp, 429, 2002)
    assert int(resp.headers["retry-after"]) > 0
    with client(data, ("192.0.2.7", 4000)) as remote:  # initial password: loopback only
        err(remote.post("/mcapi/auth/login", json={"userName": "admin", "password": "admin"}),
            403, 2003)


def test_sessions_expire_and_survive_a_restart(data: Path) -> None:
    with client(data) as mc:
        sid = login(mc, timeout=1)
        keep = login(mc, "op", "op-pass")
    with client(data) as mc:  # a new server process on the same data directory
        assert get_conf(mc, keep)["encoding"] == "utf-8"
        assert get_conf(mc, sid)
        # Idle longer than its timeout (1 minute): the session's last activity moved back.
        with master_sql(data) as db:
            db.execute("UPDATE sessions SET last_seen = last_seen - 61 WHERE role = "
                       "'administrator'")
        err(mc.get("/mcapi/mail/configuration/get", headers=h(sid)), 403, 3001)
        assert get_conf(mc, keep)


def test_role_matrix(mc: TestClient) -> None:
    sids = {role: login(mc, user, pw) for role, user, pw in (
        ("administrator", "admin", "admin"), ("developer", "dev", "dev-pass"),
        ("operator", "op", "op-pass"))}
    for role, sid in sids.items():
        assert get_conf(mc, sid)["authenticationType"] == "None", role
        assert body(mc.get("/mcapi/connection/list", headers=h(sid)))["status"] == "success"
        if role == "administrator":
            continue
        message = err(set_conf(mc, sid, {"mailSubject": "x"}), 403, 3002)
        assert role in message and "administrator" in message
        err(mc.post("/mcapi/mail/configuration/test", headers=h(sid)), 403, 3002)
        err(mc.post("/mcapi/connection/create", json={"name": "x", "type": "smtp",
                                                       "serverName": "h"}, headers=h(sid)),
            403, 3002)
    assert get_conf(mc, sids["operator"])["mailSubject"] == "mailkeep notification"
    # A new password ends the account's sessions.
    assert invoke(mc, "SetUserPassword", userName="DEV", password="new-dev-pass")[
        "statusCode"] == "succeeded"
    err(mc.get("/mcapi/mail/configuration/get", headers=h(sids["developer"])), 403, 3001)
    # A role taken away ends what the session may do at its next request: it is a user of
    # its own archive from then on.
    assert invoke(mc, "SetUserRole", userName="op", role="")["statusCode"] == "succeeded"
    message = err(mc.get("/mcapi/mail/configuration/get", headers=h(sids["operator"])), 403,
                  3002)
    assert "Role user may not call" in message


def test_set_get_partial_and_password_write_only(mc: TestClient, data: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    sid = login(mc)
    err(set_conf(mc, sid, SMTP), 400, 1002)  # authentication needs a password
    resp = set_conf(mc, sid, {**SMTP, "password": SECRET})
    assert (resp.status_code, body(resp)) == (200, {"status": "success", "data": {}})
    conf = get_conf(mc, sid)
    assert conf == {**SMTP, "verifyCertificate": True, "caFile": None}
    assert list(conf)[:4] == ["serverName", "useSmtpOverSsl", "useStartTls", "port"]
    stored = (data / "conf" / "notification.json").read_text()
    assert SECRET not in stored and json.loads(stored)["password"]
    # Partial: only the subject changes; the password stays (the bare shape works too).
    assert set_conf(mc, sid, {"mailSubject": "archive alert"}, wrapped=False).status_code == 200
    assert get_conf(mc, sid) == {**conf, "mailSubject": "archive alert"}
    assert json.loads((data / "conf" / "notification.json").read_text())["password"] == \
        json.loads(stored)["password"]
    # Over the admin API, the same configuration, set with the original's one JSON argument.
    assert invoke(mc, "GetSmtpSettings")["result"] == get_conf(mc, sid)
    done = invoke(mc, "SetSmtpSettings", settings=json.dumps({"timeOut": 45}))
    assert done["statusCode"] == "succeeded", done
    assert get_conf(mc, sid) == {**conf, "mailSubject": "archive alert", "timeOut": 45}
    conf = {**conf, "timeOut": 45}
    bad = invoke(mc, "SetSmtpSettings", settings='{"port": 0, "password": "leak-me"}')
    assert "between 1 and 65535" in bad["error"]["message"]
    assert "leak-me" not in json.dumps(bad)
    # Switching to POP before SMTP shows that shape. The stored password would now go to the
    # POP3 server, which it was not given for: it must be given again.
    pop = {"authenticationType": "POP before SMTP", "pop3ServerName": "pop.example.org",
           "pop3Port": 110, "useApop": True, "pop3Interval": 300}
    refused = set_conf(mc, sid, pop)
    assert refused.status_code == 400 and "give the password again" in refused.text
    assert set_conf(mc, sid, {**pop, "password": SECRET}).status_code == 200
    shown = get_conf(mc, sid)
    assert shown["authenticationType"] == "POP before SMTP" and "smtpAuthenticationType" \
        not in shown and shown["userStartTlsForPop"] is False and shown["useApop"] is True
    everything = json.dumps([get_conf(mc, sid), invoke(mc, "GetSmtpSettings"),
                             invoke(mc, "GetActiveSessions")])
    assert SECRET not in everything and "password" not in everything
    assert SECRET not in caplog.text
    with master_sql(data) as db:
        audit = json.dumps(db.execute("SELECT * FROM audit").fetchall())
    assert "SetSmtpSettings" in audit and SECRET not in audit


@pytest.mark.parametrize("change, words", [
    ({"useSmtpOverSsl": True, "useStartTls": True}, "cannot both be true"),
    ({"usePopOverSsl": True, "userStartTlsForPop": True}, "cannot both be true"),
    ({"port": 70000}, "between 1 and 65535"),
    ({"port": "25a"}, "whole number"),
    ({"useStartTls": "maybe"}, "true or false"),
    ({"encoding": "latin-9"}, "encoding"),
    ({"mailSubject": "異常時通知"}, "us-ascii"),
    ({"fromMailAddress": "not an address"}, "not"),
    ({"toMailAddress": "ops@example.org\r\nBcc: x@y.z"}, "line"),
    ({"serverName": "bad host!"}, "host"),
    ({"serverName": "other.example.org"}, "password again"),
    ({"connection": "nowhere"}, "not a named SMTP connection"),
    ({"colour": "red"}, "colour"),
    ({"timeOut": 0}, "between 1 and 3600"),
])
def test_bad_values_change_nothing(mc: TestClient, data: Path, change: dict[str, Any],
                                   words: str) -> None:
    sid = login(mc)
    assert set_conf(mc, sid, {**SMTP, "password": SECRET}).status_code == 200
    before = (data / "conf" / "notification.json").read_bytes()
    message = err(set_conf(mc, sid, change), 400, 1002)
    assert words in message, message
    assert (data / "conf" / "notification.json").read_bytes() == before
    assert SECRET not in message


def test_japanese_subject_with_iso_2022_jp(mc: TestClient) -> None:
    sid = login(mc)
    ok = set_conf(mc, sid, {**SMTP, "password": SECRET, "encoding": "iso-2022-jp",
                            "mailSubject": "異常時通知メール"})
    assert ok.status_code == 200, body(ok)
    assert get_conf(mc, sid)["mailSubject"] == "異常時通知メール"


def test_configuration_file_faults(mc: TestClient, data: Path) -> None:
    sid = login(mc)
    path = data / "conf" / "notification.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text('{"format": 1, "configuration": {"port": ')  # cut short
    assert "not valid JSON" in err(mc.get("/mcapi/mail/configuration/get", headers=h(sid)),
                                   500, 5003)
    err(set_conf(mc, sid, {"mailSubject": "x"}), 500, 5003)
    assert path.read_text().endswith('"port": ')  # a set on a broken file changes nothing
    path.write_text('{"format": 1, "configuration": {"port": "many"}}')
    err(mc.get("/mcapi/mail/configuration/get", headers=h(sid)), 500, 5003)
    path.unlink()
    path.mkdir()  # unreadable as a file
    err(mc.get("/mcapi/mail/configuration/get", headers=h(sid)), 500, 5001)
    path.rmdir()
    # The directory cannot be written: immutable (chattr +i stops even root), or read-only
    # for another user. A file system without the immutable flag gets the file-size limit
    # below instead.
    if os.geteuid() != 0:
        path.parent.chmod(0o500)
        locked = True
    else:
        locked = subprocess.run(["chattr", "+i", str(path.parent)],
                                capture_output=True).returncode == 0
    if locked:
        try:
            message = err(set_conf(mc, sid, {**SMTP, "password": SECRET}), 500, 5002)
            assert SECRET not in message
        finally:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(path.parent)], check=True)
            else:
                path.parent.chmod(0o700)
        assert not path.exists()
    # A write cut short (here by a file-size limit of 100 bytes): 5002, no half file left.
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from mailkeep.notify.config import NotificationConfig, ConfigWriteError\n"
        "from mailkeep.error_table import mcapi_error\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))\n"
        "import json\n"
        "try:\n"
        "    NotificationConfig(Path(sys.argv[1])).set(json.loads(sys.argv[2]))\n"
        "except ConfigWriteError as exc:\n"
        "    print(mcapi_error(exc)[1], exc.message)\n")
    import sys
    out = subprocess.run([sys.executable, "-c", script, str(data),
                          json.dumps({**SMTP, "password": SECRET})], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.startswith("5002 notification.json could not be written"), out
    assert not path.exists() and not list(path.parent.glob(".notification.json.*"))
    # The server kept answering throughout.
    assert body(mc.post("/mcapi/auth/logout", headers=h(sid)))["status"] == "success"


def test_named_connections(mc: TestClient, data: Path) -> None:
    sid = login(mc)
    made = body(mc.post("/mcapi/connection/create", headers=h(sid), json={
        "name": "relay", "type": "smtp", "serverName": "smtp.example.org", "port": 465,
        "security": "implicit", "authentication": "login", "userName": "u",
        "password": SECRET}))["data"]["connection"]
    assert made["hasPassword"] is True and "password" not in made
    listed = body(mc.get("/mcapi/connection/list", headers=h(sid)))["data"]["connections"]
    assert [c["name"] for c in listed] == ["relay"]
    shown = body(mc.get("/mcapi/connection/show?name=relay", headers=h(sid)))["data"]
    assert shown["connection"]["port"] == 465 and SECRET not in json.dumps(shown)
    assert SECRET not in (data / "conf" / "connections.json").read_text()
    assert set_conf(mc, sid, {"connection": "relay", "fromMailAddress": "a@example.org",
                              "toMailAddress": "b@example.org"}).status_code == 200
    assert get_conf(mc, sid) == {"connection": "relay", "fromMailAddress": "a@example.org",
                                 "toMailAddress": "b@example.org",
                                 "mailSubject": "mailkeep notification", "encoding": "utf-8"}
    err(mc.post("/mcapi/connection/delete", json={"name": "relay"}, headers=h(sid)), 409, 1006)
    err(mc.post("/mcapi/connection/update", json={"name": "relay",
                                                  "serverName": "evil.example.org"},
                headers=h(sid)), 400, 1002)
    err(mc.get("/mcapi/connection/show?name=nope", headers=h(sid)), 404, 1004)
    err(mc.post("/mcapi/connection/create", json={"name": "relay", "type": "smtp",
                                                   "serverName": "h"}, headers=h(sid)),
        409, 1006)
    assert set_conf(mc, sid, {**SMTP, "password": SECRET}).status_code == 200
    assert body(mc.post("/mcapi/connection/delete", json={"name": "relay"},
                        headers=h(sid)))["status"] == "success"
