"""Who may call what: every function of the catalog, through every interface, as every kind of
caller, allowed or refused as the rules say. The rules are written here from the kinds'
declared privileges and roles (not read from the code under test); each test compares them
with what the system does and fails once, with a table of every case that differs (function,
interface, caller, expected, got).

The kinds of caller, made once for the module in one data directory:

- administrator: privileges admin,login
- developer: privileges login, role developer
- operator: privileges login, role operator
- archive-only user: privileges archive,login, no role
- user without login: privileges admin (no login)

- disabled directory user: an administrator (privileges admin,login, role administrator)
  whose account comes from a real OpenLDAP (tests/directory/slapd.py) by a directory sync, and
  which the directory disables (userAccountControl 514). Its directory password still binds
  (OpenLDAP does not refuse it): mailkeep refuses it, everywhere, as it refuses a user without
  login.

The interfaces and their rules:

1. Administration API (`POST /api/invoke/<F>`, HTTP Basic, in-process): allowed only for an
   account that may log in (privilege login; "api" is among its login privileges by default)
   and is an administrator (privilege admin or role administrator). The user without login
   gets a plain 403 at login, before any function is looked at (no audit record); another
   non-administrator a plain 403 with one audit record, outcome "refused". Every call carries
   an unknown argument: admission comes before the arguments are read, so an allowed call is
   answered "Unknown API argument" and runs nothing.
2. Console API (`/mcapi/<route>`, the functions with an mcapi route): the user without login
   cannot log in (403, code 2003); an account without a management role (the archive-only
   user) logs in with the role "user" (it reads its own archive); a function is allowed iff
   the account's role (its role, administrator for the privilege admin, else user) is among
   the function's roles, and a refusal is code 3002 (HTTP 403), audited
   "refused". POST calls carry a body that is not JSON (code 1001 once admitted), GET calls an
   unknown query parameter (code 1002 once admitted): an allowed call runs nothing either.
   The same rule holds for every function of the catalog through /mcapi/function/invoke (the
   console's administration pages), whose calls carry an unknown argument (code 1002).
3. Command line (`mailkeep call <F>`, in-process): the shell that owns the data directory;
   every function is admitted (exit code 8 would be a refusal). The call carries an unknown
   argument (exit code 2 once admitted), so nothing runs.
4. A job (CreateJob, run with RunJobAsync, as the CLI runs it: here and now) owned by each
   kind, whose action calls the function. CreateJob accepts any existing account as owner and
   refuses three kinds of action, whoever the owner: the functions that manage jobs
   (MANAGING), four-eyes deletion (FOUR_EYES: asked and decided by people in person), and those
   that cannot be called without a secret argument, which an action may not carry
   (SetSmtpSettings, SetUserPassword, UnlockStore, ...). Every other function is run as a job
   for every kind of owner: only an owner who is an administrator and has the privilege login
   runs it; for any other the run's result is "failed", its error says the owner "is not an
   administrator who may log in", and the refusal is audited. Since an allowed job really
   runs its function, each action's arguments (ACTIONS; for a function added later and not
   in it yet, values from its declaration that name nothing that exists) make it fail
   harmlessly after admission where they can (an id or user that does not exist, a name the
   function refuses); a state-changing function without arguments (RenewMasterKey, ...)
   really runs. So the jobs of every state-changing function run in a scratch data directory
   made with the same kinds, and the module's data directory stays as the other interfaces
   found it. Every function runs as a job for every kind: no sample was needed.

Runtime: about 10 s on two cores (a real slapd included) for all of the 1300-odd (function,
interface, caller) cases.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.errors import InvalidArgument
from mailkeep.core.fields import Field
from mailkeep.functions import REGISTRY
from mailkeep.functions.actions import FOUR_EYES, MANAGING
from mailkeep.functions.invoke import Invoker
from mailkeep.functions.registry import Function
from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, basic
from tests.directory.slapd import Slapd
from tests.helpers import (
    CHEAP,
    SHELL,
    audit_since,
    call_function,
    invoker,
    last_audit_id,
    mk,
    mk_ok,
)


# -- the kinds of caller ------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    label: str
    user: str
    privileges: tuple[str, ...]
    role: str | None = None
    disabled_in_directory: bool = False

    @property
    def password(self) -> str:
        return f"{self.user.capitalize()}-pass-1"

    @property
    def may_log_in(self) -> bool:
        # login privileges: the default, every way
        return "login" in self.privileges and not self.disabled_in_directory

    @property
    def administrator(self) -> bool:
        return "admin" in self.privileges or self.role == "administrator"

    @property
    def console_role(self) -> str:
        return self.role or ("administrator" if "admin" in self.privileges else "user")


KINDS = (
    Kind("administrator", "boss", ("admin", "login")),
    Kind("developer", "dev", ("login",), "developer"),
    Kind("operator", "oper", ("login",), "operator"),
    Kind("archive-only user", "archivist", ("archive", "login")),
    Kind("user without login", "nologin", ("admin",)),
    Kind("disabled directory user", "gone", ("admin", "login"), "administrator",
         disabled_in_directory=True),
)
DIRECTORY_KINDS = [k for k in KINDS if k.disabled_in_directory]
FUNCTIONS = list(REGISTRY)  # every function of the catalog, by name
ROUTED = [fn for fn in FUNCTIONS if fn.mcapi is not None]

# What each answer is called in the table.
ALLOWED = "allowed"
REFUSED = "refused (403, audited)"
REFUSED_AT_LOGIN = "refused at login (403, not audited)"
CONSOLE_REFUSED = "refused (3002, audited)"
NO_CONSOLE_LOGIN = "login refused (2003)"
JOB_REFUSED = "run failed: refused (audited)"
NOT_AN_ACTION = "CreateJob refuses the action"

PROBE = "matrixProbe"  # an argument no function has: an admitted call stops at it


@pytest.fixture(scope="module")
def directory() -> Iterator[Slapd]:
    """The directory of the directory kinds, with them in it (disabled) and in the synced
    group."""
    with Slapd() as slapd:
        for kind in DIRECTORY_KINDS:
            slapd.add_user(kind.user, kind.label.title(), kind.password,
                           f"{kind.user}@example.org", groups=("archive-users",),
                           disabled=kind.disabled_in_directory)
        yield slapd


def make_data(data: Path, slapd: Slapd) -> Path:
    """A data directory with its initial administrator and one account of each kind (the
    directory kinds made by a sync from the directory)."""
    mk_ok(data, "user", "list")
    call_function(data, "SetDirectoryServicesConfiguration", config=json.dumps({
        "type": "ldap", "server": slapd.host, "port": slapd.ldaps_port, "security": "ldaps",
        "caFile": slapd.ca_file, "bindDn": slapd.bind_dn, "bindPassword": slapd.bind_password,
        "baseDn": slapd.base_dn, "groupDn": slapd.group_dn("archive-users")}))
    call_function(data, "SyncUsersWithDirectoryServices")
    for kind in KINDS:
        if kind.disabled_in_directory:
            call_function(data, "SetUserPrivileges", userName=kind.user,
                          privileges=",".join(kind.privileges))
        else:
            call_function(data, "CreateUser", userName=kind.user,
                          privileges=",".join(kind.privileges), password=kind.password)
        if kind.role is not None:
            call_function(data, "SetUserRole", userName=kind.user, role=kind.role)
    return data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, directory: Slapd) -> Path:
    return make_data(tmp_path_factory.mktemp("matrix") / "data", directory)


@pytest.fixture(scope="module")
def server(data: Path) -> Iterator[TestClient]:
    with TestClient(create_app(data, api_enabled=True, hasher=CHEAP), client=LOCAL) as client:
        yield client


# -- the table ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    function: str
    interface: str
    caller: str
    expected: str
    got: str


def check(cases: list[Case]) -> None:
    """Fail with every case whose answer is not the rule's, as a table."""
    wrong = [c for c in cases if c.got != c.expected]
    if not wrong:
        return
    head = ("function", "interface", "caller", "expected", "got")
    rows = [head] + [(c.function, c.interface, c.caller, c.expected, c.got) for c in wrong]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
             for r in rows]
    pytest.fail(f"{len(wrong)} of {len(cases)} cases differ from the rules:\n"
                + "\n".join(lines), pytrace=False)


