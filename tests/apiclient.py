"""Helpers the Administration API tests share: Basic auth, a cheap password hasher, reading
the envelope the way a MailStore client does (BOM, the eight keys in order), and what a master
database in PostgreSQL holds."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from mailkeep.core.admin.users import Users
from mailkeep.core.masterdb import MasterDB
from tests.helpers import CHEAP, master_sql

KEYS = ["error", "token", "statusVersion", "statusCode", "percentProgress", "statusText",
        "result", "logOutput"]
LOCAL = ("127.0.0.1", 50123)


def basic(user: str = "admin", password: str = "admin") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def fast_users(data: Path) -> Users:
    """The users of a data directory (created if need be), with the cheap password hasher."""
    data.mkdir(parents=True, exist_ok=True)
    return Users(MasterDB.of(data), hasher=CHEAP)


def postgres_rows(data: Path) -> str:
    """Every row of every table of the master database in PostgreSQL ($MAILKEEP_DATABASE) as
    text: what a test that finds no secret in the SQLite file of the data directory reads
    there instead."""
    with master_sql(data) as db:
        tables = [t for (t,) in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()]
        return "\n".join(row[0] for t in tables
                         for row in db.execute(f'SELECT t::text FROM "{t}" t').fetchall())


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


def archive_with_messages(data: Path, mail: Path, count: int,
                          body: str = "body {i}") -> Path:
    """A data directory holding `count` small messages, imported with the real importer."""
    from mailkeep.core.archive import Archive
    from mailkeep.core.ingest import Importer
    from mailkeep.sources.detect import read_paths

    mail.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (mail / f"{i}.eml").write_bytes(
            f"From: a{i}@example.org\r\nSubject: message {i}\r\n\r\n{body.format(i=i)}\r\n"
            .encode())
    with Archive(data) as archive:
        Importer(archive, workers=1).run(read_paths([mail]))
    return data


def api_client(data: Path, enabled: bool = True,
               client: tuple[str, int] = LOCAL) -> TestClient:
    """The real ASGI app in-process, with a cheap password hasher, seen from `client`."""
    from mailkeep.web.app import create_app

    return TestClient(create_app(data, api_enabled=enabled, hasher=CHEAP),
                      client=client)
