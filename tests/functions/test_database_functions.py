"""CompactMasterDatabase, MaintainFileSystemDatabases and RepairStoreDatabase: processes,
followed to their end through the Administration API (in-process) as MailStore's client follows
them, and run by `mailkeep call`. They work on real SQLite files: the master database gives the
space of deleted rows back, every catalog's full-text index is merged and rewritten, and a
catalog damaged on disk (bytes overwritten, cut short, deleted) is rebuilt from the segments
with every message readable and found again. Damage is made for real, by writing over the
files; a store another process is writing is held by a real `mailkeep import` stopped at a
named point (tests/crashpoints.py)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailkeep.core.admin.sessions import Sessions
from mailkeep.core.archive import Archive
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.storage.verify import verify
from tests.apiclient import api_client, archive_with_messages, fast_users, invoke
from tests.crashpoints import stopped_at
from tests.functions.test_server_functions import (
    SHELL_ACTOR,
    assert_documented_shape,
    assert_metadata_as_original,
    cli_call,
    metadata,
    one_audit,
    run,
    succeeded,
)
from tests.helpers import audit_since, last_audit_id, mk_ok

MESSAGES = 40
PAGE = 4096  # SQLite's page size for both databases (the default)


@pytest.fixture
def mail(tmp_path: Path) -> Path:
    return tmp_path / "mail"


@pytest.fixture
def data(tmp_path: Path, mail: Path) -> Path:
    """40 small messages in the store Default; message i says "word<i>"."""
    return archive_with_messages(tmp_path / "data", mail, MESSAGES, "body word{i}")


@pytest.fixture
def api(data: Path) -> Iterator[TestClient]:
    with api_client(data) as c:
        yield c


def catalog(data: Path, store: str = "Default") -> Path:
    return data / "stores" / store / "catalog.sqlite"


def pragma(db: Path, name: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])


def root_page(db: Path, name: str) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                                (name,)).fetchone()[0])


def overwrite(db: Path, start: int, length: int) -> None:
    """Bytes of the file replaced by garbage, as a failing disk or a stray write leaves it."""
    raw = bytearray(db.read_bytes())
    raw[start:start + length] = b"\x5a" * length
    db.write_bytes(bytes(raw))


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = 0
    for k in range(9):
        byte = buf[i]
        i += 1
        if k == 8:
            return (value << 8) | byte, i
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, i
    return value, i


def index_segments(db: Path) -> int:
    """How many segments the full-text index has: what a search reads through. FTS5 keeps the
    count in its structure record (id 10): a 4-byte cookie (and a 4-byte marker in its second
    version), then the varints nLevel and nSegment."""
    with closing(sqlite3.connect(db)) as conn:
        record = bytes(conn.execute("SELECT block FROM fts_data WHERE id = 10").fetchone()[0])
    i = 8 if record[4:8] == b"\xff\x00\x00\x01" else 4
    _levels, i = _varint(record, i)
    segments, _ = _varint(record, i)
    return segments


def has_statistics(db: Path) -> bool:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()[0] == 1


def files_of(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a store directory with its bytes and modification time."""
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def all_readable_and_found(data: Path, mail: Path) -> None:
    """Every message of the store comes back byte for byte as it was imported, and a search
    for its own word finds it (and only it)."""
    originals = {p.read_bytes() for p in mail.glob("*.eml")}
    with Archive(data) as archive:
        found = archive.search("", limit=1000)
        assert found.total == MESSAGES and not found.unavailable, found.unavailable
        read = set()
        for hit in found.hits:
            _rec, store, number = archive.message(hit.message_id)
            read.add(store.read(number))
        assert read == originals
        for i in range(MESSAGES):
            assert archive.search(f"word{i}").total == 1, i
        assert verify(archive.open_store(archive.find_store(1), write=True)).ok


