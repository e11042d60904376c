"""The MailStore-compatible Administration API: /api/invoke, get-status, cancel-async,
get-metadata. Every call goes through the one invoke path (functions/invoke.py) as a process of
the engine; errors are worded by the one error table (error_table.py).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mailkeep.core.admin.auth import Authenticator
from mailkeep.core.admin.users import Users
from mailkeep.core.errors import Forbidden, MailkeepError
from mailkeep.core.fields import is_loopback
from mailkeep.error_table import api_error
from mailkeep.functions import REGISTRY
from mailkeep.functions.call import Caller
from mailkeep.functions.invoke import Invoker
from mailkeep.functions.registry import ApiArgumentError, UnknownFunction
from mailkeep.jobs.engine import Engine, UnknownToken
from mailkeep.web import openapi
from mailkeep.web.envelope import (
    CONTENT_TYPE,
    NO_CACHE,
    envelope,
    failure,
    json_bytes,
    plain,
    user_agent,
)

log = logging.getLogger("mailkeep.api")
REALM = 'Basic realm="mailkeep"'


@dataclass
class ApiState:
    data_dir: Path
    engine: Engine
    users: Users
    authenticator: Authenticator
    invoker: Invoker
    enabled: bool


FORWARDING = ("x-forwarded-for", "forwarded", "x-real-ip")


def local_request(request: Request) -> bool:
    """Whether the request comes from this machine itself: its client is a loopback address
    and it names no other client in a forwarding header. A request that a proxy on this machine
    passes on is not local, whether or not the proxy is trusted: the exception for the initial
    password is for someone at the server, not for whoever reaches its proxy."""
    if not is_loopback(request.client.host if request.client else ""):
        return False
    return not any(name in request.headers for name in FORWARDING)


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, sep, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


async def authenticate(state: ApiState, request: Request, admin: bool = True) -> str | Response:
    """The administrator making the request, or the 401/403 answer to give instead. With
    admin False, any account that logs in: the invoke path checks its rights (and audits a
    refusal) itself."""
    if not state.enabled:
        return plain(403, "The Administration API is disabled: start the server with "
                          "--enable-api or set api.enabled.")
    creds = _credentials(request)
    if creds is None:
        return plain(401, "Authentication required.", {"WWW-Authenticate": REALM})
    user, password = creds
    address = request.client.host if request.client else ""
    result = state.authenticator.check_cached(user, password, address)
    if result is None:  # Argon2 takes tens of milliseconds: not on the event loop
        result = await anyio.to_thread.run_sync(state.authenticator.check, user, password,
                                                address)
    if result.reason == "busy":
        return plain(503, "The directory is busy: try again in a moment.", {"Retry-After": "2"})
    if not result.ok:
        extra = {"WWW-Authenticate": REALM}
        if result.retry_after:
            extra["Retry-After"] = str(int(result.retry_after) + 1)
        log.warning("failed API login for %r from %s (%s)", user, address, result.reason)
        return plain(401, "Invalid credentials." if result.reason != "locked-out" else
                     "Too many failed logins: try again later.", extra)
    account = state.users.account(user)
    if account is None:  # deleted a moment ago
        return plain(401, "Invalid credentials.", {"WWW-Authenticate": REALM})
    user = account.user_name  # as stored: the audit log names the account, not the typing
    refusal = state.users.refusal_for(account, "api")
    if refusal is not None:
        return plain(403, refusal)
    if admin and not account.is_administrator:
        return plain(403, f"User {user} is not an administrator.")
    if state.users.has_initial_password(user) and not local_request(request):
        return plain(403, "The admin account still has its initial password: the API answers "
                          "only local clients until it is changed (mailkeep user password admin).")
    return user


async def _form(request: Request) -> dict[str, str]:
    """The form fields. A body that cannot be parsed (multipart without a boundary, malformed
    multipart, too many fields) is an argument error answered in the envelope, like any other,
    not Starlette's plain-text 400."""
    try:
        form = await request.form()
    except (HTTPException, MultiPartException) as exc:
        detail = exc.detail if isinstance(exc, HTTPException) else exc.message
        kind = request.headers.get("content-type", "").partition(";")[0].strip() or "form"
        raise ApiArgumentError(f"The request body could not be read as {kind}: "
                               f"{str(detail).rstrip('.')}. Send the arguments as "
                               "application/x-www-form-urlencoded or multipart/form-data "
                               "with a boundary.") from None
    return {k: str(v) for k, v in form.multi_items()}



