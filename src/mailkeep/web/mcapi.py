"""The management-console API, `/mcapi/<module>/<function>`: JSON in, one JSON envelope out.

Success: HTTP 200 `{"result": {"status": "success", "data": {...}}}`. Every error, whatever
the function: `{"result": {"status": "error", "code": <int>, "message": "<text>"}}` with the
HTTP status of its code (ERRORS below, documented in docs/mcapi.md). Sessions come from
`auth/login` and travel in `X-Fs-SessionId` (or `X-As-SessionId`). Every other route is a
catalog function declared with an `mcapi` route: the same declaration, argument checks and
process engine as the Administration API, so no operation is written twice.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailkeep.core.admin.mfa import MultiFactor
from mailkeep.core.admin.sessions import (
    DEFAULT_TIMEOUT_MIN,
    MAX_TIMEOUT_MIN,
    Session,
    Sessions,
    digest,
)
from mailkeep.core.errors import Cancelled, MailkeepError
from mailkeep.core.fields import parse_bool
from mailkeep.error_table import MCAPI_CODES, mcapi_error
from mailkeep.functions import REGISTRY
from mailkeep.functions.call import Caller
from mailkeep.functions.registry import Function, split_json
from mailkeep.jobs.engine import UnknownToken
from mailkeep.jobs.process import RUNNING
from mailkeep.web import openapi
from mailkeep.web.admin_api import ApiState, local_request
from mailkeep.web.envelope import user_agent

log = logging.getLogger("mailkeep.mcapi")
PREFIX = "/mcapi/"

HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff",
           "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}


class McError(Exception):
    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False).encode(), status,
                    {**HEADERS, **(headers or {})},
                    media_type="application/json; charset=utf-8")


def success(data: Any) -> Response:
    return _json(200, {"result": {"status": "success", "data": data}})


def error(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(MCAPI_CODES[code][0], {"result": {"status": "error", "code": code,
                                                   "message": message}}, headers)


def failed(exc: BaseException) -> Response:
    """An error as the one error table words it for the console API."""
    _status, code, message = mcapi_error(exc)
    if code == 5000:
        log.error("mcapi call failed: %s (%s)", message, type(exc).__name__)
    return error(code, message)


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object (or form fields) of a POST; {} for GET (query parameters)."""
    if request.method == "GET":
        return dict(request.query_params)
    ctype = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    raw = await request.body()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except Exception as exc:  # Starlette's parsers raise several kinds
            raise McError(1001, f"The form could not be read: {exc}") from None
        return {k: str(v) for k, v in form.multi_items()}
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, numbers too long, too deep
        raise McError(1001, f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise McError(1001, "The request body must be a JSON object.")
    return body


def _unwrap(body: dict[str, Any], key: str) -> dict[str, Any]:
    """The arguments inside `key`: {key: {...}} or the source's
    {"result": {"status": ..., "data": {key: {...}}}}; form fields are flat already."""
    wrapped = set(body) == {"result"} and isinstance(body["result"], dict)
    outer: Any = body["result"].get("data", {}) if wrapped else body
    if isinstance(outer, dict) and key in outer:
        inner = outer[key]
        if not isinstance(inner, dict):
            raise McError(1002, f"{key} must be a JSON object.")
        return {str(k): v for k, v in inner.items()}
    if not wrapped and "result" not in body:
        return body  # flat fields (form data)
    raise McError(1002, f"The request body has no {key} object.")


class McApi:
    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.sessions = Sessions(state.users.master)
        self.server_id = _server_id(state.data_dir)
        self.routes: dict[str, Function] = {
            fn.mcapi.path: fn for fn in REGISTRY if fn.mcapi is not None}

    @staticmethod
    def _digest(request: Request) -> str:
        return digest(request.headers.get("x-fs-sessionid")
                      or request.headers.get("x-as-sessionid") or "")

    def session(self, request: Request) -> Session:
        sid = (request.headers.get("x-fs-sessionid") or request.headers.get("x-as-sessionid")
               or "")
        session = self.sessions.get(sid) if sid else None
        if session is None:
            raise McError(3001, "Not logged in: log in with /mcapi/auth/login and send the "
                          "sessionId in the X-Fs-SessionId header.")
        users = self.state.users
        refusal = users.login_refusal(session.user_name, "web")
        if refusal is not None:
            # deleted, or it lost its right to log in since the session began
            self.sessions.close(sid)
            raise McError(3001, "The session's account no longer exists or may no longer "
                          "log in: log in again.")
        return session

    async def login(self, request: Request) -> Response:
        body = await _body(request)
        user, password = body.get("userName"), body.get("password")
        if not isinstance(user, str) or not user or not isinstance(password, str):
            raise McError(1002, "userName and password are required.")
        timeout = body.get("timeout", DEFAULT_TIMEOUT_MIN)
        try:
            minutes = int(timeout) if not isinstance(timeout, bool) else -1
        except (TypeError, ValueError, OverflowError):  # also Infinity, 1e400
            minutes = -1
        if not 1 <= minutes <= MAX_TIMEOUT_MIN:
            raise McError(1002, f"timeout must be a whole number of minutes from 1 to "
                          f"{MAX_TIMEOUT_MIN}.")
        address = request.client.host if request.client else ""
        auth = self.state.authenticator
        mfa = MultiFactor(self.state.users.master, self.state.data_dir)
        two_step = mfa.required(user)  # then the code, not the password, settles the login
        result = auth.check_cached(user, password, address, "web", not two_step)
        if result is None:
            result = await anyio.to_thread.run_sync(auth.check, user, password, address, "web",
                                                    not two_step)
        if result.reason == "busy":
            raise McError(2005, "The directory is busy: try again in a moment.",
                          {"Retry-After": "2"})
        if not result.ok:
            if result.reason == "locked-out":
                wait = int(result.retry_after or 60)
                raise McError(2002, f"Too many failed logins: try again in {wait} seconds.",
                              {"Retry-After": str(wait)})
            raise McError(2001, "Wrong user name or password.")
        users = self.state.users
        refusal = users.login_refusal(user, "web")
        if refusal is not None:
            raise McError(2003, refusal)
        # Without a management role the account is a user of the console: it reads its own
        # archive (functions declared for the role "user"), nothing else.
        role = users.effective_role(user) or "user"
        if users.has_initial_password(user) and not local_request(request):
            raise McError(2003, "The account still has its initial password: log in from "
                          "this machine and change it first (mailkeep user password).")
        if two_step:
            code = body.get("code")
            if not isinstance(code, str) or not code.strip():
                raise McError(2004, "This account logs in with a one-time code as well: send "
                              "code (the authenticator app's, or one of the recovery codes).")
            codes_wait = auth.codes_locked(user)
            if codes_wait is not None:
                seconds = str(int(codes_wait) + 1)
                raise McError(2002, f"Too many wrong codes for this account: try again in "
                              f"{seconds} seconds.", {"Retry-After": seconds})
            if not await anyio.to_thread.run_sync(mfa.check_code, user, code):
                auth.failed(user, address)  # counted like a wrong password: throttled alike
                raise McError(2001, "Wrong user name, password or code.")
            auth.succeeded(user, address)
        name = users.get(user)["userName"]  # as stored, whatever case was typed
        sid = await anyio.to_thread.run_sync(self.sessions.open, name, role, address, minutes)
        data: dict[str, Any] = {"sessionId": sid, "serverName": socket.gethostname(),
                                "serverId": self.server_id}
        if _truthy(body.get("getRole")):
            data["role"] = role
        if users.has_initial_password(name):  # the console asks for a new one at once
            data["mustChangePassword"] = True
        return success(data)

    async def logout(self, request: Request) -> Response:
        self.session(request)
        sid = (request.headers.get("x-fs-sessionid") or request.headers.get("x-as-sessionid")
               or "")
        self.sessions.close(sid)
        return success({})

    def description(self, request: Request) -> Response:
        """The OpenAPI description, for an administrator's session: like get-metadata, it
        names every function, which is not for other roles to find out. Served here too so
        that it is there while the Administration API is off."""
        if request.method != "GET":
            raise McError(1005, "/mcapi/openapi.json is called with GET.")
        session = self.session(request)
        if self.state.users.effective_role(session.user_name) != "administrator":
            raise McError(3002, "The API description is for administrators.")
        return Response(openapi.document_bytes(), 200, HEADERS,
                        media_type="application/json; charset=utf-8")

    async def call(self, request: Request, path: str) -> Response:
        fn = self.routes.get(path)
        if fn is None or fn.mcapi is None:
            raise McError(1003, f"No function /mcapi/{path}.")
        if request.method != fn.mcapi.method:
            raise McError(1005, f"/mcapi/{path} is called with {fn.mcapi.method}.")
        session = self.session(request)
        caller = Caller(session.user_name, "mcapi", request.client.host if request.client
                        else "", session=self._digest(request),
                        agent=user_agent(request.headers))
        invoker = self.state.invoker
        invoker.admit(fn, caller)  # the role of now, before the body is read
        body = await _body(request)
        if fn.mcapi.body:
            body = _unwrap(body, fn.mcapi.body)
        if fn.mcapi.arg:
            body = {fn.mcapi.arg: body}
        form, native = split_json(fn, body)
        prepared = invoker.with_args(fn, caller, form, native)
        engine = self.state.engine
        snap = await invoker.start(prepared)
        while snap.status_code == RUNNING and snap.token is not None:
            snap = await engine.status(snap.token, session.user_name, snap.status_version,
                                       60_000)
        if snap.status_code != "succeeded":
            return failed(snap.exception or Cancelled())
        route = fn.mcapi
        result = snap.result
        if route.result == "":
            data: Any = {}
        elif route.result:
            data = {route.result: result}
        else:
            data = result if result is not None else {}
        return success(data)

    # -- any catalog function, for the console's administration pages -----------------------
    def functions(self, request: Request) -> Response:
        """The functions with their arguments as forms need them, each saying whether the
        session's role may call it now (`allowed`): the management roles see the others as
        unavailable; a user of the console sees only its own."""
        session = self.session(request)
        role = self.state.users.effective_role(session.user_name) or "user"
        out = []
        for fn in REGISTRY:
            allowed = role in fn.roles
            if not allowed and role == "user":
                continue
            out.append({"name": fn.name, "allowed": allowed, "roles": list(fn.roles),
                        "description": fn.description, "result": fn.result,
                        "longRunning": fn.long_running, "changes": fn.changes,
                        "args": [{"name": a.name, "type": a.kind, "required": a.required,
                                  "default": None if a.secret else a.default,
                                  "choices": list(a.choices), "description": a.description,
                                  "secret": a.secret, "nullable": a.nullable}
                                 for a in fn.args]})
        return success({"role": role, "functions": out})

    async def invoke(self, request: Request) -> Response:
        """Start a catalog function by name (the role of now decides), answering at once for
        one that runs as a process: its token, then function/status with the version known."""
        session = self.session(request)
        caller = Caller(session.user_name, "mcapi",
                        request.client.host if request.client else "",
                        session=self._digest(request), agent=user_agent(request.headers))
        body = await _body(request)
        name, args = body.get("name"), body.get("args", {})
        if not isinstance(name, str) or not isinstance(args, dict):
            raise McError(1002, "Send name (a function of function/list) and args (an "
                          "object).")
        invoker = self.state.invoker
        fn = invoker.admit(name, caller)
        form, native = split_json(fn, args)
        snap = await invoker.start(invoker.with_args(fn, caller, form, native))
        return success(snapshot(snap))

    async def status(self, request: Request) -> Response:
        session = self.session(request)
        body = await _body(request)
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise McError(1002, "Send the token function/invoke gave.")
        try:
            known = int(body.get("lastKnownStatusVersion", -1))
            wait = min(int(body.get("millisecondsTimeout", 0)), 60_000)
        except (TypeError, ValueError, OverflowError):
            raise McError(1002, "lastKnownStatusVersion and millisecondsTimeout are "
                          "numbers.") from None
        try:
            snap = await self.state.engine.status(token, session.user_name, known, wait)
        except UnknownToken:
            raise McError(1003, "Unknown or expired token.") from None
        return success(snapshot(snap))

    async def cancel(self, request: Request) -> Response:
        session = self.session(request)
        token = (await _body(request)).get("token")
        try:
            snap = self.state.engine.cancel(str(token or ""), session.user_name)
        except UnknownToken:
            raise McError(1003, "Unknown or expired token.") from None
        return success(snapshot(snap))

    async def dispatch(self, request: Request) -> Response:
        path = request.url.path[len(PREFIX) - 1:].strip("/")
        try:
            if path == "auth/login":
                if request.method != "POST":
                    raise McError(1005, "/mcapi/auth/login is called with POST.")
                return await self.login(request)
            if path == "auth/logout":
                if request.method != "POST":
                    raise McError(1005, "/mcapi/auth/logout is called with POST.")
                return await self.logout(request)
            if path == "openapi.json":
                return self.description(request)
            generic = {"function/invoke": self.invoke, "function/status": self.status,
                       "function/cancel": self.cancel}
            if path in generic or path == "function/list":
                if request.method != "POST":
                    raise McError(1005, f"/mcapi/{path} is called with POST.")
                if path == "function/list":
                    return self.functions(request)
                return await generic[path](request)
            return await self.call(request, path)
        except McError as exc:
            return error(exc.code, exc.message, exc.headers)
        except MailkeepError as exc:
            return failed(exc)


def snapshot(snap: Any) -> dict[str, Any]:
    """A process's state as the console shows it (the Administration API's envelope, in the
    console's)."""
    return {"token": snap.token, "statusVersion": snap.status_version,
            "statusCode": snap.status_code, "percentProgress": snap.percent_progress,
            "statusText": snap.status_text, "result": snap.result,
            "error": None if snap.error is None else {"message": snap.error[0],
                                                      "details": snap.error[1]},
            "logOutput": snap.log_output}


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and parse_bool(value) is True)


def _server_id(data_dir: Path) -> str:
    """A stable id of this server (its data directory), made once."""
    path = data_dir / "conf" / "server-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        value = uuid.uuid4().hex.upper()
        tmp = path.with_name("server-id.tmp")
        tmp.write_text(value + "\n")
        tmp.replace(path)
        return path.read_text().strip()


def routes(state: ApiState) -> list[Route]:
    api = McApi(state)
    # Every method reaches dispatch, so that a wrong one gets the envelope too (1005).
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [Route(PREFIX + "{path:path}", api.dispatch, methods=methods),
            Route(PREFIX.rstrip("/"), api.dispatch, methods=methods)]
