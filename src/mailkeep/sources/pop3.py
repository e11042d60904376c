"""Incremental POP3 source: the messages whose UIDL has not been archived yet.

POP3 has one folder and no dates, so the caller keeps the UIDLs it has archived, each with the
time it was first confirmed (`seen`); delete_archived() uses that time for "older than N days".
Messages are read with RETR and kept as the server sends them (line ends included); only the
dot-stuffing of the protocol is undone.
"""

from __future__ import annotations

import poplib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.sources.imap import SourceError, scrub, tls_context

Item = RawMessage | SourceProblem

MAX_LINE = 1 << 20  # poplib's own limit (2048) is too small for real headers


@dataclass(frozen=True)
class Pop3Settings:
    host: str
    port: int = 995
    security: Literal["implicit", "starttls", "none"] = "implicit"
    verify: bool = True
    ca_file: str | None = None
    timeout: float = 60.0
    username: str = ""
    password: str = field(default="", repr=False)
    apop: bool = False
    folder: str = "INBOX"  # the archive folder the messages are filed under
    delete_after_days: int | None = None  # default for Pop3Source.delete_archived


def _reply(exc: BaseException, secret: str) -> str:
    text = str(exc) or type(exc).__name__
    if text.startswith(("b'", 'b"')) and text[-1:] in "'\"":
        text = text[2:-1]  # poplib passes the server's bytes reply
    return scrub(text, secret)


def connect(settings: Pop3Settings) -> poplib.POP3:
    """A logged-in POP3 connection, TLS as the settings say; SourceError on any failure."""
    ctx = tls_context(settings.verify, settings.ca_file)
    conn: poplib.POP3
    try:
        if settings.security == "implicit":
            conn = poplib.POP3_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=ctx
            )
        else:
            conn = poplib.POP3(settings.host, settings.port, timeout=settings.timeout)
    except (OSError, poplib.error_proto) as exc:
        raise SourceError("connect", _reply(exc, settings.password)) from None
    try:
        if settings.security == "starttls":
            try:
                conn.stls(ctx)
            except (OSError, poplib.error_proto) as exc:
                raise SourceError("starttls", _reply(exc, settings.password)) from None
        try:
            if settings.apop:
                conn.apop(settings.username, settings.password)
            else:
                conn.user(settings.username)
                conn.pass_(settings.password)
        except (OSError, poplib.error_proto) as exc:
            raise SourceError("login", _reply(exc, settings.password)) from None
    except BaseException:
        _drop(conn)
        raise
    return conn


def retr(conn: poplib.POP3, which: int) -> bytes:
    """RETR the message numbered `which`, byte for byte as sent (dot-stuffing undone)."""
    conn.sock.sendall(b"RETR %d\r\n" % which)
    status = conn.file.readline(MAX_LINE)
    if not status.startswith(b"+"):
        raise poplib.error_proto(status.rstrip(b"\r\n"))
    parts: list[bytes] = []
    while True:
        line = conn.file.readline(MAX_LINE + 1)
        if not line:
            raise poplib.error_proto("-ERR connection closed during RETR")
        if len(line) > MAX_LINE:
            raise poplib.error_proto("-ERR line too long")
        if line in (b".\r\n", b".\n"):
            return b"".join(parts)
        parts.append(line[1:] if line.startswith(b"..") else line)


def _uidls(conn: poplib.POP3) -> list[tuple[int, str]]:
    _, lines, _ = conn.uidl()
    out = []
    for line in lines:
        num, _, uidl = line.decode("ascii", "replace").strip().partition(" ")
        out.append((int(num), uidl.strip()))
    return out


def _close(conn: poplib.POP3) -> None:
    try:
        conn.quit()
    except Exception:
        _drop(conn)


def _drop(conn: poplib.POP3) -> None:
    try:
        conn.close()
    except OSError:
        pass  # a failed TLS handshake leaves a closed socket behind


class Pop3Source:
    """Iterate for the messages not archived yet; confirm() each once durable; save `seen`
    (UIDL -> epoch seconds when it was first confirmed) afterwards."""

    def __init__(self, settings: Pop3Settings, seen: Mapping[str, float] | None = None) -> None:
        self.settings = settings
        self.seen: dict[str, float] = dict(seen or {})
        self._handed_out: dict[str, str] = {}  # origin -> UIDL

    def origin(self, uidl: str) -> str:
        return f"pop3://{self.settings.username}@{self.settings.host}/{uidl}"

    def __iter__(self) -> Iterator[Item]:
        conn = connect(self.settings)
        try:
            try:
                listing = _uidls(conn)
            except (OSError, poplib.error_proto) as exc:
                yield SourceProblem(self.origin(""), f"UIDL: {_reply(exc, '')}")
                return
            for num, uidl in listing:
                if uidl in self.seen:
                    continue
                origin = self.origin(uidl)
                try:
                    data = retr(conn, num)
                except poplib.error_proto as exc:
                    yield SourceProblem(origin, f"RETR: {_reply(exc, '')}")
                    continue
                except OSError as exc:
                    yield SourceProblem(origin, f"RETR: {exc}")
                    return
                self._handed_out[origin] = uidl
                yield RawMessage(folder=self.settings.folder, origin=origin, data=data)
        finally:
            _close(conn)

    def confirm(self, message: RawMessage) -> None:
        uidl = self._handed_out.pop(message.origin, None)
        if uidl is not None:
            self.seen.setdefault(uidl, time.time())

    def delete_archived(self, older_than_days: int | None = None) -> int:
        """Delete from the server the messages confirmed more than `older_than_days` (default:
        the settings' delete_after_days) days ago; return how many. They leave `seen` too."""
        days = self.settings.delete_after_days if older_than_days is None else older_than_days
        if days is None or days < 0:
            return 0
        cutoff = time.time() - days * 86400.0
        conn = connect(self.settings)
        doomed: list[str] = []
        try:
            for num, uidl in _uidls(conn):
                first = self.seen.get(uidl)
                if first is not None and first < cutoff:
                    conn.dele(num)
                    doomed.append(uidl)
            conn.quit()  # deletions take effect only here
        except (OSError, poplib.error_proto) as exc:
            _drop(conn)
            raise SourceError("delete", _reply(exc, self.settings.password)) from None
        for uidl in doomed:
            self.seen.pop(uidl, None)
        return len(doomed)