def records(data: Path, after: int, fn: Function) -> list[tuple[str, str]]:
    """(actor, outcome) of the audit records of fn written after `after`."""
    return [(actor, str(d.get("outcome"))) for actor, action, d in audit_since(data, after)
            if action == fn.name]


def answer(resp: Any, bom: bool = False) -> dict[str, Any]:
    """The JSON object of an answer ({} for anything else, which the table then shows)."""
    try:
        body = json.loads(resp.content.decode("utf-8-sig" if bom else "utf-8"))
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def test_the_matrix_covers_every_function_and_kind() -> None:
    """What the tables below range over: the whole catalog, and each kind once."""
    assert {fn.name for fn in FUNCTIONS} == set(REGISTRY.functions)
    assert len(FUNCTIONS) > 80 and ROUTED
    assert len({k.user for k in KINDS}) == len({k.label for k in KINDS}) == len(KINDS) == 6


# -- 1. the Administration API --------------------------------------------------------------------
def api_expected(kind: Kind) -> str:
    if not kind.may_log_in:
        return REFUSED_AT_LOGIN
    return ALLOWED if kind.administrator else REFUSED


def api_got(data: Path, server: TestClient, fn: Function, kind: Kind) -> str:
    before = last_audit_id(data)
    resp = server.post(f"/api/invoke/{fn.name}", data={PROBE: "1"},
                       headers=basic(kind.user, kind.password))
    audited = records(data, before, fn)
    if resp.status_code == 403:
        if not audited:
            return REFUSED_AT_LOGIN
        if audited == [(f"api:{kind.user}", "refused")]:
            return REFUSED
    elif resp.status_code == 200 and not audited:
        body = answer(resp, bom=True)  # the envelope, with its BOM
        error = body.get("error") or {}
        if (body.get("statusCode") == "failed" and error.get("details") == "invalid_argument"
                and f"Unknown API argument {PROBE}" in str(error.get("message"))):
            return ALLOWED
    return f"HTTP {resp.status_code} {short(resp.text, 70)!r}, audit {audited}"


