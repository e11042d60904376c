"""What a catalog function receives: its arguments, the archive, and the process context."""

from __future__ import annotations

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
    archive: Archive
    args: dict[str, Any]
    ctx: Progress

    @property
    def user(self) -> str:
        return self.ctx.user

    def arg(self, name: str) -> Any:
        return self.args.get(name)
