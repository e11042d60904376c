"""Faults found in review, each produced for real: a large file that shrinks mid-import, a
damaged dictionary record, a damaged last entry record, a catalog that is not a database, a
catalog commit lost to a power cut, a store held by another writer, a malformed master key."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from mailkeep.core.archive import Archive
from mailkeep.core.ingest import Importer, Outcome
from mailkeep.core.storage import segments as seg
from mailkeep.sources import eml
from mailkeep.sources.detect import read_paths
from tests.crashpoints import stopped_at
from tests.helpers import mk, mk_process


def message(i: int, word: str = "") -> bytes:
    return (f"From: sender{i}@example.org\r\nTo: list@example.org\r\n"
            f"Subject: message number {i} {word}\r\n"
            f"Date: Mon, {1 + i % 28:02d} Jun 2026 10:{i % 60:02d}:00 +0000\r\n\r\n"
            f"Body of message {i}: the quick brown fox {word}.\r\n").encode()


def write_messages(folder: Path, count: int, start: int = 0) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(start, start + count):
        data = message(i, f"w{i}")
        (folder / f"{i:05d}.eml").write_bytes(data)
        out[f"{i:05d}.eml"] = data
    return out


def catalog(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "stores" / "Default" / "catalog.sqlite")


def raw_of(data: Path, mid: str) -> bytes:
    res = mk(data, "show", "--raw", mid)
    assert res.exit_code == 0, res.stderr
    return res.stdout_bytes


def test_large_file_shrinking_mid_import_loses_nothing_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file over the streaming threshold is cut short between listing and reading: that
    message fails, and every message reported before it is there under its reported id."""
    monkeypatch.setattr(eml, "SPOOL_THRESHOLD", 64 * 1024)
    src = tmp_path / "in"
    small = write_messages(src, 30)
    big = src / "zz-big.eml"
    big.write_bytes(message(999) + b"x" * 200_000 + b"\r\n")
    reported: dict[str, str] = {}

    def on_outcome(o: Outcome) -> None:
        if o.status == "archived" and o.message_id:
            reported[o.message_id] = o.origin
            if big.stat().st_size > 1000:
                with open(big, "r+b") as fh:  # the file shrinks under the reader, for real
                    fh.truncate(1000)

    data = tmp_path / "data"
    with Archive(data) as archive:
        stats = Importer(archive, on_outcome=on_outcome, workers=1).run(read_paths([src]))
    assert stats.failed == 1 and stats.archived == 30
    assert len(reported) == 30 and len(set(reported)) == 30
    for mid, origin in reported.items():
        assert raw_of(data, mid) == small[Path(origin).name]
    assert mk(data, "verify").exit_code == 0
    # numbers are not handed out twice: a new message gets a new one
    extra = tmp_path / "extra"
    write_messages(extra, 1, start=500)
    assert mk(data, "import", str(extra)).exit_code == 0
    with closing(catalog(data)) as c:
        assert c.execute("SELECT max(number) FROM entries").fetchone()[0] == 31


def _flip_in_record(data: Path, type_: bytes, which: int = 0) -> None:
    """Flip one byte inside the header of the which-th record of a type (-1: the last)."""
    path = data / "stores" / "Default" / "segments" / seg.segment_name(1)
    recs = [r for r in seg.scan(path, 1, with_payload=False)
            if isinstance(r, seg.Record) and r.type == type_]
    rec = recs[which]
    blob = bytearray(path.read_bytes())
    blob[rec.payload_offset - 2] ^= 0x01  # inside the JSON header: the checksum fails
    path.write_bytes(bytes(blob))


def test_damaged_dictionary_record_loses_no_message(tmp_path: Path) -> None:
    src = tmp_path / "in"
    msgs = write_messages(src, 1100)
    data = tmp_path / "data"
    assert mk(data, "import", str(src)).exit_code == 0
    with closing(catalog(data)) as c:
        assert c.execute("SELECT count(*) FROM dictionaries").fetchone()[0] == 1
    _flip_in_record(data, seg.DICTIONARY)
    res = mk(data, "verify")
    assert res.exit_code == 1 and "dictionary 1 is damaged" in res.stdout
    res = mk(data, "recover", "Default")
    assert res.exit_code == 0, res.stderr
    assert "written again" in res.stdout
    assert mk(data, "verify").exit_code == 0
    with closing(catalog(data)) as c:
        assert c.execute("SELECT count(*) FROM entries").fetchone()[0] == len(msgs)
    assert raw_of(data, "1:1100") == msgs["01099.eml"]


