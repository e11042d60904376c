"""Read single-message files (.eml or any name), bytes unchanged, and the directory helpers the
other readers share. detect.py walks directories and decides what each file is.

Rules: every regular file is one message, byte for byte. An empty file is a SourceProblem (there
is no message in it). Symlinks to files are followed; symlinked directories are not (they could
loop) and are reported. Special files (FIFOs, devices, sockets) are reported, never opened in a
way that could block. internal_date is None: a loose file's mtime says when it was copied, not
when the mail arrived (Maildir, where the mtime does mean delivery, passes it in).
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from mailkeep.core.message import RawMessage, SourceProblem

SPOOL_THRESHOLD = 32 * 1024 * 1024  # bytes; larger files are handed out as open streams


def read_message_file(
    path: Path,
    folder: str,
    flags: frozenset[str] = frozenset(),
    with_mtime: bool = False,
) -> RawMessage | SourceProblem:
    """Read one file as one message; any OSError becomes a SourceProblem.

    A file larger than SPOOL_THRESHOLD comes back as an open stream instead of bytes.
    With `with_mtime`, internal_date is the file's modification time.
    """
    origin = str(path)
    try:
        f = open_regular(path)
    except OSError as exc:
        return SourceProblem(origin, os_reason(exc))
    try:
        st = os.fstat(f.fileno())
        date = st.st_mtime if with_mtime else None
        if st.st_size > SPOOL_THRESHOLD:
            return RawMessage(
                folder, origin, stream=f, size=st.st_size, flags=flags, internal_date=date
            )
        with f:
            data = f.read()
    except OSError as exc:
        f.close()
        return SourceProblem(origin, os_reason(exc))
    if not data:
        return SourceProblem(origin, "empty file", skipped=True)
    return RawMessage(folder, origin, data=data, flags=flags, internal_date=date)


class NotRegularFileError(OSError):
    """Raised by open_regular for directories, FIFOs, devices and sockets."""


def open_regular(path: Path) -> io.BufferedReader:
    """Open a regular file for reading; OSError (NotRegularFileError) for anything else."""
    # O_NONBLOCK so that a FIFO cannot hang the open; reads of regular files ignore it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFileError("not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def join_folder(parent: str, name: str) -> str:
    """Folder paths are '/'-separated; "" is the base folder."""
    return f"{parent}/{name}" if parent else name


def sorted_entries(directory: Path) -> list[os.DirEntry[str]] | SourceProblem:
    """The entries of `directory` sorted by name, or a SourceProblem if it cannot be listed."""
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        return SourceProblem(str(directory), f"cannot list directory: {os_reason(exc)}")


def entry_problem(entry: os.DirEntry[str]) -> SourceProblem | None:
    """Why a directory entry that is neither a plain directory nor a file is not read."""
    try:
        if entry.is_symlink() and entry.is_dir():
            return SourceProblem(entry.path, "symlinked directory not followed", skipped=True)
        if entry.is_dir(follow_symlinks=False) or entry.is_file():
            return None
        if entry.is_symlink():
            return SourceProblem(entry.path, "broken symlink")
    except OSError as exc:
        return SourceProblem(entry.path, os_reason(exc))
    return SourceProblem(entry.path, "not a regular file", skipped=True)


def os_reason(exc: OSError) -> str:
    """A short reason: "No such file or directory" rather than the whole repr."""
    return exc.strerror or str(exc) or type(exc).__name__
