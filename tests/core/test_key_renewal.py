"""RenewMasterKey on real mail, as a real `mailkeep` process: every encrypted store's key and
every sealed secret (a profile's password, the notification mail's, a named connection's) end
up under the new master key only, the replaced key stays in conf/ for what was wrapped under it
(a store detached before, a backup), and a kill -9 at any step of the renewal leaves a data
directory whose stores all open, whose messages all read back byte for byte, whose secrets
still log in, and whose next RenewMasterKey finishes or undoes the cut-off one.

The secrets are used for real: the profile logs in to a private Dovecot, the notification mail
and the named connection authenticate to an aiosmtpd that checks the password."""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import logging
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailkeep.core.archive import Archive
from mailkeep.core.crypto import MASTER_KEY_ENV, key_id
from mailkeep.core.keys import KeyRing
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.storage.store import read_manifest
from mailkeep.notify.config import NotificationConfig
from mailkeep.notify.connections import Connections
from mailkeep.profiles.store import Profiles
from tests.apiclient import api_client, fast_users, finish, invoke
from tests.crashpoints import stopped_at
from tests.helpers import TRICKY, audit_since, gunzip_years, mk, mk_ok, mk_process
from tests.notify.peers import PASSWORD as SMTP_PASSWORD
from tests.notify.peers import USER as SMTP_USER
from tests.notify.peers import Recorder, SmtpPeer, password_authenticator
from tests.sources.dovecot import PASSWORD as IMAP_PASSWORD
from tests.sources.dovecot import Dovecot

RETIRED = "master.key.retired-"
# The attached stores encrypted under the master key, in the order the renewal takes them.
ENCRYPTED = ("Lists", "Tricky", "Recent")
SECRETS = {"profile": IMAP_PASSWORD, "connection": SMTP_PASSWORD,
           "notification": SMTP_PASSWORD}
SHELL_ACTOR = f"cli:{getpass.getuser()}"


# -- reading a data directory -------------------------------------------------------------------
def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def read_key(path: Path) -> bytes:
    return base64.b64decode(path.read_bytes().strip(), validate=True)


def key_files(data: Path) -> list[str]:
    """The files of conf/ that hold a master key, or are on their way to."""
    return sorted(p.name for p in (data / "conf").iterdir() if "master.key" in p.name)


def conf_state(data: Path) -> set[str]:
    """key_files, a retired key's id and a temporary file's random part left out."""
    return {RETIRED if name.startswith(RETIRED) else re.sub(r"\.[0-9a-f]+\.tmp$", ".tmp", name)
            for name in key_files(data)}


def retired_keys(data: Path) -> dict[str, bytes]:
    return {p.name: read_key(p) for p in (data / "conf").glob(RETIRED + "*")}


def stored_digests(data: Path) -> dict[str, list[str]]:
    """Store name -> the sorted SHA-256 of every message it holds, read by a fresh archive (as
    the next process reads them); every attached store must open."""
    out: dict[str, list[str]] = {}
    with Archive(data) as archive:
        for rec, store in archive.readable_stores():
            numbers = [n for (n,) in store.catalog.conn.execute("SELECT number FROM entries")]
            out[rec.name] = sorted(sha(store.read(n)) for n in numbers)
        assert not archive.unavailable, archive.unavailable
    return out


def exported(data: Path, to: Path) -> list[str]:
    """The sorted SHA-256 of every message `mailkeep export`, a process of its own, writes
    out; it fails if a store cannot be opened or a message cannot be read."""
    res = mk_process(data, "export", "--to", str(to))
    assert res.returncode == 0, res.stdout + res.stderr
    return sorted(sha(p.read_bytes()) for p in to.rglob("*.eml"))


def verified(data: Path) -> None:
    res = mk_process(data, "verify")
    assert res.returncode == 0, res.stdout + res.stderr


def renewed(data: Path) -> tuple[dict[str, Any], str]:
    """`mailkeep call RenewMasterKey` as a process of its own: (its result, its log)."""
    res = mk_process(data, "call", "RenewMasterKey")
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout), res.stderr


