"""The limits every SMTP session of the journal receiver (receive/smtp.py) lives within, with
the values and replies a mail server uses:

- sessions open at once, from one client address and in all (Postfix's
  smtpd_client_connection_count_limit, 50, and process limit, 100): one more is answered
  `421 4.7.0` and closed before its greeting;
- a timeout per command (RFC 5321 4.5.3.2.7 and Postfix's smtpd_timeout: 300 s): a client
  that has not sent its next command in time gets `421 4.4.2` and is disconnected; while a
  message arrives, the time counts from its last bytes, not from DATA; and the whole message
  has `data_seconds` (smtp.data_timeout, 3,600 s: 50 MiB at 120 kbit/s), so a client sending
  a byte just inside every command timeout cannot hold its session for ever;
- refused commands (5xx replies: the 4xx this receiver sends say that it cannot take
  something now, which a sound client meets too) since the last message archived: the one
  after the limit (Postfix's smtpd_hard_error_limit, 20) gets `421 4.7.0` instead of its
  refusal, and the session is closed;
- messages over 1 MiB (SMALL_MESSAGE) received and archived at once (smtp.large_messages, 4):
  a session whose message grows past 1 MiB while that many are in progress stops reading it
  until one of them is archived (its sender waits, as TCP makes it); the command timeout does
  not run meanwhile. So the memory messages take while they arrive and are archived is about
  100 sessions x 1 MiB plus 4 x smtp.max_size (each a few times over: lines, the joined
  message, the copy handed to extraction), however many senders send large mail at once. A
  message past smtp.max_size is read on and dropped (552 at its end), and gives its place up;
- line lengths: a command line at most 512 octets (RFC 5321 4.5.3.1.4), AUTH's 12,288 (RFC
  4954); a longer one is read away in pieces and refused (500, AUTH's `500 5.5.6`) without
  being held whole. Only a message's lines may be long (a journal keeps them as they came).
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import logging
from base64 import b64decode, b64encode
from collections import Counter
from collections.abc import Callable
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP

log = logging.getLogger("mailkeep.smtp")

COMMAND_LINE = 512  # octets of a command line (RFC 5321 4.5.3.1.4)
AUTH_LINE = 12288  # octets of an AUTH command or response line (RFC 4954)
DATA_LINE = 1 << 20  # octets of a line of a message: far beyond RFC 5321's 1,000
MAX_ERRORS = 20  # Postfix's smtpd_hard_error_limit
COMMAND_SECONDS = 300.0  # RFC 5321 4.5.3.2.7, Postfix's smtpd_timeout
DATA_SECONDS = 3600.0  # for a whole message, from DATA to its final dot
NOT_ALLOWED = "554 5.7.1 This client may not journal to mailkeep"
TOO_MANY = "421 4.7.0 Too many connections"
TOO_MANY_FROM = "421 4.7.0 Too many connections from your address"
TOO_MANY_ERRORS = "421 4.7.0 Too many errors: closing"
TIMED_OUT = "421 4.4.2 Timeout exceeded: closing"
AUTH_TOO_LONG = "500 5.5.6 Authentication Exchange line is too long"
SMALL_MESSAGE = 1 << 20  # octets of a message that never waits for room (smtp.large_messages)
LARGE_MESSAGES = 4  # messages over SMALL_MESSAGE received and archived at once


class Sessions:
    """The open sessions, by client address and in all (the receiver's event loop only)."""

    def __init__(self, total: int = 100, per_client: int = 50,
                 allow: Callable[[str], bool] | None = None,
                 large: int = LARGE_MESSAGES) -> None:
        self.total = total
        self.per_client = per_client
        self.allow = allow  # the addresses that may journal at all (smtp.networks)
        self.open: Counter[str] = Counter()
        self.count = 0
        self.large = large
        self.room = asyncio.Semaphore(large)  # one per large message in progress
        self.waiting = 0  # sessions whose large message waits for room

    async def wait_for_room(self, host: str) -> None:
        """A place for a large message; the first to wait while others are in progress is
        logged (once per wave: a sender cannot fill the log)."""
        if self.room.locked():
            if self.waiting == 0:
                log.warning("journal: a message over %d MiB from %s waits for room: %d are "
                            "being received and archived (smtp.large_messages)",
                            SMALL_MESSAGE >> 20, host, self.large)
            self.waiting += 1
            try:
                await self.room.acquire()
            finally:
                self.waiting -= 1
        else:
            await self.room.acquire()

    def admit(self, host: str) -> str | None:
        """Count a new session from `host`; the reply refusing it when it is one too many,
        or when the address may not journal at all: a client outside smtp.networks is
        refused at its greeting (RFC 5321 3.1: 554), and holds no session anyone needs."""
        if self.allow is not None and not self.allow(host):
            return NOT_ALLOWED
        if self.count >= self.total:
            return TOO_MANY
        if self.open[host] >= self.per_client:
            return TOO_MANY_FROM
        self.open[host] += 1
        self.count += 1
        return None

    def release(self, host: str) -> None:
        self.count -= 1
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]


