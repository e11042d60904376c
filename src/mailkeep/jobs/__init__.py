"""Long-running processes: the engine behind invoke, get-status and cancel-async."""

from mailkeep.jobs.engine import (
    Cancelled,
    Context,
    Engine,
    FinishedRecord,
    ProcessInfo,
    Snapshot,
    UnknownToken,
)

__all__ = [
    "Cancelled",
    "Context",
    "Engine",
    "FinishedRecord",
    "ProcessInfo",
    "Snapshot",
    "UnknownToken",
]