def unsealed(data: Path) -> dict[str, str | None]:
    """The sealed secrets, opened as the next process opens them."""
    master = MasterDB.of(data)
    try:
        profiles = Profiles(master, data)
        [profile] = profiles.all()
        return {"profile": profiles.secrets(profile).get("password"),
                "connection": Connections(data).secret("relay")[1],
                "notification": NotificationConfig(data).full()[1]}
    finally:
        master.close()


def store_keys(data: Path, paths: dict[str, Path]) -> dict[str, bytes]:
    ring = KeyRing(data)
    keys = {name: ring.store_key(read_manifest(path)) for name, path in paths.items()}
    return {name: key for name, key in keys.items() if key is not None}


def renewals(data: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(actor, details) for actor, action, details in audit_since(data)
            if action == "RenewMasterKey"]


def assert_no_key_material(keys: list[bytes], *texts: str) -> None:
    """None of the keys appears in any of the texts, in base64, base64url or hex."""
    for key in keys:
        for spelled in (base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode(),
                        key.hex()):
            for text in texts:
                assert spelled not in text


def assert_consistent(data: Path, paths: dict[str, Path]) -> bytes:
    """After a renewal that completed: conf/ holds master.key and retired keys named after
    themselves, and every encrypted store is wrapped under master.key alone. The key."""
    names = key_files(data)
    assert "master.key" in names
    assert all(n == "master.key" or n.startswith(RETIRED) for n in names), names
    current = read_key(data / "conf" / "master.key")
    for name, key in retired_keys(data).items():
        assert name == RETIRED + key_id(key), f"{name} holds key {key_id(key)}"
        assert key != current
    for name in ENCRYPTED:
        enc = read_manifest(paths[name])["encryption"]
        assert enc["key_id"] == key_id(current) and "next" not in enc, (name, enc)
    return current


@contextmanager
def retired_keys_away(data: Path, aside: Path) -> Iterator[None]:
    """conf/ without the retired keys for a while, as if they had been thrown away."""
    aside.mkdir()
    moved = [p.rename(aside / p.name) for p in list((data / "conf").glob(RETIRED + "*"))]
    try:
        yield
    finally:
        for p in moved:
            p.rename(data / "conf" / p.name)


# -- the peers the secrets log in to ------------------------------------------------------------
@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpPeer]:
    """An aiosmtpd whose AUTH accepts SMTP_USER with SMTP_PASSWORD only."""
    with SmtpPeer(Recorder(), authenticator=password_authenticator,
                  auth_require_tls=False) as peer:
        yield peer


def seal_secrets(data: Path, dovecot: Dovecot, user: str, smtp: SmtpPeer) -> None:
    """An IMAP profile with the Dovecot user's password, a named SMTP connection and the
    notification mail, both with the aiosmtpd password; each set through `mailkeep call`."""
    mk_ok(data, "call", "CreateUser", "userName=alice", "privileges=login")
    props = {"name": "mailbox", "type": "imap", "userName": "alice", "host": "127.0.0.1",
             "port": dovecot.imap_port, "security": "none", "login": user,
             "password": IMAP_PASSWORD, "timeout": 10}
    mk_ok(data, "call", "CreateProfile", "properties=" + json.dumps(props))
    mk_ok(data, "call", "CreateConnection", "name=relay", "type=smtp", "serverName=127.0.0.1",
          f"port={smtp.port}", "authentication=login", f"userName={SMTP_USER}",
          f"password={SMTP_PASSWORD}", "timeOut=10")
    notification = {"serverName": "127.0.0.1", "port": smtp.port,
                    "fromMailAddress": "mailkeep@archive.test",
                    "toMailAddress": "admin@example.org", "authenticationType": "SMTP",
                    "userName": SMTP_USER, "smtpAuthenticationType": "login",
                    "password": SMTP_PASSWORD, "timeOut": 10}
    mk_ok(data, "call", "SetSmtpSettings", "settings=" + json.dumps(notification))


