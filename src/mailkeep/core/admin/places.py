"""Where an administrator may point mailkeep on disk: sources of profiles (watched directories,
Maildirs), store directories and backup targets.

Never into the data directory (its conf/ holds the master key, the connections, the server's
identity: a directory profile deleting what it archived would take them; an unencrypted store
would keep the key in clear), nor onto a directory that holds it; stores only in its stores/
subdirectory. The setting `paths.allowed` (absolute directories, comma separated; empty: no
bound) bounds the rest. Paths are taken resolved, symbolic links followed, and checked again
when they are used.
"""

from __future__ import annotations

from pathlib import Path

from mailkeep.core.errors import InvalidArgument


def roots_of(setting: str | None) -> list[Path]:
    return [Path(p.strip()).resolve() for p in (setting or "").split(",") if p.strip()]


def checked_place(path: Path, data_dir: Path, what: str, roots: list[Path],
                  stores_ok: bool = False) -> Path:
    """The path resolved, if mailkeep may use it for `what`; InvalidArgument saying why not."""
    resolved = path.resolve()
    data = data_dir.resolve()
    inside = resolved == data or resolved.is_relative_to(data)
    if inside and not (stores_ok and resolved.is_relative_to(data / "stores")
                       and resolved != data / "stores"):
        raise InvalidArgument(f"{what} {path} is inside the data directory {data}: choose a "
                              "directory outside it.")
    if not inside and data.is_relative_to(resolved):
        raise InvalidArgument(f"{what} {path} holds the data directory {data}: choose a "
                              "directory that does not.")
    if roots and not inside and not any(resolved == r or resolved.is_relative_to(r)
                                        for r in roots):
        raise InvalidArgument(f"{what} {path} is outside the directories the setting "
                              f"paths.allowed names ({', '.join(str(r) for r in roots)}).")
    return resolved
