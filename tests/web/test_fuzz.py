"""Random form fields against every function of the Administration API, in-process.

Whatever a client sends, the answer is the envelope (HTTP 200, BOM, the eight keys in order, a
known statusCode; for a body over the server's limit the same envelope, failed, with HTTP 413)
or, for get-status/cancel-async, a plain 404; never a 500, never a traceback.
One data directory per test function: examples share it, and the invariants hold whatever state
earlier examples left behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from mailkeep.functions import REGISTRY, Function
from mailkeep.web.app import create_app
from mailkeep.web.guard import MAX_BODY
from tests.apiclient import KEYS, LOCAL, archive_with_messages, basic
from tests.helpers import CHEAP

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

STATUS_CODES = {"succeeded", "failed", "running", "cancelled"}
PATH_ARGS = {"path", "databasepath", "contentpath", "indexpath"}
# MAILKEEP_FUZZ_EXAMPLES=200 for a longer hunt; the default keeps the file under ~10 s.
FUZZ = settings(max_examples=int(os.environ.get("MAILKEEP_FUZZ_EXAMPLES", "12")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])

SPECIAL = ["", " ", "0", "1", "2", "-1", "1.5", "1e309", "-1e309", "inf", "-inf", "nan", "NaN",
           "Infinity", "9" * 30, "9" * 5000, "0x10", "1_000", "true", "TRUE", "True", "false",
           "yes", "no", "null", "None", "[]", "{}", "[1,2]", '{"a": 1}', '{"a":', "[", '"',
           "\x00", "a\x00b", "\ufeff", "\ud7ff\U0001f600", "current", "normal", "disabled",
           "writeProtected", "FileSystemInternal", "alice", "alice/Inbox", "/", "//", "..",
           "../..", "~", "a,b,,c", ",", "%00", "%", "&", "=", "\r\n", "\t"]

values = st.one_of(
    st.sampled_from(SPECIAL),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "\x00", "😀", "9", ","]),
              st.integers(10_000, 70_000)),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=6).map(json.dumps),
)


def _case(name: str, flip: bool) -> str:
    return name.swapcase() if flip else name


def arguments(fn: Function) -> st.SearchStrategy[dict[str, str]]:
    """Mostly the declared names (sometimes in another case) with random values, sometimes
    random names as well."""
    declared = st.fixed_dictionaries(
        {}, optional={a.name: values for a in fn.args}) if fn.args else st.just({})
    recased = st.builds(lambda d, flip: {_case(k, flip): v for k, v in d.items()},
                        declared, st.booleans())
    names = st.one_of(st.sampled_from([a.name for a in fn.args] or ["x"]), st.text(max_size=20),
                      st.sampled_from(["", "token", "id", "ID", "a b", "x=y", "&", "\x00"]))
    mixed = st.dictionaries(names, values, max_size=5)
    return st.one_of(declared, recased, mixed)


def _safe(form: dict[str, str], root: Path) -> dict[str, str]:
    """Keep paths inside the test's own directory, and the admin account's password alone."""
    out = {}
    for name, value in form.items():
        if name.lower() in PATH_ARGS:
            value = str(root / "fuzz" / value.replace("/", "_").replace("..", "__"))
        if value.strip().lower() == "admin":
            value = "admin-not"
        out[name] = value
    return out


def check_envelope(resp: Any, sent: object) -> dict[str, Any]:
    text = resp.content.decode("utf-8", "replace")
    too_large = len(resp.request.content) > MAX_BODY
    assert resp.status_code == (413 if too_large else 200), (resp.status_code, text[:2000], sent)
    assert "Traceback" not in text and 'File "' not in text, (text[:4000], sent)
    assert resp.content.startswith(b"\xef\xbb\xbf"), (text[:200], sent)
    body: dict[str, Any] = json.loads(resp.content.decode("utf-8-sig"))
    assert list(body) == KEYS, (body, sent)
    assert body["statusCode"] in STATUS_CODES, (body, sent)
    if too_large:
        assert body["statusCode"] == "failed", body
        assert body["error"]["details"] == "body_too_large", body
        assert "larger than" in body["error"]["message"], body
    return body


def follow(api: TestClient, body: dict[str, Any], sent: object) -> None:
    """Poll a started process a bounded number of times; every answer is an envelope."""
    for _ in range(40):
        if body["statusCode"] != "running":
            return
        resp = api.post("/api/get-status", headers=basic(), data={
            "token": body["token"], "lastKnownStatusVersion": str(body["statusVersion"]),
            "millisecondsTimeout": "250"})
        body = check_envelope(resp, sent)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    archive_with_messages(tmp_path / "data", tmp_path / "mail", 5)
    return tmp_path


@pytest.fixture
def api(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.chdir(root)  # relative paths land in the test's directory
    data = root / "data"
    app = create_app(data, api_enabled=True, hasher=CHEAP)
    with TestClient(app, client=LOCAL, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("name", [f.name for f in REGISTRY])
def test_invoke_with_random_fields(name: str, api: TestClient, root: Path) -> None:
    fn = REGISTRY.get(name)
    assert fn is not None

    @FUZZ
    @given(form=arguments(fn))
    def run(form: dict[str, str]) -> None:
        form = _safe(form, root)
        resp = api.post(f"/api/invoke/{name}", data=form, headers=basic())
        body = check_envelope(resp, (name, form))
        if body["statusCode"] == "failed":
            assert body["error"] and isinstance(body["error"]["message"], str), body
        follow(api, body, (name, form))

    run()


@FUZZ
@given(name=st.text(max_size=30).filter(lambda n: "/" not in n and n not in ("", ".", "..")),
       form=st.dictionaries(st.text(max_size=10), values, max_size=3))
def test_invoke_unknown_function(api: TestClient, name: str, form: dict[str, str]) -> None:
    resp = api.post(f"/api/invoke/{quote(name, safe='')}", data=form, headers=basic())
    if REGISTRY.get(name) is None:
        if resp.status_code == 404:  # a path the router does not take to /api/invoke/
            return
        body = check_envelope(resp, (name, form))
        assert body["statusCode"] == "failed"


def _status_form(token: str) -> st.SearchStrategy[dict[str, str]]:
    fields = st.fixed_dictionaries({}, optional={
        "token": st.one_of(st.just(token), values),
        "lastKnownStatusVersion": values,
        "millisecondsTimeout": st.one_of(values, st.sampled_from(["0", "-1", "-5", "100"])),
    })
    forms = st.one_of(fields, st.dictionaries(st.text(max_size=20), values, max_size=4))
    return forms


@pytest.mark.parametrize("field", ["millisecondsTimeout", "lastKnownStatusVersion"])
@pytest.mark.parametrize("number", ["1e309", "inf", "-Infinity"])
def test_get_status_overflowing_number(api: TestClient, field: str, number: str) -> None:
    resp = api.post("/api/get-status", headers=basic(), data={"token": "x", field: number})
    assert resp.status_code in (200, 404), (resp.status_code, resp.text)
    if resp.status_code == 200:
        assert "a number is expected" in resp.content.decode("utf-8-sig")


def _started(api: TestClient) -> str:
    resp = api.post("/api/invoke/VerifyStore", headers=basic(),
                    data={"id": "1", "includeIndexes": "true"})
    body = check_envelope(resp, "VerifyStore")
    return str(body["token"] or "")


@pytest.mark.parametrize("endpoint", ["get-status", "cancel-async"])
def test_status_and_cancel_with_random_fields(endpoint: str, api: TestClient) -> None:
    token = _started(api)

    @FUZZ
    @given(form=_status_form(token))
    def run(form: dict[str, str]) -> None:
        resp = api.post(f"/api/{endpoint}", data=form, headers=basic())
        text = resp.content.decode("utf-8", "replace")
        assert "Traceback" not in text and 'File "' not in text, (text[:4000], form)
        if resp.status_code == 404:
            assert "Unknown or expired token" in text, (text, form)
            return
        check_envelope(resp, (endpoint, form))

    run()


@FUZZ
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
       content_type=st.sampled_from(["application/x-www-form-urlencoded",
                                     "multipart/form-data", "multipart/form-data; boundary=x",
                                     "application/json", "text/plain", ""]),
       endpoint=st.sampled_from(["invoke/GetStores", "invoke/VerifyStore", "get-status",
                                 "cancel-async"]))
def test_raw_bodies(api: TestClient, body: bytes, content_type: str, endpoint: str) -> None:
    headers = {**basic(), "Content-Type": content_type} if content_type else basic()
    resp = api.post(f"/api/{endpoint}", content=body, headers=headers)
    text = resp.content.decode("utf-8", "replace")
    sent = (endpoint, content_type, body)
    assert resp.status_code != 500, (text[:2000], sent)
    assert "Traceback" not in text and 'File "' not in text, (text[:4000], sent)
    if resp.status_code == 404:
        assert endpoint in ("get-status", "cancel-async"), (text, sent)
        return
    check_envelope(resp, sent)
