"""Proofs anyone can check offline, with the public key alone (no data directory, no server):

- a message's proof (`mailkeep proof ID --to DIR`): DIR/message.eml, the exact bytes, and
  DIR/proof.json: the signed tree head, the leaf of the message's record (its salt and the
  commitment to the bytes' SHA-256) and of its filing (number, owner, folder, dates, and the
  leaf of the message record it files), each with its inclusion path (RFC 9162) to the head's
  root;
- a consistency proof between two signed heads of a store (`mailkeep heads consistency`):
  the older tree is a prefix of the newer, so history was only appended to.

`verify_message_proof` and `verify_consistency_proof` check them (`mailkeep verify-proof`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mailkeep.core.errors import Conflict, InvalidArgument, NotFound
from mailkeep.core.heads import check_signature
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.storage import tree as mtree
from mailkeep.core.storage.store import Store

FORMAT = "mailkeep-proof-1"
CONSISTENCY_FORMAT = "mailkeep-consistency-1"
MESSAGE_FILE = "message.eml"
PROOF_FILE = "proof.json"
MAX_PROOF_BYTES = 1 << 20  # a proof.json larger than this is not one mailkeep wrote


def _latest_head(master: MasterDB, store: Store, covering: int) -> dict[str, Any]:
    texts = master.heads.of_store(store.id)
    heads = [json.loads(t) for t in texts]
    heads = [h for h in heads if int(h["size"]) > covering]
    if not heads:
        raise Conflict("the message is not under a signed tree head yet: the server signs one "
                       "within tree.head_interval seconds while mail arrives, and whenever it "
                       "closes the store; try again then")
    return max(heads, key=lambda h: (int(h["size"]), int(h["at"])))


def message_proof(master: MasterDB, store: Store, message_id: str, number: int
                  ) -> dict[str, Any]:
    """The proof.json of message `number` of `store` (its bytes are written beside it)."""
    entry_at = store.catalog.entry_record(number)
    loc = store.catalog.entry_location(number)
    if entry_at is None or loc is None:
        raise NotFound(f"message {message_id} does not exist")
    segment, offset, length, _size, cid = loc
    m_rec = store.record_at(segment, offset, length)
    e_header = store.record_at(entry_at[0], entry_at[1], 1 << 20).header
    m_tl, e_tl = m_rec.header.get("tl"), e_header.get("tl")
    if not isinstance(m_tl, dict) or not isinstance(e_tl, dict):
        raise Conflict(f"message {message_id} was archived before its store kept a Merkle "
                       "tree: there is no proof for it")
    raw_sha256 = store.raw_sha256(m_rec, cid)
    if raw_sha256 is None:
        raise Conflict(f"message {message_id} is damaged: see `mailkeep verify`")
    m_index, e_index = int(m_tl["i"]), int(e_tl["i"])
    facts = mtree.entry_facts(e_header, e_tl.get("m", m_index))
    m_leaf = store.tree.leaf(m_index, b"M", raw_sha256)
    e_leaf = store.tree.leaf(e_index, b"E", mtree.canonical(facts))
    head = _latest_head(master, store, max(m_index, e_index))
    hashes = store.tree.hashes(int(head["size"]))
    if len(hashes) < int(head["size"]):
        raise Conflict("the store's tree is shorter than its signed head: run `mailkeep verify`")

    def path(i: int) -> list[str]:
        return [h.hex() for h in mtree.inclusion_path(hashes, i)]

    return {
        "format": FORMAT, "message": message_id, "store": store.id, "head": head,
        "messageLeaf": {"leaf": m_leaf, "path": path(m_index)},
        "entryLeaf": {"leaf": e_leaf, "facts": facts, "path": path(e_index)},
    }


def consistency_proof(master: MasterDB, store: Store, old_size: int, new_size: int | None
                      ) -> dict[str, Any]:
    """Between the signed heads of `store` of old_size and new_size leaves (default: the
    newest)."""
    heads = [json.loads(t) for t in master.heads.of_store(store.id)]
    by_size = {int(h["size"]): h for h in heads}
    if not heads:
        raise NotFound(f"store {store.name!r} has no signed tree head yet")
    new_size = max(by_size) if new_size is None else new_size
    if old_size not in by_size or new_size not in by_size:
        raise NotFound(f"store {store.name!r} has no signed head of "
                       f"{old_size if old_size not in by_size else new_size} leaves (see "
                       "`mailkeep heads list`)")
    if old_size > new_size:
        raise InvalidArgument("the older head must not be larger than the newer one")
    hashes = store.tree.hashes(new_size)
    path = [] if old_size == new_size else mtree.consistency_path(hashes, old_size)
    return {"format": CONSISTENCY_FORMAT, "store": store.id, "old": by_size[old_size],
            "new": by_size[new_size], "path": [h.hex() for h in path]}


@dataclass
class Checked:
    ok: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _hexes(values: Any) -> list[bytes]:
    if not isinstance(values, list) or len(values) > 128:
        raise ValueError("not a path")
    out = [bytes.fromhex(v) for v in values]
    if any(len(b) != 32 for b in out):
        raise ValueError("not a path")
    return out


def _head(doc: dict[str, Any], key: str, public: Ed25519PublicKey, out: Checked
          ) -> dict[str, Any] | None:
    head = doc.get(key)
    if not isinstance(head, dict):
        out.problems.append(f"no signed head ({key})")
        return None
    wrong = check_signature(head, public)
    if wrong is not None:
        out.problems.append(f"the signed head: {wrong}")
        return None
    return head


def _included(name: str, part: Any, head: dict[str, Any], out: Checked) -> dict[str, Any] | None:
    try:
        leaf = part["leaf"]
        index = int(leaf["i"])
        path = _hexes(part["path"])
        included = mtree.verify_inclusion(index, int(head["size"]), mtree.leaf_of(leaf), path,
                                          bytes.fromhex(head["root"]))
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        out.problems.append(f"the {name} leaf or its path is malformed")
        return None
    if not included:
        out.problems.append(f"the {name} leaf is not in the tree the head signs (its "
                            "inclusion path does not lead to the signed root)")
        return None
    return leaf  # type: ignore[no-any-return]


def _open_regular(path: Path) -> int:
    """A descriptor of `path` if it is a regular file (not a link, a pipe, a device)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(0, "not a regular file")
    return fd


