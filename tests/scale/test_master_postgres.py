"""The master database in PostgreSQL, as an administrator meets it: `--database` (or
$MAILKEEP_DATABASE) on every command, a server and the command line sharing it, several
processes writing the audit chain at once, a PostgreSQL restart under a running process, and
the errors of a wrong or unreachable database (which never show the password).

The repositories themselves run against both engines through the `master` fixture
(tests/conftest.py); MAILKEEP_TEST_ENGINE=postgresql runs the whole suite on PostgreSQL."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import httpx
import pytest

from mailkeep.core.masterdb import MasterDB
from mailkeep.core.pgconn import Connection, DatabaseUnavailable
from tests.helpers import cli, free_port, master_sql, mk, mk_ok, serving
from tests.peers.postgres import Postgres


def test_a_url_that_is_not_postgresql_is_refused(data: Path) -> None:
    result = cli("--data", str(data), "--database", "mysql://root@db/mail", "user", "list")
    assert result.exit_code == 2
    assert "--database takes a PostgreSQL URL" in result.output
    assert not data.exists()


def test_an_unreachable_database_is_one_clear_line_without_the_password(data: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://archiver:Sup3r-s3cret@127.0.0.1:{port}/mail"
    result = cli("--data", str(data), "--database", url, "user", "list")
    assert result.exit_code == 5, result.output
    assert "PostgreSQL cannot be reached" in result.output
    assert "Sup3r-s3cret" not in result.output
    assert "Traceback" not in result.output


def test_the_command_line_and_a_server_share_the_database(
        data: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the command line changes, the server answers with at once, and the other way
    round; the data directory gets no SQLite master database."""
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(b"Subject: hello\r\n\r\nfirst\r\n")
    result = cli("--data", str(data), "--database", pg_url, "import", str(mail))
    assert result.exit_code == 0, result.output
    result = cli("--data", str(data), "--database", pg_url, "user", "password", "admin",
                 input="N3w-secret-pw\nN3w-secret-pw\n")
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("MAILKEEP_DATABASE", pg_url)  # the server: through the environment
    port = free_port()
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port), port=port):
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False,
                          auth=("admin", "N3w-secret-pw")) as api:
            answer = api.post("/api/invoke/CreateUser",
                              data={"userName": "carol", "privileges": "login",
                                    "password": "Carol-pw-123"}).json()
            while answer["statusCode"] == "running":  # (the token, followed)
                answer = api.post("/api/get-status", data={
                    "token": answer["token"], "millisecondsTimeout": 1000,
                    "lastKnownStatusVersion": answer["statusVersion"]}).json()
            assert answer["statusCode"] == "succeeded", answer
            stores = api.post("/api/invoke/GetStores").json()["result"]
            assert [s["name"] for s in stores] == [json.loads(
                mk_ok(data, "store", "list", "--json").stdout)[0]["name"]]
    listed = mk_ok(data, "user", "list").stdout.split()
    assert "carol" in listed
    assert not (data / "mailkeep.db").exists()
    with master_sql(data) as db:
        actions = [r[0] for r in db.execute("SELECT action FROM audit ORDER BY id")]
    assert "import" in actions and "CreateUser" in actions


def _writer(url: str, n: int) -> None:
    master = MasterDB(Path("unused"), url=url)
    try:
        for i in range(n):
            master.audit.write(f"cli:w{n}", "test.write", i=i)
    finally:
        master.close()


def test_writers_in_several_processes_keep_one_chain(pg_url: str, data: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each record links to the one before it, whichever process wrote it: the write
    transactions take the master database's lock, as BEGIN IMMEDIATE does in SQLite."""
    procs = [multiprocessing.get_context("spawn").Process(target=_writer, args=(pg_url, n))
             for n in (150, 151, 152)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    monkeypatch.setenv("MAILKEEP_DATABASE", pg_url)
    report = json.loads(mk_ok(data, "audit", "verify", "--json").stdout)
    assert report["ok"], report["problems"][:3]
    assert report["records"] == 453


def test_a_restart_of_postgresql_fails_one_call_and_the_next_connects_again(
        tmp_path: Path) -> None:
    server = Postgres().start()
    try:
        url = server.new_database()
        master = MasterDB(tmp_path / "unused", url=url)
        master.settings.put("probe", "1")
        server.restart()
        with pytest.raises(DatabaseUnavailable):
            master.settings.get("probe")
        assert master.settings.get("probe") == "1"  # a new connection
        master.settings.put("probe", "2")
        master.close()
    finally:
        server.stop()


def test_the_tables_are_made_once_by_servers_opening_a_new_database_at_once(
        pg_url: str) -> None:
    """Several processes opening a new database at once: one makes the tables, the others
    wait for its lock and find them made."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(pg_url, 1)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    conn = Connection(pg_url)
    try:
        assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 4
        assert conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]
    finally:
        conn.close()


def test_a_database_of_a_later_release_is_refused_and_left_alone(pg_url: str,
                                                                 data: Path) -> None:
    MasterDB(data, url=pg_url).close()
    conn = Connection(pg_url)
    try:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'version'")
    finally:
        conn.close()
    result = mk(data, "--database", pg_url, "user", "list")
    assert result.exit_code != 0
    assert "later release" in result.output


def test_the_database_notices_a_lost_server_within_seconds(pg_url: str) -> None:
    """A server whose machine is lost never closes its connections: the database's side of
    each one sends TCP keepalives after 10 s of silence (3 probes, 3 s apart) and gives up on
    data not acknowledged for 15 s, ending the session and its locks; the server's side
    checks the database the same way. (Dropping a machine off the network cannot be done on
    this one: what is checked is that every connection asks for it.)"""
    conn = Connection(pg_url)
    try:
        shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in (
            "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
            "tcp_user_timeout")}
        sockets = conn.execute("SELECT client_addr IS NOT NULL FROM pg_stat_activity WHERE"
                               " pid = pg_backend_pid()").fetchone()[0]
    finally:
        conn.close()
    assert sockets  # (over TCP, as between machines: a Unix socket has no keepalives)
    assert shown == {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "3",
                     "tcp_keepalives_count": "3", "tcp_user_timeout": "15000"}, shown
