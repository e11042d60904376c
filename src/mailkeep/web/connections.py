"""What every HTTP connection passes before its requests reach the app (web/guard.py): a
bounded time to send each request's head, and a bounded number of connections per client.

uvicorn's own keep-alive timer starts only after a response and restarts with every byte, so a
client sending nothing, or a head a byte at a time, would hold its connection for ever. Here a
connection has `header_seconds` (setting server.header_timeout) from its start, and again from
each answer, to send a whole request head; then it is closed (with a 408 if the head had
begun). Once a head is in, the deadline is off: a long poll waits as long as the API lets it,
and the body has its own (web/guard.py).

A client address holds at most `per_client` connections at once (setting
server.max_connections_per_client); one more is answered 503 and closed at once, before
anything of it is read. Counting is by the TCP peer: the addresses of trusted proxies
(server.trusted_proxies) are not limited, since their connections carry many clients'.
Requests at once from all clients are bounded by uvicorn's limit_concurrency (cli/serve.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_SECONDS = 20.0  # Apache's mod_reqtimeout default (header=20)
PER_CLIENT = 1024  # a quarter of the server's 4,096: the 1,000 long polls and some room


def _answer(status: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


TOO_MANY = _answer("503 Service Unavailable", "Too many connections from your address.")
TOO_SLOW = _answer("408 Request Timeout", "The request head did not arrive in time.")


@dataclass
class ConnectionLimits:
    """The limits, and the open connections by client address (one event loop: no lock)."""

    header_seconds: float = HEADER_SECONDS
    per_client: int = PER_CLIENT
    exempt: tuple[str, ...] = ()  # networks of trusted proxies
    open: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._exempt = [ipaddress.ip_network(n, strict=False) for n in self.exempt if n]

    def admit(self, host: str) -> bool:
        """Count a new connection from `host`; False (and not counted) when it is one too
        many."""
        if self._exempt and _within(host, self._exempt):
            return True
        if self.open[host] >= self.per_client:
            return False
        self.open[host] += 1
        return True

    def release(self, host: str) -> None:
        if host in self.open:
            self.open[host] -= 1
            if self.open[host] <= 0:
                del self.open[host]


def _within(host: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in n for n in networks)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with the limits of `limits` (a subclass per server sets
    them: protocol_class)."""

    limits: ConnectionLimits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counted: str | None = None  # the address this connection is counted under
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else ""
        if not self.limits.admit(host):
            self._refused = True
            transport.write(TOO_MANY)
            transport.close()
            return
        self._counted = host
        self._await_head()

    def data_received(self, data: bytes) -> None:
        if not self._refused:  # a refused connection's request is never read
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        if self._counted is not None:
            self.limits.release(self._counted)
            self._counted = None
        super().connection_lost(exc)

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
        self._head_timer = self.loop.call_later(self.limits.header_seconds, self._head_late)

    def _head_done(self) -> None:
        self._head_begun = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_begun:
            self.transport.write(TOO_SLOW)
        self.transport.close()  # an idle one without a word, as keep-alive closes it


def protocol_class(limits: ConnectionLimits) -> type[GuardedProtocol]:
    """The protocol class to give uvicorn (`http=`) for a server with these limits."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})
