"""Renewing the master key: every attached store's key and every sealed secret wrapped anew under
a new master key, safe against a crash at any point.

1. The new key is written to conf/master.key.new.
2. Each encrypted store's manifest gets the new wrapping of its key beside the old one
   ("next"); the store opens with either.
3. The commit: the current key is kept as conf/master.key.old, then master.key.new replaces
   master.key (one rename). Before it, the old key is the master key and opens everything;
   after it, the new one does, and the old one still opens what is not re-wrapped yet.
4. Each manifest's new wrapping becomes its only one; the secrets are sealed again
   (`reseal`, given by the caller: profiles, the notification mail, connections).
5. master.key.old is kept as master.key.retired-<its id>: detached stores and backups made
   before the renewal still open with it.

A renewal cut off before the commit is undone by the next one (step 1 again): its new key, the
"next" wrappings and a master.key.old that still equals master.key go. One cut off after it
(master.key.old differs from master.key) is finished by the next one before it starts its own.
Until then the leftovers open nothing that was not open before. One renewal runs at a time
(the lock locks/renewal.lock of the data directory).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailkeep.core.admin.locks import RunLock, lock_file
from mailkeep.core.crypto import (
    MASTER_KEY_ENV,
    key_id,
    new_store_key,
    unwrap_key,
    wrap_key,
    write_key,
)
from mailkeep.core.errors import Conflict, KeyMissing
from mailkeep.core.files import fsync_dir, write_json_atomic
from mailkeep.core.keys import OLD, PASSPHRASE, RETIRED, KeyRing, read_key
from mailkeep.core.storage.manifest import MANIFEST, read_manifest

NEW = "master.key.new"
Log = Callable[[str], None]


def _encrypted(path: Path) -> dict[str, Any] | None:
    """A store's manifest if its key is wrapped under a master key (not a passphrase)."""
    manifest = read_manifest(path)
    enc = manifest.get("encryption")
    return manifest if enc and enc.get("key_id") != PASSPHRASE else None


def _write(path: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(path / MANIFEST, manifest)


def _undo_uncommitted(keys: KeyRing, stores: list[Path], log: Log) -> None:
    """A renewal cut off before its commit: its new key, wrappings and key copies go."""
    leftovers = [*keys.conf.glob(f".{NEW}.*.tmp"), *keys.conf.glob(f".{OLD}.*.tmp")]
    old = keys.conf / OLD  # kept just before a commit that did not happen
    if old.exists() and read_key(old) == keys.master():
        leftovers.append(old)
    for path in leftovers:  # key files of a renewal cut off, none of them ever in force
        path.unlink()
    new = keys.conf / NEW
    if not new.exists():
        if leftovers:
            fsync_dir(keys.conf)
        return
    for path in stores:
        manifest = _encrypted(path)
        if manifest is not None and "next" in manifest["encryption"]:
            del manifest["encryption"]["next"]
            _write(path, manifest)
    new.unlink()
    fsync_dir(keys.conf)
    log("An earlier renewal had stopped before it took effect: undone.")


def _finish(keys: KeyRing, stores: list[Path], reseal: Callable[[], None], log: Log) -> int:
    """Steps 4 and 5 of a committed renewal; how many store keys it wrapped anew."""
    old_path = keys.conf / OLD
    current = keys.master()
    if current is None:
        raise KeyMissing("the master key is missing: the renewal cannot be finished")
    rewrapped = 0
    for path in stores:
        manifest = _encrypted(path)
        if manifest is None:
            continue
        enc = manifest["encryption"]
        nxt = enc.get("next")
        if enc["key_id"] == key_id(current) and not nxt:
            continue
        if not nxt or nxt.get("key_id") != key_id(current):
            # Wrapped under an older key only (attached meanwhile): wrap it anew now.
            store_key = keys.store_key(manifest)
            assert store_key is not None
            nxt = {"key_id": key_id(current), "wrapped_key": wrap_key(current, store_key)}
        manifest["encryption"] = {**{k: v for k, v in enc.items() if k != "next"}, **nxt}
        _write(path, manifest)
        rewrapped += 1
    reseal()
    old = read_key(old_path)
    if old is not None:
        retired = keys.conf / (RETIRED + key_id(old))
        os.replace(old_path, retired)
        fsync_dir(keys.conf)
        log(f"The previous master key is kept as conf/{retired.name} (detached stores and "
            "backups made before the renewal open with it).")
    return rewrapped


def renew(keys: KeyRing, stores: list[Path], reseal: Callable[[], None], log: Log,
          checkpoint: Callable[[], None] = lambda: None) -> tuple[str, int]:
    """Renew the master key of the data directory whose attached stores are at `stores`;
    the new key's id, and how many store keys were wrapped under it. `checkpoint` is called
    between steps (a cancel stops there: before the commit nothing opens otherwise than
    before, and the next renewal clears what was made; after it the renewal finishes)."""
    if os.environ.get(MASTER_KEY_ENV):
        raise Conflict(f"The master key comes from {MASTER_KEY_ENV}: mailkeep cannot replace "
                       "it there. Set the new key there yourself (and keep the old one to "
                       "open what it wraps).")
    with keys_still(keys.data_dir, "Another renewal of the master key, or a backup, is "
                    "running: renew the key once it has ended."):
        return _renew(keys, stores, reseal, log, checkpoint)


@contextmanager
def keys_still(data_dir: Path, busy: str) -> Iterator[None]:
    """While this holds, the master key is not renewed (a renewal holds it too): a backup
    copies conf/ and the stores' manifests as one. Conflict(busy) if it is held."""
    lock = RunLock.acquire(lock_file(data_dir, "renewal"))
    if lock is None:
        raise Conflict(busy)
    try:
        yield
    finally:
        lock.release()


def _renew(keys: KeyRing, stores: list[Path], reseal: Callable[[], None], log: Log,
           checkpoint: Callable[[], None]) -> tuple[str, int]:
    old = keys.conf / OLD
    if old.exists() and read_key(old) != keys.master():
        log("An earlier renewal took effect but did not finish: finishing it first.")
        _finish(keys, stores, reseal, log)
    _undo_uncommitted(keys, stores, log)
    current = keys.master(create=True)
    assert current is not None
    fresh = new_store_key()
    checkpoint()
    write_key(keys.conf / NEW, fresh)
    fsync_dir(keys.conf)
    log(f"New master key {key_id(fresh)} made (replacing {key_id(current)}).")
    for path in stores:
        manifest = _encrypted(path)
        if manifest is None:
            continue
        enc = manifest["encryption"]
        if enc["key_id"] != key_id(current):
            continue  # wrapped under an older key: _finish wraps it once the new one is in
        store_key = unwrap_key(current, enc["wrapped_key"])
        enc["next"] = {"key_id": key_id(fresh), "wrapped_key": wrap_key(fresh, store_key)}
        _write(path, manifest)
        log(f"Store {manifest['name']}: its key is wrapped under the new master key too.")
        checkpoint()
    write_key(keys.conf / OLD, current)
    fsync_dir(keys.conf)
    os.replace(keys.conf / NEW, keys.conf / "master.key")  # the commit
    fsync_dir(keys.conf)
    log("The new master key is in force.")
    rewrapped = _finish(keys, stores, reseal, log)
    log("Every store key and sealed secret is now wrapped under the new master key only.")
    return key_id(fresh), rewrapped