# -- CompactMasterDatabase ---------------------------------------------------------------------
@pytest.mark.sqlite_master  # the file's size and free pages
def test_compact_master_database_gives_back_the_space_of_deleted_rows(data: Path) -> None:
    """1500 accounts made and deleted leave most of the master database's pages free: the
    compaction shrinks the file to well under half, leaves no free page, removes the expired
    console session and keeps the live one, and everything else in it (accounts, settings,
    stores, the audit log) is whole. The answer is as documented, the sizes are those on disk,
    the log says them, and the call is one audit record.

    The sessions are opened through the domain with its clock set two hours back for the one
    that is to have expired: a session cannot otherwise be made old without waiting."""
    users = fast_users(data)
    for i in range(1500):
        users.create(f"user{i:04d}", "login", full_name=f"{'x' * 200} {i}")
    for i in range(1500):
        users.delete(f"user{i:04d}")
    Sessions(users.master, clock=lambda: time.time() - 7200).open(
        "admin", "administrator", "127.0.0.1", 1)
    live = Sessions(users.master).open("admin", "administrator", "127.0.0.1", 30)
    users.master.close()
    mk_ok(data, "settings", "set", "server.port", "9443")
    db = data / "mailkeep.db"
    size_before, free_before = db.stat().st_size, pragma(db, "freelist_count")
    assert free_before > 100
    audit_rows = len(audit_since(data, 0))

    with api_client(data) as api:
        before = last_audit_id(data)
        final, log = run(api, "CompactMasterDatabase")
        assert final["statusCode"] == "succeeded", final
        result = final["result"]
        assert db.stat().st_size == result["bytesAfter"]  # its write-ahead log folded in
        users_now = succeeded(api, "GetUsers")
    assert_documented_shape("CompactMasterDatabase", result)
    assert result["bytesBefore"] >= size_before
    assert result["bytesAfter"] < size_before / 2
    assert f"Master database: {result['bytesBefore']} -> {result['bytesAfter']} bytes." in log
    details = one_audit(data, before, "CompactMasterDatabase", "api:admin")
    assert (details["args"], details["outcome"]) == ({}, "succeeded")

    assert pragma(db, "freelist_count") == 0
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1
    with MasterDB(db) as master:
        assert Sessions(master).get(live) is not None
    assert [u["userName"] for u in users_now] == ["admin"]
    assert len(audit_since(data, 0)) >= audit_rows + 1  # the log was kept
    setting = json.loads(cli_call(data, "GetSettings").stdout)
    assert {s["key"]: s["value"] for s in setting}["server.port"] == 9443
    with Archive(data) as archive:
        assert archive.search("word7").total == 1


def test_compact_master_database_by_the_command_line(data: Path) -> None:
    """`mailkeep call CompactMasterDatabase`: the answer as JSON, the log on stderr, one audit
    record naming the shell's account; a database with nothing to give back stays as big."""
    before = last_audit_id(data)
    res = cli_call(data, "CompactMasterDatabase")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert_documented_shape("CompactMasterDatabase", result)
    assert result["bytesAfter"] <= result["bytesBefore"]
    assert f"Master database: {result['bytesBefore']} -> {result['bytesAfter']}" in res.stderr
    details = one_audit(data, before, "CompactMasterDatabase", SHELL_ACTOR)
    assert (details["outcome"], details["via"]) == ("succeeded", "cli")


@pytest.mark.sqlite_master  # damage written into the file
@pytest.mark.parametrize("damage", ["an index's entries", "a table's page"])
def test_a_damaged_master_database_is_not_compacted(data: Path, damage: str) -> None:
    """Damage on disk (the entries of the stores' name index overwritten; the whole page of
    the jobs table overwritten): the check finds it, and CompactMasterDatabase fails with the
    documented error (corrupt data, exit code 6) instead of rewriting a damaged database; the
    free pages are still there and the failure is audited."""
    users = fast_users(data)
    for i in range(300):
        users.create(f"user{i:03d}", "login", full_name="y" * 200)
    for i in range(300):
        users.delete(f"user{i:03d}")
    users.master.close()
    db = data / "mailkeep.db"
    assert not db.with_name("mailkeep.db-wal").exists()  # all of it is in the file
    if damage == "an index's entries":
        page = root_page(db, "sqlite_autoindex_stores_1")
        overwrite(db, page * PAGE - 40, 20)  # the page's last cell
    else:
        page = root_page(db, "jobs")
        overwrite(db, (page - 1) * PAGE, PAGE)
    size, free = db.stat().st_size, pragma(db, "freelist_count")

    before = last_audit_id(data)
    res = cli_call(data, "CompactMasterDatabase")
    assert res.exit_code == 6, res.output
    assert "The master database is damaged" in res.stderr and "not compacted" in res.stderr
    assert db.stat().st_size >= size and pragma(db, "freelist_count") == free
    details = one_audit(data, before, "CompactMasterDatabase", SHELL_ACTOR)
    assert details["outcome"] == "failed" and "damaged" in details["error"]


