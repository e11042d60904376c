"""Importing by upload through the console API, in-process (the browser's side is in
tests/console): what is refused, and that a refusal leaves nothing behind."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from tests.apiclient import api_client
from tests.helpers import mk_ok

RAW = b"From: a@example.org\r\nSubject: uploaded\r\nMessage-ID: <u1@example.org>\r\n\r\nhi\r\n"


def login(api: TestClient, user: str, password: str) -> dict[str, str]:
    body = api.post("/mcapi/auth/login", json={"userName": user, "password": password}).json()
    return {"X-Fs-SessionId": body["result"]["data"]["sessionId"]}


def outcome(api: TestClient, sid: dict[str, str], answer: dict[str, Any]) -> dict[str, Any]:
    """The import process an upload's PUT started, followed to its end."""
    snap: dict[str, Any] = answer["data"]
    while snap["statusCode"] == "running":
        snap = api.post("/mcapi/function/status", headers=sid, json={
            "token": snap["token"], "lastKnownStatusVersion": snap["statusVersion"],
            "millisecondsTimeout": 30000}).json()["result"]["data"]
    return snap


def start(api: TestClient, sid: dict[str, str], name: str, size: int) -> dict[str, Any]:
    result: dict[str, Any] = api.post("/mcapi/archive/upload", headers=sid, json={
        "fileName": name, "size": size, "folder": "In"}).json()["result"]
    return result


def test_upload_refusals_leave_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mk_ok(data, "call", "CreateUser", "userName=alice", "privileges=login,archive",
          "password=Alice-pass-1")
    mk_ok(data, "call", "CreateUser", "userName=bob", "privileges=login",
          "password=Bob-pass-1")
    mk_ok(data, "settings", "set", "console.max_upload", str(2 << 20))
    with api_client(data) as api:
        alice = login(api, "alice", "Alice-pass-1")
        # over console.max_upload: refused before a byte is sent
        over = start(api, alice, "big.mbox", 3 << 20)
        assert over["status"] == "error" and "console.max_upload" in over["message"]
        # without the privilege archive
        refused = start(api, login(api, "bob", "Bob-pass-1"), "a.eml", len(RAW))
        assert refused["status"] == "error" and "privilege archive" in refused["message"]
        # a Content-Length other than the size announced
        link = start(api, alice, "a.eml", len(RAW))["data"]["url"]
        resp = api.put(link, content=RAW + b"more")
        assert resp.json()["result"]["code"] == 1002
        # a link whose claims were changed (another user, another size)
        body, _, sig = link.rsplit("/", 1)[1].partition(".")
        forged = link.replace(body, body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB"))
        assert api.put(forged, content=RAW).json()["result"]["code"] == 3001
        # a zip bomb: one entry of 40 MB of zeros, a few KB compressed
        bomb = io.BytesIO()
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("zeros.eml", b"\0" * (40 << 20))
        link = start(api, alice, "bomb.zip", len(bomb.getvalue()))["data"]["url"]
        done = outcome(api, alice, api.put(link, content=bomb.getvalue()).json()["result"])
        assert done["statusCode"] == "failed" and "zip bomb" in done["error"]["message"], done
        # a good one goes in
        link = start(api, alice, "a.eml", len(RAW))["data"]["url"]
        done = outcome(api, alice, api.put(link, content=RAW).json()["result"])
        assert done["result"]["archived"] == 1, done
        # the link is good for five minutes: the same bytes sent again are a duplicate
        done = outcome(api, alice, api.put(link, content=RAW).json()["result"])
        assert done["result"]["duplicates"] == 1, done
    assert not any((data / "uploads").iterdir())


def test_outlook_files_uploaded_into_the_callers_folder(tmp_path: Path) -> None:
    """A PST and an MSG file through the console's upload: the PST's folder tree below the
    folder chosen, the MSG file built into its message; named anyhow, read by their bytes."""
    from aspose.email_foss import msg as amsg

    from tests.pstfile import Folder, write_pst
    from tests.sources.test_pst import mail
    data = tmp_path / "data"
    mk_ok(data, "call", "CreateUser", "userName=alice", "privileges=login,archive",
          "password=Alice-pass-1")
    pst = tmp_path / "outlook.pst"
    write_pst(pst, [Folder("Inbox", [mail("from the pst")], [Folder("Sub", [mail("deeper")])])])
    saved = tmp_path / "saved.msg"
    amsg.MapiMessage.create("from the msg", "body").save(str(saved))
    with api_client(data) as api:
        alice = login(api, "alice", "Alice-pass-1")
        for path in (pst, saved):
            raw = path.read_bytes()
            link = start(api, alice, path.name, len(raw))["data"]["url"]
            done = outcome(api, alice, api.put(link, content=raw).json()["result"])
            assert done["statusCode"] == "succeeded", done
    got = mk_ok(data, "folders", "--user", "alice", "--json").stdout
    shown = {f["folder"]: f["messages"] for f in json.loads(got)}
    assert shown["In/Inbox"] == 1 and shown["In/Inbox/Sub"] == 1 and shown["In"] == 1, shown
