"""`mailkeep migrate`: an embedded installation (the data directory's SQLite files, segments on
its disk) moved into PostgreSQL, and its stores' segments into object storage if asked.

With no server running on the data directory:

1. the master database's tables are copied into PostgreSQL in one transaction (what the
   database held from an earlier, unfinished run is replaced), with the installation's master
   key id, the key that signs tree heads and the configuration documents of conf/
   (core/confdocs.py);
2. each store in turn: its Merkle tree's leaves are copied as they are (so every signed head
   stays valid), its catalog and full-text index are built in PostgreSQL from its segments
   (what `recover` does), and, with object storage, its segments go up as parts that never
   split a record, each read back and compared by SHA-256, followed by its manifest and its
   evidence (signed heads, time-stamps);
3. each store is checked before it is marked done: the same messages, entries, bytes and
   folders (with their counts) in both catalogs, and the same tree (size and root hash).

Every step can be cut off and the command run again: a store marked done (in the database's
meta, with where its segments ended) is not moved again unless it grew since; one that is not
is moved again from the start (its schema and objects from the cut-off run removed first).
Once every store is done the database is marked finished, and a run after that is refused:
the servers then write to it, and a copy of the data directory's older state would undo that.
The data directory then keeps its new engines (conf/backends.json, core/backend_conf.py; a
password in the URL sealed), so that its server starts on them; its other files are left as
they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailkeep.core import backend_conf
from mailkeep.core.backends import DATABASE_VAR, OBJECTS_VAR, check_database, check_objects
from mailkeep.core.confdocs import KEY as CONF_KEY
from mailkeep.core.confdocs import SHARED
from mailkeep.core.errors import Conflict, CorruptData, NotFound
from mailkeep.core.files import SERVING_LOCK, fsync_dir, try_flock, write_json_atomic
from mailkeep.core.keys import KeyRing
from mailkeep.core.masterdb import FILE, MasterDB, StoreRecord
from mailkeep.core.objects import ObjectStore
from mailkeep.core.storage import segment_objects
from mailkeep.core.storage import segments as seg
from mailkeep.core.storage.backup import copy_heads, copy_prefix
from mailkeep.core.storage.catalog_pg import PgCatalog, drop_catalogs
from mailkeep.core.storage.store import MANIFEST, Store, read_manifest
from mailkeep.core.storage.store_write import DOCUMENTS_MARK
from mailkeep.core.storage.tree import HEADS_FILE, LEAVES, TIMESTAMPS_FILE, root_of
from mailkeep.core.storage.verify import verify

if TYPE_CHECKING:
    from mailkeep.core.archive import Archive

DOCUMENT_BATCH = 200  # messages whose attachments' text is copied in one transaction
PART_BYTES = 32 << 20  # of a part uploaded (one record larger than that is a part alone)
MARK = "migration.store."  # + store id: the store is done (meta of the master database)
STARTED, FINISHED = "migration.started", "migration.finished"
Report = Callable[[str], None]


class MigrationRefused(Conflict):
    """The target cannot take this installation (it holds another, or the migration ended)."""


@dataclass
class StoreFigures:
    """What one store holds, as its catalog and tree say."""
    name: str
    id: str
    messages: int = 0  # distinct messages (blobs)
    entries: int = 0  # messages in folders
    bytes: int = 0  # of the messages as they arrived
    leaves: int = 0
    root: str = ""  # the tree's root hash, hex
    applied: tuple[int, int] = (1, 0)  # where the segments end: (segment, offset)
    folders: list[tuple[str, str, int, int]] = field(default_factory=list)
    documents: int = 0  # messages whose attachments' text the index holds
    parts: int = 0  # objects its segments went up as
    uploaded: int = 0  # bytes
    seconds: float = 0.0
    skipped: bool = False  # done by an earlier run

    def source_mark(self) -> str:
        return f"{self.applied[0]}:{self.applied[1]}:{self.leaves}"

    def differences(self, other: StoreFigures) -> list[str]:
        found = []
        for what in ("messages", "entries", "bytes", "leaves", "root", "applied", "folders",
                     "documents"):
            a, b = getattr(self, what), getattr(other, what)
            if a != b:
                found.append(f"{what}: {_short(a)} in the data directory, {_short(b)} in "
                             "PostgreSQL")
        return found


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


@contextmanager
def backends(database: str | None, objects: str | None) -> Iterator[None]:
    """The backends a Store opened in the block uses (core/backends.py reads them from the
    environment), those of the process again after it."""
    saved = {k: os.environ.get(k) for k in (DATABASE_VAR, OBJECTS_VAR)}
    for key, value in ((DATABASE_VAR, database), (OBJECTS_VAR, objects)):
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _figures(rec: StoreRecord, store: Store) -> StoreFigures:
    entries, blobs, size = store.catalog.counts()
    leaves, root = store.tree.root()
    return StoreFigures(rec.name, rec.uuid, messages=blobs, entries=entries, bytes=size,
                        leaves=leaves, root=root.hex(), applied=store.catalog.applied(),
                        folders=sorted(store.catalog.folders()),
                        documents=store.catalog.count_documents())


def copy_documents(source: Store, target: Store) -> int:
    """The text inside attachments that `source`'s catalog holds into `target`'s, for the
    same messages (a catalog made from the segments has none: they keep the messages, not
    that text), and how far the attachments were read; how many messages."""
    copied = after = 0
    while batch := source.catalog.documented_blobs(after, DOCUMENT_BATCH):
        found = []
        for blob_id, content_id, warnings in batch:
            there = target.catalog.find_blob(content_id)
            if there is not None:
                found.append((there, source.catalog.blob_documents(blob_id), warnings))
        target.copy_documents(found, None)
        copied += len(found)
        after = batch[-1][0]
    mark = int(source.catalog.get_meta(DOCUMENTS_MARK, "0") or 0)
    if mark:
        if mark >= source.catalog.newest_blob_id():
            there = target.catalog.newest_blob_id()
        elif source.catalog.blob_exists(mark):
            there = target.catalog.find_blob(source.catalog.blob_location(mark)[0]) or 0
        else:
            there = 0  # (read again from the start by IndexAttachmentText if asked)
        target.copy_documents([], there)
    return copied


class Migration:
    """An embedded installation's move into PostgreSQL (and object storage); run() does it."""

    def __init__(self, data_dir: Path, database: str, objects: str | None = None,
                 report: Report | None = None,
                 passphrase: Callable[[str], str] | None = None, actor: str = "cli") -> None:
        """`passphrase`: asked for the passphrase of each store sealed under one (by its
        name); without it such a store stops the migration (KeyMissing). `actor`: who the
        audit record of the migration names."""
        self.actor = actor
        self.data_dir = data_dir.resolve()
        self.passphrase = passphrase
        self.database = check_database(database)
        self.objects_url = check_objects(objects) if objects else None
        self.report: Report = report or (lambda line: None)
        self.keys = KeyRing(self.data_dir)

    # -- the whole -------------------------------------------------------------------------
    def run(self) -> list[StoreFigures]:
        if not (self.data_dir / FILE).exists():
            raise NotFound(f"no installation in {self.data_dir} (no {FILE})")
        fenced = try_flock(self.data_dir / SERVING_LOCK, exclusive=True)
        if fenced is None:
            raise Conflict("a server is running on this data directory (`mailkeep serve`): "
                           "stop it first (it would go on taking mail the migration leaves "
                           "behind)")
        try:  # (no server starts meanwhile)
            return self._run()
        finally:
            if fenced >= 0:
                os.close(fenced)

    def _run(self) -> list[StoreFigures]:
        with backends(None, None):
            source = MasterDB(self.data_dir / FILE)
        try:
            records = source.stores.all()
            figures = [self._source_figures(rec) for rec in records]  # (no server on them)
            target = MasterDB(self.data_dir / FILE, url=self.database)
            try:
                self._check_target(target)
                self._copy_master(source, target)
                results = [self._move_store(target, rec, fig)
                           for rec, fig in zip(records, figures, strict=True)]
                # the engines kept for the data directory first: a migration marked finished
                # always leaves its data directory on them
                env = os.environ
                backend_conf.save(
                    self.data_dir, self.database, self.objects_url,
                    endpoint=env.get("AWS_ENDPOINT_URL") if self.objects_url else None,
                    region=env.get("AWS_DEFAULT_REGION") if self.objects_url else None,
                    access_key_id=env.get("AWS_ACCESS_KEY_ID") if self.objects_url else None,
                    secret_access_key=(env.get("AWS_SECRET_ACCESS_KEY") if self.objects_url
                                       else None),
                    password=env.get("PGPASSWORD"))
                target.installation.set_meta(FINISHED, json.dumps(
                    {"at": int(time.time()), "objects": bool(self.objects_url)}))
                target.audit.write(self.actor, "Migrate", stores=len(results),
                                   messages=sum(f.messages for f in results),
                                   objects=bool(self.objects_url))
                return results
            finally:
                target.close()
        finally:
            source.close()

    def _source_figures(self, rec: StoreRecord) -> StoreFigures:
        """The store as the data directory has it, opened to write (which brings its catalog
        up to its segments, and fails if a server holds it)."""
        if not (rec.path / MANIFEST).exists():
            raise NotFound(f"store {rec.name!r} is not found at {rec.path}: attach it where it "
                           "is, or detach it, before migrating")
        manifest = read_manifest(rec.path)
        if self.keys.locked(manifest) and self.passphrase is not None:
            self.keys.unlock(manifest, self.passphrase(rec.name))
        with backends(None, None):
            store = Store.open(rec.path, self.keys, write=True)
            try:
                if not store.writable:
                    raise Conflict(f"store {rec.name!r} is open in another process: stop the "
                                   "server (and every mailkeep command) on this data directory"
                                   " first")
                return _figures(rec, store)
            finally:
                store.close()

    def _check_target(self, target: MasterDB) -> None:
        """A database this installation may move into: empty, or holding what an unfinished
        migration of it copied."""
        from mailkeep.core.archive import one_master_key
        if target.installation.meta(FINISHED) is not None:
            raise MigrationRefused(
                "this database already holds the installation (its migration finished); "
                "servers write to it now, and migrating again would put the data directory's "
                "older state back. Start the servers with --database (and --objects).")
        started = target.installation.meta(STARTED)
        if started is None and target.installation.holds_data():
            raise MigrationRefused("this database already holds an installation's data: "
                                   "migrate into an empty database")
        if started is not None and json.loads(started).get("from") != str(self.data_dir):
            raise MigrationRefused(
                "this database holds an unfinished migration of another data directory ("
                f"{json.loads(started).get('from')}): finish that one, or migrate into an "
                "empty database")
        one_master_key(target, self.keys)  # (the id of this one's, or refused: another's)
        target.installation.set_meta(STARTED, json.dumps(
            {"at": int(time.time()), "from": str(self.data_dir)}), replace=False)

    # -- the master database ------------------------------------------------------------------
    def _copy_master(self, source: MasterDB, target: MasterDB) -> None:
        """Every table both schemas have, row for row, in one transaction; the identities
        go on after the highest id copied; the head-signing key goes along."""
        started = time.monotonic()
        with target.tx():  # (one transaction: the tables, the key, the documents)
            copied, rows, left = target.installation.copy_tables(source)
            self._share_signing_key(target)
            for name in SHARED:  # the configuration every server reads (core/confdocs.py)
                path = self.data_dir / "conf" / name
                if path.exists():
                    target.installation.set_meta(CONF_KEY + name,
                                                 path.read_text(encoding="utf-8"))
        self.report(f"master database: {copied} tables, {rows} rows "
                    f"({time.monotonic() - started:.1f} s)")
        if left:  # (an older version's, which this one no longer reads)
            self.report("left behind, unknown to this version's schema: " + ", ".join(left))

    def _share_signing_key(self, target: MasterDB) -> None:
        """The data directory's head-signing key as the installation's (sealed under the
        master key), so that the heads signed so far and those signed next check with one
        public key."""
        from mailkeep.core.heads import SigningKey
        local = SigningKey(self.data_dir).private(create=False)
        if local is None:
            return
        if not SigningKey(self.data_dir, target).adopt(local):
            raise MigrationRefused("the database signs tree heads with another key than this "
                                   "data directory's: it holds another installation")

    # -- a store -------------------------------------------------------------------------------
    def _move_store(self, target: MasterDB, rec: StoreRecord, source: StoreFigures
                    ) -> StoreFigures:
        done = target.installation.meta(MARK + rec.uuid)
        if done is not None and json.loads(done).get("source") == source.source_mark() \
                and json.loads(done).get("objects") == self.objects_url:
            self.report(f"store {rec.name}: done by an earlier run")
            return StoreFigures(**{**json.loads(done)["figures"], "skipped": True})
        started = time.monotonic()
        self._clear(rec)
        self._seed_catalog(rec)
        with backends(None, None):
            embedded = Store.open(rec.path, self.keys, write=False)
        try:
            with backends(self.database, None):  # the catalog made from the segments
                store = Store.open(rec.path, self.keys, write=True)
                try:
                    if not store.writable:
                        raise Conflict(f"store {rec.name!r} is being written by another "
                                       "process")
                    copy_documents(embedded, store)
                    moved = _figures(rec, store)
                    if isinstance(store.catalog, PgCatalog):
                        store.catalog.analyze()
                finally:
                    store.close()
        finally:
            embedded.close()
        problems = source.differences(moved)
        if problems:
            raise CorruptData(f"store {rec.name!r} did not come out the same in PostgreSQL: "
                              + "; ".join(problems) + " (`mailkeep verify "
                              f"{rec.name}` on the data directory says what is wrong; "
                              f"`mailkeep recover {rec.name}` mends what can be mended; then "
                              "migrate again)")
        self.report(f"store {rec.name}: {moved.messages} messages, {moved.entries} in "
                    f"folders, {moved.leaves} tree leaves: the same in PostgreSQL "
                    f"({time.monotonic() - started:.1f} s)")
        if self.objects_url is not None:
            up = time.monotonic()
            moved.parts, moved.uploaded = self._upload(rec, moved.applied)
            self.report(f"store {rec.name}: {moved.parts} objects, {moved.uploaded} bytes, "
                        f"each read back and compared ({time.monotonic() - up:.1f} s)")
        moved.seconds = round(time.monotonic() - started, 1)
        target.installation.set_meta(MARK + rec.uuid, json.dumps(
            {"source": source.source_mark(), "objects": self.objects_url,
             "figures": asdict(moved)}))
        return moved

    def _clear(self, rec: StoreRecord) -> None:
        """What a cut-off run left of the store: its schemas, its objects."""
        drop_catalogs(self.database, rec.uuid)
        if self.objects_url is not None:
            objects = ObjectStore(self.objects_url)
            left = list(objects.names(f"stores/{rec.uuid}/"))
            if left:
                objects.delete(left)

    def _seed_catalog(self, rec: StoreRecord) -> None:
        """The store's schema in PostgreSQL with the tree's leaves and state as the data
        directory has them, and the dictionaries its catalog keeps (a damaged record may have
        lost one): the segments are read into it next."""
        with backends(None, None):
            store = Store.open(rec.path, self.keys, write=False)
            try:
                size, _root = store.tree.root()
                hashes = store.tree.packed_hashes(size)
                frontier = store.tree.frontier()
                compaction = store.compaction_mark()  # (what the segments were made by)
                dictionaries = store.catalog.dictionaries()
                next_number = store.catalog.next_number()
            finally:
                store.close()
        pg = PgCatalog(self.database, rec.uuid)
        try:
            if not pg.try_lock():
                raise Conflict(f"store {rec.name!r} is being written through the database")
            pg.begin()
            pg.put_leaves(hashes)
            pg.set_meta("tree_leaves", size)
            if frontier is not None:
                pg.set_meta("tree_frontier", frontier)
            if compaction is not None:  # the catalog knows these very segments
                pg.set_meta("compaction", compaction)
            for dict_id, data in dictionaries.items():
                pg.add_dictionary(dict_id, data, 0, 0)
            pg.set_next_number(next_number)  # (numbers handed out are never handed out again)
            pg.commit()
        finally:
            pg.close()

    def _upload(self, rec: StoreRecord, applied: tuple[int, int]) -> tuple[int, int]:
        """The store's segments up to where its catalog ends, as parts named in the catalog;
        then its manifest and its evidence. (parts, bytes)."""
        assert self.objects_url is not None
        objects = ObjectStore(self.objects_url)
        pg = PgCatalog(self.database, rec.uuid)
        parts = sent = 0
        try:
            if not pg.try_lock():
                raise Conflict(f"store {rec.name!r} is being written through the database")
            pg.begin()
            for number in seg.segment_numbers(rec.path / "segments"):
                if number > applied[0]:
                    break
                path = rec.path / "segments" / seg.segment_name(number)
                end = applied[1] if number == applied[0] else path.stat().st_size
                for start, stop in _pieces(path, number, end):
                    name = segment_objects.part_name(rec.uuid, number, start)
                    with open(path, "rb") as fh:
                        fh.seek(start)
                        data = fh.read(stop - start)
                    if len(data) != stop - start:
                        raise CorruptData(f"segment {number} of store {rec.name!r} is shorter "
                                          "than its catalog says")
                    objects.put_new(name, data)
                    if hashlib.sha256(objects.get(name)).digest() != \
                            hashlib.sha256(data).digest():
                        raise CorruptData(f"the object store gave back other bytes for {name}"
                                          " than were written")
                    pg.add_part(number, start, stop, name)
                    parts, sent = parts + 1, sent + len(data)
            pg.commit()
        finally:
            pg.close()
        manifest = json.loads((rec.path / MANIFEST).read_text())
        segment_objects.put_manifest(objects, rec.uuid, manifest)
        for file in (HEADS_FILE, TIMESTAMPS_FILE):
            if (rec.path / file).exists():
                for line in (rec.path / file).read_bytes().splitlines(keepends=True):
                    segment_objects.put_evidence(objects, rec.uuid, file, line)
        return parts, sent


