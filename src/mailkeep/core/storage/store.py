"""An archive store: a self-contained directory of segments, a manifest and a catalog.

Commit order: append records, fsync the segment, then commit the catalog. On open, the writer
re-applies valid records past the catalog's offset and cuts a torn tail, so the catalog never
points at bytes that are not durable and an acknowledged message is never lost. This module
opens, creates, locks and closes a store; its parts are in store_base.py, store_read.py,
store_write.py and store_replay.py.
"""

from __future__ import annotations

import base64
import fcntl
import os
import secrets
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from mailkeep.core.backends import database_url, objects_url
from mailkeep.core.crypto import Sealer, key_id, new_store_key, wrap_key
from mailkeep.core.errors import Conflict, KeyMissing
from mailkeep.core.files import append_synced, fsync_dir, write_json_atomic
from mailkeep.core.keys import KeyRing, passphrase_encryption
from mailkeep.core.objects import ObjectStore
from mailkeep.core.storage import segment_objects
from mailkeep.core.storage.manifest import FORMAT, MANIFEST, read_manifest
from mailkeep.core.storage.store_base import (
    COMPACT_DIR,
    COMPACTION_MARK,
    OLD_SEGMENTS_DIR,
    SEGMENT_BYTES,
    Added,
    keep_damaged,
)
from mailkeep.core.storage.store_replay import Replay
from mailkeep.core.storage.tree import Tree

TREE_KEY_AAD = b"tree-key"
LOCK_WAIT_MS = 30_000  # for another server's batch to end, before a write is refused

__all__ = ["COMPACTION_MARK", "COMPACT_DIR", "MANIFEST", "OLD_SEGMENTS_DIR", "SEGMENT_BYTES",
           "Added", "Store", "keep_damaged", "read_manifest"]


