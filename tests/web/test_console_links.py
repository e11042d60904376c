"""What an attack on the console found, each shut: the links a message view or an export
gives end with the session they were made in and with the account's right to log in, an export
link works once, a link with a mangled signature is refused (not a 500), guessing the current
password through a stolen session ends the account's sessions, and costly HTML (nesting, one
image named many times) stays cheap to show. In-process (the browser's side is in
tests/console)."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.mime import view as view_module
from mailkeep.core.mime.view import INLINE_BYTES, MAX_DEPTH, safe_html
from tests.apiclient import api_client
from tests.helpers import mk_ok

RAW = (b"From: a@example.org\r\nSubject: linked\r\nMessage-ID: <l1@example.org>\r\n"
       b"Content-Type: text/html\r\n\r\n<p>hello</p>\r\n")


def login(api: TestClient, password: str = "Alice-pass-1") -> dict[str, str]:
    result = api.post("/mcapi/auth/login", json={"userName": "alice",
                                                  "password": password}).json()["result"]
    assert result["status"] == "success", result
    return {"X-Fs-SessionId": result["data"]["sessionId"]}


def call(api: TestClient, sid: dict[str, str], route: str, **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = api.post(f"/mcapi/{route}", headers=sid, json=body).json()["result"]
    return result


def alice(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    mk_ok(data, "call", "CreateUser", "userName=alice", "privileges=login",
          "password=Alice-pass-1")
    mail = tmp_path / "m.eml"
    mail.write_bytes(RAW)
    mk_ok(data, "import", "--user", "alice", str(mail))
    return data


def test_links_end_with_their_session_and_account(tmp_path: Path) -> None:
    data = alice(tmp_path)
    with api_client(data) as api:
        sid = login(api)
        assert api.post("/mcapi/archive/search", headers=sid, json={}).headers[
            "x-content-type-options"] == "nosniff"
        msg = call(api, sid, "archive/message", id="1:1")["data"]
        assert api.get(msg["sourceUrl"]).content == RAW
        assert "hello" in api.get(msg["bodyUrl"]).text
        api.post("/mcapi/auth/logout", headers=sid)
        for url in (msg["sourceUrl"], msg["bodyUrl"]):
            resp = api.get(url)
            assert resp.status_code == 403 and "session" in resp.text
        sid = login(api)
        msg = call(api, sid, "archive/message", id="1:1")["data"]
        mk_ok(data, "call", "SetUserPrivileges", "userName=alice", "privileges=none")
        assert api.get(msg["sourceUrl"]).status_code == 403  # may no longer log in
        mk_ok(data, "call", "SetUserPrivileges", "userName=alice", "privileges=login")
        sid = login(api)
        made = call(api, sid, "archive/export", format="mbox")["data"]
        assert made["count"] == 1
        first = api.get(made["url"])
        assert first.status_code == 200 and RAW.split(b"\r\n\r\n")[0] in first.content
        again = api.get(made["url"])
        assert again.status_code == 403 and "used" in again.text
        # a signature of other characters: refused, not a server error
        body = made["url"].rsplit("/", 1)[1].partition(".")[0]
        assert api.get(f"/console/export/{body}.%C3%A9").status_code == 403


def test_guessing_the_current_password_ends_the_sessions(tmp_path: Path) -> None:
    data = alice(tmp_path)
    with api_client(data) as api:
        sid = login(api)
        for _ in range(4):
            wrong = call(api, sid, "account/password", currentPassword="guess",
                         newPassword="Whatever-pass-9")
            assert wrong["status"] == "error" and "not right" in wrong["message"]
        last = call(api, sid, "account/password", currentPassword="guess",
                    newPassword="Whatever-pass-9")
        assert "sessions of this account have ended" in last["message"]
        assert call(api, sid, "archive/search")["code"] == 3001  # logged out
        login(api)  # the password itself is unchanged


def test_a_search_too_complex_is_an_argument_error_not_damage(tmp_path: Path) -> None:
    data = alice(tmp_path)
    with api_client(data) as api:
        sid = login(api)
        answer = call(api, sid, "archive/search", query="-a* " * 2000)
        assert answer["status"] == "error" and "too complex" in answer["message"]
        assert "Repair" not in answer["message"]


def test_costly_html_stays_cheap() -> None:
    deep = safe_html(b"", "<div>" * 300_000 + "deep text", False)
    assert f"more than {MAX_DEPTH} elements deep" in deep and "deep text" in deep
    assert len(deep) < 1000
    image = base64.encodebytes(b"\x89PNG" + b"x" * 999_996)
    raw = (b"Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\nContent-Type: "
           b"image/png\r\nContent-ID: <a>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + image + b"\r\n--b--\r\n")
    shown = safe_html(raw, '<img src="cid:a">' * 300, False)
    assert len(shown) <= INLINE_BYTES + 300 * 20  # one image named 300 times: not 300 copies
    assert shown.count("data:image/png") == 3


def test_static_files_are_sent_compressed_to_those_that_take_it(tmp_path: Path) -> None:
    from importlib import resources

    original = (resources.files("mailkeep.web") / "static" / "app.js").read_bytes()
    with api_client(tmp_path / "data") as api:
        packed = api.get("/console/static/app.js", headers={"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.content == original  # (the client unpacks it)
        assert int(packed.headers["content-length"]) < len(original) / 2
        plain = api.get("/console/static/app.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == original
        assert "script-src 'self'" in plain.headers["content-security-policy"]


def big_message(*attachments: tuple[str, bytes]) -> bytes:
    out = (b"From: a@example.org\r\nSubject: large\r\nMessage-ID: <big@example.org>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nSee the attachments.\r\n")
    for name, data in attachments:
        out += (f"--b\r\nContent-Type: application/octet-stream; name={name}\r\n"
                f"Content-Disposition: attachment; filename={name}\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n").encode()
        out += base64.encodebytes(data).replace(b"\n", b"\r\n")
    return out + b"--b--\r\n"


def test_a_large_attachment_downloads_whole(tmp_path: Path) -> None:
    """A message of 14 MB (more than indexing parses): both its attachments are listed with
    their sizes, and each downloads byte for byte, the one past the first 4 MiB included."""
    first, second = random.randbytes(10 << 20), random.randbytes(100_000)
    data = alice(tmp_path)
    mail = tmp_path / "big.eml"
    mail.write_bytes(big_message(("first.bin", first), ("second.bin", second)))
    mk_ok(data, "import", "--user", "alice", str(mail))
    with api_client(data) as api:
        sid = login(api)
        msg = call(api, sid, "archive/message", id="1:2")["data"]
        parts = {p["name"]: p for p in msg["parts"]}
        assert parts["first.bin"]["size"] == len(first)
        assert parts["second.bin"]["size"] == len(second)
        assert api.get(parts["first.bin"]["url"]).content == first
        assert api.get(parts["second.bin"]["url"]).content == second


def test_a_part_cut_by_the_view_limit_is_not_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bytes a view parses, the part that may have been cut is not listed (nor
    served): the warning says the original has it. (The limit is lowered for the test.)"""
    monkeypatch.setattr(view_module, "VIEW_BYTES", 2 << 20)
    whole, cut = random.randbytes(1 << 20), random.randbytes(3 << 20)
    raw = big_message(("whole.bin", whole), ("cut.bin", cut))
    shown = view_module.view(raw)
    assert [p.name for p in shown.parts] == ["whole.bin"]
    assert any("the original has them" in w for w in shown.warnings)
    found = view_module.part_bytes(raw, 0)
    assert found is not None and found[1] == whole
    assert view_module.part_bytes(raw, 1) is None


