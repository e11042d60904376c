"""`mailkeep call FUNCTION name=value ...`: any catalog function from the shell, in-process."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from .cli import archive_of, domain_errors, err, main
from .functions import REGISTRY, parse_args
from .functions.call import Call


class LocalContext:
    """What a function reports, shown on the terminal: log lines, and a bar when on a tty."""

    def __init__(self, user: str, progress: Progress | None) -> None:
        self.user = user
        self._progress = progress
        self._task = progress.add_task("running", total=100) if progress else None

    def progress(self, percent: int | None, text: str | None = None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=percent or 0,
                                  description=text or "running")

    def log(self, line: str) -> None:
        err.print(line, highlight=False, markup=False)

    def check_cancelled(self) -> None:
        return None  # Ctrl-C interrupts an in-process call directly


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"arguments are name=value, not {item!r}")
        out[name] = value
    return out


@main.command("call", context_settings={"ignore_unknown_options": True})
@click.argument("function_name", metavar="FUNCTION")
@click.argument("arguments", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--list", "list_only", is_flag=True, help="List the functions instead.")
@click.pass_context
@domain_errors
def call(ctx: click.Context, function_name: str, arguments: tuple[str, ...],
         list_only: bool) -> None:
    """Run an Administration API function in-process and print its result as JSON."""
    if list_only or function_name == "list":
        for each in REGISTRY:
            shown = " ".join(f"{a.name}={'?' if a.nullable else ''}{a.type}" for a in each.args)
            click.echo(f"{each.name} {shown}".rstrip())
        return
    fn = REGISTRY.get(function_name)
    if fn is None:
        raise click.UsageError(f"unknown function {function_name} (see `mailkeep call list`)")
    args = parse_args(fn, _pairs(arguments))
    progress = None
    if fn.long_running and err.is_terminal:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                            console=err, transient=True)
        progress.start()
    try:
        with archive_of(ctx) as archive:
            result: Any = fn.run(Call(archive, args, LocalContext("cli", progress)))
    finally:
        if progress is not None:
            progress.stop()
    if result is not None:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    sys.stdout.flush()
