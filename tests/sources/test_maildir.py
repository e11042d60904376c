"""Maildir and Maildir++: flags, folder names, skipped metadata, vanished and unreadable paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources.maildir import (
    decode_mutf7,
    flags_from_name,
    folder_name,
    is_maildir,
    read_maildir,
)
from tests.helpers import TRICKY

STALWART = TRICKY / "stalwart-mail-parser" / "maildir"


def make_maildir(path: Path, messages: dict[str, bytes]) -> Path:
    """Create cur/ new/ tmp/ under `path` and write `messages` ("cur/name": bytes)."""
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for name, data in messages.items():
        (path / name).write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("1.host:2,DFPRST", {"draft", "flagged", "forwarded", "answered", "seen", "deleted"}),
        ("1.host,S=10;2,Sb", {"seen"}),  # ';' where ':' is not allowed; 'b' is a keyword
        ("1.host!2,RT", {"answered", "deleted"}),
        ("1.host,S=1000,W=1030;2,RDF,", {"answered", "draft", "flagged"}),
        ("1.host:2,", set()),
        ("1.host", set()),
        ("1.host:1,S", set()),  # experimental info, no flags
    ],
)
def test_flags_from_name(name: str, flags: set[str]) -> None:
    assert flags_from_name(name) == flags


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("&ZeVnLIqe-", "日本語"),
        ("Entw&APw-rfe", "Entwürfe"),
        ("Tom &- Jerry", "Tom & Jerry"),
        ("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"),
        ("plain", "plain"),
        ("broken&ZeV", "broken&ZeV"),  # no closing '-': kept as is
        ("bad&!!!-", "bad&!!!-"),
    ],
)
def test_decode_mutf7(encoded: str, decoded: str) -> None:
    assert decode_mutf7(encoded) == decoded


def test_folder_names() -> None:
    assert folder_name(".Sent") == "Sent"
    assert folder_name(".Lists.linux") == "Lists/linux"
    assert folder_name(".&ZeVnLIqe-") == "日本語"
    assert folder_name(".Entw&APw-rfe") == "Entwürfe"
    assert folder_name(".&AC8-") == "&AC8-"  # a decoded '/' would invent a folder level


def test_maildir_plus_plus(tmp_path: Path) -> None:
    root = make_maildir(
        tmp_path / "Maildir",
        {"cur/2.b:2,S": b"two\n", "new/1.a": b"one\r\n", "tmp/0.x": b"in delivery\n"},
    )
    (root / "dovecot-uidlist").write_bytes(b"3 V1 N3\n")
    (root / "subscriptions").write_bytes(b"Sent\n")
    make_maildir(root / ".Sent", {"cur/3.c:2,RS": b"three\n"})
    (root / ".Sent" / "maildirfolder").write_bytes(b"")
    make_maildir(root / ".&ZeVnLIqe-", {"new/4.d": b"four\n"})
    make_maildir(root / ".Entw&APw-rfe", {"cur/5.e:2,D": b"five\n"})
    make_maildir(root / ".Lists.linux", {"cur/6.f:2,": b"six\n"})
    (root / "stray.txt").write_bytes(b"not mail\n")
    assert is_maildir(root)
    items = list(read_maildir(root))
    got = [(i.folder, i.data, sorted(i.flags)) for i in items if isinstance(i, RawMessage)]
    assert got == [
        ("", b"one\r\n", []),
        ("", b"two\n", ["seen"]),
        ("日本語", b"four\n", []),  # folders in the order of their directory names
        ("Entwürfe", b"five\n", ["draft"]),
        ("Lists/linux", b"six\n", []),
        ("Sent", b"three\n", ["answered", "seen"]),
    ]
    problems = [i for i in items if isinstance(i, SourceProblem)]
    assert problems == [
        SourceProblem(str(root / "stray.txt"), "not part of the Maildir; not read", skipped=True)
    ]
    message = next(i for i in items if isinstance(i, RawMessage))
    assert message.internal_date == (root / "new" / "1.a").stat().st_mtime


def test_base_folder_and_other_handler(tmp_path: Path) -> None:
    root = make_maildir(tmp_path, {"cur/1:2,S": b"x\n"})
    (tmp_path / "Archive").mkdir()
    seen: list[tuple[str, str]] = []

    def other(entry: os.DirEntry[str], folder: str) -> Iterator[RawMessage | SourceProblem]:
        seen.append((entry.name, folder))
        yield from ()

    items = list(read_maildir(root, "imported", other=other))
    assert [getattr(i, "folder", i) for i in items] == ["imported"]
    assert seen == [("Archive", "imported")]


def test_vanished_file(tmp_path: Path) -> None:
    root = make_maildir(tmp_path, {f"cur/{n}.host:2,S": b"m%d\n" % n for n in range(1, 4)})
    it = read_maildir(root)
    first = next(it)
    assert isinstance(first, RawMessage) and first.data == b"m1\n"
    (root / "cur" / "3.host:2,S").unlink()  # listed already, gone before it is read
    rest = list(it)
    assert isinstance(rest[0], RawMessage) and rest[0].data == b"m2\n"
    assert rest[1] == SourceProblem(str(root / "cur" / "3.host:2,S"), "No such file or directory")


def test_unreadable_message_and_directory(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "m", {"cur/1:2,S": b"ok\n"})
    sent = make_maildir(root / ".Sent", {"new/2": b"sent\n"})
    if os.geteuid() != 0:
        (sent / "cur").chmod(0)
        expected = "cannot list directory: Permission denied"
    else:
        # root reads through chmod 000; a cur/ that is a file fails to list for anyone
        (sent / "cur").rmdir()
        (sent / "cur").write_bytes(b"")
        expected = "cannot list directory: Not a directory"
    if Path("/proc/self/mem").exists():
        # opens as a regular file, fails on read with EIO even for root
        (root / "cur" / "2:2,S").symlink_to("/proc/self/mem")
    try:
        items = list(read_maildir(root))
    finally:
        if (sent / "cur").is_dir():
            (sent / "cur").chmod(0o755)
    assert [i.data for i in items if isinstance(i, RawMessage)] == [b"ok\n", b"sent\n"]
    problems = {i.origin: i.reason for i in items if isinstance(i, SourceProblem)}
    assert problems.pop(str(sent / "cur")) == expected
    if Path("/proc/self/mem").exists():
        assert problems.pop(str(root / "cur" / "2:2,S")) == "Input/output error"
    assert problems == {}


def test_unlistable_maildir_root(tmp_path: Path) -> None:
    [problem] = list(read_maildir(tmp_path / "gone"))
    assert problem == SourceProblem(
        str(tmp_path / "gone"), "cannot list directory: No such file or directory"
    )


def test_stalwart_maildir() -> None:
    items = list(read_maildir(STALWART))
    assert all(isinstance(i, RawMessage) for i in items)
    got = sorted((i.folder, i.data, sorted(i.flags)) for i in items if isinstance(i, RawMessage))
    assert got == [
        ("", b"a\n", ["deleted", "seen"]),
        ("", b"b\n", ["seen"]),
        ("My Folder", b"c\n", ["answered", "deleted", "draft"]),
        ("My Folder", b"d\n", []),
        ("My Folder/Nested Folder", b"e\n", ["flagged", "forwarded"]),
        ("My Folder/Nested Folder", b"f\n", ["answered", "draft", "flagged"]),
    ]
    assert all(isinstance(i, RawMessage) and i.internal_date for i in items)
