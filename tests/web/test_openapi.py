"""The OpenAPI description (web/openapi.py): valid, complete, the checked-in copy current, served
only to those who may call the API; then schemathesis against a real `mailkeep serve`, logged in
as an administrator on both APIs, after secrets were planted: no answer is a 5xx (but the one
the console API documents for a test mail that could not be sent), none holds a traceback or a
planted secret, and every answer is one the description documents.

MAILKEEP_SCHEMATHESIS_EXAMPLES=50 for a longer hunt; the default keeps the file within ~2 min.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from mailkeep.functions import REGISTRY
from mailkeep.web.openapi import FORM_TYPES, document, document_bytes
from tests.apiclient import api_client, basic, fast_users
from tests.helpers import call_function, free_port, mk_ok, serving

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
EXAMPLES = int(os.environ.get("MAILKEEP_SCHEMATHESIS_EXAMPLES", "8"))
FUZZER = "fuzz-7c1e9a"  # the administrator the run logs in as: a name nothing generates
BOM = b"\xef\xbb\xbf"
TRACEBACK = ("Traceback", 'File "', '.py", line')
# Operations left out of the run, each with its reason.
EXCLUDED = {
    "/mcapi/auth/logout": "it ends the session the run itself uses (tests/web/test_mcapi.py "
                          "covers logging out)",
}


# -- the document ----------------------------------------------------------------------------
def test_document_is_valid_openapi() -> None:
    doc = json.loads(document_bytes())
    schemathesis.openapi.from_dict(doc).validate()  # the OpenAPI 3.1 meta-schema
    for name, schema in doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name  # each a JSON Schema 2020-12


def test_lists_every_function() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    for fn in REGISTRY:
        op = doc["paths"][f"/api/invoke/{fn.name}"]["post"]
        assert op["operationId"] == fn.name and op["security"] == [{"basicAuth": []}]
        assert fn.result in op["description"]
        if not fn.args:
            assert "requestBody" not in op, fn.name
            continue
        args = schemas[f"{fn.name}Arguments"]
        assert list(args["properties"]) == [a.name for a in fn.args], fn.name
        assert args.get("required", []) == [
            a.name for a in fn.args if not a.nullable and a.default is None], fn.name
        for a in fn.args:
            prop = args["properties"][a.name]
            assert prop["type"] == FORM_TYPES[a.kind], (fn.name, a.name)
            assert a.description in prop["description"]
            assert prop.get("default") == a.default, (fn.name, a.name)
            assert (prop.get("format") == "password") == a.secret, (fn.name, a.name)
        if fn.mcapi is not None:
            assert fn.mcapi.method.lower() in doc["paths"][f"/mcapi/{fn.mcapi.path}"]
    for path in ("/api/get-status", "/api/cancel-async", "/api/get-metadata",
                 "/api/openapi.json", "/mcapi/auth/login", "/mcapi/auth/logout",
                 "/mcapi/openapi.json"):
        assert path in doc["paths"]


def test_checked_in_copy_is_current() -> None:
    assert DOC.read_bytes() == document_bytes(), "docs/openapi.json is stale: run `make docs`"


# -- who may read it ---------------------------------------------------------------------------
def test_served_to_administrators(tmp_path: Path) -> None:
    """Like get-metadata: to an administrator, through an enabled Administration API or a
    console session. It is the catalog of the release (docs/openapi.json), but it names every
    function and the version: not for someone who cannot log in, nor for another role."""
    data = tmp_path / "data"
    users = fast_users(data)
    users.ensure_initial_admin()
    users.create("op", "login", password="op-pass", role="operator")
    users.create("boss", "admin,login", password="boss-pass")
    users.master.close()
    with api_client(data) as api:
        assert api.get("/api/openapi.json").status_code == 401
        assert api.get("/api/openapi.json", headers=basic("op", "op-pass")).status_code == 403
        got = api.get("/api/openapi.json", headers=basic())
        assert got.status_code == 200 and got.content == document_bytes()
        assert got.headers["content-type"] == "application/json; charset=utf-8"
        assert "no-store" in got.headers["cache-control"]
        assert api.post("/api/openapi.json", headers=basic()).status_code == 405
        refused = api.get("/mcapi/openapi.json")
        assert refused.status_code == 403 and refused.json()["result"]["code"] == 3001
        operator = {"X-Fs-SessionId": login(api, "op", "op-pass")}
        refused = api.get("/mcapi/openapi.json", headers=operator)
        assert refused.status_code == 403 and refused.json()["result"]["code"] == 3002
    with api_client(data, enabled=False) as api:
        assert api.get("/api/openapi.json", headers=basic()).status_code == 403
        admin = {"X-Fs-SessionId": login(api, "boss", "boss-pass")}
        got = api.get("/mcapi/openapi.json", headers=admin)
        assert got.status_code == 200 and got.content == document_bytes()
        wrong = api.post("/mcapi/openapi.json", headers=admin)
        assert wrong.status_code == 405 and wrong.json()["result"]["code"] == 1005


def login(api: TestClient, user: str, password: str) -> str:
    sid: str = api.post("/mcapi/auth/login", json={"userName": user, "password": password}
                        ).json()["result"]["data"]["sessionId"]
    return sid


# -- schemathesis against a real server ---------------------------------------------------------
@dataclass
class Live:
    base: str
    ca: str
    password: str  # the fuzzer's
    session: str  # the fuzzer's console session
    planted: dict[str, str]  # what each secret is -> the secret
    conf: Path  # the data directory's conf/

    def secrets(self) -> dict[str, str]:
        """The planted secrets and the master keys as they are now (RenewMasterKey makes new
        ones)."""
        keys = {f"master key {f.name}": f.read_text().strip()
                for f in sorted(self.conf.glob("master.key*"))}
        return {**self.planted, **keys}


def _secret(what: str) -> str:
    return f"{what}-{secrets.token_hex(10)}"


def _plant(data: Path, closed_port: int) -> dict[str, str]:
    """The secrets a data directory keeps, each set through the catalog as an administrator
    would; what each is -> its value."""
    planted = {what: _secret(what) for what in (
        "fuzzer-password", "admin-password", "store-passphrase", "smtp-password",
        "connection-password", "profile-password", "directory-bind-password")}
    call_function(data, "CreateUser", userName=FUZZER, privileges="admin,login",
                  loginPrivileges="api,web", password=planted["fuzzer-password"])
    call_function(data, "SetUserPassword", userName="admin", password=planted["admin-password"])
    app = call_function(data, "CreateAppPassword", userName=FUZZER, name="monitoring")
    planted["app-password"] = app["password"]
    call_function(data, "CreateStore", name="sealed", requestedState="normal",
                  passphrase=planted["store-passphrase"])
    call_function(data, "SetSmtpSettings", settings=json.dumps({
        "authenticationType": "SMTP", "serverName": "127.0.0.1", "port": closed_port,
        "useSmtpOverSsl": False, "useStartTls": False, "timeOut": 5, "userName": "relay",
        "smtpAuthenticationType": "plain", "password": planted["smtp-password"],
        "fromMailAddress": "archive@example.org", "toMailAddress": "ops@example.org"}))
    call_function(data, "CreateConnection", name="relay", type="smtp", serverName="127.0.0.1",
                  port=str(closed_port), security="none", authentication="plain",
                  userName="relay", password=planted["connection-password"])
    call_function(data, "CreateProfile", properties=json.dumps({
        "name": "mailbox", "type": "imap", "userName": FUZZER, "host": "127.0.0.1",
        "port": closed_port, "security": "none", "login": "alice", "timeout": 5,
        "password": planted["profile-password"]}))
    call_function(data, "SetDirectoryServicesConfiguration", config=json.dumps({
        "type": "ldap", "server": "127.0.0.1", "port": closed_port, "security": "none",
        "timeout": 5, "bindDn": "cn=reader,dc=example,dc=org",
        "bindPassword": planted["directory-bind-password"], "baseDn": "dc=example,dc=org"}))
    return planted


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("openapi")
    data, mail, allowed = root / "data", root / "mail", root / "allowed"
    mail.mkdir()
    allowed.mkdir()
    for i in range(5):
        (mail / f"{i}.eml").write_bytes(
            f"From: a{i}@example.org\r\nSubject: s{i}\r\n\r\nbody {i}\r\n".encode())
    mk_ok(data, "import", str(mail))
    mk_ok(data, "user", "list")  # the initial administrator
    # Paths the run makes up (stores, backups, profiles' directories) stay in here.
    call_function(data, "SetSetting", key="paths.allowed", value=str(allowed))
    planted = _plant(data, free_port())
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    ca = str(data / "tls" / "server.crt")
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port), port=port,
                 log=root / "serve.log") as served:
        with httpx.Client(verify=ssl.create_default_context(cafile=ca)) as client:
            login = client.post(f"{base}/mcapi/auth/login", json={
                "userName": FUZZER, "password": planted["fuzzer-password"]})
        assert login.status_code == 200, login.text
        session = login.json()["result"]["data"]["sessionId"]
        planted["session-id"] = session
        yield Live(base, ca, planted["fuzzer-password"], session, planted, data / "conf")
        assert served.proc.poll() is None, served.output()  # nothing the run sent stopped it
    # A process that failed with an exception nobody expected is logged with its traceback.
    assert "Traceback" not in served.output(), served.output()[-6000:]


@pytest.fixture(scope="module")
def described(live: Live) -> BaseSchema:
    """The description the server serves, read as a client would, for the run's cases."""
    schema = schemathesis.openapi.from_url(f"{live.base}/api/openapi.json",
                                           auth=(FUZZER, live.password), verify=live.ca)
    schema.config.generation.update(max_examples=EXAMPLES, database="none",
                                    with_security_parameters=False)
    return schema


