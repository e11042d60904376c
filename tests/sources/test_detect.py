"""open_source: what a path is, which reader it goes to, and which folder each message lands in."""

from __future__ import annotations

import gzip
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources.detect import mbox_folder_name, open_source
from tests.helpers import TRICKY, public_dir, unprivileged

MBOX = b"From a@b Mon Jan  1 00:00:00 2001\nS: 1\n\nFrom c@d Mon Jan  1 00:00:00 2001\nS: 2\n\n"


def summary(items: list[RawMessage | SourceProblem], root: Path) -> list[tuple[str, str]]:
    """(folder, origin relative to root) for messages, ("!", origin: reason) for problems."""

    def rel(origin: str) -> str:
        return os.path.relpath(origin, root) if origin.startswith(str(root)) else origin

    return [
        (i.folder, rel(i.origin))
        if isinstance(i, RawMessage)
        else ("!", f"{rel(i.origin)}: {i.reason}")
        for i in items
    ]


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("linux-mips-1996.mbox.gz", "linux-mips-1996"),
        ("Sent.MBOX", "Sent"),
        ("inbox.mbx", "inbox"),
        ("archive.gz", "archive"),
        ("mbox.rlug", "mbox.rlug"),
        (".mbox", ".mbox"),
    ],
)
def test_mbox_folder_name(name: str, folder: str) -> None:
    assert mbox_folder_name(name) == folder


def test_tree(tmp_path: Path) -> None:
    root = tmp_path / "import"
    (root / "lists" / "old").mkdir(parents=True)
    (root / "a.eml").write_bytes(b"S: a\n")
    (root / "enveloped.eml").write_bytes(MBOX)  # *.eml: one message, From_ line and all
    (root / "lists" / "linux.mbox.gz").write_bytes(gzip.compress(MBOX))
    (root / "lists" / "old" / "misnamed.gz").write_bytes(MBOX)  # no gzip magic: plain mbox
    (root / "lists" / "old" / "saved").write_bytes(gzip.compress(MBOX))  # magic, no suffix
    (root / "lists" / "notes.gz").write_bytes(gzip.compress(b"just text\n"))
    for sub in ("cur", "new", "tmp"):
        (root / "mail" / sub).mkdir(parents=True)
        (root / "mail" / ".Sent" / sub).mkdir(parents=True)
    (root / "mail" / "cur" / "1:2,S").write_bytes(b"S: m\n")
    (root / "mail" / ".Sent" / "new" / "2").write_bytes(b"S: s\n")
    (root / "mail" / "dovecot.index").write_bytes(b"\0")
    (root / "mail" / "Archive").mkdir()  # fs-layout subfolder: walked like any directory
    (root / "mail" / "Archive" / "x.eml").write_bytes(b"S: x\n")
    (root / "link").symlink_to(root / "lists")
    (root / "empty").write_bytes(b"")
    items = list(open_source(root))
    assert summary(items, root) == [
        ("", "a.eml"),
        ("!", "empty: empty file"),
        ("", "enveloped.eml"),
        ("!", "link: symlinked directory not followed"),
        ("lists/linux", "lists/linux.mbox.gz#1"),
        ("lists/linux", "lists/linux.mbox.gz#2"),
        ("!", "lists/notes.gz: gzip file that is not an mbox; not read"),
        ("lists/old/misnamed", "lists/old/misnamed.gz#1"),
        ("lists/old/misnamed", "lists/old/misnamed.gz#2"),
        ("lists/old/saved", "lists/old/saved#1"),
        ("lists/old/saved", "lists/old/saved#2"),
        ("mail", "mail/cur/1:2,S"),
        ("mail/Sent", "mail/.Sent/new/2"),  # entries in name order: "." before "A"
        ("mail/Archive", "mail/Archive/x.eml"),
    ]
    enveloped = items[2]
    assert isinstance(enveloped, RawMessage) and enveloped.data == MBOX
    mail = items[11]
    assert isinstance(mail, RawMessage) and mail.flags == {"seen"} and mail.internal_date


def test_path_named_directly_is_the_base_folder(tmp_path: Path) -> None:
    (tmp_path / "x.mbox").write_bytes(MBOX)
    (tmp_path / "m.eml").write_bytes(b"S: m\n")
    for sub in ("cur", "new"):
        (tmp_path / "md" / sub).mkdir(parents=True)
    (tmp_path / "md" / "new" / "1").write_bytes(b"S: 1\n")
    assert [getattr(i, "folder", i) for i in open_source(tmp_path / "x.mbox")] == ["", ""]
    assert [getattr(i, "folder", i) for i in open_source(str(tmp_path / "m.eml"))] == [""]
    assert [getattr(i, "folder", i) for i in open_source(tmp_path / "md")] == [""]


def test_problems(tmp_path: Path) -> None:
    assert list(open_source(tmp_path / "absent")) == [
        SourceProblem(str(tmp_path / "absent"), "No such file or directory")
    ]
    os.mkfifo(tmp_path / "fifo")
    assert list(open_source(tmp_path / "fifo")) == [
        SourceProblem(str(tmp_path / "fifo"), "not a regular file or directory", skipped=True)
    ]
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b garbage")
    [bad] = list(open_source(tmp_path / "bad.gz"))
    assert isinstance(bad, SourceProblem) and bad.origin == str(tmp_path / "bad.gz")


def test_directory_gone_before_it_is_walked(tmp_path: Path) -> None:
    # root is not stopped by chmod 000, so make the listing fail for real: the directory
    # is listed by its parent, then removed before the walk reaches it
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.eml").write_bytes(b"S: 1\n")
    (tmp_path / "b").mkdir()
    it = open_source(tmp_path)
    first = next(it)
    assert isinstance(first, RawMessage) and first.folder == "a"
    (tmp_path / "b").rmdir()
    assert list(it) == [
        SourceProblem(str(tmp_path / "b"), "cannot list directory: No such file or directory")
    ]


def test_unreadable_directory() -> None:
    # Read as a user without privileges (root lists directories whatever their mode), in a
    # directory that user may enter.
    root = public_dir("mailkeep-detect-")
    try:
        (root / "locked").mkdir()
        (root / "locked").chmod(0)
        items = unprivileged(lambda: list(open_source(root)))
    finally:
        (root / "locked").chmod(0o755)
        shutil.rmtree(root)
    assert items == [
        SourceProblem(str(root / "locked"), "cannot list directory: Permission denied")
    ]


def test_corpus_stalwart_and_sisimai() -> None:
    stalwart = TRICKY / "stalwart-mail-parser"
    folders = {i.folder for i in open_source(stalwart) if isinstance(i, RawMessage)}
    assert {"maildir", "maildir/My Folder", "maildir/My Folder/Nested Folder"} <= folders
    mailbox = TRICKY / "sisimai-set-of-emails" / "mailbox"
    items = list(open_source(mailbox))
    counts = Counter(i.folder if isinstance(i, RawMessage) else "!" for i in items)
    assert counts == {"mbox-0": 37, "mbox-1": 1, "": 2, "!": 1}  # size-0 is empty


def test_whole_tricky_corpus_reads_without_surprises() -> None:
    items = list(open_source(TRICKY))
    problems = sorted(
        os.path.relpath(i.origin, TRICKY) for i in items if isinstance(i, SourceProblem)
    )
    assert problems == [
        "flanker-dkim/dkim/email.01",
        "ruby-mail/sample_output_multipart",
        "sisimai-set-of-emails/mailbox/size-0",
    ]
    assert sum(isinstance(i, RawMessage) for i in items) > 1300
