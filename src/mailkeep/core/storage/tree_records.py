"""Checking a store's records against its Merkle tree (core/storage/tree.py): each record
that carries a leaf must hash to it and commit to what it holds; each leaf must have its record,
unless a tombstone names it (a lawful deletion) or recover declared it lost. The signed heads
are checked above the storage layer (core/treecheck.py)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailkeep.core.storage import segments as seg
from mailkeep.core.storage import tree as mtree
from mailkeep.core.storage.catalog import full_name, rebase, under
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


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _moves(header: dict[str, Any]) -> dict[str, Any] | None:
    """The folder move an F record (or a kept one) made, if it is one."""
    h = header.get("was") if header.get("op") == "kept" else header
    if isinstance(h, dict) and h.get("op") == "move" and all(
            isinstance(h.get(k), str) for k in ("owner", "folder", "to_owner", "to_folder")):
        return h
    return None


@dataclass(slots=True)
class _Filing:  # (one a message: slots, and the owner's and folder's names interned)
    owner: str
    folder: str
    flags: list[str]
    idate: int | None
    at: int
    cid: str


def check_records(store: Store, report: TreeReport, hashes: Sequence[bytes]) -> None:
    """Every record against its leaf; every leaf accounted for; the records in leaf order;
    and the catalog's messages where their leaf-checked filings and the folder moves since
    put them (so that neither a record's unchecked fields nor the catalog can move, swap or
    bring back a message unnoticed)."""
    n = len(hashes)
    # which leaves have their record, and which a deletion accounts for: a byte a leaf (sets
    # of a million numbers took 20 times the memory, bench/README.md: million.py)
    seen = bytearray(n)
    lawful = bytearray(n)
    m_leaves: dict[str, int | None] = {}
    m_ids: dict[int, str] = {}  # leaf of a message record -> its content id
    filings: dict[int, _Filing] = {}  # number -> where its checked filing puts it now
    highest_entry = 0
    last_leaf = -1
    leafed = False  # a record with a leaf was met: every later one must have one too
    compacted_marks: list[tuple[str, int]] = []
    mismatched: list[str] = []
    for number in store.segments():
        for item in seg.scan(store.segment_path(number), number):
            if isinstance(item, seg.Damage):
                continue  # verify names damaged bytes
            h = item.header
            leaf = h.get("tl")
            where = f"segment {number} offset {item.offset}"
            kind = item.type.decode()
            if item.type == seg.ENTRY and _int(h.get("n")) is not None:
                highest_entry = max(highest_entry, h["n"])
            i = _int(leaf.get("i")) if isinstance(leaf, dict) else None
            if i is None or i < 0:
                if item.type == seg.MESSAGE:
                    m_leaves[str(h.get("id", ""))] = None
                if item.type == seg.TOMBSTONE and h.get("at") == 0 \
                        and h.get("reason") == COMPACTED_REASON and _int(h.get("n")) is not None:
                    compacted_marks.append((where, h["n"]))  # compaction's; checked below
                elif leafed:
                    report.problems.append(f"{where}: a {kind} record without a tree leaf: "
                                           "written behind the tree's back")
                continue
            leafed = True
            if i >= n:
                if store.writable:
                    report.problems.append(f"{where}: its tree leaf {i} is past the tree's "
                                           f"end ({n} leaves): the tree was cut or replaced")
                continue  # else: written after this check read the tree
            report.records += 1
            if seen[i]:
                report.problems.append(f"{where}: tree leaf {i} is claimed by two records")
                continue
            seen[i] = 1
            if i < last_leaf:
                report.problems.append(f"{where}: its tree leaf {i} comes after leaf "
                                       f"{last_leaf}: the records were reordered")
            last_leaf = max(last_leaf, i)
            if item.type == seg.MESSAGE:
                m_leaves[str(h.get("id", ""))] = i
            what = store.committed(item, m_leaves)
            if what is None or mtree.leaf_of(store.tree.leaf(i, item.type, what)) != hashes[i]:
                mismatched.append(f"{where} ({kind}, leaf {i})")
                continue
            # the record is what was written: what it says can be relied on from here
            if item.type == seg.MESSAGE:
                m_ids[i] = str(h.get("id"))
            elif item.type == seg.ENTRY:
                assert isinstance(leaf, dict)
                m = _int(leaf.get("m")) if "m" in leaf else m_leaves.get(str(h.get("id")))
                if m is not None and m in m_ids and m_ids[m] != h.get("id"):
                    report.problems.append(f"{where}: message {h['n']} names other bytes than "
                                           f"the message record its filing committed to")
                f = h.get("filed") or h
                filings[int(h["n"])] = _Filing(
                    sys.intern(str(f["owner"])), sys.intern(str(f["folder"])),
                    sorted(f.get("flags") or []), f.get("idate"), int(f["at"]), str(h.get("id")))
            elif item.type == seg.TOMBSTONE:
                filings.pop(_int(h.get("n")) or -1, None)
                for k in ("e", "m"):
                    at = _int(h.get(k))
                    if at is not None and 0 <= at < n:
                        lawful[at] = 1
            elif item.type == seg.FOLDER:
                _apply_move(filings, _moves(h))
                lost = h.get("was") if h.get("op") == "kept" else h
                if isinstance(lost, dict) and lost.get("op") == "lost":
                    _declared(lost, n, lawful, report)
    for where, number_ in compacted_marks:
        if number_ < highest_entry or number_ in filings:
            report.problems.append(f"{where}: a tombstone without a tree leaf names message "
                                   f"{number_}, which is filed: written behind the tree's back")
    for text in mismatched:
        report.problems.append(f"{text}: the record does not match its tree leaf: it was "
                               "changed after it was written")
    missing = _unset(seen, lawful)
    report.missing = missing
    if missing:
        report.problems.append(f"{len(missing)} tree leaves have no record in the segments "
                               f"and no deletion accounts for them (leaves {_spans(missing)}):"
                               " records were removed")
    if leafed:
        _compare_catalog(store, report, filings)


def _unset(a: bytearray, b: bytearray) -> list[int]:
    """The positions where neither a nor b (of one length) has a flag, ascending."""
    either = (int.from_bytes(a) | int.from_bytes(b)).to_bytes(len(a))
    out: list[int] = []
    at = either.find(0)
    while at != -1:
        out.append(at)
        at = either.find(0, at + 1)
    return out


def _declared(h: dict[str, Any], n: int, lawful: bytearray, report: TreeReport) -> None:
    for pair in h.get("leaves") or []:
        if isinstance(pair, list) and len(pair) == 2 and all(
                _int(x) is not None and 0 <= x < n for x in pair) and pair[0] <= pair[1]:
            lawful[pair[0]:pair[1] + 1] = b"\x01" * (pair[1] + 1 - pair[0])
            report.declared_lost += pair[1] + 1 - pair[0]


def _apply_move(filings: dict[int, _Filing], move: dict[str, Any] | None) -> None:
    """What the catalog does with a folder move (Catalog.move_folder), to the filings."""
    if move is None:
        return
    owner, top, to_owner, to_top = (move["owner"], move["folder"], move["to_owner"],
                                    move["to_folder"])
    there = {(f.owner, f.folder, f.cid) for f in filings.values()}
    for f in filings.values():
        if f.owner == owner and under(f.folder, top):
            new = rebase(f.folder, top, to_top)
            if (to_owner, new, f.cid) in there:
                continue  # the same message is there already: it stays (a merge)
            f.owner, f.folder = to_owner, new


def _compare_catalog(store: Store, report: TreeReport, filings: dict[int, _Filing]) -> None:
    wrong: list[str] = []
    for number, (owner, folder, flags, idate, at, cid) in store.catalog.filed_as():
        f = filings.get(number)
        if f is None:
            if store.writable:  # (else: filed after the segments were read)
                wrong.append(f"message {number} is in the catalog but no checked record "
                             "files it")
            continue
        if (owner, folder) != (f.owner, f.folder):
            wrong.append(f"message {number} is in {full_name(owner, folder)}, but its filing "
                         f"and the folder moves since put it in {full_name(f.owner, f.folder)}")
        elif cid.hex() != f.cid:
            wrong.append(f"message {number} shows other bytes than it was filed with")
        elif flags != f.flags or idate != f.idate or at != f.at:
            wrong.append(f"message {number}'s flags or dates are not those it was filed with")
    for text in wrong[:50]:
        report.problems.append(f"{text} (the catalog or a record was changed)")
    if len(wrong) > 50:
        report.problems.append(f"and {len(wrong) - 50} more messages like these")
