"""Single message files: bytes unchanged, folders from directories, problems instead of errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources import eml
from mailkeep.sources.detect import open_source
from mailkeep.sources.eml import read_message_file
from tests.helpers import TRICKY

SISIMAI = TRICKY / "sisimai-set-of-emails" / "maildir"

ODD_BYTES = {
    "crlf.eml": b"Subject: a\r\n\r\nline\r\n",
    "cr.eml": b"Subject: b\r\rline\r",
    "nul.eml": b"Subject: c\n\n\x00\x00\xff 8-bit \xe9\n",
    "no-newline.eml": b"Subject: d\n\nend",
}


def test_odd_bytes_are_kept(tmp_path: Path) -> None:
    for name, data in ODD_BYTES.items():
        (tmp_path / name).write_bytes(data)
    got = {Path(i.origin).name: i.data for i in open_source(tmp_path) if isinstance(i, RawMessage)}
    assert got == ODD_BYTES


def test_single_file_and_tree_folders(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "top.eml").write_bytes(b"S: 1\n")
    (tmp_path / "a" / "b" / "x.eml").write_bytes(b"S: 2\n")
    (tmp_path / "a" / ".hidden").write_bytes(b"S: 3\n")
    items = list(open_source(tmp_path))
    assert [(i.folder, Path(i.origin).name) for i in items if isinstance(i, RawMessage)] == [
        ("a", ".hidden"),
        ("a/b", "x.eml"),
        ("", "top.eml"),
    ]
    [single] = list(open_source(tmp_path / "a" / "b" / "x.eml"))
    assert isinstance(single, RawMessage) and single.folder == "" and single.internal_date is None


def test_problems_not_exceptions(tmp_path: Path) -> None:
    (tmp_path / "empty.eml").write_bytes(b"")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "m.eml").write_bytes(b"S: x\n")
    (tmp_path / "linked-dir").symlink_to(tmp_path / "real")
    (tmp_path / "linked-file.eml").symlink_to(tmp_path / "real" / "m.eml")
    items = list(open_source(tmp_path))
    problems = {Path(i.origin).name: i.reason for i in items if isinstance(i, SourceProblem)}
    assert problems == {
        "dangling": "broken symlink",
        "empty.eml": "empty file",
        "fifo": "not a regular file",
        "linked-dir": "symlinked directory not followed",
        "loop1": "Too many levels of symbolic links",
        "loop2": "Too many levels of symbolic links",
    }
    read = sorted(Path(i.origin).name for i in items if isinstance(i, RawMessage))
    assert read == ["linked-file.eml", "m.eml"]


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    missing = read_message_file(tmp_path / "gone.eml", "")
    assert missing == SourceProblem(str(tmp_path / "gone.eml"), "No such file or directory")
    directory = read_message_file(tmp_path, "")
    assert isinstance(directory, SourceProblem) and directory.reason == "not a regular file"
    # /proc/self/mem opens as a regular file and fails on read with EIO, even for root
    mem = Path("/proc/self/mem")
    assert mem.exists(), "no /proc/self/mem (Linux) to produce a read error"
    problem = read_message_file(mem, "")
    assert isinstance(problem, SourceProblem) and problem.reason == "Input/output error"


def test_large_file_comes_as_a_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eml, "SPOOL_THRESHOLD", 10)
    data = b"Subject: big\r\n\r\n" + bytes(range(256)) * 4
    path = tmp_path / "big.eml"
    path.write_bytes(data)
    item = read_message_file(path, "f", frozenset({"seen"}), with_mtime=True)
    assert isinstance(item, RawMessage) and item.data is None and item.stream is not None
    assert item.size == len(data) and item.head(7) == b"Subject"
    assert item.stream.read() == data
    assert item.flags == {"seen"} and item.internal_date == path.stat().st_mtime
    item.close()


@pytest.mark.parametrize("kind", ["dos", "mac", "bsd"])
def test_corpus_line_endings_unchanged(kind: str) -> None:
    folder = SISIMAI / kind
    items = list(open_source(folder))
    assert all(isinstance(i, RawMessage) for i in items)
    assert len(items) == len(list(folder.iterdir()))
    for item in items[:80]:
        assert isinstance(item, RawMessage)
        assert item.data == Path(item.origin).read_bytes()
    sample = next(i for i in items if isinstance(i, RawMessage))
    assert sample.data is not None
    if kind == "dos":
        assert b"\r\n" in sample.data
    elif kind == "mac":
        assert b"\r" in sample.data and b"\n" not in sample.data
