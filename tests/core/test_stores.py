"""Store lifecycle through the CLI: create, list, state, rename, detach, attach, encryption,
single-instance storage, and moving a store to another data directory."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.helpers import mk, mk_ok


def stores(data: Path, env: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(mk_ok(data, "store", "list", "--json", env=env).stdout)
    return rows


def by_name(data: Path) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in stores(data)}


def search(data: Path, query: str, env: dict[str, str | None] | None = None
           ) -> dict[str, Any]:
    res = mk_ok(data, "search", "--json", "--limit", "10000", "--", query, env=env)
    parsed: dict[str, Any] = json.loads(res.stdout)
    return parsed


def eml(subject: str, body: str, day: int = 1, sender: str = "a@example.com") -> bytes:
    return (f"From: {sender}\nTo: b@example.org\nSubject: {subject}\n"
            f"Date: Mon, {day:02d} Jan 2024 10:00:00 +0000\n"
            f"Message-ID: <{subject.replace(' ', '.')}.{day}@example.com>\n\n{body}\n").encode()


def exported(data: Path, dest: Path, env: dict[str, str | None] | None = None
             ) -> dict[str, bytes]:
    """Export everything to a directory: relative path -> bytes."""
    mk_ok(data, "export", "--to", str(dest), env=env)
    return {str(p.relative_to(dest)): p.read_bytes() for p in sorted(dest.rglob("*.eml"))}


def store_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


# -- lifecycle --------------------------------------------------------------------------------
def test_create_list_state_rename(tmp_path: Path) -> None:
    data = tmp_path / "data"
    res = mk_ok(data, "store", "create", "Alpha")
    assert "'Alpha'" in res.stdout and "current" in res.stdout
    mk_ok(data, "store", "create", "Beta")
    elsewhere = tmp_path / "elsewhere" / "gamma"
    mk_ok(data, "store", "create", "Gamma", "--path", str(elsewhere))
    assert (elsewhere / "store.json").is_file()

    rows = stores(data)
    assert [(r["name"], r["state"]) for r in rows] == [
        ("Alpha", "current"), ("Beta", "normal"), ("Gamma", "normal")]
    assert len({r["id"] for r in rows}) == 3
    for r in rows:
        assert r["messages"] == 0 and r["encrypted"] is False
        assert (Path(r["path"]) / "store.json").is_file()
    assert Path(rows[0]["path"]) == (data / "stores" / "Alpha").resolve()
    assert Path(rows[2]["path"]) == elsewhere.resolve()
    table = mk_ok(data, "store", "list").stdout
    assert "Alpha" in table and "Beta" in table and "current" in table

    # Making another store current demotes the previous one: exactly one is current.
    mk_ok(data, "store", "state", "Beta", "current")
    assert {n: s["state"] for n, s in by_name(data).items()} == {
        "Alpha": "normal", "Beta": "current", "Gamma": "normal"}
    mk_ok(data, "store", "state", str(by_name(data)["Gamma"]["id"]), "current")  # by id
    assert [s["name"] for s in stores(data) if s["state"] == "current"] == ["Gamma"]
    mk_ok(data, "store", "state", "Beta", "current")

    # The current store cannot stop being current by itself.
    for state in ("normal", "writeProtected", "disabled"):
        res = mk(data, "store", "state", "Beta", state)
        assert res.exit_code == 4, res.output
        assert "current" in res.stderr and "make another store current" in res.stderr
    assert by_name(data)["Beta"]["state"] == "current"
    assert mk(data, "store", "state", "Beta", "bogus").exit_code == 2
    assert mk(data, "store", "state", "nosuch", "normal").exit_code == 3

    # Names: unique, and sane.
    res = mk(data, "store", "create", "Alpha")
    assert res.exit_code == 4 and "already exists" in res.stderr
    assert mk(data, "store", "create", "a/b").exit_code == 2
    assert mk(data, "store", "create", " padded").exit_code == 2

    # Rename, by name or id: the list and the store's own store.json change.
    alpha_path = Path(by_name(data)["Alpha"]["path"])
    mk_ok(data, "store", "rename", "Alpha", "Old")
    gamma_id = str(by_name(data)["Gamma"]["id"])
    mk_ok(data, "store", "rename", gamma_id, "Third")
    assert [s["name"] for s in stores(data)] == ["Old", "Beta", "Third"]
    assert json.loads((alpha_path / "store.json").read_text())["name"] == "Old"
    assert json.loads((elsewhere / "store.json").read_text())["name"] == "Third"
    assert alpha_path.is_dir()  # renaming does not move the directory
    res = mk(data, "store", "rename", "Old", "Beta")
    assert res.exit_code == 4 and "already exists" in res.stderr
    assert mk(data, "store", "rename", "nosuch", "X").exit_code == 3

    # Detach: refused for the current store while others exist; the files stay.
    res = mk(data, "store", "detach", "Beta")
    assert res.exit_code == 4 and "current" in res.stderr
    before = store_files(alpha_path)
    mk_ok(data, "store", "detach", "Old")
    assert [s["name"] for s in stores(data)] == ["Beta", "Third"]
    assert store_files(alpha_path) == before and (alpha_path / "store.json").is_file()
    assert mk(data, "store", "detach", "Old").exit_code == 3
    res = mk_ok(data, "store", "attach", str(alpha_path))
    assert "'Old'" in res.stdout
    assert by_name(data)["Old"]["state"] == "normal"
    res = mk(data, "store", "attach", str(alpha_path))
    assert res.exit_code == 4 and "already attached" in res.stderr
    res = mk(data, "store", "attach", str(tmp_path / "not-a-store"))
    assert res.exit_code == 3


def test_write_protected_and_disabled_stores(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "one.eml").write_bytes(eml("first message", "alphaword", day=1))
    (tmp_path / "two.eml").write_bytes(eml("second message", "betaword", day=2))
    mk_ok(data, "import", str(tmp_path / "one.eml"))
    mk_ok(data, "store", "create", "Second")
    mk_ok(data, "store", "state", "Second", "current")
    mk_ok(data, "store", "state", "Default", "writeProtected")
    assert by_name(data)["Default"]["state"] == "writeProtected"

    # New mail goes to the current store, never to the write-protected one.
    mk_ok(data, "import", str(tmp_path / "two.eml"))
    rows = by_name(data)
    assert rows["Default"]["messages"] == 1 and rows["Second"]["messages"] == 1
    hits = search(data, "message")
    assert hits["total"] == 2
    assert {m["id"].split(":")[0] for m in hits["messages"]} == {
        str(rows["Default"]["id"]), str(rows["Second"]["id"])}
    # The same message again is a duplicate, wherever it is filed.
    res = mk_ok(data, "import", str(tmp_path / "one.eml"))
    assert "0 archived, 1 duplicates" in res.stdout
    assert by_name(data)["Default"]["messages"] == 1

    # A disabled store is not searched, listed in folders or shown.
    default_id = rows["Default"]["id"]
    mk_ok(data, "store", "state", "Default", "disabled")
    assert by_name(data)["Default"]["state"] == "disabled"
    hits = search(data, "message")
    assert [m["subject"] for m in hits["messages"]] == ["second message"]
    assert hits["total"] == 1
    assert search(data, "alphaword")["total"] == 0
    folders = json.loads(mk_ok(data, "folders", "--json").stdout)
    assert sum(f["messages"] for f in folders) == 1
    res = mk(data, "show", f"{default_id}:1")
    assert res.exit_code == 5 and "disabled" in res.stderr
    mk_ok(data, "store", "state", "Default", "normal")
    assert search(data, "alphaword")["total"] == 1

    # Detached, it is gone from searches; attached again, the same messages come back (under
    # the id the store now has in this data directory).
    before = search(data, "message")["messages"]
    store_dir = Path(by_name(data)["Default"]["path"])
    mk_ok(data, "store", "detach", "Default")
    assert [m["subject"] for m in search(data, "message")["messages"]] == ["second message"]
    mk_ok(data, "store", "attach", str(store_dir))
    new_id = by_name(data)["Default"]["id"]
    assert by_name(data)["Default"]["state"] == "normal"
    after = search(data, "message")["messages"]
    strip = [{k: v for k, v in m.items() if k != "id"} for m in before]
    assert [{k: v for k, v in m.items() if k != "id"} for m in after] == strip
    first = next(m for m in after if m["subject"] == "first message")
    assert first["id"] == f"{new_id}:1"
    assert mk_ok(data, "show", "--raw", first["id"]).stdout_bytes == (tmp_path / "one.eml"
                                                                    ).read_bytes()


# -- single-instance storage and flags --------------------------------------------------------
def test_single_instance_storage(tmp_path: Path) -> None:
    data = tmp_path / "data"
    body = base64.b64encode(os.urandom(30_000)).decode()  # incompressible
    msg = tmp_path / "m.eml"
    msg.write_bytes(eml("big one", body))
    catalog = data / "stores" / "Default" / "catalog.sqlite"
    segment_dir = data / "stores" / "Default" / "segments"

    def counts() -> tuple[int, int]:
        with closing(sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)) as conn:
            blobs = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
            entries = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        return int(blobs), int(entries)

    def segment_bytes() -> int:
        return sum(p.stat().st_size for p in segment_dir.glob("*.seg"))

    assert "1 archived, 0 duplicates" in mk_ok(data, "import", "--folder", "A", str(msg)).stdout
    size_one = segment_bytes()
    assert size_one > 30_000
    assert "0 archived, 1 duplicates" in mk_ok(data, "import", "--folder", "A", str(msg)).stdout
    assert counts() == (1, 1)
    assert "1 archived, 0 duplicates" in mk_ok(data, "import", "--folder", "B", str(msg)).stdout
    assert counts() == (1, 2)  # two entries, the bytes once
    assert segment_bytes() - size_one < 2_000
    folders = {f["folder"]: f for f in json.loads(mk_ok(data, "folders", "--json").stdout)}
    assert {k: v["messages"] for k, v in folders.items()} == {"A": 1, "B": 1}
    row = by_name(data)["Default"]
    assert row["messages"] == 2 and row["distinctMessages"] == 1
    assert row["rawBytes"] == len(msg.read_bytes())
    ids = [m["id"] for m in search(data, "big")["messages"]]
    assert len(ids) == 2
    for mid in ids:
        assert mk_ok(data, "show", "--raw", mid).stdout_bytes == msg.read_bytes()


def make_maildir(root: Path) -> dict[str, tuple[str, set[str]]]:
    """A Maildir++ tree; returns file name -> (folder, flags)."""
    layout = {
        "cur/1700000001.M1P1.host:2,FS": ("", {"flagged", "seen"}),
        "cur/1700000002.M2P2.host:2,RS": ("", {"answered", "seen"}),
        "new/1700000003.M3P3.host": ("", set()),
        ".Lists.linux/cur/1700000004.M4P4.host:2,S": ("Lists/linux", {"seen"}),
        ".Lists.linux/new/1700000005.M5P5.host": ("Lists/linux", set()),
        ".Drafts/cur/1700000006.M6P6.host:2,D": ("Drafts", {"draft"}),
    }
    for d in ("cur", "new", "tmp", ".Lists.linux/cur", ".Lists.linux/new", ".Drafts/cur",
              ".Drafts/new"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(layout, 1):
        (root / name).write_bytes(eml(f"maildir message {i}", f"word{i} travelling", day=i))
    return {name.rsplit("/", 1)[-1]: v for name, v in layout.items()}


def flags_line(show_output: str) -> set[str]:
    first = show_output.splitlines()[0]
    if "flags:" not in first:
        return set()
    return {f.strip() for f in first.split("flags:", 1)[1].split(",")}


def snapshot(data: Path, env: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Everything a user sees of an archive: messages, folders, flags, text, searches, bytes."""
    everything = search(data, "", env=env)
    shows = {m["id"]: mk_ok(data, "show", m["id"], env=env).stdout for m in everything["messages"]}
    raws = {m["id"]: mk_ok(data, "show", "--raw", m["id"], env=env).stdout_bytes
            for m in everything["messages"]}
    queries = ["travelling", "word3", "folder:Lists", "subject:maildir", "from:a@example.com",
               "has:attachment", "after:2024-01-04", "user:admin -folder:Drafts"]
    return {
        "messages": everything,
        "folders": json.loads(mk_ok(data, "folders", "--json", env=env).stdout),
        "shows": shows,
        "raws": raws,
        "searches": {q: search(data, q, env=env) for q in queries},
    }


