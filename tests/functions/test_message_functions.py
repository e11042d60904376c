"""DeleteMessage, MoveFolder and DeleteEmptyFolders through the Administration API in-process,
and what they leave in the segments (a recovered catalog agrees)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailkeep.core.archive import Archive
from mailkeep.core.storage.verify import recover, verify
from tests.apiclient import finish, invoke
from tests.functions.test_folder_functions import api, data, failed, ok  # noqa: F401

__all__ = ["api", "data"]  # fixtures


def ids(api: TestClient, folder: str) -> dict[str, str]:
    """subject -> id of the messages directly in a folder."""
    return {m["subject"]: m["id"] for m in ok(api, "GetMessages", folder=folder)}


def audit(data: Path, action: str) -> list[dict[str, object]]:
    with Archive(data) as archive:
        rows = archive.master.conn.execute(
            "SELECT details FROM audit WHERE action = ? ORDER BY id", (action,)).fetchall()
    return [json.loads(r[0]) for r in rows]


def rebuilt_tree(data: Path) -> list[tuple[str, str, int, int]]:
    """The folder tree after rebuilding the catalog from the segments alone."""
    with Archive(data) as archive:
        store = archive.open_store(archive.find_store(1), write=True)
        recover(store)
        assert verify(store).ok
        return archive.folders()


def test_delete_message(api: TestClient, data: Path) -> None:
    inbox = ids(api, "alice/Inbox")
    assert ok(api, "DeleteMessage", id=inbox["second"], reason="GDPR request 2024-17") is None
    assert set(ids(api, "alice/Inbox")) == {"first"}
    with Archive(data) as archive:
        assert archive.search("second").total == 0
        assert archive.search("first").total == 1
    entry = audit(data, "DeleteMessage")
    assert entry == [{"via": "api", "user": "admin", "address": "127.0.0.1",
                      "agent": "testclient",
                      "args": {"id": inbox["second"], "reason": "GDPR request 2024-17"},
                      "outcome": "succeeded", "folder": "alice/Inbox", "subject": "second",
                      "sender": "dave@example.org", "date": 1704187800,
                      "size": entry[0]["size"]}]
    # Gone for good: the segments say so too.
    counts = {(o, p): n for o, p, n, _b in rebuilt_tree(data)}
    assert counts[("alice", "Inbox")] == 1
    with Archive(data) as archive:
        assert archive.search("second").total == 0
    err = failed(api, "DeleteMessage", id=inbox["second"], reason="again")
    assert "does not exist" in err


def test_delete_message_bad_input_changes_nothing(api: TestClient, data: Path) -> None:
    first = ids(api, "alice/Inbox")["first"]
    assert "reason is required" in failed(api, "DeleteMessage", id=first, reason="  ")
    assert "Missing API argument reason" in failed(api, "DeleteMessage", id=first)
    assert "<storeId>:<number>" in failed(api, "DeleteMessage", id="first", reason="x")
    assert "does not exist" in failed(api, "DeleteMessage", id="1:999", reason="x")
    assert "no store" in failed(api, "DeleteMessage", id="7:1", reason="x")
    ok(api, "CreateStore", name="Second")
    ok(api, "SetStoreRequestedState", id="2", requestedState="current")
    ok(api, "SetStoreRequestedState", id="1", requestedState="writeProtected")
    assert "writeProtected" in failed(api, "DeleteMessage", id=first, reason="x")
    assert first in ids(api, "alice/Inbox").values()
    # the attempts that got as far as running are in the audit log, as failed
    attempts = audit(data, "DeleteMessage")
    assert {a["outcome"] for a in attempts} == {"failed"} and len(attempts) == 5


def test_move_folder_keeps_ids(api: TestClient, data: Path) -> None:
    before = ids(api, "alice/Inbox/Lists/linux")
    ok(api, "MoveFolder", fromFolder="alice/Inbox/Lists", toFolder="alice/Archive/Lists")
    assert ids(api, "alice/Archive/Lists/linux") == before
    assert "does not exist" in failed(api, "GetMessages", folder="alice/Inbox/Lists/linux")
    tops = [f["folder"] for f in ok(api, "GetChildFolders", folder="alice")]
    assert tops == ["alice/Archive", "alice/Inbox"]
    with Archive(data) as archive:
        assert archive.search("folder:Archive/Lists/linux kernel").total == 1
    # Into another user's archive, the whole of it.
    ok(api, "MoveFolder", fromFolder="bob", toFolder="carol/from-bob")
    assert [f["folder"] for f in ok(api, "GetChildFolders", maxLevels="3")
            if f["folder"].startswith(("bob", "carol"))] == [
        "carol", "carol/from-bob", "carol/from-bob/Inbox"]
    # The moves are in the segments: a catalog rebuilt from them has the same tree.
    tree = {(o, p) for o, p, _n, _b in rebuilt_tree(data)}
    assert ("alice", "Archive/Lists/linux") in tree and ("carol", "from-bob/Inbox") in tree
    assert not any(o == "bob" or p.startswith("Inbox/Lists") for o, p in tree)
    assert ids(api, "alice/Archive/Lists/linux") == before
    assert [a["args"]["toFolder"] for a in audit(data, "MoveFolder")] == [
        "alice/Archive/Lists", "carol/from-bob"]


def test_move_folder_refusals(api: TestClient) -> None:
    assert "does not exist" in failed(api, "MoveFolder", fromFolder="alice/Nowhere",
                                      toFolder="alice/Else")
    assert "already exists" in failed(api, "MoveFolder", fromFolder="alice/Inbox/Sent",
                                      toFolder="bob/Inbox")
    assert "into itself" in failed(api, "MoveFolder", fromFolder="alice/Inbox",
                                   toFolder="alice/Inbox/Deeper")
    assert "must name a folder" in failed(api, "MoveFolder", fromFolder="/",
                                          toFolder="alice/X")
    assert "Missing API argument toFolder" in failed(api, "MoveFolder", fromFolder="alice")
    assert [f["folder"] for f in ok(api, "GetChildFolders", folder="alice/Inbox")] == [
        "alice/Inbox/Lists", "alice/Inbox/Sent"]


def test_delete_empty_folders(api: TestClient, data: Path) -> None:
    for m in ok(api, "GetMessages", folder="alice/Inbox/Lists/linux"):
        ok(api, "DeleteMessage", id=m["id"], reason="cleanup")
    sent = ids(api, "alice/Inbox/Sent")["reply"]
    ok(api, "DeleteMessage", id=sent, reason="cleanup")
    # Empty now, but still there until asked.
    assert ok(api, "GetMessages", folder="alice/Inbox/Lists/linux") == []
    body, _log = finish(api, invoke(api, "DeleteEmptyFolders", folder="bob"))
    assert body["result"] == {"deleted": []}
    body, log = finish(api, invoke(api, "DeleteEmptyFolders", folder="alice/Inbox/Lists"))
    assert body["statusCode"] == "succeeded", body
    assert body["result"] == {"deleted": ["alice/Inbox/Lists/linux"]}
    assert "Deleted empty folder alice/Inbox/Lists/linux" in log
    body, _log = finish(api, invoke(api, "DeleteEmptyFolders"))
    assert body["result"] == {"deleted": ["alice/Inbox/Sent"]}
    assert [f["folder"] for f in ok(api, "GetChildFolders", folder="alice", maxLevels="3")
            ] == ["alice/Inbox"]
    tree = {(o, p) for o, p, _n, _b in rebuilt_tree(data)}
    assert tree == {("alice", "Inbox"), ("bob", "Inbox")}


def test_move_folder_across_stores(api: TestClient, data: Path, tmp_path: Path) -> None:
    from mailkeep.core.ingest import Importer
    from mailkeep.sources.detect import read_paths
    ok(api, "CreateStore", name="Second")
    ok(api, "SetStoreRequestedState", id="2", requestedState="current")
    mail = tmp_path / "more"
    (mail / "Sent").mkdir(parents=True)
    (mail / "Sent" / "a.eml").write_bytes(b"Subject: sent later\r\n\r\nx\r\n")
    (mail / "Extra").mkdir()
    (mail / "Extra" / "b.eml").write_bytes(b"Subject: extra\r\n\r\ny\r\n")
    with Archive(data) as archive:
        Importer(archive, owner="alice", base_folder="Inbox/Sent", workers=1).run(read_paths(
            [mail / "Sent" / "a.eml"]))
        Importer(archive, owner="alice", base_folder="Extra", workers=1).run(read_paths(
            [mail / "Extra" / "b.eml"]))
    assert len(ok(api, "GetMessages", folder="alice/Inbox/Sent")) == 2  # one in each store
    # The new place exists only in the other store: still taken.
    assert "already exists" in failed(api, "MoveFolder", fromFolder="alice/Inbox/Lists",
                                      toFolder="alice/Extra")
    ok(api, "MoveFolder", fromFolder="alice/Inbox/Sent", toFolder="alice/Old")
    assert sorted(m["id"][0] for m in ok(api, "GetMessages", folder="alice/Old")) == ["1", "2"]
    # A disabled store that holds part of the folder: nothing moves anywhere.
    ok(api, "SetStoreRequestedState", id="1", requestedState="disabled")
    assert "disabled" in failed(api, "MoveFolder", fromFolder="alice/Old",
                                toFolder="alice/Older")
    ok(api, "SetStoreRequestedState", id="1", requestedState="normal")
    assert len(ok(api, "GetMessages", folder="alice/Old")) == 2


@pytest.mark.parametrize("few", [True, False])
def test_a_scoped_search_is_driven_by_the_search_not_by_the_scope(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, few: bool) -> None:
    """A console user's search carries its scope (the folders it may read). SQLite must not
    probe the (blob, folder) index for every pair of the scope's folders and the messages
    with attachments: 40 s for one has:attachment on a million messages (bench/million.py).
    Folders holding few entries are gone through by the folder index; more, the scope is
    only checked."""
    from mailkeep.core.archive import Archive
    from mailkeep.core.storage import catalog_search
    from mailkeep.functions.reading import Scope, scoped_query
    from tests.apiclient import archive_with_messages
    from tests.helpers import mk_ok
    monkeypatch.setattr(catalog_search, "FEW_ENTRIES", 1000 if few else 0)
    data = archive_with_messages(tmp_path / "data", tmp_path / "mail", 5)
    (tmp_path / "c").mkdir()  # carol's folder: outside the scope
    (tmp_path / "c" / "1.eml").write_bytes(b"From: c@example.org\r\nSubject: c\r\n\r\nc\r\n")
    mk_ok(data, "import", "--user", "carol", str(tmp_path / "c"))
    query = scoped_query("has:attachment", Scope((("admin", ""), ("bob", "Inbox"))))
    with Archive(data) as archive:
        [(_rec, store)] = archive.readable_stores()
        sql, params = store.catalog._plan(query).sql()
        plan = " ".join(str(row[3]) for row in store.catalog.conn.execute(
            f"EXPLAIN QUERY PLAN SELECT count(*) FROM {sql}", params))
    assert "blob_id=? AND folder_id=?" not in plan, plan
    assert ("entries_folder" in plan) == few, plan
