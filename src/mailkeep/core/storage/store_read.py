"""Reading a store: records at their place in the segments, each message's exact bytes checked
against its content id (streamed when large), and what the catalog says about a message."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from typing import Any

from mailkeep.core.errors import CorruptData, NotFound
from mailkeep.core.mime.parse import HEADERS_ONLY, extract, header_section
from mailkeep.core.storage import segment_objects
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage import tree as mtree
from mailkeep.core.storage.packing import PARTIAL_INDEX_BYTES, blob_info, message_aad
from mailkeep.core.storage.store_base import StoreBase, _region


class Reading(StoreBase):
    def _fd(self, segment: int) -> int:
        fd = self._fds.get(segment)
        if fd is None:
            try:
                fd = os.open(self.segment_path(segment), os.O_RDONLY)  # (downloaded if need be)
            except FileNotFoundError:
                raise CorruptData(f"segment {segment} of store {self.name!r} is missing"
                                  ) from None
            self._fds[segment] = fd
        return fd

    def _has_locally(self, segment: int, end: int) -> bool:
        """Whether this server's file of the segment (the writer's, or a copy in the cache)
        holds its bytes up to `end`."""
        for folder in ("segments", segment_objects.CACHE_DIR):
            try:
                if (self.path / folder / seg.segment_name(segment)).stat().st_size >= end:
                    return True
            except FileNotFoundError:
                pass
        return False

    def forget_fd(self, segment: int) -> None:
        fd = self._fds.pop(segment, None)
        if fd is not None:
            os.close(fd)

    def record_at(self, segment: int, offset: int, length: int) -> seg.Record:
        if self.objects is not None:
            fd = self._fds.get(segment)
            if fd is not None and os.fstat(fd).st_size < offset + length:
                self.forget_fd(segment)  # opened while the segment still grew elsewhere
        if self.objects is not None and length <= seg.IN_MEMORY_PAYLOAD \
                and segment not in self._fds and not self._has_locally(segment, offset + length):
            data = segment_objects.read_range(self.objects, self._pg_catalog(), segment, offset,
                                              length)  # one ranged GET
            with io.BytesIO(data) as fh:
                got = seg.read_at(fh, segment, 0, len(data))
            if isinstance(got, str):
                raise CorruptData(f"segment {segment} offset {offset}: {got}")
            got.offset, got.payload_offset = offset, got.payload_offset + offset
            return got
        fd = self._fd(segment)
        size = os.fstat(fd).st_size
        if length <= seg.IN_MEMORY_PAYLOAD:
            data = os.pread(fd, length, offset)
            with io.BytesIO(data) as fh:
                got = seg.read_at(fh, segment, 0, len(data))
            if isinstance(got, seg.Record):
                got.offset, got.payload_offset = offset, got.payload_offset + offset
        else:
            with open(self.segment_path(segment), "rb") as fh:
                got = seg.read_at(fh, segment, offset, size, with_payload=False)
        if isinstance(got, str):
            raise CorruptData(f"segment {segment} offset {offset}: {got}")
        return got

    def checked_head(self, rec: seg.Record, cid: bytes, limit: int) -> tuple[bytes, int]:
        """The first `limit` bytes of a message record and its size, after checking the
        whole message against its content id (streamed: a large one never sits in memory)."""
        if rec.payload is not None:
            raw = self._unpack_record(rec, cid)
            return raw[:limit], len(raw)
        parts: list[bytes] = []
        kept = size = 0
        for chunk in self._stream_record(rec, cid):
            size += len(chunk)
            if kept < limit:
                parts.append(chunk[: limit - kept])
                kept += len(parts[-1])
        return b"".join(parts), size

    def _unpack_record(self, rec: seg.Record, cid: bytes) -> bytes:
        if rec.payload is None:
            return b"".join(self._stream_record(rec, cid))
        try:
            raw = self.packer.unpack(rec.header, rec.payload, cid)
        except Exception as exc:  # zstd, GCM tag, missing dictionary: all mean damage
            raise CorruptData(f"payload cannot be decoded ({type(exc).__name__})") from None
        if self.packer.content_id(raw) != cid:
            raise CorruptData("content hash mismatch")
        return raw

    def _stream_record(self, rec: seg.Record, cid: bytes) -> Iterator[bytes]:
        path = self.segment_path(rec.segment)
        with open(path, "rb") as fh:
            h = rec.header
            if h.get("sealed"):
                if self.packer.sealer is None:
                    raise CorruptData("sealed record in a store without a key")
                chunks = self.packer.sealer.open_region(fh, rec.payload_offset,
                                                        rec.payload_length, message_aad(cid))
            else:
                chunks = _region(fh, rec.payload_offset, rec.payload_length)
            dict_id = h.get("dict")
            hasher: Any = self.packer.content_hasher()
            try:
                for out in self.packer.codec.decompress_stream(chunks, dict_id):
                    hasher.update(out)
                    yield out
            except Exception as exc:
                raise CorruptData(f"payload cannot be decoded ({type(exc).__name__})") from None
            if hasher.digest() != cid:
                raise CorruptData("content hash mismatch")

    def read_chunks(self, number: int) -> Iterator[bytes]:
        """The exact bytes of a message, in chunks, checked against its content id."""
        loc = self.catalog.entry_location(number)
        if loc is None:
            raise NotFound(f"message {number} does not exist in store {self.name!r}")
        segment, offset, length, _raw_size, cid = loc
        try:
            rec = self.record_at(segment, offset, length)
            if rec.header.get("id") != cid.hex():
                raise CorruptData("the catalog points at another message's record")
            if rec.payload is not None:
                yield self._unpack_record(rec, cid)
            else:
                yield from self._stream_record(rec, cid)
        except CorruptData as exc:
            raise CorruptData(f"message {number} of store {self.name!r} is damaged "
                              f"({exc.message}); see `mailkeep verify`") from None

    def read(self, number: int) -> bytes:
        return b"".join(self.read_chunks(number))

    def lookup(self, content_id: bytes, owner: str, folder: str) -> tuple[int | None, bool]:
        """(blob id or None, whether the message is already filed in that folder)."""
        blob_id = self.catalog.find_blob(content_id)
        if blob_id is None:
            return None, False
        fid = self.catalog.find_folder(owner, folder)
        return blob_id, fid is not None and self.catalog.has_entry(blob_id, fid)

    # Each entry has its own full-text row; filing a message again needs its index text.
    def _remember_index(self, blob_id: int, date: int, index: tuple[str, ...]) -> None:
        self._index_cache[blob_id] = (date, index)
        while len(self._index_cache) > 64:
            self._index_cache.pop(next(iter(self._index_cache)))

    def blob_head(self, blob_id: int) -> bytes:
        """The first PARTIAL_INDEX_BYTES of a stored message (what its index rows were made
        of); b"" when it cannot be read (verify names it)."""
        cid, segment, offset, length, _date = self.catalog.blob_location(blob_id)
        head = b""
        try:
            rec = self.record_at(segment, offset, length)
            if rec.payload is not None:
                head = self._unpack_record(rec, cid)[:PARTIAL_INDEX_BYTES]
            else:
                for chunk in self._stream_record(rec, cid):
                    head += chunk
                    if len(head) >= PARTIAL_INDEX_BYTES:
                        break
        except CorruptData:
            pass  # the message is damaged: verify names it; its entry still gets a row
        return head[:PARTIAL_INDEX_BYTES]

    def _blob_index(self, blob_id: int) -> tuple[int, tuple[str, str, str, str, str]]:
        cached = self._index_cache.get(blob_id)
        if cached is not None:
            return cached  # type: ignore[return-value]
        date = self.catalog.blob_location(blob_id)[4]
        head = self.blob_head(blob_id)
        if self.catalog.blob_warnings(blob_id).startswith(HEADERS_ONLY):
            fields = extract(header_section(head))  # its rows hold its headers only
            fields.body = fields.attachments = ""
        else:
            fields = extract(head)
            fields.documents = self.catalog.blob_documents(blob_id)  # as its rows were made
        info = blob_info(fields, date)
        return int(date), info.index

    # -- what records commit to in the store's tree (core/storage/tree.py) -------------------
    def raw_sha256(self, rec: seg.Record, cid: bytes) -> bytes | None:
        """SHA-256 of a message record's raw bytes (None: undecodable, which verify names).
        In a store that is not encrypted that is its content id: not read again."""
        if self._sealer is None:
            return cid
        h = hashlib.sha256()
        try:
            if rec.payload is not None:
                h.update(self.packer.unpack(rec.header, rec.payload, cid))
            else:
                for chunk in self._stream_record(rec, cid):
                    h.update(chunk)
        except Exception:  # noqa: BLE001  (zstd, GCM, a missing dictionary: damage)
            return None
        return h.digest()

    def committed(self, rec: seg.Record, m_leaves: dict[str, int | None]) -> bytes | None:
        """What a record's tree leaf commits to (its payload read for M in an encrypted store
        and for D); `m_leaves`: content id (hex) -> the leaf of its message record."""
        h = rec.header
        if rec.type == seg.MESSAGE:
            return self.raw_sha256(rec, bytes.fromhex(h["id"]))
        if rec.type == seg.ENTRY:
            tl = h.get("tl")
            m = tl["m"] if isinstance(tl, dict) and "m" in tl else m_leaves.get(h["id"])
            return mtree.canonical(mtree.entry_facts(h, m))
        if rec.type == seg.FOLDER and h.get("op") == "kept":
            return mtree.canonical(h.get("was"))
        if rec.type in (seg.TOMBSTONE, seg.FOLDER):
            return mtree.canonical({k: v for k, v in h.items() if k != "tl"})
        if rec.type == seg.DICTIONARY:
            if rec.payload is None:
                return None
            return hashlib.sha256(rec.payload).digest()
        return None
