"""Every catalog function that changes something (or runs as a process) leaves exactly one audit
record per call, through every interface that can call it: the Administration API, the console
API (for the functions it routes), a job, and `mailkeep call`; and through the command line's
own commands, which are projections of the same functions. The arguments are made from each
function's declaration, so a function added later is covered without touching this test; the
call need not succeed (a call that fails is audited as failed), but it must get past the
parsing of its arguments, as a client's call would.

A secret argument is given a known value, which must appear in no audit record."""

from __future__ import annotations

import getpass
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.errors import InvalidArgument
from mailkeep.core.fields import Field
from mailkeep.core.masterdb import MasterDB
from mailkeep.functions import REGISTRY
from mailkeep.functions.actions import FOUR_EYES, MANAGING
from mailkeep.functions.registry import Function
from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, archive_with_messages, basic, decode, fast_users, finish
from tests.helpers import CHEAP, call_function, mk

SECRET = "Audit-Secret-Value-7"
AUDITED = sorted(fn.name for fn in REGISTRY if fn.audited)
SHELL_ACTOR = f"cli:{getpass.getuser()}"


def sample(arg: Field, tmp: Path) -> str:
    """A value of the argument's kind that passes its parsing."""
    if arg.kind == "json":  # a secret object carries a password; secret keys are given one
        keys = arg.secret_keys or (("password",) if arg.secret else ())
        return json.dumps({k: SECRET for k in keys})
    if arg.secret:
        return SECRET
    if arg.choices:
        return arg.choices[0]
    if arg.kind in ("int", "number"):
        return str(arg.low if arg.low is not None else 1)
    if arg.kind == "bool":
        return "false"
    return {"host": "localhost", "address": "a@example.org", "addresses": "a@example.org",
            "absolute-path": str(tmp / f"{arg.name}-path"),
            "networks": "127.0.0.1/32"}.get(arg.format, "x")


def form_of(fn: Function, tmp: Path) -> dict[str, str]:
    """The function's required arguments, and its secret ones (to show they stay secret)."""
    return {a.name: sample(a, tmp) for a in fn.args
            if (not a.nullable and a.default is None) or a.secret or a.secret_keys}


def records(data: Path, after: int) -> list[tuple[str, str, dict[str, Any]]]:
    master = MasterDB.of(data.resolve())
    try:
        return [(r.actor, r.action, r.details) for r in master.audit.since(after)]
    finally:
        master.close()


def last_id(data: Path) -> int:
    master = MasterDB.of(data.resolve())
    try:
        return master.audit.last_id()
    finally:
        master.close()


def one_record(data: Path, after: int, fn: Function, actor: str) -> dict[str, Any]:
    """The one record of the call: its function, its caller, no secret."""
    found = [(a, act, d) for a, act, d in records(data, after) if act == fn.name]
    assert [(a, act) for a, act, _ in found] == [(actor, fn.name)], (fn.name, found)
    details = found[0][2]
    assert details["outcome"] in ("succeeded", "failed", "cancelled"), details
    assert SECRET not in json.dumps(records(data, after)), fn.name
    return details


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return archive_with_messages(tmp_path / "data", tmp_path / "mail", 3)


@pytest.fixture
def api(data: Path) -> Iterator[TestClient]:
    with TestClient(create_app(data, api_enabled=True, hasher=CHEAP), client=LOCAL) as client:
        yield client


def test_the_table_covers_every_interface() -> None:
    """What this module calls through: every way into the catalog (automatic profile runs are
    the server's own, covered in tests/profiles/test_automatic.py)."""
    from mailkeep.functions.call import VIAS

    assert set(VIAS) == {"api", "mcapi", "cli", "job", "automatic"}
    assert len(AUDITED) > 60  # the writing half of the catalog, at least
    assert any(REGISTRY.find(name).mcapi for name in AUDITED)


@pytest.mark.parametrize("name", AUDITED)
def test_one_audit_record_per_call_through_every_interface(
        name: str, data: Path, api: TestClient, tmp_path: Path) -> None:
    fn = REGISTRY.find(name)
    form = form_of(fn, tmp_path)

    # The Administration API, as a MailStore client calls it (following a process's token).
    before = last_id(data)
    body = decode(api.post(f"/api/invoke/{name}", data=form, headers=basic()))
    if body["statusCode"] == "running":
        body, _ = finish(api, body)
    assert SECRET not in json.dumps(body)
    details = one_record(data, before, fn, "api:admin")
    assert details["outcome"] == {"succeeded": "succeeded", "failed": "failed",
                                  "cancelled": "cancelled"}[body["statusCode"]]
    assert details["via"] == "api" and details["address"] == LOCAL[0]

    # `mailkeep call`, in this process.
    before = last_id(data)
    result = mk(data, "call", name, *[f"{k}={v}" for k, v in form.items()])
    assert SECRET not in result.output
    details = one_record(data, before, fn, SHELL_ACTOR)
    assert (details["outcome"] == "succeeded") == (result.exit_code == 0), result.output

    # A job whose action is the call, run now; a job may not manage jobs nor carry a secret.
    before = last_id(data)
    action = " ".join([name, *[shlex.quote(f"{k}={v}") for k, v in form.items()]])
    refused = name in MANAGING or name in FOUR_EYES or any(
        a.secret or a.secret_keys for a in fn.args if a.name in form)
    if refused:
        with pytest.raises(InvalidArgument,
                           match="manage jobs|secret|shown in clear|in person"):
            call_function(data, "CreateJob", name="j", action=action, owner="admin",
                          timeZoneId="UTC")
        assert [act for _, act, _ in records(data, before)] == ["CreateJob"]
    else:
        job = call_function(data, "CreateJob", name="j", action=action, owner="admin",
                            timeZoneId="UTC")
        ran = call_function(data, "RunJobAsync", id=str(job["id"]))
        details = one_record(data, before, fn, "job:j")
        assert details["outcome"] == ran["result"]
        assert details["user"] == "admin"  # the job's owner

    # The console API, for the functions it routes.
    if fn.mcapi is not None:
        sid = decode_mc(api.post("/mcapi/auth/login", json={
            "userName": "admin", "password": "admin"}))["sessionId"]
        kinds = {a.name: a.kind for a in fn.args}
        native: dict[str, Any] = {k: (json.loads(v) if kinds[k] == "json" else v)
                                  for k, v in form.items()}
        body_json: dict[str, Any] = ({fn.mcapi.body: native} if fn.mcapi.body else native)
        before = last_id(data)
        path = f"/mcapi/{fn.mcapi.path}"
        headers = {"X-Fs-SessionId": sid}
        resp = (api.get(path, params=native, headers=headers) if fn.mcapi.method == "GET"
                else api.post(path, json=body_json, headers=headers))
        assert SECRET not in resp.text
        details = one_record(data, before, fn, "mcapi:admin")
        assert (details["outcome"] == "succeeded") == (
            resp.json()["result"]["status"] == "success"), resp.text


