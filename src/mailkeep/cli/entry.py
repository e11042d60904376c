"""The `mailkeep` command's entry point. Importing click costs a whole search's budget of time,
so `mailkeep [--data DIR] search WORDS... [--limit N] [--offset N] [--json]` is answered here
without it, by cli/find.py, the function the click command runs too. Any other command line,
and any form of search this does not read exactly as click would (help, a number that is not
one, out of range or given twice, an unknown option, no words), goes to the click group of
cli/__init__.py, which answers it or says what is wrong. tests/test_cli.py checks that every
command line this reads, click reads alike.

`mailkeep --help` is answered here too, with the text click writes for a terminal of 80 columns
or more (cli/help_text.py, which `make docs` writes and a test keeps equal to click's); on a
narrower terminal click answers it.

The modules a search imports (this one, cli/find.py, core/finder.py and what they import) keep
off typing, dataclasses and pathlib: those three took a third of the search's time as a whole
process. tests/test_cli.py keeps them off."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence

NUMBER = re.compile(r"[0-9]{1,9}")
LIMIT_MAX = 10_000  # of --limit (cli/search.py declares it with these)
LIMIT_DEFAULT = 20
HELP_COLUMNS = 80  # at least this wide, click's help is as wide as for 80 columns

# (data directory, words, limit, offset, as JSON, the exact total)
SearchArgs = tuple["str | os.PathLike[str]", list[str], int, int, bool, bool]
FLAGS = ("--json", "--exact")


def quick_args(argv: Sequence[str], env: Mapping[str, str]) -> SearchArgs | None:
    """The search a command line asks for, when it is one this reads exactly as click would;
    None for any other."""
    i, data = 0, None
    if i < len(argv) and (argv[i] == "--data" or argv[i].startswith("--data=")):
        if argv[i] == "--data":
            if i + 1 >= len(argv):
                return None
            data, i = argv[i + 1], i + 2
        else:
            data, i = argv[i][len("--data="):], i + 1
        if not data:
            return None
    if i >= len(argv) or argv[i] != "search":
        return None
    words: list[str] = []
    given: dict[str, str] = {}
    rest = list(argv[i + 1:])
    while rest:
        token = rest.pop(0)
        if token == "--":
            words.extend(rest)
            break
        if not token.startswith("--"):
            words.append(token)  # a word, or an exclusion (-word)
            continue
        name, eq, value = token.partition("=")
        if name in FLAGS and not eq:
            value = "1"
        elif name in ("--limit", "--offset") and not eq:
            if not rest:
                return None
            value = rest.pop(0)
        elif name not in ("--limit", "--offset"):
            return None  # --help, an unknown option, --json=...: click's to answer
        if name in given or (name not in FLAGS and not NUMBER.fullmatch(value)):
            return None
        given[name] = value
    if not words or any(re.match(r"--[A-Za-z]", w) for w in words):
        return None  # (the command refuses such a word after -- as a mistyped option)
    limit = int(given.get("--limit", LIMIT_DEFAULT))
    offset = int(given.get("--offset", "0"))
    if limit > LIMIT_MAX:
        return None
    if env.get("MAILKEEP_DATABASE"):
        return None  # the registry is in PostgreSQL: the full search reads it
    if data is None:
        data = env.get("MAILKEEP_DATA")
        if data == "":
            return None
    if data is None:
        from mailkeep.core.files import DEFAULT_DATA_DIR  # (default_data_dir imports pathlib)
        data = DEFAULT_DATA_DIR
    if os.path.exists(os.path.join(data, "conf", "backends.json")):
        return None  # its engines are kept as a setting (PostgreSQL): the full search
    return data, words, limit, offset, "--json" in given, "--exact" in given


def terminal_columns() -> int:
    """The width click formats help for: shutil.get_terminal_size()'s (which imports more
    than a search does): $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def quick_help(argv: Sequence[str]) -> str | None:
    """`mailkeep --help` as click would write it, where it would write the text it writes for
    80 columns; None for any other command line."""
    if list(argv[1:]) not in (["--help"], ["-h"]) or os.path.basename(argv[0]) != "mailkeep":
        return None
    if terminal_columns() < HELP_COLUMNS:
        return None
    from mailkeep.cli.help_text import HELP
    return HELP


def run() -> None:
    text = quick_help(sys.argv)
    if text is not None:
        sys.stdout.write(text)
        sys.stdout.flush()
        sys.exit(0)
    args = quick_args(sys.argv[1:], os.environ)
    if args is not None:
        from mailkeep.cli.find import run_search
        try:
            code = run_search(*args)
        except BrokenPipeError:  # the reader went away (| head): as click, exit 1 quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = 1
        sys.exit(code)
    from mailkeep.cli import main
    main()
