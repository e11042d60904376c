"""Starting a new current store automatically: each month, quarter or year, or once the current
store has grown to a size. The configuration is the setting `stores.autocreate` (a JSON
object); the archive looks at it whenever it is asked for the current store, so whatever files
mail (an import, a profile run, the journal) starts the new store when it is due."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from string import Formatter
from typing import Any

from mailkeep.core.errors import InvalidArgument
from mailkeep.core.masterdb.stores import NAME_RULE, valid_name

MODES = ("none", "monthly", "quarterly", "yearly", "size")
DEFAULT_PATTERN = {"monthly": "{year}-{month}", "quarterly": "{year}-Q{quarter}",
                   "yearly": "{year}", "size": "Store {n}", "none": ""}
MIN_SIZE_MB = 1
KEYS = ("mode", "sizeLimitMB", "namePattern", "basePath", "encrypt")


@dataclass(frozen=True)
class AutoCreate:
    mode: str = "none"
    size_limit_mb: int | None = None  # mode "size": a new store once the current one has this
    name_pattern: str = ""  # placeholders {year} {month} {quarter} {n}; "": the mode's default
    base_path: str | None = None  # where new stores go; None: <data>/stores
    encrypt: bool = False

    def shown(self) -> dict[str, Any]:
        """As GetStoreAutoCreateConfiguration answers it (the pattern in force)."""
        return {**self.stored(), "namePattern": self.name_pattern or DEFAULT_PATTERN[self.mode]}

    def stored(self) -> dict[str, Any]:
        """As the setting keeps it ("" for the mode's default pattern)."""
        return {"mode": self.mode, "sizeLimitMB": self.size_limit_mb,
                "namePattern": self.name_pattern, "basePath": self.base_path,
                "encrypt": self.encrypt}


NONE = AutoCreate()


def parse(value: Any, before: AutoCreate = NONE) -> AutoCreate:
    """A configuration from its JSON object (fields not given keep the values of `before`);
    InvalidArgument saying what is wrong."""
    if not isinstance(value, dict):
        raise InvalidArgument("the configuration must be a JSON object with mode (none, "
                              "monthly, quarterly, yearly, size), sizeLimitMB, namePattern, "
                              "basePath and encrypt")
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise InvalidArgument(f"unknown field {unknown[0]!r} (known: {', '.join(KEYS)})")
    mode = value.get("mode", before.mode)
    if mode not in MODES:
        raise InvalidArgument(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    size = value.get("sizeLimitMB", before.size_limit_mb)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                             or not MIN_SIZE_MB <= size <= 1 << 30):
        raise InvalidArgument(f"sizeLimitMB must be a whole number of megabytes from "
                              f"{MIN_SIZE_MB}, not {size!r}")
    if mode == "size" and size is None:
        raise InvalidArgument("mode size needs sizeLimitMB")
    pattern = value.get("namePattern", before.name_pattern) or ""
    if "namePattern" not in value and mode != before.mode and \
            pattern == DEFAULT_PATTERN[before.mode]:
        pattern = ""  # the old mode's default does not outlive it
    if pattern or mode != "none":
        check_pattern(pattern or DEFAULT_PATTERN[mode])
    base = value.get("basePath", before.base_path)
    if base is not None and (not isinstance(base, str) or not Path(base).is_absolute()
                             or any(ord(c) < 32 or ord(c) == 127 for c in base)):
        raise InvalidArgument("basePath must be an absolute directory path, without control "
                              "characters (or null: the "
                              "data directory's stores/)")
    encrypt = value.get("encrypt", before.encrypt)
    if not isinstance(encrypt, bool):
        raise InvalidArgument("encrypt must be true or false")
    return AutoCreate(mode, size, pattern, base, encrypt)


def from_stored(value: Any) -> AutoCreate:
    if not value:
        return NONE
    try:
        return parse(value)
    except InvalidArgument:
        return NONE  # a stored value this release cannot read: nothing is started


PLACEHOLDERS = ("year", "month", "quarter", "n")
ROOM = 6  # characters a name leaves for the " (2)" that tells apart stores of one name


def check_pattern(pattern: str) -> None:
    """A pattern whose names are store names: only the four placeholders, as they are (no
    attribute, index, conversion or format), and what it makes follows the store-name rule
    with room to spare; InvalidArgument if not."""
    wrong = InvalidArgument(f"namePattern {pattern!r} must make a store name ({NAME_RULE}) "
                            "from text and the placeholders {year}, {month}, {quarter} and "
                            "{n} as they are")
    if not isinstance(pattern, str):
        raise wrong
    try:
        fields = [(f, spec, conv) for _text, f, spec, conv in Formatter().parse(pattern)
                  if f is not None]
    except ValueError:  # an unmatched brace
        raise wrong from None
    if any(f not in PLACEHOLDERS or spec or conv for f, spec, conv in fields):
        raise wrong
    widest = name_for(pattern, datetime(2026, 12, 1), 10**6)
    if not valid_name(widest) or len(widest) > 100 - ROOM:
        raise wrong


def name_for(pattern: str, now: datetime, n: int) -> str:
    return pattern.format(year=f"{now.year:04d}", month=f"{now.month:02d}",
                          quarter=(now.month - 1) // 3 + 1, n=n)


def _period(mode: str, moment: datetime) -> tuple[int, ...]:
    if mode == "monthly":
        return moment.year, moment.month
    if mode == "quarterly":
        return moment.year, (moment.month - 1) // 3
    return (moment.year,)


def due(config: AutoCreate, created: float, size_bytes: int, now: float | None = None) -> bool:
    """Whether the current store (made at `created`, holding `size_bytes`) is to be followed
    by a new one now."""
    if config.mode == "none":
        return False
    if config.mode == "size":
        return config.size_limit_mb is not None and size_bytes >= config.size_limit_mb << 20
    moment = datetime.fromtimestamp(time.time() if now is None else now)
    return _period(config.mode, datetime.fromtimestamp(created)) < _period(config.mode, moment)
