"""An archive store: a self-contained directory of segments, a manifest and a catalog.

Commit order: append records, fsync the segment, then commit the catalog. On open, the writer
re-applies valid records past the catalog's offset and cuts a torn tail, so the catalog never
points at bytes that are not durable and an acknowledged message is never lost.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mailkeep.core.crypto import Sealer, key_id, new_store_key, unwrap_key, wrap_key
from mailkeep.core.errors import Conflict, CorruptData, KeyMissing, NotFound, StoreUnavailable
from mailkeep.core.files import fsync_dir, write_json_atomic
from mailkeep.core.mime.parse import extract
from mailkeep.core.storage import codec
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage.catalog import Catalog
from mailkeep.core.storage.packing import (
    PARTIAL_INDEX_BYTES,
    Packer,
    Prepared,
    blob_info,
    message_aad,
)

FORMAT = 1
SEGMENT_BYTES = 256 << 20
MANIFEST = "store.json"
COMPACT_DIR = "segments.compact"  # new segments being built by compaction
OLD_SEGMENTS_DIR = "segments.precompact"  # the segments compaction replaced, until it ends
COMPACTION_MARK = "compaction"  # in a finished compaction's segments: its id


@dataclass
class Filed:
    """What happened to one message handed to the store."""

    number: int | None  # the new message number, None when it was a duplicate
    new_blob: bool
    warnings: list[str] = field(default_factory=list)  # what indexing it ran into




def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{path} is not a mailkeep store (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise CorruptData(f"{path / MANIFEST} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CorruptData(f"{path / MANIFEST} is not a format-{FORMAT} store manifest")
    return data


class Store:
    """One store, opened for reading, or for writing when this process holds its lock."""

    def __init__(self, path: Path, manifest: dict[str, Any], store_key: bytes | None,
                 write: bool) -> None:
        self.path = path
        self.manifest = manifest
        self._store_key = store_key
        self._lock_fd: int | None = None
        if write:
            self._lock_fd = self._try_lock()
        self.writable = self._lock_fd is not None
        self._sealer = Sealer(store_key) if store_key is not None else None
        self.recovered_on_open: list[str] = []
        if self.writable:
            self._finish_compaction()
        self.catalog = self._open_catalog()
        self.packer = Packer(self.dictionaries(), store_key)
        self._writer: seg.SegmentWriter | None = None
        self._in_batch = False
        self._fds: dict[int, int] = {}
        self._index_cache: dict[int, tuple[int, tuple[str, ...]]] = {}
        self.lost_entries: list[int] = []  # entries whose message record was found lost
        self.undecodable: set[bytes] = set()  # message records present but not decodable
        if self.writable:
            self._open_writer()
            mark = self.compaction_mark()
            if self._fresh_catalog and mark is not None:  # rebuilt from these segments
                self.catalog.set_meta("compaction", mark)

    def compaction_mark(self) -> str | None:
        """The id of the compaction that wrote the current segments, if one did."""
        mark = self.path / "segments" / COMPACTION_MARK
        return mark.read_text().strip() if mark.exists() else None

    def _finish_compaction(self) -> None:
        """Finish or undo a compaction a crash cut off (see core/compact.py)."""
        segments, work = self.path / "segments", self.path / COMPACT_DIR
        old = self.path / OLD_SEGMENTS_DIR
        if not segments.exists() and (work / COMPACTION_MARK).exists():
            os.rename(work, segments)  # cut off between the two renames of the swap
            fsync_dir(self.path)
        if work.exists():
            shutil.rmtree(work)  # never swapped in: the old segments are whole
            self.recovered_on_open.append("an unfinished compaction was discarded")
        expected = self.compaction_mark()
        if expected is None:
            if old.exists():  # cannot happen (the mark is written before the swap): keep it
                self.recovered_on_open.append(f"{OLD_SEGMENTS_DIR}/ left in place: the "
                                              "current segments carry no compaction mark")
            return
        catalog = self.path / "catalog.sqlite"
        got = None
        if catalog.exists():
            try:
                conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
                try:
                    row = conn.execute("SELECT value FROM meta WHERE key = 'compaction'"
                                       ).fetchone()
                    got = row[0] if row else None
                finally:
                    conn.close()
            except sqlite3.DatabaseError:
                got = None
        rebuild = catalog.exists() and got != expected
        if rebuild:
            # The catalog does not know these segments (its update was cut off, or lost
            # in a power cut): rebuilt from them, it will.
            self._set_catalog_aside("compacted")
            self.recovered_on_open.append("the catalog did not match the compacted segments: "
                                          "rebuilt from them")
        if old.exists():
            keep_damaged(old, segments)
            shutil.rmtree(old)
            self.recovered_on_open.append("finished an interrupted compaction")

    def _set_catalog_aside(self, why: str) -> Path:
        path = self.path / "catalog.sqlite"
        aside = path.with_name(f"catalog.{why}-{int(time.time())}.sqlite")
        for suffix in ("", "-wal", "-shm"):
            src = path.with_name(path.name + suffix)
            if src.exists():
                os.replace(src, aside.with_name(aside.name + suffix))
        return aside

    def stop_writing(self) -> None:
        """Close the segment writer and every open segment (compaction swaps them)."""
        self.commit()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for number in list(self._fds):
            self.forget_fd(number)

    def start_writing(self) -> None:
        self._index_cache.clear()
        self._open_writer()

    def _open_catalog(self) -> Catalog:
        """The catalog; for the writer, an unreadable one is set aside and rebuilt from the
        segments (a fresh catalog replays them all on open)."""
        path = self.path / "catalog.sqlite"
        # Made new on this open, so rebuilt from the segments (see __init__).
        self._fresh_catalog = self.writable and not path.exists()
        try:
            catalog = Catalog(path, readonly=not self.writable and path.exists())
            catalog.dictionaries()  # touches the file: a damaged one fails here
            return catalog
        except sqlite3.DatabaseError as exc:
            if not self.writable:
                self.close_lock()
                raise CorruptData(f"the catalog of store {self.name!r} cannot be read ({exc}): "
                                  f"run `mailkeep recover {self.name}`") from None
            aside = self._set_catalog_aside("damaged")
            self.recovered_on_open.append(f"catalog was unreadable ({exc}); set aside as "
                                          f"{aside.name} and rebuilt from the segments")
            self._fresh_catalog = True
            return Catalog(path)

    def dictionaries(self) -> dict[int, bytes]:
        """The store's compression dictionaries, opened (an encrypted store keeps them sealed
        in its catalog too: they are learnt from the mail)."""
        out = {}
        for dict_id, data in self.catalog.dictionaries().items():
            if self._sealer is not None:
                data = self._sealer.open(data, dictionary_aad(dict_id))
            out[dict_id] = data
        return out

    def _refresh_packer(self) -> None:
        self.packer = Packer(self.dictionaries(), self._store_key)

    # -- lifecycle ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, name: str, master_key: bytes | None, encrypt: bool) -> Store:
        if (path / MANIFEST).exists():
            raise Conflict(f"{path} already holds a store (to use it: `mailkeep store attach "
                           f"{path}`)")
        if path.exists() and any(path.iterdir()):
            raise Conflict(f"{path} exists and is not empty")
        manifest: dict[str, Any] = {
            "format": FORMAT, "id": str(uuid.uuid4()), "name": name,
            "created": int(time.time()), "codec": "zstd", "encryption": None}
        store_key = None
        if encrypt:
            if master_key is None:
                raise KeyMissing("no master key to encrypt the store with")
            store_key = new_store_key()
            manifest["encryption"] = {"algorithm": "AES-256-GCM", "key_id": key_id(master_key),
                                      "wrapped_key": wrap_key(master_key, store_key)}
        # Built aside and renamed into place, so a crash leaves either no store or a whole one.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.creating-*"):
            shutil.rmtree(stale, ignore_errors=True)  # an earlier creation cut off by a crash
        tmp = path.with_name(f".{path.name}.creating-{manifest['id']}")
        tmp.mkdir(mode=0o700)
        (tmp / "segments").mkdir(mode=0o700)
        write_json_atomic(tmp / MANIFEST, manifest)
        if path.exists():
            path.rmdir()  # empty, checked above
        os.rename(tmp, path)
        fsync_dir(path.parent)
        return cls(path, manifest, store_key, write=True)

    @classmethod
    def open(cls, path: Path, master_key: bytes | None, write: bool = True) -> Store:
        manifest = read_manifest(path)
        store_key = None
        enc = manifest.get("encryption")
        if enc:
            if master_key is None:
                raise KeyMissing(f"store {manifest['name']!r} is encrypted and needs master key "
                                 f"{enc['key_id']}: set MAILKEEP_MASTER_KEY or put the key in "
                                 "conf/master.key of the data directory")
            store_key = unwrap_key(master_key, enc["wrapped_key"])
        return cls(path, manifest, store_key, write)

    def _try_lock(self) -> int | None:
        try:
            fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None  # read-only media or no permission: this process can only read
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def close(self) -> None:
        if self._in_batch:
            self.abort()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self.catalog.close()
        self.close_lock()

    def close_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def id(self) -> str:
        return str(self.manifest["id"])

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def encrypted(self) -> bool:
        return bool(self.manifest.get("encryption"))

    def rename(self, name: str) -> None:
        self.manifest["name"] = name
        write_json_atomic(self.path / MANIFEST, self.manifest)

    def behind_segments(self) -> bool:
        """Whether the segments hold records past what the catalog has applied (or the
        catalog is missing altogether): cheap, two stats and a meta read."""
        if not (self.path / "catalog.sqlite").exists():
            return bool(self.segments())
        numbers = self.segments()
        if not numbers:
            return False
        applied_seg, applied_off = self.catalog.applied()
        last = numbers[-1]
        size = self.segment_path(last).stat().st_size
        return (last, size) > (applied_seg, max(applied_off, len(seg.FILE_HEADER)))

    def segment_path(self, number: int) -> Path:
        return self.path / "segments" / seg.segment_name(number)

    def require_writable(self) -> None:
        if not self.writable:
            pid = (self.path / "lock").read_text().strip() if (self.path / "lock").exists() else ""
            raise StoreUnavailable(f"store {self.name!r} is being written by another process"
                                   + (f" (pid {pid})" if pid else ""))

    # -- opening: re-apply or cut the tail ------------------------------------------------
    def _open_writer(self) -> None:
        seg_dir = self.path / "segments"
        seg_dir.mkdir(exist_ok=True)
        applied_seg, applied_off = self.catalog.applied()
        numbers = seg.segment_numbers(seg_dir)
        if not numbers:
            self._writer = seg.SegmentWriter(seg_dir, 1, len(seg.FILE_HEADER), SEGMENT_BYTES)
            return
        applied_off = max(applied_off, len(seg.FILE_HEADER))
        last_seg, end_off = applied_seg, applied_off
        tail = [n for n in numbers if n >= applied_seg]
        self.catalog.begin()
        try:
            for n in tail:
                path = self.segment_path(n)
                start = applied_off if n == applied_seg else None
                if start is not None and path.stat().st_size < start:
                    # Shorter than what the catalog knows: damage, not a torn write. Leave it
                    # for verify to name, and write on in a fresh segment.
                    self.recovered_on_open.append(f"segment {n} is shorter than the catalog says")
                    last_seg, end_off = max(numbers) + 1, len(seg.FILE_HEADER)
                    break
                last_seg, end_off = n, start if start is not None else len(seg.FILE_HEADER)
                for item in seg.scan(path, n, start):
                    if isinstance(item, seg.Damage):
                        if item.end >= path.stat().st_size:
                            self.recovered_on_open.append(
                                f"cut a torn write of {item.end - item.start} bytes "
                                f"at the end of segment {n}")
                            break
                        self.recovered_on_open.append(
                            f"segment {n} bytes {item.start}-{item.end}: {item.reason}")
                        end_off = item.end
                        continue
                    self.apply_record(item)
                    end_off = item.offset + item.length
            self.catalog.set_applied(last_seg, end_off)
            self.catalog.commit()
        except BaseException:
            self.catalog.rollback()
            raise
        self._refresh_packer()
        self._writer = seg.SegmentWriter(seg_dir, last_seg, end_off, SEGMENT_BYTES)

    def apply_record(self, rec: seg.Record, problems: list[str] | None = None) -> None:
        """Bring the catalog up to date with one valid record (replay and recovery)."""
        h = rec.header
        cat = self.catalog
        if rec.type == seg.DICTIONARY:
            assert rec.payload is not None
            if bool(h.get("sealed")) != (self._sealer is not None):
                raise CorruptData("dictionary record does not match the store's encryption")
            cat.add_dictionary(int(h["dict"]), rec.payload, rec.segment, rec.offset)
            self._refresh_packer()
        elif rec.type == seg.MESSAGE:
            cid = bytes.fromhex(h["id"])
            if cat.find_blob(cid) is not None:
                return
            try:
                head, size = self.checked_head(rec, cid, PARTIAL_INDEX_BYTES)
            except (CorruptData, KeyError, ValueError) as exc:
                self.undecodable.add(cid)
                if problems is not None:
                    problems.append(f"message record at segment {rec.segment} offset "
                                    f"{rec.offset} cannot be decoded: {exc}")
                return
            info = blob_info(extract(head), h.get("date") or time.time())
            new_id = cat.add_blob(cid, rec.segment, rec.offset, rec.length, size, info)
            self._remember_index(new_id, info.date, info.index)
        elif rec.type == seg.ENTRY:
            blob_id = cat.find_blob(bytes.fromhex(h["id"]))
            if blob_id is None:
                undecodable = bytes.fromhex(h["id"]) in self.undecodable
                if problems is not None:
                    problems.append(f"message {h['n']} in {h['owner']}/{h['folder']}: " + (
                        "its bytes are there but cannot be decoded; left in place"
                        if undecodable else "its message record is lost"))
                if not undecodable:  # only what is really gone is buried
                    self.lost_entries.append(int(h["n"]))
                if int(h["n"]) >= cat.next_number():  # its number is never handed out again
                    cat.set_next_number(int(h["n"]) + 1)
                return
            fid = cat.folder_id(h["owner"], h["folder"])
            if cat.has_entry(blob_id, fid):
                return
            date, index = self._blob_index(blob_id)
            cat.add_entry(int(h["n"]), blob_id, fid, h.get("flags", []), h.get("idate"),
                          int(h["at"]), rec.segment, rec.offset, date, index)
            if isinstance(h.get("env"), dict):
                cat.add_envelope(int(h["n"]), h["env"])
        elif rec.type == seg.TOMBSTONE:
            self._drop_entry(int(h["n"]))
            if int(h["n"]) >= cat.next_number():
                cat.set_next_number(int(h["n"]) + 1)
        elif rec.type == seg.FOLDER:
            self._apply_folder(h)

    def _apply_folder(self, h: dict[str, Any]) -> None:
        if h.get("op") == "move":
            self.catalog.move_folder(h["owner"], h["folder"], h["to_owner"], h["to_folder"])
        elif h.get("op") == "drop":
            fid = self.catalog.find_folder(h["owner"], h["folder"])
            if fid is not None:
                self.catalog.drop_folder_id(fid)

    # -- writing --------------------------------------------------------------------------
    def begin(self) -> None:
        self.require_writable()
        if not self._in_batch:
            self.catalog.begin()
            self._in_batch = True

    def commit(self) -> None:
        """Make the batch durable: segment fsync first, then the catalog commit."""
        if not self._in_batch:
            return
        assert self._writer is not None
        self._writer.sync()
        self.catalog.set_applied(self._writer.segment, self._writer.offset)
        self.catalog.commit()
        self._in_batch = False

    def abort(self) -> None:
        if not self._in_batch:
            return
        self.catalog.rollback()
        self._index_cache.clear()
        if self._writer is not None:
            n, off = self.catalog.applied()
            self._writer.rewind(n, max(off, len(seg.FILE_HEADER)))
            for number in list(self._fds):  # rewind may have deleted segment files
                self.forget_fd(number)
            self._refresh_packer()
        self.catalog.forget_cached_folders()
        self._in_batch = False

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
        rec = self._writer.append(seg.DICTIONARY, {"dict": dict_id,
                                                   "sealed": self._sealer is not None}, payload)
        self.catalog.add_dictionary(dict_id, payload, rec.segment, rec.offset)
        self._refresh_packer()

    # Mail drifts (new lists, new clients, new years), so the store keeps learning: a first
    # dictionary once it holds FIRST_DICT_AFTER messages, a fresh one every DICT_EVERY after.
    def dictionary_due(self) -> bool:
        newest = self.catalog.conn.execute("SELECT max(id) FROM blobs").fetchone()[0] or 0
        last = int(self.catalog.get_meta("blobs_at_dictionary", "0") or 0)
        first = not self.catalog.dictionaries()
        return newest - last >= (codec.FIRST_DICT_AFTER if first else codec.DICT_EVERY)

    def dictionary_samples(self) -> tuple[list[bytes], int]:
        """Heads of the newest messages to train a dictionary on, and the newest blob id."""
        rows = self.catalog.conn.execute(
            "SELECT id, content_id, segment, offset, length FROM blobs WHERE length < ?"
            " ORDER BY id DESC LIMIT ?", (seg.IN_MEMORY_PAYLOAD, codec.SAMPLE_MESSAGES)
        ).fetchall()
        samples: list[bytes] = []
        budget = codec.SAMPLE_BYTES
        for _id, cid, segment, offset, length in rows:
            try:
                head = self._unpack_record(self.record_at(segment, offset, length), bytes(cid))
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

    def lookup(self, content_id: bytes, owner: str, folder: str) -> tuple[int | None, bool]:
        """(blob id or None, whether the message is already filed in that folder)."""
        blob_id = self.catalog.find_blob(content_id)
        if blob_id is None:
            return None, False
        fid = self.catalog.find_folder(owner, folder)
        return blob_id, fid is not None and self.catalog.has_entry(blob_id, fid)

    def add_message(self, prepared: Prepared, owner: str, folder: str,
                    flags: frozenset[str] = frozenset(), internal_date: float | None = None,
                    envelope: dict[str, Any] | None = None) -> Filed:
        """File a prepared message (within a batch); a message already in the folder is a
        duplicate and changes nothing."""
        self.begin()
        assert self._writer is not None
        blob_id, filed = self.lookup(prepared.content_id, owner, folder)
        if filed:
            return Filed(None, False)
        new_blob = blob_id is None
        if blob_id is None:
            rec = self._writer.append(seg.MESSAGE, {
                "id": prepared.content_id.hex(), "size": prepared.raw_size, "codec": "zstd",
                "dict": prepared.dict_id, "sealed": prepared.sealed,
                "date": prepared.info.date}, prepared.payload)
            blob_id = self.catalog.add_blob(prepared.content_id, rec.segment, rec.offset,
                                            rec.length, prepared.raw_size, prepared.info)
            self._remember_index(blob_id, prepared.info.date, prepared.info.index)
        number = self._add_entry(prepared.content_id, blob_id, owner, folder, flags,
                                 internal_date, envelope)
        return Filed(number, new_blob)

    def add_large_message(self, stream: BinaryIO, size: int, owner: str, folder: str,
                          flags: frozenset[str] = frozenset(),
                          internal_date: float | None = None) -> Filed:
        """File a message too large for memory: hashed, compressed and sealed as a stream."""
        self.begin()
        assert self._writer is not None
        start = stream.tell()
        hasher: Any = self.packer.content_hasher()
        for chunk in _chunks(stream, size):
            hasher.update(chunk)
        cid: bytes = hasher.digest()
        blob_id, filed = self.lookup(cid, owner, folder)
        if filed:
            return Filed(None, False)
        new_blob = blob_id is None
        warnings: list[str] = []
        if blob_id is None:
            stream.seek(start)
            head = stream.read(min(size, PARTIAL_INDEX_BYTES))
            fields = extract(head)
            if size > len(head):
                fields.warnings.append("message indexed from its first 16 MB only")
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
            rec = self._writer.append_stream(seg.MESSAGE, {
                "id": cid.hex(), "size": size, "codec": "zstd", "dict": packer.codec.dict_id,
                "sealed": packer.sealer is not None, "date": info.date}, payload)
            if second.digest() != cid:
                raise OSError("the file changed while it was being read")
            blob_id = self.catalog.add_blob(cid, rec.segment, rec.offset, rec.length, size, info)
            self._remember_index(blob_id, info.date, info.index)
        number = self._add_entry(cid, blob_id, owner, folder, flags, internal_date)
        return Filed(number, new_blob, warnings)

    def add_entry(self, cid: bytes, owner: str, folder: str, flags: frozenset[str] = frozenset(),
                  internal_date: float | None = None,
                  envelope: dict[str, Any] | None = None) -> int | None:
        """File a message whose bytes the store already holds; None if already in the folder."""
        self.begin()
        blob_id, filed = self.lookup(cid, owner, folder)
        if blob_id is None:
            raise NotFound("the store does not hold that message")
        if filed:
            return None
        return self._add_entry(cid, blob_id, owner, folder, flags, internal_date, envelope)

    def _add_entry(self, cid: bytes, blob_id: int, owner: str, folder: str,
                   flags: frozenset[str], internal_date: float | None,
                   envelope: dict[str, Any] | None = None) -> int:
        assert self._writer is not None
        number = self.catalog.next_number()
        now = int(time.time())
        idate = int(internal_date) if internal_date is not None else None
        flag_list = sorted(flags)
        header: dict[str, Any] = {
            "n": number, "id": cid.hex(), "owner": owner, "folder": folder,
            "flags": flag_list, "idate": idate, "at": now}
        if envelope is not None:
            header["env"] = envelope
        rec = self._writer.append(seg.ENTRY, header)
        fid = self.catalog.folder_id(owner, folder)
        date, index = self._blob_index(blob_id)
        self.catalog.add_entry(number, blob_id, fid, flag_list, idate, now,
                               rec.segment, rec.offset, date, index)
        if envelope is not None:
            self.catalog.add_envelope(number, envelope)
        return number

    # Each entry has its own full-text row; filing a message again needs its index text.
    def _remember_index(self, blob_id: int, date: int, index: tuple[str, ...]) -> None:
        self._index_cache[blob_id] = (date, index)
        while len(self._index_cache) > 64:
            self._index_cache.pop(next(iter(self._index_cache)))

    def _blob_index(self, blob_id: int) -> tuple[int, tuple[str, str, str, str, str]]:
        cached = self._index_cache.get(blob_id)
        if cached is not None:
            return cached  # type: ignore[return-value]
        row = self.catalog.conn.execute(
            "SELECT content_id, segment, offset, length, date FROM blobs WHERE id = ?",
            (blob_id,)).fetchone()
        cid, segment, offset, length, date = bytes(row[0]), row[1], row[2], row[3], row[4]
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
        info = blob_info(extract(head[:PARTIAL_INDEX_BYTES]), date)
        return int(date), info.index

    def _drop_entry(self, number: int) -> None:
        row = self.catalog.conn.execute("SELECT blob_id FROM entries WHERE number = ?",
                                        (number,)).fetchone()
        if row is not None:
            self.catalog.delete_entry(number, self._blob_index(row[0])[1])

    def bury_lost_entries(self) -> None:
        """Tombstone entries whose message bytes are lost, so the segments agree with the
        catalog again (recover does this after naming them)."""
        if not self.lost_entries:
            return
        self.begin()
        assert self._writer is not None
        for number in self.lost_entries:
            self._writer.append(seg.TOMBSTONE, {"n": number, "at": int(time.time()),
                                                "reason": "message record lost; recovered"})
        self.lost_entries = []
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
            self._writer.append(seg.TOMBSTONE, {"n": number, "at": int(time.time()),
                                                "reason": reason})
            self._drop_entry(number)
            self.commit()
        except BaseException:
            self.abort()
            raise

    def folder_change(self, header: dict[str, Any]) -> None:
        """Record and apply a folder change: {"op": "move", owner, folder, to_owner,
        to_folder} moves a subtree, {"op": "drop", owner, folder} removes an empty folder."""
        self.begin()
        assert self._writer is not None
        try:
            self._writer.append(seg.FOLDER, {**header, "at": int(time.time())})
            self._apply_folder(header)
            self.commit()
        except BaseException:
            self.abort()
            raise

    def _fd(self, segment: int) -> int:
        fd = self._fds.get(segment)
        if fd is None:
            try:
                fd = os.open(self.segment_path(segment), os.O_RDONLY)
            except FileNotFoundError:
                raise CorruptData(f"segment {segment} of store {self.name!r} is missing"
                                  ) from None
            self._fds[segment] = fd
        return fd

    def forget_fd(self, segment: int) -> None:
        fd = self._fds.pop(segment, None)
        if fd is not None:
            os.close(fd)

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

    def record_at(self, segment: int, offset: int, length: int) -> seg.Record:
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

    def segments(self) -> list[int]:
        return seg.segment_numbers(self.path / "segments")

    def disk_usage(self) -> dict[str, int]:
        segs = sum(self.segment_path(n).stat().st_size for n in self.segments())
        cat = sum(p.stat().st_size for p in self.path.glob("catalog.sqlite*"))
        return {"segments": segs, "catalog": cat}


def keep_damaged(old: Path, segments: Path) -> None:
    """Carry what recover set aside (segments/damaged/) over into the new segments."""
    src, dst = old / "damaged", segments / "damaged"
    if not src.is_dir():
        return
    dst.mkdir(exist_ok=True)
    for item in src.iterdir():
        target = dst / item.name
        if not target.exists():
            os.rename(item, target)
    fsync_dir(dst)


def dictionary_aad(dict_id: int) -> bytes:
    return b"D" + str(dict_id).encode()


def _chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    left = size
    while left:
        chunk = stream.read(min(seg.CHUNK, left))
        if not chunk:
            raise OSError("message stream ended early")
        left -= len(chunk)
        yield chunk


def _region(fh: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    fh.seek(start)
    yield from _chunks(fh, length)

