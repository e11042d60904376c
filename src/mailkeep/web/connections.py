"""What every HTTP connection passes before its requests reach the app (web/guard.py): a
bounded time and size for each request's head, and a bounded number of connections per client
and in all.

Over HTTPS the event loop hands a connection to the protocol once its TLS handshake is over:
until then it is neither counted nor timed here (the loop's own handshake timeout, 60 s, bounds
it).

uvicorn's own keep-alive timer starts only after a response and restarts with every byte, so a
client sending nothing, or a head a byte at a time, would hold its connection for ever. Here a
connection has `header_seconds` (setting server.header_timeout) from its start, and again from
each answer, to send a whole request head; then it is closed (with a 408 if the head had
begun). Once a head is in, the deadline is off: a long poll waits as long as the API lets it,
and the body has its own (web/guard.py).

A request head larger than MAX_HEAD (request line and headers) is answered 431 and the
connection closed: the HTTP parser sets no limit of its own.

A client address holds at most `per_client` connections at once (setting
server.max_connections_per_client); one more is closed at once, before anything of it is read
(with a 503). Counting is by the TCP peer: the addresses of trusted proxies
(server.trusted_proxies) are not limited, since their connections carry many clients'. All
clients together hold at most `total` connections. When that many are open, a new connection
takes the place of the one that has waited longest for its next request head (idle, or in its
handshake, or sending a head slowly); only when every connection is in the middle of a request
(a long poll...) is the new one refused. So idle connections, however many addresses they come
from, cannot lock out other clients.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mailkeep.core.fields import within

HEADER_SECONDS = 20.0  # Apache's mod_reqtimeout default (header=20)
PER_CLIENT = 1024  # a quarter of the server's 4,096: the 1,000 long polls and some room
TOTAL = 4096  # connections from all clients
MAX_HEAD = 64 << 10  # bytes of a request line and headers (nginx allows 4 x 8 KiB per line)


def _answer(status: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


TOO_MANY = _answer("503 Service Unavailable", "Too many connections from your address.")
TOO_BUSY = _answer("503 Service Unavailable",
                   "The server has too many connections in progress; try again later.")
TOO_SLOW = _answer("408 Request Timeout", "The request head did not arrive in time.")
TOO_LARGE = _answer("431 Request Header Fields Too Large",
                    f"The request head is larger than {MAX_HEAD} bytes.")


@dataclass
class ConnectionLimits:
    """The limits, and the open connections by client address (one event loop: no lock)."""

    header_seconds: float = HEADER_SECONDS
    per_client: int = PER_CLIENT
    exempt: tuple[str, ...] = ()  # networks of trusted proxies
    total: int = TOTAL
    open: Counter[str] = field(default_factory=Counter)
    # every open connection, in the order it began waiting for a head; None while in a request
    waiting: dict[GuardedProtocol, None] = field(default_factory=dict)
    count: int = 0

    def __post_init__(self) -> None:
        self._exempt = [ipaddress.ip_network(n, strict=False) for n in self.exempt if n]

    def admit(self, host: str) -> bytes | None:
        """Count a new connection from `host`; the answer that refuses it (and it is not
        counted) when it is one too many. Room in all is made by closing the connection that
        has waited longest for a request head."""
        exempt = bool(self._exempt) and within(host, self._exempt)
        if not exempt and self.open[host] >= self.per_client:
            return TOO_MANY
        if self.count >= self.total:
            if not self.waiting:
                return TOO_BUSY
            oldest = next(iter(self.waiting))
            oldest.evict()
        if not exempt:
            self.open[host] += 1
        self.count += 1
        return None

    def release(self, host: str) -> None:
        self.count = max(0, self.count - 1)
        if host in self.open:
            self.open[host] -= 1
            if self.open[host] <= 0:
                del self.open[host]


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with the limits of `limits` (a subclass per server sets
    them: protocol_class)."""

    limits: ConnectionLimits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counted: str | None = None  # the address this connection is counted under
        self._made = False  # uvicorn's protocol has its transport
        self._closed = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        refusal = self.limits.admit(host)
        if refusal is not None:
            transport.write(refusal)
            transport.close()
            self._closed = True
            return
        self._counted = host
        super().connection_made(transport)
        self._made = True
        self._await_head()

    def evict(self) -> None:
        """Make room for a new connection: this one has waited longest for a request."""
        self._closed = True
        self.transport.close()
        self._gone()

    def data_received(self, data: bytes) -> None:
        if self._closed:  # a refused or evicted connection's request is never read
            return
        super().data_received(data)
        if self._head_timer is not None and not self.transport.is_closing():
            self._head_bytes += len(data)  # still no whole head (the timer runs until then)
            if self._head_bytes > MAX_HEAD:
                self.transport.write(TOO_LARGE)
                self.transport.close()
                self._head_done()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()
        if self._made:
            self._made = False
            super().connection_lost(exc)

    def _gone(self) -> None:
        self._head_done()
        self.limits.waiting.pop(self, None)
        if self._counted is not None:
            self.limits.release(self._counted)
            self._counted = None

    def on_message_begin(self) -> None:
        self._head_begun = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # its head is in already
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._head_done()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.limits.header_seconds, self._head_late)
        if self._counted is not None:
            self.limits.waiting[self] = None  # the newest to wait: the last to make room

    def _head_done(self) -> None:
        self._head_begun = False
        self.limits.waiting.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        self.limits.waiting.pop(self, None)
        if self.transport.is_closing():
            return
        if self._head_begun:
            self.transport.write(TOO_SLOW)
        self.transport.close()  # an idle one without a word, as keep-alive closes it


def protocol_class(limits: ConnectionLimits) -> type[GuardedProtocol]:
    """The protocol class to give uvicorn (`http=`) for a server with these limits."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})
