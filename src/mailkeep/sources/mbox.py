"""Read mbox files (mboxo and mboxrd, plain or gzip) as a stream of RawMessage.

detect.py decides which files are mboxes and which folder they land in; this module only splits.

Rules chosen here:
- Boundaries: every line that starts with ``From `` is a From_ separator, whether or not a blank
  line precedes it. mboxo and mboxrd writers escape every body line starting with ``From ``, so an
  unescaped one can only be a separator; this is also what Python's ``mailbox`` and GMime do
  (GMime's ``substring.mbox`` has separators without blank lines before them).
- The one blank line a writer puts after each message (before the next From_ line, or at the end
  of the file) is removed when present: ``\\n``, or ``\\r\\n`` in CRLF files. A message that ends
  without a newline at end of file is kept as it is.
- Escaping: mboxrd turns ``>From `` back into ``From `` at any depth (``>>From `` -> ``>From ``);
  mboxo only at depth one. With ``fmt="auto"`` a file is mboxrd when its first From_ line is
  ``From mboxrd@z`` (public-inbox) or when any line starts with ``>>From ``, else mboxo.
  The ``>>From `` test costs a second read of the file and is a guess: an mboxrd writer makes
  such lines from every quoted ``>From ``, an mboxo writer only keeps them when the mail had
  them. Pass ``fmt="mboxo"``/``"mboxrd"`` to skip the guess. Both readings agree on everything
  else, so a wrong guess only changes ``>>From `` lines.
- Files whose lines end in a bare CR (old Mac mboxes) are split on CR.
- internal_date comes from the From_ line's asctime date (UTC unless a numeric zone follows);
  public-inbox's placeholder date (epoch 0) counts as unknown.
- A message larger than SPOOL_THRESHOLD is spooled to a temporary file and yielded as a stream.
- A read error (cut gzip stream, I/O error) yields a SourceProblem naming the message being read
  and ends the file; messages completed before it have already been yielded.
"""

from __future__ import annotations

import gzip
import io
import re
import tempfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_tz
from pathlib import Path
from typing import BinaryIO, Literal

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources.eml import open_regular, os_reason

MboxFormat = Literal["auto", "mboxo", "mboxrd"]
FileKind = Literal["mbox", "gzip", "pst", "ole", "plain"]
PST_MAGIC = b"!BDN"  # an Outlook PST or OST file
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an OLE compound file (Outlook MSG, old Office)

SPOOL_THRESHOLD = 32 * 1024 * 1024  # bytes; larger messages go to a tempfile, not memory
CHUNK = 1024 * 1024
FIRST_LINE_LIMIT = 1024 * 1024  # bytes read to find the first line end (LF or CR file?)
GZIP_MAGIC = b"\x1f\x8b"
FROM = b"From "
PUBLIC_INBOX_SENDER = b"mboxrd@z"

_READ_ERRORS = (OSError, EOFError, zlib.error)
_NEWLINE = re.compile(rb"\n|\r(?=[^\n])")  # a CR counts once the byte after it is known
_MONTHS = {
    m.encode(): i
    for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)
}
# asctime as in From_ lines: "Thu Sep 18 17:54:04 2008", optionally with a zone before or
# after the year (Google Takeout writes "Sat Jan 03 01:05:34 +0000 2015").
_ASCTIME = re.compile(
    rb"([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+"
    rb"(?:([+-]\d{4})\s+|[A-Za-z]{1,5}\s+)?(\d{4})(?:\s+([+-]\d{4}))?"
)


def sniff(path: Path) -> FileKind:
    """Whether the file (after gunzip) is an mbox, another gzip file, a PST or OLE compound
    file (not gzipped), or anything else, from its first bytes.

    Raises OSError, EOFError or zlib.error when the file cannot be read or gunzipped.
    """
    with _open(path) as f:
        head = f.read(len(OLE_MAGIC))
        if head.startswith(FROM):
            return "mbox"
        if isinstance(f, gzip.GzipFile):
            return "gzip"
        if head.startswith(PST_MAGIC):
            return "pst"
        return "ole" if head == OLE_MAGIC else "plain"


def read_mbox(
    path: str | Path, fmt: MboxFormat = "auto", folder: str = ""
) -> Iterator[RawMessage | SourceProblem]:
    """Yield every message of the mbox at `path`, in file order, with the given folder."""
    path = Path(path)
    try:
        f = _open(path)
    except OSError as exc:
        yield SourceProblem(str(path), f"cannot open: {os_reason(exc)}")
        return
    with f:
        yield from _Splitter(path, f, fmt, folder).run()


