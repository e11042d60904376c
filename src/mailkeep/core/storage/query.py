"""Search queries: words, "phrases", field filters, OR and -negation, compiled to SQL.

Words and phrases go to the FTS5 index (CJK runs as bigram phrases, see text.py). Dates
stay in seconds, folder: and user: become conditions on the folders table, has:attachment a
flag: each catalog plans with them its own way (catalog_search.py). What is left (negated
folders, has:attachment with its negation) is plain SQL on the entries.
"""

from __future__ import annotations

import re

from mailkeep.core.errors import InvalidArgument
from mailkeep.core.mime.cjk import cjk_segment, query_tokens

COLUMNS = {"from": "sender", "sender": "sender", "to": "recipients", "cc": "recipients",
           "bcc": "recipients", "subject": "subject", "body": "body", "text": "body",
           "attachment": "attachments", "filename": "attachments"}
UNIX_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
SQL_FIELDS = ("folder", "user", "has", "after", "before", "on")
TOKEN = re.compile(r'(-?)(?:(\w+):)?("(?:[^"]*)"?|\S+)')


class Query:
    """A compiled search: what the catalog runs against entries e, blobs b, folders f. (A
    plain class: the search from the command line does not import dataclasses, cli/entry.py.)"""

    __slots__ = ("match", "exclude", "date_min", "date_max", "outside", "folders", "attached",
                 "where", "params", "terms", "groups", "negated")

    def __init__(self) -> None:
        self.match: str | None = None  # FTS5 expression; None when the query has no words
        self.exclude: list[str] = []  # FTS5 expressions to leave out
        # The date filters, in seconds: [date_min, date_max), and none in any [lo, hi) of
        # outside. Each catalog makes them ranges of its own entry keys (key_of_day).
        self.date_min: int | None = None
        self.date_max: int | None = None
        self.outside: list[tuple[int, int]] = []
        # Conditions on the folders table (owner, path), all of which a message's folder
        # meets: folder: and user: filters, a caller's scope. Each catalog finds those folders
        # first, and searches through their entries when they hold few (catalog_search).
        self.folders: list[tuple[str, list[object]]] = []
        self.attached: bool | None = None  # has:attachment (True), -has:attachment (False)
        self.where: list[str] = []  # SQL conditions on entries e only
        self.params: list[object] = []
        self.terms: list[str] = []  # each word or phrase sought, on its own
        # The same words and phrases for a catalog that is not FTS5 (catalog_pg.py): an AND of
        # ORs of terms, and the terms excluded; a term is (column or None for any, its text as
        # the index tokenizes it, whether its last token is a prefix).
        self.groups: list[list[tuple[str | None, str, bool]]] = []
        self.negated: list[tuple[str | None, str, bool]] = []

    def __repr__(self) -> str:
        return "Query(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def and_where(self, condition: str, *params: object) -> Query:
        """A copy with one more SQL condition on the entries."""
        out = Query()
        for k in self.__slots__:
            setattr(out, k, getattr(self, k))
        out.where, out.params = [*self.where, condition], [*self.params, *params]
        return out

    def narrow(self, lo: int | None, hi: int | None) -> None:
        if lo is not None:
            self.date_min = lo if self.date_min is None else max(self.date_min, lo)
        if hi is not None:
            self.date_max = hi if self.date_max is None else min(self.date_max, hi)


class _Parsed:
    __slots__ = ("query", "groups", "negated", "terms")

    def __init__(self) -> None:
        self.query = Query()
        self.groups: list[list[str]] = []  # AND of ORs of FTS terms
        self.negated: list[str] = []
        self.terms: dict[str, tuple[str | None, str, bool]] = {}  # FTS term: its parts


def _fts_string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _fts_term(value: str, column: str | None,
              parts: dict[str, tuple[str | None, str, bool]] | None = None) -> str | None:
    """One FTS5 expression for a word or phrase, or None if it holds nothing searchable;
    `parts` gets its (column, text, prefix)."""
    phrase = value.startswith('"')
    text = value.strip('"')
    prefix = not phrase and text.endswith("*") and len(text) > 1
    if prefix:
        text = text[:-1]
    if not re.search(r"\w", text):
        return None
    tokens = query_tokens(text) if not phrase else [cjk_segment(text)]
    if len(tokens) == 1 and len(tokens[0]) == 1 and not tokens[0].isascii():
        prefix = True  # one CJK character: the index only holds it inside bigrams
    expr = _fts_string(" ".join(tokens))
    if prefix:
        expr += "*"
    expr = f"{{{column}}} : {expr}" if column else expr
    if parts is not None:
        parts[expr] = (column, " ".join(tokens), prefix)
    return expr


