"""Outlook MSG files (one item each, as Outlook saves a message dragged out of it), opened with
extract-msg and built into an RFC 5322 message by outlook.py, exactly as items of a PST are.
The properties are read from the file's storages as [MS-OXMSG] lays them out (property streams,
one stream per variable-size value, recipient and attachment storages), not through
extract-msg's classes per kind of item, which interpret (and can refuse) what they hold.

A file is an MSG when it is an OLE compound file (the D0 CF 11 E0 signature); a file named
*.msg that is not one is read as a message file like any other. The embedded messages of its
attachments come along as message/rfc822 parts; an item that is not mail (a contact, an
appointment saved to a file) is reported as skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources import outlook
from mailkeep.sources.mbox import sniff

SUFFIX = ".msg"
MAX_FILE = outlook.MAX_MESSAGE

# extract-msg reports what it tolerates through logging; what matters comes back as exceptions
# or as the item's notes.
logging.getLogger("extract_msg").setLevel(logging.CRITICAL + 1)


def is_msg(path: Path) -> bool:
    """A file named *.msg that is an OLE compound file; OSError if it cannot be read."""
    return path.name.lower().endswith(SUFFIX) and sniff(path) == "ole"


def _header_size(kind: str, length: int) -> int:
    """Bytes before the first entry of a property stream: 32 for a message file, 24 for an
    embedded message ([MS-OXMSG] 2.4.1), 8 for recipients and attachments. Some writers give an
    embedded message the 32 of a file: the stream's length tells which."""
    if kind == "attachment":
        return 8
    if kind == "embedded" and (length - 24) % 16 and not (length - 32) % 16:
        return 32
    return 24 if kind == "embedded" else 32


def _props(obj: Any, kind: str, codec: str = "cp1252") -> dict[int, Any]:
    """The properties of a message, recipient or attachment storage, from its property stream
    (fixed-size values in the stream, the others in a __substg1.0_ stream each)."""
    stream = obj.getStream("__properties_version1.0")
    out: dict[int, Any] = {}
    if not stream:
        return out
    stream = bytes(stream)
    for at in range(_header_size(kind, len(stream)), len(stream) - 15, 16):
        tag = int.from_bytes(stream[at:at + 4], "little")
        pid, ptype = tag >> 16, tag & 0xFFFF
        if pid == outlook.ATTACH_DATA or pid >= 0x8000 or ptype & 0x1000:
            continue  # the data, named properties, multi-valued ones: not used from here
        if ptype in (outlook.PT_UNICODE, outlook.PT_STRING8, outlook.PT_BINARY):
            raw = obj.getStream(f"__substg1.0_{tag:08X}")
            if raw is None:
                continue
            raw = bytes(raw)
        else:
            raw = stream[at + 8:at + 16]
        value = outlook.decode_value(ptype, raw, codec)
        if value is not None:
            out[tag] = value
    return out


class _Storage:
    """A storage of the file (the message, an embedded message, a recipient, an attachment):
    its streams by name, and its sub-storages (from the file's listing, read once)."""

    def __init__(self, msg: Any, prefix: tuple[str, ...] = (),
                 children: dict[tuple[str, ...], set[str]] | None = None) -> None:
        self.msg = msg
        self.prefix = prefix
        if children is None:
            children = {}
            for path in msg.listDir(True, True):
                for n in range(len(path)):
                    children.setdefault(tuple(path[:n]), set()).add(path[n])
        self.children = children

    def getStream(self, name: str) -> bytes | None:  # noqa: N802 (the name _props calls)
        data = self.msg.getStream([*self.prefix, name])
        return bytes(data) if data is not None else None

    def sub(self, name: str) -> _Storage:
        return _Storage(self.msg, (*self.prefix, name), self.children)

    def storages(self, start: str) -> list[str]:
        return sorted(n for n in self.children.get(self.prefix, ()) if n.startswith(start))