# -- MaintainFileSystemDatabases ---------------------------------------------------------------
def words(stem: str) -> str:
    """Sixty words found in one message only: deleting it leaves index pages to reclaim."""
    return " ".join(f"{stem}n{k}" for k in range(60))


def import_batches(data: Path, tmp_path: Path, count: int, prefix: str) -> None:
    """`count` imports of ten messages each: each import commits its own index segment."""
    for b in range(count):
        folder = tmp_path / f"{prefix}{b}"
        folder.mkdir()
        for i in range(10):
            (folder / f"{i}.eml").write_bytes(
                f"From: {prefix}{b}{i}@example.org\r\nSubject: {prefix} {b} {i}\r\n\r\n"
                f"{prefix}{b}x{i} text {words(f'{prefix}{b}x{i}')}\r\n".encode())
        mk_ok(data, "import", str(folder))


def test_maintain_file_system_databases_merges_and_rewrites_every_catalog(
        data: Path, tmp_path: Path) -> None:
    """Default got its mail in nine imports and lost forty messages; Second got its own in
    three; Off is disabled. Afterwards the full-text index of each enabled store is one
    segment, the planner has statistics, no page is free and Default's file is smaller;
    searches find what they found before; Off's files were not touched. The answer lists the two
    stores with their sizes, the log names them, and the call is one audit record."""
    import_batches(data, tmp_path, 8, "first")
    with api_client(data) as api:
        assert succeeded(api, "CreateStore", name="Second")["id"] == 2
        succeeded(api, "SetStoreRequestedState", id="2", requestedState="current")
    import_batches(data, tmp_path, 3, "second")
    with api_client(data) as api:
        succeeded(api, "SetStoreRequestedState", id="1", requestedState="current")
        succeeded(api, "CreateStore", name="Off")
        succeeded(api, "SetStoreRequestedState", id="3", requestedState="disabled")
        doomed = [m["id"] for m in succeeded(api, "GetMessages", folder="admin")
                  if m["id"].startswith("1:")][:40]
        for message_id in doomed:
            succeeded(api, "DeleteMessage", id=message_id, reason="retention")
    cats = {name: catalog(data, name) for name in ("Default", "Second")}
    sizes = {name: c.stat().st_size for name, c in cats.items()}
    assert index_segments(cats["Default"]) > 1 and index_segments(cats["Second"]) > 1
    assert not has_statistics(cats["Default"])
    off = files_of(data / "stores" / "Off")
    queries = ["", "body", "text", "first2x3", "second1x9", *[f"word{i}" for i in range(40)]]
    with Archive(data) as archive:
        counts = {q: archive.search(q).total for q in queries}
    assert counts[""] == 40 + 80 + 30 - 40 and counts["second1x9"] == 1

    with api_client(data) as api:
        before = last_audit_id(data)
        final, log = run(api, "MaintainFileSystemDatabases")
    assert final["statusCode"] == "succeeded", final
    result = final["result"]
    assert_documented_shape("MaintainFileSystemDatabases", result)
    assert [(r["id"], r["name"]) for r in result] == [(1, "Default"), (2, "Second")]
    for r in result:
        assert f"Store {r['name']} (id {r['id']}): catalog {r['bytesBefore']} -> " \
               f"{r['bytesAfter']} bytes." in log
    assert result[0]["bytesAfter"] < result[0]["bytesBefore"]
    for name, cat in cats.items():
        assert index_segments(cat) == 1, name
        assert has_statistics(cat), name
        assert pragma(cat, "freelist_count") == 0, name
    assert catalog(data).stat().st_size < sizes["Default"]  # merged, deleted rows gone
    assert files_of(data / "stores" / "Off") == off
    with Archive(data) as archive:
        assert {q: archive.search(q).total for q in counts} == counts
        for rec in archive.stores()[:2]:
            assert verify(archive.open_store(rec, write=True)).ok
    details = one_audit(data, before, "MaintainFileSystemDatabases", "api:admin")
    assert details["outcome"] == "succeeded"


