"""Append-only segment files: self-describing, checksummed records (the recovery records).

A record is `MKR\\x01 | type (1) | header length (u32) | payload length (u64) | header (JSON)
| payload | CRC-32 of everything before it`. The catalog is derived from these records alone.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mailkeep.core.files import create_private, fsync_dir
from mailkeep.core.storage.manifest import FILE_HEADER as FILE_HEADER  # (their home)
from mailkeep.core.storage.manifest import segment_name as segment_name
from mailkeep.core.storage.manifest import segment_numbers as segment_numbers

MAGIC = b"MKR\x01"
PREFIX = struct.Struct("<4scIQ")
CRC = struct.Struct("<I")
MAX_HEADER_BYTES = 1 << 20
IN_MEMORY_PAYLOAD = 64 << 20  # scan() hands larger payloads over as a location only
CHUNK = 1 << 20

MESSAGE = b"M"  # a message's bytes, compressed, maybe sealed
ENTRY = b"E"  # a message filed in a folder (the message number)
TOMBSTONE = b"T"  # an entry deleted
DICTIONARY = b"D"  # a zstd dictionary that later message records name
FOLDER = b"F"  # a folder tree moved, or an empty folder removed
TYPES = (MESSAGE, ENTRY, TOMBSTONE, DICTIONARY, FOLDER)


@dataclass
class Record:
    type: bytes
    header: dict[str, Any]
    segment: int
    offset: int
    length: int
    payload_offset: int
    payload_length: int
    payload: bytes | None = None  # filled by scan() for payloads up to IN_MEMORY_PAYLOAD


@dataclass
class Damage:
    """Bytes between two valid records (or to the end of the file) that form no valid record."""

    segment: int
    start: int
    end: int
    reason: str


def _encode_header(header: dict[str, Any]) -> bytes:
    return json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()


def encode(type_: bytes, header: dict[str, Any], payload: bytes) -> bytes:
    hb = _encode_header(header)
    body = PREFIX.pack(MAGIC, type_, len(hb), len(payload)) + hb + payload
    return body + CRC.pack(zlib.crc32(body))


class SegmentWriter:
    """Appends records to the newest segment, rolling over to a new file past max_bytes."""

    def __init__(self, directory: Path, segment: int, offset: int, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment = segment
        self._fh = self._open(segment, offset)
        self.offset = self._fh.tell()
        self._dirty: list[BinaryIO] = []

    def _open(self, segment: int, offset: int) -> BinaryIO:
        path = self.directory / segment_name(segment)
        fresh = not path.exists()
        if fresh:
            create_private(path)
        fh = open(path, "r+b")  # noqa: SIM115 - owned by the writer
        if fresh:
            fh.write(FILE_HEADER)
            fh.flush()
            os.fsync(fh.fileno())
            fsync_dir(self.directory)
        else:
            fh.seek(0, os.SEEK_END)
            if fh.tell() != offset:
                # The caller decides what lies past the catalog's offset; the writer
                # only ever appends at the offset it is given.
                fh.truncate(offset)
                fh.seek(offset)
        return fh

    def _roll_if_full(self) -> None:
        if self.offset >= self.max_bytes:
            self._fh.flush()
            self._dirty.append(self._fh)
            self.segment += 1
            self._fh = self._open(self.segment, len(FILE_HEADER))
            self.offset = self._fh.tell()

    def append(self, type_: bytes, header: dict[str, Any], payload: bytes = b"") -> Record:
        self._roll_if_full()
        data = encode(type_, header, payload)
        start = self.offset
        self._fh.write(data)
        self.offset += len(data)
        hlen = len(data) - len(payload) - PREFIX.size - CRC.size
        return Record(type_, header, self.segment, start, len(data),
                      start + PREFIX.size + hlen, len(payload))

    def append_stream(
        self, type_: bytes, header: dict[str, Any], chunks: Iterator[bytes]
    ) -> Record:
        """Append a record whose payload arrives in chunks; its length is patched in after."""
        self._roll_if_full()
        hb = _encode_header(header)
        start = self.offset
        fh = self._fh
        fh.write(PREFIX.pack(MAGIC, type_, len(hb), 0) + hb)
        payload_len = 0
        for chunk in chunks:
            fh.write(chunk)
            payload_len += len(chunk)
        prefix = PREFIX.pack(MAGIC, type_, len(hb), payload_len)
        fh.seek(start)
        fh.write(prefix)
        fh.flush()
        # The CRC covers the whole record, so read it back once (large records only).
        crc = zlib.crc32(prefix + hb)
        fh.seek(start + PREFIX.size + len(hb))
        left = payload_len
        while left:
            chunk = fh.read(min(CHUNK, left))
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
        fh.seek(0, os.SEEK_END)
        fh.write(CRC.pack(crc))
        end = fh.tell()
        self.offset = end
        return Record(type_, header, self.segment, start, end - start,
                      start + PREFIX.size + len(hb), payload_len)

    def copy(self, rec: Record, source: BinaryIO) -> Record:
        """Append a record exactly as it is in another segment (records do not depend on
        where they lie: the checksum covers the record alone)."""
        self._roll_if_full()
        start = self.offset
        source.seek(rec.offset)
        left = rec.length
        while left:
            chunk = source.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"segment {rec.segment} ended inside a record")
            self._fh.write(chunk)
            left -= len(chunk)
        self.offset += rec.length
        return Record(rec.type, rec.header, self.segment, start, rec.length,
                      start + rec.payload_offset - rec.offset, rec.payload_length)

    def rewind(self, segment: int, offset: int) -> None:
        """Drop everything appended after (segment, offset): an abandoned batch."""
        for fh in self._dirty:
            fh.close()
        self._dirty.clear()
        self._fh.close()
        for n in segment_numbers(self.directory):
            if n > segment:
                (self.directory / segment_name(n)).unlink()
        self.segment = segment
        self._fh = self._open(segment, offset)
        self.offset = self._fh.tell()

    def sync(self) -> None:
        """Make everything appended so far durable."""
        for fh in self._dirty:
            os.fsync(fh.fileno())
            fh.close()
        self._dirty.clear()
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Sync and close; again: nothing (a clean-up after a close must not mask why)."""
        if self._fh.closed:
            return
        self.sync()
        self._fh.close()


