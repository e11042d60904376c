"""Damaged segments, through the CLI.

The requirement: "A torn or corrupted segment (bytes flipped, file truncated): `verify` names the
damaged messages; nothing else is lost; `recover` rebuilds what is intact."

Each test builds an archive of a few hundred messages with `mailkeep import` (an mbox, and a
Maildir with flags and a subfolder that also holds one message of the mbox), damages the bytes
on disk the way a disk or a crash would, and checks what verify, export, show and recover make
of it:
- a byte flipped inside one message record's payload (found through the catalog's blobs table),
  with the record checksum left wrong or recomputed (so that only decoding can tell), and in a
  message stored once but filed in two folders;
- a segment truncated in the middle;
- a torn tail: half a record, random bytes or zeros appended to the last segment;
- catalog.sqlite deleted;
- an encrypted store: a flipped byte, and reading without the master key.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import shutil
import sqlite3
import struct
import zlib
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result

from mailkeep.core.archive import Archive
from mailkeep.core.ingest import Importer, Outcome
from mailkeep.core.message import RawMessage
from mailkeep.core.storage import segments as seg
from mailkeep.sources.detect import open_source, read_paths
from tests.helpers import BULK, mk

PREFIX = struct.Struct("<4scIQ")  # magic, type, header length, payload length (docs/storage.md)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mk_ok(data: Path, *args: str) -> str:
    res = mk(data, *args)
    assert res.exit_code == 0, f"mailkeep {' '.join(args)}: exit {res.exit_code}\n{res.output}"
    assert "Traceback" not in res.stderr, res.stderr
    return res.stdout


# -- the mail -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, str]]]:
    """A directory to import: lists.mbox (247 messages of 1996) and a Maildir (20 messages of
    1997 with flags, 5 more in a subfolder, and one message of lists.mbox filed again).
    Returns it and origin -> (folder, sha256)."""
    root = tmp_path_factory.mktemp("damage-mail") / "mail"
    root.mkdir()
    with gzip.open(BULK / "linux-mips-1996.mbox.gz") as gz:
        (root / "lists.mbox").write_bytes(gz.read())
    with gzip.open(BULK / "linux-mips-1997.mbox.gz") as gz:
        parts = gz.read().split(b"\nFrom mboxrd@z Thu Jan  1 00:00:00 1970\n")[1:26]
    box = root / "Maildir"
    for sub in ("cur", "new", "tmp", ".Sub/cur", ".Sub/new", ".Sub/tmp"):
        (box / sub).mkdir(parents=True)
    flags = ["S", "FS", "RS", "", "DS", "T"]
    for i, raw in enumerate(parts[:20]):
        name = f"{1000 + i}.M{i}P1.host:2,{flags[i % len(flags)]}"
        (box / ("new" if i % 7 == 3 else "cur") / name).write_bytes(raw)
    for i, raw in enumerate(parts[20:]):
        (box / ".Sub" / "cur" / f"{2000 + i}.M{i}P2.host:2,F").write_bytes(raw)
    first = [m for m in open_source(root / "lists.mbox") if isinstance(m, RawMessage)][7]
    assert first.data is not None
    (box / "cur" / "3000.M1P3.host:2,S").write_bytes(first.data)
    by_origin = {}
    for m in open_source(root):
        assert isinstance(m, RawMessage) and m.data is not None, m
        by_origin[m.origin] = (m.folder, sha(m.data))
    return root, by_origin


@dataclass
class Built:
    data: Path
    store: Path  # the store directory
    expected: dict[str, tuple[str, str]]  # message id -> (folder, sha256)

    @property
    def catalog(self) -> Path:
        return self.store / "catalog.sqlite"

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with closing(sqlite3.connect(f"file:{self.catalog}?mode=ro", uri=True)) as c:
            return c.execute(sql, params).fetchall()

    def segment(self, n: int = 1) -> Path:
        return self.store / "segments" / seg.segment_name(n)


def build(tmp: Path, mail: tuple[Path, dict[str, tuple[str, str]]], encrypt: bool = False,
          name: str = "Default") -> Built:
    """Import the mail with the Importer API (what `mailkeep import` runs, without the cost of
    starting a process); the damage is then examined through the CLI."""
    root, by_origin = mail
    data = tmp / "data"
    outcomes: list[Outcome] = []
    with Archive(data) as archive:
        if encrypt:
            archive.create_store(name, encrypt=True)
            archive.set_store_state(name, "current")
        stats = Importer(archive, on_outcome=outcomes.append, workers=1).run(read_paths([root]))
    assert stats.failed == 0 and stats.archived == len(by_origin)
    expected = {o.message_id: by_origin[o.origin] for o in outcomes
                if o.status == "archived" and o.message_id}
    assert len(expected) == len(by_origin)
    return Built(data, data / "stores" / name, expected)


def exported(data: Path, out: Path) -> tuple[Result, dict[str, tuple[str, str]]]:
    """Run export; id -> (folder, sha256) of every file it wrote."""
    res = mk(data, "export", "--to", str(out))
    got = {}
    for path in out.rglob("*.eml") if out.exists() else []:
        rel = path.relative_to(out)
        store_id, number = path.stem.split("-")
        got[f"{store_id}:{number}"] = ("/".join(rel.parts[1:-1]), sha(path.read_bytes()))
    return res, got


def verify_json(data: Path) -> tuple[int, list[dict[str, object]]]:
    res = mk(data, "verify", "--json")
    assert "Traceback" not in res.stderr, res.stderr
    return res.exit_code, json.loads(res.stdout)


def named_ids(report: list[dict[str, object]]) -> set[str]:
    return {str(p["id"]) for store in report for p in store["problems"]  # type: ignore[attr-defined]
            if p["id"]}


def entries_of_blob(a: Built, blob_id: int) -> set[str]:
    return {f"1:{n}" for (n,) in a.query("SELECT number FROM entries WHERE blob_id = ?", blob_id)}


def flip_payload_byte(a: Built, blob_id: int, fix_crc: bool = False) -> None:
    """Flip one byte in the middle of a message record's payload; with fix_crc, recompute the
    record checksum as well, so that only decoding (zstd, GCM, content hash) can tell."""
    segment, offset, length = a.query("SELECT segment, offset, length FROM blobs WHERE id = ?",
                                      blob_id)[0]
    assert isinstance(segment, int) and isinstance(offset, int) and isinstance(length, int)
    path = a.segment(segment)
    data = bytearray(path.read_bytes())
    magic, type_, hlen, plen = PREFIX.unpack_from(data, offset)
    assert magic == seg.MAGIC and type_ == seg.MESSAGE and plen > 40
    assert PREFIX.size + hlen + plen + 4 == length
    data[offset + PREFIX.size + hlen + plen // 2] ^= 0x5A
    if fix_crc:
        end = offset + length - 4
        data[end: end + 4] = struct.pack("<I", zlib.crc32(bytes(data[offset:end])))
    path.write_bytes(bytes(data))


def single_entry_blob(a: Built) -> int:
    """A message stored once and filed once, from the middle of the archive."""
    rows = a.query("SELECT blob_id FROM entries GROUP BY blob_id HAVING count(*) = 1"
                   " ORDER BY blob_id")
    return int(rows[len(rows) // 2][0])  # type: ignore[call-overload]


def shared_blob(a: Built) -> int:
    rows = a.query("SELECT blob_id FROM entries GROUP BY blob_id HAVING count(*) = 2")
    assert len(rows) == 1
    return int(rows[0][0])  # type: ignore[call-overload]


# -- (a) a flipped byte ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["checksum wrong", "checksum recomputed", "filed twice"])
def test_flipped_byte_is_named_by_verify_and_nothing_else(how: str, mail: tuple[Path, dict[
        str, tuple[str, str]]], tmp_path: Path) -> None:
    a = build(tmp_path, mail)
    code, report = verify_json(a.data)
    assert code == 0 and report[0]["ok"], report
    blob = shared_blob(a) if how == "filed twice" else single_entry_blob(a)
    damaged = entries_of_blob(a, blob)
    assert len(damaged) == (2 if how == "filed twice" else 1)
    flip_payload_byte(a, blob, fix_crc=how == "checksum recomputed")

    code, report = verify_json(a.data)
    assert code == 1, report
    assert named_ids(report) == damaged, report
    if how == "checksum wrong":
        text = mk(a.data, "verify")
        assert text.exit_code == 1
        for mid in damaged:
            assert f"{mid}:" in text.stdout, text.stdout
    check_reads(a, damaged)


def show_raw(data: Path, mid: str, env: dict[str, str | None] | None = None) -> Result:
    return mk(data, "show", mid, "--raw", env=env)


def check_reads(a: Built, damaged: set[str]) -> None:
    """Messages on either side of the damaged ones read back byte for byte with show --raw;
    a damaged one is refused with a clear error, never handed out wrong."""
    near = {f"1:{n + d}" for m in damaged for n in [int(m.split(":")[1])] for d in (-1, 1)}
    for mid in sorted(near - damaged):
        raw = show_raw(a.data, mid)
        assert raw.exit_code == 0 and sha(raw.stdout_bytes) == a.expected[mid][1], mid
    for mid in damaged:
        raw = show_raw(a.data, mid)
        assert raw.exit_code != 0 and "Traceback" not in raw.stderr, raw.stderr
        assert sha(raw.stdout_bytes) != a.expected[mid][1]


def test_flipped_byte_export_writes_every_other_message(
        mail: tuple[Path, dict[str, tuple[str, str]]], tmp_path: Path) -> None:
    a = build(tmp_path, mail)
    blob = single_entry_blob(a)
    (damaged,) = entries_of_blob(a, blob)
    flip_payload_byte(a, blob)
    res, got = exported(a.data, tmp_path / "out")
    assert "Traceback" not in res.stderr
    others = {k: v for k, v in a.expected.items() if k != damaged}
    missing = sorted(set(others) - set(got), key=lambda m: int(m.split(":")[1]))
    assert not missing, (f"export ({res.exit_code}: {res.stderr.strip()}) left out "
                         f"{len(missing)} intact messages: {missing[:5]}...")
    assert {k: got[k] for k in others} == others
    # the damaged message is not written out with wrong (or no) bytes, and it is named
    assert damaged not in got, f"export wrote a file for damaged {damaged}: {got[damaged]}"
    assert res.exit_code != 0
    assert damaged in res.stdout + res.stderr, res.stderr


def test_flipped_byte_recover_sets_it_aside_and_keeps_the_rest(
        mail: tuple[Path, dict[str, tuple[str, str]]], tmp_path: Path) -> None:
    a = build(tmp_path, mail)
    blob = single_entry_blob(a)
    (damaged,) = entries_of_blob(a, blob)
    number = damaged.split(":")[1]
    original = a.segment().read_bytes()
    flip_payload_byte(a, blob)
    flipped = a.segment().read_bytes()
    res = mk(a.data, "recover", "Default")
    assert res.exit_code == 0, res.stdout + res.stderr
    out = res.stdout
    assert "set aside" in out, out
    assert f"message {number} " in out, out  # the lost message is named
    aside = list((a.store / "segments" / "damaged").iterdir())
    assert [p.read_bytes() == flipped for p in aside] == [True]
    assert len(a.segment().read_bytes()) < len(original)
    # all other messages: same ids, same folders, same bytes; the damaged one is gone
    res, got = exported(a.data, tmp_path / "out")
    assert res.exit_code == 0, res.stderr
    assert got == {k: v for k, v in a.expected.items() if k != damaged}
    show = mk(a.data, "show", damaged)
    assert show.exit_code == 3 and "does not exist" in show.stderr, show.stderr
    code, report = verify_json(a.data)
    assert code == 0, f"verify fails after recover: {report}"


# -- (b) a truncated segment ------------------------------------------------------------------
def test_truncated_segment(mail: tuple[Path, dict[str, tuple[str, str]]],
                           tmp_path: Path) -> None:
    a = build(tmp_path, mail)
    path = a.segment()
    records = [r for r in seg.scan(path, 1) if isinstance(r, seg.Record)]
    size = path.stat().st_size
    victim = next(r for r in records if r.type == seg.MESSAGE and r.offset + r.length > size // 2)
    cut = victim.payload_offset + victim.payload_length // 2  # inside a message's payload
    ends = {r.offset: r.offset + r.length for r in records}
    rows = a.query("SELECT e.number, e.offset, b.offset FROM entries e"
                   " JOIN blobs b ON b.id = e.blob_id")
    past_cut = {f"1:{n}" for n, e_off, b_off in rows
                if ends[e_off] > cut or ends[b_off] > cut}  # type: ignore[index]
    assert 0 < len(past_cut) < len(a.expected) - 50
    with open(path, "r+b") as fh:
        fh.truncate(cut)

    code, report = verify_json(a.data)
    assert code == 1
    assert named_ids(report) == past_cut, sorted(named_ids(report) ^ past_cut)

    res = mk(a.data, "recover", "Default")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "set aside" in res.stdout
    code, report = verify_json(a.data)
    assert code == 0, report
    before_cut = {k: v for k, v in a.expected.items() if k not in past_cut}
    res, got = exported(a.data, tmp_path / "out1")
    assert res.exit_code == 0, res.stderr
    assert got == before_cut

    # new imports work: the same mail again brings back exactly what was lost, once
    out = mk_ok(a.data, "import", str(mail[0]), "--jsonl")
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert summary["archived"] == len(past_cut) and summary["failed"] == 0, summary
    code, report = verify_json(a.data)
    assert code == 0, report
    res, got = exported(a.data, tmp_path / "out2")
    assert res.exit_code == 0, res.stderr
    assert {k: got[k] for k in before_cut} == before_cut
    assert sorted(got.values()) == sorted(a.expected.values())


# -- (c) a torn tail --------------------------------------------------------------------------
@pytest.mark.parametrize("tail", ["half a record", "random bytes", "zeros"])
def test_torn_tail_is_cut_on_open(tail: str, mail: tuple[Path, dict[str, tuple[str, str]]],
                                  tmp_path: Path) -> None:
    a = build(tmp_path, mail)
    path = a.segment()
    good = path.read_bytes()
    if tail == "half a record":
        last = [r for r in seg.scan(path, 1) if isinstance(r, seg.Record)
                and r.type == seg.MESSAGE][-1]
        record = good[last.offset: last.offset + last.length]
        junk = record[: len(record) // 2]
    elif tail == "random bytes":
        junk = random.Random(5).randbytes(3000)
        assert seg.MAGIC not in junk
    else:
        junk = bytes(4096)  # what a crash can leave where the file grew but data never came
    with open(path, "ab") as fh:
        fh.write(junk)

    res = mk(a.data, "verify")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "cut a torn write" in res.stdout, res.stdout
    assert path.read_bytes() == good
    res, got = exported(a.data, tmp_path / "out")
    assert res.exit_code == 0 and got == a.expected
    # and the store takes new mail after it
    extra = tmp_path / "extra.eml"
    extra.write_bytes(b"From: someone@example.org\nSubject: after the torn tail\n\nfine\n")
    out = mk_ok(a.data, "import", str(extra), "--jsonl")
    assert json.loads(out.splitlines()[-1])["summary"]["archived"] == 1
    code, report = verify_json(a.data)
    assert code == 0, report


# -- (d) the catalog deleted ------------------------------------------------------------------
SEARCHES = ["mips", "subject:kernel", "folder:Maildir/Sub", "after:1996-07-01 kernel -mips"]


def catalog_view(a: Built) -> dict[str, object]:
    """Entries with their folders and flags, the folder tree, and search results."""
    rows = a.query("SELECT e.number, f.owner, f.path, e.flags, e.internal_date, e.archived_at,"
                   " hex(b.content_id) FROM entries e JOIN folders f ON f.id = e.folder_id"
                   " JOIN blobs b ON b.id = e.blob_id ORDER BY e.number")
    view: dict[str, object] = {"entries": rows,
                               "folders": json.loads(mk_ok(a.data, "folders", "--json"))}
    with Archive(a.data) as archive:
        for q in SEARCHES:
            res = archive.search(q, limit=1000)
            view[q] = (res.total, [(h.message_id, h.hit.date, h.hit.subject, h.hit.sender,
                                    h.hit.folder, h.hit.size) for h in res.hits])
    return view


def test_deleted_catalog_is_rebuilt_by_recover(mail: tuple[Path, dict[str, tuple[str, str]]],
                                               tmp_path: Path) -> None:
    a = build(tmp_path, mail)
    before = catalog_view(a)
    flags = {r[3] for r in before["entries"]}  # type: ignore[attr-defined]
    assert {"seen", "flagged,seen", "answered,seen", "deleted"} <= flags, flags
    assert all(before[q][0] for q in SEARCHES), before  # type: ignore[index]
    for p in a.store.glob("catalog.sqlite*"):
        p.unlink()
    res = mk(a.data, "recover", "Default")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert f"with {len(a.expected)} messages" in res.stdout, res.stdout
    after = catalog_view(a)
    for key in before:
        assert after[key] == before[key], key
    code, report = verify_json(a.data)
    assert code == 0, report
    res, got = exported(a.data, tmp_path / "out")
    assert res.exit_code == 0 and got == a.expected


# -- (e) an encrypted store -------------------------------------------------------------------
@pytest.mark.parametrize("fix_crc", [False, True], ids=["checksum wrong", "checksum recomputed"])
def test_encrypted_store_flipped_byte_is_named(fix_crc: bool, mail: tuple[Path, dict[
        str, tuple[str, str]]], tmp_path: Path) -> None:
    a = build(tmp_path, mail, encrypt=True, name="Sealed")
    manifest = json.loads((a.store / "store.json").read_text())
    assert manifest["encryption"]["algorithm"] == "AES-256-GCM"
    # nothing of the mail is readable in the segment
    assert b"linux-mips" not in a.segment().read_bytes()
    blob = single_entry_blob(a)
    damaged = entries_of_blob(a, blob)
    flip_payload_byte(a, blob, fix_crc=fix_crc)
    code, report = verify_json(a.data)
    assert code == 1
    assert named_ids(report) == damaged, report
    check_reads(a, damaged)


def test_encrypted_store_without_master_key(mail: tuple[Path, dict[str, tuple[str, str]]],
                                            tmp_path: Path) -> None:
    a = build(tmp_path, mail, encrypt=True, name="Sealed")
    key_id = json.loads((a.store / "store.json").read_text())["encryption"]["key_id"]
    key = a.data / "conf" / "master.key"
    kept = tmp_path / "master.key.kept"
    shutil.move(key, kept)
    some = min(a.expected)
    for args in (["show", some, "--raw"], ["show", some], ["export", "--to",
                 str(tmp_path / "out")], ["verify"], ["search", "mips"]):
        res = mk(a.data, *args)
        assert res.exit_code != 0, args
        assert "Traceback" not in res.stderr, (args, res.stderr)
        msg = res.stderr + res.stdout
        assert "master key" in msg and key_id in msg, (args, msg)
    # with the key back (here through MAILKEEP_MASTER_KEY) everything reads again
    raw = show_raw(a.data, some, {"MAILKEEP_MASTER_KEY": kept.read_text().strip()})
    assert raw.exit_code == 0 and sha(raw.stdout_bytes) == a.expected[some][1]
