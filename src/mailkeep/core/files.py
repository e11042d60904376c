"""Writing files so that a crash leaves the old content or the new, never half of either; and
keeping the server's files private to its user (the archive, password hashes, the audit log):
directories 0700 and files 0600, also when they existed before with wider modes."""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # (typing is not imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

def private_dir(path: Path) -> Path:
    """Make the directory (and its missing parents) if needed, and take every permission of
    group and others away from it if this user owns it: nothing below it is then reachable by
    other users, whatever the modes of what is in it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    private(path)
    return path


def private(path: str | os.PathLike[str]) -> None:
    """Take the permissions of group and others away from a file or directory this user owns
    (the others are left alone: a store on read-only media, someone else's file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        try:
            os.chmod(path, st.st_mode & 0o7700)
        except OSError:
            pass  # read-only file system: its files cannot be changed by anyone anyway


def create_private(path: str | os.PathLike[str]) -> None:
    """Create an empty file readable by its owner only unless it exists (SQLite's databases:
    their -wal and -shm files take the mode of the database file); make an existing one
    private."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        private(path)


def write_json_atomic(path: Path, data: dict[str, Any], mode: int = 0o600) -> None:
    """Temp file, fsync, rename, fsync of the directory: the old file or the new one after a
    crash, never half of one. A failed write leaves no temp file behind."""
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def append_synced(path: Path, data: bytes) -> None:
    """Append to a file of this user only (made if need be) and make it durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write a file that must not exist yet (never through a symbolic link); False if it
    does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


DEFAULT_DATA_DIR = "./mailkeep-data"


def default_data_dir() -> Path:
    """The data directory when none is named: $MAILKEEP_DATA, else ./mailkeep-data."""
    from pathlib import Path
    return Path(os.environ.get("MAILKEEP_DATA", DEFAULT_DATA_DIR))


def sqlite_read_only(path: str | os.PathLike[str]) -> str:
    """The URI that opens the SQLite database at path for reading only (sqlite3.connect(...,
    uri=True)): absolute, its bytes percent-encoded but for the plainly safe ones, so that no
    ?, # or % in a directory's name is read as URI syntax."""
    full = os.fsencode(path)
    if not os.path.isabs(full):
        full = os.path.join(os.getcwdb(), full)  # not normalised: a/link/.. stays as it is
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-._~"
    quoted = "".join(chr(b) if b in safe else f"%{b:02X}" for b in full)
    return f"file://{quoted}?mode=ro"


SERVING_LOCK = "serve.lock"  # in the data directory: held shared by each server, exclusive
# by a migration (core/migrate.py), so that neither runs while the other does


def try_flock(path: Path, exclusive: bool) -> int | None:
    """An flock on `path` (made, private, if need be), shared or exclusive, for as long as
    the returned descriptor stays open; None if another process holds it the other way; -1
    if the file cannot be made where it is missing (a read-only directory)."""
    import fcntl
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        try:  # (a read-only data directory: an flock needs no write access)
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return -1  # none can be taken here, by anyone: nothing to hold
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
