"""The `mailkeep` command line: archive administration from a shell.

cli/entry.py is the entry point: it answers the plain forms of `mailkeep search` itself, without
importing click, and hands every other command line to the click group of cli/group.py (`main`,
its commands in COMMANDS). This package imports neither until a name of theirs is asked for.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # (typing is not imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from typing import Any

    from mailkeep.cli.group import COMMANDS, LazyGroup, main

__all__ = ["COMMANDS", "LazyGroup", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("mailkeep.cli.group"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
