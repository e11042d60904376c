"""Writing a store: batches (append, fsync, then the catalog commit), filing messages and
entries, learning compression dictionaries, and changing what is archived (deleting a
message, moving folders). A message is reported filed only once its batch is committed."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from mailkeep.core.errors import CorruptData, NotFound
from mailkeep.core.mime.parse import HEADERS_ONLY, IndexFields, extract
from mailkeep.core.storage import codec, segment_objects
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage import tree as mtree
from mailkeep.core.storage.catalog import attachment_column, index_columns
from mailkeep.core.storage.packing import (
    PARTIAL_INDEX_BYTES,
    Prepared,
    blob_info,
    index_fields,
    message_aad,
)
from mailkeep.core.storage.store_base import Added, _chunks, dictionary_aad
from mailkeep.core.storage.store_read import Reading

DOCUMENTS_MARK = "documents_read_to"  # catalog meta: blobs up to this id had attachments read


def message_header(content_id: bytes, size: int, dict_id: int | None, sealed: bool, date: int,
                   leaf: dict[str, Any]) -> dict[str, Any]:
    """An M record's header. What a reader takes when a key is left out is left out: no
    dictionary (dict), not sealed (sealed), zstd (codec: the only one there is); records
    written before carry all three, and read alike."""
    header: dict[str, Any] = {"id": content_id.hex(), "size": size}
    if dict_id is not None:
        header["dict"] = dict_id
    if sealed:
        header["sealed"] = True
    header["date"] = date
    header["tl"] = leaf
    return header


class Writing(Reading):
    def begin(self) -> None:
        self.require_writable()
        if not self._in_batch:
            if self.objects is not None and not self._holding:
                self.resume_writing()
            self.catalog.begin()
            self._in_batch = True

    # -- several servers writing one store (in object storage), a batch at a time ---------
    def pause_writing(self) -> None:
        """Let go of the store's write lock between batches: another server may write."""
        if self._holding:
            self._pg_catalog().unlock()
            self._holding = False

    def resume_writing(self) -> None:
        """The write lock again (waiting for another server's batch to end), then what other
        servers committed meanwhile: their parts appended to this directory's segments, and
        what this store keeps in memory of the catalog and the tree read again."""
        from mailkeep.core.errors import StoreUnavailable
        from mailkeep.core.storage.store import LOCK_WAIT_MS
        catalog = self._pg_catalog()
        if not catalog.lock(LOCK_WAIT_MS):
            raise StoreUnavailable(f"store {self.name!r} is busy: another server has written "
                                   f"it for {LOCK_WAIT_MS // 1000} s")
        self._holding = True
        try:
            applied = catalog.applied()
            if applied != self._uploaded:
                self._catch_up(applied)
        except BaseException:
            self.pause_writing()
            raise

    def _catch_up(self, applied: tuple[int, int]) -> None:
        assert self.objects is not None and self._writer is not None
        catalog = self._pg_catalog()
        max_bytes = self._writer.max_bytes
        self._writer.close()
        seg_dir = self.path / "segments"
        segment, offset = self._uploaded
        while segment <= applied[0]:
            path = seg_dir / seg.segment_name(segment)
            with open(path, "ab") as fh:
                fh.truncate(offset)
                for name, start, end in catalog.parts(segment):
                    if end <= offset:
                        continue
                    if start != fh.tell():
                        raise CorruptData(f"the parts of segment {segment} leave a gap")
                    fh.write(self.objects.get(name))
                fh.flush()
                os.fsync(fh.fileno())
            segment, offset = segment + 1, 0
        for number in list(self._fds):
            self.forget_fd(number)
        self._writer = seg.SegmentWriter(seg_dir, applied[0], max(applied[1],
                                         len(seg.FILE_HEADER)), max_bytes)
        self._uploaded = applied
        self._pg_catalog().forget_cached()
        self._forget_tree()
        self._index_cache.clear()
        self._refresh_packer()
        if applied[0] > 1:
            segment_objects.retire(self.path, applied[0])

    def _forget_tree(self) -> None:
        """A tree whose leaves are the catalog's (CatalogTree): read again, from the
        frontier the catalog keeps (not every leaf)."""
        forget = getattr(self.tree, "forget", None)
        if forget is not None:
            forget()
            self.tree.restore(self.catalog.get_meta("tree_frontier"))



    def commit(self) -> None:
        """Make the batch durable: segment fsync first, then the catalog commit."""
        if not self._in_batch:
            return
        assert self._writer is not None
        self._writer.sync()
        end = (self._writer.segment, self._writer.offset)
        if self.objects is not None:  # the objects before the catalog (segment_objects.py)
            segment_objects.upload(self.objects, self._pg_catalog(), self.id,
                                   self.path / "segments", self._uploaded, end)
        self.tree.flush()  # after the records are durable: a lost tail is derived again
        self.catalog.set_applied(*end)
        self.keep_tree_state()
        self.catalog.commit()
        self._uploaded = end
        self._in_batch = False
        if self.objects is not None:
            self.pause_writing()
            if end[0] > 1:
                segment_objects.retire(self.path, end[0])

    def keep_tree_state(self) -> None:
        """In the catalog's transaction: how many leaves the tree has (a crash that takes
        some is noticed on open) and its frontier (its root without reading every leaf)."""
        self.catalog.set_meta("tree_leaves", self.tree.size)
        frontier = self.tree.frontier()
        if frontier is not None:
            self.catalog.set_meta("tree_frontier", frontier)

    def abort(self) -> None:
        if not self._in_batch:
            return
        self.catalog.rollback()
        self.tree.drop_pending()
        self._forget_tree()  # (CatalogTree: its leaves went with the rollback)
        self._index_cache.clear()
        if self._writer is not None:
            n, off = self.catalog.applied()
            self._writer.rewind(n, max(off, len(seg.FILE_HEADER)))
            for number in list(self._fds):  # rewind may have deleted segment files
                self.forget_fd(number)
            self._refresh_packer()
        self.catalog.forget_cached_folders()
        self._in_batch = False
        if self.objects is not None:
            self.pause_writing()

    def add_dictionary(self, data: bytes) -> None:
        self.begin()
        assert self._writer is not None
        dict_id = max(self.catalog.dictionaries(), default=0) + 1
        self._write_dictionary(dict_id, data)

    def _write_dictionary(self, dict_id: int, data: bytes) -> None:
        assert self._writer is not None
        payload = data
        if self._sealer is not None:  # learnt from the mail: as secret as the mail
            payload = self._sealer.seal(data, dictionary_aad(dict_id))
        rec = self._writer.append(seg.DICTIONARY, {
            "dict": dict_id, "sealed": self._sealer is not None,
            "tl": self.tree.add(seg.DICTIONARY, hashlib.sha256(payload).digest())}, payload)
        self.catalog.add_dictionary(dict_id, payload, rec.segment, rec.offset)
        self._refresh_packer()

    # Mail drifts (new lists, new clients, new years), so the store keeps learning: a first
    # dictionary once it holds FIRST_DICT_AFTER messages, a fresh one every DICT_EVERY after.
    def dictionary_due(self) -> bool:
        newest = self.catalog.newest_blob_id()
        last = int(self.catalog.get_meta("blobs_at_dictionary", "0") or 0)
        first = not self.catalog.dictionaries()
        return newest - last >= (codec.FIRST_DICT_AFTER if first else codec.DICT_EVERY)

    def dictionary_samples(self) -> tuple[list[bytes], int]:
        """Heads of the newest messages to train a dictionary on, and the newest blob id."""
        rows = self.catalog.sample_blobs(seg.IN_MEMORY_PAYLOAD, codec.SAMPLE_MESSAGES)
        samples: list[bytes] = []
        budget = codec.SAMPLE_BYTES
        for _id, cid, segment, offset, length in rows:
            try:
                head = self._unpack_record(self.record_at(segment, offset, length), cid)
            except CorruptData:
                continue
            samples.append(head[: codec.SAMPLE_CAP])
            budget -= len(samples[-1])
            if budget <= 0:
                break
        return samples, (rows[0][0] if rows else 0)

    def install_dictionary(self, trained: bytes | None, newest: int) -> None:
        """Within a batch: start compressing with a trained dictionary (None: too few
        samples to help; wait for the next round)."""
        self.begin()
        if trained is not None:
            self.add_dictionary(trained)
        self.catalog.set_meta("blobs_at_dictionary", newest)

    def add_message(self, prepared: Prepared, owner: str, folder: str,
                    flags: frozenset[str] = frozenset(), internal_date: float | None = None,
                    envelope: dict[str, Any] | None = None,
                    archived_at: int | None = None) -> Added:
        """File a prepared message (within a batch); a message already in the folder is a
        duplicate and changes nothing."""
        self.begin()
        assert self._writer is not None
        blob_id, filed = self.lookup(prepared.content_id, owner, folder)
        if filed:
            return Added(None, False)
        new_blob = blob_id is None
        m_leaf = None
        if blob_id is None:
            raw_sha256 = prepared.raw_sha256 or self._prepared_sha256(prepared)
            leaf = self.tree.add(seg.MESSAGE, raw_sha256)
            m_leaf = leaf["i"]
            rec = self._writer.append(seg.MESSAGE, message_header(
                prepared.content_id, prepared.raw_size, prepared.dict_id, prepared.sealed,
                prepared.info.date, leaf), prepared.payload)
            blob_id = self.catalog.add_blob(prepared.content_id, rec.segment, rec.offset,
                                            rec.length, prepared.raw_size, prepared.info)
            self._remember_index(blob_id, prepared.info.date, prepared.info.index)
        number = self._add_entry(prepared.content_id, blob_id, owner, folder, flags,
                                 internal_date, envelope, m_leaf, archived_at)
        return Added(number, new_blob)

    def _prepared_sha256(self, prepared: Prepared) -> bytes:
        """SHA-256 of a prepared message's raw bytes, when its preparer did not say."""
        if self._sealer is None:
            return prepared.content_id
        raw = self.packer.unpack({"sealed": True, "dict": prepared.dict_id,
                                  "size": prepared.raw_size}, prepared.payload,
                                 prepared.content_id)
        return hashlib.sha256(raw).digest()

    def _leaf_at(self, segment: int, offset: int) -> int | None:
        """The tree leaf of the record at (segment, offset), from its header alone (None:
        written before the store had a tree, or unreadable: verify names that)."""
        fd = self._fd(segment)
        prefix = os.pread(fd, seg.PREFIX.size, offset)
        if len(prefix) < seg.PREFIX.size:
            return None
        _magic, _type, header_len, _payload_len = seg.PREFIX.unpack(prefix)
        if header_len > seg.MAX_HEADER_BYTES:
            return None
        try:
            header = json.loads(os.pread(fd, header_len, offset + seg.PREFIX.size))
            return int(header["tl"]["i"])
        except (ValueError, KeyError, TypeError):
            return None

    def message_leaf(self, blob_id: int) -> int | None:
        """The tree leaf of a stored message's record."""
        _cid, segment, offset, _length, _date = self.catalog.blob_location(blob_id)
        return self._leaf_at(segment, offset)

    def add_large_message(self, stream: BinaryIO, size: int, owner: str, folder: str,
                          flags: frozenset[str] = frozenset(),
                          internal_date: float | None = None,
                          fields: IndexFields | None = None,
                          archived_at: int | None = None) -> Added:
        """File a message too large for memory: hashed, compressed and sealed as a stream;
        `fields`: its text extracted already (else it is extracted here)."""
        self.begin()
        assert self._writer is not None
        start = stream.tell()
        hasher: Any = self.packer.content_hasher()
        plain = hashlib.sha256() if self._sealer is not None else None  # for the tree
        for chunk in _chunks(stream, size):
            hasher.update(chunk)
            if plain is not None:
                plain.update(chunk)
        cid: bytes = hasher.digest()
        blob_id, filed = self.lookup(cid, owner, folder)
        if filed:
            return Added(None, False)
        new_blob = blob_id is None
        warnings: list[str] = []
        if blob_id is None:
            if fields is None:
                stream.seek(start)
                fields = index_fields(stream.read(min(size, PARTIAL_INDEX_BYTES)), size)
            stream.seek(start)
            packer = self.packer
            second: Any = packer.content_hasher()  # the bytes stored must be the bytes hashed

            def read_again() -> Iterator[bytes]:
                for chunk in _chunks(stream, size):
                    second.update(chunk)
                    yield chunk

            payload = packer.codec.compress_stream(read_again())
            if packer.sealer is not None:
                payload = packer.sealer.seal_stream(payload, message_aad(cid))
            info = blob_info(fields, internal_date or time.time())
            warnings = fields.warnings
            leaf = self.tree.add(seg.MESSAGE, plain.digest() if plain is not None else cid)
            m_leaf = leaf["i"]
            rec = self._writer.append_stream(seg.MESSAGE, message_header(
                cid, size, packer.codec.dict_id, packer.sealer is not None, info.date, leaf),
                payload)
            if second.digest() != cid:
                raise OSError("the file changed while it was being read")
            blob_id = self.catalog.add_blob(cid, rec.segment, rec.offset, rec.length, size, info)
            self._remember_index(blob_id, info.date, info.index)
        else:
            m_leaf = None
        number = self._add_entry(cid, blob_id, owner, folder, flags, internal_date,
                                 m_leaf=m_leaf, archived_at=archived_at)
        return Added(number, new_blob, warnings)

    def add_entry(self, cid: bytes, owner: str, folder: str, flags: frozenset[str] = frozenset(),
                  internal_date: float | None = None,
                  envelope: dict[str, Any] | None = None,
                  archived_at: int | None = None) -> int | None:
        """File a message whose bytes the store already holds; None if already in the folder."""
        self.begin()
        blob_id, filed = self.lookup(cid, owner, folder)
        if blob_id is None:
            raise NotFound("the store does not hold that message")
        if filed:
            return None
        return self._add_entry(cid, blob_id, owner, folder, flags, internal_date, envelope,
                               archived_at=archived_at)

    def _add_entry(self, cid: bytes, blob_id: int, owner: str, folder: str,
                   flags: frozenset[str], internal_date: float | None,
                   envelope: dict[str, Any] | None = None, m_leaf: int | None = None,
                   archived_at: int | None = None) -> int:
        """`archived_at`: when it was first archived (a merge keeps it); default now."""
        assert self._writer is not None
        number = self.catalog.next_number()
        now = int(time.time()) if archived_at is None else int(archived_at)
        idate = int(internal_date) if internal_date is not None else None
        flag_list = sorted(flags)
        header: dict[str, Any] = {
            "n": number, "id": cid.hex(), "owner": owner, "folder": folder,
            "flags": flag_list, "idate": idate, "at": now}
        if envelope is not None:
            header["env"] = envelope
        if m_leaf is None:
            m_leaf = self.message_leaf(blob_id)
        # the leaf of its message record (in the leaf's data too) lets a filing be checked
        # even when that record is lost
        header["tl"] = {**self.tree.add(seg.ENTRY, mtree.canonical(mtree.entry_facts(
            header, m_leaf))), "m": m_leaf}
        rec = self._writer.append(seg.ENTRY, header)
        fid = self.catalog.folder_id(owner, folder)
        date, index = self._blob_index(blob_id)
        self.catalog.add_entry(number, blob_id, fid, flag_list, idate, now,
                               rec.segment, rec.offset, date, index)
        if envelope is not None:
            self.catalog.add_envelope(number, envelope)
        return number

    def _drop_entry(self, number: int) -> None:
        blob_id = self.catalog.entry_blob(number)
        if blob_id is not None:
            self.catalog.delete_entry(number, self._blob_index(blob_id)[1])

    def bury_lost_entries(self) -> None:
        """Tombstone entries whose message bytes are lost, so the segments agree with the
        catalog again (recover does this after naming them)."""
        if not self.lost_entries:
            return
        self.begin()
        assert self._writer is not None
        for number in self.lost_entries:
            self._tombstone(number, "message record lost; recovered",
                            self.lost_leaves.get(number))
        self.lost_entries = []
        self.lost_leaves = {}
        self.commit()

    # -- changing what is archived ---------------------------------------------------------
    def delete_message(self, number: int, reason: str) -> None:
        """Delete one entry (message number) for good: a tombstone in the segments, and the
        entry and its index row out of the catalog. The message's bytes stay in the segments
        until CompactStore drops what no entry refers to any more."""
        self.begin()
        assert self._writer is not None
        try:
            if self.catalog.entry(number) is None:
                raise NotFound(f"message {number} does not exist in store {self.name!r}")
            self._tombstone(number, reason)
            self._drop_entry(number)
            self.commit()
        except BaseException:
            self.abort()
            raise

    def replace_documents(self, found: list[tuple[int, IndexFields]], mark: int) -> int:
        """New index rows for stored messages whose attachments were read again (`found`:
        blob id, its fields, with the text inside its attachments), and the catalog's mark of
        how far that went, in one transaction. Returns the messages whose rows changed."""
        self.require_writable()
        self.begin()
        changed = 0
        try:
            for blob_id, fields in found:
                if not self.catalog.blob_exists(blob_id):
                    continue  # deleted (and compacted away) since it was read
                date = self.catalog.blob_location(blob_id)[4]
                if self.catalog.blob_warnings(blob_id).startswith(HEADERS_ONLY):
                    _date, old = self._blob_index(blob_id)
                else:  # the same fields but the attachments' text: no need to parse again
                    old = index_columns(fields.subject, fields.sender, fields.recipients,
                                        fields.body, attachment_column(
                                            fields.attachments,
                                            self.catalog.blob_documents(blob_id)))
                info = blob_info(fields, date)
                if info.index != old or info.documents != self.catalog.blob_documents(blob_id):
                    self.catalog.replace_blob_index(blob_id, old, info.index, info.documents,
                                                    info.warnings)
                    changed += 1
                self._index_cache.pop(blob_id, None)
            self.catalog.set_meta(DOCUMENTS_MARK, mark)
            self.commit()
        except BaseException:
            self.abort()
            raise
        return changed

    def copy_documents(self, found: list[tuple[int, str, str]], mark: int | None) -> int:
        """The text inside attachments that another catalog of the same messages read
        (`found`: blob id here, that text, that catalog's warnings of the message: a store
        moved between engines, core/migrate.py), given to these index rows in one transaction;
        with `mark`, the catalog's mark of how far the attachments were read. Returns the
        messages whose rows changed."""
        self.require_writable()
        self.begin()
        changed = 0
        try:
            for blob_id, documents, warnings in found:
                if self.catalog.blob_warnings(blob_id).startswith(HEADERS_ONLY):
                    continue  # its rows hold its headers only, there as here
                date, old = self._blob_index(blob_id)
                fields = extract(self.blob_head(blob_id))
                fields.documents = documents
                info = blob_info(fields, date)
                if info.index != old or documents != self.catalog.blob_documents(blob_id):
                    self.catalog.replace_blob_index(blob_id, old, info.index, documents,
                                                    warnings)
                    changed += 1
                self._index_cache.pop(blob_id, None)
            if mark is not None:
                self.catalog.set_meta(DOCUMENTS_MARK, mark)
            self.commit()
        except BaseException:
            self.abort()
            raise
        return changed

    def delete_messages(self, items: list[tuple[int, str]]) -> list[int]:
        """delete_message for many (number, reason) in one batch; the numbers deleted (those
        already gone are left out)."""
        self.begin()
        done: list[int] = []
        try:
            for number, reason in items:
                if self.catalog.entry_blob(number) is None:
                    continue
                self._tombstone(number, reason)
                self._drop_entry(number)
                done.append(number)
            self.commit()
        except BaseException:
            self.abort()
            raise
        return done

    def _tombstone(self, number: int, reason: str,
                   leaves: tuple[int | None, int | None] | None = None) -> None:
        """A tombstone names the tree leaves of the entry it deletes and of its message
        (`e`, `m`): the leaves whose records a compaction may then drop (or recover set
        aside: `leaves`, of an entry whose message record was lost)."""
        assert self._writer is not None
        e, m = leaves if leaves is not None else (None, None)
        where = self.catalog.entry_record(number)
        if where is not None:
            e = self._leaf_at(*where)
            blob_id = self.catalog.entry_blob(number)
            m = self.message_leaf(blob_id) if blob_id is not None else None
        header: dict[str, Any] = {"n": number, "at": int(time.time()), "reason": reason,
                                  "e": e, "m": m}
        header["tl"] = self.tree.add(seg.TOMBSTONE, mtree.canonical(header))
        self._writer.append(seg.TOMBSTONE, header)

    def declare_lost(self, ranges: list[list[int]], reason: str) -> None:
        """Declare tree leaves whose records are lost for good (recover, after damage): an F
        record {"op": "lost", "leaves": [[first, last], ...]} with a leaf of its own."""
        for start in range(0, len(ranges), 20_000):  # a header stays well below its limit
            self.folder_change({"op": "lost", "leaves": ranges[start:start + 20_000],
                                "reason": reason})

    def folder_change(self, header: dict[str, Any]) -> None:
        """Record and apply a folder change: {"op": "move", owner, folder, to_owner,
        to_folder} moves a subtree, {"op": "drop", owner, folder} removes an empty folder."""
        self.begin()
        assert self._writer is not None
        try:
            record = {**header, "at": int(time.time())}
            record["tl"] = self.tree.add(seg.FOLDER, mtree.canonical(record))
            self._writer.append(seg.FOLDER, record)
            self._apply_folder(header)
            self.commit()
        except BaseException:
            self.abort()
            raise

    def _apply_folder(self, h: dict[str, Any]) -> None:
        if h.get("op") == "move":
            self.catalog.move_folder(h["owner"], h["folder"], h["to_owner"], h["to_folder"])
        elif h.get("op") == "drop":
            fid = self.catalog.find_folder(h["owner"], h["folder"])
            if fid is not None:
                self.catalog.drop_folder_id(fid)