def test_maintain_names_a_store_another_process_writes_and_does_the_others(
        data: Path, tmp_path: Path) -> None:
    """A `mailkeep import` stopped in the middle holds Default: MaintainFileSystemDatabases
    names it as being written by that process, does Second all the same, then fails with that
    error (exit code 5, store unavailable) and one audit record. Once the import is gone both
    are done."""
    mk_ok(data, "store", "create", "Second")
    more = tmp_path / "more"
    more.mkdir()
    for i in range(5):
        (more / f"{i}.eml").write_bytes(f"Subject: more {i}\r\n\r\nmore{i}\r\n".encode())
    with stopped_at(["--data", str(data), "import", str(more)],
                    "mailkeep.core.storage.store:Store.commit:1:after") as child:
        before = last_audit_id(data)
        res = cli_call(data, "MaintainFileSystemDatabases")
        assert res.exit_code == 5, res.output
        assert (f"Store Default (id 1): store 'Default' is being written by another process "
                f"(pid {child.pid})") in res.stderr
        assert "Store Second (id 2): catalog " in res.stderr
        details = one_audit(data, before, "MaintainFileSystemDatabases", SHELL_ACTOR)
        assert details["outcome"] == "failed"
        assert "being written by another process" in details["error"]
    res = cli_call(data, "MaintainFileSystemDatabases")
    assert res.exit_code == 0, res.output
    assert [r["name"] for r in json.loads(res.stdout)] == ["Default", "Second"]


def test_maintain_names_a_store_that_cannot_be_opened(data: Path, tmp_path: Path) -> None:
    """A store whose directory is gone is named with why; the others are done; the process
    fails with the error."""
    with api_client(data) as api:
        made = succeeded(api, "CreateStore", name="Gone")
        Path(made["databasePath"]).rename(tmp_path / "moved-away")
        final, log = run(api, "MaintainFileSystemDatabases")
    assert final["statusCode"] == "failed" and "not found" in final["error"]["message"]
    assert "Store Default (id 1): catalog " in log
    assert "Store Gone (id 2): store 'Gone' is not found" in log


# -- RepairStoreDatabase -----------------------------------------------------------------------
def test_repair_store_database_leaves_a_sound_catalog_alone(data: Path, mail: Path,
                                                            api: TestClient) -> None:
    """A sound catalog: nothing found, nothing rebuilt, the messages counted; through the API
    and `mailkeep call`, one audit record each."""
    before = last_audit_id(data)
    final, log = run(api, "RepairStoreDatabase", id="1")
    assert final["statusCode"] == "succeeded", final
    assert final["result"] == {"problems": [], "rebuilt": False, "messages": MESSAGES}
    assert_documented_shape("RepairStoreDatabase", final["result"])
    assert "The catalog of store Default is sound: nothing to repair." in log
    details = one_audit(data, before, "RepairStoreDatabase", "api:admin")
    assert (details["args"], details["outcome"]) == ({"id": 1}, "succeeded")
    before = last_audit_id(data)
    res = cli_call(data, "RepairStoreDatabase", id="1")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == final["result"]
    assert one_audit(data, before, "RepairStoreDatabase", SHELL_ACTOR)["outcome"] == "succeeded"
    all_readable_and_found(data, mail)


