"""Tamper evidence as an insider with write access would meet it: each way of changing a store
behind mailkeep's back is detected, and the test names the check that catches it. Proofs are
checked offline with the public key alone; the tree's hashing is checked against RFC 9162's
definitions written out here independently."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mailkeep.core.keys import KeyRing
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage import tree as mtree
from mailkeep.core.storage.store import Store
from tests.helpers import master_sql, mk, mk_ok


# -- RFC 9162, written out from its definitions (section 2.1) -----------------------------------
def mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def test_the_tree_hashes_as_rfc_9162_defines_and_its_proofs_check() -> None:
    data = [f"leaf {i}".encode() for i in range(40)]
    hashes = [mtree.leaf_hash(d) for d in data]
    for n in range(1, len(data) + 1):
        root = mtree.root_of(hashes[:n])
        assert root == mth(data[:n])
        for i in range(n):
            path = mtree.inclusion_path(hashes[:n], i)
            assert mtree.verify_inclusion(i, n, hashes[i], path, root)
            assert not mtree.verify_inclusion(i, n, hashes[(i + 1) % n], path, root) or n == 1
            if path:
                bent = [bytes(32)] + path[1:]
                assert not mtree.verify_inclusion(i, n, hashes[i], bent, root)
        for m in range(1, n + 1):
            proof = mtree.consistency_path(hashes[:n], m)
            old = mth(data[:m])
            assert mtree.verify_consistency(m, n, old, root, proof)
            if m < n:
                assert not mtree.verify_consistency(m, n, mth(data[1:m + 1]), root, proof)
                assert not mtree.verify_consistency(m, n, old, mth(data[1:n + 1]), proof)
    # the empty tree, as the RFC defines it
    assert mtree.root_of([]) == hashlib.sha256(b"").digest()


# -- an archive to tamper with ---------------------------------------------------------------------
def message(i: int, body: str = "") -> bytes:
    return (f"From: a{i}@example.com\r\nTo: b@example.org\r\nSubject: number {i}\r\n"
            f"Date: Mon, {1 + i % 28:02d} Jan 2024 10:00:00 +0000\r\n"
            f"Message-ID: <n{i}@example.com>\r\n\r\n{body or f'body {i}'}\r\n").encode()


def write_mail(root: Path, first: int, count: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        (root / f"{i}.eml").write_bytes(message(i))
    return root


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    mk_ok(data, "import", "--folder", "Inbox", str(write_mail(tmp_path / "mail1", 0, 12)))
    return data


def store_dir(data: Path) -> Path:
    return data / "stores" / "Default"


def verify(data: Path, *extra: str) -> tuple[int, str]:
    result = mk(data, "verify", *extra)
    return result.exit_code, result.output


def key_of(data: Path) -> str:
    return mk_ok(data, "heads", "key").output.strip()


def records(path: Path) -> list[seg.Record]:
    return [r for r in seg.scan(path, 1) if isinstance(r, seg.Record)]


def rewrite_segment(path: Path, change: Any) -> None:
    """Write the segment again record by record, each through change(record) -> (type, header,
    payload) or None (removed): every checksum is computed afresh, as an insider's tool would."""
    parts = [seg.FILE_HEADER]
    for rec in records(path):
        got = change(rec)
        if got is not None:
            parts.append(seg.encode(*got))
    path.write_bytes(b"".join(parts))


def recover(data: Path) -> None:
    """What the insider does next so that the catalog agrees with the changed segments: the
    catalog goes (it would take the changed lengths for a torn write); the next open rebuilds
    it from the segments."""
    for p in store_dir(data).glob("catalog.sqlite*"):
        p.unlink()


# -- the proofs ---------------------------------------------------------------------------------
def test_a_message_proof_checks_offline_and_fails_for_changed_bytes(archive: Path,
                                                                    tmp_path: Path) -> None:
    key = key_of(archive)
    proof = tmp_path / "proof"
    mk_ok(archive, "proof", "1:3", "--to", str(proof))
    assert (proof / "message.eml").read_bytes() == mk_ok(archive, "show", "--raw",
                                                         "1:3").stdout_bytes
    # no data directory at all: only the directory and the key
    shutil.move(str(archive), str(tmp_path / "elsewhere"))
    ok = mk(tmp_path / "nothing-here", "verify-proof", str(proof), "--key", key)
    assert ok.exit_code == 0, ok.output
    assert "valid" in ok.output and "admin/Inbox" in ok.output
    assert not (tmp_path / "nothing-here").exists()

    eml = proof / "message.eml"
    eml.write_bytes(eml.read_bytes().replace(b"body", b"bodY"))
    bad = mk(tmp_path / "nothing-here", "verify-proof", str(proof), "--key", key)
    assert bad.exit_code == 1
    assert "bytes were changed" in bad.output


