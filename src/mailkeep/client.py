"""A Python client for the Administration API, sync and async (httpx).

It follows long-running processes to their end, maps the error envelope to exceptions, and can
pin the server's certificate by its SHA-256 fingerprint instead of switching verification off.
It speaks the protocol only, so it works against the original product as well.

    with AdminClient("https://archive.example.org:8463", "admin", "secret",
                     fingerprint="AB:CD:...") as api:
        stores = api.invoke("GetStores", includeSize=True)
        api.invoke("VerifyStore", id=1, includeIndexes=True, progress=print)
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["AdminClient", "AsyncAdminClient", "AdminApiError", "AuthenticationError",
           "TokenExpired", "ProcessFailed", "ProcessCancelled", "Status"]

POLL_MS = 1000


class AdminApiError(Exception):
    """Anything the server refused or reported as failed."""

    def __init__(self, message: str, details: str = "", status_code: int | None = None) -> None:
        super().__init__(message)
        self.message, self.details, self.status_code = message, details, status_code


class AuthenticationError(AdminApiError):
    """401 or 403: wrong credentials, not an administrator, API disabled or local only."""


class TokenExpired(AdminApiError):
    """404 on get-status: the process is unknown or was forgotten."""


class ProcessFailed(AdminApiError):
    """The function ran and failed; `message`/`details` come from the error envelope."""


class ProcessCancelled(AdminApiError):
    """The process ended as cancelled."""


@dataclass(frozen=True)
class Status:
    """One answer of a running process, for progress callbacks."""

    token: str | None
    version: int
    code: str
    percent: int | None
    text: str | None
    log: str | None


def _form(args: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in args.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            out[name] = json.dumps(value)
        else:
            out[name] = str(value)
    return out


def _normalise(fp: str) -> str:
    return fp.replace(":", "").replace(" ", "").lower()


def pinned_context(url: str, fingerprint: str) -> ssl.SSLContext:
    """An SSL context that trusts exactly the certificate with this SHA-256 fingerprint."""
    parts = urlsplit(url)
    pem = ssl.get_server_certificate((parts.hostname or "localhost", parts.port or 8463))
    if hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest() != _normalise(fingerprint):
        raise AdminApiError(f"the server's certificate does not have the pinned fingerprint "
                            f"{fingerprint}")
    context = ssl.create_default_context(cadata=pem)
    context.check_hostname = False  # the fingerprint is the identity
    # The pinned certificate itself is the anchor, whoever issued it (a CA's certificate
    # is not trusted through it).
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _envelope(resp: httpx.Response) -> dict[str, Any]:
    if resp.status_code in (401, 403):
        raise AuthenticationError(resp.text.strip() or "not authorised", "", resp.status_code)
    if resp.status_code == 404:
        raise TokenExpired("unknown or expired token", "", 404)
    if resp.status_code != 200:
        raise AdminApiError(f"HTTP {resp.status_code}", resp.text[:200], resp.status_code)
    body: dict[str, Any] = json.loads(resp.content.decode("utf-8-sig"))
    return body


def _outcome(body: dict[str, Any]) -> Any:
    code = body.get("statusCode")
    error = body.get("error") or {}
    if code == "failed" or error:
        raise ProcessFailed(error.get("message", "failed"), error.get("details", ""))
    if code == "cancelled":
        raise ProcessCancelled("the process was cancelled")
    return body.get("result")


def _status(body: dict[str, Any]) -> Status:
    return Status(body.get("token"), int(body.get("statusVersion") or 0),
                  str(body.get("statusCode")), body.get("percentProgress"),
                  body.get("statusText"), body.get("logOutput"))


def _client_args(url: str, user: str, password: str, verify: bool | str,
                 fingerprint: str | None, timeout: float) -> dict[str, Any]:
    ctx: bool | str | ssl.SSLContext = verify
    if fingerprint and url.startswith("https"):
        ctx = pinned_context(url, fingerprint)
    elif isinstance(verify, str):
        ctx = ssl.create_default_context(cafile=verify)
    return {"base_url": url.rstrip("/"), "auth": httpx.BasicAuth(user, password),
            "verify": ctx, "timeout": timeout + POLL_MS / 1000}


class AdminClient:
    def __init__(self, url: str = "https://localhost:8463", user: str = "admin",
                 password: str = "admin", *, verify: bool | str = True,
                 fingerprint: str | None = None, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        args = _client_args(url, user, password, verify, fingerprint, timeout)
        self._http = httpx.Client(transport=transport, **args)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def functions(self) -> list[dict[str, Any]]:
        resp = self._http.post("/api/get-metadata")
        if resp.status_code != 200:
            _envelope(resp)
        result: list[dict[str, Any]] = json.loads(resp.content.decode("utf-8-sig"))
        return result

    def invoke(self, function: str, progress: Callable[[Status], None] | None = None,
               **args: Any) -> Any:
        """Call a function and follow it to its end; its result, or an exception."""
        body = _envelope(self._http.post(f"/api/invoke/{function}", data=_form(args)))
        while body.get("statusCode") == "running":
            if progress:
                progress(_status(body))
            body = _envelope(self._http.post("/api/get-status", data={
                "token": body["token"], "lastKnownStatusVersion": str(body["statusVersion"]),
                "millisecondsTimeout": str(POLL_MS)}))
        if progress:
            progress(_status(body))
        return _outcome(body)

    def cancel(self, token: str) -> None:
        _envelope(self._http.post("/api/cancel-async", data={"token": token}))


class AsyncAdminClient:
    def __init__(self, url: str = "https://localhost:8463", user: str = "admin",
                 password: str = "admin", *, verify: bool | str = True,
                 fingerprint: str | None = None, timeout: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        args = _client_args(url, user, password, verify, fingerprint, timeout)
        self._http = httpx.AsyncClient(transport=transport, **args)

    async def __aenter__(self) -> AsyncAdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def functions(self) -> list[dict[str, Any]]:
        resp = await self._http.post("/api/get-metadata")
        if resp.status_code != 200:
            _envelope(resp)
        result: list[dict[str, Any]] = json.loads(resp.content.decode("utf-8-sig"))
        return result

    async def invoke(self, function: str, progress: Callable[[Status], None] | None = None,
                     **args: Any) -> Any:
        body = _envelope(await self._http.post(f"/api/invoke/{function}", data=_form(args)))
        while body.get("statusCode") == "running":
            if progress:
                progress(_status(body))
            body = _envelope(await self._http.post("/api/get-status", data={
                "token": body["token"], "lastKnownStatusVersion": str(body["statusVersion"]),
                "millisecondsTimeout": str(POLL_MS)}))
        if progress:
            progress(_status(body))
        return _outcome(body)

    async def cancel(self, token: str) -> None:
        _envelope(await self._http.post("/api/cancel-async", data={"token": token}))
