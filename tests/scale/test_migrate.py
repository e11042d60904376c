"""`mailkeep migrate`: an embedded installation (real mail of the corpus, two stores, one of
them encrypted, a user, a named connection with its password, signed tree heads) moved into a
real PostgreSQL and a real SeaweedFS, then read by another server that has only the master
key: the same messages byte for byte, the same search results, verify passing with the heads
signed before the move; a migration killed (SIGKILL) in the middle finishes when run again,
without moving what was done twice; what must not be migrated is refused and changes
nothing."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from mailkeep.core.keys import KeyRing
from mailkeep.core.objects import ObjectStore
from mailkeep.core.storage.store import Store
from tests.crashpoints import stopped_at
from tests.helpers import (
    CORPUS,
    catalog_rows,
    free_port,
    mk,
    mk_ok,
    mk_process,
    serving,
)
from tests.peers.seaweed import Seaweed

EMBEDDED = {"MAILKEEP_DATABASE": None, "MAILKEEP_OBJECTS": None}
_buckets = itertools.count()


@pytest.fixture
def bucket(seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket of the object store, reachable with this process's environment (and so
    by every command the test runs): its URL."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return seaweed.new_bucket(f"mk-migrate-{next(_buckets)}")


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedded data directory: the corpus's tricky mail in store Default, written
    messages in an encrypted second store (current), a user; heads signed."""
    monkeypatch.delenv("MAILKEEP_DATABASE", raising=False)  # (made and moved embedded)
    data = tmp_path / "data"
    mk_ok(data, "import", str(CORPUS / "tricky" / "cpython-test_email"),
          str(CORPUS / "tricky" / "gmime"))
    mk_ok(data, "store", "create", "vault", "--encrypt")
    mk_ok(data, "store", "state", "vault", "current")
    mail = tmp_path / "mail"
    mail.mkdir()
    for i in range(30):
        (mail / f"{i}.eml").write_bytes(
            f"From: clerk{i}@example.org\r\nSubject: ledger {i}\r\nDate: Tue, 0{1 + i % 9}"
            f" Mar 2022 09:00:00 +0000\r\n\r\nquarterly ledger entry {i}\r\n".encode())
    (mail / "sheet.eml").write_bytes(
        b"From: clerk@example.org\r\nSubject: ledger sheet\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain"
        b"\r\n\r\nsee the sheet\r\n--b\r\nContent-Type: text/csv\r\nContent-Disposition:"
        b" attachment; filename=q3.csv\r\n\r\nregion,total\r\nzanzibarquux,12\r\n--b--\r\n")
    mk_ok(data, "import", str(mail))
    mk_ok(data, "store", "create", "scratch")  # (id 3, never handed out again...)
    mk_ok(data, "store", "detach", "scratch")
    mk_ok(data, "call", "CreateUser", "userName=auditor", "privileges=login")
    mk_ok(data, "call", "CreateConnection", "name=relay", "type=smtp",
          "serverName=smtp.example.org", "userName=archiver", "password=Relay-Secret-7781")
    return data


def _search(data: Path, query: str, env: dict[str, str | None]) -> list[tuple[str, str]]:
    found = json.loads(mk_ok(data, "search", "--json", "--limit", "500", query, env=env
                             ).stdout)["messages"]
    return sorted((m["subject"], m["date"]) for m in found)


def _backends(pg_url: str, objects: str | None) -> dict[str, str | None]:
    return {"MAILKEEP_DATABASE": pg_url, "MAILKEEP_OBJECTS": objects}


def _other_server(installation: Path, tmp_path: Path) -> Path:
    """The data directory of another server: only the installation's master key."""
    node = tmp_path / "node2"
    (node / "conf").mkdir(parents=True)
    shutil.copy(installation / "conf" / "master.key", node / "conf" / "master.key")
    return node