def test_a_proof_fails_with_another_key_or_an_edited_filing(archive: Path,
                                                           tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    mk_ok(archive, "proof", "1:1", "--to", str(proof))
    other = mk_ok(tmp_path / "other", "heads", "key").output.strip()
    wrong = mk(archive, "verify-proof", str(proof), "--key", other)
    assert wrong.exit_code == 1 and "not by the key given" in wrong.output

    doc = json.loads((proof / "proof.json").read_text())
    doc["entryLeaf"]["facts"]["folder"] = "Elsewhere"
    (proof / "proof.json").write_text(json.dumps(doc))
    edited = mk(archive, "verify-proof", str(proof), "--key", key_of(archive))
    assert edited.exit_code == 1 and "filing" in edited.output


def test_a_consistency_proof_shows_history_was_only_appended(archive: Path,
                                                            tmp_path: Path) -> None:
    first = json.loads(mk_ok(archive, "heads", "list", "--json").output.splitlines()[-1])
    mk_ok(archive, "import", str(write_mail(tmp_path / "mail2", 100, 7)))
    out = tmp_path / "consistency.json"
    mk_ok(archive, "heads", "consistency", "Default", "--from", str(first["size"]),
          "--out", str(out))
    key = key_of(archive)
    ok = mk(archive, "verify-proof", str(out), "--key", key)
    assert ok.exit_code == 0 and "only appended to" in ok.output, ok.output
    doc = json.loads(out.read_text())
    doc["path"][0] = "00" * 32
    out.write_text(json.dumps(doc))
    assert mk(archive, "verify-proof", str(out), "--key", key).exit_code == 1


# -- tampering ------------------------------------------------------------------------------------
def test_a_clean_archive_verifies(archive: Path) -> None:
    code, output = verify(archive)
    assert code == 0, output
    assert "records match them" in output


def test_a_flipped_byte_is_caught_by_the_checksum(archive: Path) -> None:
    path = store_dir(archive) / "segments" / "000001.seg"
    data = bytearray(path.read_bytes())
    target = records(path)[0]
    data[target.payload_offset + 5] ^= 0x01
    path.write_bytes(bytes(data))
    code, output = verify(archive)
    assert code != 0
    assert "damaged" in output  # the record's CRC-32: the first check, on every read


def test_a_changed_record_with_a_fresh_checksum_is_caught_by_its_tree_leaf(
        archive: Path) -> None:
    path = store_dir(archive) / "segments" / "000001.seg"

    def refile(rec: seg.Record) -> tuple[bytes, dict[str, Any], bytes]:
        header = dict(rec.header)
        if rec.type == seg.ENTRY and header["n"] == 2:
            header["folder"] = "Hidden"  # moved out of sight, behind mailkeep's back
        return rec.type, header, rec.payload or b""

    rewrite_segment(path, refile)
    recover(archive)
    code, output = verify(archive)
    assert code != 0
    assert "does not match its tree leaf" in output, output


def test_a_removed_record_is_caught_by_the_tree(archive: Path) -> None:
    path = store_dir(archive) / "segments" / "000001.seg"
    rewrite_segment(path, lambda rec: None if rec.type == seg.ENTRY and rec.header["n"] == 4
                    else (rec.type, rec.header, rec.payload or b""))
    recover(archive)  # the catalog now agrees: only the tree can tell
    code, output = verify(archive)
    assert code != 0
    assert "no deletion accounts for them" in output and "records were removed" in output
    # `mailkeep recover` accepts the loss, but only by declaring it in the tree (a record with
    # a leaf of its own, and an audit record): verify says so from then on
    mk_ok(archive, "recover", "Default")
    code, output = verify(archive)
    assert code == 0, output
    assert "1 leaves declared lost by recover" in output
    assert any(r.type == seg.FOLDER and r.header.get("op") == "lost"
               for r in records(store_dir(archive) / "segments" / "000001.seg"))


def _resign(data: Path) -> None:
    """The full insider: the tree's file recomputed from the changed records, and the store's
    heads and this data directory's signed again with the data directory's own key."""
    from mailkeep.core.heads import SigningKey
    sd = store_dir(data)
    (sd / "tree.leaves").unlink()
    store = Store.open(sd, KeyRing(data), write=False)
    m_leaves: dict[str, int | None] = {}
    hashes = []
    for rec in sorted(records(sd / "segments" / "000001.seg"), key=lambda r: r.header["tl"]["i"]):
        if rec.type == seg.MESSAGE:
            m_leaves[rec.header["id"]] = rec.header["tl"]["i"]
        what = store.committed(rec, m_leaves)
        assert what is not None
        hashes.append(mtree.leaf_of(store.tree.leaf(rec.header["tl"]["i"], rec.type, what)))
    store.close()
    (sd / "tree.leaves").write_bytes(b"".join(hashes))
    store_uuid = json.loads((sd / "store.json").read_text())["id"]
    head = SigningKey(data).sign(store_uuid, len(hashes), mtree.root_of(hashes), 2_000_000_000)
    (sd / "tree.heads").write_text(json.dumps(head) + "\n")
    with master_sql(data) as db:
        db.execute("DELETE FROM tree_heads")
        db.execute("INSERT INTO tree_heads (store_uuid, size, root, at, signed) VALUES "
                   "(?, ?, ?, ?, ?)", (store_uuid, head["size"], head["root"], head["at"],
                                       json.dumps(head)))


def test_a_rewritten_history_with_every_hash_recomputed_is_caught_by_heads_kept_elsewhere(
        archive: Path, tmp_path: Path) -> None:
    exported = tmp_path / "heads.jsonl"  # e.g. mailed to the auditor last month
    mk_ok(archive, "heads", "export", "--to", str(exported))
    path = store_dir(archive) / "segments" / "000001.seg"
    forged = message(5, "the amount was 100, not 1,000,000")

    def replace(rec: seg.Record) -> tuple[bytes, dict[str, Any], bytes]:
        header = dict(rec.header)
        payload = rec.payload or b""
        if rec.type == seg.MESSAGE and rec.header["id"] == hashlib.sha256(message(5)).hexdigest():
            import zstandard
            payload = zstandard.ZstdCompressor().compress(forged)
            header.update(id=hashlib.sha256(forged).hexdigest(), size=len(forged), dict=None)
        if rec.type == seg.ENTRY and rec.header["id"] == hashlib.sha256(message(5)).hexdigest():
            header["id"] = hashlib.sha256(forged).hexdigest()
        return rec.type, header, payload

    rewrite_segment(path, replace)
    recover(archive)
    _resign(archive)
    # With everything inside the data directory recomputed, it looks whole from inside...
    code, output = verify(archive)
    assert code == 0, output
    # ...but not against the heads kept where the insider could not reach them.
    code, output = verify(archive, "--heads", str(exported))
    assert code != 0
    assert "the heads given" in output and "history was rewritten" in output


def test_a_store_replaced_by_an_older_copy_is_caught_by_the_heads_signed_since(
        archive: Path, tmp_path: Path) -> None:
    old_copy = tmp_path / "old-copy"
    shutil.copytree(store_dir(archive), old_copy)
    mk_ok(archive, "import", str(write_mail(tmp_path / "mail2", 200, 5)))
    shutil.rmtree(store_dir(archive))
    shutil.copytree(old_copy, store_dir(archive))
    code, output = verify(archive)
    assert code != 0
    assert "replaced by an older copy" in output


def test_a_lawful_deletion_and_compaction_keep_the_tree_whole(archive: Path,
                                                             tmp_path: Path) -> None:
    before = json.loads(mk_ok(archive, "heads", "list", "--json").output.splitlines()[-1])
    mk_ok(archive, "call", "DeleteMessage", "id=1:2", "reason=GDPR erasure request 17")
    mk_ok(archive, "call", "CompactStore", "id=1")
    assert not any(r.type == seg.ENTRY and r.header["n"] == 2
                   for r in records(store_dir(archive) / "segments" / "000002.seg"))
    code, output = verify(archive)
    assert code == 0, output
    # history since the head before the deletion was only appended to
    out = tmp_path / "c.json"
    mk_ok(archive, "heads", "consistency", "Default", "--from", str(before["size"]),
          "--out", str(out))
    assert mk(archive, "verify-proof", str(out), "--key", key_of(archive)).exit_code == 0
    # and a message that stayed still has its proof
    proof = tmp_path / "p"
    mk_ok(archive, "proof", "1:3", "--to", str(proof))
    assert mk(archive, "verify-proof", str(proof), "--key", key_of(archive)).exit_code == 0


def test_leaves_a_crash_took_from_the_tree_are_derived_again(archive: Path) -> None:
    leaves = store_dir(archive) / "tree.leaves"
    whole = leaves.read_bytes()
    leaves.write_bytes(whole[: len(whole) - 3 * mtree.HASH - 7])  # a torn, unsynced tail
    mk_ok(archive, "import", "--folder", "More", str(write_mail(archive.parent / "m3", 300, 2)))
    assert leaves.read_bytes()[: len(whole)] == whole
    code, output = verify(archive)
    assert code == 0, output


def test_an_encrypted_store_proves_its_messages_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mk_ok(data, "store", "create", "Sealed", "--encrypt")
    mk_ok(data, "store", "state", "Sealed", "current")
    mk_ok(data, "import", str(write_mail(tmp_path / "mail", 0, 4)))
    ids = [line.split()[0] for line in mk_ok(data, "search", "number").output.splitlines()
           if ":" in line.split()[0]]
    proof = tmp_path / "proof"
    mk_ok(data, "proof", ids[0], "--to", str(proof))
    result = mk(data, "verify-proof", str(proof), "--key", key_of(data))
    assert result.exit_code == 0, result.output
    assert (proof / "message.eml").read_bytes() in {message(i) for i in range(4)}
    code, output = verify(data)
    assert code == 0, output


def test_a_tombstone_without_a_leaf_cannot_delete_a_filed_message(archive: Path) -> None:
    """The tombstone a compaction writes to keep the highest number has no leaf: one written
    like it for a filed message is caught, and names nothing lawful."""
    path = store_dir(archive) / "segments" / "000001.seg"
    with open(path, "ab") as fh:
        fh.write(seg.encode(seg.TOMBSTONE, {"n": 3, "at": 0, "reason":
                                            "compacted: numbers up to here are used"}, b""))
    recover(archive)
    code, output = verify(archive)
    assert code != 0 and "names message 3, which is filed" in output, output


def test_a_catalog_changed_behind_mailkeep_is_caught_by_the_filings(archive: Path) -> None:
    """The catalog is what users see: a message moved to another folder, or shown with other
    bytes, in the catalog alone disagrees with its leaf-checked filing."""
    with sqlite3.connect(store_dir(archive) / "catalog.sqlite") as db:
        db.execute("INSERT INTO folders (owner, path) VALUES ('mallory', 'Stolen')")
        db.execute("UPDATE entries SET folder_id = (SELECT id FROM folders WHERE owner = "
                   "'mallory') WHERE number = 3")
        [(b5,)] = db.execute("SELECT blob_id FROM entries WHERE number = 5")
        [(b6,)] = db.execute("SELECT blob_id FROM entries WHERE number = 6")
        for number, blob in ((5, -1), (6, b5), (5, b6)):  # two messages' bytes swapped
            db.execute("UPDATE entries SET blob_id = ? WHERE number = ?", (blob, number))
    code, output = verify(archive)
    assert code != 0
    assert "message 3 is in mallory/Stolen, but its filing" in output, output
    assert "message 6 shows other bytes than it was filed with" in output


def test_an_entry_pointed_at_other_bytes_and_reordered_records_are_caught(
        archive: Path) -> None:
    path = store_dir(archive) / "segments" / "000001.seg"
    ids = [r.header["id"] for r in records(path) if r.type == seg.MESSAGE]

    def swap(rec: seg.Record) -> tuple[bytes, dict[str, Any], bytes]:
        header = dict(rec.header)
        if rec.type == seg.ENTRY and header["n"] == 6:
            header["id"] = ids[0]  # the filing now serves another message's bytes
        return rec.type, header, rec.payload or b""

    rewrite_segment(path, swap)
    recover(archive)
    code, output = verify(archive)
    assert code != 0 and "names other bytes than the message record" in output, output


def test_a_deletion_undone_by_moving_its_tombstone_first_is_caught(archive: Path) -> None:
    mk_ok(archive, "call", "DeleteMessage", "id=1:3", "reason=lawful")
    path = store_dir(archive) / "segments" / "000001.seg"
    recs = records(path)
    moved = [r for r in recs if r.type == seg.TOMBSTONE] + [
        r for r in recs if r.type != seg.TOMBSTONE]
    path.write_bytes(seg.FILE_HEADER + b"".join(
        seg.encode(r.type, r.header, r.payload or b"") for r in moved))
    recover(archive)
    code, output = verify(archive)
    assert code != 0 and "the records were reordered" in output, output


@pytest.mark.parametrize("kind", ["fifo", "device", "deep", "infinite"])
def test_verify_proof_refuses_what_is_not_a_proof_at_once(archive: Path, tmp_path: Path,
                                                          kind: str) -> None:
    """Hostile proof directories: a named pipe or a device instead of a file (reading would
    never end), JSON nested too deep for the parser, a number too large for an index."""
    proof = tmp_path / "proof"
    mk_ok(archive, "proof", "1:1", "--to", str(proof))
    if kind == "fifo":
        (proof / "message.eml").unlink()
        os.mkfifo(proof / "message.eml")
    elif kind == "device":
        (proof / "proof.json").unlink()
        (proof / "proof.json").symlink_to("/dev/zero")
    elif kind == "deep":
        (proof / "proof.json").write_text("[" * 200_000)
    else:
        doc = json.loads((proof / "proof.json").read_text())
        doc["messageLeaf"]["leaf"]["i"] = float("inf")
        (proof / "proof.json").write_text(json.dumps(doc))
    result = mk(archive, "verify-proof", str(proof), "--key", key_of(archive))
    assert result.exit_code == 1 and "not valid" in result.output, result.output