def test_administration_api(data: Path, server: TestClient) -> None:
    check([Case(fn.name, "api", kind.label, api_expected(kind),
                api_got(data, server, fn, kind))
           for fn in FUNCTIONS for kind in KINDS])


# -- 2. the console API ---------------------------------------------------------------------------
def console_expected(fn: Function, kind: Kind) -> str:
    if not kind.may_log_in:
        return NO_CONSOLE_LOGIN
    return ALLOWED if kind.console_role in fn.roles else CONSOLE_REFUSED


def console_login(server: TestClient, kind: Kind) -> str | dict[str, str]:
    """The session headers of the kind, or what the login answered instead."""
    resp = server.post("/mcapi/auth/login", json={"userName": kind.user,
                                                   "password": kind.password})
    result = answer(resp).get("result") or {}
    if resp.status_code == 200 and result.get("status") == "success":
        return {"X-Fs-SessionId": result["data"]["sessionId"]}
    if resp.status_code == 403 and result.get("code") == 2003:
        return NO_CONSOLE_LOGIN
    return f"login: HTTP {resp.status_code} {short(resp.text, 70)!r}"


def console_got(data: Path, server: TestClient, fn: Function, kind: Kind,
                session: dict[str, str]) -> str:
    assert fn.mcapi is not None
    path = f"/mcapi/{fn.mcapi.path}"
    before = last_audit_id(data)
    if fn.mcapi.method == "GET":
        resp = server.get(path, params={PROBE: "1"}, headers=session)
        admitted = 1002  # the unknown parameter
    else:
        resp = server.request(fn.mcapi.method, path, content=b"{not json",
                              headers={**session, "Content-Type": "application/json"})
        admitted = 1001  # the body that is not JSON
    return console_verdict(resp, records(data, before, fn), kind, admitted)