def notification_sent(data: Path, smtp: SmtpPeer) -> None:
    """TestSmtpSettings gets through the peer's password check."""
    before = len(smtp.handler.received)
    mk_ok(data, "call", "TestSmtpSettings")
    assert len(smtp.handler.received) == before + 1
    assert smtp.handler.received[-1].authenticated


def secrets_log_in(data: Path, smtp: SmtpPeer) -> None:
    """Each sealed secret is opened and accepted by its server: the profile's by Dovecot, the
    notification mail's and then the connection's by the aiosmtpd."""
    run = mk(data, "call", "RunProfile", "id=1")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["result"] == "succeeded", run.output
    notification_sent(data, smtp)
    mk_ok(data, "call", "SetSmtpSettings", 'settings={"connection": "relay"}')
    try:
        notification_sent(data, smtp)
    finally:
        mk_ok(data, "call", "SetSmtpSettings", 'settings={"authenticationType": "SMTP"}')


# -- the archive --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1996 of linux-mips (about 250 messages)."""
    root = tmp_path_factory.mktemp("renewal-mail")
    gunzip_years([1996], root / "lists.mbox")
    return root / "lists.mbox"


@dataclass
class Archived:
    data: Path
    paths: dict[str, Path]  # the attached stores
    digests: dict[str, list[str]]  # of the attached stores
    shelved: Path  # an encrypted store detached before any renewal
    shelved_digests: list[str]
    first_key: bytes  # the master key the stores were made under

    @property
    def everything(self) -> list[str]:
        return sorted(d for ds in self.digests.values() for d in ds)


def archived(data: Path, lists: Path, dovecot: Dovecot, user: str,
             smtp: SmtpPeer) -> Archived:
    """Stores Lists, Tricky and Recent (encrypted) and Plain (not), filled with real mail by
    `mailkeep import`; Shelved (encrypted) filled and detached; the three sealed secrets."""
    for name, source, flags in (("Lists", lists, ["--encrypt"]),
                                ("Tricky", TRICKY / "cpython-test_email", ["--encrypt"]),
                                ("Plain", TRICKY / "mime4j", []),
                                ("Shelved", TRICKY / "gmime", ["--encrypt"]),
                                ("Recent", TRICKY / "ruby-mail", ["--encrypt"])):
        mk_ok(data, "store", "create", name, *flags)
        mk_ok(data, "store", "state", name, "current")
        mk_ok(data, "import", "--workers", "1", "--user", "alice", "--folder", name,
              str(source))
    digests = stored_digests(data)
    assert all(digests.values()) and len(digests["Lists"]) > 200
    with Archive(data) as archive:
        paths = {rec.name: rec.path for rec in archive.stores()}
    shelved = paths.pop("Shelved")
    mk_ok(data, "store", "detach", "Shelved")
    seal_secrets(data, dovecot, user, smtp)
    assert unsealed(data) == SECRETS
    return Archived(data, paths, {k: v for k, v in digests.items() if k != "Shelved"},
                    shelved, digests["Shelved"], read_key(data / "conf" / "master.key"))


@pytest.fixture
def archive(data: Path, lists: Path, dovecot: Dovecot, user: str, smtp: SmtpPeer) -> Archived:
    return archived(data, lists, dovecot, user, smtp)


