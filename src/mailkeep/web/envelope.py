"""The Administration API's answer: eight keys in a fixed order, UTF-8 with a BOM, no caching."""

from __future__ import annotations

import json
from email.utils import formatdate
from typing import Any

from starlette.responses import Response

from mailkeep.jobs.engine import Snapshot

BOM = b"\xef\xbb\xbf"
NO_CACHE = {
    "Cache-Control": "no-cache,private,no-store,must-revalidate,max-stale=0,post-check=0,"
                     "pre-check=0",
    "Pragma": "no-cache",
}
CONTENT_TYPE = "application/json; charset=utf-8"


def _headers() -> dict[str, str]:
    return {**NO_CACHE, "Expires": formatdate(usegmt=True)}


def json_bytes(value: Any, bom: bool = True) -> bytes:
    body = json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")
    return BOM + body if bom else body


def envelope(snapshot: Snapshot) -> Response:
    error = None
    if snapshot.error is not None:
        error = {"message": snapshot.error[0], "details": snapshot.error[1]}
    body = {  # the order is part of the protocol
        "error": error,
        "token": snapshot.token,
        "statusVersion": snapshot.status_version,
        "statusCode": snapshot.status_code,
        "percentProgress": snapshot.percent_progress,
        "statusText": snapshot.status_text,
        "result": snapshot.result,
        "logOutput": snapshot.log_output,
    }
    return Response(json_bytes(body), 200, _headers(), media_type=CONTENT_TYPE)


def failure(message: str, details: str = "") -> Response:
    """A call that failed before it could run (bad arguments, unknown function)."""
    return envelope(Snapshot(token=None, status_version=2, status_code="failed",
                             percent_progress=None, status_text=None, result=None,
                             error=(message, details), log_output=None))


def refused(status: int, message: str, details: str) -> Response:
    """A request refused before it reached the API (its body too large, or too slow): the
    HTTP status says so, and the body is the failed envelope the API's clients parse."""
    response = failure(message, details)
    response.status_code = status
    return response


def plain(status: int, message: str, extra: dict[str, str] | None = None) -> Response:
    """401/403/404 answers: the status is what clients look at; the text says why."""
    return Response(message + "\r\n", status, {**_headers(), **(extra or {})},
                    media_type="text/plain; charset=utf-8")


def user_agent(headers: Any) -> str:
    """A request's User-Agent as the audit log keeps it: printable ASCII, at most 200
    characters (anything else a client sends becomes '?')."""
    raw = str(headers.get("user-agent") or "")[:200]
    return "".join(c if " " <= c <= "~" else "?" for c in raw)