def test_move_store_to_another_data_directory(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    layout = make_maildir(maildir)
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "x.eml").write_bytes(eml("loose message", "travelling too", day=9))

    data_a = tmp_path / "machine-a"
    mk_ok(data_a, "import", str(maildir))
    mk_ok(data_a, "import", "--folder", "Loose", "--user", "carol", str(loose))
    before = snapshot(data_a)
    assert before["messages"]["total"] == 7
    assert {(f["user"], f["folder"], f["messages"]) for f in before["folders"]} == {
        ("admin", "", 3), ("admin", "Lists/linux", 2), ("admin", "Drafts", 1),
        ("carol", "Loose", 1)}
    # Flags from the Maildir file names are kept, and shown.
    for mid, text in before["shows"].items():
        subject = next(m["subject"] for m in before["messages"]["messages"] if m["id"] == mid)
        if subject.startswith("maildir message"):
            i = int(subject.rsplit(" ", 1)[1])
            name = sorted(layout)[i - 1]
            assert flags_line(text) == layout[name][1], (name, text.splitlines()[0])
    files_before = exported(data_a, tmp_path / "export-a")
    assert len(files_before) == 7

    store_dir = Path(by_name(data_a)["Default"]["path"])
    mk_ok(data_a, "store", "detach", "Default")  # the only store: allowed
    assert stores(data_a) == []
    assert (store_dir / "store.json").is_file()

    # "Another machine": the directory moves, a fresh data directory attaches it.
    moved = tmp_path / "usb-disk" / "archive-2024"
    moved.parent.mkdir()
    shutil.move(str(store_dir), str(moved))
    data_b = tmp_path / "machine-b"
    res = mk_ok(data_b, "store", "attach", str(moved))
    assert "7 messages" in res.stdout
    rows = stores(data_b)
    assert [(r["name"], r["state"], r["messages"]) for r in rows] == [("Default", "current", 7)]
    assert Path(rows[0]["path"]) == moved.resolve()

    after = snapshot(data_b)
    assert after == before
    assert exported(data_b, tmp_path / "export-b") == files_before
    res = mk_ok(data_b, "verify")
    assert "ok" in res.stdout

    # And it takes new mail on the new machine.
    (loose / "y.eml").write_bytes(eml("after the move", "arrived later", day=10))
    mk_ok(data_b, "import", str(loose / "y.eml"))
    assert search(data_b, "arrived")["total"] == 1
    assert search(data_b, "")["total"] == 8


