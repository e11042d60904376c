"""A PostgreSQL connection that the repositories use as they use Python's sqlite3 connection:
`execute(sql, params)` with `?` placeholders, returning a cursor to fetch from; `executemany`;
`executescript`. A statement's errors are raised as the DB-API errors of the sqlite3 module
(IntegrityError, OperationalError, DatabaseError), the one set of database errors the code
catches, with PostgreSQL's own message (which never holds the password).

The repositories (core/masterdb/, the store catalog) write their SQL once, for both engines,
where the two agree; where they do not, they ask `postgres` and write each engine's form.
Nothing here knows a table.

The connection is made from a libpq URL (`postgresql://user@host:port/db?sslmode=...`); the
`PG*` environment variables (PGPASSWORD, PGHOST, ...) and ~/.pgpass fill in what it leaves
out, as for every PostgreSQL client."""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg

from mailkeep.core.errors import MailkeepError

CONNECT_TIMEOUT_S = 10
APPLICATION = "mailkeep"
# A server whose machine is lost sends nothing more, not even the end of its connections: the
# database finds out by TCP keepalives, here after 10 s of silence and 3 probes 3 s apart
# (and after 15 s of data not acknowledged), and ends its session, which lets go of the
# locks it held (a store's write lock, a run lock). Each side checks the other.
KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3,
             "keepalives_count": 3}
SERVER_KEEPALIVE = ("SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 3",
                    "SET tcp_keepalives_count = 3", "SET tcp_user_timeout = 15000")


def is_postgres(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def without_password(url: str) -> str:
    """The URL as it may be shown: its password (if it has one) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?|%")


@functools.lru_cache(maxsize=1024)
def translated(sql: str) -> str:
    """sqlite3's placeholders (`?`) as psycopg's (`%s`), and `%` written as psycopg reads it;
    string literals, quoted names and comments as they are."""
    def one(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token
    return _TOKEN.sub(one, sql)


class DatabaseUnavailable(MailkeepError, sqlite3.OperationalError):
    """PostgreSQL cannot be reached, or the connection to it was lost (the next statement
    connects again)."""


def _error(exc: psycopg.Error, broken: bool = False) -> sqlite3.Error:
    """A psycopg error as the sqlite3 module's error of the same DB-API kind; a connection
    that failed or broke as DatabaseUnavailable."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if broken:
        return DatabaseUnavailable(f"PostgreSQL cannot be reached: {text}")
    kind: type[sqlite3.Error]
    if isinstance(exc, psycopg.IntegrityError):
        kind = sqlite3.IntegrityError
    elif isinstance(exc, psycopg.OperationalError):
        kind = sqlite3.OperationalError
    elif isinstance(exc, psycopg.ProgrammingError):
        kind = sqlite3.ProgrammingError
    elif isinstance(exc, psycopg.InterfaceError):
        kind = sqlite3.InterfaceError
    else:
        kind = sqlite3.DatabaseError
    return kind(f"PostgreSQL: {text}")


def without_secrets(text: str, url: str) -> str:
    """An error's text without the password of `url`, where libpq repeats it: the whole URL
    it cannot parse, its user part, or the token it chokes on (quoted); nor any password=...
    (only those places: masking every occurrence of a short password would show it)."""
    secrets = []
    userinfo = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@", url)
    if userinfo is not None and ":" in userinfo.group(1):
        secrets.append(userinfo.group(1).split(":", 1)[1])
    secrets += re.findall(r"password=([^&\s\"']+)", url)
    text = text.replace(url, without_password_anywhere(url, secrets))
    for secret in secrets:
        for form in {secret, unquote(secret)}:
            if form:
                for shown in (f'"{form}"', f":{form}@", f"password={form}"):
                    text = text.replace(shown, shown.replace(form, "***"))
    return text


def without_password_anywhere(url: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            url = url.replace(f":{secret}@", ":***@").replace(f"password={secret}",
                                                              "password=***")
    return url


class Cursor:
    """The rows of one statement, read as from a sqlite3 cursor."""

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self) -> Any:
        try:
            return self._cur.fetchone() if self._cur.description else None
        except psycopg.Error as exc:
            raise _error(exc, self._cur.connection.broken) from exc

    def fetchall(self) -> list[Any]:
        try:
            return self._cur.fetchall() if self._cur.description else []
        except psycopg.Error as exc:
            raise _error(exc, self._cur.connection.broken) from exc

    def fetchmany(self, size: int) -> list[Any]:
        try:
            return self._cur.fetchmany(size) if self._cur.description else []
        except psycopg.Error as exc:
            raise _error(exc, self._cur.connection.broken) from exc

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    def close(self) -> None:
        self._cur.close()


class Connection:
    """One connection to PostgreSQL, in autocommit: each statement is its own transaction
    unless the caller opened one (BEGIN ... COMMIT), as with sqlite3's isolation_level=None."""

    postgres = True

    def __init__(self, url: str, *, name: str = APPLICATION) -> None:
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                         application_name=name,
                                         **({} if "keepalives" in url else KEEPALIVE))
        except psycopg.Error as exc:
            error = _error(exc, broken=True)
            raise type(error)(without_secrets(str(error), url)) from None
        for setting in SERVER_KEEPALIVE:  # (one a server or pooler refuses is done without)
            try:
                self._conn.execute(setting.encode())
            except psycopg.Error:
                if self._conn.broken:
                    self._conn.close()
                    raise DatabaseUnavailable("PostgreSQL cannot be reached: the connection "
                                              "broke as it was set up") from None

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The psycopg connection (LISTEN/NOTIFY)."""
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        try:
            cur = self._conn.cursor()
            if params:
                cur.execute(translated(sql), params)
            else:  # no parameters: psycopg reads no placeholders, nor %%
                cur.execute(sql.encode())
            return Cursor(cur)
        except psycopg.Error as exc:
            raise _error(exc, self._conn.broken) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        try:
            cur = self._conn.cursor()
            cur.executemany(translated(sql), list(rows))
            return Cursor(cur)
        except psycopg.Error as exc:
            raise _error(exc, self._conn.broken) from exc

    def executescript(self, script: str) -> None:
        """Statements without parameters, sent as they are."""
        try:
            self._conn.execute(script.encode())
        except psycopg.Error as exc:
            raise _error(exc, self._conn.broken) from exc

    @property
    def closed(self) -> bool:
        """Closed, or broken: a new connection is needed."""
        return self._conn.closed or self._conn.broken

    def close(self) -> None:
        self._conn.close()
