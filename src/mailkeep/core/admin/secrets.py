"""Secrets kept at rest (a mailbox password, the notification mail's password): sealed with
AES-GCM under a key derived from the data directory's master key, one key per purpose, and
bound by `aad` to the record they belong to, so a sealed value cannot be moved to another."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailkeep.core.crypto import Sealer, load_master_key


def secret_key(data_dir: Path, purpose: str) -> bytes:
    """The key for one purpose; creates the master key when there is none (OSError if it
    cannot be written)."""
    master = load_master_key(data_dir, create=True)
    assert master is not None
    return HKDF(hashes.SHA256(), 32, None, f"mailkeep {purpose}".encode()).derive(master)


def seal_text(key: bytes, text: str, aad: str) -> str:
    return base64.b64encode(Sealer(key).seal(text.encode(), aad.encode())).decode()


def open_text(key: bytes, sealed: str, aad: str) -> str:
    """The text; ValueError when it cannot be opened with this key (another master key, or a
    value that was altered or moved)."""
    try:
        return Sealer(key).open(base64.b64decode(sealed, validate=True), aad.encode()).decode()
    except InvalidTag:
        raise ValueError("InvalidTag") from None
