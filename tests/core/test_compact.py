"""CompactStore and MergeStore on real mail: deleted messages' bytes leave the segments, every
other message keeps its id and its exact bytes, and a kill -9 at any step of a compaction
leaves a store that verifies and holds everything it held before."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mailkeep.core.archive import Archive
from mailkeep.core.ingest import Importer
from mailkeep.core.storage.compact import compact
from mailkeep.core.storage.merge import merge
from mailkeep.core.storage.store import COMPACT_DIR, OLD_SEGMENTS_DIR
from mailkeep.core.storage.verify import recover, verify
from mailkeep.sources.detect import read_paths
from tests.crashpoints import stopped_at
from tests.helpers import gunzip_years, mk_process


def digests(archive: Archive) -> dict[str, tuple[str, str, str]]:
    """message id -> (owner, folder, sha256 of its bytes), over every store."""
    out = {}
    for rec, store in archive.readable_stores():
        for number, owner, folder in store.catalog.conn.execute(
                "SELECT e.number, f.owner, f.path FROM entries e"
                " JOIN folders f ON f.id = e.folder_id"):
            out[f"{rec.id}:{number}"] = (owner, folder,
                                         hashlib.sha256(store.read(number)).hexdigest())
    return out


def segment_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path / "segments").glob("*.seg"))


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1996-1997 of linux-mips (~1,300 messages: the store trains a dictionary)."""
    root = tmp_path_factory.mktemp("compact-mail")
    gunzip_years([1996, 1997], root / "lists.mbox")
    return root / "lists.mbox"


