"""Maintenance functions through the Administration API, in-process through the ASGI app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.archive import Archive
from mailkeep.core.storage.verify import verify
from tests.apiclient import (
    api_client,
    archive_with_messages,
    basic,
    finish,
    invoke,
)
from tests.helpers import FUNCTION_SPEC, mk


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return archive_with_messages(tmp_path / "data", tmp_path / "mail", 40, "body word{i}")


@pytest.fixture
def api(data: Path) -> Iterator[TestClient]:
    with api_client(data) as c:
        yield c


def run(api: TestClient, function_name: str, **args: Any) -> tuple[dict[str, Any], str]:
    return finish(api, invoke(api, function_name, **args))


def count(data: Path, query: str = "") -> int:
    with Archive(data) as archive:
        return archive.search(query, limit=1).total


def test_recover_store_brings_messages_back(api: TestClient, data: Path) -> None:
    store_dir = data / "stores" / "Default"
    for p in store_dir.glob("catalog.sqlite*"):
        p.unlink()
    final, log = run(api, "RecoverStore", id="1")
    assert final["statusCode"] == "succeeded", final
    assert final["result"] == {"messages": 40, "records": final["result"]["records"],
                               "problems": []}
    assert final["result"]["records"] >= 80  # a message record and an entry record each
    assert "Rebuilding catalog and full-text index of store Default" in log
    assert "40 messages in the rebuilt catalog" in log
    assert count(data) == 40 and count(data, "word7") == 1
    with Archive(data) as archive:
        store = archive.open_store(archive.find_store(1), write=True)
        assert verify(store).ok


def test_recover_store_argument_errors(api: TestClient) -> None:
    final, _ = run(api, "RecoverStore", id="1", encryptionKey="s3cret-key")
    assert final["statusCode"] == "failed"
    assert "encryptionKey is not used" in final["error"]["message"]
    assert "s3cret-key" not in json.dumps(final)
    final, _ = run(api, "RecoverStore", id="1", recoverDeletedMessages="true")
    assert final["statusCode"] == "failed"
    assert "not supported" in final["error"]["message"]
    # empty values of the optional arguments are "not given"
    final, _ = run(api, "RecoverStore", id="1", encryptionKey="", recoverDeletedMessages="")
    assert final["statusCode"] == "succeeded", final
    final, _ = run(api, "RecoverStore", id="99")
    assert final["statusCode"] == "failed" and "no store" in final["error"]["message"]
    body = invoke(api, "RecoverStore", id="one")
    assert body["statusCode"] == "failed" and "a number is expected" in body["error"]["message"]
    body = invoke(api, "RebuildStoreIndex", id="1")
    assert body["error"]["message"] == "Missing API argument folder."
    body = invoke(api, "MergeStore", id="1")
    assert body["error"]["message"] == "Missing API argument sourceId."
    body = invoke(api, "CreateBackup")
    assert body["error"]["message"] == "Missing API argument path."


def test_metadata_matches_the_original(api: TestClient) -> None:
    spec = {f["name"]: f for f in json.loads(FUNCTION_SPEC.read_text())}
    meta = {m["name"]: m for m in json.loads(
        api.get("/api/get-metadata", headers=basic()).content.decode("utf-8-sig"))}
    for name in ("RecoverStore", "RecreateRecoveryRecords", "RefreshAllStoreStatistics",
                 "RetryOpenStores", "UpgradeStore", "UpgradeStores", "GetStoreIndexes",
                 "RebuildStoreIndex", "SelectAllStoreIndexesForRebuild",
                 "RebuildSelectedStoreIndexes", "CompactStore", "MergeStore", "CreateBackup"):
        assert [{k: a[k] for k in ("name", "type")} for a in meta[name]["args"]] == [
            {k: a[k] for k in ("name", "type")} for a in spec[name]["args"]], name
        for ours, theirs in zip(meta[name]["args"], spec[name]["args"], strict=True):
            # an argument the original added later is optional here, and says its default
            assert ours["nullable"] == theirs["nullable"] or "default" in ours, (name, ours)
        assert meta[name]["longRunning"] == spec[name]["longRunning"], name


def test_index_selection_and_rebuild(api: TestClient, data: Path) -> None:
    made = invoke(api, "CreateStore", name="Second")["result"]
    indexes = invoke(api, "GetStoreIndexes")["result"]
    assert indexes == [
        {"storeId": 1, "name": "fulltext", "needsRebuild": False, "selectedForRebuild": False,
         "attachmentTextPending": 0},
        {"storeId": made["id"], "name": "fulltext", "needsRebuild": False,
         "selectedForRebuild": False, "attachmentTextPending": 0}]
    assert invoke(api, "SelectAllStoreIndexesForRebuild")["error"] is None
    assert all(i["selectedForRebuild"] for i in invoke(api, "GetStoreIndexes")["result"])
    one = invoke(api, "GetStoreIndexes", id="1")["result"]
    assert [i["storeId"] for i in one] == [1]
    # wipe the index of store 1: the rebuild brings it back
    with Archive(data) as archive:
        store = archive.open_store(archive.find_store(1), write=True)
        store.catalog.conn.execute("INSERT INTO fts(fts) VALUES ('delete-all')")
    assert count(data, "word7") == 0
    final, log = run(api, "RebuildSelectedStoreIndexes")
    assert final["statusCode"] == "succeeded", final
    assert "store Default" in log and "store Second" in log
    assert count(data, "word7") == 1
    assert not any(i["selectedForRebuild"] for i in invoke(api, "GetStoreIndexes")["result"])
    final, log = run(api, "RebuildSelectedStoreIndexes")
    assert final["statusCode"] == "succeeded" and "No store index is selected" in log
    final, log = run(api, "RebuildStoreIndex", id="1", folder="INBOX")
    assert final["statusCode"] == "succeeded", final
    assert "folder INBOX is rebuilt with the rest" in log


def test_retry_open_and_statistics(api: TestClient, data: Path, tmp_path: Path) -> None:
    made = invoke(api, "CreateStore", name="Second")["result"]
    Path(made["databasePath"]).rename(tmp_path / "moved-away")
    final, _ = run(api, "RetryOpenStores")
    assert final["statusCode"] == "succeeded", final
    by_name = {r["name"]: r for r in final["result"]}
    assert by_name["Default"] == {"id": 1, "name": "Default", "ok": True, "error": None}
    assert by_name["Second"]["ok"] is False
    assert "not found" in by_name["Second"]["error"]
    final, log = run(api, "RefreshAllStoreStatistics")
    assert final["statusCode"] == "succeeded", final
    assert "Store Default (id 1): 40 messages" in log
    assert "Store Second" in log and "cannot be opened" in log


def test_upgrade_and_recovery_records(api: TestClient, data: Path) -> None:
    final, log = run(api, "UpgradeStore", id="1")
    assert final["statusCode"] == "succeeded" and "Store Default is up to date" in log
    final, log = run(api, "UpgradeStores")
    assert final["statusCode"] == "succeeded" and "Store Default is up to date" in log
    final, log = run(api, "RecreateRecoveryRecords", id="1")
    assert final["statusCode"] == "succeeded", final
    assert "the segments are the recovery records" in log and "40 messages verified" in log
    seg = next((data / "stores" / "Default" / "segments").glob("*.seg"))
    raw = bytearray(seg.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    seg.write_bytes(bytes(raw))
    final, _ = run(api, "RecreateRecoveryRecords", id="1")
    assert final["statusCode"] == "failed" and "found" in final["error"]["message"]


def test_compact_store(api: TestClient, data: Path) -> None:
    messages = invoke(api, "GetMessages", folder="admin/Inbox")["result"] or []
    hits = {}
    with Archive(data) as archive:
        for hit in archive.search("", limit=100).hits:
            hits[hit.message_id] = archive.message(hit.message_id)[1].read(hit.hit.number)
    assert len(hits) == 40, messages
    doomed = sorted(hits)[:25]
    for message_id in doomed:
        body = invoke(api, "DeleteMessage", id=message_id, reason="retention")
        assert body["statusCode"] == "succeeded", body
    seg_dir = data / "stores" / "Default" / "segments"
    before = sum(p.stat().st_size for p in seg_dir.glob("*.seg"))
    final, log = run(api, "CompactStore", id="1")
    assert final["statusCode"] == "succeeded", final
    result = final["result"]
    assert result["messagesDropped"] == 25
    assert result["bytesBefore"] == before
    assert result["bytesAfter"] == sum(p.stat().st_size for p in seg_dir.glob("*.seg"))
    assert result["bytesAfter"] < before / 2
    assert "Compacting store Default (id 1)" in log and "25 deleted messages' bytes" in log
    with Archive(data) as archive:
        for message_id, raw in hits.items():
            if message_id in doomed:
                continue
            rec, store, number = archive.message(message_id)
            assert store.read(number) == raw
        assert archive.search("", limit=1).total == 15
    assert verify_ok(data)
    final, _ = run(api, "CompactStore", id="9")
    assert final["statusCode"] == "failed" and "no store" in final["error"]["message"]


def verify_ok(data: Path) -> bool:
    with Archive(data) as archive:
        return verify(archive.open_store(archive.find_store(1), write=True)).ok


def test_merge_store(api: TestClient, data: Path) -> None:
    assert invoke(api, "CreateStore", name="Target")["statusCode"] == "succeeded"
    final, _ = run(api, "MergeStore", id="2", sourceId="1")
    assert final["statusCode"] == "failed"
    assert "is the current store" in final["error"]["message"]  # nothing changed
    invoke(api, "SetStoreRequestedState", id="2", requestedState="current")
    final, _ = run(api, "MergeStore", id="2", sourceId="2")
    assert "into itself" in final["error"]["message"]
    final, log = run(api, "MergeStore", id="2", sourceId="1")
    assert final["statusCode"] == "succeeded", final
    assert final["result"] == {"messages": 40, "merged": 40, "duplicates": 0}
    assert "Store Default (id 1) detached" in log
    stores = invoke(api, "GetStores")["result"]
    assert [(s["id"], s["name"]) for s in stores] == [(2, "Target")]
    with Archive(data) as archive:
        found = archive.search("word7")
        assert [h.message_id.split(":")[0] for h in found.hits] == ["2"]
    # The source's files are still there, whole: it can be attached again.
    assert (data / "stores" / "Default" / "store.json").exists()
    body = invoke(api, "AttachStore", name="Old", type="FileSystemInternal",
                  databasePath=str(data / "stores" / "Default"))
    assert body["statusCode"] == "succeeded", body
    with Archive(data) as archive:
        assert archive.search("word7").total == 2  # one in each store


def test_create_backup_restores_and_verifies(api: TestClient, data: Path,
                                             tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "Secret"
    assert invoke(api, "CreateStore", name="Secret", encrypt="true",
                  databasePath=str(outside))["error"] is None
    backup = tmp_path / "backup"
    final, log = run(api, "CreateBackup", path=str(backup), excludeSearchIndexes="false")
    assert final["statusCode"] == "succeeded", final
    assert final["result"]["path"] == str(backup.resolve())
    assert final["result"]["bytes"] > 0
    assert "Backing up store Default" in log and "Backing up store Secret" in log
    assert (backup / "conf" / "master.key").exists()
    assert (backup / "stores" / "Default" / "catalog.sqlite").exists()
    assert (backup / "external").is_dir()
    # the original goes away: the backup stands on its own
    data.rename(tmp_path / "data-gone")
    outside.rename(tmp_path / "secret-gone")
    res = mk(backup, "verify")
    assert res.exit_code == 0, res.output
    with Archive(backup) as archive:
        assert archive.search("word7").total == 1
        assert {r.name: r.path.is_relative_to(backup.resolve()) for r in archive.stores()} == {
            "Default": True, "Secret": True}


def test_create_backup_without_indexes(api: TestClient, data: Path, tmp_path: Path) -> None:
    backup = tmp_path / "backup-small"
    backup.mkdir()  # an empty directory is fine
    final, log = run(api, "CreateBackup", path=str(backup), excludeSearchIndexes="true")
    assert final["statusCode"] == "succeeded", final
    assert "left out (excludeSearchIndexes)" in log
    assert not (backup / "stores" / "Default" / "catalog.sqlite").exists()
    res = mk(backup, "verify")
    assert res.exit_code == 0, res.output
    with Archive(backup) as archive:
        assert archive.search("word7").total == 1


def test_create_backup_refuses_bad_targets(api: TestClient, data: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    final, _ = run(api, "CreateBackup", path=str(full), excludeSearchIndexes="false")
    assert final["statusCode"] == "failed" and "not an empty directory" in final["error"][
        "message"]
    assert (full / "keep.txt").read_text() == "x"
    final, _ = run(api, "CreateBackup", path="relative/dir", excludeSearchIndexes="false")
    assert final["statusCode"] == "failed" and "absolute" in final["error"]["message"]
    final, _ = run(api, "CreateBackup", path=str(data / "inside"), excludeSearchIndexes="false")
    assert final["statusCode"] == "failed" and "outside the data directory" in final["error"][
        "message"]
    # a store that cannot be found makes the backup fail, and leaves nothing behind
    made = invoke(api, "CreateStore", name="Second")["result"]
    Path(made["databasePath"]).rename(tmp_path / "moved-away")
    target = tmp_path / "partial"
    final, _ = run(api, "CreateBackup", path=str(target), excludeSearchIndexes="false")
    assert final["statusCode"] == "failed" and "not found" in final["error"]["message"]
    assert not target.exists()


def test_set_store_properties_follows_a_moved_store(api: TestClient, data: Path,
                                                    tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "Default"
    body = invoke(api, "SetStoreProperties", id="1", databasePath=str(moved))
    assert body["statusCode"] == "failed" and "not a mailkeep store" in body["error"]["message"]
    assert invoke(api, "CreateStore", name="Other")["statusCode"] == "succeeded"
    other = data / "stores" / "Other"
    body = invoke(api, "SetStoreProperties", id="1", databasePath=str(other))
    assert "holds another store" in body["error"]["message"]
    moved.parent.mkdir()
    (data / "stores" / "Default").rename(moved)
    stores = invoke(api, "GetStores", includeSize="true")["result"]
    assert "not found" in stores[0]["error"]
    body = invoke(api, "SetStoreProperties", id="1", databasePath="relative/Default")
    assert "absolute path" in body["error"]["message"]
    body = invoke(api, "SetStoreProperties", id="1", databasePath=str(moved),
                  serverName="db1")
    assert "database-server" in body["error"]["message"]
    body = invoke(api, "SetStoreProperties", id="1", databasePath=str(moved))
    assert body["statusCode"] == "succeeded", body
    assert body["result"]["databasePath"] == str(moved.resolve())
    stores = invoke(api, "GetStores", includeSize="true")["result"]
    assert stores[0]["error"] is None and stores[0]["statisticsCount"] == 40
    assert count(data, "word7") == 1
