"""Folder and status functions through the Administration API in-process."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.archive import Archive
from mailkeep.core.ingest import Importer
from mailkeep.core.masterdb import MasterDB
from mailkeep.sources.detect import read_paths
from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, basic, invoke
from tests.helpers import CHEAP


def ok(api: TestClient, function_name: str, **args: Any) -> Any:
    body = invoke(api, function_name, **args)
    assert body["statusCode"] == "succeeded", body["error"]
    return body["result"]


def failed(api: TestClient, function_name: str, **args: Any) -> str:
    body = invoke(api, function_name, **args)
    assert body["statusCode"] == "failed" and body["result"] is None
    message: str = body["error"]["message"]
    return message


def message(sender: str, subject: str, date: str = "Mon, 1 Jan 2024 10:00:00 +0200",
            to: str = "bob@example.org", attach: bool = False) -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
    if not attach:
        return (head + "\r\nbody\r\n").encode()
    return (head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
            "--XX\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            "--XX\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=a.bin\r\n\r\nAAAA\r\n--XX--\r\n"
            ).encode()


def maildir(root: Path, files: dict[str, bytes]) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        (root / "cur" / name).write_bytes(raw)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """alice: Inbox (2), Inbox/Lists (0 own), Inbox/Lists/linux (1), Inbox/Sent (1);
    bob: Inbox (1)."""
    d = tmp_path / "data"
    alice = tmp_path / "alice"
    maildir(alice, {
        "1.host:2,S": message("carol@example.org", "first",
                              "Mon, 1 Jan 2024 10:00:00 +0200", attach=True),
        "2.host:2,FS": message("dave@example.org", "second", "Tue, 2 Jan 2024 09:30:00 +0000"),
    })
    maildir(alice / ".Lists.linux", {"3.host:2,": message("list@example.org", "kernel")})
    maildir(alice / ".Sent", {"4.host:2,RS": message("alice@example.org", "reply")})
    bob = tmp_path / "bob"
    maildir(bob, {"5.host:2,S": message("erin@example.org", "for bob")})
    with Archive(d) as archive:
        Importer(archive, owner="alice", base_folder="Inbox", workers=1).run(read_paths([alice]))
        Importer(archive, owner="bob", base_folder="Inbox", workers=1).run(read_paths([bob]))
    return d


@pytest.fixture
def api(data: Path) -> Iterator[TestClient]:
    app = create_app(data, api_enabled=True, hasher=CHEAP)
    with TestClient(app, client=LOCAL) as c:
        yield c


def test_child_folders_top_and_below(api: TestClient) -> None:
    top = ok(api, "GetChildFolders")
    assert [f["folder"] for f in top] == ["alice", "bob"]
    assert top[0] == {"folder": "alice", "name": "alice", "messageCount": 0, "size": 0,
                      "hasChildren": True}
    assert ok(api, "GetChildFolders", folder="", maxLevels="") == top
    inbox = ok(api, "GetChildFolders", folder="alice")
    assert [(f["folder"], f["name"], f["messageCount"]) for f in inbox] == [
        ("alice/Inbox", "Inbox", 2)]
    assert inbox[0]["size"] > 0 and inbox[0]["hasChildren"] is True
    below = ok(api, "GetChildFolders", folder="alice/Inbox")
    assert [(f["folder"], f["messageCount"], f["hasChildren"]) for f in below] == [
        ("alice/Inbox/Lists", 0, True), ("alice/Inbox/Sent", 1, False)]
    # A trailing slash is the same folder.
    assert ok(api, "GetChildFolders", folder="alice/Inbox/") == below


def test_child_folders_levels(api: TestClient) -> None:
    deep = ok(api, "GetChildFolders", folder="alice", maxLevels="5")
    assert [f["folder"] for f in deep] == [
        "alice/Inbox", "alice/Inbox/Lists", "alice/Inbox/Lists/linux", "alice/Inbox/Sent"]
    two = ok(api, "GetChildFolders", maxLevels="2")
    assert [f["folder"] for f in two] == ["alice", "alice/Inbox", "bob", "bob/Inbox"]
    assert ok(api, "GetChildFolders", folder="alice/Inbox/Lists/linux") == []


def test_child_folders_errors(api: TestClient) -> None:
    assert "a number is expected" in failed(api, "GetChildFolders", maxLevels="deep")
    assert "maxLevels" in failed(api, "GetChildFolders", maxLevels="0")
    assert "maxLevels" in failed(api, "GetChildFolders", maxLevels="1.5")
    err = failed(api, "GetChildFolders", folder="alice/Nowhere")
    assert "alice/Nowhere" in err and "does not exist" in err
    assert "does not exist" in failed(api, "GetChildFolders", folder="carol")
    assert "Unknown API argument" in failed(api, "GetChildFolders", path="alice")


def test_folder_statistics(api: TestClient) -> None:
    stats = ok(api, "GetFolderStatistics")
    by = {s["folder"]: s for s in stats}
    assert list(by) == sorted(by) == [
        "alice", "alice/Inbox", "alice/Inbox/Lists", "alice/Inbox/Lists/linux",
        "alice/Inbox/Sent", "bob", "bob/Inbox"]
    assert by["alice"]["messageCount"] == 0 and by["alice"]["totalMessageCount"] == 4
    assert by["alice/Inbox"]["messageCount"] == 2
    assert by["alice/Inbox/Lists"]["totalMessageCount"] == 1
    assert by["bob"]["totalMessageCount"] == 1
    inbox_total = sum(by[f]["size"] for f in by if f.startswith("alice/Inbox"))
    assert by["alice/Inbox"]["totalSize"] == inbox_total == by["alice"]["totalSize"]


def test_messages_in_a_folder(api: TestClient) -> None:
    msgs = ok(api, "GetMessages", folder="alice/Inbox")
    assert [m["subject"] for m in msgs] == ["first", "second"]  # not the subfolders' mail
    first, second = msgs
    assert set(first) == {"id", "date", "from", "to", "subject", "size", "hasAttachment",
                          "flags"}
    assert re.fullmatch(r"\d+:\d+", first["id"])
    assert first["date"] == "2024-01-01T08:00:00Z"
    assert second["date"] == "2024-01-02T09:30:00Z"
    assert first["from"] == "carol@example.org" and first["to"] == "bob@example.org"
    assert first["hasAttachment"] is True and second["hasAttachment"] is False
    assert first["flags"] == ["seen"]
    assert sorted(second["flags"]) == ["flagged", "seen"]
    assert first["size"] > second["size"] > 0
    sub = ok(api, "GetMessages", folder="alice/Inbox/Lists/linux")
    assert [(m["subject"], m["flags"]) for m in sub] == [("kernel", [])]
    # A folder with subfolders but no messages of its own, and an archive root: empty.
    assert ok(api, "GetMessages", folder="alice/Inbox/Lists") == []
    assert ok(api, "GetMessages", folder="alice") == []
    assert [m["subject"] for m in ok(api, "GetMessages", folder="bob/Inbox")] == ["for bob"]
    ids = {m["id"] for m in msgs} | {m["id"] for m in sub}
    assert len(ids) == 3


def test_messages_errors(api: TestClient) -> None:
    err = failed(api, "GetMessages", folder="alice/Outbox")
    assert "alice/Outbox" in err and "does not exist" in err
    assert failed(api, "GetMessages") == "Missing API argument folder."
    assert "must name a folder" in failed(api, "GetMessages", folder="/")


def test_service_status(api: TestClient, data: Path) -> None:
    status = ok(api, "GetServiceStatus")
    assert set(status) == {"version", "machineName", "uptimeSeconds", "stores", "diskSpace",
                           "jobs", "unsentNotifications", "warnings"}
    assert status["jobs"] == []  # this call itself is not listed
    assert status["unsentNotifications"] == {"count": 0, "oldest": None}
    assert isinstance(status["uptimeSeconds"], int) and status["uptimeSeconds"] >= 0
    assert status["stores"] == [{"id": 1, "name": "Default", "state": "current", "ok": True,
                                 "error": None}]
    disk = status["diskSpace"]
    assert disk["path"] == str(data.resolve())
    assert disk["totalBytes"] >= disk["freeBytes"] >= 0
    assert all("Store" not in w and "current" not in w for w in status["warnings"])


def test_service_status_warns(api: TestClient, data: Path) -> None:
    ok(api, "CreateStore", name="Second")
    ok(api, "SetStoreRequestedState", id="2", requestedState="current")
    ok(api, "SetStoreRequestedState", id="1", requestedState="disabled")
    with Archive(data) as archive:
        second = archive.find_store(2)
    (second.path / "store.json").rename(second.path / "store.moved")
    status = ok(api, "GetServiceStatus")
    by = {s["id"]: s for s in status["stores"]}
    assert by[1]["state"] == "disabled" and by[1]["ok"] is True and by[1]["error"] is None
    assert by[2]["ok"] is False and "not found" in by[2]["error"]
    assert any("Second" in w and "unavailable" in w for w in status["warnings"])


def test_service_status_counts_unsent_notifications(api: TestClient, data: Path) -> None:
    """Events the notification mail has not carried (it is not configured here) are counted;
    once one has waited more than an hour the status warns."""
    master = MasterDB.of(data.resolve())
    try:
        master.outbox.add("disk.low", "fresh")
        status = ok(api, "GetServiceStatus")
        assert status["unsentNotifications"]["count"] == 1
        assert not any("notification" in w for w in status["warnings"])
        master.outbox.add("profile.failed", "old", at=time.time() - 7200)
    finally:
        master.close()
    status = ok(api, "GetServiceStatus")
    old = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 7200))
    assert status["unsentNotifications"]["count"] == 2
    assert status["unsentNotifications"]["oldest"].startswith(old)
    assert any("2 notification(s) not mailed" in w for w in status["warnings"])


def test_time_zones_and_sessions(api: TestClient) -> None:
    zones = ok(api, "GetTimeZones")
    assert zones[0]["id"] == "$Local" and "Local" in zones[0]["displayName"]
    ids = [z["id"] for z in zones[1:]]
    assert ids == sorted(ids) and "Europe/Berlin" in ids and "UTC" in ids
    utc = next(z for z in zones if z["id"] == "UTC")
    assert utc["displayName"] == "(UTC+00:00) UTC"
    assert all(set(z) == {"id", "displayName"} for z in zones)
    assert ok(api, "GetActiveSessions") == []


def test_metadata_lists_the_arguments(api: TestClient) -> None:
    meta = json.loads(api.get("/api/get-metadata", headers=basic()).content.decode("utf-8-sig"))
    by = {m["name"]: m for m in meta}
    assert by["GetChildFolders"]["args"] == [
        {"name": "folder", "type": "string", "nullable": True},
        {"name": "maxLevels", "type": "number", "nullable": True}]
    assert by["GetMessages"]["args"] == [{"name": "folder", "type": "string", "nullable": False}]
    for name in ("GetFolderStatistics", "GetServiceStatus", "GetTimeZones", "GetActiveSessions"):
        assert by[name]["args"] == [] and by[name]["longRunning"] is False
