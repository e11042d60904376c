"""Hostile PSTs that point many references at the same bytes, which [MS-PST] does not forbid and
no honest writer does: attachments whose data is one data tree referenced again and again, and
embedded messages that are one message referenced from every attachment of the level above.

`shared_writer()` patches tests/pstfile.py's writer for the duration of a `with`: a property
value given as `Shared(size)` is a data tree of `size` bytes (rounded to whole blocks) built
from one block, written once and referenced by every property holding the same object; a
Message with `shared = True` is written once however many attachments embed it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tests.pstfile as pf


class Shared:
    """`size` bytes of `fill` for whoever reads the attachment; one block in the file."""

    def __init__(self, size: int, fill: bytes = b"A") -> None:
        self.leaves = max(1, size // pf.BLOCK_DATA_MAX)
        self.fill = fill

    def __len__(self) -> int:
        return self.leaves * pf.BLOCK_DATA_MAX


@contextmanager
def shared_writer() -> Iterator[None]:
    trees: dict[tuple[int, int], int] = {}
    messages: dict[tuple[int, int], Any] = {}
    encode, store, size_of = pf._encode, pf._Node.store_value, pf._value_size
    write_message = pf._Writer.write_message

    def tree(ndb: Any, value: Shared) -> int:
        key = (id(ndb), id(value))
        if key not in trees:
            leaf = ndb.write_block(value.fill * pf.BLOCK_DATA_MAX)
            level1 = [ndb._xblock(1, [leaf] * min(pf.XBLOCK_MAX, value.leaves - i),
                                  min(pf.XBLOCK_MAX, value.leaves - i) * pf.BLOCK_DATA_MAX)
                      for i in range(0, value.leaves, pf.XBLOCK_MAX)]
            trees[key] = level1[0] if len(level1) == 1 else ndb._xblock(2, level1, len(value))
        return trees[key]

    def store_value(self: Any, data: Any) -> int:
        if isinstance(data, Shared):
            nid = self.new_nid(pf.NID_TYPE_LTP)
            self.add(nid, tree(self.ndb, data))
            return nid
        return store(self, data)

    def write(self: Any, msg: Any) -> Any:
        if not getattr(msg, "shared", False):
            return write_message(self, msg)
        key = (id(self), id(msg))
        if key not in messages:
            messages[key] = write_message(self, msg)
        return messages[key]

    pf._encode = lambda ptype, value: value if isinstance(value, Shared) else encode(ptype, value)
    pf._Node.store_value = store_value  # type: ignore[method-assign]
    pf._value_size = lambda value: len(value) if isinstance(value, Shared) else size_of(value)
    pf._Writer.write_message = write  # type: ignore[method-assign]
    try:
        yield
    finally:
        pf._encode, pf._Node.store_value, pf._value_size = encode, store, size_of
        pf._Writer.write_message = write_message  # type: ignore[method-assign]
