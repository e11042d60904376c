"""What every HTTP request passes before any handler: a bounded body, and no cross-site form.
(What every connection passes, before its requests: web/connections.py.)

- A body larger than the route's limit (setting server.max_body; a console login's is fixed
  and small) is refused with 413 before it is read (by its Content-Length, or, for a chunked
  one, once it has grown past the limit): no request makes the server hold more than that,
  whoever sends it, logged in or not. A body that has not arrived whole within `body_seconds`
  (setting server.body_timeout) gets 408: a client sending a byte at a time holds its
  connection no longer. Both are answered in the error shape of the API the path belongs to
  (the Administration API's envelope, the console API's error), plain text elsewhere. The
  largest legitimate request (a profile's properties, the notification settings) is a few
  kilobytes.
- A POST that a browser makes from another site (an `Origin` header naming another host than
  the request's `Host`) is refused with 403: a browser that has cached an administrator's Basic
  credentials must not be made to post a form to the Administration API. Scripts and the
  original product's clients send no `Origin`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailkeep.web import mcapi
from mailkeep.web.envelope import refused

MAX_BODY = 1 << 20  # bytes of any request body (server.max_body)
LOGIN_BODY = 16 << 10  # bytes of a console login (a name and a password)
BODY_SECONDS = 30.0  # what a request body may take to arrive, whole (server.body_timeout)
# status -> (the Administration API's error details, the console API's code)
REFUSALS = {413: ("body_too_large", 1007), 408: ("body_timeout", 1008)}


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def refusal(path: str, status: int, text: str) -> Response:
    """A 413 or 408 in the error shape of the API `path` belongs to, plain text elsewhere;
    the connection is closed after it (what is left of the body is never read)."""
    path = "/" + path.lstrip("/")
    details, code = REFUSALS[status]
    response: Response
    if path.startswith("/api/"):
        response = refused(status, text, details)
    elif path.startswith("/mcapi/"):
        response = mcapi.error(code, text)
    else:
        response = PlainTextResponse(text, status)
    response.headers["connection"] = "close"
    return response


class RequestGuard:
    def __init__(self, app: ASGIApp, body_seconds: float = BODY_SECONDS,
                 max_body: int = MAX_BODY) -> None:
        self.app = app
        self.body_seconds = body_seconds
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/console/upload/"):
            # an upload of mail: its own size limit (console.max_upload) and its own pace,
            # checked as it is written to disk (web/console.py), never held here
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and _cross_site(headers):
            await _plain(send, 403, "A form posted from another site is refused.")
            return
        login = scope["path"].rstrip("/").endswith("/auth/login")
        limit = min(LOGIN_BODY, self.max_body) if login else self.max_body
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = limit + 1
            if size > limit:
                await _too_large(scope, receive, send, limit)
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
                    await _too_large(scope, receive, send, limit)
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    complete = True
                    break
        if not complete:
            text = f"The request body did not arrive within {self.body_seconds:g} seconds."
            await refusal(scope["path"], 408, text)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    text = f"The request body is larger than {limit} bytes."
    await refusal(scope["path"], 413, text)(scope, receive, send)


def _cross_site(headers: dict[bytes, bytes]) -> bool:
    origin = headers.get(b"origin")
    if origin is None or origin == b"null":
        return origin == b"null"  # a sandboxed or file: page
    host = headers.get(b"host", b"").decode("latin-1").lower()
    return urlsplit(origin.decode("latin-1")).netloc.lower() != host
