"""What the commands share beyond cli/output.py: the rich consoles, and the one invoke path for
the commands that run catalog functions (`call`, and the commands that are projections of one:
`store`, `user`, `settings`, `profile`, `verify`, `recover`). The data directory's archive for
those that read mail (`show`, `export`, `folders`) or take it in (`import`), and the exit codes
of the one error table (error_table.py), come from cli/output.py, which `search` uses alone.
The function catalog is imported by the first call only: `import`, `show` and `export` do
without it (0.17 s of their start)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from mailkeep.cli.output import (
    EXIT_INTERRUPTED,
    archive_of,
    data_dir,
    domain_errors,
    human,
    plain,
    warn,
)
from mailkeep.core.caller import Caller
from mailkeep.core.masterdb import MasterDB
from mailkeep.error_table import exit_code

if TYPE_CHECKING:
    from mailkeep.functions.invoke import Invoker

out = Console(soft_wrap=True, emoji=False, highlight=False)  # text as it is, never ":cd:" -> emoji
err = Console(stderr=True, soft_wrap=True, emoji=False, highlight=False)
__all__ = ["EXIT_INTERRUPTED", "archive_of", "call", "data_dir", "domain_errors", "err",
           "exit_code", "human", "out", "plain", "shown", "warn"]


def shown(value: object, lines: bool = False) -> str:
    """plain(value), its square brackets escaped too: for text inside rich markup (a table
    cell, a line with [bold] in it), where "[/]" would be a markup error and "[link=...]" a
    link."""
    return escape(plain(value, lines))


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
    from mailkeep.functions.call import Services
    from mailkeep.functions.invoke import Invoker
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
    from mailkeep.functions import REGISTRY
    fn = REGISTRY.find(function)
    with invoker_of(ctx) as invoker, Terminal(fn.long_running, show_log) as terminal:
        given = {k: v for k, v in native.items() if v is not None}
        return invoker.call(fn, caller(), form=form, native=given or None, ctx=terminal)