def test_store_copied_as_documented_is_complete(tmp_path: Path) -> None:
    """docs/storage.md: a store is store.json, segments/ and catalog.sqlite (derived from the
    segments). A copy of just those, attached elsewhere, holds every message."""
    src = tmp_path / "mail"
    src.mkdir()
    for i in range(1, 4):
        (src / f"{i}.eml").write_bytes(eml(f"copied {i}", "copyword", day=i))
    data_a = tmp_path / "a"
    mk_ok(data_a, "import", str(src))
    store_dir = Path(by_name(data_a)["Default"]["path"])
    mk_ok(data_a, "store", "detach", "Default")
    copy = tmp_path / "copy"
    shutil.copytree(store_dir / "segments", copy / "segments")
    shutil.copy2(store_dir / "store.json", copy / "store.json")
    shutil.copy2(store_dir / "catalog.sqlite", copy / "catalog.sqlite")

    data_b = tmp_path / "b"
    res = mk_ok(data_b, "store", "attach", str(copy))
    assert "3 messages" in res.stdout
    assert stores(data_b)[0]["messages"] == 3
    assert search(data_b, "copyword")["total"] == 3


# -- encryption -------------------------------------------------------------------------------
SECRET_SUBJECT = "Zanzibarquux"
SECRET_BODY = "Plumbobwidget"


