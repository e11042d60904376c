"""Arguments that schemathesis (tests/web/test_openapi.py) found mishandled, given to every
function that takes such an argument: the answer is an argument error (or names nothing), never
an exception nobody expected (a 500, or a failed call whose details are a class name, logged
with its traceback).

- A number beyond what SQLite stores: the ids of profiles and worker results reached SQLite
  unchecked (OverflowError).
- A path starting with `~name` for a user this machine does not have: expanding it raises
  RuntimeError (every absolute-path field, in the catalog, the notification settings and the
  directory configuration).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.fields import Field
from mailkeep.functions import REGISTRY
from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, archive_with_messages, basic, decode, fast_users
from tests.helpers import CHEAP

HUGE = ["9223372036854775808", "-9223372036854775809", "1e300"]
NO_HOME = "~no-such-user-5c2e/mail"
# Values that let a call get as far as its odd argument.
GIVEN = {"fromIncluding": "2026-01-01T00:00:00", "toExcluding": "2026-02-01T00:00:00",
         "timeZoneID": "$Local", "timeZoneId": "$Local", "serverName": "smtp.example.org"}
NUMERIC = [fn.name for fn in REGISTRY if any(a.kind in ("int", "number") for a in fn.args)]
PATHS = [fn.name for fn in REGISTRY if any(a.format == "absolute-path" for a in fn.args)]


def _placeholder(a: Field) -> str:
    if a.name in GIVEN:
        return GIVEN[a.name]
    if a.choices:
        return a.choices[0]
    return {"int": "1", "number": "1", "bool": "false", "json": "{}"}.get(a.kind, "x")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("odd")
    archive_with_messages(root / "data", root / "mail", 2)
    users = fast_users(root / "data")
    users.ensure_initial_admin()
    users.master.close()
    app = create_app(root / "data", api_enabled=True, hasher=CHEAP)
    with TestClient(app, client=LOCAL, raise_server_exceptions=False) as client:
        yield client


def expected_error(resp: Any, what: object) -> dict[str, str]:
    """The failed envelope of an error the error table knows (its details are no class name)."""
    assert resp.status_code == 200, (what, resp.status_code, resp.text)
    error: dict[str, str] = decode(resp)["error"] or {"details": "", "message": ""}
    assert not re.fullmatch(r"[A-Z]\w*", error["details"]), (what, json.dumps(error))
    return error


def _calls(name: str, odd: list[str], which: Any) -> Iterator[tuple[dict[str, str], object]]:
    fn = REGISTRY.find(name)
    base = {a.name: _placeholder(a) for a in fn.args if not a.nullable and a.default is None}
    for arg in filter(which, fn.args):
        for value in odd:
            yield {**base, arg.name: value}, (name, arg.name, value)


@pytest.mark.parametrize("name", NUMERIC)
def test_numbers_beyond_sqlite(api: TestClient, name: str) -> None:
    for form, what in _calls(name, HUGE, lambda a: a.kind in ("int", "number")):
        expected_error(api.post(f"/api/invoke/{name}", data=form, headers=basic()), what)


def test_a_profile_id_beyond_sqlite_is_an_argument_error(api: TestClient) -> None:
    error = expected_error(api.post("/api/invoke/RunProfile", data={"id": HUGE[0]},
                                    headers=basic()), "RunProfile")
    assert error["details"] == "invalid_argument"
    assert "Invalid value for API argument id" in error["message"]


@pytest.mark.parametrize("name", PATHS)
def test_the_home_of_no_user(api: TestClient, name: str) -> None:
    for form, what in _calls(name, [NO_HOME], lambda a: a.format == "absolute-path"):
        error = expected_error(api.post(f"/api/invoke/{name}", data=form, headers=basic()),
                               what)
        assert error["details"] == "invalid_argument", (what, error)


def test_the_home_of_no_user_in_settings_objects(api: TestClient) -> None:
    for name, form in (
            ("SetSmtpSettings", {"settings": json.dumps({"caFile": NO_HOME})}),
            ("SetDirectoryServicesConfiguration", {"config": json.dumps({"caFile": NO_HOME})})):
        error = expected_error(api.post(f"/api/invoke/{name}", data=form, headers=basic()),
                               name)
        assert error["details"] == "invalid_argument", (name, error)
    sid = api.post("/mcapi/auth/login", json={"userName": "admin", "password": "admin"}
                   ).json()["result"]["data"]["sessionId"]
    for path, body in (
            ("connection/create", {"name": "c", "type": "smtp", "serverName": "h",
                                   "caFile": NO_HOME}),
            ("mail/configuration/set", {"configuration": {"caFile": NO_HOME}})):
        resp = api.post(f"/mcapi/{path}", json=body, headers={"X-Fs-SessionId": sid})
        assert resp.status_code == 400 and resp.json()["result"]["code"] == 1002, (
            path, resp.text)
