"""What a catalog function receives: its arguments, the archive, and the process context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mailkeep.core.archive import Archive
from mailkeep.jobs.process import ProcessInfo


class Progress(Protocol):
    """The engine's context as functions see it (jobs.engine.Context satisfies it)."""

    user: str

    def progress(self, percent: int | None, text: str | None = None) -> None: ...

    def log(self, line: str) -> None: ...

    def check_cancelled(self) -> None: ...


@dataclass
class Call:
    """`source` is the archive, or a way to open it: a function that never touches the archive
    (GetServerInfo, a monitoring sensor's favourite) then costs no database at all.

    `jobs` lists the server's other unfinished processes, oldest first (GetServiceStatus shows
    them). The API sets it from its process engine; in-process from the CLI there is no server,
    so it is None and functions see no processes."""

    source: Archive | Callable[[], Archive]
    args: dict[str, Any]
    ctx: Progress
    jobs: Callable[[], list[ProcessInfo]] | None = None

    @property
    def archive(self) -> Archive:
        if not isinstance(self.source, Archive):
            self.source = self.source()
        return self.source

    @property
    def opened(self) -> Archive | None:
        return self.source if isinstance(self.source, Archive) else None

    @property
    def user(self) -> str:
        return self.ctx.user

    def arg(self, name: str) -> Any:
        return self.args.get(name)

    def processes(self) -> list[ProcessInfo]:
        """The server's other unfinished processes, oldest first (empty without a server)."""
        return self.jobs() if self.jobs is not None else []