def test_recover_never_hands_out_a_number_twice(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write_messages(src, 5)
    data = tmp_path / "data"
    assert mk(data, "import", str(src)).exit_code == 0
    _flip_in_record(data, seg.ENTRY, -1)  # message 1:5's folder entry
    res = mk(data, "verify", "--json")
    assert res.exit_code == 1
    assert {p["id"] for p in json.loads(res.stdout)[0]["problems"] if p["id"]} == {"1:5"}
    assert mk(data, "recover", "Default").exit_code == 0
    assert mk(data, "verify").exit_code == 0
    more = tmp_path / "more"
    write_messages(more, 1, start=100)
    assert mk(data, "import", str(more)).exit_code == 0
    with closing(catalog(data)) as c:
        numbers = [r[0] for r in c.execute("SELECT number FROM entries ORDER BY number")]
    assert numbers == [1, 2, 3, 4, 6]


def test_catalog_that_is_not_a_database(tmp_path: Path) -> None:
    src = tmp_path / "in"
    msgs = write_messages(src, 20)
    data = tmp_path / "data"
    assert mk(data, "import", str(src)).exit_code == 0
    cat = data / "stores" / "Default" / "catalog.sqlite"
    cat.write_bytes(b"this is not a database " * 200)
    # a reader gets a clear error, or (no writer holds the store) the store repairs itself
    res = mk(data, "search", "fox")
    assert "Traceback" not in res.stderr
    assert res.exit_code == 0 and "20 messages match" in res.stdout
    assert list((data / "stores" / "Default").glob("catalog.damaged-*.sqlite"))
    assert mk(data, "verify").exit_code == 0
    assert raw_of(data, "1:7") == msgs["00006.eml"]


def test_catalog_commit_lost_in_a_power_cut_is_replayed_for_readers(tmp_path: Path) -> None:
    """synchronous=NORMAL may lose the last catalog commit in a power cut; the segment has
    the records. Produced by putting back the catalog as it was before the last import."""
    first, second = tmp_path / "a", tmp_path / "b"
    write_messages(first, 3)
    write_messages(second, 2, start=10)
    data = tmp_path / "data"
    assert mk(data, "import", str(first)).exit_code == 0
    store = data / "stores" / "Default"
    shutil.copy(store / "catalog.sqlite", tmp_path / "catalog.before")
    assert mk(data, "import", str(second)).exit_code == 0
    shutil.copy(tmp_path / "catalog.before", store / "catalog.sqlite")
    res = mk(data, "search", "w10")
    assert res.exit_code == 0 and "1 message matches" in res.stdout
    assert raw_of(data, "1:5") == message(11, "w11")


def test_verify_checks_a_store_another_process_is_writing(tmp_path: Path) -> None:
    """A `mailkeep import` stopped with a batch appended to the segment but not committed
    holds the store: `mailkeep verify` (a process of its own) verifies the store as it stood
    at that moment, says so, and does not take the batch in progress for damage; readers
    still read. Once the import is gone (killed), the store is verified whole: recovering the
    killed batch is the next writer's business, and it finds nothing damaged."""
    src = tmp_path / "in"
    write_messages(src, 3)
    data = tmp_path / "data"
    assert mk(data, "import", str(src)).exit_code == 0
    more = tmp_path / "more"
    more.mkdir()
    for i in range(5):
        (more / f"{i}.eml").write_bytes(f"Subject: more {i}\r\n\r\nmore{i}\r\n".encode())
    with stopped_at(["--data", str(data), "import", str(more)],
                    "mailkeep.core.storage.store:Store.commit:1:before") as child:
        segment = data / "stores" / "Default" / "segments"
        assert child.poll() is None and any(segment.iterdir())
        res = mk_process(data, "verify")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "being written: verified as it stands now" in res.stdout + res.stderr
        assert "damaged" not in res.stdout + res.stderr
        res = mk_process(data, "search", "fox")  # readers still read
        assert res.returncode == 0 and "3 messages match" in res.stdout
    res = mk_process(data, "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "verified as it stands now" not in res.stdout + res.stderr


@pytest.mark.parametrize("value", ["not base64 at all!", base64.b64encode(b"short").decode()])
def test_malformed_master_key_is_a_clear_error(tmp_path: Path, value: str) -> None:
    data = tmp_path / "data"
    res = mk(data, "store", "create", "Vault", "--encrypt",
             env={"MAILKEEP_MASTER_KEY": value})
    assert res.exit_code == 7, res.stderr
    assert "MAILKEEP_MASTER_KEY is not a master key" in res.stderr
    assert "Traceback" not in res.stderr and value not in res.stderr


def test_master_key_is_made_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert mk(data, "store", "create", "A", "--encrypt").exit_code == 0
    key = (data / "conf" / "master.key").read_bytes()
    assert mk(data, "store", "create", "B", "--encrypt").exit_code == 0
    assert (data / "conf" / "master.key").read_bytes() == key
    assert oct((data / "conf" / "master.key").stat().st_mode & 0o777) == "0o600"
    assert not list((data / "conf").glob("*.tmp"))
    listing = mk(data, "store", "list", "--json").stdout
    assert key.strip().decode() not in listing and '"encrypted": true' in listing
