"""Decide what a path holds (message file, mbox, Maildir, directory tree) and read it.

The one entry point for imports: open_source dispatches to eml.py, mbox.py, maildir.py,
exports.py (Gmail, Thunderbird, Apple Mail), pst.py and msg.py.

Rules: a directory is walked recursively in name order. A directory with cur/ and new/ is a
Maildir (Maildir++ subfolders included). A file named ``*.eml`` is one message, taken whole even
when it starts with a ``From `` envelope line (many tools save single messages so, and splitting
would change their bytes). Any other regular file starting with ``From `` (after gunzip when it
starts with the gzip magic) is an mbox; a gzip file holding anything else is reported, not read;
a file starting with a PST's signature (!BDN) is an Outlook PST or OST file, and a file named
``*.msg`` that is an OLE compound file is an Outlook MSG file; every other regular file is one
message.
Folders: a message file's folder is its directory relative to the root; an mbox file is a folder
of its own below that, named after the file without ``.gz`` and then ``.mbox``/``.mbx`` (a PST
file likewise, without ``.pst``/``.ost``, its own folder tree below). The
path named directly is the base folder "" whatever it is. Symlinked directories below the root
are reported, not followed.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources.eml import (
    entry_problem,
    join_folder,
    os_reason,
    read_message_file,
    sorted_entries,
)
from mailkeep.sources.exports import (
    from_mbox,
    is_apple_bundle,
    is_thunderbird,
    read_apple_bundle,
    read_emlx,
    thunderbird_entry,
)
from mailkeep.sources.maildir import is_maildir, read_maildir
from mailkeep.sources.mbox import read_mbox, sniff
from mailkeep.sources.msg import SUFFIX as MSG_SUFFIX
from mailkeep.sources.msg import read_msg
from mailkeep.sources.pst import read_pst

Item = RawMessage | SourceProblem

_MBOX_SUFFIXES = (".mbox", ".mbx", ".pst", ".ost")
# Named as one message: taken whole even when it starts with a From_ envelope line.
MESSAGE_SUFFIX = ".eml"


def open_source(path: str | Path) -> Iterator[Item]:
    """Every message (and every problem) under `path`, whatever kind of mail store it is."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        yield SourceProblem(str(path), os_reason(exc))
        return
    if stat.S_ISDIR(mode) and is_apple_bundle(path):
        yield from read_apple_bundle(path, "", _mbox, named=False)
    elif stat.S_ISDIR(mode):
        yield from _read_dir(path, "")
    elif stat.S_ISREG(mode):
        yield from _read_file(path, "", "")
    else:
        yield SourceProblem(str(path), "not a regular file or directory", skipped=True)


def mbox_folder_name(filename: str) -> str:
    """The folder an mbox (or PST) file becomes: "linux-mips-1996.mbox.gz" -> "linux-mips-1996",
    "archive.pst" -> "archive".
    """
    stem = filename
    if stem.lower().endswith(".gz"):
        stem = stem[: -len(".gz")]
    for suffix in _MBOX_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem or filename  # ".mbox" stays ".mbox"


def _read_dir(path: Path, folder: str) -> Iterator[Item]:
    if is_maildir(path):
        yield from read_maildir(path, folder, other=_read_entry)
        return
    entries = sorted_entries(path)
    if isinstance(entries, SourceProblem):
        yield entries
        return
    if is_thunderbird(path, [e.name for e in entries]):
        for entry in entries:
            problem = entry_problem(entry)
            if problem is not None:
                yield problem
            else:
                yield from thunderbird_entry(entry, folder, _mbox, _read_dir, _read_entry)
        return
    for entry in entries:
        yield from _read_entry(entry, folder)


def _mbox(path: Path, folder: str) -> Iterator[Item]:
    """An mbox file as the folder `folder`, as Gmail and Thunderbird meant its messages."""
    yield from from_mbox(read_mbox(path, folder=folder), folder)


def _read_entry(entry: os.DirEntry[str], folder: str) -> Iterator[Item]:
    problem = entry_problem(entry)
    if problem is not None:
        yield problem
    elif entry.is_dir(follow_symlinks=False) and is_apple_bundle(Path(entry.path)):
        yield from read_apple_bundle(Path(entry.path), folder, _mbox)
    elif entry.is_dir(follow_symlinks=False):
        yield from _read_dir(Path(entry.path), join_folder(folder, entry.name))
    else:
        mbox_folder = join_folder(folder, mbox_folder_name(entry.name))
        yield from _read_file(Path(entry.path), folder, mbox_folder)


def _read_file(path: Path, folder: str, mbox_folder: str) -> Iterator[Item]:
    if path.name.lower().endswith(MESSAGE_SUFFIX):
        yield read_message_file(path, folder)
        return
    if path.name.lower().endswith(".emlx"):
        yield read_emlx(path, folder)
        return
    try:
        kind = sniff(path)
    except (OSError, EOFError, zlib.error) as exc:
        reason = os_reason(exc) if isinstance(exc, OSError) else f"cannot gunzip: {exc}"
        yield SourceProblem(str(path), reason)
        return
    if kind == "pst":
        yield from read_pst(path, mbox_folder)
    elif kind == "ole" and path.name.lower().endswith(MSG_SUFFIX):
        yield from read_msg(path, folder)
    elif kind == "mbox":
        yield from _mbox(path, mbox_folder)
    elif kind == "gzip":
        yield SourceProblem(str(path), "gzip file that is not an mbox; not read", skipped=True)
    else:
        yield read_message_file(path, folder)


def _disk_bytes(path: Path) -> int:
    """Bytes of the regular files at or below path (symlinks not followed)."""
    try:
        if path.is_file():
            return path.stat().st_size
        total = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        return total
    except OSError:
        return 0


class PathReader:
    """Every message (and problem) under each of `paths`, with the progress in bytes on disk:
    whole files, plus the offset reached in an mbox (its compressed size for .gz)."""

    def __init__(self, paths: Iterable[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.bytes_total = sum(_disk_bytes(p) for p in self.paths)
        self.bytes_done = 0
        self._files_done = 0
        self._mbox_path = ""
        self._mbox_size = 0

    def __iter__(self) -> Iterator[Item]:
        for path in self.paths:
            for item in open_source(path):
                if isinstance(item, RawMessage):
                    self._advance(item)
                yield item
        self.bytes_done = self.bytes_total

    def _advance(self, msg: RawMessage) -> None:
        if msg.position is None:
            self._files_done += msg.size
            self.bytes_done = self._files_done
            return
        path = msg.origin.rsplit("#", 1)[0]
        if path != self._mbox_path:
            self._files_done += self._mbox_size
            self._mbox_path = path
            self._mbox_size = _disk_bytes(Path(path))
        self.bytes_done = self._files_done + min(msg.position, self._mbox_size)


def read_paths(paths: Iterable[str | Path]) -> PathReader:
    """What `mailkeep import` reads: the messages under the paths, whatever they hold."""
    return PathReader(paths)
