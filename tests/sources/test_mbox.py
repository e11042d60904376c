"""mbox splitting: byte exactness, escaping, CRLF/CR files, gzip, spooling, and the corpus."""

from __future__ import annotations

import gzip
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources import mbox
from mailkeep.sources.mbox import MboxFormat, from_line_date, read_mbox
from tests.helpers import BULK, TRICKY


def messages(path: Path, fmt: MboxFormat = "auto") -> list[bytes]:
    """The bytes of every message, failing on any problem."""
    out = []
    for item in read_mbox(path, fmt):
        assert isinstance(item, RawMessage), item
        out.append(item_bytes(item))
    return out


def item_bytes(item: RawMessage) -> bytes:
    if item.data is not None:
        return item.data
    assert item.stream is not None
    data = item.stream.read()
    item.close()
    assert len(data) == item.size
    return data


def mboxrd(msgs: list[bytes], sender: bytes = b"mboxrd@z") -> bytes:
    """Write messages the way public-inbox does: escape ^>*From , one blank line after each.

    A message without a final newline can only be last, with nothing after it.
    """
    out = b""
    for m in msgs:
        body = re.sub(rb"(?m)^(>*From )", rb">\1", m)
        blank = b"\n" if m.endswith(b"\n") else b""
        out += b"From " + sender + b" Thu Jan  1 00:00:00 1970\n" + body + blank
    return out


TRICKY_MESSAGES = [
    b"From: a@example.org\nSubject: one\n\nFrom the start\n>From quoted\n>>From deep\n",
    b">From: first line escaped\n\nbody\n\n\n",  # ends with blank lines of its own
    b"Subject: nul and 8-bit\n\n\x00\xff\xfe\r\nbare\rcr\n",
    b"Subject: no final newline\n\nlast line",  # only possible as the last message
]


def test_mboxrd_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "x.mbox"
    path.write_bytes(mboxrd(TRICKY_MESSAGES))
    assert messages(path) == TRICKY_MESSAGES
    assert messages(path, fmt="mboxrd") == TRICKY_MESSAGES


def test_mboxo_unescapes_one_level_only(tmp_path: Path) -> None:
    path = tmp_path / "o.mbox"
    path.write_bytes(b"From a@b Mon Jan  1 00:00:00 2001\nS: x\n\n>From one\n>>From two\n")
    assert messages(path, fmt="mboxo") == [b"S: x\n\nFrom one\n>>From two\n"]
    assert messages(path, fmt="mboxrd") == [b"S: x\n\nFrom one\n>From two\n"]


def test_auto_format_guess(tmp_path: Path) -> None:
    plain = tmp_path / "plain.mbox"
    plain.write_bytes(b"From a@b Mon Jan  1 00:00:00 2001\n\n>From x\n>>>From y\n")
    # a >>From line anywhere in the file means mboxrd
    assert messages(plain) == [b"\nFrom x\n>>From y\n"]
    old = tmp_path / "old.mbox"
    old.write_bytes(b"From a@b Mon Jan  1 00:00:00 2001\n\n>From x\n> >From y\n")
    assert messages(old) == [b"\nFrom x\n> >From y\n"]


def test_separator_without_blank_line_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "crlf.mbox"
    path.write_bytes(
        b"From a Mon Jan  1 00:00:00 2001\r\nA: 1\r\n\r\nx\r\n\r\n"
        b"From b Mon Jan  1 00:00:00 2001\r\nB: 2\r\n\r\ny\r\n"
        b"From c Mon Jan  1 00:00:00 2001\r\nC: 3\r\n\r\nz\r\n\r\n"
    )
    assert messages(path) == [b"A: 1\r\n\r\nx\r\n", b"B: 2\r\n\r\ny\r\n", b"C: 3\r\n\r\nz\r\n"]


def test_bare_cr_mbox(tmp_path: Path) -> None:
    path = tmp_path / "mac.mbox"
    path.write_bytes(b"From a Mon Jan  1 00:00:00 2001\rA: 1\r\rx\r\rFrom b\rB: 2\r\r>From y\r\r")
    assert messages(path) == [b"A: 1\r\rx\r", b"B: 2\r\rFrom y\r"]