def test_an_installation_moves_into_postgresql_and_objects_whole(
        installation: Path, pg_url: str, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = {q: _search(installation, q, EMBEDDED) for q in ("ledger", "the", "subject:test")}
    assert all(before.values())
    exported = tmp_path / "before"
    mk_ok(installation, "export", "--to", str(exported), env=EMBEDDED)

    result = mk(installation, "migrate", "--to", pg_url, "--objects", bucket, env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert "the same in PostgreSQL" in result.output and "read back and compared" in result.output

    node = _other_server(installation, tmp_path)
    moved = _backends(pg_url, bucket)
    for query, found in before.items():
        assert _search(node, query, moved) == found, query
    after = tmp_path / "after"
    mk_ok(node, "export", "--to", str(after), env=moved)
    assert sorted(p.read_bytes() for p in after.rglob("*.eml")) == \
        sorted(p.read_bytes() for p in exported.rglob("*.eml"))
    verified = mk(node, "verify", env=moved)  # the heads signed before the move, the audit log
    assert verified.exit_code == 0, verified.output
    assert "signed heads checked" in verified.output and "other keys" not in verified.output
    assert "auditor" in mk_ok(node, "user", "list", env=moved).stdout
    [relay] = json.loads(mk_ok(node, "call", "GetConnections", env=moved).stdout
                         )["connections"]  # conf/ of the data directory: every server's now
    assert relay["name"] == "relay" and relay["hasPassword"]
    # and it goes on: mail archived after the move, through the other server
    mail = tmp_path / "later"
    mail.mkdir()
    (mail / "1.eml").write_bytes(b"Subject: ledger after\r\n\r\nquarterly ledger later\r\n")
    mk_ok(node, "import", str(mail), env=moved)
    assert len(_search(node, "ledger", moved)) == len(before["ledger"]) + 1
    assert mk(node, "verify", "vault", env=moved).exit_code == 0
    # the text inside attachments came along (a catalog made from the segments has none)
    assert [s for s, _d in _search(node, "zanzibarquux", moved)] == ["ledger sheet"]
    # ids go on where the embedded installation left them (scratch had 3)
    made = json.loads(mk_ok(node, "call", "CreateStore", "name=later", env=moved).stdout)
    assert made["id"] == 4
    # every segment object is a part a catalog names (nothing moved twice, nothing left over)
    for store in ("Default", "vault"):
        store_id = json.loads(mk_ok(node, "store", "list", "--json", env=moved).stdout)
        [sid] = [s for s in store_id if s["name"] == store]
        uuid = json.loads((node / "stores" / _uuid_dir(node, sid["name"]) / "store.json"
                           ).read_text())["id"]
        names = sorted(ObjectStore(bucket).names(f"stores/{uuid}/segments/"))
        monkeypatch.setenv("MAILKEEP_DATABASE", pg_url)  # (the catalog's database)
        parts = catalog_rows(node / "stores" / uuid, "SELECT name FROM parts ORDER BY name")
        assert names == sorted(p[0] for p in parts)


def _uuid_dir(node: Path, name: str) -> str:
    for d in (node / "stores").iterdir():
        if (d / "store.json").exists() and json.loads((d / "store.json").read_text()
                                                      )["name"] == name:
            return d.name
    raise AssertionError(f"no directory of store {name} on {node}")


def test_a_migration_killed_midway_finishes_when_run_again(
        installation: Path, pg_url: str, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = _search(installation, "ledger OR the", EMBEDDED)
    args = ["--data", str(installation), "migrate", "--to", pg_url, "--objects", bucket]
    with stopped_at(args, "mailkeep.core.migrate:Migration._upload:2"):
        pass  # killed as the second store's objects were to go up (the first one is done)
    result = mk(installation, "migrate", "--to", pg_url, "--objects", bucket, env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert "store Default: done by an earlier run" in result.output
    assert "store vault: 31 messages" in result.output
    node = _other_server(installation, tmp_path)
    moved = _backends(pg_url, bucket)
    assert _search(node, "ledger OR the", moved) == before
    assert mk(node, "verify", env=moved).exit_code == 0
    # the data directory runs on them now (conf/backends.json): its own commands too
    assert _search(installation, "ledger OR the", EMBEDDED) == before
    kept = json.loads(mk_ok(installation, "backends", "show", "--json").stdout)
    assert kept["database"] == pg_url and kept["objects"] == bucket
    assert kept["accessKeyId"] and kept["hasSecretAccessKey"]  # the migration's own, sealed
    again = mk(installation, "migrate", "--to", pg_url, "--objects", bucket, env=EMBEDDED)
    assert again.exit_code != 0 and "on PostgreSQL already" in again.output
    mk_ok(installation, "backends", "clear")  # back to its embedded files...
    again = mk(installation, "migrate", "--to", pg_url, "--objects", bucket, env=EMBEDDED)
    assert again.exit_code != 0 and "its migration finished" in again.output  # ...not twice


def test_a_store_cut_off_while_its_objects_went_up_is_moved_again_from_the_start(
        installation: Path, pg_url: str, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--data", str(installation), "migrate", "--to", pg_url, "--objects", bucket]
    with stopped_at(args, "mailkeep.core.objects:ObjectStore.put_new:2:after"):
        pass  # store Default's segment is up, its manifest too; it is not marked done
    objects = ObjectStore(bucket)
    assert list(objects.names("stores/"))
    result = mk(installation, "migrate", "--to", pg_url, "--objects", bucket, env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert "done by an earlier run" not in result.output
    node = _other_server(installation, tmp_path)
    moved = _backends(pg_url, bucket)
    assert mk(node, "verify", env=moved).exit_code == 0
    monkeypatch.setenv("MAILKEEP_DATABASE", pg_url)  # (the catalogs' database)
    for d in (node / "stores").iterdir():
        names = sorted(objects.names(f"stores/{d.name}/segments/"))
        assert names == sorted(p[0] for p in catalog_rows(d, "SELECT name FROM parts"))
        assert len(list(objects.names(f"stores/{d.name}/manifest/"))) == 1


def test_with_the_database_alone_the_segments_stay_where_they_are(
        installation: Path, pg_url: str) -> None:
    before = _search(installation, "ledger OR the", EMBEDDED)
    result = mk(installation, "migrate", "--json", "--to", pg_url, env=EMBEDDED)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert {s["name"] for s in figures["stores"]} == {"Default", "vault"}
    assert [s["documents"] for s in figures["stores"] if s["name"] == "vault"] == [1]
    assert all(s["parts"] == 0 for s in figures["stores"])
    moved = _backends(pg_url, None)
    assert _search(installation, "ledger OR the", moved) == before
    result = mk(installation, "verify", env=moved)
    assert result.exit_code == 0, result.output


def test_what_must_not_be_migrated_is_refused(installation: Path, pg_url: str,
                                              postgres_server: object, tmp_path: Path) -> None:
    # a store in use (a server has it open to write)
    [default] = [p for p in (installation / "stores").iterdir() if p.name == "Default"]
    held = Store.open(default, KeyRing(installation), write=True)
    try:
        result = mk(installation, "migrate", "--to", pg_url, env=EMBEDDED)
    finally:
        held.close()
    assert result.exit_code != 0 and "open in another process" in result.output
    assert _tables_empty(installation, pg_url)
    # a database that holds another installation
    other = tmp_path / "other"
    mk_ok(other, "call", "CreateUser", "userName=someone", "privileges=login",
          env=_backends(pg_url, None))
    result = mk(installation, "migrate", "--to", pg_url, env=EMBEDDED)
    assert result.exit_code != 0
    assert "another installation" in result.output or "migrate into an empty" in result.output
    # an installation on PostgreSQL already
    result = mk(installation, "migrate", "--to", pg_url, env=_backends(pg_url, None))
    assert result.exit_code != 0 and "leave --database" in result.output
    # not a PostgreSQL URL, one libpq cannot read: no password in any message
    result = mk(installation, "migrate", "--to", "mysql://root:hunter2@db/x", env=EMBEDDED)
    assert result.exit_code == 2 and "PostgreSQL URL" in result.output
    assert "hunter2" not in result.output
    for url in ("postgresql://u:hunter2@[::1/db", "postgresql://u:hunter2%zz@127.0.0.1/db"):
        result = mk(installation, "migrate", "--to", url, env=EMBEDDED)
        assert result.exit_code == 5 and "hunter2" not in result.output, result.output
    short = mk(installation, "migrate", "--to", "postgresql://u:a@[::1/db", env=EMBEDDED)
    assert "cannot be reached" in short.output and ":a@" not in short.output  # (only it)


def _tables_empty(data: Path, pg_url: str) -> bool:
    from mailkeep.core.masterdb import MasterDB
    db = MasterDB(data / "mailkeep.db", url=pg_url)
    try:
        return all(db.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 0
                   for t in ("stores", "users", "audit"))
    finally:
        db.close()


def test_a_store_exports_back_to_a_directory_an_embedded_installation_attaches(
        installation: Path, pg_url: str, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = _search(installation, "ledger", EMBEDDED)
    mk_ok(installation, "migrate", "--to", pg_url, "--objects", bucket, env=EMBEDDED)
    node = _other_server(installation, tmp_path)
    moved = _backends(pg_url, bucket)
    mail = tmp_path / "later"
    mail.mkdir()
    (mail / "1.eml").write_bytes(b"Subject: ledger after\r\n\r\nquarterly ledger later\r\n")
    mk_ok(node, "import", str(mail), env=moved)
    out = tmp_path / "vault-copy"
    result = mk(node, "store", "export", "vault", str(out), env=moved)
    assert result.exit_code == 0, result.output
    assert "32 messages" in result.output
    assert {p.name for p in out.iterdir()} >= {"store.json", "segments", "catalog.sqlite",
                                               "tree.leaves", "tree.heads"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in [out, *out.rglob("*")])  # private
    again = mk(node, "store", "export", "vault", str(out), env=moved)
    assert again.exit_code != 0 and "exists" in again.output
    inside = mk(node, "store", "export", "vault", str(node / "conf" / "x"), env=moved)
    assert inside.exit_code != 0 and "inside the data directory" in inside.output
    # an embedded installation with the master key takes it, all of it, and verifies it
    home = tmp_path / "embedded"
    (home / "conf").mkdir(parents=True)
    shutil.copy(installation / "conf" / "master.key", home / "conf" / "master.key")
    mk_ok(home, "store", "attach", str(out), "--name", "vault", env=EMBEDDED)
    found = _search(home, "ledger", EMBEDDED)
    assert len(found) == len(before) + 1 == 32
    assert [s for s, _d in _search(home, "zanzibarquux", EMBEDDED)] == ["ledger sheet"]
    result = mk(home, "verify", "vault", env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert "signed heads checked" in result.output


def test_the_passphrase_of_a_sealed_store_is_asked_for(installation: Path, pg_url: str
                                                       ) -> None:
    secret = "Tide-Pool-Lantern-42"
    made = mk(installation, "store", "create", "sealed", "--passphrase",
              input=f"{secret}\n{secret}\n", env=EMBEDDED)
    assert made.exit_code == 0, made.output
    wrong = mk(installation, "migrate", "--to", pg_url, input="not-it\n", env=EMBEDDED)
    assert wrong.exit_code != 0 and "passphrase" in wrong.output.lower()
    assert _tables_empty(installation, pg_url)  # (refused before anything was copied)
    result = mk(installation, "migrate", "--to", pg_url, input=f"{secret}\n", env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert "store sealed: 0 messages" in result.output and secret not in result.output
    listed = json.loads(mk_ok(installation, "store", "list", "--json",
                              env=_backends(pg_url, None)).stdout)
    assert {s["name"] for s in listed} == {"Default", "vault", "sealed"}


def test_the_engines_kept_as_a_setting_seal_their_credentials(tmp_path: Path) -> None:
    from mailkeep.core import backend_conf
    data = tmp_path / "data"
    result = mk(data, "backends", "set", "--database",
                "postgresql://archiver:Url%40Secret%2F31@db.example.org:5433/mail", "--objects",
                "s3://archive/prod", "--endpoint", "https://s3.example.org",
                "--access-key-id", "AKIDEXAMPLE", input="S3-Secret-77\n", env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert "Secret%2F31" not in result.output and "S3-Secret-77" not in result.output
    stored = (data / "conf" / "backends.json").read_text()
    assert "Secret" not in stored
    shown = json.loads(mk_ok(data, "backends", "show", "--json", env=EMBEDDED).stdout)
    assert shown == {"database": "postgresql://archiver@db.example.org:5433/mail",
                     "objects": "s3://archive/prod", "endpoint": "https://s3.example.org",
                     "region": None, "accessKeyId": "AKIDEXAMPLE",
                     "hasDatabasePassword": True, "hasSecretAccessKey": True}
    environ: dict[str, str] = {}
    assert backend_conf.load_into(environ, data)  # what every command of it starts with
    assert environ == {"MAILKEEP_DATABASE": "postgresql://archiver@db.example.org:5433/mail",
                       "MAILKEEP_OBJECTS": "s3://archive/prod",
                       "AWS_ENDPOINT_URL": "https://s3.example.org",
                       "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "PGPASSWORD": "Url@Secret/31",
                       "AWS_SECRET_ACCESS_KEY": "S3-Secret-77"}
    given = {"MAILKEEP_DATABASE": "postgresql://other@db2/mail"}
    assert not backend_conf.load_into(given, data)  # the environment's own goes first
    # several hosts (libpq's failover), a password= of the query: kept, and sealed
    mk_ok(data, "backends", "set", "--database",
          "postgresql://archiver@db1:5432,db2:5433/mail?password=Query-Secret-5&sslmode=require",
          env=EMBEDDED)
    shown = json.loads(mk_ok(data, "backends", "show", "--json", env=EMBEDDED).stdout)
    assert shown["database"] == "postgresql://archiver@db1:5432,db2:5433/mail?sslmode=require"
    assert shown["hasDatabasePassword"]
    assert "Query-Secret-5" not in (data / "conf" / "backends.json").read_text()
    # a file that is not what it must be: a clear error on every command, `backends` mends it
    kept = data / "conf" / "backends.json"
    for bad in ('{"format": 1, "database": ""}', '{"format": 1, "database": "mysql://x"}',
                '{"format": 1, "database": "postgresql://h/d", "objects": 5}', "[" * 200_000,
                None):
        kept.unlink()
        if bad is None:
            kept.symlink_to(data / "nowhere.json")
        else:
            kept.write_text(bad)
        refused = mk(data, "store", "list", env=EMBEDDED)
        assert refused.exit_code != 0 and "backends.json" in refused.output, bad
        assert "Traceback" not in refused.output
    assert mk_ok(data, "backends", "clear", env=EMBEDDED).stdout.startswith("conf/backends")
    mk_ok(data, "backends", "set", "--database", "postgresql://archiver@db/mail", env=EMBEDDED)
    # a data directory with another master key cannot open them
    mk_ok(data, "backends", "set", "--database", "postgresql://archiver:pw@db/mail",
          env=EMBEDDED)
    (data / "conf" / "master.key").unlink()
    unreadable = mk(data, "store", "list", env=EMBEDDED)
    assert unreadable.exit_code != 0 and "another master key" in unreadable.output
    assert "Traceback" not in unreadable.output


def test_a_compacted_store_moves_as_it_is(installation: Path, pg_url: str) -> None:
    """Its segments were rewritten without two deleted messages: the catalog made from them
    knows them as the compacted segments they are, and the tree is the whole tree."""
    mk_ok(installation, "call", "DeleteMessage", "id=2:3", "reason=clean-up", env=EMBEDDED)
    mk_ok(installation, "call", "DeleteMessage", "id=2:7", "reason=clean-up", env=EMBEDDED)
    mk_ok(installation, "call", "CompactStore", "id=2", env=EMBEDDED)
    before = _search(installation, "ledger", EMBEDDED)
    result = mk(installation, "migrate", "--to", pg_url, env=EMBEDDED)
    assert result.exit_code == 0, result.output
    moved = _backends(pg_url, None)
    assert _search(installation, "ledger", moved) == before and len(before) == 29
    verified = mk(installation, "verify", "vault", env=moved)
    assert verified.exit_code == 0, verified.output


def test_a_run_with_objects_after_one_without_moves_every_segment(
        installation: Path, pg_url: str, bucket: str, tmp_path: Path) -> None:
    args = ["--data", str(installation), "migrate", "--to", pg_url]
    with stopped_at(args, "mailkeep.core.migrate:Migration._move_store:2"):
        pass  # Default is done, without objects
    result = mk(installation, "migrate", "--to", pg_url, "--objects", bucket, env=EMBEDDED)
    assert result.exit_code == 0, result.output
    assert "done by an earlier run" not in result.output  # (it had no objects then)
    node = _other_server(installation, tmp_path)
    moved = _backends(pg_url, bucket)
    assert len(_search(node, "ledger OR the", moved)) == \
        len(_search(installation, "ledger OR the", moved))
    verified = mk(node, "verify", env=moved)
    assert verified.exit_code == 0, verified.output


def test_a_server_and_a_migration_never_run_at_once(installation: Path, pg_url: str) -> None:
    port = free_port()
    with serving(installation, "--host", "127.0.0.1", "--port", str(port), "--no-tls",
                 port=port):
        result = mk(installation, "migrate", "--to", pg_url, env=EMBEDDED)
        assert result.exit_code != 0 and "a server is running" in result.output
    assert _tables_empty(installation, pg_url)
    args = ["--data", str(installation), "migrate", "--to", pg_url]
    with stopped_at(args, "mailkeep.core.migrate:Migration._copy_master:1"):
        started = mk_process(installation, "serve", "--host", "127.0.0.1", "--port",
                             str(free_port()), "--no-tls", timeout=60)
    assert started.returncode != 0 and "being migrated" in started.stderr, started


def test_a_half_migrated_database_is_no_other_directory_s(installation: Path, pg_url: str,
                                                         tmp_path: Path) -> None:
    args = ["--data", str(installation), "migrate", "--to", pg_url]
    with stopped_at(args, "mailkeep.core.migrate:Migration._move_store:1"):
        pass
    other = tmp_path / "other"  # another data directory with the same master key
    (other / "conf").mkdir(parents=True)
    shutil.copy(installation / "conf" / "master.key", other / "conf" / "master.key")
    mk_ok(other, "store", "list", env=EMBEDDED)
    result = mk(other, "migrate", "--to", pg_url, env=EMBEDDED)
    assert result.exit_code != 0 and "unfinished migration of another" in result.output
    result = mk(installation, "migrate", "--to", pg_url, env=EMBEDDED)  # its own goes on
    assert result.exit_code == 0, result.output
