"""A store's segments in object storage (core/objects.py), for an installation that has
`--objects`: the store directory on a server's disk is then a staging area and a cache, and
the objects are the truth.

- Writing: at each commit, after the segment is synced on disk and before the catalog
  commits, what the commit appended to each segment goes up as one object, a part, created
  never overwritten: `stores/<store id>/segments/<segment>/<first offset>-<random>`. The
  catalog's transaction records it (parts: segment, start, end, name). A part whose catalog
  commit never came is nobody's: no reader looks for it (and the upkeep may delete it).
- Reading: a record's bytes come from the local segment file if this server has it, else by
  one ranged GET of the part that holds it. Whole segments (what verify, recover, compaction
  and a new writer read from end to end) are downloaded part by part into the store
  directory, which keeps at most CACHE_BYTES of segments no writer appends to, the least
  recently used going first.
- Opening to write: the catalog says what is durable; the segment it ends in is downloaded
  again, and whatever this directory holds past it (a commit that never reached the object
  store) is dropped.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailkeep.core.errors import CorruptData, NotFound
from mailkeep.core.files import fsync_dir, write_json_atomic
from mailkeep.core.objects import AlreadyExists, ObjectStore
from mailkeep.core.storage import segments as seg

if TYPE_CHECKING:
    from mailkeep.core.storage.catalog_pg import PgCatalog

CACHE_BYTES = int(os.environ.get("MAILKEEP_SEGMENT_CACHE_MB", "2048")) << 20
CACHE_DIR = "segments.cache"  # in the store directory: copies of segments, for reading
CHUNK = 8 << 20  # of a part read at once when it is uploaded


def part_name(store_id: str, segment: int, start: int) -> str:
    """A name no other write ever takes: a part whose commit failed may exist already at the
    same place with other bytes, and objects are never overwritten."""
    return f"stores/{store_id}/segments/{segment:06d}/{start:012d}-{secrets.token_hex(8)}"


def upload(objects: ObjectStore, catalog: PgCatalog, store_id: str, directory: Path,
           start: tuple[int, int], end: tuple[int, int]) -> None:
    """Put what lies between (segment, offset) `start` and `end` in the local segments up as
    parts, one for each segment, each recorded in the catalog's open transaction."""
    segment, offset = start
    while (segment, offset) < end:
        path = directory / seg.segment_name(segment)
        last = end[1] if segment == end[0] else path.stat().st_size
        if last > offset:
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read(last - offset)
            if len(data) != last - offset:
                raise CorruptData(f"segment {segment} is shorter than what was written to it")
            name = part_name(store_id, segment, offset)
            objects.put_new(name, data)
            catalog.add_part(segment, offset, last, name)
        segment, offset = segment + 1, 0


def read_range(objects: ObjectStore, catalog: PgCatalog, segment: int, offset: int,
               length: int) -> bytes:
    """Bytes [offset, offset + length) of a segment, from the part that holds them."""
    found = catalog.part_at(segment, offset)
    if found is None or found[2] < offset + length:
        raise CorruptData(f"no part of segment {segment} holds bytes {offset}-"
                          f"{offset + length}")
    name, start, _end = found
    return objects.get(name, offset - start, offset - start + length)


def download(objects: ObjectStore, catalog: PgCatalog, segment: int, path: Path,
             upto: int | None = None) -> None:
    """The segment as its parts make it (up to `upto` bytes, if given), written to `path`
    whole or not at all."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        for name, start, end in catalog.parts(segment):
            if upto is not None and start >= upto:
                break
            if fh.tell() != start:
                raise CorruptData(f"the parts of segment {segment} leave a gap at {fh.tell()}")
            fh.write(objects.get(name) if upto is None or end <= upto
                     else objects.get(name, 0, upto - start))
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    fsync_dir(path.parent)


# -- the manifest ---------------------------------------------------------------------------
def _manifest_name(store_id: str, version: int) -> str:
    return f"stores/{store_id}/manifest/{version:08d}.json"


def manifest_version(objects: ObjectStore, store_id: str) -> int:
    """The newest version of a store's manifest in the object store (0: none)."""
    versions = [int(n.rsplit("/", 1)[1].split(".")[0]) for n in
                objects.names(f"stores/{store_id}/manifest/") if n.endswith(".json")]
    return max(versions, default=0)


def put_manifest(objects: ObjectStore, store_id: str, manifest: dict[str, Any]) -> None:
    """The manifest as its next version (each version an object of its own, never
    overwritten; the store's writer is the one who changes it)."""
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    version = manifest_version(objects, store_id) + 1
    while True:
        try:
            objects.put_new(_manifest_name(store_id, version), data)
            return
        except AlreadyExists:  # (a writer before this one, just now)
            version += 1


def fetch_manifest(objects: ObjectStore, store_id: str, directory: Path) -> None:
    """The newest manifest of a store into `directory` (made if need be): what a server that
    never had the store needs before it opens it."""
    version = manifest_version(objects, store_id)
    if not version:
        raise NotFound(f"store {store_id} has no manifest in the object store")
    data = objects.get(_manifest_name(store_id, version))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / "segments").mkdir(mode=0o700, exist_ok=True)
    write_json_atomic(directory / "store.json", json.loads(data))


# -- the store's evidence (tree.heads, tree.timestamps) -------------------------------------
def put_evidence(objects: ObjectStore, store_id: str, file: str, line: bytes) -> None:
    """One line of a store's evidence file as an object (ordered by when it was written)."""
    objects.put_new(f"stores/{store_id}/{file}/{time.time_ns():020d}-{secrets.token_hex(4)}",
                    line)


def fetch_evidence(objects: ObjectStore, store_id: str, file: str, path: Path) -> None:
    """A store's evidence file made again from its objects, in the order they were written
    (lines this server wrote are among them)."""
    names = sorted(objects.names(f"stores/{store_id}/{file}/"))
    data = b"".join(objects.get(n) for n in names)
    tmp = path.with_name(path.name + ".fetched")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def cached(directory: Path) -> Iterator[tuple[float, int, Path]]:
    """(last used, bytes, path) of the segment files in the directory."""
    for entry in os.scandir(directory):
        if entry.name.endswith(".seg"):
            st = entry.stat()
            yield max(st.st_atime, st.st_mtime), st.st_size, Path(entry.path)


def trim(directory: Path, limit: int | None = None) -> None:
    """Drop the least recently used copies past `limit` bytes (CACHE_BYTES)."""
    limit = CACHE_BYTES if limit is None else limit
    files = sorted(cached(directory))
    total = sum(size for _at, size, _path in files)
    for _at, size, path in files:
        if total <= limit:
            break
        path.unlink(missing_ok=True)
        total -= size


def retire(store_dir: Path, current: int) -> None:
    """The writer's segments before the one it writes (all in the objects now) into the
    cache, where they are dropped in their turn."""
    staging, cache = store_dir / "segments", store_dir / CACHE_DIR
    moved = False
    for entry in os.scandir(staging):
        if entry.name.endswith(".seg") and entry.name.split(".")[0].isdigit() \
                and int(entry.name.split(".")[0]) < current:
            cache.mkdir(mode=0o700, exist_ok=True)
            os.replace(entry.path, cache / entry.name)
            moved = True
    if moved:
        trim(cache)