def _pieces(path: Path, number: int, end: int) -> Iterator[tuple[int, int]]:
    """[start, stop) ranges covering the segment's first `end` bytes, each at most
    PART_BYTES unless one record is larger, never cutting a record in two (a read of a record
    is one ranged GET of one part)."""
    start = last = 0
    for item in seg.scan(path, number, with_payload=False):
        stop = item.offset + item.length if isinstance(item, seg.Record) else item.end
        if stop > end:
            break
        if stop - start > PART_BYTES and last > start:
            yield start, last
            start = last
        last = stop
    if end > start:
        yield start, end


def summary(figures: list[StoreFigures]) -> dict[str, Any]:
    return {"stores": [{k: v for k, v in asdict(f).items() if k != "folders"}
                       for f in figures],
            "messages": sum(f.messages for f in figures)}



# -- the way back: one store as a self-contained directory ----------------------------------
def export_store(archive: Archive, rec: StoreRecord, target: Path,
                 report: Report | None = None) -> StoreFigures:
    """The store as a directory of its own (manifest, segments, tree leaves, signed heads and
    time-stamps, and a catalog in SQLite made from the segments), whatever keeps it here
    (PostgreSQL, object storage, local disk): what `mailkeep store attach` takes in any
    installation with the master key it is sealed under. As the store stood at one moment
    (writers go on meanwhile); checked like a migration (messages, folders, tree root);
    built beside `target` and renamed into place, so that it is whole or not there."""
    report = report or (lambda line: None)
    target = target.resolve()
    if target.exists() or target.is_symlink():
        raise Conflict(f"{target} exists: the export makes its directory itself")
    if target.is_relative_to(archive.data_dir) or target.is_relative_to(rec.path.resolve()):
        raise Conflict(f"{target} is inside the data directory: export to a place of its own")
    started = time.monotonic()
    store = archive.open_store(rec, write=False, check_state=False)
    work = target.with_name(f".{target.name}.exporting-{rec.uuid}")
    if work.exists():
        shutil.rmtree(work)
    work.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    work.mkdir(mode=0o700)
    (work / "segments").mkdir(mode=0o700)
    try:
        catalog = store.catalog
        catalog.begin_read()  # one state of the catalog: where the segments end, its leaves
        try:
            expected = _figures(rec, store)
            hashes = store.tree.packed_hashes(int(catalog.get_meta("tree_leaves", "0") or 0))
            for number in store.segments():
                if number > expected.applied[0]:
                    break
                dst = work / "segments" / seg.segment_name(number)
                upto = expected.applied[1] if number == expected.applied[0] else None
                if store.objects is not None and isinstance(catalog, PgCatalog):
                    segment_objects.download(store.objects, catalog, number, dst, upto)
                else:
                    copy_prefix(store.segment_path(number), dst, upto)
        finally:
            catalog.end_read()
        expected.leaves, expected.root = len(hashes), root_of(hashes).hex()  # (read in place)
        write_json_atomic(work / MANIFEST, store.manifest)
        with open(work / LEAVES, "wb") as fh:
            fh.write(b"".join(hashes))
            fh.flush()
            os.fsync(fh.fileno())
        for file in (HEADS_FILE, TIMESTAMPS_FILE):
            copy_heads(store.evidence_path(file), work / file, len(hashes))
        report(f"store {rec.name}: {expected.messages} messages copied; making its catalog "
               "and verifying the copy")
        with backends(None, None):  # its own catalog, in SQLite, made from the segments
            copy = Store.open(work, archive.keys, write=True)
            try:
                copy_documents(store, copy)
                made = _figures(rec, copy)
                checked = verify(copy)
            finally:
                copy.close()
        problems = expected.differences(made) + [p.text for p in checked.problems]
        if problems:
            raise CorruptData(f"the copy of store {rec.name!r} does not match it: "
                              + "; ".join(problems[:10]))
        for path in work.rglob("*"):  # readable by this account only, as the store is
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
        os.chmod(work, 0o700)
        fsync_dir(work / "segments")
        fsync_dir(work)
        os.rename(work, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    made.seconds = round(time.monotonic() - started, 1)
    return made