def _read_doc(path: Path, what: str) -> dict[str, Any]:
    """A proof's JSON: a regular file of at most MAX_PROOF_BYTES, an object of the format."""
    fd = _open_regular(path)
    try:
        data = os.read(fd, MAX_PROOF_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PROOF_BYTES:
        raise ValueError("too large")
    try:
        doc = json.loads(data)
    except RecursionError:
        raise ValueError("nested too deep") from None
    if not isinstance(doc, dict) or doc.get("format") != what:
        raise ValueError("not one")
    return doc


def verify_message_proof(directory: Path, public: Ed25519PublicKey) -> Checked:
    out = Checked()
    try:
        doc = _read_doc(directory / PROOF_FILE, FORMAT)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        out.problems.append(f"{directory / PROOF_FILE} is not a mailkeep proof ({why})")
        return out
    digest = hashlib.sha256()
    size = 0
    try:
        fd = _open_regular(directory / MESSAGE_FILE)
        try:
            while chunk := os.read(fd, 1 << 20):
                digest.update(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        out.problems.append(f"the message's bytes cannot be read ({exc.strerror})")
        return out
    head = _head(doc, "head", public, out)
    if head is None:
        return out
    if head.get("store") != doc.get("store"):
        out.problems.append("the signed head is another store's")
        return out
    m_leaf = _included("message", doc.get("messageLeaf"), head, out)
    e_leaf = _included("filing", doc.get("entryLeaf"), head, out)
    if m_leaf is None or e_leaf is None:
        return out
    try:
        m_ok = m_leaf.get("t") == "M" and mtree.commitment(
            bytes.fromhex(m_leaf["s"]), digest.digest()) == m_leaf["c"]
        facts = doc["entryLeaf"]["facts"]
        e_ok = e_leaf.get("t") == "E" and mtree.commitment(
            bytes.fromhex(e_leaf["s"]), mtree.canonical(facts)) == e_leaf["c"]
        number = str(doc.get("message", "")).rpartition(":")[2]
        linked = facts.get("m") == m_leaf["i"] and str(facts.get("n")) == number
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        out.problems.append("the proof's leaves are malformed")
        return out
    if not m_ok:
        out.problems.append(f"{MESSAGE_FILE} is not the message the tree holds: its bytes "
                            "were changed")
    if not e_ok:
        out.problems.append("the filing (owner, folder, dates) is not what the tree holds")
    if not linked:
        out.problems.append("the filing does not file this message under this number")
    out.ok = not out.problems
    out.facts = {"number": facts.get("n"), "store": head["store"],
                 "owner": facts.get("owner"), "folder": facts.get("folder"),
                 "archivedAt": facts.get("at"), "bytes": size,
                 "sha256": digest.hexdigest(), "headSize": head["size"], "headAt": head["at"],
                 "root": head["root"], "key": head["key"]}
    return out


def verify_consistency_proof(path: Path, public: Ed25519PublicKey) -> Checked:
    out = Checked()
    try:
        doc = _read_doc(path, CONSISTENCY_FORMAT)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        out.problems.append(f"{path} is not a mailkeep consistency proof ({why})")
        return out
    old, new = _head(doc, "old", public, out), _head(doc, "new", public, out)
    if old is None or new is None:
        return out
    if old.get("store") != new.get("store"):
        out.problems.append("the two heads are of different stores")
        return out
    try:
        ok = mtree.verify_consistency(int(old["size"]), int(new["size"]),
                                      bytes.fromhex(old["root"]), bytes.fromhex(new["root"]),
                                      _hexes(doc.get("path")))
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        out.problems.append("the proof is malformed")
        return out
    if not ok:
        out.problems.append(f"the tree of {new['size']} leaves does not extend the tree of "
                            f"{old['size']}: history was rewritten between the two heads")
    out.ok = not out.problems
    out.facts = {"store": old["store"], "oldSize": old["size"], "oldAt": old["at"],
                 "newSize": new["size"], "newAt": new["at"], "key": old["key"]}
    return out