def console_verdict(resp: Any, audited: list[tuple[str, str]], kind: Kind, admitted: int) -> str:
    """A console API answer named: refused (3002, one audit record "refused"), allowed (the
    code of the probe that stops an admitted call, no audit record), or what it was."""
    code = (answer(resp).get("result") or {}).get("code")
    if resp.status_code == 403 and code == 3002 and audited == [(f"mcapi:{kind.user}",
                                                                 "refused")]:
        return CONSOLE_REFUSED
    if resp.status_code == 400 and code == admitted and not audited:
        return ALLOWED
    return f"HTTP {resp.status_code} code {code} {short(resp.text, 60)!r}, audit {audited}"


def test_console_api(data: Path, server: TestClient) -> None:
    cases = []
    for kind in KINDS:
        session = console_login(server, kind)
        for fn in ROUTED:
            got = (session if isinstance(session, str)
                   else console_got(data, server, fn, kind, session))
            cases.append(Case(fn.name, "mcapi", kind.label, console_expected(fn, kind), got))
    check(cases)


def generic_got(data: Path, server: TestClient, fn: Function, kind: Kind,
                session: dict[str, str]) -> str:
    """The console's administration pages call any function through /mcapi/function/invoke:
    the same rule as the function's own route, for every function of the catalog."""
    before = last_audit_id(data)
    resp = server.post("/mcapi/function/invoke", headers=session,
                       json={"name": fn.name, "args": {PROBE: 1}})
    return console_verdict(resp, records(data, before, fn), kind, 1002)


def test_console_api_any_function(data: Path, server: TestClient) -> None:
    cases = []
    for kind in KINDS:
        session = console_login(server, kind)
        for fn in FUNCTIONS:
            got = (session if isinstance(session, str)
                   else generic_got(data, server, fn, kind, session))
            cases.append(Case(fn.name, "mcapi invoke", kind.label, console_expected(fn, kind),
                              got))
    check(cases)


# -- 3. the command line --------------------------------------------------------------------------
def cli_got(data: Path, fn: Function) -> str:
    before = last_audit_id(data)
    result = mk(data, "call", fn.name, f"{PROBE}=1")
    audited = records(data, before, fn)
    if (result.exit_code == 2 and f"Unknown API argument {PROBE}" in result.output
            and not audited):
        return ALLOWED
    refused = " (refused)" if result.exit_code == 8 else ""
    return (f"exit {result.exit_code}{refused} {short(result.output, 70)!r}, "
            f"audit {audited}")


def test_command_line(data: Path) -> None:
    check([Case(fn.name, "cli", "the shell (cli)", ALLOWED, cli_got(data, fn))
           for fn in FUNCTIONS])


