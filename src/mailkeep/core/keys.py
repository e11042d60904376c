"""The keys of a data directory, and what opens an encrypted store.

The master key (conf/master.key, or MAILKEEP_MASTER_KEY) wraps each encrypted store's own key
(in the store's manifest) and the keys that seal secrets (core.admin.secrets). A store can
instead have its key wrapped under a passphrase (a store to hand to someone else): it opens
once UnlockStore has unlocked it in the process. Renewing the master key leaves the keys it
replaced in conf/ (master.key.old while the renewal finishes, then master.key.retired-<id>),
so stores and backups wrapped under them still open; the KeyRing tries each key by its id.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mailkeep.core.crypto import MASTER_KEY_ENV, key_id, load_master_key, unwrap_key, wrap_key
from mailkeep.core.errors import Conflict, CorruptData, InvalidArgument, KeyMissing

PASSPHRASE = "passphrase"  # the key_id of a store whose key a passphrase wraps
SCRYPT = {"n": 2**15, "r": 8, "p": 1}  # about 60 ms and 32 MB per try
MIN_PASSPHRASE = 12
FREE_TRIES = 5  # wrong passphrases for a store before each next try must wait
MAX_WAIT_S = 900  # the longest wait: 1 s after the 5th wrong try, doubling, up to this
OLD = "master.key.old"  # the key a renewal replaced, until the renewal has finished
RETIRED = "master.key.retired-"  # keys renewals replaced, for what was wrapped under them


def read_key(path: Path) -> bytes | None:
    """The key a key file holds; None if it holds none (absent, cut short, not a key)."""
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (OSError, binascii.Error, ValueError):
        return None
    return key if len(key) == 32 else None


MAX_SCRYPT = {"n": 2**20, "r": 16, "p": 4}  # a manifest may ask for no more work than this


def _kek(passphrase: str, kdf: dict[str, Any]) -> bytes:
    """The key a passphrase gives under the manifest's scrypt parameters. A store may come
    from anyone: parameters beyond MAX_SCRYPT (minutes of work, gigabytes) are refused."""
    try:
        salt = base64.b64decode(kdf["salt"], validate=True)
        n, r, p = (int(kdf[k]) for k in ("n", "r", "p"))
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise CorruptData("the store's key derivation parameters cannot be read") from None
    if kdf.get("name") != "scrypt" or not 16 <= len(salt) <= 64 or n < 2 or n & (n - 1) or \
            not (n <= MAX_SCRYPT["n"] and 1 <= r <= MAX_SCRYPT["r"] and 1 <= p <= MAX_SCRYPT["p"]):
        raise CorruptData(f"the store's key derivation (scrypt n={n}, r={r}, p={p}) is not one "
                          "mailkeep makes or accepts")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def passphrase_encryption(store_key: bytes, passphrase: str) -> dict[str, Any]:
    """A manifest's encryption entry for a store whose key this passphrase wraps."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidArgument(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    kdf = {"name": "scrypt", "salt": base64.b64encode(secrets.token_bytes(16)).decode(),
           **SCRYPT}
    return {"algorithm": "AES-256-GCM", "key_id": PASSPHRASE, "kdf": kdf,
            "wrapped_key": wrap_key(_kek(passphrase, kdf), store_key)}


def unlock(encryption: dict[str, Any], passphrase: str) -> bytes:
    """The store key a passphrase unwraps; InvalidArgument when it is not the passphrase."""
    if encryption.get("key_id") != PASSPHRASE:
        raise InvalidArgument("this store is sealed under the master key, not a passphrase")
    try:
        return unwrap_key(_kek(passphrase, encryption["kdf"]), encryption["wrapped_key"])
    except KeyMissing:
        raise InvalidArgument("the passphrase does not open this store") from None


class KeyRing:
    """The keys that open this data directory's encrypted stores: its master keys (the
    current one, and those a renewal replaced) and the store keys unlocked by passphrase in
    this process (by store id: the manifest's uuid)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.unlocked: dict[str, bytes] = {}
        self._failures: dict[str, tuple[int, float]] = {}  # store id -> (wrong tries, until)
        self.clock = time.monotonic  # what the waits after wrong passphrases count on
        self._trying: dict[str, threading.Lock] = {}

    def unlock(self, manifest: dict[str, Any], passphrase: str) -> None:
        """Unlock a passphrase store in this process. A wrong passphrase is InvalidArgument;
        after FREE_TRIES of them in a row, the next try must wait (Conflict says how long),
        doubling each time: guessing costs time, not only scrypt's 60 ms."""
        sid = str(manifest.get("id"))
        with self._trying.setdefault(sid, threading.Lock()):  # one try at a time per store
            count, until = self._failures.get(sid, (0, 0.0))
            now = self.clock()
            if now < until:
                raise Conflict(f"Too many wrong passphrases for this store: try again in "
                               f"{math.ceil(until - now)} s.")
            try:
                key = unlock(manifest.get("encryption") or {}, passphrase)
            except InvalidArgument:
                count += 1
                wait = 0.0 if count < FREE_TRIES else min(2.0 ** (count - FREE_TRIES),
                                                            MAX_WAIT_S)
                self._failures[sid] = (count, self.clock() + wait)
                raise
            self._failures.pop(sid, None)
            self.unlocked[sid] = key

    @property
    def conf(self) -> Path:
        return self.data_dir / "conf"

    def master(self, create: bool = False) -> bytes | None:
        """The current master key (made on first use with create)."""
        return load_master_key(self.data_dir, create)

    def masters(self) -> list[bytes]:
        """Every master key known here, the current one first."""
        keys: list[bytes] = []
        current = self.master()
        if current is not None:
            keys.append(current)
        paths = [self.conf / OLD] + sorted(self.conf.glob(RETIRED + "*"), reverse=True)
        for path in paths:
            key = read_key(path)
            if key is not None and key not in keys:
                keys.append(key)
        return keys

    def locked(self, manifest: dict[str, Any]) -> bool:
        """Whether the store is sealed under a passphrase not given in this process."""
        enc = manifest.get("encryption") or {}
        return enc.get("key_id") == PASSPHRASE and str(manifest.get("id")) not in self.unlocked

    def store_key(self, manifest: dict[str, Any]) -> bytes | None:
        """The key of a store (None for a store that is not encrypted); KeyMissing saying
        what would open it."""
        enc = manifest.get("encryption")
        if not enc:
            return None
        name = manifest.get("name", "?")
        if enc.get("key_id") == PASSPHRASE:
            key = self.unlocked.get(str(manifest.get("id")))
            if key is None:
                raise KeyMissing(f"store {name!r} is sealed under a passphrase: unlock it "
                                 "with UnlockStore")
            return key
        wrappings = [enc] + ([enc["next"]] if isinstance(enc.get("next"), dict) else [])
        for master in self.masters():
            for w in wrappings:
                if w.get("key_id") == key_id(master):
                    return unwrap_key(master, w["wrapped_key"])
        raise KeyMissing(f"store {name!r} is encrypted and needs master key {enc['key_id']}: "
                         f"set {MASTER_KEY_ENV} or put the key in conf/master.key of the data "
                         "directory")
