"""Helpers the Administration API tests share: Basic auth, a cheap password hasher, and
reading the envelope the way a MailStore client does (BOM, the eight keys in order)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from starlette.testclient import TestClient

from mailkeep.core.master import Master
from mailkeep.core.users import Users

KEYS = ["error", "token", "statusVersion", "statusCode", "percentProgress", "statusText",
        "result", "logOutput"]
LOCAL = ("127.0.0.1", 50123)


def basic(user: str = "admin", password: str = "admin") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def fast_users(data: Path) -> Users:
    data.mkdir(parents=True, exist_ok=True)
    return Users(Master(data / "mailkeep.db"),
                 hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def decode(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    raw: bytes = resp.content
    assert raw.startswith(b"\xef\xbb\xbf")
    body: dict[str, Any] = json.loads(raw.decode("utf-8-sig"))
    assert list(body) == KEYS
    return body


def invoke(api: TestClient, function_name: str, **args: Any) -> dict[str, Any]:
    return decode(api.post(f"/api/invoke/{function_name}", data=args, headers=basic()))


def finish(api: TestClient, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Follow a token to the end the way the original's Python wrapper does."""
    log = body["logOutput"] or ""
    while body["statusCode"] == "running":
        body = decode(api.post("/api/get-status", headers=basic(), data={
            "token": body["token"], "lastKnownStatusVersion": body["statusVersion"],
            "millisecondsTimeout": 1000}))
        log += body["logOutput"] or ""
    return body, log
