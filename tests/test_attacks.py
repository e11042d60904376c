"""Attacks an outsider tries on what mailkeep claims (README, docs/architecture.md,
docs/mcapi.md, docs/functions.md), each refused: rights before bodies, bounded requests, secrets
that go nowhere, clear errors for hostile paths and numbers. Real servers (`mailkeep serve`) or
the real ASGI app in-process, real requests, no mocks; waits are bounded polls for a
condition."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mailkeep.core.admin.certificates import ensure_self_signed
from mailkeep.core.errors import InvalidArgument, MailkeepError
from mailkeep.core.keys import FREE_TRIES, KeyRing
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.masterdb.audit import AuditRecord
from mailkeep.core.storage.store import read_manifest
from mailkeep.error_table import ERRORS
from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, api_client, basic, decode
from tests.helpers import (
    CHEAP,
    Served,
    call_function,
    free_port,
    mk,
    mk_ok,
    mk_process,
    serving,
)

SECRET = "Attack-Secret-Value-42"
PASSPHRASE = "correct horse battery staple"
# What the error table lets the Administration API say in error.details (besides the
# messages of its own kinds): never the name of a Python exception class.
TABLE_DETAILS = {spec.details for spec in ERRORS.values() if spec.details}


# -- helpers ------------------------------------------------------------------------------------
def envelope(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    body: dict[str, Any] = json.loads(resp.content.decode("utf-8-sig"))
    return body


def until(condition: Callable[[], bool], seconds: float, step: float = 0.05) -> bool:
    """Poll condition() until it holds or `seconds` have passed; whether it held."""
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def follow(client: httpx.Client, body: dict[str, Any], seconds: float,
           user: tuple[str, str] = ("admin", "admin")) -> tuple[dict[str, Any], str]:
    """Follow a token with get-status for at most `seconds`: the last envelope and the log."""
    log = body["logOutput"] or ""
    deadline = time.monotonic() + seconds
    while body["statusCode"] == "running" and time.monotonic() < deadline:
        wait = max(1, int((deadline - time.monotonic()) * 1000))
        body = envelope(client.post("/api/get-status", headers=basic(*user), data={
            "token": body["token"], "lastKnownStatusVersion": body["statusVersion"],
            "millisecondsTimeout": min(wait, 2000)}))
        log += body["logOutput"] or ""
    return body, log


def invoke(client: httpx.Client, function: str, /, seconds: float = 60,
           **args: str) -> tuple[dict[str, Any], str]:
    body = envelope(client.post(f"/api/invoke/{function}", headers=basic(), data=args))
    return follow(client, body, seconds)


@contextlib.contextmanager
def server(data: Path, log: Path | None = None,
           clean_exit: bool = True) -> Iterator[tuple[httpx.Client, Served, int]]:
    """A real `mailkeep serve` (plain HTTP on 127.0.0.1, the API on) and a client of it."""
    port = free_port()
    with serving(data, "--enable-api", "--no-tls", "--host", "127.0.0.1", "--port", str(port),
                 port=port, log=log, clean_exit=clean_exit) as served:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client, served, port


def audit(data: Path) -> list[AuditRecord]:
    master = MasterDB.of(data)
    try:
        return master.audit.since(0, 100_000)
    finally:
        master.close()


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def release_fifo(path: Path, seconds: float = 10) -> None:
    """Let a reader blocked on the FIFO go on (it reads end of file)."""
    def opened() -> bool:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody reads it (yet)
            return False
        os.close(fd)
        return True

    until(opened, seconds)


class FakePop3:
    """A POP3 server on 127.0.0.1 that says +OK to everything and keeps what it was told."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.port: int = self.sock.getsockname()[1]
        self.lines: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"+OK ready\r\n")
            for line in lines:
                self.lines.append(line)
                conn.sendall(b"+OK\r\n")
                if line.upper().startswith(b"QUIT"):
                    break

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


