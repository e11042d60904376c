"""What every HTTP connection passes before its requests reach the app (web/guard.py): a
bounded time and size for each request's head, and a bounded number of connections per client
and in all.

Over HTTPS a connection is counted from the moment it is accepted, before its TLS handshake
(TlsGate, which does the handshake itself instead of the event loop): a handshake has
`header_seconds` to finish, and connections that never finish theirs give way to new ones as
idle ones do. Left to the event loop, a connection would be seen only once its handshake was
over, and clients opening connections and sending nothing would use up the server's open
files for the loop's 60 s each, unseen by the limits below.

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
import ssl
from asyncio import sslproto
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

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


class Waiting(Protocol):
    def evict(self) -> None: ...


@dataclass
class ConnectionLimits:
    """The limits, and the open connections by client address (one event loop: no lock)."""

    header_seconds: float = HEADER_SECONDS
    per_client: int = PER_CLIENT
    exempt: tuple[str, ...] = ()  # networks of trusted proxies
    total: int = TOTAL
    open: Counter[str] = field(default_factory=Counter)
    # every open connection, in the order it began waiting for a head; None while in a request
    waiting: dict[Waiting, None] = field(default_factory=dict)
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
        self._gate: TlsGate | None = None  # over HTTPS: counted already, by its gate
        self._made = False  # uvicorn's protocol has its transport
        self._closed = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if self._gate is not None:
            self._counted = self._gate.hand_over()
        else:
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
        self.transport.abort()  # now: a TLS goodbye would keep the socket open meanwhile
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


class TlsGate(asyncio.BufferedProtocol):
    """An accepted HTTPS connection until its TLS handshake is over: counted under its
    client's address at once, evicted like an idle connection when room is needed, and closed
    if the handshake takes longer than `header_seconds`. The handshake and then the encrypted
    stream are the standard library's SSLProtocol, fed from here; once the handshake is over
    the HTTP protocol takes the count over."""

    def __init__(self, app: GuardedProtocol, context: ssl.SSLContext,
                 limits: ConnectionLimits) -> None:
        self.app = app
        self.context = context
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.tls: sslproto.SSLProtocol | None = None
        self._counted: str | None = None
        app._gate = self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if self.limits.admit(host) is not None:
            transport.abort()  # no handshake is spent on a connection that is one too many
            return
        self._counted = host
        self.limits.waiting[self] = None
        loop = asyncio.get_running_loop()
        self.tls = _tls_protocol(loop)(
            loop, self.app, self.context, None,  # type: ignore[arg-type]
            server_side=True,
            ssl_handshake_timeout=self.limits.header_seconds)  # type: ignore[arg-type]
        self.tls.connection_made(transport)

    def hand_over(self) -> str | None:
        """The handshake is over: the HTTP protocol counts the connection from now on."""
        self.limits.waiting.pop(self, None)
        counted, self._counted = self._counted, None
        return counted

    def evict(self) -> None:
        self.limits.waiting.pop(self, None)
        if self.transport is not None:
            self.transport.abort()
        self._release()

    def _release(self) -> None:
        self.limits.waiting.pop(self, None)
        if self._counted is not None:
            self.limits.release(self._counted)
            self._counted = None

    def get_buffer(self, sizehint: int) -> Any:
        if self.tls is None:
            return bytearray(max(sizehint, 1) if sizehint > 0 else 65536)
        return self.tls.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        if self.tls is not None:
            self.tls.buffer_updated(nbytes)

    def eof_received(self) -> bool | None:
        if self.tls is not None:
            self.tls.eof_received()
        return None

    def pause_writing(self) -> None:
        if self.tls is not None:
            self.tls.pause_writing()

    def resume_writing(self) -> None:
        if self.tls is not None:
            self.tls.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()  # a handshake that never finished (otherwise counted by the app)
        if self.tls is not None:
            self.tls.connection_lost(exc)


class _SmallBuffers(sslproto.SSLProtocol):
    """The standard library's SSLProtocol reads into a buffer of its own of 256 KiB per
    connection, filled in at once: 250 MB for the 1,000 long polls. A TLS record holds 16 KiB
    at most."""

    max_size = 16 << 10


def _tls_protocol(loop: asyncio.AbstractEventLoop) -> type[sslproto.SSLProtocol]:
    """The event loop's own TLS protocol: uvloop's (compiled, the one its create_server would
    use) when the loop is uvloop's, else the standard library's."""
    try:
        import uvloop
        import uvloop.loop
    except ImportError:
        return _SmallBuffers
    if isinstance(loop, uvloop.Loop):
        return uvloop.loop.SSLProtocol  # type: ignore[attr-defined,no-any-return]
    return _SmallBuffers


def protocol_class(limits: ConnectionLimits,
                   context: ssl.SSLContext | None = None) -> Callable[..., asyncio.BaseProtocol]:
    """The protocol factory to give uvicorn (`http=`) for a server with these limits; with
    `context`, the server speaks HTTPS (uvicorn itself is given no TLS context)."""
    guarded = type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})
    if context is None:
        return guarded

    def gated(*args: Any, **kwargs: Any) -> asyncio.BaseProtocol:
        return TlsGate(guarded(*args, **kwargs), context, limits)

    return gated