# -- 4. a job -------------------------------------------------------------------------------------
NOUSER = "no-such-user"
# Arguments of each function's action that parse (CreateJob checks them) but make the run fail
# after admission, changing nothing; a function left out is called without arguments.
ACTIONS: dict[str, dict[str, str]] = {
    "AttachStore": {"name": "matrix", "type": "FileSystemInternal",
                    "databasePath": "/nonexistent/matrix-store"},
    "ClearUserPrivilegesOnFolders": {"userName": NOUSER},
    "CompactStore": {"id": "999999"},
    "CreateBackup": {"path": "/dev/null/matrix-backup"},
    "CreateConnection": {"name": "bad name", "type": "smtp"},
    "CreateProfile": {"properties": "{}"},
    "CreateStore": {"name": "bad/name"},
    "CreateUser": {"userName": "bad/name", "privileges": "login"},
    "DeleteConnection": {"name": "no-such-connection"},
    "DeleteEmptyFolders": {"folder": NOUSER},
    "DeleteMessage": {"id": "no-such-message", "reason": "matrix"},
    "DeleteProfile": {"id": "999999"},
    "DeleteUser": {"userName": NOUSER},
    "DetachStore": {"id": "999999"},
    "GetConnection": {"name": "no-such-connection"},
    "GetJobResults": {"fromIncluding": "2020-01-01", "toExcluding": "2020-01-02",
                      "timeZoneId": "UTC"},
    "GetMessages": {"folder": NOUSER},
    "GetUserInfo": {"userName": NOUSER},
    "GetWorkerResultReport": {"id": "999999"},
    "GetWorkerResults": {"fromIncluding": "2020-01-01", "toExcluding": "2020-01-02",
                         "timeZoneID": "UTC"},
    "MergeStore": {"id": "999999", "sourceId": "999998"},
    "MoveFolder": {"fromFolder": f"{NOUSER}/a", "toFolder": f"{NOUSER}/b"},
    "RebuildStoreIndex": {"id": "999999", "folder": NOUSER},
    "RecoverStore": {"id": "999999"},
    "RecreateRecoveryRecords": {"id": "999999"},
    "RenameStore": {"id": "999999", "name": "matrix"},
    "RenameUser": {"oldUserName": NOUSER, "newUserName": f"{NOUSER}-2"},
    "RepairStoreDatabase": {"id": "999999"},
    "ResetSetting": {"key": "no.such.setting"},
    "RunProfile": {"id": "999999"},
    "RunTemporaryProfile": {"properties": "{}"},
    "SendStatusReport": {"timespan": "today", "timeZoneId": "UTC",
                         "recipients": "not an address"},
    "SetProfileServerSideExecution": {"id": "999999", "automatic": "false"},
    "SetServiceCertificate": {"thumbprint": "00"},
    "SetSetting": {"key": "no.such.setting", "value": "x"},
    "SetSmtpSettings": {"settings": "{}"},  # secret: no action may carry it
    "SetStoreAutoCreateConfiguration": {"config": "42"},
    "SetStoreProperties": {"id": "999999"},
    "SetStoreRequestedState": {"id": "999999", "requestedState": "current"},
    "SetUserAuthentication": {"userName": NOUSER, "authentication": "integrated"},
    "SetUserDistinguishedName": {"userName": NOUSER},
    "SetUserEmailAddresses": {"userName": NOUSER},
    "SetUserFullName": {"userName": NOUSER},
    "SetUserLoginPrivileges": {"userName": NOUSER, "loginPrivileges": "none"},
    "SetUserPassword": {"userName": NOUSER, "password": "x"},  # secret
    "SetUserPop3UserNames": {"userName": NOUSER},
    "SetUserPrivileges": {"userName": NOUSER, "privileges": "none"},
    "SetUserPrivilegesOnFolder": {"userName": NOUSER, "folder": NOUSER, "privileges": "none"},
    "SetUserRole": {"userName": NOUSER},
    "UnlockStore": {"id": "999999", "passphrase": "x"},  # secret
    "ConfirmMFA": {"userName": NOUSER, "code": "000000"},  # secret
    "CreateAppPassword": {"userName": NOUSER, "name": "matrix"},
    "DeleteAppPasswords": {"userName": NOUSER},
    "DisableMFA": {"userName": NOUSER},
    "GetAppPasswords": {"userName": NOUSER},
    "InitializeMFA": {"userName": NOUSER},
    "UpdateConnection": {"name": "no-such-connection"},
    "UpdateProfile": {"id": "999999", "properties": "{}"},
    "UpgradeStore": {"id": "999999"},
    "VerifyStore": {"id": "999999"},
    # MANAGING: refused whatever their arguments
    "CancelJobAsync": {"id": "999999"}, "CreateJob": {}, "DeleteJob": {"id": "999999"},
    "RenameJob": {"id": "999999", "name": "x"}, "RunJobAsync": {"id": "999999"},
    "SetJobEnabled": {"id": "999999", "enabled": "false"},
    "SetJobSchedule": {"id": "999999", "timeZoneId": "UTC"},
}