def test_empty_message_and_not_an_mbox(tmp_path: Path) -> None:
    path = tmp_path / "e.mbox"
    path.write_bytes(b"From a\n\nFrom b\nFrom c\nX: y\n")
    items = list(read_mbox(path))
    assert items[:2] == [
        SourceProblem(f"{path}#1", "empty message", skipped=True),
        SourceProblem(f"{path}#2", "empty message", skipped=True),
    ]
    assert isinstance(items[2], RawMessage) and items[2].data == b"X: y\n"
    other = tmp_path / "note.txt"
    other.write_bytes(b"Subject: hi\n")
    [problem] = list(read_mbox(other))
    assert isinstance(problem, SourceProblem) and "not an mbox" in problem.reason
    [missing] = list(read_mbox(tmp_path / "absent.mbox"))
    assert isinstance(missing, SourceProblem) and missing.origin.endswith("absent.mbox")


def test_gzip_detected_by_magic_and_origins(tmp_path: Path) -> None:
    path = tmp_path / "no-gz-suffix"
    path.write_bytes(gzip.compress(mboxrd(TRICKY_MESSAGES)))
    items = list(read_mbox(path, folder="lists/x"))
    assert [i.origin for i in items] == [f"{path}#{n}" for n in range(1, 5)]
    assert all(isinstance(i, RawMessage) and i.folder == "lists/x" for i in items)


def test_truncated_gzip_reports_the_message(tmp_path: Path) -> None:
    big = b"Subject: three\n\n" + b"".join(b"%08d padding line\n" % i for i in range(5000))
    raw = mboxrd([b"Subject: one\n\nx\n", b"Subject: two\n\ny\n", big])
    path = tmp_path / "cut.mbox.gz"
    packed = gzip.compress(raw)
    path.write_bytes(packed[: len(packed) - 200])
    items = list(read_mbox(path))
    assert [getattr(i, "data", i) for i in items[:2]] == [
        b"Subject: one\n\nx\n",
        b"Subject: two\n\ny\n",
    ]
    problem = items[2]
    assert isinstance(problem, SourceProblem) and len(items) == 3
    assert problem.origin == f"{path}#3" and "message 3" in problem.reason


def test_plain_file_cut_mid_message_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.mbox"
    path.write_bytes(b"From a\nA: 1\n\nFrom b\nB: 2\n\npartial li")
    assert messages(path) == [b"A: 1\n", b"B: 2\n\npartial li"]


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
@pytest.mark.parametrize("threshold", [40, 1 << 30])
def test_small_chunks_and_spooling_give_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, threshold: int
) -> None:
    monkeypatch.setattr(mbox, "CHUNK", chunk)
    monkeypatch.setattr(mbox, "SPOOL_THRESHOLD", threshold)
    long_line = b"Subject: long\n\n" + b"y" * 300 + b"\n>From z\n"
    msgs = [*TRICKY_MESSAGES[:2], long_line, b"A: b\r\n\r\n>From x\r\n", *TRICKY_MESSAGES[2:]]
    path = tmp_path / "x.mbox"
    path.write_bytes(mboxrd(msgs))
    items = [i for i in read_mbox(path) if isinstance(i, RawMessage)]
    assert [item_bytes(i) for i in items] == msgs
    big = [i for i in msgs if len(i) > threshold]
    assert sum(1 for i in items if i.stream is not None) == len(big)


def test_spooled_message_is_a_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mbox, "SPOOL_THRESHOLD", 1000)
    body = b"Subject: big\n\n" + b">From escaped\n" * 200
    path = tmp_path / "big.mbox"
    path.write_bytes(mboxrd([b"S: small\n", body]))
    small, large = list(read_mbox(path))
    assert isinstance(small, RawMessage) and small.data == b"S: small\n"
    assert isinstance(large, RawMessage) and large.data is None and large.stream is not None
    assert large.size == len(body) and large.head(14) == b"Subject: big\n\n"
    assert item_bytes(large) == body


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"From MAILER-DAEMON Thu Sep 18 17:54:04 2008", datetime(2008, 9, 18, 17, 54, 4)),
        (b"From x  Wed Sep 17 22:25:40 2008\r", datetime(2008, 9, 17, 22, 25, 40)),
        (b"From a@b Sat Jan  3 01:05:34 1996 +0100", datetime(1996, 1, 3, 0, 5, 34)),
        (b"From 1@xxx Sat Jan 03 01:05:34 +0000 2015", datetime(2015, 1, 3, 1, 5, 34)),
        (b"From a@b Sat, 3 Jan 2015 01:05:34 -0200", datetime(2015, 1, 3, 3, 5, 34)),
        (b"From mboxrd@z Thu Jan  1 00:00:00 1970", None),
        (b"From - ", None),
        (b"From a@b Thu Foo 99 99:99:99 2008", None),
    ],
)
def test_from_line_date(line: bytes, expected: datetime | None) -> None:
    want = None if expected is None else expected.replace(tzinfo=UTC).timestamp()
    assert from_line_date(line) == want


