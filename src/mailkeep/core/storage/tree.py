"""A store's append-only Merkle tree: one leaf for every record the store ever wrote, hashed as
RFC 9162 (Certificate Transparency 2.0) hashes its log, so that a signed tree head commits to
the whole history and inclusion and consistency proofs can be checked by anyone, offline.

A record's header names its leaf: `"tl": {"i": leaf index}`. The leaf's data is the canonical
JSON (sorted keys, no spaces, ASCII) of `{"i": index, "t": record type, "s": salt, "c":
SHA-256(salt | what the record commits to)}`, both hex; the salt is keyed BLAKE2b (16 bytes,
personalisation "mailkeep-leaf") of the index under the store's tree key, so that a proof
reveals nothing of the leaves
next to it and the records need not carry it. The key is in the manifest (`tree.key`, sealed
under the store key in an encrypted store: a salt known to whoever reads the store directory
would let them test whether a known message is in it). What a record commits to:

- `M` (message bytes): SHA-256 of the raw message; so a proof shows the exact bytes, and the
  salt keeps the leaf from revealing a known message's hash to anyone holding other proofs;
- `E` (a filing): the canonical JSON of `{"n", "m" (the leaf of its message record), "owner",
  "folder", "flags", "idate", "at"}` as filed (a compaction rewrites moved entries and keeps
  what they were filed as under `filed`);
- `T` (a deletion): the canonical JSON of `{"n", "at", "reason"}`;
- `F` (a folder change): the canonical JSON of its header without `tl`;
- `D` (a dictionary): SHA-256 of its payload.

A lawfully deleted message keeps its leaves (the tree only grows); its bytes leave the segments
at the next compaction, and its tombstone's leaf says why.

On disk: `tree.leaves`, the leaf hashes, 32 bytes each, in leaf order. It is appended to at
each commit after the segments are durable, and synced before a head is signed and before a
compaction drops records; a tail lost to a crash is derived again from the records' headers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

LEAVES = "tree.leaves"
HEADS_FILE = "tree.heads"  # the signed heads of the tree, JSON lines (core/heads.py signs them)
TIMESTAMPS_FILE = "tree.timestamps"  # RFC 3161 time-stamps of heads (core/timestamp.py)
HASH = 32


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def commitment(salt: bytes, what: bytes) -> str:
    return hashlib.sha256(salt + what).hexdigest()


def salt_of(key: bytes, index: int) -> bytes:
    # keyed BLAKE2b (a PRF): Python's own, so no cryptographic provider is looked up per call
    return hashlib.blake2b(index.to_bytes(8, "big"), key=key, digest_size=16,
                           person=b"mailkeep-leaf").digest()


def new_leaf(key: bytes, index: int, type_: bytes, what: bytes) -> dict[str, Any]:
    """The data of leaf `index`, a record of type_ committing to `what` (see the module)."""
    salt = salt_of(key, index)
    return {"i": index, "t": type_.decode(), "s": salt.hex(), "c": commitment(salt, what)}


def entry_facts(header: dict[str, Any], m: int | None) -> dict[str, Any]:
    """What an entry record's leaf commits to, from its header (as filed)."""
    filed = header.get("filed") or header
    return {"n": header["n"], "m": m, "owner": filed["owner"], "folder": filed["folder"],
            "flags": filed.get("flags", []), "idate": filed.get("idate"), "at": filed["at"]}


def leaf_of(leaf: dict[str, Any]) -> bytes:
    return leaf_hash(canonical(leaf))


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


