"""Watched directories, Maildirs and PST files as incremental sources: each run reads only the
files it has not archived before, without opening the others.

The caller keeps `seen` (a key per archived file -> epoch seconds when it was confirmed). A
file in a directory is known by its relative path, size and modification time, so a file that
is replaced is read again; a Maildir message by its folder and unique name (the part before
the ":2," info), so that moving it from new/ to cur/ or changing its flags does not make it new.
Files modified in the last SETTLE_S seconds are left for the next run: they may still be
being written. With delete_after, archived files are removed once confirmed durable. An
Outlook MSG file in a watched directory is built into its message (msg.py). A PST file is read
whole when its size or modification time changed since it was last read to its end.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources.eml import (
    entry_problem,
    join_folder,
    read_message_file,
    sorted_entries,
)
from mailkeep.sources.maildir import (
    INFO_SEPARATORS,
    MESSAGE_DIRS,
    flags_from_name,
    folder_name,
    is_maildir,
)
from mailkeep.sources.msg import is_msg, read_msg
from mailkeep.sources.pst import read_pst

Item = RawMessage | SourceProblem
SETTLE_S = 2.0


def _message_file(path: Path, folder: str) -> Iterator[Item]:
    """A watched file: an Outlook MSG file built into a message, any other file as it is (only
    a file named *.msg is opened to see which)."""
    try:
        outlook_msg = is_msg(path)
    except (OSError, EOFError, zlib.error):
        outlook_msg = False  # read_message_file says why it cannot be read
    if outlook_msg:
        yield from read_msg(path, folder)
    else:
        yield read_message_file(path, folder)


def _unique(name: str) -> str:
    cut = [name.find(sep) for sep in INFO_SEPARATORS if sep in name]
    return name[: min(cut)] if cut else name


class FileSource:
    def __init__(self, kind: str, root: Path, seen: Mapping[str, float] | None = None,
                 pattern: str = "*.eml", recursive: bool = True, delete_after: bool = False
                 ) -> None:
        self.kind = kind  # "directory" | "maildir" | "pst"
        self.root = root
        self.seen: dict[str, float] = dict(seen or {})
        self.pattern = pattern
        self.recursive = recursive
        self.delete_after = delete_after
        self.warnings: list[str] = []
        self._handed_out: dict[str, tuple[str, Path]] = {}  # origin -> key, path
        self._present: set[str] = set()
        self._complete = False
        self._doomed: list[tuple[str, Path]] = []
        self._pst_key = ""

    # -- reading ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Item]:
        self._present.clear()
        self._complete = False
        if self.kind == "pst":
            yield from self._pst()
            self._complete = True
            return
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root} is not a directory (any more)")
        if self.kind == "maildir":
            if not is_maildir(self.root):
                raise FileNotFoundError(f"{self.root} is not a Maildir (no cur/ and new/)")
            yield from self._maildir(self.root, "")
        else:
            yield from self._directory(self.root, "")
        self._complete = True

    def _take(self, key: str, path: Path, item: RawMessage | SourceProblem) -> Iterator[Item]:
        if isinstance(item, RawMessage):
            self._handed_out[item.origin] = (key, path)
        yield item

    def _directory(self, path: Path, folder: str) -> Iterator[Item]:
        entries = sorted_entries(path)
        if isinstance(entries, SourceProblem):
            yield entries
            return
        now = time.time()
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if self.recursive:
                    yield from self._directory(Path(entry.path), join_folder(folder,
                                                                             entry.name))
                continue
            if not fnmatch.fnmatch(entry.name, self.pattern):
                continue
            problem = entry_problem(entry)
            if problem is not None:
                yield problem
                continue
            try:
                st = entry.stat()
            except OSError:
                continue  # gone meanwhile
            key = f"{join_folder(folder, entry.name)}\t{st.st_size}\t{st.st_mtime_ns}"
            self._present.add(key)
            if key in self.seen:
                self._archived_before(key, Path(entry.path))
                continue
            if now - st.st_mtime < SETTLE_S:
                continue
            for item in _message_file(Path(entry.path), folder):
                yield from self._take(key, Path(entry.path), item)

    def _pst(self) -> Iterator[Item]:
        """A PST file is read whole again when its size or modification time changed (the
        archive stores what it already has once); unchanged, it is not opened."""
        try:
            st = self.root.stat()
        except OSError as exc:
            raise FileNotFoundError(f"{self.root}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(f"{self.root} is not a PST file (not a regular file)")
        key = f"{self.root.name}\t{st.st_size}\t{st.st_mtime_ns}"
        self._present.add(key)
        if key in self.seen or time.time() - st.st_mtime < SETTLE_S:
            return
        self._pst_key = key
        for item in read_pst(self.root, ""):
            if isinstance(item, RawMessage):
                self._handed_out[item.origin] = (key, self.root)
            yield item

    def _maildir(self, path: Path, folder: str) -> Iterator[Item]:
        found: list[os.DirEntry[str]] = []
        for sub in MESSAGE_DIRS:
            entries = sorted_entries(path / sub)
            if isinstance(entries, SourceProblem):
                yield entries
            else:
                found.extend(e for e in entries if not e.name.startswith("."))
        for entry in sorted(found, key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                continue
            key = f"{folder}\t{_unique(entry.name)}"
            self._present.add(key)
            if key in self.seen:
                self._archived_before(key, Path(entry.path))
                continue
            problem = entry_problem(entry)
            if problem is not None:
                yield problem
                continue
            p = Path(entry.path)
            yield from self._take(key, p, read_message_file(p, folder, flags_from_name(
                entry.name), with_mtime=True))
        if folder == "":
            top = sorted_entries(path)
            if isinstance(top, SourceProblem):
                return
            for entry in top:
                if entry.name.startswith(".") and entry.name not in (".", "..") and \
                        entry.is_dir(follow_symlinks=False) and is_maildir(Path(entry.path)):
                    yield from self._maildir(Path(entry.path), folder_name(entry.name))

    def _archived_before(self, key: str, path: Path) -> None:
        """A file an earlier run archived and did not remove (it was cancelled or cut off
        before its end): removed at the end of this run."""
        if self.delete_after:
            self._doomed.append((key, path))

    # -- after archiving --------------------------------------------------------------------
    def confirm(self, message: RawMessage) -> None:
        got = self._handed_out.pop(message.origin, None)
        if got is None:
            return
        key, path = got
        if self.kind == "pst":
            return  # the file counts as archived when all of it is (finish)
        self.seen.setdefault(key, time.time())
        if self.delete_after:
            self._doomed.append((key, path))

    def finish(self) -> int:
        """After a run: remove the archived files (delete_after) and forget files that are
        gone; returns how many files were removed."""
        deleted = 0
        if self.kind == "pst" and self._complete and self._pst_key and not self._handed_out:
            self.seen[self._pst_key] = time.time()
        for key, path in self._doomed:
            try:
                path.unlink()
                deleted += 1
                self.seen.pop(key, None)
            except FileNotFoundError:
                self.seen.pop(key, None)
            except OSError as exc:
                self.warnings.append(f"{path}: archived but not removed: "
                                     f"{exc.strerror or exc}")
        self._doomed.clear()
        if self._complete:
            for key in [k for k in self.seen if k not in self._present]:
                del self.seen[key]
        return deleted
