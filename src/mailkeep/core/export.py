"""Exporting messages back out: one .eml file each (byte-exact), or one mboxrd file.

mboxrd cannot carry a message whose last line lacks a newline (the separator needs one): such
a message gets one in an mbox export. The .eml export is always exact.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .archive import Archive
from .errors import InvalidArgument

FROM_LINE = re.compile(rb"(?m)^(>*From )")
UNSAFE = re.compile(r'[\x00-\x1f<>:"\\|?*]')


@dataclass
class ExportStats:
    messages: int = 0
    bytes: int = 0


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


def export(archive: Archive, destination: Path, query: str = "", folder: str | None = None,
           user: str | None = None, progress: Callable[[ExportStats], None] | None = None
           ) -> ExportStats:
    parts = [query]
    if folder:
        parts.append('folder:"' + folder.replace('"', "") + '"')
    if user:
        parts.append('user:"' + user.replace('"', "") + '"')
    selection = archive.iter_messages(" ".join(p for p in parts if p))
    to_mbox = destination.suffix.lower() in (".mbox", ".mbx")
    stats = ExportStats()
    if to_mbox:
        if destination.is_dir():
            raise InvalidArgument(f"{destination} is a directory")
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = destination.with_name(destination.name + ".part")
        with open(tmp, "wb") as out:
            for _rec, store, numbers in selection:
                for n in numbers:
                    hit = store.catalog.entry(n)
                    _flags, idate = store.catalog.entry_flags(n)
                    when = idate if idate is not None else (hit.date if hit else time.time())
                    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(when))
                    out.write(f"From MAILER-DAEMON {stamp}\n".encode())
                    last = b""
                    for piece in _escape_mboxrd(store.read_chunks(n)):
                        out.write(piece)
                        stats.bytes += len(piece)
                        last = piece[-1:] or last
                    out.write(b"\n" if last == b"\n" else b"\n\n")
                    stats.messages += 1
                    if progress:
                        progress(stats)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, destination)
        return stats
    destination.mkdir(parents=True, exist_ok=True)
    for rec, store, numbers in selection:
        for n in numbers:
            hit = store.catalog.entry(n)
            assert hit is not None
            folder_dir = destination.joinpath(
                _safe_part(hit.owner), *[_safe_part(p) for p in hit.folder.split("/") if p])
            folder_dir.mkdir(parents=True, exist_ok=True)
            target = folder_dir / f"{rec.id}-{n}.eml"
            with open(target, "wb") as out:
                for piece in store.read_chunks(n):
                    out.write(piece)
                    stats.bytes += len(piece)
            stats.messages += 1
            if progress:
                progress(stats)
    return stats