class PackedHashes(Sequence[bytes]):
    """Leaf hashes held as the tree.leaves file holds them, HASH bytes each (a partial last
    one left out), read as a sequence of bytes objects."""

    def __init__(self, data: bytes) -> None:
        self._data = data[:len(data) // HASH * HASH]

    def __len__(self) -> int:
        return len(self._data) // HASH

    @overload
    def __getitem__(self, i: int) -> bytes: ...

    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...

    def __getitem__(self, i: int | slice) -> bytes | list[bytes]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("leaf index out of range")
        return self._data[i * HASH:(i + 1) * HASH]

    def __iter__(self) -> Iterator[bytes]:
        data = self._data
        for at in range(0, len(data), HASH):
            yield data[at:at + HASH]


def root_of(hashes: Iterable[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 over leaf hashes (iterative: the perfect subtrees of the size's
    binary decomposition, folded from the right; the hashes read once, in order)."""
    return _fold(_frontier(hashes))


def push(stack: list[tuple[int, bytes]], leaf: bytes) -> None:
    """Add a leaf to a frontier: the perfect subtrees (size, hash) the tree's size decomposes
    into, largest first."""
    item = (1, leaf)
    while stack and stack[-1][0] == item[0]:
        left = stack.pop()
        item = (left[0] * 2, node_hash(left[1], item[1]))
    stack.append(item)


def _frontier(hashes: Iterable[bytes]) -> list[tuple[int, bytes]]:
    stack: list[tuple[int, bytes]] = []
    for h in hashes:
        push(stack, h)
    return stack


def _fold(stack: list[tuple[int, bytes]]) -> bytes:
    if not stack:
        return hashlib.sha256(b"").digest()
    h = stack[-1][1]
    for _size, left in reversed(stack[:-1]):
        h = node_hash(left, h)
    return h


def _subtree(hashes: list[bytes], lo: int, hi: int) -> bytes:
    return _fold(_frontier(hashes[lo:hi]))


def inclusion_path(hashes: list[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1, for leaf `index` of the tree of `hashes`."""
    out: list[bytes] = []
    lo, hi = 0, len(hashes)
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append(_subtree(hashes, lo + k, hi))
            hi = lo + k
        else:
            out.append(_subtree(hashes, lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_path(hashes: list[bytes], m: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1: the tree of the first m leaves is a prefix of the
    tree of all of `hashes`."""
    def sub(lo: int, hi: int, m: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [_subtree(hashes, lo, hi)]
        k = _split(n)
        if m <= k:
            return sub(lo, lo + k, m, whole) + [_subtree(hashes, lo + k, hi)]
        return sub(lo + k, hi, m - k, False) + [_subtree(hashes, lo, lo + k)]
    if not 0 < m <= len(hashes):
        raise ValueError("the older size must be between 1 and the newer one")
    return sub(0, len(hashes), m, True)


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes],
                     root: bytes) -> bool:
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes,
                       path: list[bytes]) -> bool:
    """RFC 9162 2.1.4.2."""
    if m == n:
        return not path and old_root == new_root
    if not 0 < m < n or not path:
        return False
    if m & (m - 1) == 0:  # a power of two: the old root is the first node
        path = [old_root, *path]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class Tree:
    """The leaf file of one store; appended to by the store's writer only."""

    def __init__(self, store_dir: Path, key: bytes) -> None:
        self.path = store_dir / LEAVES
        self.key = key
        self.pending: list[bytes] = []  # leaves of the batch being written
        self._stack: list[tuple[int, bytes]] | None = None
        self._size: int | None = None

    # -- size and root ----------------------------------------------------------------------
    def stored_size(self) -> int:
        try:
            return self.path.stat().st_size // HASH
        except FileNotFoundError:
            return 0

    @property
    def size(self) -> int:
        """Leaves stored and pending."""
        if self._size is None:
            self._size = self.stored_size()
        return self._size + len(self.pending)

    def packed_hashes(self, upto: int | None = None) -> PackedHashes:
        """The stored leaf hashes (the first `upto` of them) as one bytes object read as a
        sequence (what verify and recover walk: a list of a million leaves' hashes takes
        73 MB more)."""
        try:
            with open(self.path, "rb") as fh:
                return PackedHashes(fh.read(None if upto is None else upto * HASH))
        except FileNotFoundError:
            return PackedHashes(b"")

    def hashes(self, upto: int | None = None) -> list[bytes]:
        """The stored leaf hashes (the first `upto` of them)."""
        return list(self.packed_hashes(upto))

    def root(self) -> tuple[int, bytes]:
        """(size, root) of the stored leaves."""
        if self._stack is None:  # read once per open at most (the catalog keeps it: frontier)
            hashes = self.hashes()
            self._size = len(hashes)
            self._stack = _frontier(hashes)
        return self._size or 0, _fold(self._stack)

    def frontier(self) -> str | None:
        """The frontier of the stored leaves as text to keep (None: not computed)."""
        if self._stack is None or self._size is None:
            return None
        return json.dumps([self._size, [[n, h.hex()] for n, h in self._stack]])

    def restore(self, text: str | None) -> None:
        """Take a kept frontier, if it is of the leaves the file holds now."""
        try:
            size, items = json.loads(text or "[null, []]")
            stack = [(int(n), bytes.fromhex(h)) for n, h in items]
        except (ValueError, TypeError):
            return
        if size == self.stored_size() and sum(n for n, _h in stack) == size:
            self._size, self._stack = size, stack

    # -- writing ------------------------------------------------------------------------------
    def leaf(self, index: int, type_: bytes, what: bytes) -> dict[str, Any]:
        return new_leaf(self.key, index, type_, what)

    def add(self, type_: bytes, what: bytes) -> dict[str, Any]:
        """A new leaf for a record being written in this batch: its `tl` header entry."""
        index = self.size
        salt = salt_of(self.key, index)
        # canonical(new_leaf(...)) written out: the writer's path, taken for every record
        data = (f'{{"c":"{commitment(salt, what)}","i":{index},"s":"{salt.hex()}",'
                f'"t":"{type_.decode()}"}}').encode()
        self.pending.append(leaf_hash(data))
        return {"i": index}

    def add_known(self, index: int, type_: bytes, what: bytes) -> None:
        """The leaf of a record whose hash the file lost (replayed after a crash); only the
        next index is taken."""
        if index == self.size:
            self.pending.append(leaf_of(self.leaf(index, type_, what)))

    def drop_pending(self) -> None:
        self.pending.clear()

    def flush(self) -> None:
        """Append the batch's leaves (the segments holding their records are durable)."""
        if not self.pending:
            return
        if self._stack is None:
            self.root()  # once: from then on each batch moves the frontier on
        stored = self.stored_size()
        self._append(stored)
        if stored != self._size:  # the file differed from what was read: read it again
            self._stack = _frontier(self.hashes(stored))
        assert self._stack is not None
        for h in self.pending:
            push(self._stack, h)
        self._size = stored + len(self.pending)
        self.pending.clear()

    def _append(self, stored: int) -> None:
        """The pending leaves after the `stored` ones kept."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size != stored * HASH:
                os.ftruncate(fd, stored * HASH)  # a torn tail of a crashed write
            os.pwrite(fd, b"".join(self.pending), stored * HASH)
        finally:
            os.close(fd)

    def sync(self) -> None:
        if self.path.exists():
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
