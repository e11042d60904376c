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
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mailkeep.core.crypto import MASTER_KEY_ENV, key_id, load_master_key, unwrap_key, wrap_key
from mailkeep.core.errors import InvalidArgument, KeyMissing

PASSPHRASE = "passphrase"  # the key_id of a store whose key a passphrase wraps
SCRYPT = {"n": 2**15, "r": 8, "p": 1}  # about 60 ms and 32 MB per try
MIN_PASSPHRASE = 12
OLD = "master.key.old"  # the key a renewal replaced, until the renewal has finished
RETIRED = "master.key.retired-"  # keys renewals replaced, for what was wrapped under them


def _read_key(path: Path) -> bytes | None:
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (OSError, binascii.Error, ValueError):
        return None
    return key if len(key) == 32 else None


def _kek(passphrase: str, kdf: dict[str, Any]) -> bytes:
    salt = base64.b64decode(kdf["salt"])
    return Scrypt(salt=salt, length=32, n=int(kdf["n"]), r=int(kdf["r"]),
                  p=int(kdf["p"])).derive(passphrase.encode("utf-8"))


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
            key = _read_key(path)
            if key is not None and key not in keys:
                keys.append(key)
        return keys

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