def test_reading_someone_elses_mail_is_audited(tmp_path: Path) -> None:
    """bob, granted read on alice's Inbox, opens her message: on the record
    (MessageRetrieveContent, who, which, whose); alice reading her own is not. Every export is
    on the record, and so is the command line's show."""
    data = alice(tmp_path)
    mk_ok(data, "call", "CreateUser", "userName=bob", "privileges=login",
          "password=Bob-pass-1")
    mk_ok(data, "call", "SetUserPrivilegesOnFolder", "userName=bob", "folder=alice",
          "privileges=read")
    with api_client(data) as api:
        call(api, login(api), "archive/message", id="1:1")
        bob = api.post("/mcapi/auth/login", json={"userName": "bob", "password": "Bob-pass-1"}
                       ).json()["result"]["data"]["sessionId"]
        assert call(api, {"X-Fs-SessionId": bob}, "archive/message", id="1:1")["status"] \
            == "success"
        call(api, {"X-Fs-SessionId": bob}, "archive/export", query="linked")
    mk_ok(data, "show", "1:1")
    log = json.loads(mk_ok(data, "call", "GetAuditLog", "action=Message").stdout)["records"]
    seen = [(r["actor"], r["action"], r["details"].get("owner")) for r in reversed(log)]
    assert seen[0] == ("mcapi:bob", "MessageRetrieveContent", "alice")
    assert seen[1][:2] == ("mcapi:bob", "MessageExport")
    assert seen[2][1] == "MessageRetrieveContent" and seen[2][0].startswith("cli:")
    assert len(seen) == 3  # alice's own read is not among them
