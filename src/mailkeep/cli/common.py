"""What every command shares: the consoles, the data directory's archive, and the mapping of
domain errors to messages and exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console

from mailkeep.core import errors
from mailkeep.core.archive import Archive
from mailkeep.core.errors import Cancelled

EXIT_CODES: dict[type[errors.MailkeepError], int] = {
    errors.InvalidArgument: 2,
    errors.NotFound: 3,
    errors.Conflict: 4,
    errors.StoreUnavailable: 5,
    errors.CorruptData: 6,
    errors.KeyMissing: 7,
}

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def exit_code(exc: errors.MailkeepError) -> int:
    return next((c for cls, c in EXIT_CODES.items() if isinstance(exc, cls)), 1)


def domain_errors(fn: F) -> F:
    """Map domain errors to a message on stderr and the exit code of their class."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.MailkeepError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False)
            sys.exit(exit_code(exc))
        except Cancelled:
            err.print("cancelled: what was archived so far is kept", highlight=False)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@contextmanager
def archive_of(ctx: click.Context) -> Iterator[Archive]:
    archive = Archive(ctx.obj["data"])
    try:
        yield archive
    finally:
        archive.close()


