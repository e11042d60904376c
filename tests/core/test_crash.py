"""kill -9 at any instant during import.

The requirement: "A crash (kill -9) at any instant during import: after the next open, `verify`
passes, every message the import had reported as archived is there, and re-running the import
adds the rest without duplicates."

Every test here runs the real `mailkeep import --jsonl` in a child process and SIGKILLs it:
- test_kill_rounds_into_one_data_directory: several rounds into the SAME data directory, each
  killed at another point (early, before any line; after N reported lines for several N; at a
  record drawn at random), then the import run to completion;
- test_kill_at_exact_instant: the child stops itself (SIGSTOP) at one chosen instant of the
  first import into an empty data directory (store creation, dictionary training, before the
  segment fsync, between fsync and catalog commit, half-way through writing a record, after the
  commit but before the report), and the parent SIGKILLs it there (tests/crashpoints.py).
After every kill: `verify` exits 0, every message reported as archived is in the archive under
its reported id with its exact bytes (SHA-256 of the exported .eml against the source), and no
(message, folder) pair is filed twice. At the end the archive holds exactly the distinct
(message bytes, folder) pairs of the source, each once.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mailkeep.core.message import RawMessage
from mailkeep.sources.detect import open_source
from tests.crashpoints import kill, start_hooked, wait_stopped
from tests.helpers import gunzip_years, mk_process


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the source -----------------------------------------------------------------------------
@dataclass
class Source:
    root: Path
    by_origin: dict[str, tuple[str, str]]  # origin -> (folder, sha256 of the message bytes)
    messages: int  # messages in the source, duplicates included

    @property
    def pairs(self) -> set[tuple[str, str]]:
        """The distinct (folder, message bytes) pairs: what the archive must hold, each once."""
        return set(self.by_origin.values())


def _read_source(root: Path) -> Source:
    by_origin: dict[str, tuple[str, str]] = {}
    for item in open_source(root):
        assert isinstance(item, RawMessage), item
        assert item.data is not None
        by_origin[item.origin] = (item.folder, sha(item.data))
    return Source(root, by_origin, len(by_origin))


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """~3,100 messages, 8.5 MB: three years of linux-mips plus the first year again in the
    same folder (duplicates there) and, as a second mbox, in another folder (stored once,
    filed twice)."""
    root = tmp_path_factory.mktemp("crash-big") / "mail"
    root.mkdir()
    gunzip_years([1996, 1997, 1998, 1996], root / "lists.mbox")
    gunzip_years([1996], root / "again.mbox")
    src = _read_source(root)
    assert src.messages > 3000 and len(src.pairs) < src.messages
    return src


def _with_refiled(root: Path, years: list[int], refiled: int) -> Source:
    """Some years as one mbox, and its first `refiled` messages again in a second folder."""
    root.mkdir()
    gunzip_years(years, root / "lists.mbox")
    data = (root / "lists.mbox").read_bytes()
    cut = 0
    for _ in range(refiled):
        cut = data.index(b"\nFrom mboxrd@z ", cut + 1)
    (root / "refiled.mbox").write_bytes(data[: cut + 1])
    return _read_source(root)


@pytest.fixture(scope="module")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """277 messages: one year, and 30 of them filed again in a second folder."""
    return _with_refiled(tmp_path_factory.mktemp("crash-small") / "mail", [1996], 30)


@pytest.fixture(scope="module")
def medium_source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """1,315 messages: enough for the store to train its first dictionary."""
    src = _with_refiled(tmp_path_factory.mktemp("crash-medium") / "mail", [1996, 1997], 30)
    assert len({sha for _f, sha in src.pairs}) > 1000
    return src


# -- running and killing the import ------------------------------------------------------------
@dataclass
class Run:
    reported: dict[str, str] = field(default_factory=dict)  # archived: id -> origin
    duplicates: int = 0
    other: list[dict[str, object]] = field(default_factory=list)  # failed, skipped
    summary: dict[str, int] | None = None
    killed: bool = False

    def take(self, line: bytes) -> None:
        rec = json.loads(line)
        if "summary" in rec:
            self.summary = rec["summary"]
        elif rec["status"] == "archived":
            assert rec["id"] not in self.reported, f"id {rec['id']} reported twice"
            self.reported[rec["id"]] = rec["origin"]
        elif rec["status"] == "duplicate":
            self.duplicates += 1
        else:
            self.other.append(rec)


class Child:
    """`mailkeep import --jsonl` in a child process of its own process group; with crash_at,
    it stops itself there (tests/crashpoints.py)."""

    def __init__(self, data: Path, src: Path, crash_at: str | None = None) -> None:
        self.stderr = tempfile.TemporaryFile()  # a file: the child never blocks on it
        self.proc = start_hooked(["--data", str(data), "import", str(src), "--jsonl"],
                                 crash_at, stdout=subprocess.PIPE, stderr=self.stderr)
        self.run = Run()

    def lines(self) -> Iterator[bytes]:
        """Complete lines of stdout (a line cut short by the kill was never reported)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith(b"\n"):
                yield line

    def kill(self) -> None:
        """kill -9 the import process, then whatever helper it left (parser processes)."""
        self.run.killed = True
        kill(self.proc)

    def abort(self) -> None:
        """Clean up after a failed check: no child left running, no file left open."""
        self.kill()
        self.proc.wait(timeout=60)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()

    def finish(self) -> Run:
        for line in self.lines():  # what the child wrote before it died was reported too
            self.run.take(line)
        self.proc.wait(timeout=120)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace")
        self.stderr.close()
        if not self.run.killed:
            assert self.proc.returncode == 0, f"import exited {self.proc.returncode}: {err}"
        return self.run


