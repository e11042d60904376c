"""Exporting messages back out: one .eml file each (byte-exact), or one mboxrd file.

mboxrd cannot carry a message whose last line lacks a newline (the separator needs one): such
a message gets one in an mbox export. The .eml export is always exact. A message that cannot
be read (damage) is named and skipped; the export goes on with the rest.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mailkeep.core.archive import Archive
from mailkeep.core.errors import CorruptData, InvalidArgument, MailkeepError
from mailkeep.core.storage.store import Store

FROM_LINE = re.compile(rb"(?m)^(>*From )")
UNSAFE = re.compile(r'[\x00-\x1f<>:"\\|?*]')


@dataclass
class ExportStats:
    messages: int = 0
    bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (message id, why)
    unavailable: dict[str, MailkeepError] = field(default_factory=dict)  # store name -> why


def _safe_part(part: str) -> str:
    part = UNSAFE.sub("_", part).strip()
    return "_" if part in ("", ".", "..") else part[:200]


def _escape_mboxrd(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Escape `From ` lines, carrying partial lines across chunk boundaries."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            yield FROM_LINE.sub(rb">\1", data[:cut])
    if carry:
        yield FROM_LINE.sub(rb">\1", carry)


def mbox_pieces(store: Store, number: int) -> Iterator[bytes]:
    """One message as an mboxrd entry, in pieces (its From line, the escaped message, the
    blank line after it): a large message is never held whole."""
    hit = store.catalog.entry(number)
    _flags, idate = store.catalog.entry_flags(number)
    when = idate if idate is not None else (hit.date if hit else time.time())
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(when))
    yield f"From MAILER-DAEMON {stamp}\n".encode()
    last = b""
    for piece in _escape_mboxrd(store.read_chunks(number)):
        yield piece
        last = piece[-1:] or last
    yield b"\n" if last == b"\n" else b"\n\n"


def _write_mbox_message(out: BinaryIO, store: Store, number: int) -> int:
    hit = store.catalog.entry(number)
    _flags, idate = store.catalog.entry_flags(number)
    when = idate if idate is not None else (hit.date if hit else time.time())
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(when))
    out.write(f"From MAILER-DAEMON {stamp}\n".encode())
    written, last = 0, b""
    for piece in _escape_mboxrd(store.read_chunks(number)):
        out.write(piece)
        written += len(piece)
        last = piece[-1:] or last
    out.write(b"\n" if last == b"\n" else b"\n\n")
    return written


def _write_eml(destination: Path, store_id: int, store: Store, number: int) -> int:
    hit = store.catalog.entry(number)
    assert hit is not None
    folder_dir = destination.joinpath(
        _safe_part(hit.owner), *[_safe_part(p) for p in hit.folder.split("/") if p])
    folder_dir.mkdir(parents=True, exist_ok=True)
    target = folder_dir / f"{store_id}-{number}.eml"
    written = 0
    try:
        with open(target, "wb") as out:
            for piece in store.read_chunks(number):
                out.write(piece)
                written += len(piece)
    except CorruptData:
        target.unlink(missing_ok=True)
        raise
    return written


def export(archive: Archive, destination: Path, query: str = "", folder: str | None = None,
           user: str | None = None, progress: Callable[[ExportStats], None] | None = None
           ) -> ExportStats:
    parts = [query]
    if folder:
        parts.append('folder:"' + folder.replace('"', "") + '"')
    if user:
        parts.append('user:"' + user.replace('"', "") + '"')
    selection = archive.iter_messages(" ".join(p for p in parts if p))
    stats = ExportStats(unavailable=dict(archive.unavailable))
    to_mbox = destination.suffix.lower() in (".mbox", ".mbx")
    if to_mbox and destination.is_dir():
        raise InvalidArgument(f"{destination} is a directory")
    if not to_mbox:
        destination.mkdir(parents=True, exist_ok=True)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(destination.name + ".part")
    out = open(tmp, "wb") if to_mbox else None  # noqa: SIM115 - closed below
    try:
        for rec, store, numbers in selection:
            for n in numbers:
                start = out.tell() if out is not None else 0
                try:
                    if out is not None:
                        stats.bytes += _write_mbox_message(out, store, n)
                    else:
                        stats.bytes += _write_eml(destination, rec.id, store, n)
                except CorruptData as exc:
                    if out is not None:
                        out.seek(start)
                        out.truncate()
                    stats.failed.append((f"{rec.id}:{n}", exc.message))
                    continue
                stats.messages += 1
                if progress:
                    progress(stats)
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
            out.close()
            out = None
            os.replace(tmp, destination)
    finally:
        if out is not None:
            out.close()
            tmp.unlink(missing_ok=True)
    return stats
