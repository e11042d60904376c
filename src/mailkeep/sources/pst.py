"""Outlook PST and OST files: every mail item, in its folder, as an RFC 5322 message.

Read with libpff (libpff-python). The folders are those Outlook shows: the children of the
store's top of information store ("Top of Personal Folders") become the archive's top folders;
folders beside it that hold items are read too, under their own names; search folders are not
(they hold no items of their own). One item is read at a time, so a PST of any size is read in
constant memory.

A damaged item, attachment or folder is reported (with the folder and the item's identifier)
and everything else is still read. Contacts, appointments, tasks, notes and other items that
are not mail are counted per folder and reported as skipped. outlook.py builds each message.

libpff's Python binding has no call for the message inside an attachment (an embedded
message); its C library, which the binding's module carries and exports, has one
(libpff_attachment_get_item). embedded() calls it through ctypes once per such attachment,
after checking that the pointer it found is the attachment's (its identifier must match); after
that call the binding returns the embedded message as the attachment's sub-item.
"""

from __future__ import annotations

import ctypes
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources import outlook
from mailkeep.sources.eml import join_folder
from mailkeep.sources.mbox import PST_MAGIC

Item = RawMessage | SourceProblem

MAGIC = PST_MAGIC
SUFFIXES = (".pst", ".ost")
READ_CHUNK = 1 << 20
IPM_SUBTREE_ENTRYID = 0x35E0
FINDER_ENTRYID = 0x35E7
_SKIP_PROPS = {outlook.ATTACH_DATA}  # read with read_buffer, not as a property


def _props(obj: Any, record_set: int = 0, codec: str = "cp1252") -> dict[int, Any]:
    out: dict[int, Any] = {}
    try:
        if obj.number_of_record_sets <= record_set:
            return out
        rs = obj.get_record_set(record_set)
    except OSError:
        return out
    for i in range(rs.number_of_entries):
        try:
            entry = rs.get_entry(i)
            pid, ptype = entry.entry_type, entry.value_type
            if pid in _SKIP_PROPS or pid >= 0x8000:
                continue  # named properties: not used to build the message
            data = entry.data
        except OSError:
            continue
        if data is None:
            continue
        value = outlook.decode_value(ptype, bytes(data), codec)
        if value is not None:
            out[pid << 16 | ptype] = value
    return out


def _codec(props: dict[int, Any]) -> str:
    return outlook.codec_for(outlook.get(props, outlook.MESSAGE_CODEPAGE, outlook.PT_LONG)
                             or outlook.get(props, outlook.INTERNET_CPID, outlook.PT_LONG))


def _item_props(obj: Any) -> dict[int, Any]:
    """Properties of one item, strings in 8-bit code pages read in the item's own."""
    props = _props(obj)
    codec = _codec(props)
    return _props(obj, codec=codec) if codec != "cp1252" else props


# -- embedded messages through the C library ----------------------------------------------------
_lib: Any = None


def _library() -> Any:
    global _lib
    if _lib is None:
        import pypff
        lib = ctypes.CDLL(pypff.__file__)
        for name, args in (("libpff_attachment_get_item", 3), ("libpff_item_free", 2),
                           ("libpff_item_get_identifier", 3), ("libpff_error_free", 1)):
            fn = getattr(lib, name)
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p] * args
        _lib = lib
    return _lib


def embedded(attachment: Any) -> Any:
    """The message inside an attachment of an embedded message, as the binding's object."""
    if attachment.number_of_sub_items:
        return attachment.get_sub_item(0)
    lib = _library()
    pointer = ctypes.c_void_p.from_address(id(attachment) + object.__basicsize__).value
    error = ctypes.c_void_p()
    ident = ctypes.c_uint32()
    if not pointer or lib.libpff_item_get_identifier(
            ctypes.c_void_p(pointer), ctypes.byref(ident), ctypes.byref(error)) != 1 or \
            ident.value != attachment.identifier:
        if error.value:
            lib.libpff_error_free(ctypes.byref(error))
        raise OSError("this version of libpff-python cannot read embedded messages")
    out = ctypes.c_void_p()
    result = lib.libpff_attachment_get_item(ctypes.c_void_p(pointer), ctypes.byref(out),
                                            ctypes.byref(error))
    if error.value:
        lib.libpff_error_free(ctypes.byref(error))
    if out.value:
        lib.libpff_item_free(ctypes.byref(out), ctypes.byref(error))
        if error.value:
            lib.libpff_error_free(ctypes.byref(error))
    if result != 1 or not attachment.number_of_sub_items:
        raise OSError("the embedded message cannot be read")
    return attachment.get_sub_item(0)


