"""The server's settings (GetSettings, SetSetting, ResetSetting, mailkeep extensions) through
the Administration API in-process, `mailkeep call` and the `mailkeep settings` commands: a round
trip, values typed as an administrator types them, bad values refused with a clear error and
nothing changed, one audit record per change, and no secret shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.admin.settings import DECLARED
from tests.apiclient import api_client, invoke
from tests.functions.test_server_functions import (
    SHELL_ACTOR,
    SPEC,
    assert_documented_shape,
    cli_call,
    cli_result,
    hold,
    metadata,
    no_audit,
    no_key_material,
    one_audit,
    run,
    succeeded,
)
from tests.helpers import audit_since, last_audit_id, mk, mk_ok

DEFAULTS = {"api.enabled": False, "paths.allowed": "", "server.body_timeout": 30,
            "server.host": "0.0.0.0",
            "server.port": 8463,
            "server.trusted_proxies": "",
            "tls.enabled": True, "tls.cert": None, "tls.key": None, "smtp.enabled": False,
            "smtp.host": "0.0.0.0", "smtp.port": 2525, "smtp.owner": "journal",
            "smtp.max_size": 50 << 20, "smtp.networks": "127.0.0.0/8,::1/128",
            "smtp.max_recipients": 1000, "smtp.auth_failures": 5,
            "smtp.route_by_address": True, "smtp.starttls": True, "smtp.require_tls": False,
            "smtp.auth": False, "notify.interval": 900, "notify.check_every": 300,
            "server.max_body": 1 << 20, "console.max_upload": 1 << 30, "server.header_timeout": 20,
            "server.max_connections_per_client": 1024, "server.max_connections": 4096,
            "smtp.max_errors": 20,
            "smtp.command_timeout": 300, "smtp.data_timeout": 3600, "smtp.max_sessions": 100,
            "smtp.max_sessions_per_client": 50, "smtp.large_messages": 4,
            "stores.autocreate": None, "archive.extract_timeout": 20,
            "metrics.enabled": False, "metrics.networks": "127.0.0.0/8,::1/128",
            "metrics.token": "",
            "archive.attachment_text": True, "archive.extract_memory": 1024,
            "tree.head_interval": 60,
            "tree.tsa_url": ""}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    mk_ok(path, "store", "create", "Default")
    return path


@pytest.fixture
def api(data: Path) -> Iterator[TestClient]:
    with api_client(data) as c:
        yield c


def values(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {r["key"]: r["value"] for r in rows}


def test_settings_round_trip(api: TestClient, data: Path) -> None:
    """GetSettings lists every setting with its default, type and description, none set; a
    SetSetting is what GetSettings then says (set, the others untouched); ResetSetting goes
    back to the default. Each change is one audit record with its arguments, outcome and the
    value before; a read is not audited."""
    before = last_audit_id(data)
    rows = succeeded(api, "GetSettings")
    no_audit(data, before, "GetSettings")
    assert_documented_shape("GetSettings", rows)
    assert [r["key"] for r in rows] == sorted(DEFAULTS)
    assert values(rows) == DEFAULTS
    assert {r["key"]: r["default"] for r in rows} == DEFAULTS
    assert not any(r["set"] for r in rows)
    assert all(r["description"] and r["type"] in ("bool", "string", "int", "number", "json")
               for r in rows)

    before = last_audit_id(data)
    answer = succeeded(api, "SetSetting", key="server.port", value="9443")
    assert_documented_shape("SetSetting", answer)
    assert answer == {"key": "server.port", "value": 9443}
    details = one_audit(data, before, "SetSetting", "api:admin")
    assert (details["args"], details["outcome"], details["before"]) == (
        {"key": "server.port", "value": "9443"}, "succeeded", 8463)
    rows = succeeded(api, "GetSettings")
    assert values(rows) == {**DEFAULTS, "server.port": 9443}
    assert [r["key"] for r in rows if r["set"]] == ["server.port"]

    before = last_audit_id(data)
    answer = succeeded(api, "ResetSetting", key="server.port")
    assert_documented_shape("ResetSetting", answer)
    assert answer == {"key": "server.port", "value": 8463}
    details = one_audit(data, before, "ResetSetting", "api:admin")
    assert (details["args"], details["outcome"], details["before"]) == (
        {"key": "server.port"}, "succeeded", 9443)
    rows = succeeded(api, "GetSettings")
    assert values(rows) == DEFAULTS and not any(r["set"] for r in rows)


@pytest.mark.parametrize(("key", "typed", "value"), [
    ("api.enabled", "yes", True),
    ("api.enabled", "Off", False),
    ("smtp.max_size", "2048", 2048),
    ("server.host", "127.0.0.1", "127.0.0.1"),
    ("tls.cert", "/etc/ssl/archive.pem", "/etc/ssl/archive.pem"),
    ("stores.autocreate", '{"mode": "size", "sizeLimitMB": 5}',
     {"mode": "size", "sizeLimitMB": 5, "namePattern": "Store {n}", "basePath": None,
      "encrypt": False}),
])
def test_values_are_typed_as_an_administrator_types_them(api: TestClient, data: Path,
                                                         key: str, typed: str,
                                                         value: Any) -> None:
    """true/false as yes/no/on/off too, numbers as numbers, the auto-creation configuration
    completed with its defaults; `mailkeep call` sees the same."""
    assert succeeded(api, "SetSetting", key=key, value=typed) == {"key": key, "value": value}
    assert values(succeeded(api, "GetSettings"))[key] == value
    assert values(cli_result(data, "GetSettings"))[key] == value


BAD = [
    ("server.port", "0", 2, "server.port must be between 1 and 65535, not 0"),
    ("server.port", "http", 2, "server.port must be a whole number"),
    ("notify.check_every", "5", 2, "notify.check_every must be between 10 and 86400"),
    ("api.enabled", "maybe", 2, "api.enabled must be true or false, not 'maybe'"),
    ("tls.cert", "relative.pem", 2, "absolute path"),
    ("server.host", "", 2, "server.host must not be empty"),
    ("stores.autocreate", '{"mode": "size"}', 2,
     "stores.autocreate: mode size needs sizeLimitMB"),
    ("stores.autocreate", "{mode", 2, "not valid JSON"),
    ("no.such", "1", 3, "no setting 'no.such'"),
]


@pytest.mark.parametrize(("key", "value", "code", "error"), BAD)
def test_bad_values_are_refused_and_change_nothing(api: TestClient, data: Path, key: str,
                                                   value: str, code: int, error: str) -> None:
    """A value a setting does not take is refused with what it takes; nothing changes; the
    failed call is one audit record. `mailkeep settings set` and `mailkeep call` refuse it
    with the exit code of the error (2 bad value, 3 unknown setting) and the same words."""
    succeeded(api, "SetSetting", key="server.port", value="9443")
    succeeded(api, "SetSetting", key="stores.autocreate",
              value='{"mode": "size", "sizeLimitMB": 5}')
    rows = succeeded(api, "GetSettings")
    before = last_audit_id(data)
    final, _ = run(api, "SetSetting", key=key, value=value)
    assert final["statusCode"] == "failed", final
    assert error in final["error"]["message"], final["error"]
    details = one_audit(data, before, "SetSetting", "api:admin")
    assert details["outcome"] == "failed" and error in details["error"]
    for res in (mk(data, "settings", "set", key, value),
                cli_call(data, "SetSetting", key=key, value=value)):
        assert res.exit_code == code and error in res.stderr, res.output
    assert succeeded(api, "GetSettings") == rows


def test_reset_refuses_an_unknown_setting(api: TestClient, data: Path) -> None:
    before = last_audit_id(data)
    final, _ = run(api, "ResetSetting", key="no.such")
    assert final["statusCode"] == "failed" and "no setting 'no.such'" in final["error"][
        "message"]
    assert one_audit(data, before, "ResetSetting", "api:admin")["outcome"] == "failed"
    res = mk(data, "settings", "unset", "no.such")
    assert res.exit_code == 3 and "no setting 'no.such'" in res.stderr, res.output
    body = invoke(api, "SetSetting", key="server.port")
    assert body["error"]["message"] == "Missing API argument value."


def test_the_settings_commands(data: Path) -> None:
    """`mailkeep settings list` (a table, or --json as GetSettings answers), `get`, `set`,
    `unset`, and `mailkeep call SetSetting/ResetSetting`: a round trip; set and unset are the
    calls SetSetting and ResetSetting, audited as the shell's account; list and get read,
    unaudited; an unknown key is a usage error."""
    listed = mk_ok(data, "settings", "list").stdout  # a table as wide as the terminal
    for key in ("api.enabled", "server.port", "tls.cert", "smtp.port"):
        assert key in listed
    assert "(default)" in listed
    assert json.loads(mk_ok(data, "settings", "list", "--json").stdout) == cli_result(
        data, "GetSettings")
    assert mk_ok(data, "settings", "get", "server.port").stdout.strip() == "8463"

    before = last_audit_id(data)
    out = mk_ok(data, "settings", "set", "server.port", "9443").stdout
    assert "server.port = 9443" in out and "restart" in out
    details = one_audit(data, before, "SetSetting", SHELL_ACTOR)
    assert details["args"] == {"key": "server.port", "value": "9443"}
    assert mk_ok(data, "settings", "get", "server.port").stdout.strip() == "9443"
    row = {r["key"]: r for r in json.loads(mk_ok(data, "settings", "list", "--json").stdout)}
    assert (row["server.port"]["value"], row["server.port"]["set"]) == (9443, True)

    before = last_audit_id(data)
    assert "server.port = 8463 (default)" in mk_ok(data, "settings", "unset",
                                                   "server.port").stdout
    assert one_audit(data, before, "ResetSetting", SHELL_ACTOR)["outcome"] == "succeeded"
    assert mk_ok(data, "settings", "get", "server.port").stdout.strip() == "8463"

    # the same calls as `mailkeep call`
    assert cli_result(data, "SetSetting", key="smtp.port", value="2626") == {
        "key": "smtp.port", "value": 2626}
    before = last_audit_id(data)
    assert cli_result(data, "ResetSetting", key="smtp.port") == {"key": "smtp.port",
                                                                 "value": 2525}
    assert one_audit(data, before, "ResetSetting", SHELL_ACTOR)["args"] == {"key": "smtp.port"}

    before = last_audit_id(data)
    res = mk(data, "settings", "get", "no.such")
    assert res.exit_code == 2 and "no setting 'no.such'" in res.output
    mk_ok(data, "settings", "list")
    assert audit_since(data, before) == []


def test_secrets_are_never_shown(api: TestClient, data: Path) -> None:
    """The settings that concern secrets name files, never their contents: once a
    certificate with its private key is served, GetSettings (API, `mailkeep call`,
    `settings list`, `settings get`) shows the key's path and not the key; a password kept
    for the notification mail appears in no setting, nor in the audit records of the
    changes."""
    cert = hold(data, "second")
    succeeded(api, "SetServiceCertificate", thumbprint=cert["fingerprint"])
    key_pem = Path(cert["path"]).with_suffix(".key").read_text()
    secret = "Notify-Password-91q"
    succeeded(api, "SetSmtpSettings", settings=json.dumps({
        "serverName": "mail.example.org", "port": 587, "useStartTls": True,
        "authenticationType": "SMTP", "userName": "notify@example.org", "password": secret,
        "fromMailAddress": "archive@example.org", "toMailAddress": "admin@example.org"}))
    shown = [json.dumps(succeeded(api, "GetSettings")), json.dumps(cli_result(data,
                                                                              "GetSettings")),
             mk_ok(data, "settings", "list").stdout,
             mk_ok(data, "settings", "list", "--json").stdout,
             mk_ok(data, "settings", "get", "tls.key").stdout,
             json.dumps(audit_since(data, 0))]
    assert json.loads(shown[-2]) == str(Path(cert["path"]).with_suffix(".key"))
    for text in shown:
        no_key_material(text)
        assert key_pem.splitlines()[1] not in text and secret not in text


def test_metadata_of_the_extensions(api: TestClient) -> None:
    """The original has no such functions; get-metadata lists them with their declared
    arguments (all text, none optional), none runs long."""
    meta = metadata(api)
    for name in ("GetSettings", "SetSetting", "ResetSetting"):
        assert name not in SPEC
        assert meta[name]["longRunning"] is False
    assert meta["GetSettings"]["args"] == []
    assert meta["SetSetting"]["args"] == [{"name": "key", "type": "string", "nullable": False},
                                          {"name": "value", "type": "string",
                                           "nullable": False}]
    assert meta["ResetSetting"]["args"] == [{"name": "key", "type": "string",
                                             "nullable": False}]
    assert set(DECLARED) == set(DEFAULTS)
