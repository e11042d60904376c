"""Checking a store against its Merkle tree and its signed heads (what `mailkeep verify` adds
to the re-reading of the segments). What each check catches:

- every record carrying a leaf (`tl`) must hash to the tree's leaf at its index, and commit to
  what it holds (the message's bytes, the filing, the deletion...): a byte changed in a record
  whose checksum was recomputed is caught here ("does not match leaf i");
- every leaf must have its record in the segments, unless a tombstone names it (a lawful
  deletion, whose records a compaction dropped): a removed record is caught here;
- every signed head (the store's own, this data directory's, and any exported elsewhere) must
  be signed by the key and be the root of the tree's first `size` leaves: a rewritten history,
  even with every hash and the store's own heads recomputed, disagrees with the heads kept
  elsewhere; a store replaced by an older copy has fewer leaves than a head signed later.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mailkeep.core import timestamp
from mailkeep.core.heads import (
    check_signature,
    key_id,
    read_heads_file,
    roots_at,
)
from mailkeep.core.storage.store import Store
from mailkeep.core.storage.tree import HEADS_FILE, canonical
from mailkeep.core.storage.tree_records import TreeReport, check_records


def check_heads(store: Store, report: TreeReport, hashes: Sequence[bytes],
                sources: dict[str, list[dict[str, Any]]], public: Ed25519PublicKey,
                keys: dict[str, Ed25519PublicKey] | None = None) -> None:
    """Each head of each source (name -> heads) signed by `public` (or by the key `keys` names
    for its source: an export carries its key) and a root of this tree. A head signed by a key
    neither is (a store moved from another data directory) is counted, its root checked, its
    signature not."""
    n = len(hashes)
    valid: list[tuple[str, dict[str, Any]]] = []
    ours = key_id(public)
    for name, heads in sources.items():
        own_key = (keys or {}).get(name)
        for head in heads:
            if head.get("store") != store.id:
                continue  # another store's (an export holds every store's)
            report.heads += 1
            at = head.get("at")
            signer = own_key if own_key is not None and head.get("key") == key_id(own_key) \
                else public
            if head.get("key") not in (ours, key_id(signer)):
                report.foreign.add(str(head.get("key"))[:16])
                size = head.get("size")
                if isinstance(size, int) and not isinstance(size, bool) and size >= 0 \
                        and isinstance(head.get("root"), str):
                    valid.append((name, head))
                else:
                    report.problems.append(f"a head in {name} is not a tree head")
                continue
            wrong = check_signature(head, signer)
            if wrong is not None:
                report.problems.append(f"a head in {name} (of {at}) is not valid: {wrong}")
            else:
                valid.append((name, head))
    roots = roots_at(hashes, [int(h["size"]) for _name, h in valid])
    for name, head in valid:
        size = int(head["size"])
        if size > n:
            report.problems.append(
                f"a head in {name} signed at {head['at']} covers {size} leaves but the tree "
                f"has {n}: the store was replaced by an older copy, or its tree was cut")
        elif roots.get(size, b"").hex() != head["root"]:
            report.problems.append(
                f"a head in {name} signed at {head['at']} does not match the tree's first "
                f"{size} leaves: the store's history was rewritten")
        elif report.latest is None or size > report.latest["size"]:
            report.latest = head
    report.unsigned = n - (report.latest["size"] if report.latest else 0)


def check_timestamps(report: TreeReport, stamps: list[tuple[str, str]]) -> None:
    """Each RFC 3161 token must stamp its head (its signature is the authority's: openssl)."""
    for signed, tst in stamps:
        head = json.loads(signed)
        try:
            token = timestamp.check(canonical(head), base64.b64decode(tst))
        except (timestamp.TimestampFailed, ValueError) as exc:
            report.problems.append(f"the time-stamp of the head of {head.get('size')} leaves "
                                   f"is not valid: {getattr(exc, 'message', exc)}")
            continue
        report.timestamped += 1
        report.stamped_at = max(report.stamped_at or "", token.gen_time.strftime(
            "%Y-%m-%dT%H:%M:%SZ"))


def check_store(store: Store, master_heads: list[str], public: Ed25519PublicKey,
                exported: list[dict[str, Any]] | None = None,
                exported_name: str = "the heads given",
                exported_key: Ed25519PublicKey | None = None,
                stamps: list[tuple[str, str]] | None = None) -> TreeReport:
    report = TreeReport()
    hashes = store.tree.packed_hashes()
    report.leaves = len(hashes)
    own, bad = read_heads_file(store.evidence_path(HEADS_FILE))
    report.problems.extend(bad)
    sources = {"the store's tree.heads": own,
               "this data directory's record": [json.loads(t) for t in master_heads]}
    if exported:
        sources[exported_name] = exported
    check_records(store, report, hashes)
    check_timestamps(report, stamps or [])
    check_heads(store, report, hashes, sources, public,
                {exported_name: exported_key} if exported_key is not None else None)
    kept = {(h.get("size"), h.get("root")) for h in own}
    lost = [h for h in sources["this data directory's record"]
            if (h.get("size"), h.get("root")) not in kept]
    if lost:
        report.problems.append(f"{len(lost)} heads this data directory signed are not in the "
                               "store's tree.heads: the store was replaced by an older copy, "
                               "or its heads were edited")
    return report
