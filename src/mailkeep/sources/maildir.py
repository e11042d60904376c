"""Read Maildir and Maildir++ folders: messages from cur/ and new/, flags from the file names.

detect.py finds Maildirs in a tree; eml.read_message_file reads each message file.

Rules: cur/ and new/ are read together, sorted by file name (unique names start with the
delivery time); tmp/ is never read (deliveries in progress). Flags come from the info suffix
``:2,FLAGS`` (``;2,`` and ``!2,`` too, as written where ``:`` is not allowed in file names);
lower-case letters are Dovecot keywords and are ignored. internal_date is the file's mtime.
A Maildir++ subfolder ``.Lists.linux`` is the folder "Lists/linux", each part decoded from IMAP
modified UTF-7. Server metadata (``dovecot*``, ``courier*``, ``maildirfolder``, ``maildirsize``,
``subscriptions``) is skipped; any other entry is passed to the caller's `other` handler, or
reported as a SourceProblem when there is none.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources.eml import entry_problem, join_folder, read_message_file, sorted_entries

Item = RawMessage | SourceProblem
# Reads an entry of a Maildir that is not part of the Maildir itself, given its folder.
OtherHandler = Callable[[os.DirEntry[str], str], Iterator[Item]]

MESSAGE_DIRS = ("cur", "new")
SKIPPED_PREFIXES = ("dovecot", "courier")
SKIPPED_NAMES = frozenset({"tmp", "maildirfolder", "maildirsize", "subscriptions"})
INFO_SEPARATORS = (":2,", ";2,", "!2,")
FLAG_LETTERS = {
    "D": "draft",
    "F": "flagged",
    "P": "forwarded",
    "R": "answered",
    "S": "seen",
    "T": "deleted",
}


def is_maildir(path: Path) -> bool:
    """A Maildir is a directory with cur/ and new/ subdirectories."""
    # os.path.isdir, not Path.is_dir: an unreadable directory is then listed and reported
    return all(os.path.isdir(path / name) for name in MESSAGE_DIRS)


def read_maildir(
    path: str | Path, folder: str = "", other: OtherHandler | None = None
) -> Iterator[Item]:
    """Yield the messages of the Maildir at `path` (folder `folder`) and its Maildir++ folders."""
    path = Path(path)
    entries = sorted_entries(path)
    if isinstance(entries, SourceProblem):
        yield entries
        return
    yield from _read_messages(path, folder)
    for entry in entries:
        if entry.name in MESSAGE_DIRS or _is_skipped(entry.name):
            continue
        if entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
            yield from _read_subfolder(
                Path(entry.path), join_folder(folder, folder_name(entry.name)), other
            )
        else:
            yield from _other(entry, folder, other)


def flags_from_name(name: str) -> frozenset[str]:
    """Flags from a Maildir file name's info suffix, e.g. "123.host:2,FS" -> flagged, seen."""
    at = max(name.rfind(sep) for sep in INFO_SEPARATORS)
    if at < 0:
        return frozenset()
    return frozenset(FLAG_LETTERS[c] for c in name[at + 3 :] if c in FLAG_LETTERS)


def folder_name(dirname: str) -> str:
    """Maildir++ directory name -> folder path: ".Lists.linux" -> "Lists/linux"."""
    return "/".join(_decode_part(part) for part in dirname.removeprefix(".").split("."))


def _decode_part(part: str) -> str:
    decoded = decode_mutf7(part)
    return part if "/" in decoded else decoded  # a decoded "/" would invent a folder level


def decode_mutf7(name: str) -> str:
    """Decode IMAP modified UTF-7 (RFC 3501 5.1.3); a name that is not valid comes back as is."""
    out: list[str] = []
    i = 0
    while i < len(name):
        amp = name.find("&", i)
        if amp < 0:
            out.append(name[i:])
            break
        end = name.find("-", amp + 1)
        if end < 0:
            return name
        out.append(name[i:amp])
        if end == amp + 1:
            out.append("&")
        else:
            b64 = name[amp + 1 : end].replace(",", "/")
            try:
                text = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
                out.append(text.decode("utf-16-be"))
            except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
                return name
        i = end + 1
    return "".join(out)


def _read_subfolder(path: Path, folder: str, other: OtherHandler | None) -> Iterator[Item]:
    entries = sorted_entries(path)
    if isinstance(entries, SourceProblem):
        yield entries
        return
    yield from _read_messages(path, folder)
    for entry in entries:
        if entry.name not in MESSAGE_DIRS and not _is_skipped(entry.name):
            yield from _other(entry, folder, other)


def _read_messages(path: Path, folder: str) -> Iterator[Item]:
    """cur/ and new/ merged and sorted by file name."""
    found: list[os.DirEntry[str]] = []
    for sub in MESSAGE_DIRS:
        entries = sorted_entries(path / sub)
        if isinstance(entries, SourceProblem):
            yield entries
        else:
            found.extend(entries)
    for entry in sorted(found, key=lambda e: e.name):
        problem = entry_problem(entry)
        if problem is None and entry.is_dir(follow_symlinks=False):
            problem = SourceProblem(
                entry.path, "directory inside a Maildir's cur/ or new/", skipped=True
            )
        if problem is not None:
            yield problem
            continue
        p = Path(entry.path)
        yield read_message_file(p, folder, flags_from_name(entry.name), with_mtime=True)


def _other(entry: os.DirEntry[str], folder: str, other: OtherHandler | None) -> Iterator[Item]:
    if other is None:
        yield SourceProblem(entry.path, "not part of the Maildir; not read", skipped=True)
    else:
        yield from other(entry, folder)


def _is_skipped(name: str) -> bool:
    return name in SKIPPED_NAMES or name.startswith(SKIPPED_PREFIXES)