@pytest.fixture(scope="module")
def small_mail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1996 of linux-mips (~250 messages)."""
    root = tmp_path_factory.mktemp("compact-small")
    gunzip_years([1996], root / "lists.mbox")
    return root / "lists.mbox"


def archived(data: Path, mail: Path, encrypt: bool = False) -> Archive:
    archive = Archive(data)
    if encrypt:
        archive.create_store("Default", encrypt=True)
    Importer(archive, owner="alice", base_folder="Lists", workers=1).run(read_paths([mail]))
    # the same bytes again
    Importer(archive, owner="bob", base_folder="Copy", workers=1).run(read_paths([mail]))
    return archive


def delete_every_third(archive: Archive) -> set[str]:
    gone = set()
    for i, message_id in enumerate(sorted(digests(archive))):
        if i % 3 == 0:
            archive.delete_message(message_id, "test: every third")
            gone.add(message_id)
    return gone


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_compaction_drops_deleted_bytes_and_keeps_the_rest(mail: Path, tmp_path: Path,
                                                           encrypt: bool,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.delenv("MAILKEEP_MASTER_KEY", raising=False)  # the key: conf/master.key
    with archived(tmp_path / "data", mail, encrypt) as archive:
        rec = archive.find_store(1)
        # alice's copies all deleted: bob's copies keep the bytes; a third of bob's go too.
        for message_id, (owner, _f, _s) in digests(archive).items():
            if owner == "alice":
                archive.delete_message(message_id, "test")
        gone = delete_every_third(archive)
        archive.move_folder("bob", "Copy", "bob", "Old/Copy")
        kept = digests(archive)
        store = archive.open_store(rec, write=True)
        assert store.catalog.dictionaries(), "the store should have trained a dictionary"
        next_number = store.catalog.next_number()
        before = segment_bytes(rec.path)
        res = compact(store)
        after = segment_bytes(rec.path)
        assert res.bytes_before == before and res.bytes_after == after
        assert res.messages_dropped == len(gone)
        # The bytes were stored once for both folders; a third of them are now unused.
        assert after < 0.75 * before, (before, after)
        assert digests(archive) == kept
        assert not any(message_id in kept for message_id in gone)
        assert verify(store).ok
        assert not (rec.path / COMPACT_DIR).exists()
        assert not (rec.path / OLD_SEGMENTS_DIR).exists()
        # New mail goes on, with numbers never handed out before.
        (tmp_path / "new.eml").write_bytes(b"Subject: after compaction\r\n\r\nhello\r\n")
        Importer(archive, owner="bob", base_folder="New", workers=1).run(read_paths(
            [tmp_path / "new.eml"]))
        assert min(int(i.split(":")[1]) for i in set(digests(archive)) - set(kept)) \
            >= next_number
        assert archive.search("compaction").total == 1
        # The catalog rebuilt from the compacted segments alone agrees.
        kept = digests(archive)
        recover(store)
        assert store.catalog.next_number() > next_number
    with Archive(tmp_path / "data") as fresh:
        assert digests(fresh) == kept
        assert {(o, p) for o, p, _n, _b in fresh.folders()} == {
            ("bob", "Old/Copy"), ("bob", "New")}


def test_compaction_refuses_a_damaged_store(mail: Path, tmp_path: Path) -> None:
    with archived(tmp_path / "data", mail) as archive:
        rec = archive.find_store(1)
        segment = next((rec.path / "segments").glob("*.seg"))
        with open(segment, "r+b") as fh:
            fh.seek(segment.stat().st_size // 2)
            fh.write(b"\xff" * 64)
        store = archive.open_store(rec, write=True)
        with pytest.raises(Exception, match="recover"):
            compact(store)
        assert not (rec.path / COMPACT_DIR).exists()
        assert segment.exists()


def test_merge_store(mail: Path, tmp_path: Path) -> None:
    with archived(tmp_path / "data", mail) as archive:
        source_rec = archive.find_store(1)
        target_rec = archive.create_store("Target")
        archive.set_store_state(target_rec.id, "current")
        before = digests(archive)
        source = archive.open_store(source_rec, write=True)
        target = archive.open_store(target_rec, write=True)
        res = merge(source, target)
        assert res.messages == len(before) and res.merged == len(before)
        again = merge(source, target)  # run twice: everything is a duplicate
        assert again.duplicates == len(before) and again.merged == 0
        merged = {k: v for k, v in digests(archive).items() if k.startswith(f"{target_rec.id}:")}
        assert sorted(merged.values()) == sorted(before.values())
        assert verify(target).ok


# -- kill -9 during a compaction ------------------------------------------------------------
CRASH_POINTS = {
    "writing new segments": "mailkeep.core.storage.segments:SegmentWriter.copy:100",
    "new segments complete, not swapped":
        "mailkeep.core.storage.store_replay:Replay.adopt_compaction:1",
    "between the two renames": "mailkeep.core.storage.store_replay:os.rename:1:after",
    "swapped, catalog not updated": "mailkeep.core.storage.catalog:Catalog.relocate:1",
    "catalog updated, old segments not removed":
        "mailkeep.core.storage.store_replay:keep_damaged:1",
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_kill_during_compaction(point: str, small_mail: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with archived(data, small_mail) as archive:
        gone = delete_every_third(archive)
        kept = digests(archive)
        rec = archive.find_store(1)
    before = segment_bytes(rec.path)
    # The child stops itself at the chosen instant; then it is killed right there.
    with stopped_at(["--data", str(data), "call", "CompactStore", "id=1"], CRASH_POINTS[point]):
        pass
    # The state on disk is the one the point names.
    swapped = point in ("swapped, catalog not updated",
                        "catalog updated, old segments not removed")
    assert (rec.path / OLD_SEGMENTS_DIR).exists() == (swapped or point.startswith("between"))
    assert (rec.path / "segments").exists() == (not point.startswith("between"))
    # The next open finishes or undoes it: verify passes, and every message is there.
    check = mk_process(data, "verify")
    assert check.returncode == 0, check.stdout + check.stderr
    with Archive(data) as archive:
        assert digests(archive) == kept
    assert not (rec.path / OLD_SEGMENTS_DIR).exists() and not (rec.path / COMPACT_DIR).exists()
    # And compacting again completes.
    again = mk_process(data, "call", "CompactStore", "id=1")
    assert again.returncode == 0, again.stdout + again.stderr
    with Archive(data) as archive:
        assert digests(archive) == kept
        assert not any(message_id in kept for message_id in gone)
    assert segment_bytes(rec.path) < before


# -- what a compaction must not lose -----------------------------------------------------------

def test_a_lost_catalog_commit_is_noticed(small_mail: Path, tmp_path: Path) -> None:
    """A power cut after compaction that loses the catalog's last commit (synchronous=NORMAL)
    while the removal of the old segments reached the disk. A lost fsync cannot be produced
    for real here: the catalog files are put back as they were before the compaction."""
    data = tmp_path / "data"
    with archived(data, small_mail) as archive:
        delete_every_third(archive)
        kept = digests(archive)
        rec = archive.find_store(1)
        store = archive.open_store(rec, write=True)
        store.catalog.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        saved = {p.name: p.read_bytes() for p in rec.path.glob("catalog.sqlite*")}
        compact(store)
    for p in rec.path.glob("catalog.sqlite*"):
        p.unlink()
    for name, raw in saved.items():
        (rec.path / name).write_bytes(raw)
    with Archive(data) as archive:
        store = archive.open_store(rec, write=True)
        assert any("did not match the compacted segments" in r for r in store.recovered_on_open)
        assert verify(store).ok
        assert digests(archive) == kept
    with Archive(data) as archive:  # and the rebuilt catalog is not rebuilt again
        assert archive.open_store(rec, write=True).recovered_on_open == []


def test_compaction_keeps_what_recover_set_aside(small_mail: Path, tmp_path: Path) -> None:
    with archived(tmp_path / "data", small_mail) as archive:
        delete_every_third(archive)
        rec = archive.find_store(1)
        aside = rec.path / "segments" / "damaged" / "000001.seg"
        aside.parent.mkdir()
        aside.write_bytes(b"the original of a rewritten segment")
        compact(archive.open_store(rec, write=True))
        assert aside.read_bytes() == b"the original of a rewritten segment"


def test_compaction_refuses_records_the_catalog_does_not_know(small_mail: Path,
                                                              tmp_path: Path) -> None:
    """A message record that cannot be decoded is left in place by recover (verify names it);
    compaction must not drop it silently."""
    import hashlib as _h

    from mailkeep.core.storage import segments as seg
    with archived(tmp_path / "data", small_mail) as archive:
        rec = archive.find_store(1)
        store = archive.open_store(rec, write=True)
        raw = b"Subject: undecodable\r\n\r\nbody\r\n"
        cid = _h.sha256(raw).digest()
        store.begin()
        assert store._writer is not None
        store._writer.append(seg.MESSAGE, {"id": cid.hex(), "size": len(raw), "codec": "zstd",
                                           "dict": None, "sealed": False, "date": 0},
                             b"not a zstd frame")
        store._writer.append(seg.ENTRY, {"n": 99_999, "id": cid.hex(), "owner": "alice",
                                         "folder": "Lists", "flags": [], "idate": None,
                                         "at": 0})
        store.commit()
        recover(store)
        before = segment_bytes(rec.path)
        with pytest.raises(Exception, match="verify"):
            compact(store)
        assert segment_bytes(rec.path) == before
        assert not (rec.path / COMPACT_DIR).exists()
