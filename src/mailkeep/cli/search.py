"""`mailkeep search` as a click command: its help, and the command lines cli/entry.py leaves
to click (a bad number, an unknown option). What it does is cli/find.py's."""

from __future__ import annotations

import re
import sys

import click

from mailkeep.cli.entry import LIMIT_DEFAULT, LIMIT_MAX
from mailkeep.cli.find import run_search
from mailkeep.cli.output import data_dir

LIMIT = click.IntRange(0, LIMIT_MAX)
OFFSET = click.IntRange(0)


# "-h" is no help here: a word excluded from the search may hold an h (-patch)
@click.command(context_settings={"ignore_unknown_options": True,
                                 "help_option_names": ["--help"]})
@click.argument("words", nargs=-1, required=True)
@click.option("--limit", default=LIMIT_DEFAULT, show_default=True, type=LIMIT)
@click.option("--offset", default=0, type=OFFSET)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--exact", is_flag=True, help="Count every match (past 10,000 the total is "
              "otherwise estimated).")
@click.pass_context
def search(ctx: click.Context, words: tuple[str, ...], limit: int, offset: int, as_json: bool,
           exact: bool) -> None:
    """Full-text search, newest first.

    Words and "phrases"; from: to: cc: subject: body: attachment: folder: user:
    has:attachment after:DATE before:DATE on:DATE; OR between terms; -term excludes.
    """
    unknown = [w for w in words if re.match(r"--[A-Za-z]", w)]
    if unknown:  # single-dash words are exclusions (-patch); double-dash ones are typos
        raise click.UsageError(f"no such option: {unknown[0]}")
    code = run_search(data_dir(ctx), list(words), limit, offset, as_json, exact)
    if code:
        sys.exit(code)
