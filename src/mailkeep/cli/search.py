"""`mailkeep search`: the command people run most, kept quick as a whole process. It imports
click, cli/output.py and the read-only search of core/finder.py, nothing of the server, the
function catalog or rich (tests/test_cli.py keeps it so); it opens the Archive only where
reading alone would not do (core/finder.py says when)."""

from __future__ import annotations

import json
import re
import sys
import time
import unicodedata
from datetime import UTC, datetime

import click

from mailkeep.cli.output import archive_of, data_dir, domain_errors, plain, warn
from mailkeep.core.finder import SearchResult, quick_search
from mailkeep.core.storage.query import compile_query
from mailkeep.error_table import exit_code

GAP = "  "  # between the table's columns


def cells(text: str) -> int:
    """The columns a terminal gives text: two for a wide (East Asian) character, none for a
    combining mark or a format character."""
    n = 0
    for ch in text:
        if ch < "\u0300":  # Latin, at once
            n += 1
        elif unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        else:
            n += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return n


def fit(text: str, width: int) -> str:
    """text cut to at most `width` columns."""
    if cells(text) <= width:
        return text
    out, n = [], 0
    for ch in text:
        w = cells(ch)
        if n + w > width - 1:
            break
        out.append(ch)
        n += w
    return "".join(out) + "…"


def table(header: list[str], rows: list[list[str]], limits: list[int]) -> list[str]:
    """Plain columns, each as wide as its widest cell (at most its limit); the header bold on
    a terminal. The cells are ours or passed through plain()."""
    rows = [[fit(c, lim) for c, lim in zip(row, limits, strict=True)] for row in rows]
    widths = [max([cells(h)] + [cells(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(row: list[str]) -> str:
        return GAP.join(c + " " * (w - cells(c)) for c, w in zip(row, widths, strict=True)
                        ).rstrip()

    return [click.style(line(header), bold=True)] + [line(r) for r in rows]


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, required=True)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(0, 10000))
@click.option("--offset", default=0, type=click.IntRange(0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@domain_errors
def search(ctx: click.Context, words: tuple[str, ...], limit: int, offset: int, as_json: bool
           ) -> None:
    """Full-text search, newest first.

    Words and "phrases"; from: to: cc: subject: body: attachment: folder: user:
    has:attachment after:DATE before:DATE on:DATE; OR between terms; -term excludes.
    """
    unknown = [w for w in words if re.match(r"--[A-Za-z]", w)]
    if unknown:  # single-dash words are exclusions (-patch); double-dash ones are typos
        raise click.UsageError(f"no such option: {unknown[0]}")
    start = time.perf_counter()
    q = compile_query(" ".join(words))
    res: SearchResult | None = quick_search(data_dir(ctx).resolve(), q, limit, offset)
    if res is None:  # the Archive brings what needs it up to date first
        with archive_of(ctx) as archive:
            res = archive.search_compiled(q, limit, offset)
    for name, why in res.unavailable.items():
        warn(f"store {plain(repr(name))} not searched: {plain(why.message)}")
    ms = (time.perf_counter() - start) * 1000
    if as_json:
        unavailable = {n: e.message for n, e in res.unavailable.items()}
        click.echo(json.dumps({"total": res.total, "offset": offset, "unavailable": unavailable,
                               "messages": [
            {"id": h.message_id, "date": datetime.fromtimestamp(h.hit.date, UTC).isoformat(),
             "from": h.hit.sender, "to": h.hit.recipients, "subject": h.hit.subject,
             "user": h.hit.owner, "folder": h.hit.folder, "size": h.hit.size,
             "hasAttachment": h.hit.has_attachment} for h in res.hits]},
            ensure_ascii=False, indent=2))
    else:
        rows = [[h.message_id, _when(h.hit.date), plain(h.hit.sender), plain(h.hit.subject),
                 plain(f"{h.hit.owner}/{h.hit.folder}")] for h in res.hits]
        for text in table(["id", "date", "from", "subject", "folder"], rows,
                          [24, 16, 40, 80, 60]):
            click.echo(text)
        noun = "message matches" if res.total == 1 else "messages match"
        click.echo(f"{res.total} {noun} ({ms:.0f} ms)")
    if res.unavailable:  # a partial answer must not look like a complete one to a script
        sys.exit(max(exit_code(e) for e in res.unavailable.values()))
