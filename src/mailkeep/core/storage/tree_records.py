"""Checking a store's records against its Merkle tree (core/storage/tree.py): each record
that carries a leaf must hash to it and commit to what it holds; each leaf must have its record,
unless a tombstone names it (a lawful deletion) or recover declared it lost. The signed heads
are checked above the storage layer (core/treecheck.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailkeep.core.storage import segments as seg
from mailkeep.core.storage import tree as mtree
from mailkeep.core.storage.store import Store

COMPACTED_REASON = "compacted: numbers up to here are used"
SHOWN = 5  # leaves named in one problem line


@dataclass
class TreeReport:
    leaves: int = 0
    records: int = 0  # records checked against their leaves
    heads: int = 0  # signed heads checked
    latest: dict[str, Any] | None = None  # the newest valid head
    unsigned: int = 0  # leaves past the newest head
    problems: list[str] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # leaves without a record, unaccounted
    declared_lost: int = 0  # leaves recover declared lost
    foreign: set[str] = field(default_factory=set)  # ids of other keys that signed heads
    timestamped: int = 0  # heads with an RFC 3161 time-stamp that stamps them
    stamped_at: str | None = None  # the newest of their times

    def shown(self) -> dict[str, Any]:
        return {"leaves": self.leaves, "records": self.records, "signedHeads": self.heads,
                "latestHead": self.latest, "leavesAfterLatestHead": self.unsigned,
                "declaredLost": self.declared_lost, "otherKeys": sorted(self.foreign),
                "timestamped": self.timestamped, "lastTimestamp": self.stamped_at}


def _spans(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:SHOWN])
    return shown + (f" and {len(numbers) - SHOWN} more" if len(numbers) > SHOWN else "")


def check_records(store: Store, report: TreeReport, hashes: list[bytes]) -> None:
    n = len(hashes)
    entry = store.manifest.get("tree")
    covered = isinstance(entry, dict) and bool(entry.get("complete"))  # all records have leaves
    seen: set[int] = set()
    lawful: set[int] = set()
    m_leaves: dict[str, int | None] = {}
    live_numbers: set[int] = set()
    tombstoned: set[int] = set()
    mismatched: list[str] = []
    for number in store.segments():
        for item in seg.scan(store.segment_path(number), number):
            if isinstance(item, seg.Damage):
                continue  # verify names damaged bytes
            h = item.header
            leaf = h.get("tl")
            where = f"segment {number} offset {item.offset}"
            if item.type == seg.ENTRY:
                live_numbers.add(int(h.get("n", -1)))
            if item.type == seg.TOMBSTONE:
                tombstoned.add(int(h.get("n", -1)))
                for k in ("e", "m"):
                    if isinstance(h.get(k), int):
                        lawful.add(h[k])
            lost = h.get("was") if h.get("op") == "kept" else h
            if item.type == seg.FOLDER and isinstance(lost, dict) and lost.get("op") == "lost":
                for pair in lost.get("leaves") or []:
                    if isinstance(pair, list) and len(pair) == 2 and pair[1] - pair[0] < n:
                        span = range(int(pair[0]), int(pair[1]) + 1)
                        lawful.update(span)
                        report.declared_lost += len(span)
            if not isinstance(leaf, dict) or not isinstance(leaf.get("i"), int):
                if item.type == seg.MESSAGE:
                    m_leaves[h.get("id", "")] = None
                if covered and not (item.type == seg.TOMBSTONE and h.get("at") == 0
                                    and h.get("reason") == COMPACTED_REASON):
                    report.problems.append(f"{where}: a {item.type.decode()} record without a "
                                           "tree leaf: written behind the tree's back")
                continue
            i = leaf["i"]
            if i >= n:
                if store.writable:
                    report.problems.append(f"{where}: its tree leaf {i} is past the tree's "
                                           f"end ({n} leaves): the tree was cut or replaced")
                continue  # else: written after this check read the tree
            report.records += 1
            if i in seen:
                report.problems.append(f"{where}: tree leaf {i} is claimed by two records")
                continue
            seen.add(i)
            if item.type == seg.MESSAGE:
                m_leaves[h.get("id", "")] = i
            what = store.committed(item, m_leaves)
            if what is None or mtree.leaf_of(store.tree.leaf(i, item.type, what)) != hashes[i]:
                mismatched.append(f"{where} ({item.type.decode()}, leaf {i})")
    for text in mismatched:
        report.problems.append(f"{text}: the record does not match its tree leaf: it was "
                               "changed after it was written")
    missing = sorted(set(range(n)) - seen - lawful)
    report.missing = missing
    if missing:
        report.problems.append(f"{len(missing)} tree leaves have no record in the segments "
                               f"and no deletion accounts for them (leaves {_spans(missing)}):"
                               " records were removed")