def _peer_host(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


def _say(transport: asyncio.BaseTransport | None, reply: str) -> None:
    """A reply written straight to the connection (none of aiosmtpd's session state needed).
    (uvloop's transports are no subclasses of asyncio's: what they can do is asked.)"""
    write = getattr(transport, "write", None)
    if transport is not None and callable(write) and not transport.is_closing():
        write(reply.encode() + b"\r\n")


class LimitedSMTP(SMTP):
    """aiosmtpd's SMTP session within the limits above; `sessions`, `max_errors` and the
    `timeout` argument are set per receiver."""

    line_length_limit = AUTH_LINE  # what the reader holds of one line; DATA raises it
    max_errors = MAX_ERRORS
    data_seconds = DATA_SECONDS
    sessions: Sessions | None = None

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        # aiosmtpd's table is one dict shared by every session; this one is the session's own.
        self.command_size_limits = collections.defaultdict(lambda: COMMAND_LINE,
                                                           {"AUTH": AUTH_LINE})
        self._counted: str | None = None  # the address this session is counted under
        self._refused = False
        self._errors = 0
        self._last_reply = ""
        self._in_data = False
        self._data_at = 0.0
        self._data_began = 0.0
        self._data_bytes = 0  # of the message arriving
        self._large = False  # it holds one of the places for large messages
        self._waiting_room = False

    # -- sessions at once
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None and self.sessions is not None:  # not STARTTLS's new one
            host = _peer_host(transport)
            refusal = self.sessions.admit(host)
            if refusal is not None:
                self._refused = True
                _say(transport, refusal)
                transport.close()
                return
            self._counted = host
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return  # no session was made
        try:
            super().connection_lost(error)
        finally:
            if self._counted is not None and self.sessions is not None:
                self.sessions.release(self._counted)
                self._counted = None

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_data:
            self._data_at = self.loop.time()
        super().data_received(data)

    # -- a timeout per command
    def _timeout_cb(self) -> None:
        if self._waiting_room:  # the receiver keeps it waiting: no fault of the client's
            self._reset_timeout()
            return
        if self._in_data:  # a message arriving: the time counts from its last bytes
            now = self.loop.time()
            idle = now - self._data_at
            left = self.data_seconds - (now - self._data_began)  # and the whole of it has a limit
            if idle < self._timeout_duration and left > 0:
                self._reset_timeout(min(self._timeout_duration - idle, left))
                return
        _say(self.transport, TIMED_OUT)
        if self.transport is not None:  # connection_lost does the rest, as for aiosmtpd's
            self.transport.close()

    # -- errors per session
    async def push(self, status: AnyStr) -> None:
        reply = status if isinstance(status, str) else status.decode("utf-8", "replace")
        if reply.startswith("5"):
            self._errors += 1
            if self._errors > self.max_errors and self.transport is not None:
                await super().push(TOO_MANY_ERRORS)
                self.transport.close()
                return
        self._last_reply = reply
        await super().push(status)

    # -- line lengths: only a message's may be long
    async def smtp_DATA(self, arg: str) -> None:
        self._lines(DATA_LINE)
        self._in_data, self._data_at = True, self.loop.time()
        self._data_began = self._data_at
        self._data_bytes = 0
        self._reset_timeout(min(self._timeout_duration, self.data_seconds))
        reader = self._reader
        self._reader = _Metered(reader, self)  # type: ignore[assignment]
        try:
            await super().smtp_DATA(arg)  # reads the message, then awaits its archiving
        finally:
            self._reader = reader
            self._in_data = False
            self._give_room()
            self._lines(AUTH_LINE)
        if self._last_reply.startswith("250"):
            self._errors = 0  # mail delivered: errors count anew, as Postfix's do

    async def _room(self) -> None:
        """Before more of a message is read: past SMALL_MESSAGE it needs a place among the
        large messages; past smtp.max_size (it is being dropped) it gives its place up."""
        limit = self.data_size_limit
        if limit and self._data_bytes > limit:
            self._give_room()
        elif (self._data_bytes > SMALL_MESSAGE and not self._large
              and self.sessions is not None):
            self._waiting_room = True
            began = self.loop.time()
            try:
                await self.sessions.wait_for_room(self._counted or "?")
            finally:
                self._waiting_room = False
            self._large = True
            self._data_at = self.loop.time()
            self._data_began += self._data_at - began  # the wait is not the client's time
            left = self.data_seconds - (self._data_at - self._data_began)
            self._reset_timeout(max(0.001, min(self._timeout_duration, left)))

    def _give_room(self) -> None:
        if self._large and self.sessions is not None:
            self._large = False
            self.sessions.room.release()

    def _lines(self, octets: int) -> None:
        self.line_length_limit = octets  # DATA's check of a line it has read whole
        self._reader._limit = octets  # type: ignore[attr-defined]  # what readuntil holds

    async def challenge_auth(self, challenge: str | bytes, encode_to_b64: bool = True,
                             log_client_response: bool = False) -> Any:
        """aiosmtpd's, with the client's answer read within AUTH_LINE (aiosmtpd's readline
        took a line as long as a message's). Answers are never logged."""
        raw = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(b"334 " + (b64encode(raw) if encode_to_b64 else raw))
        line = await self._line()
        if line is None:
            await self.push(AUTH_TOO_LONG)
            return MISSING
        blob = line.strip()
        if blob == b"*":
            await self.push("501 5.7.0 Auth aborted")
            return MISSING
        try:
            return b64decode(blob, validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Can't decode base64")
            return MISSING

    async def _line(self) -> bytes | None:
        """The client's next line; None when it was longer than the reader holds: then all
        of it has been read, in pieces, and dropped (as aiosmtpd drops a long command)."""
        try:
            return await self._reader.readuntil()
        except asyncio.IncompleteReadError as exc:  # the client went away
            return exc.partial
        except asyncio.LimitOverrunError as exc:
            await self._reader.read(exc.consumed)
        while True:
            try:
                await self._reader.readuntil()
                return None
            except asyncio.IncompleteReadError:
                return None
            except asyncio.LimitOverrunError as exc:
                await self._reader.read(exc.consumed)


class _Metered:
    """The reader DATA reads a message with: it counts the message's bytes, and past
    SMALL_MESSAGE waits for a place among the large messages before it reads on."""

    def __init__(self, reader: asyncio.StreamReader, session: LimitedSMTP) -> None:
        self._reader = reader
        self._session = session

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        await self._session._room()
        line = await self._reader.readuntil(separator)
        self._session._data_bytes += len(line)
        return line

    async def read(self, n: int = -1) -> bytes:
        await self._session._room()
        chunk = await self._reader.read(n)
        self._session._data_bytes += len(chunk)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)