def endpoint(state: ApiState, handler: Callable[[ApiState, Request, str], Awaitable[Response]],
             admin: bool = True) -> Callable[[Request], Awaitable[Response]]:
    async def wrapped(request: Request) -> Response:
        user = await authenticate(state, request, admin)
        if isinstance(user, Response):
            return user
        try:
            return await handler(state, request, user)
        except Forbidden as exc:  # as the original: not an administrator, no API
            return plain(403, exc.message)
        except MailkeepError as exc:
            return failure(*api_error(exc))

    return wrapped


async def invoke(state: ApiState, request: Request, user: str) -> Response:
    caller = Caller(user, "api", request.client.host if request.client else "",
                    agent=user_agent(request.headers))
    invoker = state.invoker
    try:
        fn = invoker.admit(request.path_params["function"], caller)  # before the body is read
    except UnknownFunction:
        if not state.users.is_administrator(user):  # which functions exist is theirs to know
            raise Forbidden(f"User {user} is not an administrator.") from None
        raise
    prepared = invoker.with_args(fn, caller, form=await _form(request))
    return envelope(await invoker.start(prepared))


def _number(form: dict[str, str], name: str, default: int | None) -> int | None:
    raw = form.get(name, "").strip()
    if raw == "":
        return default
    try:
        return int(float(raw))
    except (ValueError, OverflowError):  # "abc", and "inf" or "1e309"
        raise ApiArgumentError(f"Invalid value for API argument {name}: a number is expected."
                               ) from None


async def get_status(state: ApiState, request: Request, user: str) -> Response:
    form = await _form(request)
    token = form.get("token", "")
    if not token:
        raise ApiArgumentError("Missing API argument token.")
    last = _number(form, "lastKnownStatusVersion", -1)
    timeout = _number(form, "millisecondsTimeout", None)
    try:
        snap = await state.engine.status(token, user, last if last is not None else -1, timeout)
    except UnknownToken:
        return plain(404, "Unknown or expired token.")
    return envelope(snap)


async def cancel_async(state: ApiState, request: Request, user: str) -> Response:
    token = (await _form(request)).get("token", "")
    try:
        return envelope(state.engine.cancel(token, user))
    except UnknownToken:
        return plain(404, "Unknown or expired token.")


async def get_metadata(state: ApiState, request: Request, user: str) -> Response:
    return Response(json_bytes(REGISTRY.metadata(), bom=False), 200,
                    media_type="application/json; charset=utf-8")


async def get_openapi(state: ApiState, request: Request, user: str) -> Response:
    """The OpenAPI description, for whoever may read get-metadata: it says nothing that
    get-metadata does not, and nothing about this server."""
    return Response(openapi.document_bytes(), 200, NO_CACHE, media_type=CONTENT_TYPE)


class FastRoutes:
    """The API's endpoints reached straight from the server, past Starlette's two middleware
    layers and its router (about 5% of a GetServerInfo's server CPU under wrk). The same
    handlers, the same answers: any other path or method, and the lifespan, go on to `fallback`,
    the Starlette app that also declares these routes (404, 405). An exception propagates to the
    server, which answers 500 and logs it, as Starlette's error middleware would; _form turns
    the only HTTPException a handler could meet into an argument error."""

    def __init__(self, state: ApiState, fallback: ASGIApp) -> None:
        self.fallback = fallback
        self.invoke: Callable[[Request], Awaitable[Response]] | None = None
        self.fixed: dict[str, tuple[frozenset[str], Callable[[Request], Awaitable[Response]]]] = {}
        for route in routes(state):
            if route.path == INVOKE + "{function}":
                self.invoke = route.endpoint
            else:
                self.fixed[route.path] = (frozenset(route.methods or ()), route.endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            path: str = scope["path"]
            handler = None
            if path.startswith(INVOKE):
                name = path[len(INVOKE):]
                if name and "/" not in name and scope["method"] == "POST" and self.invoke:
                    scope["path_params"] = {"function": name}
                    handler = self.invoke
            else:
                found = self.fixed.get(path)
                if found is not None and scope["method"] in found[0]:
                    handler = found[1]
            if handler is not None:
                response = await handler(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.fallback(scope, receive, send)


INVOKE = "/api/invoke/"


def routes(state: ApiState) -> list[Route]:
    return [
        Route(INVOKE + "{function}", endpoint(state, invoke, admin=False), methods=["POST"]),
        Route("/api/get-status", endpoint(state, get_status), methods=["POST"]),
        Route("/api/cancel-async", endpoint(state, cancel_async), methods=["POST"]),
        Route("/api/get-metadata", endpoint(state, get_metadata), methods=["GET", "POST"]),
        Route("/api/openapi.json", endpoint(state, get_openapi), methods=["GET"]),
    ]