def _documented_failure(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    """The one 5xx the console API documents (as the original does): a test mail the mail
    server did not take (5009). The planted settings name a port nobody listens on."""
    if case.path != "/mcapi/mail/configuration/test" or response.status_code != 500:
        return False
    return bool(json.loads(response.content)["result"]["code"] == 5009)


def _without_bom(response: schemathesis.Response) -> schemathesis.Response:
    """The envelope's UTF-8 BOM is the protocol's (tests/apiclient.py's decode pins it); a
    JSON parser that follows RFC 8259 refuses it, so the checks read the JSON after it."""
    if not response.content.startswith(BOM):
        return response
    return schemathesis.Response(
        response.status_code, response.headers, response.content[len(BOM):], response.request,
        response.elapsed, response.verify, response.message, response.http_version,
        response.encoding)


def answers_soundly(case: schemathesis.Case, live: Live) -> None:
    """One request, as the fuzzer logged in on both APIs; its answer checked."""
    response = case.call(base_url=live.base, verify=live.ca, timeout=60, headers={
        "Authorization": "Basic " + base64.b64encode(
            f"{FUZZER}:{live.password}".encode()).decode(),
        "X-Fs-SessionId": live.session})
    text = response.content.decode("utf-8", "replace")
    headers = "\n".join(f"{k}: {v}" for k, values in response.headers.items() for v in values)
    sent = case.as_curl_command()
    assert not any(marker in text for marker in TRACEBACK), f"{sent}\n{text[:4000]}"
    assert "PRIVATE KEY" not in text, f"{sent}\n{text[:4000]}"
    for what, secret in live.secrets().items():
        for form in (secret, base64.b64encode(secret.encode()).decode()):
            assert form not in text + headers, f"the {what} came back: {sent}\n{text[:4000]}"
    if response.content.startswith(BOM):  # the Administration API's envelope
        error = json.loads(response.content[len(BOM):])["error"] or {"details": ""}
        # An exception nobody expected is a bug: the error table names it by its class.
        assert not re.fullmatch(r"[A-Z]\w*", error["details"]), f"{sent}\n{error}"
    checks: list[Any] = [status_code_conformance, content_type_conformance,
                         response_schema_conformance]
    if not _documented_failure(case, response):
        checks.append(not_a_server_error)
    case.validate_response(_without_bom(response), checks=checks)


OPERATIONS = [f"{method.upper()} {path}" for path, item in document()["paths"].items()
              for method in item if path not in EXCLUDED]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_fuzz_the_live_server(operation: str, live: Live, described: BaseSchema) -> None:
    """Schemathesis's cases for one operation: first its coverage cases (the boundaries of
    each argument, each left out, each of a wrong type), then EXAMPLES random ones, valid and
    invalid."""
    method, path = operation.split(" ", 1)
    op = described[path][method]
    config = described.config.generation_for(operation=op)
    for case in described.iter_coverage_cases(op, generation_modes=MODES,
                                              generation_config=config):
        answers_soundly(case, live)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(case=st.one_of([op.as_strategy(mode) for mode in MODES]))
    def fuzz(case: schemathesis.Case) -> None:
        answers_soundly(case, live)

    fuzz()


def test_every_operation_asks_for_credentials(live: Live) -> None:
    """What the description says of each operation's security holds without credentials."""
    doc = document()
    with httpx.Client(base_url=live.base, verify=ssl.create_default_context(cafile=live.ca),
                      timeout=30) as client:
        for path, item in doc["paths"].items():
            for method, op in item.items():
                answer = client.request(method.upper(), path)
                if op["security"] == [{"basicAuth": []}]:
                    assert answer.status_code == 401, (path, answer.text)
                    assert answer.headers["www-authenticate"].startswith("Basic ")
                elif op["security"] == [{"sessionId": []}]:
                    assert answer.status_code == 403, (path, answer.text)
                    assert answer.json()["result"]["code"] == 3001, (path, answer.text)
                else:
                    assert path == "/mcapi/auth/login" and answer.status_code == 400, path