# -- items --------------------------------------------------------------------------------------
def read_item(obj: Any, depth: int = 0, budget: outlook.Budget | None = None) -> outlook.Item:
    """An item of the PST (a message, or a message inside an attachment) with its
    recipients and attachments; OSError when the item itself cannot be read."""
    budget = budget or outlook.Budget()
    props = _item_props(obj)
    if not props:
        raise OSError("the item's properties cannot be read")
    item = outlook.Item(props)
    codec = _codec(props)
    try:
        recipients = obj.recipients
    except (OSError, AttributeError):
        recipients = None
    if recipients is not None:
        try:
            for i in range(recipients.number_of_record_sets):
                item.recipients.append(_props(recipients, i, codec))
        except OSError:
            item.notes.append("recipient table damaged: recipients from the headers only")
    try:
        count = obj.number_of_attachments
    except (OSError, AttributeError):
        count = 0
    for i in range(min(count, outlook.MAX_ATTACHMENTS + 1)):
        stop = budget.next_attachment()
        if stop:
            item.notes.append(stop)
            break
        item.attachments.append(_attachment(obj, i, codec, depth, budget))
    return item


def _attachment(obj: Any, index: int, codec: str, depth: int, budget: outlook.Budget
                ) -> outlook.Attachment:
    try:
        att = obj.get_attachment(index)
        props = _props(att, codec=codec)
    except OSError as exc:
        return outlook.Attachment({}, problem=f"cannot be read ({_reason(exc)})")
    method = outlook.get(props, outlook.ATTACH_METHOD, outlook.PT_LONG) or 1
    if method == outlook.ATTACH_EMBEDDED_MSG:
        problem = budget.embedded_problem(depth)
        if problem:
            return outlook.Attachment(props, problem=problem)
        try:
            return outlook.Attachment(props, embedded=read_item(embedded(att), depth + 1,
                                                                budget))
        except OSError as exc:
            return outlook.Attachment(props, problem=f"embedded message cannot be read "
                                      f"({_reason(exc)})")
    if method in outlook.BY_REFERENCE:
        return outlook.Attachment(props)
    try:
        size = att.size or 0
        problem = budget.data_problem(size)
        if problem:
            return outlook.Attachment(props, problem=problem)
        chunks = []
        left = size
        while left > 0:
            chunk = att.read_buffer(min(READ_CHUNK, left))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left:
            return outlook.Attachment(props, problem="its data ends early")
        return outlook.Attachment(props, data=b"".join(chunks))
    except OSError as exc:
        return outlook.Attachment(props, problem=f"data cannot be read ({_reason(exc)})")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# -- the file -----------------------------------------------------------------------------------
def _entryid_nid(value: Any) -> int | None:
    if isinstance(value, bytes) and len(value) >= 24:
        return int(struct.unpack_from("<I", value, len(value) - 4)[0])
    return None


def read_pst(path: Path, folder: str) -> Iterator[Item]:
    """Every mail item of the PST/OST at `path`, under `folder`, and what could not be read."""
    import pypff
    origin = str(path)
    pst = pypff.file()
    try:
        pst.open(str(path))
    except OSError as exc:
        yield SourceProblem(origin, f"not a readable PST file: {_reason(exc)}")
        return
    try:
        try:
            store = _props(pst.message_store) if pst.message_store is not None else {}
            root = pst.root_folder
        except OSError as exc:
            yield SourceProblem(origin, f"the PST's folders cannot be read: {_reason(exc)}")
            return
        ipm = _entryid_nid(outlook.get(store, IPM_SUBTREE_ENTRYID, outlook.PT_BINARY))
        finder = _entryid_nid(outlook.get(store, FINDER_ENTRYID, outlook.PT_BINARY))
        reader = _Reader(origin, _total(root))
        for i, child in _children(root, origin, ""):
            if isinstance(child, SourceProblem):
                yield child
                continue
            ident = child.identifier
            if ident == finder:
                continue
            if ident == ipm:
                yield from reader.walk(child, folder)
            else:
                yield from reader.walk(child, join_folder(folder, _name(child, i)))
        yield from reader.walk_messages(root, folder, "")
    finally:
        pst.close()


