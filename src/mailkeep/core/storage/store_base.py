"""What the parts of a store share: its layout on disk, the manifest, and the state of an
open store with the few things every part uses (names, paths, dictionaries, the lock check).
The parts build on each other: store_read.py (reading records), store_write.py (filing and
changing what is archived), store_replay.py (bringing the catalog up to date with the
segments: replay on open, rebuilding it, finishing a compaction), store.py (opening,
creating, locking, closing)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mailkeep.core.crypto import Sealer
from mailkeep.core.errors import StoreUnavailable
from mailkeep.core.files import fsync_dir
from mailkeep.core.objects import ObjectStore
from mailkeep.core.storage import segment_objects
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage.catalog import CATALOG, Catalog

if TYPE_CHECKING:
    from mailkeep.core.storage.catalog_pg import PgCatalog
from mailkeep.core.storage.packing import Packer
from mailkeep.core.storage.tree import Tree

SEGMENT_BYTES = 256 << 20
COMPACT_DIR = "segments.compact"  # new segments being built by compaction
OLD_SEGMENTS_DIR = "segments.precompact"  # the segments compaction replaced, until it ends
COMPACTION_MARK = "compaction"  # in a finished compaction's segments: its id


@dataclass
class Added:
    """What happened to one message handed to the store."""

    number: int | None  # the new message number, None when it was a duplicate
    new_blob: bool
    warnings: list[str] = field(default_factory=list)  # what indexing it ran into


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


def _size(path: Path) -> int:
    """A file's size; -1 if there is none."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


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


class StoreBase:
    """The state of an open store (store.py sets it up)."""

    path: Path
    manifest: dict[str, Any]
    writable: bool  # this process holds the store's lock
    catalog: Catalog | PgCatalog  # in SQLite, or in PostgreSQL (catalog_url)
    catalog_url: str | None  # the PostgreSQL database of the catalog; None: catalog.sqlite
    objects: ObjectStore | None  # where the segments are (segment_objects.py); None: here
    _uploaded: tuple[int, int]  # (segment, offset) up to which they are there
    _holding: bool  # the store's write lock in the database (in object storage: per batch)
    _packer: Packer | None  # made when first used (the packer property)
    tree: Tree  # the Merkle tree over every record written (core/storage/tree.py)
    recovered_on_open: list[str]  # what opening it repaired
    lost_entries: list[int]  # entries whose message record was found lost
    lost_leaves: dict[int, tuple[int | None, int | None]]  # their entry's and message's leaves
    undecodable: set[bytes]  # message records present but not decodable
    _store_key: bytes | None
    _sealer: Sealer | None
    _lock_fd: int | None
    _writer: seg.SegmentWriter | None
    _in_batch: bool
    _fds: dict[int, int]
    _index_cache: dict[int, tuple[int, tuple[str, ...]]]
    _fresh_catalog: bool

    @property
    def id(self) -> str:
        return str(self.manifest["id"])

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def encrypted(self) -> bool:
        return bool(self.manifest.get("encryption"))

    def segment_path(self, number: int) -> Path:
        """The segment's file; in object storage, the writer's own (segments/) if it is the
        one being written or holds all of it, else a copy in the cache (segment_objects.py),
        downloaded first if this server does not have all of it."""
        path = self.path / "segments" / seg.segment_name(number)
        if self.objects is None or (self._writer is not None and number == self._writer.segment):
            return path
        catalog = self._pg_catalog()
        parts = catalog.parts(number)
        if not parts:
            return path
        if self._writer is not None and _size(path) >= parts[-1][2]:
            return path  # (written here; the catalog names all of it)
        copy = self.path / segment_objects.CACHE_DIR / seg.segment_name(number)
        if _size(copy) < parts[-1][2]:  # missing, or cached while it still grew
            copy.parent.mkdir(mode=0o700, exist_ok=True)
            segment_objects.download(self.objects, catalog, number, copy)
            segment_objects.trim(copy.parent)
        return copy

    def _pg_catalog(self) -> PgCatalog:
        from mailkeep.core.storage.catalog_pg import PgCatalog
        assert isinstance(self.catalog, PgCatalog)
        return self.catalog

    def segments(self) -> list[int]:
        local = seg.segment_numbers(self.path / "segments")
        if self.objects is None:
            return local
        stored = [n for n, _size in self._pg_catalog().part_segments()]
        current = [self._writer.segment] if self._writer is not None else []
        return sorted(set(stored) | set(current))

    def disk_usage(self) -> dict[str, int]:
        if self.objects is not None:
            return {"segments": sum(size for _n, size in self._pg_catalog().part_segments()),
                    "catalog": self._pg_catalog().size()}
        segs = sum(self.segment_path(n).stat().st_size for n in self.segments())
        if self.catalog_url is not None:
            from mailkeep.core.storage.catalog_pg import PgCatalog
            assert isinstance(self.catalog, PgCatalog)
            return {"segments": segs, "catalog": self.catalog.size()}
        cat = sum(p.stat().st_size for p in self.path.glob(CATALOG + "*"))
        return {"segments": segs, "catalog": cat}

    def close_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def require_writable(self) -> None:
        if not self.writable and self.catalog_url is not None:
            holder = self._pg_catalog().lock_holder()
            raise StoreUnavailable(f"store {self.name!r} is being written by another server or "
                                   "process" + (f" ({holder})" if holder else ""))
        if not self.writable:
            pid = (self.path / "lock").read_text().strip() if (self.path / "lock").exists() else ""
            raise StoreUnavailable(f"store {self.name!r} is being written by another process"
                                   + (f" (pid {pid})" if pid else ""))

    def compaction_mark(self) -> str | None:
        """The id of the compaction that wrote the current segments, if one did."""
        mark = self.path / "segments" / COMPACTION_MARK
        return mark.read_text().strip() if mark.exists() else None

    def dictionaries(self) -> dict[int, bytes]:
        """The store's compression dictionaries, opened (an encrypted store keeps them sealed
        in its catalog too: they are learnt from the mail)."""
        out = {}
        for dict_id, data in self.catalog.dictionaries().items():
            if self._sealer is not None:
                data = self._sealer.open(data, dictionary_aad(dict_id))
            out[dict_id] = data
        return out

    @property
    def packer(self) -> Packer:
        """Compression (and sealing) with the store's dictionaries, made when first used: a
        store opened to be searched reads none of them (a million messages' store has about a
        hundred, 11 MB, which took a search in the server 20 ms to load)."""
        if self._packer is None:
            self._packer = Packer(self.dictionaries(), self._store_key)
        return self._packer

    @packer.setter
    def packer(self, value: Packer) -> None:
        self._packer = value

    def _refresh_packer(self) -> None:
        self._packer = None
