"""What every command shares and a quick one can afford: text from outside made safe for a
terminal, sizes for people, the data directory and its archive, and domain errors as a
message on stderr with the exit code of the one error table (error_table.py). It imports
nothing heavy, not even click: `mailkeep search` answers in tens of milliseconds with it
alone (cli/entry.py, tests/test_cli.py). cli/common.py adds the rich consoles and the
function catalog for the other commands."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from functools import wraps

from mailkeep.core.errors import Cancelled, MailkeepError
from mailkeep.error_table import exit_code

TYPE_CHECKING = False  # (typing is not imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, TextIO, TypeVar

    import click

    from mailkeep.core.archive import Archive

    F = TypeVar("F", bound=Callable[..., Any])
EXIT_INTERRUPTED = 130
# What a terminal would act on rather than show: C0 and C1 controls (escape sequences, bells,
# carriage returns that overwrite a line), DEL, and the bidirectional overrides that reorder
# what is shown.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                            "\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(value: object, lines: bool = False) -> str:
    """Text from outside (archived mail, names, a server's answer) as a terminal should show
    it: every control character visible as \\xNN or \\uNNNN (line breaks and tabs kept with
    lines=True). For printing with markup=False."""
    return (_LINE_CONTROLS if lines else _CONTROLS).sub(_visible, str(value))


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


COLOURS = {"red": 31, "yellow": 33}


def styled(text: str, stream: TextIO, colour: str | None = None, bold: bool = False) -> str:
    """text with ANSI colour or bold when stream is a terminal (and NO_COLOR is not set), as
    click.style and click.echo would show it; as it is otherwise."""
    if not stream.isatty() or os.environ.get("NO_COLOR"):
        return text
    codes = ([str(COLOURS[colour])] if colour else []) + (["1"] if bold else [])
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes else text


def echo(text: str, err: bool = False) -> None:
    """One line on stdout (stderr with err), as it is: ours, or passed through plain."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def warn(text: str) -> None:
    """A warning on stderr; `text` is ours (what came from outside passed through plain)."""
    echo(f"{styled('warning:', sys.stderr, 'yellow')} {text}", err=True)


def error(exc: MailkeepError) -> int:
    """A domain error on stderr; its exit code."""
    echo(f"{styled('error:', sys.stderr, 'red')} {plain(exc.message)}", err=True)
    return exit_code(exc)


def fail(exc: MailkeepError) -> None:
    sys.exit(error(exc))


def domain_errors(fn: F) -> F:
    """Map domain errors to a message on stderr and the exit code of their class."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MailkeepError as exc:
            fail(exc)
        except (Cancelled, KeyboardInterrupt):
            echo("cancelled: what was done so far is kept", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def data_dir(ctx: click.Context) -> Path:
    path: Path = ctx.obj["data"]
    return path


class archive_of:  # noqa: N801 (used as a function: `with archive_of(ctx) as archive`)
    """The data directory's Archive for a `with` block, closed at its end. (A class, not a
    contextlib.contextmanager: the search path does not import contextlib, cli/entry.py.)"""

    def __init__(self, ctx: click.Context) -> None:
        self.ctx = ctx
        self.archive: Archive | None = None

    def __enter__(self) -> Archive:
        from mailkeep.core.archive import Archive
        self.archive = Archive(data_dir(self.ctx))
        return self.archive

    def __exit__(self, *exc: object) -> None:
        if self.archive is not None:
            self.archive.close()