# -- resource exhaustion: a request body is bounded before anyone logs in -----------------------
def test_unauthenticated_login_cannot_make_the_server_buffer_a_huge_body(tmp_path: Path) -> None:
    """Anyone who reaches the port may send POST /mcapi/auth/login (no session is needed): a body
    announced at 1 GiB is refused before it is read (413, and the connection closed), so the
    server's memory does not grow with what a client sends."""
    with server(tmp_path / "data") as (_client, served, port):
        pid = served.proc.pid
        before = rss_mib(pid)
        refused = False
        grown = 0
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /mcapi/auth/login HTTP/1.1\r\nHost: mailkeep\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % (1 << 30) + b'{"userName": "nobody", "password": "x", "pad": "')
            block = b"x" * (1 << 20)
            sent, deadline = 0, time.monotonic() + 60
            while sent < 160 and time.monotonic() < deadline:
                try:
                    sock.sendall(block)
                    sent += 1
                except TimeoutError:  # the server reads slowly (or not at all): go on
                    continue
                except OSError:  # refused: the server closed the connection
                    refused = True
                    break

            def grew() -> bool:
                nonlocal grown
                grown = rss_mib(pid) - before
                return grown >= 96

            held = not refused and until(grew, 10)
        assert not held, (f"an unauthenticated client made the server hold {grown} MiB more "
                          "memory with one unfinished login request")


# -- refusals: rights before the body, and every refusal audited --------------------------------
def test_non_admin_is_refused_and_audited_before_its_body_is_read(tmp_path: Path) -> None:
    """The Administration API checks the caller's rights before it reads the form: a
    non-administrator probing SetUserPrivileges with a body that does not even parse gets 403,
    and the refused call is the one audit record it leaves."""
    data = tmp_path / "data"
    with api_client(data) as api:
        decode(api.post("/api/invoke/CreateUser", headers=basic(), data={
            "userName": "bob", "privileges": "login", "password": "bob-password"}))
        resp = api.post("/api/invoke/SetUserPrivileges",
                        headers={**basic("bob", "bob-password"),
                                 "Content-Type": "multipart/form-data"},
                        content=b"userName=bob&privileges=admin")
    refused = [r for r in audit(data) if r.action == "SetUserPrivileges"
               and r.actor == "api:bob" and r.details.get("outcome") == "refused"]
    assert resp.status_code == 403, resp.text
    assert len(refused) == 1, [(r.actor, r.action, r.details) for r in audit(data)]


def test_non_admin_gets_403_for_any_function_name(tmp_path: Path) -> None:
    """A non-administrator gets 403 whatever function it names, one that does not exist too:
    which functions exist is not for it to find out (get-metadata is refused to it as well)."""
    with api_client(tmp_path / "data") as api:
        decode(api.post("/api/invoke/CreateUser", headers=basic(), data={
            "userName": "bob", "privileges": "login", "password": "bob-password"}))
        resp = api.post("/api/invoke/NoSuchFunction", headers=basic("bob", "bob-password"))
    assert resp.status_code == 403, resp.text


# -- secrets: a write-only password goes nowhere it was not given for ---------------------------
def test_stored_smtp_password_cannot_be_redirected_to_a_new_pop3_server(tmp_path: Path) -> None:
    """The stored notification password is write-only: switching an SMTP-AUTH configuration to
    POP before SMTP at another port asks for the password again, so the stored one never
    reaches a server (here a POP3 listener of the caller's choosing) it was not given for."""
    data = tmp_path / "data"
    closed = free_port()
    call_function(data, "SetSmtpSettings", settings=json.dumps({
        "serverName": "127.0.0.1", "port": closed, "authenticationType": "SMTP",
        "userName": "notify", "password": SECRET, "fromMailAddress": "archive@example.org",
        "toMailAddress": "ops@example.org", "timeOut": 5}))
    pop = FakePop3()
    try:
        try:
            call_function(data, "SetSmtpSettings", settings=json.dumps({
                "authenticationType": "POP before SMTP", "pop3ServerName": "127.0.0.1",
                "pop3Port": pop.port}))
        except InvalidArgument:
            return  # the password is asked for again: nothing to redirect
        with contextlib.suppress(MailkeepError):
            call_function(data, "TestSmtpSettings")
    finally:
        pop.close()
    received = b"".join(pop.lines).decode(errors="replace")
    assert SECRET not in received, f"the new POP3 server received: {received!r}"


