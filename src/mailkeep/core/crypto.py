"""Encryption at rest: a master key per data directory wraps one random key per store.

Records are sealed with AES-256-GCM (random 96-bit nonce, 16-byte tag appended). In an
encrypted store messages are identified by HMAC-SHA256 under a key derived from the store
key, so the catalog does not reveal which known messages a store holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from mailkeep.core.errors import KeyMissing
from mailkeep.core.files import fsync_dir

MASTER_KEY_ENV = "MAILKEEP_MASTER_KEY"
NONCE_BYTES = 12
TAG_BYTES = 16
CHUNK_BYTES = 1 << 20


def _decode_key(text: bytes, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise KeyMissing(f"{where} is not a master key (32 bytes, base64-encoded)")
    return key


def load_master_key(data_dir: Path, create: bool) -> bytes | None:
    """The master key from $MAILKEEP_MASTER_KEY (base64) or <data>/conf/master.key."""
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        return _decode_key(env.encode(), MASTER_KEY_ENV)
    path = data_dir / "conf" / "master.key"
    if path.exists():
        return _decode_key(path.read_bytes(), f"master key file {path}")
    if not create:
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    if not write_key(path, key, exclusive=True):  # another process made one first
        return _decode_key(path.read_bytes(), f"master key file {path}")
    return key


def write_key(path: Path, key: bytes, exclusive: bool = False) -> bool:
    """A key file (base64, mode 0600) written whole and made durable before it appears at
    `path`. Exclusive: only if there is none yet (False when there was one)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.b64encode(key) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # unlike a rename, fails if the file exists
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def key_id(master_key: bytes) -> str:
    """A short public fingerprint, so a store can say which master key it needs."""
    return hashlib.sha256(b"mailkeep-key-id" + master_key).hexdigest()[:16]


def wrap_key(master_key: bytes, store_key: bytes) -> str:
    return base64.b64encode(aes_key_wrap(master_key, store_key)).decode()


def unwrap_key(master_key: bytes, wrapped: str) -> bytes:
    try:
        return aes_key_unwrap(master_key, base64.b64decode(wrapped))
    except InvalidUnwrap:
        raise KeyMissing("the master key here does not open this store") from None


def new_store_key() -> bytes:
    return secrets.token_bytes(32)


class Sealer:
    """Seals and opens record payloads with one store key."""

    def __init__(self, store_key: bytes) -> None:
        self._key = store_key
        self._aead = AESGCM(store_key)
        self._mac_key = hmac.new(store_key, b"mailkeep content id", hashlib.sha256).digest()

    def content_id(self, raw: bytes) -> bytes:
        return hmac.new(self._mac_key, raw, hashlib.sha256).digest()

    def content_hasher(self) -> hmac.HMAC:
        return hmac.new(self._mac_key, digestmod=hashlib.sha256)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        return self._aead.decrypt(nonce, body, aad)

    def seal_stream(self, chunks: Iterator[bytes], aad: bytes) -> Iterator[bytes]:
        """The same format as seal(), for payloads too large to hold in memory."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        enc = Cipher(algorithms.AES(self._key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        yield nonce
        for chunk in chunks:
            yield enc.update(chunk)
        yield enc.finalize() + enc.tag

    def open_region(self, fh: BinaryIO, start: int, length: int, aad: bytes) -> Iterator[bytes]:
        """Inverse of seal_stream over a file region; raises InvalidTag after the last chunk."""
        fh.seek(start)
        nonce = fh.read(NONCE_BYTES)
        fh.seek(start + length - TAG_BYTES)
        tag = fh.read(TAG_BYTES)
        dec = Cipher(algorithms.AES(self._key), modes.GCM(nonce, tag)).decryptor()
        dec.authenticate_additional_data(aad)
        fh.seek(start + NONCE_BYTES)
        remaining = length - NONCE_BYTES - TAG_BYTES
        while remaining > 0:
            chunk = fh.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                raise EOFError("sealed payload ends early")
            remaining -= len(chunk)
            yield dec.update(chunk)
        yield dec.finalize()