def needs_a_secret(fn: Function) -> bool:
    """Whether the function cannot be called without a secret argument."""
    return any(a.secret and not a.nullable and a.default is None for a in fn.args)


def fallback(arg: Field) -> str:
    """A value for a required argument of a function ACTIONS does not know yet (one added
    after this module): one that parses and names nothing that exists."""
    if arg.choices:
        return arg.choices[0]
    if arg.kind in ("int", "number"):
        return "999999"
    return {"bool": "false", "json": "{}"}.get(arg.kind) or (
        "/dev/null/matrix" if arg.format == "absolute-path" else
        NOUSER if "user" in arg.name.lower() else "no-such-" + arg.name)


def action_of(fn: Function) -> str:
    form = ACTIONS.get(fn.name)
    if form is None:
        form = {a.name: fallback(a) for a in fn.args if not a.nullable and a.default is None}
    return shlex.join([fn.name, *(f"{k}={v}" for k, v in form.items())])


def job_expected(fn: Function, kind: Kind) -> str:
    if fn.name in MANAGING or fn.name in FOUR_EYES or needs_a_secret(fn):
        return NOT_AN_ACTION
    return ALLOWED if kind.administrator and kind.may_log_in else JOB_REFUSED


def job_got(inv: Invoker, data: Path, fn: Function, kind: Kind) -> str:
    job_name = f"{fn.name} as {kind.user}"
    action = action_of(fn)
    before = last_audit_id(data)
    try:
        job: dict[str, Any] = inv.call("CreateJob", SHELL, form={
            "name": job_name, "action": action, "owner": kind.user, "timeZoneId": "UTC"})
    except InvalidArgument as exc:
        why = ("jobs do not manage jobs" if fn.name in MANAGING else
               "in person" if fn.name in FOUR_EYES else
               "it is secret" if needs_a_secret(fn) else "?")
        if why in exc.message and not [actor for actor, _ in records(data, before, fn)
                                       if actor.startswith("job:")]:
            return NOT_AN_ACTION
        return f"CreateJob refused: {short(exc.message, 80)}"
    before = last_audit_id(data)
    ran: dict[str, Any] = inv.call("RunJobAsync", SHELL, form={"id": str(job["id"])})
    audited = records(data, before, fn)
    error = str(ran.get("error") or "")
    refused_text = "is not an administrator who may log in" in error
    if (ran["result"] == "failed" and refused_text and kind.user in error
            and audited == [(f"job:{job_name}", "refused")]):
        return JOB_REFUSED
    if (ran["result"] in ("succeeded", "failed") and not refused_text
            and all(outcome != "refused" for _, outcome in audited)
            and audited == ([(f"job:{job_name}", ran["result"])] if fn.audited else [])):
        return ALLOWED
    return f"run {ran['result']} {short(error, 70)!r}, audit {audited}"


def test_job(data: Path, tmp_path: Path, directory: Slapd) -> None:
    """The jobs of functions that change something run in a scratch data directory with the
    same kinds: the administrator's really run, and the module's data directory stays as the
    other interfaces found it."""
    scratch = make_data(tmp_path / "scratch", directory)
    cases = []
    with invoker(data) as main_inv, invoker(scratch) as scratch_inv:
        for fn in FUNCTIONS:
            inv, where = (scratch_inv, scratch) if fn.changes else (main_inv, data)
            for kind in KINDS:
                cases.append(Case(fn.name, "job", kind.label, job_expected(fn, kind),
                                  job_got(inv, where, fn, kind)))
    check(cases)
