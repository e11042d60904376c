"""The Administration API in-process, through the ASGI app, as a MailStore client sees it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailkeep.functions import REGISTRY
from tests.apiclient import (
    api_client,
    archive_with_messages,
    basic,
    decode,
    fast_users,
    finish,
    invoke,
)
from tests.helpers import master_sql

REMOTE = ("192.0.2.10", 50123)


client_for = api_client


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return archive_with_messages(tmp_path / "data", tmp_path / "mail", 40)


@pytest.fixture
def api(data: Path) -> Iterator[TestClient]:
    with client_for(data) as c:
        yield c


def test_challenge_then_envelope(api: TestClient) -> None:
    resp = api.post("/api/invoke/GetServerInfo")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Basic realm=")
    resp = api.post("/api/invoke/GetServerInfo", headers=basic())
    body = decode(resp)
    assert body["statusCode"] == "succeeded" and body["statusVersion"] == 2
    assert body["token"] is None and body["error"] is None and body["logOutput"] is None
    assert set(body["result"]) == {"version", "machineName"}
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert "no-store" in resp.headers["cache-control"] and resp.headers["pragma"] == "no-cache"


def test_wrong_password_and_disabled_api(data: Path) -> None:
    with client_for(data) as api:
        assert api.post("/api/invoke/GetServerInfo", headers=basic("admin", "nope")
                        ).status_code == 401
    with client_for(data, enabled=False) as api:
        resp = api.post("/api/invoke/GetServerInfo", headers=basic())
        assert resp.status_code == 403 and "disabled" in resp.text


def test_initial_password_answers_loopback_only(data: Path) -> None:
    with client_for(data, client=REMOTE) as api:
        resp = api.post("/api/invoke/GetServerInfo", headers=basic())
        assert resp.status_code == 403 and "initial password" in resp.text
    users = fast_users(data)
    users.set_password("admin", "s3cret-Pass")
    users.master.close()
    with client_for(data, client=REMOTE) as api:
        decode(api.post("/api/invoke/GetServerInfo", headers=basic("admin", "s3cret-Pass")))


def test_metadata_and_double_slashes(api: TestClient) -> None:
    resp = api.get("/api/get-metadata", headers=basic())
    meta = json.loads(resp.content.decode("utf-8-sig"))
    assert isinstance(meta, list)
    by_name = {m["name"]: m for m in meta}
    assert by_name["VerifyStore"]["args"] == [
        {"name": "id", "type": "number", "nullable": False},
        # added in a later version of the original: optional, the earlier behaviour by default
        {"name": "includeIndexes", "type": "bool", "nullable": True, "default": False},
        {"name": "report", "type": "bool", "nullable": True},  # extensions: optional
        {"name": "heads", "type": "string", "nullable": True},
        {"name": "publicKey", "type": "string", "nullable": True}]
    assert by_name["get-status"]["path"] == "api/"
    assert api.post("/api//get-metadata", headers=basic()).status_code == 200
    decode(api.post("/api//invoke/GetServerInfo", headers=basic()))


def test_argument_errors_change_nothing(api: TestClient) -> None:
    body = invoke(api, "RenameStore", name="x")
    assert body["statusCode"] == "failed"
    assert body["error"]["message"] == "Missing API argument id."
    body = invoke(api, "RenameStore", id="1", name="x", colour="red")
    assert body["error"]["message"] == "Unknown API argument colour."
    body = invoke(api, "RenameStore", id="one", name="x")
    assert "a number is expected" in body["error"]["message"]
    body = invoke(api, "SetStoreRequestedState", id="1", requestedState="frozen")
    assert "use one of current, normal" in body["error"]["message"]
    body = invoke(api, "NoSuchFunction")
    assert body["error"]["message"] == "Unknown API function NoSuchFunction."
    stores = invoke(api, "GetStores", includeSize="True")["result"]
    assert [s["name"] for s in stores] == ["Default"] and stores[0]["statisticsCount"] == 40


def test_every_function_rejects_missing_arguments(api: TestClient) -> None:
    for fn in REGISTRY:
        required = [a.name for a in fn.args if not a.nullable and a.default is None]
        if not required:
            continue
        body = invoke(api, fn.name)
        assert body["statusCode"] == "failed", fn.name
        assert body["error"]["message"] == f"Missing API argument {required[0]}.", fn.name


def test_store_functions(api: TestClient, tmp_path: Path) -> None:
    made = invoke(api, "CreateStore", name="2026", requestedState="current")["result"]
    assert made["name"] == "2026" and made["requestedState"] == "current"
    states = {s["name"]: s["requestedState"] for s in invoke(api, "GetStores")["result"]}
    assert states == {"Default": "normal", "2026": "current"}
    assert invoke(api, "RenameStore", id=str(made["id"]), name="Year 2026")["error"] is None
    assert invoke(api, "SetStoreRequestedState", id="1", requestedState="current"
                  )["error"] is None
    assert invoke(api, "DetachStore", id=str(made["id"]))["error"] is None
    body = invoke(api, "AttachStore", name="Back", type="FileSystemInternal",
                  databasePath=made["databasePath"])
    assert body["error"] is None and body["result"]["name"] == "Back"
    body = invoke(api, "CreateStore", name="x", type="SQLServer")
    assert "not supported" in body["error"]["message"]


def test_verify_store_runs_as_a_process(api: TestClient, data: Path) -> None:
    body = invoke(api, "VerifyStore", id="1", includeIndexes="true")
    final, log = finish(api, body)
    assert final["statusCode"] == "succeeded", final
    assert "Verifying store Default" in log and "40 messages verified" in log
    assert "\r\n" in log
    seg = next((data / "stores" / "Default" / "segments").glob("*.seg"))
    raw = bytearray(seg.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    seg.write_bytes(bytes(raw))
    final, log = finish(api, invoke(api, "VerifyStore", id="1", includeIndexes="false"))
    assert final["statusCode"] == "failed"
    assert "found" in final["error"]["message"] and "problem" in log


def test_unknown_token_is_404(api: TestClient) -> None:
    resp = api.post("/api/get-status", headers=basic(), data={
        "token": "0" * 32, "lastKnownStatusVersion": "-1", "millisecondsTimeout": "10"})
    assert resp.status_code == 404
    assert api.post("/api/cancel-async", headers=basic(), data={"token": "x"}).status_code == 404


def test_no_secret_in_answers(api: TestClient) -> None:
    body = invoke(api, "CreateStore", name="db", type="PostgreSQL", password="hunter2-secret")
    assert "hunter2-secret" not in json.dumps(body)


def test_finished_processes_are_recorded(data: Path) -> None:
    with client_for(data) as api:
        finish(api, invoke(api, "VerifyStore", id="1", includeIndexes="true"))
        invoke(api, "RenameStore", id="1", name="Renamed")
    with master_sql(data) as db:
        rows = db.execute('SELECT name, "user", outcome FROM process_history').fetchall()
        audited = [(actor, action) for actor, action in db.execute(
            "SELECT actor, action FROM audit").fetchall()]
    assert ("VerifyStore", "admin", "succeeded") in rows
    assert ("api:admin", "VerifyStore") in audited and ("api:admin", "RenameStore") in audited


@pytest.mark.parametrize("content_type, content", [
    ("multipart/form-data", b"token=x&id=1"),  # no boundary
    ("multipart/form-data; boundary=xyz", b"garbage\r\n--xyz\r\nnonsense"),
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data\r\n\r\nv\r\n--xyz--\r\n'),  # no name
])
def test_unreadable_form_is_an_argument_error(api: TestClient, content_type: str,
                                              content: bytes) -> None:
    for path in ("/api/invoke/GetServerInfo", "/api/get-status", "/api/cancel-async"):
        resp = api.post(path, headers={**basic(), "Content-Type": content_type},
                        content=content)
        body = decode(resp)  # HTTP 200 and the envelope, as for a missing argument
        assert body["statusCode"] == "failed" and body["token"] is None, path
        assert body["error"]["details"] == "invalid_argument", path
        message = body["error"]["message"]
        assert message.startswith("The request body could not be read as "
                                  "multipart/form-data: "), message
        assert "with a boundary" in message
    missing = decode(api.post("/api/get-status", headers=basic()))
    assert missing["error"]["details"] == "invalid_argument"  # the same answer as this one
    assert api.post("/api/get-metadata", headers={**basic(), "Content-Type": content_type},
                    content=content).status_code == 200


def test_other_paths_and_methods_keep_starlettes_answers(api: TestClient) -> None:
    assert api.get("/api/invoke/GetServerInfo", headers=basic()).status_code == 405
    assert api.get("/api/get-status", headers=basic()).status_code == 405
    assert api.post("/api/no-such-endpoint", headers=basic()).status_code == 404
    assert api.post("/api/invoke/", headers=basic()).status_code == 404
    assert api.post("/api/invoke/GetServerInfo/x", headers=basic()).status_code == 404
    assert api.head("/api/get-metadata", headers=basic()).status_code == 200
    resp = api.post("/api/invoke/GetServerInfo")  # the fast path authenticates like the rest
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Basic")
    body = decode(api.post("/api/invoke/getserverinfo", headers=basic()))
    assert body["statusCode"] == "succeeded"  # names match case-insensitively, as before


def test_an_older_client_leaves_out_arguments_added_later(api: TestClient) -> None:
    """A script written for an older version of the original calls VerifyStore without
    includeIndexes, CreateBackup without excludeSearchIndexes and GetProfiles without raw (the
    arguments came later): the call runs with the behaviour of the versions before them."""
    final, log = finish(api, invoke(api, "VerifyStore", id="1"))
    assert final["statusCode"] == "succeeded", final
    assert "messages verified" in log
    final, _ = finish(api, invoke(api, "VerifyStores"))
    assert final["statusCode"] == "succeeded", final
    assert decode(api.post("/api/invoke/GetProfiles", headers=basic()))["result"] == []
    meta = {m["name"]: m for m in json.loads(
        api.get("/api/get-metadata", headers=basic()).content.decode("utf-8-sig"))}
    assert {"name": "raw", "type": "bool", "nullable": True, "default": False} in \
        meta["GetProfiles"]["args"]
