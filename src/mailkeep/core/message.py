"""A message as it came in, before anything is parsed or stored: the type every source
(mailkeep.sources) yields and every pipeline of the domain (ingest, the writer) takes.

Sources never parse or store. A source yields RawMessage for every message it could read and
SourceProblem for every path it could not (vanished file, permission denied, truncated mbox
tail), then carries on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, runtime_checkable

# Flags in the IMAP sense, lower-case without the backslash.
FLAGS = ("seen", "answered", "flagged", "deleted", "draft", "forwarded")


@dataclass
class RawMessage:
    """One message exactly as the source holds it.

    `data` holds the bytes for ordinary messages. A very large message may instead come as
    `stream` (a readable binary file positioned at the message's first byte, `size` bytes
    long) so that it never has to sit in memory; exactly one of the two is set.
    """

    folder: str  # folder path relative to the import's base folder, '/'-separated, '' = base
    origin: str  # where it came from, for reports: a path, or "path#N" for the Nth mbox message
    data: bytes | None = None
    stream: BinaryIO | None = None
    size: int = 0
    flags: frozenset[str] = field(default_factory=frozenset)
    internal_date: float | None = None  # epoch seconds (mbox From_ line, file mtime), if known
    position: int | None = None  # bytes of the origin file read so far (for progress), if known

    def __post_init__(self) -> None:
        if (self.data is None) == (self.stream is None):
            raise ValueError("RawMessage needs exactly one of data and stream")
        if self.data is not None:
            self.size = len(self.data)

    def head(self, limit: int) -> bytes:
        """The first `limit` bytes (all of `data`, or a peek at the stream)."""
        if self.data is not None:
            return self.data[:limit]
        assert self.stream is not None
        pos = self.stream.tell()
        try:
            return self.stream.read(min(limit, self.size))
        finally:
            self.stream.seek(pos)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


@dataclass(frozen=True)
class SourceProblem:
    """A path that could not be read (or holds nothing to archive); reported, and the
    import goes on. `skipped` marks the harmless kind, such as an empty file."""

    origin: str
    reason: str
    skipped: bool = False


class Source(Protocol):
    """Anything that can be iterated for messages and problems."""

    def __iter__(self) -> Iterator[RawMessage | SourceProblem]: ...


@runtime_checkable
class Measured(Protocol):
    """A stream of messages that knows how far through its input it is, in bytes (for a
    progress bar): the bytes of all its input, and how many of them it has read so far."""

    @property
    def bytes_total(self) -> int: ...

    @property
    def bytes_done(self) -> int: ...