class Store(Replay):
    """One store, opened for reading, or for writing when this process holds its lock."""

    def __init__(self, path: Path, manifest: dict[str, Any], store_key: bytes | None,
                 write: bool) -> None:
        self.path = path
        self.manifest = manifest
        self._store_key = store_key
        self._lock_fd = None
        if write:
            self._lock_fd = self._try_lock()
        self.writable = self._lock_fd is not None
        self._sealer = Sealer(store_key) if store_key is not None else None
        self.recovered_on_open = []
        self.catalog_url = database_url()
        objects = objects_url()
        self.objects = ObjectStore(objects) if objects else None
        self._uploaded = (1, 0)
        if self.writable:
            self._finish_compaction()
        self.catalog = self._open_catalog()
        self._holding = False
        if self.writable and self.catalog_url is not None:
            catalog = self._pg_catalog()
            if self.objects is not None:  # several servers write it, a batch at a time
                got = catalog.lock(LOCK_WAIT_MS)
            else:  # one server has its segments: the writer holds it while it is open
                got = catalog.try_lock()
            if not got:
                self.writable = self._fresh_catalog = False
                self.catalog.readonly = True
                self.close_lock()
            self._holding = got
        self._packer = None
        self._writer = None
        self._in_batch = False
        self._fds = {}
        self._index_cache = {}
        self.lost_entries = []
        self.lost_leaves = {}
        self.undecodable = set()
        try:
            if self.catalog_url is not None:  # its leaves in the catalog
                from mailkeep.core.storage.catalog_pg import CatalogTree
                self.tree = CatalogTree(self._pg_catalog(), self._tree_key())
            else:
                self.tree = Tree(path, self._tree_key())
            self.tree.restore(self.catalog.get_meta("tree_frontier"))
            if self.writable:
                self.restore_tree()
                self.replay_tail()
                mark = self.compaction_mark()
                if self._fresh_catalog and mark is not None:  # rebuilt from these segments
                    self.catalog.set_meta("compaction", mark)
                if self.objects is not None:
                    self.pause_writing()
        except BaseException:  # (an object store out of reach, ...): nothing left open
            self.catalog.close()
            self.close_lock()
            raise

    # -- lifecycle ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, name: str, master_key: bytes | None, encrypt: bool,
               passphrase: str | None = None, created: float | None = None,
               store_id: str | None = None) -> Store:
        """A new store at path; encrypted under the master key, or (with a passphrase) under a
        key the passphrase wraps. `created`: when (the manifest keeps it; default now);
        `store_id`: its id (default a new one)."""
        if (path / MANIFEST).exists():
            raise Conflict(f"{path} already holds a store (to use it: `mailkeep store attach "
                           f"{path}`)")
        if path.exists() and any(path.iterdir()):
            raise Conflict(f"{path} exists and is not empty")
        manifest: dict[str, Any] = {
            "format": FORMAT, "id": store_id or str(uuid.uuid4()), "name": name,
            "created": int(time.time() if created is None else created), "codec": "zstd",
            "encryption": None}
        store_key = None
        if passphrase is not None:
            store_key = new_store_key()
            manifest["encryption"] = passphrase_encryption(store_key, passphrase)
        elif encrypt:
            if master_key is None:
                raise KeyMissing("no master key to encrypt the store with")
            store_key = new_store_key()
            manifest["encryption"] = {"algorithm": "AES-256-GCM", "key_id": key_id(master_key),
                                      "wrapped_key": wrap_key(master_key, store_key)}
        # Built aside and renamed into place, so a crash leaves either no store or a whole one.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.creating-*"):
            # an earlier creation cut off by a crash holds its manifest and an empty segments
            # directory, nothing else; anything more is someone's store: left alone
            inside = {p.name for p in stale.iterdir()} if stale.is_dir() else {"?"}
            if inside <= {MANIFEST, "segments"} and not any((stale / "segments").glob("*")):
                shutil.rmtree(stale, ignore_errors=True)
        tmp = path.with_name(f".{path.name}.creating-{manifest['id']}")
        tmp.mkdir(mode=0o700)
        (tmp / "segments").mkdir(mode=0o700)
        write_json_atomic(tmp / MANIFEST, manifest)
        if path.exists():
            path.rmdir()  # empty, checked above
        os.rename(tmp, path)
        fsync_dir(path.parent)
        store = cls(path, manifest, store_key, write=True)
        if store.objects is not None and "tree" not in manifest:
            segment_objects.put_manifest(store.objects, store.id, store.manifest)
        return store

    @classmethod
    def open(cls, path: Path, keys: KeyRing, write: bool = True) -> Store:
        manifest = read_manifest(path)
        return cls(path, manifest, keys.store_key(manifest), write)

    def _try_lock(self) -> int | None:
        try:
            fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
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
            self.tree.sync()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self.catalog.close()
        self.close_lock()

    def _tree_key(self) -> bytes:
        """The key the tree's salts come from (core/storage/tree.py), made on the first open
        for writing; `complete` says whether every record has a leaf (not in a store written
        before stores had trees)."""
        entry = self.manifest.get("tree")
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            raw = base64.b64decode(entry["key"])
            return self._sealer.open(raw, TREE_KEY_AAD) if self._sealer is not None else raw
        key = secrets.token_bytes(32)
        if self.writable:
            stored = self._sealer.seal(key, TREE_KEY_AAD) if self._sealer is not None else key
            self.manifest["tree"] = {"v": 1, "key": base64.b64encode(stored).decode(),
                                     "complete": not self.segments()}
            self.save_manifest()
        return key  # (a reader of a store no writer has opened since: it adds no leaf)

    def rename(self, name: str) -> None:
        self.manifest["name"] = name
        self.save_manifest()

    def append_evidence(self, file: str, line: bytes) -> None:
        """A line of the store's own evidence (tree.heads, tree.timestamps): appended to its
        file, synced; with the segments in object storage, an object of its own too, so that
        every server has it (evidence_path)."""
        append_synced(self.path / file, line)
        if self.objects is not None:
            segment_objects.put_evidence(self.objects, self.id, file, line)

    def evidence_path(self, file: str) -> Path:
        """The file of the store's evidence, whole: with the segments in object storage,
        made again from its objects (every server's lines)."""
        path = self.path / file
        if self.objects is not None:
            segment_objects.fetch_evidence(self.objects, self.id, file, path)
        return path

    def save_manifest(self) -> None:
        """The manifest as it is now: in the store directory, and in the object store as its
        next version (segment_objects.put_manifest)."""
        write_json_atomic(self.path / MANIFEST, self.manifest)
        if self.objects is not None:
            segment_objects.put_manifest(self.objects, self.id, self.manifest)