def _parse_prefix(raw: bytes) -> tuple[bytes, int, int] | None:
    if len(raw) < PREFIX.size:
        return None
    magic, type_, hlen, plen = PREFIX.unpack(raw)
    if magic != MAGIC or type_ not in TYPES or hlen > MAX_HEADER_BYTES:
        return None
    return type_, hlen, plen


def read_at(fh: BinaryIO, segment: int, offset: int, size: int, with_payload: bool = True
            ) -> Record | str:
    """The record at `offset`, checked; or a short reason why there is no valid record."""
    fh.seek(offset)
    prefix = fh.read(PREFIX.size)
    parsed = _parse_prefix(prefix)
    if parsed is None:
        return "no record header" if len(prefix) == PREFIX.size else "end of file"
    type_, hlen, plen = parsed
    total = PREFIX.size + hlen + plen + CRC.size
    if offset + total > size:
        return "record runs past the end of the file"
    hb = fh.read(hlen)
    crc = zlib.crc32(prefix + hb)
    payload: bytes | None = None
    if plen <= IN_MEMORY_PAYLOAD and with_payload:
        payload = fh.read(plen)
        crc = zlib.crc32(payload, crc)
    else:
        left = plen
        while left:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                return "record runs past the end of the file"
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
    stored = fh.read(CRC.size)
    if len(stored) != CRC.size or CRC.unpack(stored)[0] != crc:
        return "checksum mismatch"
    try:
        header = json.loads(hb)
    except ValueError:
        return "unreadable record header"
    if not isinstance(header, dict):
        return "unreadable record header"
    return Record(type_, header, segment, offset, total, offset + PREFIX.size + hlen, plen,
                  payload)


def _find_magic(fh: BinaryIO, start: int, size: int) -> int:
    """The offset of the next MAGIC at or after start, or size."""
    pos = start
    fh.seek(pos)
    carry = b""
    while pos < size:
        chunk = fh.read(CHUNK)
        if not chunk:
            break
        buf = carry + chunk
        i = buf.find(MAGIC)
        if i >= 0:
            return pos - len(carry) + i
        carry = buf[-(len(MAGIC) - 1):]
        pos += len(chunk)
    return size


def scan(path: Path, segment: int, start: int | None = None,
         with_payload: bool = True) -> Iterator[Record | Damage]:
    """Every valid record of a segment in order, and every damaged stretch between them."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        pos = len(FILE_HEADER) if start is None else start
        if start is None and fh.read(len(FILE_HEADER)) != FILE_HEADER:
            yield Damage(segment, 0, len(FILE_HEADER), "segment file header damaged")
        while pos < size:
            got = read_at(fh, segment, pos, size, with_payload)
            if isinstance(got, Record):
                yield got
                pos += got.length
                continue
            nxt = pos + 1
            while True:
                nxt = _find_magic(fh, nxt, size)
                if nxt >= size or isinstance(read_at(fh, segment, nxt, size, False), Record):
                    break
                nxt += 1
            yield Damage(segment, pos, nxt, got)
            pos = nxt
