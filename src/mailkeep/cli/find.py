"""What `mailkeep search` does, kept quick as a whole process: cli/entry.py runs it straight
from the command line for the forms it takes exactly as click would, and cli/search.py's click
command runs it for the others. It imports cli/output.py and the read-only search of
core/finder.py: not click, nothing of the server, the function catalog or rich
(tests/test_cli.py keeps it so); it opens the Archive only where reading alone would not do
(core/finder.py says when)."""

from __future__ import annotations

import json
import os
import sys
import time
import unicodedata

from mailkeep.cli.output import EXIT_INTERRUPTED, echo, error, plain, styled, warn
from mailkeep.core.errors import Cancelled, MailkeepError
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

    return [styled(line(header), sys.stdout, bold=True)] + [line(r) for r in rows]


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _iso(ts: int) -> str:
    """As datetime.isoformat() gives a UTC time (without importing datetime)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def run_search(data: str | os.PathLike[str], words: list[str], limit: int, offset: int,
               as_json: bool, exact: bool = False) -> int:
    """Search the data directory and print the page (a table, or JSON); the exit code: 0, or
    that of a store not searched, or of a domain error (said on stderr). The total is
    estimated past many matches unless `exact` (catalog_search.Searching.count_matches)."""
    try:
        return _search(data, words, limit, offset, as_json, exact)
    except MailkeepError as exc:
        return error(exc)
    except (Cancelled, KeyboardInterrupt):
        echo("cancelled", err=True)
        return EXIT_INTERRUPTED


def _search(data: str | os.PathLike[str], words: list[str], limit: int, offset: int,
            as_json: bool, exact: bool) -> int:
    start = time.perf_counter()
    q = compile_query(" ".join(words))
    res: SearchResult | None = quick_search(os.path.realpath(data), q, limit, offset, exact)
    if res is None:  # the Archive brings what needs it up to date first
        from pathlib import Path

        from mailkeep.core.archive import Archive
        with Archive(Path(data)) as archive:
            res = archive.search_compiled(q, limit, offset, exact=exact)
    for name, why in res.unavailable.items():
        warn(f"store {plain(repr(name))} not searched: {plain(why.message)}")
    ms = (time.perf_counter() - start) * 1000
    if as_json:
        echo(json.dumps({
            "total": res.total, "totalExact": res.exact, "offset": offset,
            "unavailable": {n: e.message for n, e in res.unavailable.items()},
            "messages": [{"id": h.message_id,
                          "date": _iso(h.hit.date),
                          "from": h.hit.sender, "to": h.hit.recipients,
                          "subject": h.hit.subject, "user": h.hit.owner,
                          "folder": h.hit.folder, "size": h.hit.size,
                          "hasAttachment": h.hit.has_attachment} for h in res.hits]},
            ensure_ascii=False, indent=2))
    else:
        rows = [[h.message_id, _when(h.hit.date), plain(h.hit.sender), plain(h.hit.subject),
                 plain(f"{h.hit.owner}/{h.hit.folder}")] for h in res.hits]
        for text in table(["id", "date", "from", "subject", "folder"], rows,
                          [24, 16, 40, 80, 60]):
            echo(text)
        noun = "message matches" if res.total == 1 else "messages match"
        about = "" if res.exact else "about "
        echo(f"{about}{res.total} {noun} ({ms:.0f} ms)")
    # a partial answer must not look like a complete one to a script
    return max((exit_code(e) for e in res.unavailable.values()), default=0)
