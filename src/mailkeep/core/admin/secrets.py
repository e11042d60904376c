"""Secrets kept at rest (a mailbox password, the notification mail's password): sealed with
AES-GCM under a key derived from the data directory's master key, one key per purpose, and
bound by `aad` to the record they belong to, so a sealed value cannot be moved to another."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailkeep.core.crypto import Sealer
from mailkeep.core.keys import KeyRing


def _derive(master: bytes, purpose: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, None, f"mailkeep {purpose}".encode()).derive(master)


def secret_key(data_dir: Path, purpose: str) -> bytes:
    """The key that seals for one purpose now; creates the master key when there is none
    (OSError if it cannot be written)."""
    master = KeyRing(data_dir).master(create=True)
    assert master is not None
    return _derive(master, purpose)


def secret_keys(data_dir: Path, purpose: str) -> list[bytes]:
    """The keys a sealed value of this purpose may be sealed under: the current master key's
    first, then those of keys a renewal replaced (what it has not re-sealed yet)."""
    return [_derive(m, purpose) for m in KeyRing(data_dir).masters()]


def seal_text(key: bytes, text: str, aad: str) -> str:
    return base64.b64encode(Sealer(key).seal(text.encode(), aad.encode())).decode()


def open_text(keys: bytes | list[bytes], sealed: str, aad: str) -> str:
    """The text, opened with the first of the keys that opens it; ValueError when none does
    (another master key, or a value that was altered or moved)."""
    for key in [keys] if isinstance(keys, bytes) else keys:
        try:
            return Sealer(key).open(base64.b64decode(sealed, validate=True),
                                    aad.encode()).decode()
        except InvalidTag:
            continue
    raise ValueError("InvalidTag")