def import_to_the_end(data: Path, src: Path) -> Run:
    child = Child(data, src)
    try:
        return child.finish()
    except BaseException:
        child.abort()
        raise


def import_killed_after_lines(data: Path, src: Path, n: int) -> Run:
    """Kill the import as soon as it has reported its n-th archived message."""
    child = Child(data, src)
    try:
        for line in child.lines():
            child.run.take(line)
            if len(child.run.reported) >= n:
                child.kill()
                break
        return child.finish()
    except BaseException:
        child.abort()
        raise


def import_killed_once_store_registered(data: Path, src: Path) -> Run:
    """Kill the first import into an empty data directory right after the new store is
    registered (mailkeep.db commits at once), before anything is reported."""
    return import_stopped_at(data, src, "mailkeep.core.masterdb.stores:StoreRegistry.add:1:after")


def import_stopped_at(data: Path, src: Path, crash_at: str) -> Run:
    """Run the import until the child stops itself at `crash_at`, then SIGKILL it there."""
    child = Child(data, src, crash_at)
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(child.lines()))
    reader.start()
    try:
        wait_stopped(child.proc, crash_at)
    except AssertionError:
        child.kill()
        reader.join(timeout=60)
        child.finish()
        raise
    child.kill()
    reader.join(timeout=60)
    for line in lines:
        child.run.take(line)
    return child.finish()


# -- checking the archive -------------------------------------------------------------------
def archive_contents(data: Path, tmp: Path) -> dict[str, tuple[str, str]]:
    """id -> (folder, sha256) of every message in the archive, from a byte-exact export."""
    out = tmp / "export"
    shutil.rmtree(out, ignore_errors=True)
    res = mk_process(data, "export", "--to", str(out))
    assert res.returncode == 0, res.stderr
    got: dict[str, tuple[str, str]] = {}
    if not out.exists():
        return got
    for path in out.rglob("*.eml"):
        rel = path.relative_to(out)
        assert rel.parts[0] == "admin"
        store_id, number = path.stem.split("-")
        got[f"{store_id}:{number}"] = ("/".join(rel.parts[1:-1]), sha(path.read_bytes()))
    shutil.rmtree(out)
    return got


def check_after_crash(data: Path, src: Source, reported: dict[str, str], tmp: Path,
                      what: str) -> dict[str, tuple[str, str]]:
    """verify passes; every reported message is there, under its id, byte for byte; and no
    (message, folder) pair is filed twice. Returns the archive's contents."""
    res = mk_process(data, "verify", "--json")
    assert res.returncode == 0, f"{what}: verify failed after the kill:\n{res.stdout}{res.stderr}"
    contents = archive_contents(data, tmp)
    for mid, origin in reported.items():
        assert mid in contents, f"{what}: {mid} ({origin}) was reported archived and is gone"
        assert contents[mid] == src.by_origin[origin], (
            f"{what}: {mid} does not hold the bytes of {origin} in its folder")
    doubled = [p for p, c in Counter(contents.values()).items() if c > 1]
    assert not doubled, f"{what}: filed twice: {doubled[:5]}"
    assert set(contents.values()) <= src.pairs, f"{what}: the archive holds foreign messages"
    return contents


def complete_and_check(data: Path, src: Source, reported: dict[str, str],
                       before: dict[str, tuple[str, str]], tmp: Path, what: str) -> None:
    """Re-run the import to its end: it adds exactly what is missing, each pair once, and
    keeps every id given out before."""
    final = import_to_the_end(data, src.root)
    s = final.summary
    assert s is not None, f"{what}: no summary"
    assert s["failed"] == 0 and s["skipped"] == 0 and not final.other, (what, final.other[:3])
    assert s["archived"] == len(final.reported) == len(src.pairs) - len(before), (what, s)
    assert s["archived"] + s["duplicates"] == src.messages, (what, s)
    assert not set(final.reported) & set(before), f"{what}: an id was given out twice"
    contents = check_after_crash(data, src, {**reported, **final.reported}, tmp,
                                 f"{what}, then completed")
    assert sorted(contents.values()) == sorted(src.pairs), f"{what}: not exactly the source"
    for mid, pair in before.items():
        assert contents[mid] == pair, f"{what}: {mid} changed"


