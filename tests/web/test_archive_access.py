"""Archive access: administrators do not read other users' mail unless the compliance
configuration says so (changing that needs the caller's password again and a reason, and is
audited without the password); auditors search and read every archive, change nothing, and
every one of their reads is on the record; auditing.off leaves out what may be left out and
nothing else. All through the real server in-process (the console's /mcapi and the
Administration API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.apiclient import api_client, basic, decode, fast_users, finish
from tests.helpers import audit_since, mk, mk_ok

ALICE_PW = "Alice-pass-12345"
EVE_PW = "Eve-auditor-12345"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    users = fast_users(data)
    users.create("admin", ["admin", "login"], password="Admin-pass-12345")
    users.create("alice", ["login"], password=ALICE_PW)
    users.create("eve", ["login", "auditor"], password=EVE_PW)
    users.master.close()
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(b"From: bank@example.com\r\nTo: alice@example.org\r\n"
                                 b"Subject: salary statement\r\n\r\nconfidential\r\n")
    mk_ok(data, "import", "--user", "alice", "--folder", "Inbox", str(mail))
    return data


def call(api: TestClient, user: str, password: str, name: str, **args: Any) -> dict[str, Any]:
    body, _log = finish(api, decode(api.post(f"/api/invoke/{name}", data=args,
                                             headers=basic(user, password))))
    return body


def search(api: TestClient, user: str, password: str) -> list[str]:
    body = call(api, user, password, "SearchArchive", query="salary")
    assert body["statusCode"] == "succeeded", body
    return [m["id"] for m in body["result"]["messages"]]


def session(api: TestClient, user: str, password: str) -> dict[str, str]:
    login = api.post("/mcapi/auth/login", json={"userName": user, "password": password})
    assert login.status_code == 200, login.text
    return {"X-Fs-SessionId": login.json()["result"]["data"]["sessionId"]}


def mc_search(api: TestClient, who: dict[str, str]) -> list[str]:
    found = api.post("/mcapi/archive/search", headers=who, json={"query": "salary"})
    assert found.status_code == 200, found.text
    return [m["id"] for m in found.json()["result"]["data"]["messages"]]


def mc_read(api: TestClient, who: dict[str, str], message_id: str) -> Any:
    return api.post("/mcapi/archive/message", headers=who, json={"id": message_id})


def access(api: TestClient, **fields: Any) -> dict[str, Any]:
    config = {"archiveAccess": fields}
    body, _log = finish(api, decode(api.post(
        "/api/invoke/SetComplianceConfiguration", data={"config": json.dumps(config)},
        headers={**basic("admin", "Admin-pass-12345"),
                 "User-Agent": "check_mailkeep/2.1 \x1b[31m"})))
    return body


def test_administrators_read_others_mail_only_once_allowed_with_password_and_reason(
        data: Path) -> None:
    with api_client(data) as api:
        assert mc_search(api, session(api, "alice", ALICE_PW)) == ["1:1"]
        assert search(api, "admin", "Admin-pass-12345") == []  # the default: not theirs
        denied = call(api, "admin", "Admin-pass-12345", "GetArchiveMessage", id="1:1")
        assert denied["statusCode"] == "failed"

        no_pw = access(api, administrators=True, reason="Investigation 4")
        assert no_pw["statusCode"] == "failed" and "password" in no_pw["error"]["message"]
        wrong = access(api, administrators=True, reason="Investigation 4", password="guess")
        assert wrong["statusCode"] == "failed"
        no_reason = access(api, administrators=True, password="Admin-pass-12345")
        assert no_reason["statusCode"] == "failed" and "reason" in no_reason["error"]["message"]
        assert search(api, "admin", "Admin-pass-12345") == []  # nothing changed

        ok = access(api, administrators=True, reason="Investigation 4",
                    password="Admin-pass-12345")
        assert ok["statusCode"] == "succeeded", ok
        shown = ok["result"]["archiveAccess"]
        assert shown["administrators"] is True and shown["setBy"] == "api:admin"
        assert "password" not in json.dumps(ok["result"])
        assert search(api, "admin", "Admin-pass-12345") == ["1:1"]
        read = call(api, "admin", "Admin-pass-12345", "GetArchiveMessage", id="1:1")
        assert read["statusCode"] == "succeeded" and "confidential" in read["result"]["text"]
    records = audit_since(data)
    assert "Admin-pass-12345" not in json.dumps(records)
    calls = [d for _a, action, d in records if action == "SetComplianceConfiguration"]
    assert calls and all(d["via"] == "api" and d["address"] == "127.0.0.1"
                         and d["agent"] == "check_mailkeep/2.1 ?[31m" for d in calls)
    assert all(d["args"]["config"]["archiveAccess"].get("password") in (None, "***")
               for d in calls)
    change = [d for _a, action, d in records if action == "ComplianceChangeSettings"]
    assert change[-1]["archiveAccess"] == {"administrators": True, "auditors": True,
                                           "reason": "Investigation 4"}
    reads = [(a, d) for a, action, d in records if action == "MessageRetrieveContent"]
    assert reads == [("api:admin", {"id": "1:1", "owner": "alice", "folder": "alice/Inbox",
                                    "access": "administrator"})]


def test_an_auditor_reads_everything_on_the_record_and_changes_nothing(data: Path) -> None:
    off = {"auditing": {"off": ["MessageRetrieveContent", "MessageSearch"]}}
    mk_ok(data, "call", "SetComplianceConfiguration", f"config={json.dumps(off)}")
    with api_client(data) as api:
        eve = session(api, "eve", EVE_PW)
        assert mc_search(api, eve) == ["1:1"]
        read = mc_read(api, eve, "1:1")
        assert read.status_code == 200 and "confidential" in read.text
        # what an administrator does is not an auditor's: the Administration API is closed
        for name, args in (("DeleteMessage", {"id": "1:1", "reason": "x"}),
                           ("SetComplianceConfiguration", {"config": "{}"}),
                           ("CreateUser", {"userName": "mallory", "privileges": "admin"})):
            refused = api.post(f"/api/invoke/{name}", data=args, headers=basic("eve", EVE_PW))
            assert refused.status_code == 403, (name, refused.text)
        # nor the console's administration
        mc = api.post("/mcapi/connection/create", headers=eve,
                      json={"name": "c", "type": "smtp", "serverName": "smtp.example.org"})
        assert mc.status_code == 403 and mc.json()["result"]["code"] == 3002
        # alice, reading her own mail with the same events switched off: not recorded
        alice = session(api, "alice", ALICE_PW)
        assert mc_read(api, alice, "1:1").status_code == 200
    records = audit_since(data)
    searches = [a for a, action, _d in records if action == "MessageSearch"]
    reads = [(a, d.get("access")) for a, action, d in records
             if action == "MessageRetrieveContent"]
    # switched off for everyone else, never for an auditor
    assert searches == ["mcapi:eve"]
    assert reads == [("mcapi:eve", "auditor")]

    # switched off for auditors: nothing at all
    mk_ok(data, "call", "SetComplianceConfiguration",
          "config=" + json.dumps({"archiveAccess": {"auditors": False, "reason": "audit over"}}))
    with api_client(data) as api:
        assert mc_search(api, session(api, "eve", EVE_PW)) == []


def test_an_auditor_is_never_an_administrator(data: Path) -> None:
    for args in (["userName=mallory", "privileges=login,auditor,admin"],):
        got = mk(data, "call", "CreateUser", *args)
        assert got.exit_code != 0 and "auditor" in got.output
    got = mk(data, "call", "SetUserRole", "userName=eve", "role=administrator")
    assert got.exit_code != 0 and "auditor" in got.output
    got = mk(data, "call", "SetUserPrivileges", "userName=eve", "privileges=login,auditor,delete")
    assert got.exit_code != 0


def test_only_switchable_events_can_be_switched_off(data: Path) -> None:
    for event in ("ComplianceChangeSettings", "DeleteMessage", "MessageDelete", "nonsense"):
        got = mk(data, "call", "SetComplianceConfiguration",
                 "config=" + json.dumps({"auditing": {"off": [event]}}))
        assert got.exit_code != 0 and "cannot be switched off" in got.output, event
    conf = json.loads(mk_ok(data, "call", "GetComplianceConfiguration").stdout)
    assert conf["auditing"] == {"off": []}


def test_what_only_archive_access_allows_is_always_recorded(data: Path) -> None:
    config = {"archiveAccess": {"administrators": True, "reason": "Case 7"},
              "auditing": {"off": ["MessageRetrieveContent", "MessageSearch", "MessageExport"]}}
    mk_ok(data, "call", "SetComplianceConfiguration", f"config={json.dumps(config)}")
    with api_client(data) as api:
        assert search(api, "admin", "Admin-pass-12345") == ["1:1"]
        read = call(api, "admin", "Admin-pass-12345", "GetArchiveMessage", id="1:1")
        assert read["statusCode"] == "succeeded"
    recorded = {(a, action) for a, action, d in audit_since(data)
                if d.get("access") == "administrator"}
    assert recorded == {("api:admin", "MessageSearch"), ("api:admin", "MessageRetrieveContent")}


def test_a_password_anywhere_in_the_configuration_stays_out_of_the_record(data: Path) -> None:
    config = {"archiveAccess": {"auditors": False, "reason": "x", "Password": "Leak-1"},
              "notes": {"password": "Leak-2", "apiToken": "Leak-3"}}
    mk_ok(data, "call", "SetComplianceConfiguration", f"config={json.dumps(config)}")
    job = mk(data, "call", "CreateJob", "name=j", "owner=admin", "timeZoneId=UTC",
             "action=SetComplianceConfiguration config='{\"archiveAccess\": {\"administrators\":"
             " true, \"reason\": \"r\", \"password\": \"Leak-4\"}}'")
    assert job.exit_code != 0 and "secret" in job.output
    text = json.dumps(audit_since(data))
    assert not any(f"Leak-{i}" in text for i in range(1, 5)), text
