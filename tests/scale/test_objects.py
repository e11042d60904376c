"""A store's segments in S3-compatible object storage (a real SeaweedFS, tests/peers/seaweed.py),
its catalog in PostgreSQL: what each commit appends goes up as an object created never
overwritten before the catalog commits; a server without the segment files reads a message
with one ranged GET and verifies the store by fetching its segments; what the directory holds
past the catalog is dropped when the store is next opened to write; an object store that
cannot be reached fails the import, and nothing is counted archived."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mailkeep.core.objects import AlreadyExists, ObjectStore
from tests.helpers import catalog_rows, cli, free_port, mk, mk_ok
from tests.peers.seaweed import ACCESS_KEY, Seaweed


def mail_dir(tmp_path: Path, count: int, tag: str = "") -> Path:
    mail = tmp_path / f"mail{tag}"
    mail.mkdir()
    for i in range(count):
        (mail / f"{i}.eml").write_bytes(
            f"From: a{i}@example.org\r\nSubject: parcel {tag}{i}\r\n"
            f"Date: Mon, 0{1 + i % 9} Feb 2021 10:00:00 +0000\r\n\r\n"
            f"harbour lighthouse {i}\r\n".encode() * (1 + i % 3))
    return mail


def test_each_commit_goes_up_as_objects_the_catalog_names(scaled: str, data: Path,
                                                          tmp_path: Path) -> None:
    mk_ok(data, "import", str(mail_dir(tmp_path, 40)))
    [store] = (data / "stores").iterdir()
    store_id = json.loads((store / "store.json").read_text())["id"]
    names = list(ObjectStore(scaled).names(f"stores/{store_id}/segments/"))
    parts = catalog_rows(store, "SELECT segment, start_at, end_at, name FROM parts"
                                " ORDER BY segment, start_at")
    assert parts and sorted(names) == sorted(p[3] for p in parts)
    assert parts[0][1] == 0  # from the segment's first byte
    assert all(a[2] == b[1] for a, b in zip(parts, parts[1:], strict=False))  # no gap
    local = (store / "segments" / "000001.seg").read_bytes()
    stored = b"".join(ObjectStore(scaled).get(p[3]) for p in parts)
    assert stored == local


def test_without_the_segment_files_a_server_reads_from_the_objects(scaled: str, data: Path,
                                                                   tmp_path: Path) -> None:
    mk_ok(data, "import", str(mail_dir(tmp_path, 25)))
    raw = (tmp_path / "mail" / "7.eml").read_bytes()
    found = json.loads(mk_ok(data, "search", "--json", "parcel 7").stdout)["messages"]
    [message] = [m for m in found if m["subject"] == "parcel 7"]
    [store] = (data / "stores").iterdir()
    shutil.rmtree(store / "segments")  # another server: only the objects
    out = tmp_path / "out"
    mk_ok(data, "export", "--query", "parcel 7", "--to", str(out))
    exported = [p.read_bytes() for p in out.rglob("*.eml")]
    assert raw in exported, message
    assert not (store / "segments" / "000001.seg").exists()  # one ranged GET, no download
    result = mk(data, "verify", "Default")
    assert result.exit_code == 0, result.output
    assert (store / "segments" / "000001.seg").exists()  # verify read it end to end


def test_what_the_directory_holds_past_the_catalog_is_dropped(scaled: str, data: Path,
                                                              tmp_path: Path) -> None:
    """A commit cut off after its local write and before its objects (or on another
    server): the next writer goes on from what the catalog says, never from those bytes."""
    mk_ok(data, "import", str(mail_dir(tmp_path, 10)))
    [store] = (data / "stores").iterdir()
    segment = store / "segments" / "000001.seg"
    with segment.open("ab") as fh:
        fh.write(b"MKR\x01Mnever committed" * 50)
    mk_ok(data, "import", str(mail_dir(tmp_path, 10, "b")))
    result = mk(data, "verify", "Default")
    assert result.exit_code == 0, result.output
    assert json.loads(mk_ok(data, "search", "--json", "--exact", "harbour").stdout
                      )["total"] == 20


def test_an_unreachable_object_store_fails_the_import_and_counts_nothing(
        scaled: str, seaweed: Seaweed, data: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    mk_ok(data, "import", str(mail_dir(tmp_path, 3)))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing there
    result = mk(data, "import", str(mail_dir(tmp_path, 5, "b")))
    assert result.exit_code != 0
    assert "the object store mk-" in result.output and "Traceback" not in result.output
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweed.endpoint)
    assert json.loads(mk_ok(data, "search", "--json", "--exact", "harbour").stdout
                      )["total"] == 3
    mk_ok(data, "import", str(tmp_path / "mailb"))  # and the same mail goes in once it can
    assert json.loads(mk_ok(data, "search", "--json", "--exact", "harbour").stdout
                      )["total"] == 8
    result = mk(data, "verify", "Default")
    assert result.exit_code == 0, result.output


def test_objects_are_never_overwritten(scaled: str) -> None:
    objects = ObjectStore(scaled)
    objects.put_new("probe/a", b"first")
    with pytest.raises(AlreadyExists):
        objects.put_new("probe/a", b"second")
    assert objects.get("probe/a") == b"first"


def test_objects_need_a_database_and_an_s3_url(data: Path) -> None:
    result = cli("--data", str(data), "--objects", "s3://bucket/x", "store", "list")
    assert result.exit_code == 2 and "--objects needs --database" in result.output
    result = cli("--data", str(data), "--database", "postgresql://h/db", "--objects",
                 "/srv/segments", "store", "list")
    assert result.exit_code == 2 and "--objects takes an S3 URL" in result.output


def test_a_commit_the_object_store_refuses_files_nothing(scaled: str, data: Path,
                                                          tmp_path: Path) -> None:
    """The store is open and writing when the object store starts refusing it (its secret
    is wrong from then on): the batch is abandoned, the catalog is as before, and once the
    object store takes writes again the next commit goes up whole."""
    import hashlib

    from mailkeep.core.archive import Archive
    from mailkeep.core.storage.packing import Packer
    mk_ok(data, "import", str(mail_dir(tmp_path, 4)))
    raw = b"Subject: refused\r\n\r\nnever filed\r\n"
    with Archive(data) as archive:
        _rec, store = archive.current_store()
        prepared = Packer(store.dictionaries(), None).prepare(raw, hashlib.sha256(raw).digest(),
                                                              1.6e9)
        good = store.objects
        assert good is not None
        store.objects = ObjectStore(scaled)
        store.objects._client = __import__("boto3").client(  # refused from now on
            "s3", aws_access_key_id=ACCESS_KEY, aws_secret_access_key="not-the-secret")
        store.add_message(prepared, "admin", "Inbox")
        with pytest.raises(Exception, match="object store"):
            store.commit()
        store.abort()
        assert store.catalog.count_entries() == 4
        store.objects = good
        added = store.add_message(prepared, "admin", "Inbox")
        store.commit()
        assert added.number is not None and store.catalog.count_entries() == 5
    result = mk(data, "verify", "Default")
    assert result.exit_code == 0, result.output


def test_many_segments_each_read_back_from_the_objects(
        scaled: str, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments of 4 KB: the writer's finished ones leave its directory for the cache, which
    keeps no more than its bound; every message is still read whole, from wherever it is."""
    from mailkeep.core.storage import segment_objects, store_replay
    monkeypatch.setattr(store_replay, "SEGMENT_BYTES", 4096)
    monkeypatch.setattr(segment_objects, "CACHE_BYTES", 8192)
    mail = mail_dir(tmp_path, 60)
    mk_ok(data, "import", str(mail))
    [store] = (data / "stores").iterdir()
    parts = catalog_rows(store, "SELECT DISTINCT segment FROM parts")
    assert len(parts) > 5
    assert len(list((store / "segments").glob("*.seg"))) == 1  # the one written to
    out = tmp_path / "out"
    mk_ok(data, "export", "--to", str(out))
    exported = sorted(p.read_bytes() for p in out.rglob("*.eml"))
    assert exported == sorted(p.read_bytes() for p in mail.iterdir())
    result = mk(data, "verify", "Default")
    assert result.exit_code == 0, result.output
    cache = store / segment_objects.CACHE_DIR
    assert sum(p.stat().st_size for p in cache.glob("*.seg")) <= 8192 + 4096 * 2