# -- backups: no key renewal while a backup copies the keys -------------------------------------
def test_backup_during_a_key_renewal_still_opens_its_encrypted_stores(tmp_path: Path) -> None:
    """CreateBackup copies conf/ (the master key) and the stores' manifests as one: a
    RenewMasterKey while the backup runs is refused, so a backup that succeeds opens its
    encrypted stores when restored. (Store A's segment is a FIFO only to hold the backup at
    that point, as a large store would.)"""
    data, target = tmp_path / "data", tmp_path / "backup"
    mk_ok(data, "call", "CreateStore", "name=A")
    mk_ok(data, "call", "CreateStore", "name=B", "encrypt=true")
    mk_ok(data, "call", "SetStoreRequestedState", "id=2", "requestedState=current")
    mk_ok(data, "call", "SetStoreRequestedState", "id=1", "requestedState=disabled")
    store_a = data / "stores" / "A"
    (store_a / "catalog.sqlite").unlink(missing_ok=True)
    segment = store_a / "segments" / "000001.seg"
    segment.unlink(missing_ok=True)
    os.mkfifo(segment)
    with server(data) as (client, _served, _port):
        try:
            backup = envelope(client.post("/api/invoke/CreateBackup", headers=basic(),
                                          data={"path": str(target)}))
            log = backup["logOutput"] or ""
            deadline = time.monotonic() + 30
            while ("Backing up store A" not in log and backup["statusCode"] == "running"
                   and time.monotonic() < deadline):
                backup, more = follow(client, backup, 1)
                log += more
            assert "Backing up store A" in log, log
            renewal, _ = invoke(client, "RenewMasterKey", seconds=15)
        finally:
            release_fifo(segment)
        backup, more = follow(client, backup, 60)
        log += more
        renewal, _ = follow(client, renewal, 30)  # it may have waited for the backup
    assert backup["statusCode"] == "succeeded", (backup["error"], log)
    try:
        KeyRing(target).store_key(read_manifest(target / "stores" / "B"))
    except MailkeepError as exc:
        pytest.fail(f"the backup (renewal: {renewal['statusCode']}) cannot open its encrypted "
                    f"store B: {exc.message}")