def assert_segments_hold_no(store_dir: Path, *words: str) -> None:
    segs = sorted((store_dir / "segments").glob("*.seg"))
    assert segs
    for path in segs:
        data = path.read_bytes()
        for word in words:
            for form in (word, word.lower(), word.upper()):
                at = data.find(form.encode())
                assert at < 0, f"{form!r} in plaintext in {path.name} at offset {at}"


def test_encrypted_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    res = mk_ok(data, "store", "create", "Vault", "--encrypt")
    assert "encrypted" in res.stdout
    key_file = data / "conf" / "master.key"
    assert key_file.is_file()
    src = tmp_path / "mail"
    src.mkdir()
    for i in range(5):
        (src / f"{i}.eml").write_bytes(eml(
            f"{SECRET_SUBJECT} report {i}",
            f"The body mentions {SECRET_BODY} number {i}.\n" + "filler line\n" * (i * 50),
            day=i + 1))
    mk_ok(data, "import", "--folder", "Secrets", str(src))
    row = by_name(data)["Vault"]
    assert row["encrypted"] is True and row["messages"] == 5
    store_dir = Path(row["path"])
    assert_segments_hold_no(store_dir, SECRET_SUBJECT, SECRET_BODY)
    for path in store_files(store_dir):
        if "catalog.sqlite" not in path.name:  # the catalog: see the report
            assert SECRET_BODY.encode() not in path.read_bytes(), path

    assert search(data, SECRET_BODY)["total"] == 5
    originals = {p.name: p.read_bytes() for p in src.iterdir()}
    files = exported(data, tmp_path / "out")
    assert sorted(files.values()) == sorted(originals.values())

    # Another data directory, without the master key: a clear error, nothing attached.
    mk_ok(data, "store", "detach", "Vault")
    copy = tmp_path / "copy" / "Vault"
    shutil.copytree(store_dir, copy)
    other = tmp_path / "other"
    res = mk(other, "store", "attach", str(copy))
    assert res.exit_code != 0, res.output
    assert "MAILKEEP_MASTER_KEY" in res.stderr, res.output
    assert stores(other) == []

    # With the key in MAILKEEP_MASTER_KEY it opens.
    env: dict[str, str | None] = {"MAILKEEP_MASTER_KEY": key_file.read_text().strip()}
    res = mk_ok(other, "store", "attach", str(copy), env=env)
    assert "5 messages" in res.stdout
    assert search(other, SECRET_BODY, env=env)["total"] == 5
    files = exported(other, tmp_path / "out-other", env=env)
    assert sorted(files.values()) == sorted(originals.values())
    mid = search(other, f"{SECRET_SUBJECT} 3", env=env)["messages"][0]["id"]
    assert mk_ok(other, "show", "--raw", mid, env=env).stdout_bytes == originals["3.eml"]
    # A wrong key is refused as clearly.
    wrong: dict[str, str | None] = {"MAILKEEP_MASTER_KEY": base64.b64encode(b"k" * 32).decode()}
    res = mk(other, "search", SECRET_BODY, env=wrong)
    assert res.exit_code == 7 and "master key" in res.stderr


