"""Signed tree heads: the data directory's Ed25519 key signs, for each store, the size and root
of its Merkle tree (core/storage/tree.py), after a batch once `tree.head_interval` seconds have
passed since the last head, and whenever the archive closes a store it wrote. Every head is
kept twice: in the store (`tree.heads`, one JSON object a line, so that a store carries its
own proofs) and in the master database (so that a store replaced by an older copy of itself is
caught). A head:

    {"v": 1, "store": <store UUID>, "size": <leaves>, "root": <hex>, "at": <epoch seconds>,
     "key": <key id>, "sig": <base64 Ed25519 signature>}

The signature covers `CONTEXT` followed by the canonical JSON of the head without "sig". The
key id is the first 16 hex digits of SHA-256 of the raw public key; the public key is printed
by `mailkeep heads key` as "ed25519:<base64 of the 32 raw bytes>".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from mailkeep.core.errors import InvalidArgument
from mailkeep.core.files import private_dir
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.storage.tree import HEADS_FILE, _fold, canonical, push

if TYPE_CHECKING:
    from mailkeep.core.storage.store import Store

log = logging.getLogger("mailkeep.heads")

KEY_FILE = "tree-signing.key"  # in the data directory's conf/
CONTEXT = b"mailkeep tree head v1\n"
PUBLIC_PREFIX = "ed25519:"


def public_text(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_public_key(text: str) -> Ed25519PublicKey:
    """"ed25519:<base64>", the bare base64 of the 32 bytes, a PEM public key, or the path of a
    file holding one of these."""
    value = text.strip()
    if not value.startswith(PUBLIC_PREFIX) and "BEGIN" not in value and len(value) < 4096:
        path = Path(value)
        try:
            if path.is_file():
                value = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            pass
    if "BEGIN" in value:
        try:
            key = serialization.load_pem_public_key(value.encode())
        except ValueError:
            raise InvalidArgument("the public key is not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidArgument("the public key is not an Ed25519 key")
        return key
    value = value.removeprefix(PUBLIC_PREFIX)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise InvalidArgument("the public key is \"ed25519:\" and the base64 of 32 bytes (as "
                              "`mailkeep heads key` prints it), a PEM key, or a file of one")
    return Ed25519PublicKey.from_public_bytes(raw)


PURPOSE = "tree signing key"  # of the key that seals it in the database
AAD = "installation.tree_signing_key"


class SigningKey:
    """The data directory's head-signing key (conf/tree-signing.key: the 32 raw private bytes,
    hex; made on first use, readable by the server's user only)."""

    def __init__(self, data_dir: Path, master: MasterDB | None = None) -> None:
        self.path = data_dir / "conf" / KEY_FILE
        self.data_dir = data_dir
        self.master = master if master is not None and master.postgres else None
        self._key: Ed25519PrivateKey | None = None

    def _installation_key(self, offered: Ed25519PrivateKey | None = None
                          ) -> Ed25519PrivateKey:
        """An installation on PostgreSQL: one key for every server, kept in the database
        sealed under the master key (they all have), made by the first server to sign (or
        the one `offered`, if the database has none yet)."""
        from mailkeep.core.admin.secrets import open_text, seal_text, secret_key, secret_keys
        assert self.master is not None
        made = (offered or Ed25519PrivateKey.generate()).private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption())
        sealed = self.master.installation.settle(
            "tree_signing_key", seal_text(secret_key(self.data_dir, PURPOSE), made.hex(), AAD))
        raw = open_text(secret_keys(self.data_dir, PURPOSE), sealed, AAD)
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(raw))

    def adopt(self, key: Ed25519PrivateKey) -> bool:
        """Make `key` (a data directory's, moved into PostgreSQL: core/migrate.py) the
        installation's, unless it has one; whether the installation's is this one."""
        raw = serialization.Encoding.Raw
        fmt = serialization.PublicFormat.Raw
        return (self._installation_key(key).public_key().public_bytes(raw, fmt)
                == key.public_key().public_bytes(raw, fmt))

    def private(self, create: bool = True) -> Ed25519PrivateKey | None:
        if self._key is None and self.master is not None:
            self._key = self._installation_key()
        if self._key is None:
            try:
                text = self.path.read_text(encoding="ascii").strip()
                self._key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))
            except FileNotFoundError:
                if not create:
                    return None
                key = Ed25519PrivateKey.generate()
                raw = key.private_bytes(serialization.Encoding.Raw,
                                        serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
                private_dir(self.path.parent)
                tmp = self.path.with_name(self.path.name + ".new")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, raw.hex().encode() + b"\n")
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(tmp, self.path)  # never replaces a key another process made
                except FileExistsError:
                    pass
                os.unlink(tmp)
                return self.private(create=False)
            except ValueError:
                raise InvalidArgument(f"conf/{KEY_FILE} does not hold an Ed25519 key") from None
        return self._key

    def public(self) -> Ed25519PublicKey:
        key = self.private(create=True)
        assert key is not None
        return key.public_key()

    def sign(self, store_uuid: str, size: int, root: bytes, at: int) -> dict[str, Any]:
        key = self.private(create=True)
        assert key is not None
        head: dict[str, Any] = {"v": 1, "store": store_uuid, "size": size, "root": root.hex(),
                                "at": at, "key": key_id(key.public_key())}
        head["sig"] = base64.b64encode(key.sign(CONTEXT + canonical(head))).decode()
        return head