def _total(root: Any) -> int:
    total = 0
    stack = [root]
    while stack:
        f = stack.pop()
        try:
            total += f.number_of_sub_messages
            stack.extend(f.get_sub_folder(i) for i in range(f.number_of_sub_folders))
        except OSError:
            continue
    return max(total, 1)


def _name(f: Any, index: int) -> str:
    try:
        name = f.name
    except OSError:
        name = None
    return outlook.folder_part(name or f"folder {index + 1}")


def _children(f: Any, origin: str, where: str) -> Iterator[tuple[int, Any]]:
    try:
        count = f.number_of_sub_folders
    except OSError as exc:
        yield 0, SourceProblem(origin, f"folder {where or '(top)'}: its subfolders cannot be "
                                       f"listed ({_reason(exc)})")
        return
    for i in range(count):
        try:
            yield i, f.get_sub_folder(i)
        except OSError as exc:
            yield i, SourceProblem(origin, f"folder {where or '(top)'}: subfolder {i + 1} "
                                           f"cannot be read ({_reason(exc)})")


class _Reader:
    def __init__(self, origin: str, total: int) -> None:
        self.origin = origin
        self.total = total
        self.done = 0
        try:
            self.size = Path(origin).stat().st_size
        except OSError:
            self.size = 0

    def walk(self, f: Any, folder: str) -> Iterator[Item]:
        yield from self.walk_messages(f, folder, folder)
        for i, child in _children(f, self.origin, folder):
            if isinstance(child, SourceProblem):
                yield child
            else:
                yield from self.walk(child, join_folder(folder, _name(child, i)))

    def walk_messages(self, f: Any, folder: str, where: str) -> Iterator[Item]:
        try:
            count = f.number_of_sub_messages
        except OSError as exc:
            yield SourceProblem(self.origin, f"folder {where or '(top)'}: its items cannot be "
                                f"listed ({_reason(exc)})")
            return
        skipped: Counter[str] = Counter()
        for i in range(count):
            self.done += 1
            at = f"{self.origin}#{where or '(top)'}#{i + 1}"
            try:
                obj = f.get_sub_message(i)
                ident = obj.identifier
                at = f"{self.origin}#{ident}"
                item = read_item(obj, budget=outlook.Budget(self.size))
            except (OSError, MemoryError) as exc:
                yield SourceProblem(at, f"folder {where or '(top)'}: item {i + 1} cannot be "
                                    f"read ({_reason(exc)})")
                continue
            if not outlook.is_mail(item.message_class):
                skipped[item.message_class.split(".")[1] if "." in item.message_class
                        else item.message_class] += 1
                continue
            try:
                data = outlook.build(item)
            except outlook.OutlookError as exc:
                yield SourceProblem(at, f"folder {where or '(top)'}: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 (one item's trouble never ends the file)
                yield SourceProblem(at, f"folder {where or '(top)'}: the message cannot be "
                                    f"built ({type(exc).__name__})")
                continue
            if item.notes:
                yield SourceProblem(at, f"archived; {outlook.summary(item.notes)}",
                                    skipped=True)
            position = self.size * self.done // self.total
            yield RawMessage(folder, at, data=data, flags=outlook.flags_of(item),
                             internal_date=outlook.internal_date(item), position=position)
        if skipped:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(skipped.items()))
            yield SourceProblem(f"{self.origin}#{where or '(top)'}",
                                f"items that are not mail, not archived: {kinds}", skipped=True)