def damage_catalog(data: Path, how: str) -> None:
    cat = catalog(data)
    assert not cat.with_name("catalog.sqlite-wal").exists()  # everything is in the file
    if how == "cut short":
        cat.write_bytes(cat.read_bytes()[: cat.stat().st_size // 2])
    elif how == "header overwritten":
        overwrite(cat, 0, 100)
    elif how == "full-text index page overwritten":
        overwrite(cat, (root_page(cat, "fts_data") - 1) * PAGE, PAGE)
    elif how == "message list page overwritten":
        overwrite(cat, (root_page(cat, "entries") - 1) * PAGE, PAGE)
    else:
        for p in cat.parent.glob("catalog.sqlite*"):
            p.unlink()


DAMAGE = ["cut short", "header overwritten", "full-text index page overwritten",
          "message list page overwritten", "deleted"]


@pytest.mark.parametrize("how", DAMAGE)
def test_repair_store_database_rebuilds_a_damaged_catalog(data: Path, mail: Path,
                                                          how: str) -> None:
    """The catalog damaged on disk: RepairStoreDatabase (through the API, followed to its
    end) rebuilds it from the segments; every message is readable byte for byte and found by
    its words again, the store verifies; the answer says what was found and that the catalog
    was rebuilt; one audit record."""
    damage_catalog(data, how)
    with api_client(data) as api:
        before = last_audit_id(data)
        final, log = run(api, "RepairStoreDatabase", id="1")
        assert final["statusCode"] == "succeeded", (final, log)
        details = one_audit(data, before, "RepairStoreDatabase", "api:admin")
        assert details["outcome"] == "succeeded"
    all_readable_and_found(data, mail)
    result = final["result"]
    assert_documented_shape("RepairStoreDatabase", result)
    assert result["messages"] == MESSAGES
    assert result["rebuilt"] is True and result["problems"], result
    assert all(p in log for p in result["problems"])


def test_repair_store_database_by_the_command_line(data: Path, mail: Path) -> None:
    """`mailkeep call RepairStoreDatabase` on a catalog cut short: the answer as JSON, what was
    found on stderr, the messages back, one audit record."""
    damage_catalog(data, "cut short")
    before = last_audit_id(data)
    res = cli_call(data, "RepairStoreDatabase", id="1")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["rebuilt"] is True and result["messages"] == MESSAGES
    assert "catalog was unreadable" in result["problems"][0]
    assert "catalog was unreadable" in res.stderr and "rebuilt from the segments" in res.stderr
    assert one_audit(data, before, "RepairStoreDatabase", SHELL_ACTOR)["outcome"] == "succeeded"
    all_readable_and_found(data, mail)


def test_repair_store_database_refuses_bad_input(data: Path, api: TestClient) -> None:
    """An unknown store is a clear error, audited as failed; an id that is not a number or
    is missing is refused before anything runs (no audit record)."""
    store = files_of(data / "stores" / "Default")
    before = last_audit_id(data)
    final, _ = run(api, "RepairStoreDatabase", id="99")
    assert final["statusCode"] == "failed"
    assert final["error"] == {"message": "no store '99' (see `mailkeep store list`)",
                              "details": "not_found"}
    assert one_audit(data, before, "RepairStoreDatabase", "api:admin")["outcome"] == "failed"
    before = last_audit_id(data)
    body = invoke(api, "RepairStoreDatabase", id="one")
    assert body["statusCode"] == "failed" and "a number is expected" in body["error"]["message"]
    body = invoke(api, "RepairStoreDatabase")
    assert body["error"]["message"] == "Missing API argument id."
    assert audit_since(data, before) == []
    res = cli_call(data, "RepairStoreDatabase", id="99")
    assert res.exit_code == 3 and "no store '99'" in res.stderr, res.output
    assert files_of(data / "stores" / "Default") == store


def test_repair_store_database_leaves_a_disabled_store_alone(data: Path,
                                                             api: TestClient) -> None:
    """A disabled store is not to be touched (CompactStore refuses one too): the call is a
    clear error and the store's files stay as they are."""
    succeeded(api, "CreateStore", name="Second")
    succeeded(api, "SetStoreRequestedState", id="2", requestedState="current")
    succeeded(api, "SetStoreRequestedState", id="1", requestedState="disabled")
    store = files_of(data / "stores" / "Default")
    before = last_audit_id(data)
    final, _ = run(api, "RepairStoreDatabase", id="1")
    assert final["statusCode"] == "failed", final
    assert "disabled" in final["error"]["message"]
    assert files_of(data / "stores" / "Default") == store
    assert one_audit(data, before, "RepairStoreDatabase", "api:admin")["outcome"] == "failed"


def test_metadata_matches_the_original(api: TestClient) -> None:
    """get-metadata: the original's arguments and types; all three run long (a token)."""
    meta = metadata(api)
    for name in ("CompactMasterDatabase", "MaintainFileSystemDatabases",
                 "RepairStoreDatabase"):
        assert_metadata_as_original(meta, name)
        assert meta[name]["longRunning"] is True