# -- a renewal that completes -------------------------------------------------------------------
def test_renewal_rewraps_every_store_key_and_secret(archive: Archived, tmp_path: Path,
                                                    smtp: SmtpPeer) -> None:
    """One RenewMasterKey: the stores open and read back exactly, under the new key alone; the
    old key is kept as master.key.retired-<its id>, and a backup made before opens with it; the
    secrets log in; one audit record; no key in any output or record."""
    data, paths = archive.data, archive.paths
    backup = tmp_path / "backup"
    mk_ok(data, "call", "CreateBackup", f"path={backup}")
    before_keys = store_keys(data, paths)
    plain_manifest = (paths["Plain"] / "store.json").read_bytes()

    result, log = renewed(data)

    new_key = assert_consistent(data, paths)
    assert result["keyId"] == key_id(new_key) != key_id(archive.first_key)
    assert key_files(data) == ["master.key", RETIRED + key_id(archive.first_key)]
    assert retired_keys(data) == {RETIRED + key_id(archive.first_key): archive.first_key}
    assert key_id(new_key) in log and key_id(archive.first_key) in log
    assert f"conf/{RETIRED}{key_id(archive.first_key)}" in log
    # The stores keep their own keys (nothing is encrypted again), now wrapped under the new
    # master key; the plain store is left as it was.
    assert store_keys(data, paths) == before_keys
    assert (paths["Plain"] / "store.json").read_bytes() == plain_manifest
    assert exported(data, tmp_path / "export") == archive.everything
    verified(data)
    assert unsealed(data) == SECRETS
    secrets_log_in(data, smtp)
    with retired_keys_away(data, tmp_path / "aside"):  # the new key alone opens everything
        assert exported(data, tmp_path / "export-new-key-only") == archive.everything
        assert unsealed(data) == SECRETS

    [(actor, details)] = renewals(data)
    assert actor == SHELL_ACTOR
    assert details["outcome"] == "succeeded" and details["keyId"] == key_id(new_key)
    all_keys = [archive.first_key, new_key, *before_keys.values()]
    assert_no_key_material(all_keys, json.dumps(result), log,
                           json.dumps(audit_since(data)))

    # A store lost after the renewal is restored from the backup made before it: it is wrapped
    # under the old key, which conf/ kept, and opens with it (and only with it).
    shutil.rmtree(paths["Lists"])
    shutil.copytree(backup / "stores" / "Lists", paths["Lists"])
    assert stored_digests(data) == archive.digests
    with retired_keys_away(data, tmp_path / "aside-again"):
        res = mk_process(data, "export", "--to", str(tmp_path / "export-without-old-key"))
        assert res.returncode != 0
        assert key_id(archive.first_key) in res.stderr and "Lists" in res.stderr
    # The store detached before the renewal is attached again, and opens with the old key.
    mk_ok(data, "store", "attach", str(archive.shelved))
    assert stored_digests(data)["Shelved"] == archive.shelved_digests

    # The next renewal wraps both anew: then the newest key alone opens everything.
    again, _log = renewed(data)
    assert again["keyId"] != result["keyId"]
    newest = assert_consistent(data, {**paths, "Shelved": archive.shelved})
    assert read_manifest(archive.shelved)["encryption"]["key_id"] == key_id(newest)
    assert set(retired_keys(data).values()) == {archive.first_key, new_key}
    with retired_keys_away(data, tmp_path / "aside-last"):
        assert stored_digests(data) == {**archive.digests, "Shelved": archive.shelved_digests}
        assert unsealed(data) == SECRETS
    assert len(renewals(data)) == 2