# -- UnlockStore: guessing is slowed down, also in parallel -------------------------------------
def test_unlock_store_guessing_is_slowed_down_for_concurrent_guesses(tmp_path: Path) -> None:
    """Five wrong passphrases in a row, then each next try waits: also when the guesses are
    sent at once (the server runs eight calls at a time), at most five are tried."""
    data = tmp_path / "data"
    mk_ok(data, "call", "CreateStore", "name=Default")
    mk_ok(data, "call", "CreateStore", "name=Sealed", f"passphrase={PASSPHRASE}")
    with server(data) as (client, _served, port):
        stores = envelope(client.post("/api/invoke/GetStores", headers=basic()))["result"]
        store_id = next(s["id"] for s in stores if s["name"] == "Sealed")
        start = threading.Barrier(16)
        answers: list[str] = []

        def guess(i: int) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as own:
                start.wait()
                body = envelope(own.post("/api/invoke/UnlockStore", headers=basic(), data={
                    "id": str(store_id), "passphrase": f"wrong guess {i:04d}"}))
                body, _ = follow(own, body, 60)
                answers.append(body["error"]["message"] if body["error"] else "unlocked")

        threads = [threading.Thread(target=guess, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    tried = [a for a in answers if "does not open" in a]
    assert len(answers) == 16, answers
    assert len(tried) <= FREE_TRIES, (f"{len(tried)} of 16 concurrent wrong passphrases were "
                                      f"tried without waiting: {answers}")


# -- UnlockStore: a handed-over store cannot set the cost of a try ------------------------------
def test_unlock_store_cost_is_bounded_for_a_handed_over_store(tmp_path: Path) -> None:
    """A passphrase store comes from someone else, and its store.json names the scrypt
    parameters: ones beyond what mailkeep makes (here p=512, a minute of a core per try) are
    refused at once instead of run."""
    sender, data = tmp_path / "sender", tmp_path / "data"
    mk_ok(sender, "call", "CreateStore", "name=Gift", f"passphrase={PASSPHRASE}")
    gift = sender / "stores" / "Gift"
    manifest = json.loads((gift / "store.json").read_text())
    manifest["encryption"]["kdf"]["p"] = 512
    (gift / "store.json").write_text(json.dumps(manifest))
    mk_ok(data, "call", "CreateStore", "name=Default")
    with server(data, clean_exit=False) as (client, _served, _port):
        attached, _ = invoke(client, "AttachStore", seconds=10, name="Gift",
                             type="FileSystemInternal", databasePath=str(gift))
        if attached["statusCode"] != "succeeded":
            return  # refused at the door: the store cannot cost anything
        began = time.monotonic()
        unlocked, _ = invoke(client, "UnlockStore", seconds=10,
                             id=str(attached["result"]["id"]), passphrase="not the passphrase")
        took = time.monotonic() - began
    assert unlocked["statusCode"] != "running", (
        f"one UnlockStore of a handed-over store still runs after {took:.0f} s")


# -- audit: the record names the account --------------------------------------------------------
def test_audit_record_names_the_account_not_what_the_client_typed(tmp_path: Path) -> None:
    """User names compare case-insensitively ("ADMIN", or "Kim" with a KELVIN SIGN, log in as
    admin and kim): the audit log and the processes name the account as stored, so a search
    for api:kim finds what kim did."""
    data = tmp_path / "data"
    kelvin = "\u212aim"
    with api_client(data) as api:
        decode(api.post("/api/invoke/CreateUser", headers=basic(), data={
            "userName": "kim", "privileges": "admin,login", "password": "kim-password"}))
        decode(api.post("/api/invoke/SetUserFullName", headers=basic(kelvin, "kim-password"),
                        data={"userName": "kim", "fullName": "changed by kim"}))
        decode(api.post("/api/invoke/SetUserFullName", headers=basic("ADMIN", "admin"),
                        data={"userName": "kim", "fullName": "changed by admin"}))
    actors = [(r.actor, r.details.get("user")) for r in audit(data)
              if r.action == "SetUserFullName"]
    assert actors == [("api:kim", "kim"), ("api:admin", "admin")], actors


def test_session_of_a_deleted_account_does_not_pass_to_its_namesake(tmp_path: Path) -> None:
    """Deleting an account (named in another case: "émile" for "Émile") ends its console
    sessions: an old operator session does not act for a new administrator of the same
    name."""
    with api_client(tmp_path / "data") as api:
        decode(api.post("/api/invoke/CreateUser", headers=basic(), data={
            "userName": "\u00c9mile", "privileges": "login", "password": "operator-password"}))
        decode(api.post("/api/invoke/SetUserRole", headers=basic(), data={
            "userName": "\u00c9mile", "role": "operator"}))
        login = api.post("/mcapi/auth/login", json={"userName": "\u00c9mile",
                                                     "password": "operator-password"})
        session = {"X-Fs-SessionId": login.json()["result"]["data"]["sessionId"]}
        decode(api.post("/api/invoke/DeleteUser", headers=basic(), data={
            "userName": "\u00e9mile"}))
        decode(api.post("/api/invoke/CreateUser", headers=basic(), data={
            "userName": "\u00c9mile", "privileges": "admin,login",
            "password": "new-password"}))
        resp = api.post("/mcapi/connection/create", headers=session,
                        json={"name": "c1", "type": "smtp", "serverName": "smtp.example.org"})
    assert resp.status_code == 403, resp.text
    assert resp.json()["result"]["code"] == 3001, resp.text


# -- paths: no FIFO is read as a key ------------------------------------------------------------
def test_tls_key_setting_pointing_at_a_fifo_does_not_hang_the_server(tmp_path: Path) -> None:
    """A tls.key setting naming a FIFO does not hang the workers that look at certificates
    (GetServiceConfiguration, SetServiceCertificate): only a regular file is read as a key."""
    data = tmp_path / "data"
    data.mkdir()
    cert, _key = ensure_self_signed(data.resolve())
    fifo = tmp_path / "server.key"
    os.mkfifo(fifo)
    with server(data, clean_exit=False) as (client, _served, _port):
        try:
            invoke(client, "SetSetting", key="tls.cert", value=str(cert))
            setting, _ = invoke(client, "SetSetting", key="tls.key", value=str(fifo))
            if setting["statusCode"] != "succeeded":
                return  # refused: not a key file
            answer, _ = invoke(client, "GetServiceConfiguration", seconds=10)
        finally:
            release_fifo(fifo)
    assert answer["statusCode"] != "running", "GetServiceConfiguration hangs on the FIFO"


# -- secrets in errors: a wrong value of a secret is not repeated -------------------------------
def test_profile_secret_of_the_wrong_type_is_not_repeated(tmp_path: Path) -> None:
    """A profile's password or accessToken given as a list or an object is refused without the
    error repeating it, in the answer and in the audit record."""
    data = tmp_path / "data"
    for field, value in (("password", [SECRET]), ("accessToken", {"token": SECRET})):
        props = {"name": "p", "type": "imap", "userName": "admin", "host": "imap.example.org",
                 "login": "alice", field: value}
        if field == "accessToken":
            props["authentication"] = "xoauth2"
        with pytest.raises(MailkeepError) as raised:
            call_function(data, "CreateProfile", properties=json.dumps(props))
        assert SECRET not in raised.value.message, raised.value.message
    leaked = [r.details for r in audit(data) if SECRET in json.dumps(r.details)]
    assert not leaked, leaked


# -- secrets in the audit log: a refused job action keeps no secret -----------------------------
def test_refused_job_action_keeps_no_secret_in_the_audit_log(tmp_path: Path) -> None:
    """CreateJob refuses an action that passes a secret; the audit record of the refused call
    keeps the action with the secret masked."""
    data = tmp_path / "data"
    with pytest.raises(InvalidArgument):
        call_function(data, "CreateJob", name="nightly", owner="admin", timeZoneId="UTC",
                      action=f"SetUserPassword userName=admin password={SECRET}")
    leaked = [(r.action, r.details) for r in audit(data) if SECRET in json.dumps(r.details)]
    assert not leaked, leaked


# -- errors: bad paths and numbers get clear errors ---------------------------------------------
def test_bad_paths_and_numbers_get_clear_errors_not_tracebacks(tmp_path: Path) -> None:
    """A NUL in a path, a name too long for the file system, a message number beyond 2**63 or
    a date at the end of time get a clear error from the error table (details one of its
    words, never a Python class name) and no traceback in the server's log."""
    data, log = tmp_path / "data", tmp_path / "server.log"
    mk_ok(data, "call", "CreateStore", "name=Default")
    cases: list[tuple[str, dict[str, str]]] = [
        ("CreateStore", {"name": "N1", "databasePath": str(tmp_path / "a\x00b")}),
        ("AttachStore", {"name": "N2", "type": "FileSystemInternal",
                         "databasePath": str(tmp_path / "a\x00b")}),
        ("SetStoreProperties", {"id": "1", "databasePath": str(tmp_path / "a\x00b")}),
        ("CreateBackup", {"path": str(tmp_path / "a\x00b")}),
        ("CreateStore", {"name": "N3", "databasePath": str(tmp_path / ("n" * 300))}),
        ("DeleteMessage", {"id": "1:99999999999999999999999", "reason": "retention"}),
        ("GetJobResults", {"fromIncluding": "2026-01-01", "toExcluding": "9999-12-31T23:59:59",
                           "timeZoneId": "Etc/GMT-14"}),
    ]
    unclear = []
    with server(data, log=log) as (client, _served, _port):
        for name, args in cases:
            body, _ = invoke(client, name, **args)
            error = body["error"] or {}
            if body["statusCode"] != "failed" or error.get("details") not in TABLE_DETAILS:
                unclear.append((name, body["statusCode"], error))
    traceback = "Traceback" in log.read_text(errors="replace")
    assert not unclear and not traceback, (unclear, "a traceback in the server log" if traceback
                                           else "")


def test_console_login_with_an_infinite_timeout_is_a_clear_error(tmp_path: Path) -> None:
    """/mcapi/auth/login (no session needed) with a timeout of JSON's Infinity or 1e400 is a
    clear argument error (400, code 1002), not a server error."""
    app = create_app(tmp_path / "data", api_enabled=True, hasher=CHEAP)
    with TestClient(app, client=LOCAL, raise_server_exceptions=False) as api:
        answers = [api.post("/mcapi/auth/login", content=body,
                            headers={"Content-Type": "application/json"})
                   for body in ('{"userName": "admin", "password": "admin", "timeout": 1e400}',
                                '{"userName": "x", "password": "y", "timeout": Infinity}')]
    assert [a.status_code for a in answers] == [400, 400], [a.text for a in answers]
    assert all(a.json()["result"]["code"] == 1002 for a in answers)


# -- bad input: a store auto-creation basePath with a NUL is refused ----------------------------
def test_autocreate_base_path_with_a_nul_is_refused(tmp_path: Path) -> None:
    """SetStoreAutoCreateConfiguration refuses a basePath with a NUL (it would break every
    filing once a new store is due), and the next import has no traceback."""
    data, mail = tmp_path / "data", tmp_path / "mail"
    mail.mkdir()
    (mail / "big.eml").write_bytes(b"Subject: big\r\n\r\n" + os.urandom(1_500_000).hex().encode()
                                   + b"\r\n")
    (mail / "next.eml").write_bytes(b"Subject: next\r\n\r\nhello\r\n")
    mk_ok(data, "import", str(mail / "big.eml"))
    setting = mk(data, "call", "SetStoreAutoCreateConfiguration",
                 'config={"mode": "size", "sizeLimitMB": 1, "basePath": "/tmp/mk\\u0000x"}')
    imported = mk_process(data, "import", str(mail / "next.eml"))
    assert "Traceback" not in imported.stderr, imported.stderr[-2000:]
    assert setting.exit_code == 2, setting.output


# -- backups: the master database stays private -------------------------------------------------
@pytest.mark.sqlite_master  # the mode of the backup's copy of the file
def test_backup_into_an_existing_directory_keeps_the_master_database_private(
        tmp_path: Path) -> None:
    """CreateBackup into an existing empty directory (a mounted backup disk, mode 0755) leaves
    the master database (password hashes, the audit log) readable by its owner only, as in
    the data directory."""
    data, target = tmp_path / "data", tmp_path / "backup"
    mk_ok(data, "call", "CreateStore", "name=Default")
    target.mkdir()
    target.chmod(0o755)
    mk_ok(data, "call", "CreateBackup", f"path={target}")
    db = (target / "mailkeep.db").stat().st_mode
    folder = target.stat().st_mode
    others_read = bool(db & stat.S_IROTH) and bool(folder & stat.S_IXOTH)
    group_read = bool(db & stat.S_IRGRP) and bool(folder & stat.S_IXGRP)
    assert not (others_read or group_read), (oct(folder), oct(db))


# -- who may log in: loginPrivileges are enforced -----------------------------------------------
def test_account_with_login_privileges_none_cannot_use_the_api(tmp_path: Path) -> None:
    """loginPrivileges say the ways an account may log in: an administrator with none may use
    neither the Administration API (which needs api) nor the console (which needs web)."""
    with api_client(tmp_path / "data") as api:
        decode(api.post("/api/invoke/CreateUser", headers=basic(), data={
            "userName": "carol", "privileges": "admin,login", "password": "carol-password",
            "loginPrivileges": "none"}))
        api_answer = api.post("/api/invoke/GetServerInfo", headers=basic("carol",
                                                                         "carol-password"))
        console = api.post("/mcapi/auth/login", json={"userName": "carol",
                                                       "password": "carol-password"})
    assert api_answer.status_code in (401, 403), api_answer.text
    assert console.status_code in (401, 403), console.text


# -- throttling: X-Forwarded-For only from trusted proxies --------------------------------------
def test_forwarded_for_header_does_not_reset_login_throttling(tmp_path: Path) -> None:
    """Failed logins lock an account for an address after five. X-Forwarded-For is taken only
    from the proxies named in server.trusted_proxies (none by default): a client naming a new
    address with every guess is locked out all the same."""
    port = free_port()
    answers = []
    with serving(tmp_path / "data", "--enable-api", "--host", "127.0.0.1", "--port", str(port),
                 port=port):
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False,
                          timeout=60) as client:
            for i in range(FREE_TRIES + 3):
                resp = client.post("/api/invoke/GetServerInfo", headers={
                    **basic("admin", f"guess {i}"), "X-Forwarded-For": f"203.0.113.{i + 1}"})
                answers.append(resp.text.strip())
    assert any("Too many failed logins" in a for a in answers), answers


# -- store names and paths ----------------------------------------------------------------------
def test_store_name_dot_is_refused(tmp_path: Path) -> None:
    """A store's name also names its directory: "." (which would make <data>/stores itself a
    store) is refused."""
    data = tmp_path / "data"
    result = mk(data, "call", "CreateStore", "name=.")
    assert result.exit_code == 2, (result.exit_code, result.output)


def test_store_paths_must_be_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CreateStore and AttachStore take only an absolute databasePath: a relative one would
    depend on where the server happened to be started."""
    monkeypatch.chdir(tmp_path)
    with api_client(tmp_path / "data") as api:
        body = decode(api.post("/api/invoke/CreateStore", headers=basic(), data={
            "name": "Relative", "databasePath": "relative-store"}))
    assert not (tmp_path / "relative-store").exists()
    assert body["statusCode"] == "failed", body
    assert body["error"]["details"] == "invalid_argument", body["error"]


def test_a_connection_password_goes_nowhere_less_protected(tmp_path: Path) -> None:
    """A named connection's stored password stays with the server it was given for: another
    port, TLS turned off, the certificate no longer checked or another CA trusted each ask
    for the password again; a change that sends it nowhere new does not."""
    data = tmp_path / "data"
    (tmp_path / "other-ca.pem").write_text(ensure_self_signed(data.resolve())[0].read_text())
    call_function(data, "CreateConnection", name="relay", type="smtp",
                  serverName="smtp.example.org", port="587", security="starttls",
                  authentication="login", userName="relay", password=SECRET)
    for change in ({"port": "2525"}, {"security": "none"}, {"verifyCertificate": "false"},
                   {"caFile": str(tmp_path / "other-ca.pem")},
                   {"serverName": "smtp.example.net"}):
        with pytest.raises(InvalidArgument, match="give the password again") as refused:
            call_function(data, "UpdateConnection", name="relay", **change)
        assert SECRET not in refused.value.message
    call_function(data, "UpdateConnection", name="relay", timeOut="30")
    call_function(data, "UpdateConnection", name="relay", port="2525", password=SECRET)


def test_a_body_sent_a_byte_at_a_time_is_cut_off(tmp_path: Path) -> None:
    """A client sends the headers of a console login announcing a body, then one byte and
    nothing more: after server.body_timeout the server answers 408 and closes; meanwhile
    other clients are served."""
    import ssl as ssl_module

    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "server.body_timeout", "2")
    port = free_port()
    with serving(data, "--host", "127.0.0.1", "--port", str(port), port=port):
        context = ssl_module._create_unverified_context()
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        slow = context.wrap_socket(raw, server_hostname="localhost")
        slow.sendall(b"POST /mcapi/auth/login HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False,
                          timeout=30) as client:  # served while the slow one waits
            assert client.post("/mcapi/auth/login", json={"userName": "x", "password": "y"}
                               ).status_code in (401, 403)
        answer = b""
        while b"\r\n\r\n" not in answer:  # the server's answer, whenever it comes
            chunk = slow.recv(4096)
            if not chunk:
                break
            answer += chunk
        slow.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
