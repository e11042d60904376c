"""A store sealed under a passphrase instead of the master key (CreateStore passphrase=...,
`mailkeep store create --passphrase`), as its users see it: mail archived into it while its
maker's process has it open, locked in every new process and after every server restart until
UnlockStore is given the passphrase, a wrong passphrase refused without changing anything, the
passphrase in no answer, audit record, log line or file, RenewMasterKey leaving it alone, and
the store handed to another data directory and opened there with the passphrase only."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.archive import Archive
from mailkeep.core.errors import Conflict, InvalidArgument
from mailkeep.core.storage.store import read_manifest
from tests.apiclient import api_client, finish, invoke
from tests.helpers import (
    SHELL,
    TRICKY,
    audit_since,
    cli,
    free_port,
    invoker,
    mk,
    mk_ok,
    mk_process,
    serving,
)

PASSPHRASE = "correct horse battery staple 42"
WRONG = "correct horse battery staple 43"


# -- the mail -----------------------------------------------------------------------------------
def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def drop_mail(drop: Path, source: Path, count: int) -> list[str]:
    """Up to `count` distinct real messages of the corpus as .eml files in drop, modified a
    minute ago (a directory profile leaves files modified just now); their sorted SHA-256."""
    drop.mkdir(parents=True, exist_ok=True)
    seen: dict[str, Path] = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest = sha(path.read_bytes())
        if digest not in seen and len(seen) < count:
            seen[digest] = drop / f"{path.stem}-{len(seen)}.eml"
            seen[digest].write_bytes(path.read_bytes())
            past = time.time() - 60
            os.utime(seen[digest], (past, past))
    return sorted(seen)


# -- the Administration API ---------------------------------------------------------------------
class Admin:
    """The Administration API of one running app; every answer and process log is kept, to
    look for the passphrase in them."""

    def __init__(self, api: TestClient) -> None:
        self.api = api
        self.seen: list[str] = []

    def call(self, function_name: str, **args: Any) -> dict[str, Any]:
        form = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in args.items()}
        body, log = finish(self.api, invoke(self.api, function_name, **form))
        self.seen.append(json.dumps(body) + log)
        return body

    def ok(self, function_name: str, **args: Any) -> Any:
        body = self.call(function_name, **args)
        assert body["statusCode"] == "succeeded", body["error"]
        return body["result"]

    def failed(self, function_name: str, **args: Any) -> dict[str, Any]:
        body = self.call(function_name, **args)
        assert body["statusCode"] == "failed", body
        error: dict[str, Any] = body["error"]
        return error

    def stores(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.ok("GetStores", includeSize="true")}


class Servers:
    """Servers of data directories started in-process (their lifespan running), each answered
    as an Admin; what every one of them answered is kept in `seen`."""

    def __init__(self) -> None:
        self.running: list[Admin] = []
        self.seen: list[str] = []

    def start(self, data: Path) -> Admin:
        admin = Admin(api_client(data))
        admin.api.__enter__()
        admin.seen = self.seen
        self.running.append(admin)
        return admin

    def stop(self, admin: Admin) -> None:
        """The server stops: its memory goes, the keys it unlocked with it."""
        self.running.remove(admin)
        admin.api.__exit__(None, None, None)


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    try:
        yield started
    finally:
        for admin in list(started.running):
            started.stop(admin)


def directory_profile(admin: Admin, drop: Path) -> int:
    admin.ok("CreateUser", userName="alice", privileges="login")
    profile = admin.ok("CreateProfile", properties={
        "name": "drop", "type": "directory", "userName": "alice", "path": str(drop),
        "targetFolder": "Sealed"})
    return int(profile["id"])


def sealed_with_mail(admin: Admin, tmp_path: Path) -> tuple[int, list[str]]:
    """Through the API: user alice, store Sealed under PASSPHRASE (current), and the mail of a
    directory profile archived into it. (The store's id, the digests of its mail.)"""
    store = admin.ok("CreateStore", name="Sealed", passphrase=PASSPHRASE,
                     requestedState="current")
    assert store["encrypted"] is True and store["error"] is None
    digests = drop_mail(tmp_path / "drop", TRICKY / "cpython-test_email", 30)
    profile = directory_profile(admin, tmp_path / "drop")
    run = admin.ok("RunProfile", id=profile)
    assert (run["result"], run["itemsArchived"]) == ("succeeded", len(digests)), run
    return int(store["id"]), digests


# -- looking at a data directory ----------------------------------------------------------------
def unlocked_digests(data: Path, store_id: int, passphrase: str = PASSPHRASE) -> list[str]:
    """UnlockStore through the one invoke path of a new process, then every message of the
    store read back: their sorted SHA-256."""
    with invoker(data) as inv:
        inv.call("UnlockStore", SHELL, form={"id": str(store_id), "passphrase": passphrase})
        with Archive(data, inv.services.master, inv.services.keys) as archive:
            store = archive.open_store(archive.find_store(store_id))
            numbers = [n for (n,) in store.catalog.conn.execute("SELECT number FROM entries")]
            return sorted(sha(store.read(n)) for n in numbers)


def assert_nowhere(secret: str, *texts: str, files: Path | None = None) -> None:
    """The secret is in none of the texts, nor in any file under `files`."""
    for text in texts:
        assert secret not in text
    if files is not None:
        for path in files.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def locked(store: dict[str, Any]) -> bool:
    error = store["error"] or ""
    return "passphrase" in error and "UnlockStore" in error and store["statisticsCount"] is None


# -- through the Administration API -------------------------------------------------------------
def test_passphrase_store_through_the_administration_api(
        servers: Servers, data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Made and filled through the API, the store is readable in the server that made it;
    after a restart it is locked (a profile run into it fails and archives nothing) until
    UnlockStore: a wrong passphrase is refused, audited, and changes nothing; the right one
    opens it in that server, new mail goes in, and the next restart locks it again. The
    passphrase is in no answer, audit record, log line or file."""
    caplog.set_level(logging.DEBUG)
    admin = servers.start(data)
    store_id, digests = sealed_with_mail(admin, tmp_path)
    assert admin.stores()["Sealed"]["statisticsCount"] == len(digests)
    assert len(admin.ok("GetMessages", folder="alice/Sealed")) == len(digests)
    servers.stop(admin)
    manifest = (data / "stores" / "Sealed" / "store.json").read_bytes()

    admin = servers.start(data)  # a restart
    assert locked(admin.stores()["Sealed"])
    admin.failed("GetMessages", folder="alice/Sealed")
    more = drop_mail(tmp_path / "drop", TRICKY / "mime4j", 10)
    run = admin.call("RunProfile", id=1)
    assert run["statusCode"] == "failed" and "passphrase" in run["error"]["message"], run
    wrong = admin.failed("UnlockStore", id=store_id, passphrase=WRONG)
    assert wrong["message"] == f"The passphrase does not open store Sealed (id {store_id})."
    assert wrong["details"] == "invalid_argument"
    assert locked(admin.stores()["Sealed"])
    assert (data / "stores" / "Sealed" / "store.json").read_bytes() == manifest
    shown = admin.ok("UnlockStore", id=store_id, passphrase=PASSPHRASE)
    assert (shown["name"], shown["error"], shown["statisticsCount"]) == (
        "Sealed", None, len(digests))
    run = admin.ok("RunProfile", id=1)
    assert run["itemsArchived"] == len(more)
    assert admin.stores()["Sealed"]["statisticsCount"] == len(digests) + len(more)
    servers.stop(admin)

    admin = servers.start(data)  # the next restart: locked again
    assert locked(admin.stores()["Sealed"])
    servers.stop(admin)
    assert unlocked_digests(data, store_id) == sorted(digests + more)
    assert (data / "stores" / "Sealed" / "store.json").read_bytes() == manifest

    audit = audit_since(data)
    [create] = [d for _a, action, d in audit if action == "CreateStore"]
    assert create["args"]["passphrase"] == "***"
    unlocks = [(actor, d["outcome"], d["args"]["passphrase"])
               for actor, action, d in audit if action == "UnlockStore"]
    assert unlocks[:2] == [("api:admin", "failed", "***"), ("api:admin", "succeeded", "***")]
    assert_nowhere(PASSPHRASE, *servers.seen, caplog.text, json.dumps(audit), files=data)
    assert_nowhere(WRONG, *servers.seen, caplog.text, json.dumps(audit), files=data)


def test_unlock_store_refuses_what_it_cannot_open(servers: Servers, data: Path) -> None:
    """A store under the master key has nothing to unlock, an unknown id is not found, and a
    passphrase shorter than 12 characters makes no store."""
    admin = servers.start(data)
    vault = admin.ok("CreateStore", name="Vault", encrypt="true")
    error = admin.failed("UnlockStore", id=vault["id"], passphrase=PASSPHRASE)
    assert "not sealed under a passphrase" in error["message"]
    assert admin.failed("UnlockStore", id=99, passphrase=PASSPHRASE)["details"] == "not_found"
    short = admin.failed("CreateStore", name="Short", passphrase="only-11-chr")
    assert "at least 12 characters" in short["message"]
    assert "only-11-chr" not in json.dumps(short)
    assert list(admin.stores()) == ["Vault"]
    assert not (data / "stores" / "Short").exists()


# -- through the command line and a real server -------------------------------------------------
def test_passphrase_store_through_the_command_line_and_a_server(tmp_path: Path) -> None:
    """`mailkeep store create --passphrase` asks for it twice and shows it nowhere; each new
    process finds the store locked (an import into it fails, archiving nothing); `mailkeep
    call UnlockStore` unlocks it in its own process only and says so; a real server unlocked
    through `mailkeep call --url` archives mail into it, and after a restart it is locked
    again. The passphrase is in no output, server log, audit record or file."""
    data, log = tmp_path / "data", tmp_path / "serve.log"
    made = mk(data, "store", "create", "Sealed", "--passphrase",
              input=f"{PASSPHRASE}\n{PASSPHRASE}\n")
    assert made.exit_code == 0, made.output
    assert "encrypted under a passphrase" in made.stdout
    outputs = [made.output]

    listed = json.loads(mk_ok(data, "store", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["Sealed"] and "UnlockStore" in listed[0]["error"]
    digests = drop_mail(tmp_path / "drop", TRICKY / "cpython-test_email", 20)
    imported = mk(data, "import", "--workers", "1", str(tmp_path / "drop"))
    assert imported.exit_code == 7 and "UnlockStore" in imported.stderr, imported.output
    assert [s["name"] for s in json.loads(mk_ok(data, "store", "list", "--json").stdout)] \
        == ["Sealed"]
    wrong = mk(data, "call", "UnlockStore", "id=1", f"passphrase={WRONG}")
    assert wrong.exit_code == 2 and "does not open store Sealed" in wrong.stderr
    unlocked = mk(data, "call", "UnlockStore", "id=1", f"passphrase={PASSPHRASE}")
    assert unlocked.exit_code == 0 and "in this process only" in unlocked.stderr
    assert json.loads(unlocked.stdout)["statisticsCount"] == 0  # the import archived nothing
    outputs += [wrong.output, unlocked.output, imported.output]

    # The server starts with another store current (see the next test), and the sealed one is
    # made current once it is unlocked there.
    mk_ok(data, "store", "create", "Main")
    mk_ok(data, "store", "state", "Main", "current")
    port = free_port()
    base = f"https://127.0.0.1:{port}"

    def remote(*args: str) -> Any:
        res = cli("call", "--url", base, "--password", "admin", "--cafile",
                  str(data / "tls" / "server.crt"), *args)
        outputs.append(res.output)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout) if res.stdout.strip() else None

    flags = ("--enable-api", "--host", "127.0.0.1", "--port", str(port))
    with serving(data, *flags, port=port, log=log):
        assert "UnlockStore" in remote("GetStores")[0]["error"]
        assert remote("UnlockStore", "id=1", f"passphrase={PASSPHRASE}")["error"] is None
        remote("SetStoreRequestedState", "id=1", "requestedState=current")
        remote("CreateUser", "userName=alice", "privileges=login")
        remote("CreateProfile", "properties=" + json.dumps({
            "name": "drop", "type": "directory", "userName": "alice",
            "path": str(tmp_path / "drop")}))
        assert remote("RunProfile", "id=1")["itemsArchived"] == len(digests)
        sizes = {s["name"]: s["statisticsCount"] for s in remote("GetStores", "includeSize=true")}
        assert sizes == {"Sealed": len(digests), "Main": 0}
        remote("SetStoreRequestedState", "id=2", "requestedState=current")
    with serving(data, *flags, port=port, log=log):  # a restart
        [sealed, _main] = remote("GetStores", "includeSize=true")
        assert sealed["statisticsCount"] is None and "UnlockStore" in sealed["error"]
    assert unlocked_digests(data, 1) == digests

    audit = json.dumps(audit_since(data))
    assert '"passphrase": "***"' in audit
    assert_nowhere(PASSPHRASE, *outputs, log.read_text(), audit, files=data)


def test_a_server_starts_with_a_locked_passphrase_store_current(tmp_path: Path) -> None:
    """A passphrase store takes mail only while it is current, and only a running server can
    keep it unlocked (UnlockStore through `mailkeep call --url`): so `mailkeep serve` must start
    with it current and locked, for it to be unlocked there at all."""
    data, log = tmp_path / "data", tmp_path / "serve.log"
    made = mk(data, "store", "create", "Sealed", "--passphrase",
              input=f"{PASSPHRASE}\n{PASSPHRASE}\n")
    assert made.exit_code == 0, made.output
    port = free_port()
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port), port=port,
                 log=log):
        res = cli("call", "--url", f"https://127.0.0.1:{port}", "--password", "admin",
                  "--cafile", str(data / "tls" / "server.crt"), "UnlockStore", "id=1",
                  f"passphrase={PASSPHRASE}")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["error"] is None


# -- RenewMasterKey -----------------------------------------------------------------------------
def test_renewal_leaves_passphrase_stores_alone(servers: Servers, data: Path,
                                                tmp_path: Path) -> None:
    """RenewMasterKey re-wraps the store under the master key and leaves the passphrase store's
    manifest as it was, whether the store is locked (a `mailkeep` process) or unlocked (the
    server that unlocked it, which goes on reading it); the passphrase opens it afterwards."""
    admin = servers.start(data)
    store_id, digests = sealed_with_mail(admin, tmp_path)
    admin.ok("CreateStore", name="Vault", encrypt="true")
    sealed_manifest = (data / "stores" / "Sealed" / "store.json").read_bytes()
    vault_key_id = read_manifest(data / "stores" / "Vault")["encryption"]["key_id"]

    renewal = admin.ok("RenewMasterKey")  # in the server, the store unlocked
    assert read_manifest(data / "stores" / "Vault")["encryption"]["key_id"] \
        == renewal["keyId"] != vault_key_id
    assert (data / "stores" / "Sealed" / "store.json").read_bytes() == sealed_manifest
    assert admin.stores()["Sealed"]["statisticsCount"] == len(digests)
    servers.stop(admin)

    res = mk_process(data, "call", "RenewMasterKey")  # a process of its own, the store locked
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Sealed" not in res.stderr
    assert read_manifest(data / "stores" / "Vault")["encryption"]["key_id"] \
        == json.loads(res.stdout)["keyId"]
    assert (data / "stores" / "Sealed" / "store.json").read_bytes() == sealed_manifest
    assert unlocked_digests(data, store_id) == digests


# -- handed to another data directory -----------------------------------------------------------
def test_passphrase_store_opens_in_another_data_directory(servers: Servers, tmp_path: Path) -> None:
    """Detached from the data directory that made it and attached to another one (whose master
    key never saw it), the store opens there with the passphrase alone, through the API and
    through the command line."""
    home, elsewhere, cli_dir = tmp_path / "home", tmp_path / "elsewhere", tmp_path / "cli"
    admin = servers.start(home)
    store_id, digests = sealed_with_mail(admin, tmp_path)
    admin.ok("CreateStore", name="Vault", encrypt="true", requestedState="current")
    admin.ok("DetachStore", id=store_id)
    servers.stop(admin)
    moved = tmp_path / "handed-over" / "Sealed"
    moved.parent.mkdir()
    shutil.move(home / "stores" / "Sealed", moved)

    there = servers.start(elsewhere)
    there.ok("CreateStore", name="Main", encrypt="true")
    attached = there.call("AttachStore", name="Sealed", type="FileSystemInternal",
                          databasePath=str(moved))
    assert attached["statusCode"] == "succeeded", attached["error"]
    new_id = attached["result"]["id"]
    assert there.failed("UnlockStore", id=new_id, passphrase=WRONG)["details"] \
        == "invalid_argument"
    shown = there.ok("UnlockStore", id=new_id, passphrase=PASSPHRASE)
    assert shown["statisticsCount"] == len(digests)
    assert len(there.ok("GetMessages", folder="alice/Sealed")) == len(digests)
    there.ok("DetachStore", id=new_id)
    servers.stop(there)
    assert (home / "conf" / "master.key").read_bytes() \
        != (elsewhere / "conf" / "master.key").read_bytes()

    res = mk(cli_dir, "store", "attach", str(moved))
    assert res.exit_code == 0, res.output
    assert unlocked_digests(cli_dir, 1) == digests


def test_guessing_a_passphrase_is_slowed_down(tmp_path: Path) -> None:
    """Five wrong passphrases in a row cost nothing but scrypt's time; then each next try must
    wait (1 s, then doubling): a try inside the wait is refused without even trying the
    passphrase, and says how long to wait; the right one afterwards unlocks and clears the
    count. The waits are counted on the key ring's clock, set here."""
    data = tmp_path / "data"
    res = mk(data, "store", "create", "Sealed", "--passphrase",
             input=f"{PASSPHRASE}\n{PASSPHRASE}\n")
    assert res.exit_code == 0, res.output
    now = [1000.0]
    with invoker(data) as inv:
        inv.services.keys.clock = lambda: now[0]

        def unlock(passphrase: str) -> Any:
            return inv.call("UnlockStore", SHELL, form={"id": "1", "passphrase": passphrase})

        for _ in range(5):
            with pytest.raises(InvalidArgument, match="does not open store Sealed"):
                unlock(WRONG)
        with pytest.raises(Conflict, match=r"try again in 1 s"):
            unlock(PASSPHRASE)  # refused inside the wait, even the right one
        now[0] += 1.0
        with pytest.raises(InvalidArgument):
            unlock(WRONG)  # the sixth wrong one: 2 s now
        now[0] += 1.5
        with pytest.raises(Conflict, match=r"try again in 1 s"):
            unlock(PASSPHRASE)
        now[0] += 0.5
        assert unlock(PASSPHRASE)["name"] == "Sealed"
        for _ in range(4):  # the count starts again
            with pytest.raises(InvalidArgument):
                unlock(WRONG)
        assert unlock(PASSPHRASE)["name"] == "Sealed"
    outcomes = [d["outcome"] for _a, action, d in audit_since(data) if action == "UnlockStore"]
    assert outcomes == ["failed"] * 8 + ["succeeded"] + ["failed"] * 4 + ["succeeded"]