def test_encrypted_store_dictionary_leaks_nothing(tmp_path: Path) -> None:
    """A store trains a compression dictionary from its own messages once it holds 1,000 (see
    docs/storage.md): in an encrypted store that must not put message text in the clear."""
    data = tmp_path / "data"
    mk_ok(data, "store", "create", "Vault", "--encrypt")
    words = [f"{w}{n}" for w in ("lorem", "ipsum", "dolor", "amet", "tempor") for n in range(80)]
    parts = []
    for i in range(1100):
        text = "\n".join(" ".join(words[(i * 7 + j * 13 + k) % len(words)] for k in range(12))
                         for j in range(12))
        parts.append(b"From sender@example.com Mon Jan  1 10:00:00 2024\n" + eml(
            f"{SECRET_SUBJECT} weekly {i}", f"{SECRET_BODY} says hello.\n{text}",
            day=1 + i % 28, sender=f"Sender {i} <s{i}@example.com>") + b"\n")
    mbox = tmp_path / "weekly.mbox"
    mbox.write_bytes(b"".join(parts))
    res = mk_ok(data, "import", "--workers", "1", str(mbox))
    assert "1100 archived" in res.stdout
    store_dir = Path(by_name(data)["Vault"]["path"])
    assert_segments_hold_no(store_dir, SECRET_SUBJECT, SECRET_BODY)