def test_servers_write_one_store_a_batch_at_a_time(scaled: str, data: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two servers, each with the store in a directory of its own, file into it by turns:
    each batch takes the store's write lock in the database, first catches up with what the
    other committed (its parts appended here), and lets go at its commit. While one holds
    it, the other waits, and past the wait its write is refused as busy."""
    import hashlib

    from mailkeep.core.errors import StoreUnavailable
    from mailkeep.core.keys import KeyRing
    from mailkeep.core.storage import store as store_module
    from mailkeep.core.storage.packing import Packer
    from mailkeep.core.storage.store import Store
    mk_ok(data, "import", str(mail_dir(tmp_path, 3)))
    [first_dir] = (data / "stores").iterdir()
    other_dir = tmp_path / "other-server" / first_dir.name
    other_dir.mkdir(parents=True)
    shutil.copy2(first_dir / "store.json", other_dir / "store.json")
    keys = KeyRing(data)

    def prepared(store: Store, text: str) -> object:
        raw = f"Subject: {text}\r\n\r\nturns {text}\r\n".encode()
        return Packer(store.dictionaries(), None).prepare(raw, hashlib.sha256(raw).digest(),
                                                          1.6e9)

    first = Store.open(first_dir, keys, write=True)
    other = Store.open(other_dir, keys, write=True)
    try:
        assert first.writable and other.writable
        for i in range(6):
            store = (first, other)[i % 2]
            store.add_message(prepared(store, f"turn{i}"), "admin", "Inbox")  # type: ignore[arg-type]
            store.commit()
        assert first.catalog.count_entries() == other.catalog.count_entries() == 9
        first.add_message(prepared(first, "held"), "admin", "Inbox")  # type: ignore[arg-type]
        monkeypatch.setattr(store_module, "LOCK_WAIT_MS", 300)
        with pytest.raises(StoreUnavailable, match="busy"):
            other.add_message(prepared(other, "waits"), "admin", "Inbox")  # type: ignore[arg-type]
        first.commit()
        other.add_message(prepared(other, "waited"), "admin", "Inbox")  # type: ignore[arg-type]
        other.commit()
    finally:
        first.close()
        other.close()
    result = mk(data, "verify", "Default")
    assert result.exit_code == 0, result.output
    assert json.loads(mk_ok(data, "search", "--json", "--exact", "turns").stdout
                      )["total"] == 8


def test_two_servers_share_one_archive(scaled: str, tmp_path: Path) -> None:
    """Two data directories (two servers) on one database and bucket: what one archives, the
    other finds and reads, without a copy of its own of anything; then the other archives and
    the first reads that; each takes the store's write lock in turn."""
    node_a, node_b = tmp_path / "a", tmp_path / "b"
    mk_ok(node_a, "import", str(mail_dir(tmp_path, 10)))
    # A server that has not the installation's master key is refused, saying what to do.
    result = mk(node_b, "search", "harbour")
    assert result.exit_code != 0
    assert "does not have the installation's master key" in result.output, result.output
    (node_b / "conf").mkdir(parents=True, exist_ok=True)
    shutil.copy2(node_a / "conf" / "master.key", node_b / "conf" / "master.key")
    found = json.loads(mk_ok(node_b, "search", "--json", "--exact", "harbour").stdout)
    assert found["total"] == 10
    out = tmp_path / "out-b"
    mk_ok(node_b, "export", "--to", str(out))
    assert sorted(p.read_bytes() for p in out.rglob("*.eml")) == sorted(
        p.read_bytes() for p in (tmp_path / "mail").iterdir())
    mk_ok(node_b, "import", str(mail_dir(tmp_path, 5, "b")))
    assert json.loads(mk_ok(node_a, "search", "--json", "--exact", "harbour").stdout
                      )["total"] == 15
    out = tmp_path / "out-a"
    mk_ok(node_a, "export", "--to", str(out))
    assert len(list(out.rglob("*.eml"))) == 15
    mk_ok(node_a, "import", str(mail_dir(tmp_path, 5, "c")))
    for node in (node_a, node_b):
        result = mk(node, "verify", "Default")
        assert result.exit_code == 0, result.output
        assert "other keys" not in result.output  # one signing key, every server's
        assert json.loads(mk_ok(node, "search", "--json", "--exact", "harbour").stdout
                          )["total"] == 20


def test_recover_rebuilds_the_catalog_and_keeps_the_parts_and_leaves(
        scaled: str, data: Path, tmp_path: Path) -> None:
    mail = mail_dir(tmp_path, 12)
    mk_ok(data, "import", str(mail))
    result = mk(data, "recover", "Default")
    assert result.exit_code == 0, result.output
    assert json.loads(mk_ok(data, "search", "--json", "--exact", "harbour").stdout
                      )["total"] == 12
    result = mk(data, "verify", "Default")
    assert result.exit_code == 0, result.output
    [store] = (data / "stores").iterdir()
    shutil.rmtree(store / "segments")
    out = tmp_path / "out"
    mk_ok(data, "export", "--to", str(out))
    assert sorted(p.read_bytes() for p in out.rglob("*.eml")) == sorted(
        p.read_bytes() for p in mail.iterdir())
    result = mk(data, "call", "CompactStore", "id=1")
    assert result.exit_code != 0 and "not supported yet" in result.output
