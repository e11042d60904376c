"""The master database of a data directory: the one place that opens it, and, in the modules
of this package, all of its SQL. Each area has a repository with a narrow interface (rows in,
rows out, no rules): the stores registry, the audit log, accounts, console sessions, settings,
jobs and their runs, process history, profiles and worker results, and the notification
outbox. A second backend (PostgreSQL) is one more implementation of these classes.

Connections: one per thread that uses it (SQLite in WAL mode lets readers run beside the one
writer), all closed by `close()`. `tx()` is a write transaction (BEGIN IMMEDIATE); inside one,
the repositories' calls join it.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # (typing is not imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from typing import Any

    from mailkeep.core.masterdb.accounts import AccountRow
    from mailkeep.core.masterdb.database import MasterDB
    from mailkeep.core.masterdb.jobs import Job, Schedule
    from mailkeep.core.masterdb.schema import FILE
    from mailkeep.core.masterdb.stores import STATES, StoreRecord

__all__ = ["FILE", "STATES", "AccountRow", "Job", "MasterDB", "Schedule", "StoreRecord"]

# Each name is imported when it is first asked for: a process that only reads the stores
# registry (core/finder.py) does not import the repositories of every other area.
_MODULES = {"AccountRow": "accounts", "MasterDB": "database", "Job": "jobs",
            "Schedule": "jobs", "FILE": "schema", "STATES": "stores", "StoreRecord": "stores"}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