def check_signature(head: dict[str, Any], public: Ed25519PublicKey) -> str | None:
    """None if `head` is well formed and signed by `public`; else what is wrong."""
    try:
        body = {k: head[k] for k in ("v", "store", "size", "root", "at", "key")}
        sig = base64.b64decode(str(head["sig"]), validate=True)
        if not isinstance(body["size"], int) or isinstance(body["size"], bool) \
                or body["size"] < 0 or len(bytes.fromhex(str(body["root"]))) != 32:
            return "it is not a tree head"
    except (KeyError, TypeError, ValueError, binascii.Error):
        return "it is not a tree head"
    if body["key"] != key_id(public):
        return f"it was signed by key {body['key']}, not by the key given ({key_id(public)})"
    try:
        public.verify(sig, CONTEXT + canonical(body))
    except InvalidSignature:
        return "its signature is not valid"
    return None


def parse_heads(lines: Iterable[bytes | str], name: str
                ) -> tuple[list[dict[str, Any]], list[str], str | None]:
    """The heads of JSON lines (a store's tree.heads, or an export), the lines that are not
    heads (named), and the public key an export names on its first line."""
    heads: list[dict[str, Any]] = []
    bad: list[str] = []
    public: str | None = None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict) and "root" in value and "size" in value:
            heads.append(value)
        elif isinstance(value, dict) and isinstance(value.get("publicKey"), str):
            public = public or value["publicKey"]
        else:
            bad.append(f"{name} line {i} is not a tree head")
    return heads, bad, public


def read_heads_file(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The heads of a store's tree.heads, and the lines that are not heads (named)."""
    try:
        with open(path, "rb") as fh:
            heads, bad, _key = parse_heads(fh, path.name)
    except FileNotFoundError:
        return [], []
    return heads, bad


def roots_at(hashes: Sequence[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
    """The tree's root at each of `sizes` (each at most len(hashes)), in one pass."""
    wanted = sorted({s for s in sizes if 0 <= s <= len(hashes)})
    out: dict[int, bytes] = {}
    if 0 in wanted:
        out[0] = _fold([])
    stack: list[tuple[int, bytes]] = []
    w = 0
    while w < len(wanted) and wanted[w] == 0:
        w += 1
    for count, h in enumerate(hashes, 1):
        push(stack, h)
        if w < len(wanted) and wanted[w] == count:
            out[count] = _fold(stack)
            w += 1
    return out


def sign_store(master: MasterDB, key: SigningKey, store: Store, interval_s: float,
               force: bool) -> dict[str, Any] | None:
    """Sign the store's tree head if it grew since the last one and (unless `force`) that one
    is `interval_s` old; the tree is synced first (a head never covers leaves a crash can
    take), the head appended to the store's tree.heads (synced) and to the master database."""
    size, root = store.tree.root()
    if size == 0:
        return None
    latest_text = master.heads.latest(store.id)
    if latest_text is not None:
        latest = json.loads(latest_text)
        if latest.get("size") == size and latest.get("root") == root.hex():
            return None
        if not force and time.time() - float(latest.get("at", 0)) < interval_s:
            return None
    store.tree.sync()
    head = key.sign(store.id, size, root, int(time.time()))
    store.append_evidence(HEADS_FILE, json.dumps(head, sort_keys=True).encode() + b"\n")
    master.heads.add(store.id, size, root.hex(), head["at"], json.dumps(head, sort_keys=True))
    return head
