"""The configuration every server of an installation on PostgreSQL must share: the
notification mail's settings, the named connections and the directory service's settings are
rows of the master database (core/confdocs.py), not files of one server's conf/. Set through
one server, they are what every other server reads; their secrets stay sealed under the master
key there, and no server writes them to its own disk."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import MAILKEEP, call_function, clean_env, master_sql, mk_ok

SECRET = "Relay-Secret-7781"
BIND = "Bind-Secret-9920"


@pytest.fixture
def nodes(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.setenv("MAILKEEP_DATABASE", pg_url)
    first, second = tmp_path / "node1", tmp_path / "node2"
    mk_ok(first, "store", "list")  # the installation (its master key)
    (second / "conf").mkdir(parents=True)
    shutil.copy(first / "conf" / "master.key", second / "conf" / "master.key")
    return [first, second]


def test_what_one_server_configures_every_server_reads(nodes: list[Path]) -> None:
    first, second = nodes
    call_function(first, "CreateConnection", name="relay", type="smtp",
                  serverName="smtp.example.org", port="587", userName="archiver",
                  password=SECRET)
    call_function(first, "SetSmtpSettings", settings=json.dumps({
        "connection": "relay", "fromMailAddress": "mailkeep@example.org",
        "toMailAddress": "admin@example.org", "mailSubject": "from the first server"}))
    call_function(first, "SetDirectoryServicesConfiguration", config=json.dumps({
        "type": "ldap", "server": "ldap.example.org", "baseDn": "dc=example,dc=org",
        "bindDn": "cn=mailkeep,dc=example,dc=org", "bindPassword": BIND}))

    [relay] = call_function(second, "GetConnections")["connections"]
    assert relay["name"] == "relay" and relay["hasPassword"] and "password" not in relay
    assert call_function(second, "GetSmtpSettings")["mailSubject"] == "from the first server"
    directory = call_function(second, "GetDirectoryServicesConfiguration")
    assert directory["server"] == "ldap.example.org" and directory["hasBindPassword"]
    # changed on the second, seen on the first
    call_function(second, "UpdateConnection", name="relay", userName="archive-bot")
    assert call_function(first, "GetConnection", name="relay")["userName"] == "archive-bot"

    for node in nodes:
        assert not [p.name for p in (node / "conf").iterdir() if p.suffix == ".json"]
    with master_sql(first) as db:
        rows = dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'conf.%'"
                               ).fetchall())
    assert set(rows) == {"conf.connections.json", "conf.notification.json",
                         "conf.directory.json"}
    assert not any(SECRET in v or BIND in v for v in rows.values())  # sealed


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_changes_made_at_once_are_all_kept(engine: str, tmp_path: Path, pg_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight processes create a connection each at the same moment (two administrators, or
    two servers): each change reads the document and writes it whole, one at a time."""
    if engine == "sqlite":
        monkeypatch.delenv("MAILKEEP_DATABASE", raising=False)
    else:
        monkeypatch.setenv("MAILKEEP_DATABASE", pg_url)
    data = tmp_path / "data"
    mk_ok(data, "store", "list")
    procs = [subprocess.Popen(
        [*MAILKEEP, "--data", str(data), "call", "CreateConnection", f"name=relay{i}",
         "type=smtp", "serverName=smtp.example.org"], env=clean_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(8)]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    names = {c["name"] for c in call_function(data, "GetConnections")["connections"]}
    assert names == {f"relay{i}" for i in range(8)}