def decode_mc(resp: Any) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()["result"]
    assert body["status"] == "success", body
    data: dict[str, Any] = body["data"]
    return data


@pytest.mark.parametrize("name", ["SetUserPassword", "CreateStore", "DeleteMessage",
                                  "RunJobAsync"])
def test_a_refused_call_is_audited_once_and_runs_nothing(name: str, data: Path,
                                                         api: TestClient,
                                                         tmp_path: Path) -> None:
    """A caller without the right is refused before its arguments are read; the refusal is
    the call's one record."""
    call_function(data, "CreateUser", userName="eve", privileges="login", password="Eve-pass-1")
    fn = REGISTRY.find(name)
    before = last_id(data)
    resp = api.post(f"/api/invoke/{name}", data=form_of(fn, tmp_path),
                    headers=basic("eve", "Eve-pass-1"))
    assert resp.status_code == 403 and "not an administrator" in resp.text  # as the original
    [(actor, action, details)] = records(data, before)
    assert (actor, action, details["outcome"]) == ("api:eve", name, "refused")
    assert details["args"] == {}  # not even read
    assert SECRET not in json.dumps(details)


def test_arguments_that_do_not_parse_are_not_a_call(data: Path, api: TestClient) -> None:
    """A call refused for its arguments (missing, unknown, of the wrong type) runs nothing and
    is answered at once; it is not in the audit log."""
    before = last_id(data)
    for form in ({}, {"id": "one", "name": "x"}, {"id": "1", "name": "x", "colour": "red"}):
        body = decode(api.post("/api/invoke/RenameStore", data=form, headers=basic()))
        assert body["statusCode"] == "failed" and body["error"]["details"] == "invalid_argument"
    assert records(data, before) == []


# -- the command line's own commands -------------------------------------------------------------
def test_every_changing_cli_command_leaves_one_record(data: Path, tmp_path: Path) -> None:
    """The commands that are projections of catalog functions are audited as those functions;
    `import` (which files mail without a function) as import."""
    users = fast_users(data)
    users.ensure_initial_admin()  # as the server's first start does
    users.master.close()
    spare = tmp_path / "spare-store"
    props = tmp_path / "profile.json"
    props.write_text(json.dumps({"name": "drop", "type": "directory", "userName": "admin",
                                 "path": str(tmp_path / "mail")}))
    update = tmp_path / "update.json"
    update.write_text(json.dumps({"name": "drop box"}))
    commands: list[tuple[list[str], str]] = [
        (["store", "create", "Second"], "CreateStore"),
        (["store", "rename", "2", "Renamed"], "RenameStore"),
        (["store", "state", "2", "current"], "SetStoreRequestedState"),
        (["store", "state", "1", "current"], "SetStoreRequestedState"),
        (["store", "detach", "2"], "DetachStore"),
        (["store", "attach", str(data / "stores" / "Second")], "AttachStore"),
        (["store", "create", "Spare", "--path", str(spare)], "CreateStore"),
        (["user", "password", "admin", "--password", "New-admin-pass-1"], "SetUserPassword"),
        (["profile", "create", str(props)], "CreateProfile"),
        (["profile", "update", "1", str(update)], "UpdateProfile"),
        (["profile", "auto", "1", "--off"], "SetProfileServerSideExecution"),
        (["profile", "run", "1"], "RunProfile"),
        (["profile", "delete", "1"], "DeleteProfile"),
        (["settings", "set", "smtp.port", "2525"], "SetSetting"),
        (["settings", "unset", "smtp.port"], "ResetSetting"),
        (["verify"], "VerifyStores"),
        (["verify", "1"], "VerifyStore"),
        (["recover", "1"], "RecoverStore"),
        (["import", str(tmp_path / "mail")], "import"),
    ]
    for args, action in commands:
        before = last_id(data)
        result = mk(data, *args)
        assert result.exit_code == 0, (args, result.output)
        got = [(actor, act) for actor, act, _ in records(data, before)]
        assert got == [(SHELL_ACTOR, action)], (args, got)
    assert "New-admin-pass-1" not in json.dumps(records(data, 0))
