"""What a catalog function receives: its arguments, the archive, and the process context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.archive import Archive


class Progress(Protocol):
    """The engine's context as functions see it (jobs.engine.Context satisfies it)."""

    user: str

    def progress(self, percent: int | None, text: str | None = None) -> None: ...

    def log(self, line: str) -> None: ...

    def check_cancelled(self) -> None: ...


@dataclass
class Call:
    """`source` is the archive, or a way to open it: a function that never touches the archive
    (GetServerInfo, a monitoring sensor's favourite) then costs no database at all."""

    source: Archive | Callable[[], Archive]
    args: dict[str, Any]
    ctx: Progress

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