def _day(value: str, end: bool) -> int:
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?", value)
    if not m:
        raise InvalidArgument(f"date {value!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
    from datetime import date  # (only here: a plain search does not import it)
    y, mo, d = int(m.group(1)), m.group(2), m.group(3)
    try:
        if d is not None:
            start = date(y, int(mo), int(d))
            nxt = date.fromordinal(start.toordinal() + 1)
        elif mo is not None:
            start = date(y, int(mo), 1)
            nxt = date(y + int(mo) // 12, int(mo) % 12 + 1, 1)
        else:
            start, nxt = date(y, 1, 1), date(y + 1, 1, 1)
    except ValueError:
        raise InvalidArgument(f"date {value!r} does not exist") from None
    chosen = nxt if end else start
    return (chosen.toordinal() - UNIX_EPOCH_ORDINAL) * 86400  # its midnight UTC


def _sql_filter(q: Query, name: str, value: str, negate: bool) -> None:
    value = value.strip('"')
    if name == "has":
        if value.lower() not in ("attachment", "attachments"):
            raise InvalidArgument(f"has:{value} is not known (try has:attachment)")
        if q.attached is not None and q.attached == negate:
            q.where.append("1 = 0")  # has:attachment -has:attachment: nothing
        q.attached = not negate
        return
    if name in ("after", "before", "on"):
        lo, hi = _day(value, end=False), _day(value, end=True)
        if name == "on" and negate:
            q.outside.append((lo, hi))
        elif name == "on":
            q.narrow(lo, hi)
        elif (name == "after") != negate:  # on or after that day
            q.narrow(lo, None)
        else:  # before it
            q.narrow(None, lo)
        return
    if name == "folder":
        # Folder names are matched without regard to case, like LIKE does for the subfolders;
        # as a path in any user's archive (folder:Invoices), or as <user>/<path>, as folders
        # are shown (folder:alice/Invoices).
        value = value.strip("/")
        # (lower() and LIKE of lower(): without regard to case in SQLite and PostgreSQL alike)
        cond = ("(lower(path) = lower(?) OR lower(path) LIKE lower(?) ESCAPE '\\'"
                " OR lower(owner || '/' || path) = lower(?)"
                " OR lower(owner || '/' || path) LIKE lower(?) ESCAPE '\\')")
        like = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        params: list[object] = [value, like, value, like]
    else:  # user
        cond, params = "owner = ?", [value]
    if negate:
        q.where.append(f"e.folder_id NOT IN (SELECT id FROM folders WHERE {cond})")
        q.params.extend(params)
    else:
        q.folders.append((cond, params))


def _tokens(query: str) -> list[tuple[bool, str | None, str]]:
    out = []
    for m in TOKEN.finditer(query):
        negate, name, value = m.group(1) == "-", m.group(2), m.group(3)
        if name is not None and name.lower() not in COLUMNS and name.lower() not in SQL_FIELDS:
            # not a known field: the whole thing is a word (e.g. "re:" or a URL)
            value, name = f"{name}:{value}", None
        out.append((negate, name.lower() if name else None, value))
    return out


def fields_of(query: str) -> list[str | None]:
    """The field each term of a search names (None: a bare word or phrase; "OR" left out)."""
    return [name for negate, name, value in _tokens(query)
            if not (name is None and value == "OR" and not negate)]


def compile_query(query: str) -> Query:
    """Parse a search; bad filter values raise InvalidArgument, stray syntax is taken as words."""
    p = _Parsed()
    pending_or = False
    for negate, name, value in _tokens(query):
        if name is None and value == "OR" and not negate:
            pending_or = bool(p.groups)
            continue
        if name in SQL_FIELDS:
            _sql_filter(p.query, name, value, negate)
            pending_or = False
            continue
        term = _fts_term(value, COLUMNS.get(name) if name else None, p.terms)
        if term is None:
            continue
        if negate:
            p.negated.append(term)
        elif pending_or:
            p.groups[-1].append(term)
        else:
            p.groups.append([term])
        pending_or = False
    q = p.query
    q.terms = [t for g in p.groups for t in g]
    q.groups = [[p.terms[t] for t in g] for g in p.groups]
    q.negated = [p.terms[t] for t in p.negated]
    if p.groups:
        q.match = " AND ".join(g[0] if len(g) == 1 else "(" + " OR ".join(g) + ")"
                               for g in p.groups)
        for term in p.negated:  # FTS5's NOT is binary: fold exclusions into the match
            q.match = f"({q.match}) NOT {term}"
    else:
        q.exclude = p.negated
    return q