def _item(storage: _Storage, depth: int = 0, budget: outlook.Budget | None = None
          ) -> outlook.Item:
    budget = budget or outlook.Budget()
    kind = "embedded" if depth else "file"
    props = _props(storage, kind)
    codec = outlook.codec_for(outlook.get(props, outlook.MESSAGE_CODEPAGE, outlook.PT_LONG)
                              or outlook.get(props, outlook.INTERNET_CPID, outlook.PT_LONG))
    if codec != "cp1252":
        props = _props(storage, kind, codec)
    item = outlook.Item(props)
    for name in storage.storages("__recip_version1.0_#"):
        item.recipients.append(_props(storage.sub(name), "attachment", codec))
    for name in storage.storages("__attach_version1.0_#")[: outlook.MAX_ATTACHMENTS + 1]:
        stop = budget.next_attachment()
        if stop:
            item.notes.append(stop)
            break
        item.attachments.append(_attachment(storage.sub(name), codec, depth, budget))
    return item


def _attachment(att: _Storage, codec: str, depth: int, budget: outlook.Budget
                ) -> outlook.Attachment:
    props = _props(att, "attachment", codec)
    method = outlook.get(props, outlook.ATTACH_METHOD, outlook.PT_LONG) or 1
    if method == outlook.ATTACH_EMBEDDED_MSG:
        problem = budget.embedded_problem(depth)
        if problem:
            return outlook.Attachment(props, problem=problem)
        inner = att.sub("__substg1.0_3701000D")
        if inner.getStream("__properties_version1.0") is None:
            return outlook.Attachment(props, problem="embedded message cannot be read")
        return outlook.Attachment(props, embedded=_item(inner, depth + 1, budget))
    if method in outlook.BY_REFERENCE:
        return outlook.Attachment(props)
    data = att.getStream("__substg1.0_37010102")
    if data is None:
        return outlook.Attachment(props, problem="it has no data")
    problem = budget.data_problem(len(data))
    if problem:
        return outlook.Attachment(props, problem=problem)
    return outlook.Attachment(props, data=data)


def read_msg(path: Path, folder: str) -> Iterator[RawMessage | SourceProblem]:
    """The message an MSG file holds (and what of it was not carried over), or why it cannot
    be read."""
    notes: list[str] = []
    yield _read(path, folder, notes)
    if notes:
        yield SourceProblem(str(path), f"archived; {outlook.summary(notes)}", skipped=True)


def _read(path: Path, folder: str, notes: list[str]) -> RawMessage | SourceProblem:
    import extract_msg
    from extract_msg.enums import ErrorBehavior

    origin = str(path)
    try:
        if path.stat().st_size > MAX_FILE:
            return SourceProblem(origin, f"MSG file larger than {MAX_FILE >> 20} MB")
        tolerate = (ErrorBehavior.ATTACH_NOT_IMPLEMENTED | ErrorBehavior.ATTACH_BROKEN
                    | ErrorBehavior.STANDARDS_VIOLATION | ErrorBehavior.OLE_DEFECT_INCORRECT)
        msg = extract_msg.MSGFile(str(path), delayAttachments=True, errorBehavior=tolerate)  # type: ignore[no-untyped-call]
    except Exception as exc:  # extract-msg and olefile raise many kinds for damaged files
        return SourceProblem(origin, f"not a readable MSG file: {_reason(exc)}")
    try:
        item = _item(_Storage(msg), budget=outlook.Budget(path.stat().st_size))
    except Exception as exc:
        return SourceProblem(origin, f"MSG file cannot be read: {_reason(exc)}")
    finally:
        msg.close()
    if not outlook.is_mail(item.message_class):
        return SourceProblem(origin, f"an Outlook item that is not mail ({item.message_class}):"
                             " not archived", skipped=True)
    try:
        data = outlook.build(item)
    except outlook.OutlookError as exc:
        return SourceProblem(origin, str(exc))
    except Exception as exc:  # noqa: BLE001 (one file's trouble never ends the import)
        return SourceProblem(origin, f"the message cannot be built ({type(exc).__name__})")
    notes.extend(item.notes)
    return RawMessage(folder, origin, data=data, flags=outlook.flags_of(item),
                      internal_date=outlook.internal_date(item))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)[:200]