class _Splitter:
    """One pass over one mbox; kept as an object so the per-message state has names."""

    def __init__(self, path: Path, f: io.BufferedIOBase, fmt: MboxFormat, folder: str) -> None:
        self.path, self.f, self.fmt, self.folder = path, f, fmt, folder
        self.n = 0  # number of the message being read (1-based); 0 before the first From_
        self.parts: list[bytes] = []
        self.size = 0
        self.tail = b""  # last raw bytes of the message, to spot the trailing blank line
        self.spool: BinaryIO | None = None
        self.date: float | None = None
        self.nl = b"\n"
        self.unescape: re.Pattern[bytes] | None = None

    def run(self) -> Iterator[RawMessage | SourceProblem]:
        try:
            first = self.f.read1(CHUNK)
            # read on until the first line end, which tells LF/CRLF from CR files
            while len(first) < FIRST_LINE_LIMIT and not _NEWLINE.search(first):
                more = self.f.read1(CHUNK)
                if not more:
                    break
                first += more
        except _READ_ERRORS as exc:
            yield SourceProblem(str(self.path), f"read error: {exc}")
            return
        if not first.startswith(FROM):
            yield SourceProblem(str(self.path), "not an mbox: does not start with a From_ line")
            return
        self.nl = _newline_of(first)
        try:
            self.unescape = self._choose_escape(first)
        except _READ_ERRORS:
            self.unescape = _escape_pattern("mboxo", self.nl)  # the main pass reports it
        try:
            yield from self._split(_line_blocks(self.f, first, self.nl))
        except _READ_ERRORS as exc:
            self._drop_spool()
            where = f"{self.path}#{self.n}" if self.n else str(self.path)
            yield SourceProblem(
                where, f"read error in message {self.n} ({exc!r}); the rest of the file is lost"
            )
            return
        if self.n:
            yield from self._finish()

    def _choose_escape(self, first: bytes) -> re.Pattern[bytes]:
        fmt = self.fmt
        if fmt == "auto":
            sender = first[len(FROM) : first.find(self.nl)].split(b" ", 1)[0].strip()
            if sender == PUBLIC_INBOX_SENDER or self._has_deep_escape():
                fmt = "mboxrd"
            else:
                fmt = "mboxo"
        return _escape_pattern(fmt, self.nl)

    def _has_deep_escape(self) -> bool:
        deep = re.compile(rb"(?:\A|" + re.escape(self.nl) + rb")>>+From ")
        with _open(self.path) as f:
            blocks = _line_blocks(f, f.read1(CHUNK), self.nl)
            return any(deep.search(block) for block, _ in blocks)

    def _split(self, blocks: Iterator[tuple[bytes, bool]]) -> Iterator[RawMessage | SourceProblem]:
        in_from_line = False  # a From_ line that continues into the next block
        for block, at_line_start in blocks:
            start = 0
            if in_from_line:
                start = self._skip_from_line(block, 0)
                in_from_line = start < 0
                if in_from_line:
                    continue
            hit = 0 if at_line_start and start == 0 and block.startswith(FROM) else -1
            if hit < 0:
                hit = self._next_from(block, start)
            while hit >= 0:
                self._add(block[start:hit], at_line_start or start > 0)
                if self.n:
                    yield from self._finish()
                self.n += 1
                start = self._skip_from_line(block, hit)
                if start < 0:
                    in_from_line = True
                    break
                hit = self._next_from(block, start)
            else:
                self._add(block[start:], at_line_start or start > 0)

    def _next_from(self, block: bytes, start: int) -> int:
        """Where the next From_ line at or after line start `start` begins, or -1."""
        # search from the newline before `start` so that a From_ line right at `start` counts
        at = block.find(self.nl + FROM, max(start - len(self.nl), 0))
        return at + len(self.nl) if at >= 0 else -1

    def _skip_from_line(self, block: bytes, at: int) -> int:
        """Parse the From_ line at `at`; return where the message starts, -1 if not in block."""
        end = block.find(self.nl, at)
        if end < 0:
            return -1
        self.date = from_line_date(block[at:end]) if block.startswith(FROM, at) else None
        return end + len(self.nl)

    def _add(self, part: bytes, at_line_start: bool) -> None:
        if not part or not self.n:
            return
        self.tail = (self.tail + part[-3:])[-3:]
        self.size += len(part)
        if self.spool is not None:
            self.spool.write(self._unescaped(part, at_line_start))
            return
        self.parts.append(part)
        if self.size > SPOOL_THRESHOLD:
            self.spool = tempfile.TemporaryFile()  # handed out with the message
            self.spool.write(self._unescaped(b"".join(self.parts), True))
            self.parts = []

    def _unescaped(self, data: bytes, at_line_start: bool) -> bytes:
        assert self.unescape is not None
        if b">From " not in data:
            return data
        if at_line_start:
            return self.unescape.sub(rb"\1", data)
        # a part that starts mid-line: its first line cannot hold an escape
        cut = data.find(self.nl) + 1
        if cut == 0:
            return data
        return data[:cut] + self.unescape.sub(rb"\1", data[cut:])

    def _finish(self) -> Iterator[RawMessage | SourceProblem]:
        """Yield the message read so far and reset for the next one."""
        strip = _blank_tail(self.tail, self.size, self.nl)
        origin = f"{self.path}#{self.n}"
        spool, parts, date = self.spool, self.parts, self.date
        self.parts, self.size, self.tail, self.spool, self.date = [], 0, b"", None, None
        if spool is not None:
            size = spool.tell() - strip
            spool.truncate(size)
            spool.seek(0)
            yield RawMessage(self.folder, origin, stream=spool, size=size, internal_date=date,
                             position=self._position())
            return
        data = self._unescaped(b"".join(parts), True)
        if strip:
            data = data[:-strip]
        if not data:
            yield SourceProblem(origin, "empty message", skipped=True)
            return
        yield RawMessage(self.folder, origin, data=data, internal_date=date,
                         position=self._position())

    def _position(self) -> int | None:
        """How far into the file on disk reading has got (the compressed offset for gzip)."""
        raw = self.f._raw if isinstance(self.f, _GzipOwningFile) else self.f
        try:
            return raw.tell()
        except (OSError, ValueError):
            return None

    def _drop_spool(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None


def from_line_date(line: bytes) -> float | None:
    """Epoch seconds of the date in a From_ line ("From sender Thu Sep 18 17:54:04 2008")."""
    rest = line[len(FROM) :].rstrip(b"\r").lstrip().partition(b" ")[2]
    m = _ASCTIME.search(rest)
    if m is None:
        parsed = parsedate_tz(rest.decode("latin-1"))
        if parsed is None:
            return None
        try:
            when = datetime(*parsed[:6], tzinfo=UTC) - timedelta(seconds=parsed[9] or 0)
        except (ValueError, OverflowError):
            return None
    else:
        mon, day, hh, mm, ss, zone1, year, zone2 = m.groups()
        month = _MONTHS.get(mon)
        if month is None:
            return None
        try:
            when = datetime(int(year), month, int(day), int(hh), int(mm), int(ss or 0), tzinfo=UTC)
        except ValueError:
            return None
        zone = zone1 or zone2
        if zone:
            minutes = int(zone[1:3]) * 60 + int(zone[3:5])
            when -= timedelta(minutes=minutes if zone[:1] == b"+" else -minutes)
    stamp = when.timestamp()
    return stamp or None  # epoch 0 is public-inbox's "date unknown"


def _open(path: Path) -> io.BufferedIOBase:
    """Open plain or gzip (by magic). Read it with read1: it hands over what one underlying
    read produced, so the data before a cut in a gzip stream comes out before the error."""
    raw = open_regular(path)
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError:
        raw.close()
        raise
    if magic == GZIP_MAGIC:
        return _GzipOwningFile(raw)
    return raw


class _GzipOwningFile(gzip.GzipFile):
    """A GzipFile that also closes the raw file it reads (GzipFile leaves fileobj open)."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def _line_blocks(f: io.BufferedIOBase, first: bytes, nl: bytes) -> Iterator[tuple[bytes, bool]]:
    """Yield (block, starts_at_line_start): blocks of whole lines, read CHUNK bytes at a time.

    Only a line longer than CHUNK is cut, after its ``>*From `` prefix if it has one; its pieces
    have no newline, so no line starts in them apart from the block start. The last block may
    lack its final newline.
    """
    carry = b""
    at_line_start = True
    chunk = first
    while chunk:
        pending = carry + chunk if carry else chunk
        cut = pending.rfind(nl)
        if cut >= 0:
            yield pending[: cut + 1], at_line_start
            at_line_start, carry = True, pending[cut + 1 :]
        elif len(pending) >= CHUNK and not (
            at_line_start and len(pending.lstrip(b">")) < len(FROM)
        ):  # never cut inside a line's ">>From " prefix: it must be seen whole
            yield pending, at_line_start
            at_line_start, carry = False, b""
        else:
            carry = pending
        chunk = f.read1(CHUNK)
    if carry:
        yield carry, at_line_start


def _newline_of(first: bytes) -> bytes:
    """b"\\r" for bare-CR files, else b"\\n" (CRLF lines end in \\n too)."""
    lf, cr = first.find(b"\n"), first.find(b"\r")
    if 0 <= cr < len(first) - 1 and (lf < 0 or cr < lf) and first[cr + 1] != ord("\n"):
        return b"\r"
    return b"\n"


def _escape_pattern(fmt: Literal["mboxo", "mboxrd"], nl: bytes) -> re.Pattern[bytes]:
    depth = rb">*" if fmt == "mboxrd" else b""
    return re.compile(rb"(?:\A|(?<=" + re.escape(nl) + rb"))>(" + depth + rb"From )")


def _blank_tail(tail: bytes, size: int, nl: bytes) -> int:
    """How many bytes the trailing separator blank line takes (0 if the message has none)."""
    if nl == b"\n":
        if tail.endswith(b"\n\r\n") or (size == 2 and tail == b"\r\n"):
            return 2
        if tail.endswith(b"\n\n") or (size == 1 and tail == b"\n"):
            return 1
        return 0
    return 1 if tail.endswith(b"\r\r") or (size == 1 and tail == b"\r") else 0
