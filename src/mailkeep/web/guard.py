"""What every HTTP request passes before any handler: a bounded body, and no cross-site form.

- A body larger than the route's limit is refused with 413 before it is read (by its
  Content-Length, or, for a chunked one, once it has grown past the limit): no request makes
  the server hold more than that, whoever sends it, logged in or not. A body that has not
  arrived whole within `body_seconds` (setting server.body_timeout) gets 408: a client sending
  a byte at a time holds its connection no longer. The largest legitimate
  request (a profile's properties, the notification settings) is a few kilobytes.
- A POST that a browser makes from another site (an `Origin` header naming another host than
  the request's `Host`) is refused with 403: a browser that has cached an administrator's Basic
  credentials must not be made to post a form to the Administration API. Scripts and the
  original product's clients send no `Origin`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 1 << 20  # bytes of any request body
LOGIN_BODY = 16 << 10  # bytes of a console login (a name and a password)
BODY_SECONDS = 30.0  # what a request body may take to arrive, whole (server.body_timeout)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(self, app: ASGIApp, body_seconds: float = BODY_SECONDS) -> None:
        self.app = app
        self.body_seconds = body_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and _cross_site(headers):
            await _plain(send, 403, "A form posted from another site is refused.")
            return
        limit = LOGIN_BODY if scope["path"].rstrip("/").endswith("/auth/login") else MAX_BODY
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = limit + 1
            if size > limit:
                await _plain(send, 413, f"The request body is larger than {limit} bytes.")
                return
            if size == 0:
                await self.app(scope, receive, send)
                return
        elif headers.get(b"transfer-encoding") is None:
            await self.app(scope, receive, send)  # no body
            return
        # Read the body here, up to the limit and within the deadline, and hand it on whole:
        # a client sending it a byte at a time holds nothing for longer than body_seconds.
        chunks: list[bytes] = []
        total = 0
        complete = False
        with anyio.move_on_after(self.body_seconds):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > limit:
                    await _plain(send, 413, f"The request body is larger than {limit} bytes.")
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    complete = True
                    break
        if not complete:
            await _plain(send, 408, f"The request body did not arrive within "
                                    f"{self.body_seconds:g} seconds.")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _cross_site(headers: dict[bytes, bytes]) -> bool:
    origin = headers.get(b"origin")
    if origin is None or origin == b"null":
        return origin == b"null"  # a sandboxed or file: page
    host = headers.get(b"host", b"").decode("latin-1").lower()
    return urlsplit(origin.decode("latin-1")).netloc.lower() != host
