"""A store directory's manifest (store.json) and whether its catalog lags its segments: what
a reader needs to know of a store before it opens anything else of it, in a module that
imports nothing heavy (no crypto, no compression), so that a search from the command line
reads it too (core/finder.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mailkeep.core.errors import CorruptData, NotFound
from mailkeep.core.storage import segments as seg

FORMAT = 1
MANIFEST = "store.json"


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{path} is not a mailkeep store (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise CorruptData(f"{path / MANIFEST} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CorruptData(f"{path / MANIFEST} is not a format-{FORMAT} store manifest")
    return data


def segments_past(path: Path, applied: tuple[int, int]) -> bool:
    """Whether the segments of the store at path hold records past `applied` (segment,
    offset): the point its catalog has applied. Two stats and a directory listing."""
    numbers = seg.segment_numbers(path / "segments")
    if not numbers:
        return False
    last = numbers[-1]
    size = (path / "segments" / seg.segment_name(last)).stat().st_size
    return (last, size) > (applied[0], max(applied[1], len(seg.FILE_HEADER)))
