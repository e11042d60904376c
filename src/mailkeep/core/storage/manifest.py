"""A store directory's manifest (store.json), its segment files' names, and whether its catalog
lags its segments: what a reader needs to know of a store before it opens anything else of it,
in a module that imports nothing heavy (no crypto, no compression, not segments.py), so that a
search from the command line reads it too (core/finder.py)."""

from __future__ import annotations

import json
import os

from mailkeep.core.errors import CorruptData, NotFound

TYPE_CHECKING = False  # (typing is not imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from typing import Any

    StrPath = str | os.PathLike[str]

FORMAT = 1
MANIFEST = "store.json"
FILE_HEADER = b"MKSEG01\n"  # what each segment file starts with (segments.py)


def segment_name(number: int) -> str:
    return f"{number:06d}.seg"


def segment_numbers(directory: StrPath) -> list[int]:
    """The numbers of the segment files in directory, ascending ([] if it is not there)."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(n[:-4]) for n in names if n.endswith(".seg") and n[:-4].isdigit()
                  and n[:-4].isascii())


def read_manifest(path: StrPath) -> dict[str, Any]:
    file = os.path.join(path, MANIFEST)
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.loads(fh.read())
    except FileNotFoundError:
        raise NotFound(f"{os.fspath(path)} is not a mailkeep store (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise CorruptData(f"{file} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CorruptData(f"{file} is not a format-{FORMAT} store manifest")
    return data


def segments_past(path: StrPath, applied: tuple[int, int]) -> bool:
    """Whether the segments of the store at path hold records past `applied` (segment,
    offset): the point its catalog has applied. Two stats and a directory listing."""
    numbers = segment_numbers(os.path.join(path, "segments"))
    if not numbers:
        return False
    last = numbers[-1]
    size = os.stat(os.path.join(path, "segments", segment_name(last))).st_size
    return (last, size) > (applied[0], max(applied[1], len(FILE_HEADER)))