def test_bulk_year_matches_public_inbox_blobs() -> None:
    path = BULK / "linux-mips-1996.mbox.gz"
    raw = gzip.decompress(path.read_bytes())
    got = messages(path)
    assert len(got) == raw.count(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n") == 247
    assert all(not m.startswith(b"From ") and m.endswith(b"\n") for m in got)
    # the corpus README's recipe for turning the mbox back into the original blobs
    sep = b"\nFrom mboxrd@z Thu Jan  1 00:00:00 1970\n"
    parts = raw[len(sep) - 1 :].split(sep)
    parts[-1] = parts[-1][:-1]
    assert got == [re.sub(rb"(?m)^>(>*From )", rb"\1", p) for p in parts]


def test_gmime_separators_without_blank_lines() -> None:
    got = messages(TRICKY / "gmime" / "mbox" / "input" / "substring.mbox")
    assert len(got) == 3
    assert all(m.startswith(b"From: fejj@gnome.org\n") for m in got)
    assert all(m.endswith(b"<-- You are here.\n") for m in got)


def test_mime4j_rlug() -> None:
    path = TRICKY / "mime4j" / "mbox-example" / "mbox.rlug"
    items = [i for i in read_mbox(path) if isinstance(i, RawMessage)]
    assert len(items) == 5
    stamp = datetime(2003, 3, 4, 3, 33, 20, tzinfo=UTC).timestamp()
    assert {i.internal_date for i in items} == {stamp}
    raw = path.read_bytes()
    lines = re.findall(rb"(?m)^From .*\n", raw)
    assert (
        b"".join(line + item_bytes(i) + b"\n" for line, i in zip(lines, items, strict=True)) == raw
    )


def test_sisimai_crlf_mbox_rebuilds_exactly() -> None:
    path = TRICKY / "sisimai-set-of-emails" / "mailbox" / "mbox-0"
    got = messages(path)
    assert len(got) == 37
    assert all(m.endswith(b"\r\n") and b"\n" not in m.replace(b"\r\n", b"") for m in got)
    raw = path.read_bytes()
    lines = re.findall(rb"(?m)^From .*\n", raw)
    assert b"".join(line + m + b"\r\n" for line, m in zip(lines, got, strict=True)) == raw
    [one] = messages(path.with_name("mbox-1"))
    assert one.startswith(b"Return-Path: <MAILER-DAEMON@example.jp>\n")


def reference_split(raw: bytes, nl: bytes, fmt: MboxFormat) -> list[bytes]:
    """The rules read naively: whole file in memory, line by line."""
    lines = re.findall(rb"[^" + nl + rb"]*" + nl + rb"|[^" + nl + rb"]+$", raw)
    found: list[list[bytes]] = []
    for line in lines:
        if line.startswith(b"From "):
            found.append([])
        else:
            found[-1].append(line)
    escape = rb"^>(>*From )" if fmt == "mboxrd" else rb"^>(From )"
    out = []
    for msg in found:
        if msg and msg[-1] in (nl, b"\r\n"):
            msg = msg[:-1]
        out.append(b"".join(re.sub(escape, rb"\1", line) for line in msg))
    return out


@pytest.mark.parametrize("nl", [b"\n", b"\r"])
def test_random_mboxes_match_a_naive_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nl: bytes
) -> None:
    rng = random.Random(1)
    pieces = [b"From ", b">From ", b">>From ", nl, b"\r\n", b"x", b"From x y" + nl, nl + nl]
    pieces += [b" From ", b"F", b">", b"y" * 50]
    path = tmp_path / "r.mbox"
    for _ in range(300):
        raw = b"From a" + nl + b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        path.write_bytes(gzip.compress(raw) if rng.random() < 0.3 else raw)
        monkeypatch.setattr(mbox, "CHUNK", rng.choice([5, 6, 7, 13, 64, 1 << 20]))
        monkeypatch.setattr(mbox, "SPOOL_THRESHOLD", rng.choice([3, 20, 1 << 30]))
        fmt: MboxFormat = rng.choice(["mboxo", "mboxrd"])
        got = [item_bytes(i) if isinstance(i, RawMessage) else b"" for i in read_mbox(path, fmt)]
        assert got == reference_split(raw, nl, fmt), raw
