"""Fixtures and helpers of the archiving profile tests: the Administration API in-process
(TestClient, the app's lifespan running) on a data directory with user alice, and reading the
archive back (bytes, flags, internal dates per folder). The private Dovecot per test module and
its users are the root conftest's."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from mailkeep.core.archive import Archive
from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, basic, decode, finish, invoke
from tests.helpers import CHEAP, master_sql

Folders = dict[str, list[tuple[bytes, frozenset[str], int | None]]]


# -- the Administration API -------------------------------------------------------------------
def ok(api: TestClient, function_name: str, **args: Any) -> Any:
    """Call a function, following a long-running one to its end; it must succeed."""
    body, _log = call(api, function_name, **args)
    assert body["statusCode"] == "succeeded", body["error"]
    return body["result"]


def failed(api: TestClient, function_name: str, **args: Any) -> str:
    """Call a function to its end; it must fail; returns the error message."""
    body, _log = call(api, function_name, **args)
    assert body["statusCode"] == "failed" and body["result"] is None, body
    message: str = body["error"]["message"]
    return message


def call(api: TestClient, function_name: str, **args: Any) -> tuple[dict[str, Any], str]:
    """(the final envelope, the whole log) of one call; JSON for dicts and lists."""
    form = {k: json.dumps(v) if isinstance(v, dict | list) else
            str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in args.items() if v is not None}
    return finish(api, invoke(api, function_name, **form))


def cancel(api: TestClient, token: str) -> dict[str, Any]:
    return decode(api.post("/api/cancel-async", headers=basic(), data={"token": token}))


def create(api: TestClient, **props: Any) -> dict[str, Any]:
    profile: dict[str, Any] = ok(api, "CreateProfile", properties=props, raw=False)
    return profile


def run(api: TestClient, profile_id: int) -> dict[str, Any]:
    """RunProfile to its end; the worker result."""
    result: dict[str, Any] = ok(api, "RunProfile", id=profile_id)
    return result


def results(api: TestClient, tz: str = "Europe/Berlin", **filters: Any) -> list[dict[str, Any]]:
    """GetWorkerResults over the last and the next hour, in zone tz."""
    key = {"W. Europe Standard Time": "Europe/Berlin"}.get(tz, tz)
    now = datetime.now(ZoneInfo(key)).replace(tzinfo=None)
    rows: list[dict[str, Any]] = ok(
        api, "GetWorkerResults", fromIncluding=(now - timedelta(hours=1)).isoformat("T", "seconds"),
        toExcluding=(now + timedelta(hours=1)).isoformat("T", "seconds"), timeZoneID=tz,
        **filters)
    return rows


# -- the archive ------------------------------------------------------------------------------
def archived(data: Path, owner: str = "alice") -> Folders:
    """Folder path -> [(exact bytes, flags, internal date)] of owner's archive, in filing order."""
    out: Folders = {}
    with Archive(data) as archive:
        for _rec, store in archive.readable_stores():
            rows = store.catalog.conn.execute(
                "SELECT f.path, e.number, e.flags, e.internal_date FROM entries e JOIN folders f"
                " ON f.id = e.folder_id WHERE f.owner = ? ORDER BY e.number", (owner,)).fetchall()
            for path, number, flags, internal in rows:
                out.setdefault(path, []).append(
                    (store.read(number), frozenset(f for f in flags.split(",") if f), internal))
    return out


def query(data: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of the master database (a connection of its own, closed again)."""
    with master_sql(data) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
    return rows


def counts(data: Path, owner: str = "alice") -> dict[str, int]:
    return {path: len(v) for path, v in archived(data, owner).items()}


def past(path: Path, seconds: float = 60.0) -> None:
    """Set a file's times into the past: the file sources leave files modified just now."""
    when = time.time() - seconds
    os.utime(path, (when, when))


def eml(i: int, subject: str = "message", extra: str = "") -> bytes:
    return (f"From: a{i}@example.org\r\nTo: alice@example.org\r\nSubject: {subject} {i}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}.{i}@example.org>\r\n"
            f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\r\n\r\nbody {i}{extra}\r\n"
            ).encode()


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def api(data: Path) -> Iterator[TestClient]:
    """The app in-process with user alice (the lifespan runs: engine, writer, automatic)."""
    app = create_app(data, api_enabled=True, hasher=CHEAP)
    with TestClient(app, client=LOCAL) as client:
        ok(client, "CreateUser", userName="alice", privileges="login")
        yield client
