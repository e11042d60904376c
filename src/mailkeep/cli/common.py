"""What every command shares: the consoles, the one invoke path for the commands that run
catalog functions (`call`, and the commands that are projections of one: `store`, `user`,
`settings`, `profile`, `verify`, `recover`), the data directory's archive for those that read
mail (`search`, `show`, `export`, `folders`) or take it in (`import`), and the exit codes of
the one error table (functions/errors.py)."""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from mailkeep.core.archive import Archive
from mailkeep.core.errors import Cancelled, MailkeepError
from mailkeep.core.masterdb import MasterDB
from mailkeep.functions import REGISTRY
from mailkeep.functions.call import Caller, Services
from mailkeep.functions.errors import exit_code
from mailkeep.functions.invoke import Invoker

out = Console(soft_wrap=True, emoji=False, highlight=False)  # text as it is, never ":cd:" -> emoji
err = Console(stderr=True, soft_wrap=True, emoji=False, highlight=False)
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


def shown(value: object, lines: bool = False) -> str:
    """plain(value), its square brackets escaped too: for text inside rich markup (a table
    cell, a line with [bold] in it), where "[/]" would be a markup error and "[link=...]" a
    link."""
    return escape(plain(value, lines))
F = TypeVar("F", bound=Callable[..., Any])
EXIT_INTERRUPTED = 130

__all__ = ["archive_of", "call", "domain_errors", "err", "exit_code", "human", "out", "plain",
           "shown"]


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def fail(exc: MailkeepError) -> None:
    err.print(f"[red]error:[/red] {shown(exc.message)}", highlight=False)
    sys.exit(exit_code(exc))


def domain_errors(fn: F) -> F:
    """Map domain errors to a message on stderr and the exit code of their class."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MailkeepError as exc:
            fail(exc)
        except (Cancelled, KeyboardInterrupt):
            err.print("cancelled: what was done so far is kept", highlight=False)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def data_dir(ctx: click.Context) -> Path:
    path: Path = ctx.obj["data"]
    return path


@contextmanager
def archive_of(ctx: click.Context) -> Iterator[Archive]:
    archive = Archive(data_dir(ctx))
    try:
        yield archive
    finally:
        archive.close()


def caller() -> Caller:
    """The shell's account: a command line has the rights of whoever may read the data
    directory's files."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Caller(name, "cli")


class Terminal:
    """What a function reports, shown on the terminal: a bar on a tty while it runs long, its
    log lines on stderr when asked for. Ctrl-C interrupts an in-process call directly."""

    def __init__(self, bar: bool, show_log: bool) -> None:
        self.show_log = show_log
        self._bar: Progress | None = None
        self._task: Any = None
        if bar and err.is_terminal:
            self._bar = progress_bar()
            self._task = self._bar.add_task("running", total=100)

    def __enter__(self) -> Terminal:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def progress(self, percent: int | None, text: str | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=percent or 0, description=text or "running")

    def log(self, line: str) -> None:
        if self.show_log:
            err.print(plain(line), highlight=False, markup=False)

    def check_cancelled(self) -> None:
        return None


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    console=err, transient=True)


@contextmanager
def invoker_of(ctx: click.Context) -> Iterator[Invoker]:
    """The one invoke path in this process, on the data directory's master database."""
    master = MasterDB.of(data_dir(ctx).resolve())
    services = Services(data_dir(ctx).resolve(), master)
    try:
        yield Invoker(services)
    finally:
        services.close()  # the writer (a profile run) commits what it has first
        master.close()


def call(ctx: click.Context, function: str, /, *, form: Mapping[str, str] | None = None,
         show_log: bool = False, **native: Any) -> Any:
    """Run a catalog function in this process as the shell's account: rights, audit and
    notifications as through any other interface. Arguments as text (`form`) or values
    (None: not given)."""
    fn = REGISTRY.find(function)
    with invoker_of(ctx) as invoker, Terminal(fn.long_running, show_log) as terminal:
        given = {k: v for k, v in native.items() if v is not None}
        return invoker.call(fn, caller(), form=form, native=given or None, ctx=terminal)
