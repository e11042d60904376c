"""The one error table (error_table.py): every error of the project has its entry, the
documentation prints the table as it is, and the same failure reads the same through every
interface: the Administration API's details, the console API's code and HTTP status, the
command line's exit code."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import mailkeep
from mailkeep import error_table as errors
from mailkeep.core.errors import Cancelled, Forbidden, MailkeepError
from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, archive_with_messages, basic, decode
from tests.helpers import CHEAP, ROOT, call_function, mk


def all_error_classes() -> set[type[BaseException]]:
    for mod in pkgutil.walk_packages(mailkeep.__path__, "mailkeep."):
        if mod.name != "mailkeep.__main__":
            importlib.import_module(mod.name)
    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [MailkeepError, Cancelled]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return {c for c in found if c.__module__.startswith("mailkeep.")}


def test_every_error_class_has_an_entry_with_known_codes() -> None:
    """Each class resolves to an entry (its own or its nearest ancestor's) whose console code
    is one the table declares; a class the table names outright is a real class."""
    classes = all_error_classes()
    assert len(classes) >= 15
    for cls in classes:
        entry = errors.spec(cls.__new__(cls))
        assert entry.mcapi in errors.MCAPI_CODES, cls
        assert entry.exit in (1, 2, 3, 4, 5, 6, 7, 8, 130), cls
        assert entry.event is None or entry.event.count(".") == 1, cls
    by_name = {f"{c.__module__}.{c.__qualname__}": c for c in classes}
    for key in errors.ERRORS:
        assert key in classes or key in by_name or key is Exception, key


def test_the_documentation_prints_the_table() -> None:
    """docs/mcapi.md lists every console code with its HTTP status; the README names every
    exit code."""
    doc = (ROOT / "docs" / "mcapi.md").read_text()
    rows = {int(code): int(status)
            for code, status in re.findall(r"^\| (\d{4}) \| (\d{3}) \|", doc, re.M)}
    assert rows == {code: status for code, (status, _) in errors.MCAPI_CODES.items()}
    readme = (ROOT / "README.md").read_text()
    sentence = readme[readme.index("Exit codes of every command"):]
    sentence = sentence[:sentence.index("\n\n")]
    named = {int(n) for n in re.findall(r"\b(\d+) [a-z]", sentence)}
    assert named == {0} | {e.exit for e in errors.ERRORS.values()}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return archive_with_messages(tmp_path / "data", tmp_path / "mail", 2)


@pytest.fixture
def api(data: Path) -> Iterator[TestClient]:
    with TestClient(create_app(data, api_enabled=True, hasher=CHEAP), client=LOCAL) as client:
        yield client


def console(api: TestClient, user: str, password: str) -> dict[str, str]:
    body = api.post("/mcapi/auth/login", json={"userName": user, "password": password}).json()
    return {"X-Fs-SessionId": body["result"]["data"]["sessionId"]}


CONNECTION = {"name": "relay", "type": "smtp", "serverName": "smtp.example.org",
              "port": "25"}


@pytest.mark.parametrize(("kind", "details", "code", "status", "exit_code"), [
    ("not found", "not_found", 1004, 404, 3),
    ("conflict", "conflict", 1006, 409, 4),
    ("bad argument", "invalid_argument", 1002, 400, 2),
])
def test_one_failure_reads_the_same_everywhere(kind: str, details: str, code: int,
                                                status: int, exit_code: int, data: Path,
                                                api: TestClient) -> None:
    """The same failing call of one function (GetConnection / CreateConnection) through the
    Administration API, the console API and `mailkeep call`."""
    call_function(data, "CreateConnection", **CONNECTION)
    if kind == "not found":
        name, form, route = "GetConnection", {"name": "nowhere"}, "/mcapi/connection/show"
    elif kind == "conflict":
        name, form, route = "CreateConnection", CONNECTION, "/mcapi/connection/create"
    else:
        name, form = "CreateConnection", {**CONNECTION, "name": "other", "port": "70000"}
        route = "/mcapi/connection/create"

    answer = decode(api.post(f"/api/invoke/{name}", data=form, headers=basic()))
    assert answer["statusCode"] == "failed" and answer["error"]["details"] == details
    message = answer["error"]["message"]

    headers = console(api, "admin", "admin")
    resp = (api.get(route, params=form, headers=headers) if name == "GetConnection"
            else api.post(route, json=form, headers=headers))
    assert resp.status_code == status
    assert resp.json()["result"] == {"status": "error", "code": code, "message": message}

    result = mk(data, "call", name, *[f"{k}={v}" for k, v in form.items()])
    assert result.exit_code == exit_code and message in result.stderr


def test_not_allowed_reads_the_same_everywhere(data: Path, api: TestClient) -> None:
    """A console role that may not call a function: 3002 and 403; the Administration API's
    non-administrator: 403, as the original answers."""
    call_function(data, "CreateUser", userName="olga", privileges="login",
                  password="Olga-pass-1")
    call_function(data, "SetUserRole", userName="olga", role="operator")
    resp = api.post("/mcapi/connection/create", json=CONNECTION,
                    headers=console(api, "olga", "Olga-pass-1"))
    assert resp.status_code == 403 and resp.json()["result"]["code"] == 3002
    assert "operator may not call CreateConnection" in resp.json()["result"]["message"]
    resp = api.post("/api/invoke/CreateConnection", data=CONNECTION,
                    headers=basic("olga", "Olga-pass-1"))
    assert resp.status_code == 403 and "not an administrator" in resp.text
    assert errors.exit_code(Forbidden("x")) == 8