# -- the tests ------------------------------------------------------------------------------
def test_kill_rounds_into_one_data_directory(big_source: Source, tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(20240611)
    reported: dict[str, str] = {}
    contents: dict[str, tuple[str, str]] = {}
    log: list[str] = []

    def check(what: str, r: Run) -> None:
        nonlocal contents
        reported.update(r.reported)
        previous = contents
        contents = check_after_crash(data, big_source, reported, tmp_path, what)
        for mid, pair in previous.items():  # nothing that was there before is lost or moved
            assert contents.get(mid) == pair, f"{what}: {mid} changed"
        log.append(f"{what}: killed={r.killed}, reported {len(r.reported)} archived and "
                   f"{r.duplicates} duplicates; the archive holds {len(contents)}")

    def left() -> int:
        return len(big_source.pairs) - len(contents)

    # 1. the first import into an empty data directory, killed as soon as its store exists
    r = import_killed_once_store_registered(data, big_source.root)
    assert not r.reported
    check("round 1 (killed once the store was registered)", r)
    # 2.-5. killed as soon as the n-th archived message is reported, for several n, and once
    # at a record drawn at random: before, after or half-way through writing the k-th record
    # of the run (it writes at least one for each message it archives). Each run first finds
    # what earlier runs archived (duplicates), then archives on; a run that finds nothing left
    # to archive is not killed.
    for i, when in enumerate(("line 1", 0.2, "random", 0.4), start=2):
        if when == "random":
            k, mode = rng.randint(1, max(1, left())), rng.choice(["", ":after", ":torn"])
            if not left():  # nothing left to write: the run goes to its end, archiving nothing
                r = import_to_the_end(data, big_source.root)
                assert r.summary is not None and r.summary["archived"] == 0, r.summary
                check(f"round {i} (nothing left to archive)", r)
                continue
            point = f"mailkeep.core.storage.segments:SegmentWriter.append:{k}{mode}"
            r = import_stopped_at(data, big_source.root, point)
            check(f"round {i} (killed at {point})", r)
            continue
        n = 1 if when == "line 1" else max(1, int(left() * float(when)))
        r = import_killed_after_lines(data, big_source.root, n)
        check(f"round {i} (killed after {n} archived lines)", r)
    print("\n".join(log))
    # on a fast machine the last rounds may find everything archived already
    assert sum("killed=True" in line for line in log) >= 3, log
    complete_and_check(data, big_source, reported, contents, tmp_path, "after the kills")
    again = import_to_the_end(data, big_source.root)  # and once more: nothing new
    assert again.summary is not None
    assert again.summary["archived"] == 0 and again.summary["duplicates"] == big_source.messages


# Where the child stops itself to be killed: "module:[Class.]function:k[:mode]" (see CHILD).
CRASH_POINTS = {
    # the store directory is being made; the manifest is not written, nothing is registered
    "store manifest": "mailkeep.core.storage.store:write_json_atomic:1",
    # the store directory is complete, not yet registered in mailkeep.db
    "store registration": "mailkeep.core.masterdb.stores:StoreRegistry.add:1",
    # records of the first batch appended, not yet fsynced
    "batch not fsynced": "mailkeep.core.storage.segments:SegmentWriter.append:200",
    # half of a record written: a torn tail
    "torn record": "mailkeep.core.storage.segments:SegmentWriter.append:301:torn",
    # the first batch fsynced, its catalog commit not made (sync 1 closed the new store)
    "between fsync and commit": "mailkeep.core.storage.segments:SegmentWriter.sync:2:after",
    # the first batch committed, nothing reported yet
    "after commit": "mailkeep.core.storage.store:Store.commit:1:after",
    # the store has sampled its messages for its first dictionary, which a worker trains
    # while the import goes on
    "dictionary training": "mailkeep.core.storage.store:Store.dictionary_samples:1:after",
    # the dictionary record appended, neither fsynced nor committed
    "dictionary record": "mailkeep.core.storage.store:Store.add_dictionary:1:after",
}
NEEDS_DICTIONARY = {"dictionary training", "dictionary record"}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_kill_at_exact_instant(point: str, small_source: Source, medium_source: Source,
                               tmp_path: Path) -> None:
    src = medium_source if point in NEEDS_DICTIONARY else small_source
    data = tmp_path / "data"
    r = import_stopped_at(data, src.root, CRASH_POINTS[point])
    before = check_after_crash(data, src, r.reported, tmp_path, f"killed at {point}")
    complete_and_check(data, src, r.reported, before, tmp_path, f"killed at {point}")
    assert [p.name for p in (data / "stores").iterdir()] == ["Default"]