def test_renewal_through_the_administration_api(archive: Archived,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """RenewMasterKey as a process of the running server: it succeeds, the server goes on
    reading every store at once, one audit record names the API caller, and no key appears in
    the answers, the process log or the server's log."""
    data = archive.data
    users = fast_users(data)
    users.create("admin", ["admin", "login"], password="admin", role="administrator")
    users.master.close()
    caplog.set_level(logging.DEBUG)
    with api_client(data) as api:
        body, log = finish(api, invoke(api, "RenewMasterKey"))
        assert body["statusCode"] == "succeeded", body
        new_key = read_key(data / "conf" / "master.key")
        assert body["result"]["keyId"] == key_id(new_key)
        assert "The new master key is in force." in log
        stores, _ = finish(api, invoke(api, "GetStores", includeSize="true"))
        shown = {s["name"]: s for s in stores["result"]}
        assert {name: s["error"] for name, s in shown.items()} == dict.fromkeys(archive.paths)
        assert {name: s["statisticsCount"] for name, s in shown.items()} == {
            name: len(d) for name, d in archive.digests.items()}
        answers = json.dumps([body, stores]) + log
    assert_consistent(data, archive.paths)
    assert stored_digests(data) == archive.digests
    [(actor, details)] = renewals(data)
    assert actor == "api:admin" and details["outcome"] == "succeeded"
    keys = [archive.first_key, new_key, *store_keys(data, archive.paths).values()]
    assert_no_key_material(keys, answers, caplog.text, json.dumps(audit_since(data)))


def test_renewal_refused_when_the_key_comes_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the master key in MAILKEEP_MASTER_KEY mailkeep cannot replace it: RenewMasterKey
    fails saying so, changes no file, is audited as failed, and shows the key nowhere."""
    data, mail = tmp_path / "data", tmp_path / "mail"
    key = secrets.token_bytes(32)
    env = {MASTER_KEY_ENV: base64.b64encode(key).decode()}
    mk_ok(data, "store", "create", "Lists", "--encrypt", env=env)
    mail.mkdir()
    shutil.copytree(TRICKY / "cpython-test_email", mail / "cpython")
    mk_ok(data, "import", "--workers", "1", str(mail), env=env)
    mk_ok(data, "call", "CreateConnection", "name=relay", "type=smtp",
          "serverName=smtp.example.org", "authentication=login", "userName=relay",
          "password=relay-Secret-41", env=env)
    files = {p: p.read_bytes() for p in data.rglob("*")
             if p.is_file() and not p.name.startswith("mailkeep.db")}

    res = mk_process(data, "call", "RenewMasterKey", env=env)

    assert res.returncode == 4, res.stdout + res.stderr  # a conflict
    assert MASTER_KEY_ENV in res.stderr and res.stdout == ""
    assert {p: p.read_bytes() for p in data.rglob("*")
            if p.is_file() and not p.name.startswith("mailkeep.db")} == files
    assert not (data / "conf" / "master.key").exists()
    [(actor, details)] = renewals(data)
    assert actor == SHELL_ACTOR and details["outcome"] == "failed"
    assert MASTER_KEY_ENV in details["error"]
    # Everything still opens with the key from the environment.
    again = mk_process(data, "export", "--to", str(tmp_path / "export"), env=env)
    assert again.returncode == 0, again.stderr
    monkeypatch.setenv(MASTER_KEY_ENV, env[MASTER_KEY_ENV])
    assert Connections(data).secret("relay")[1] == "relay-Secret-41"
    store_key = KeyRing(data).store_key(read_manifest(data / "stores" / "Lists"))
    assert store_key is not None
    assert_no_key_material([key, store_key], res.stdout, res.stderr,
                           json.dumps(audit_since(data)))


# -- kill -9 during a renewal -------------------------------------------------------------------
@dataclass(frozen=True)
class Cut:
    point: str  # where the child stops and is killed (tests/crashpoints.py)
    conf: frozenset[str]  # the key files conf/ then holds
    wrapped_twice: int  # manifests then holding the new wrapping beside the old one
    committed: bool  # master.key is the new key


BEFORE = frozenset({"master.key"})
WRITING = frozenset({"master.key", ".master.key.new.tmp"})
MADE = frozenset({"master.key", "master.key.new"})
KEPT = frozenset({"master.key", "master.key.new", "master.key.old"})
IN_FORCE = frozenset({"master.key", "master.key.old"})
DONE = frozenset({"master.key", RETIRED})
RENEWAL = "mailkeep.core.renewal"
CUTS = {
    "before the new key is written": Cut(f"{RENEWAL}:write_key:1", BEFORE, 0, False),
    # The first os.replace of the process: write_key's, putting the new key file in place.
    "the new key written whole, not yet in place": Cut("mailkeep.core.crypto:os.replace:1",
                                                       WRITING, 0, False),
    "the new key written": Cut(f"{RENEWAL}:write_key:1:after", MADE, 0, False),
    "the first store wrapped under both keys": Cut(f"{RENEWAL}:_write:1:after", MADE, 1, False),
    "the last store wrapped under both keys": Cut(f"{RENEWAL}:_write:3:after", MADE, 3, False),
    "the old key kept, just before the commit": Cut(f"{RENEWAL}:fsync_dir:2:after", KEPT, 3,
                                                    False),
    "just after the commit": Cut(f"{RENEWAL}:fsync_dir:3", IN_FORCE, 3, True),
    "one store under the new key only": Cut(f"{RENEWAL}:_write:4:after", IN_FORCE, 2, True),
    "every store under the new key, no secret resealed":
        Cut("mailkeep.profiles.store:Profiles.reseal:1", IN_FORCE, 0, True),
    "the profile's secrets resealed, not the others":
        Cut("mailkeep.notify.connections:Connections.reseal:1", IN_FORCE, 0, True),
    "every secret resealed, the old key not yet retired":
        Cut("mailkeep.notify.config:NotificationConfig.reseal:1:after", IN_FORCE, 0, True),
    "the old key retired": Cut(f"{RENEWAL}:fsync_dir:4", DONE, 0, True),
}


@pytest.mark.slow
@pytest.mark.parametrize("where", list(CUTS))
def test_kill_during_renewal(where: str, archive: Archived, tmp_path: Path,
                             smtp: SmtpPeer) -> None:
    """A renewal killed at one of its steps: the next process opens every store and reads
    every message exactly, verify passes and the secrets log in; the next RenewMasterKey undoes
    (before the commit) or finishes (after it) the cut-off one and then completes, leaving
    master.key and retired keys only, under which everything opens, the store detached before
    any renewal included."""
    cut, data, paths = CUTS[where], archive.data, archive.paths
    with stopped_at(["--data", str(data), "call", "RenewMasterKey"], cut.point):
        pass  # killed right there

    # The state on disk is the one the point names.
    assert conf_state(data) == cut.conf
    in_force = read_key(data / "conf" / "master.key")
    assert (in_force != archive.first_key) == cut.committed
    assert sum("next" in read_manifest(paths[n])["encryption"] for n in ENCRYPTED) \
        == cut.wrapped_twice
    # The next process reads everything, and the secrets are usable.
    assert exported(data, tmp_path / "export-after-kill") == archive.everything
    verified(data)
    assert unsealed(data) == SECRETS
    secrets_log_in(data, smtp)

    result, log = renewed(data)

    current = assert_consistent(data, paths)
    assert result["keyId"] == key_id(current)
    kept = set(retired_keys(data).values())
    assert kept == ({archive.first_key, in_force} if cut.committed else {archive.first_key})
    undone = "An earlier renewal had stopped before it took effect: undone."
    finished = "An earlier renewal took effect but did not finish: finishing it first."
    assert (undone in log) == ("master.key.new" in cut.conf and not cut.committed), log
    assert (finished in log) == ("master.key.old" in cut.conf and cut.committed), log
    assert stored_digests(data) == archive.digests
    verified(data)
    with retired_keys_away(data, tmp_path / "aside"):  # the new key alone opens everything
        assert exported(data, tmp_path / "export-new-key-only") == archive.everything
        assert unsealed(data) == SECRETS
        secrets_log_in(data, smtp)
    # A store detached before any renewal still opens, with the first key conf/ kept.
    mk_ok(data, "store", "attach", str(archive.shelved))
    assert stored_digests(data)["Shelved"] == archive.shelved_digests
    # The killed call left no record; the one that completed left one.
    assert [d["outcome"] for _a, d in renewals(data)] == ["succeeded"]


def test_a_key_retired_earlier_survives_a_renewal_cut_off_before_its_commit(
        archive: Archived, tmp_path: Path) -> None:
    """A first renewal completes (its old key retired); a second is killed after it kept the
    current key as master.key.old but before its commit; a third completes. The key the first
    renewal retired must still be in conf/: the store detached before the first renewal opens
    with it."""
    data = archive.data
    renewed(data)
    assert set(retired_keys(data).values()) == {archive.first_key}
    with stopped_at(["--data", str(data), "call", "RenewMasterKey"],
                    CUTS["the old key kept, just before the commit"].point):
        pass
    assert conf_state(data) == KEPT | {RETIRED}

    renewed(data)

    attached = mk(data, "store", "attach", str(archive.shelved))
    assert attached.exit_code == 0, attached.output
    assert stored_digests(data)["Shelved"] == archive.shelved_digests
    assert retired_keys(data).get(RETIRED + key_id(archive.first_key)) == archive.first_key
    assert_consistent(data, archive.paths)
