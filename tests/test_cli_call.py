"""`mailkeep call`: in-process against a data directory, and remote against a real server."""

from __future__ import annotations

import hashlib
import json
import ssl
from pathlib import Path

import pytest

from mailkeep.functions import REGISTRY
from tests.helpers import cli, free_port, mk, mk_ok


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    mk_ok(d, "store", "create", "main")
    return d


# -- in-process ------------------------------------------------------------------------------
def test_local_server_info(data: Path) -> None:
    res = mk(data, "call", "GetServerInfo")
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)) == {"version", "machineName"}


def test_local_stores_with_size(data: Path) -> None:
    res = mk(data, "call", "GetStores", "includeSize=true")
    assert res.exit_code == 0, res.output
    stores = json.loads(res.stdout)
    assert [s["name"] for s in stores] == ["main"]


def test_local_list(data: Path) -> None:
    for args in (["call", "list"], ["call", "--list", "x"]):
        res = mk(data, *args)
        assert res.exit_code == 0, res.output
        names = [line.split()[0] for line in res.stdout.splitlines()]
        assert names == [f.name for f in REGISTRY]
    assert "GetStores includeSize=?bool" in res.stdout


@pytest.mark.parametrize("args, message", [
    (["GetStores", "includeSize=maybe"], "true or false is expected"),
    (["GetStores", "nonsense=1"], "Unknown API argument nonsense"),
    (["VerifyStore"], "Missing API argument id"),
])
def test_local_bad_argument(data: Path, args: list[str], message: str) -> None:
    res = mk(data, "call", *args)
    assert res.exit_code == 2 and message in res.stderr, (res.exit_code, res.stderr)
    assert res.stdout == ""


def test_local_usage_errors(data: Path) -> None:
    res = mk(data, "call", "NoSuchFunction")
    assert res.exit_code == 2 and "unknown function NoSuchFunction" in res.stderr
    res = mk(data, "call", "GetStores", "includeSize")
    assert res.exit_code == 2 and "name=value" in res.stderr
    res = mk(data, "call", "GetStores", "--insecure")
    assert res.exit_code == 2 and "--url" in res.stderr


def test_help_documents_exit_codes() -> None:
    res = cli("call", "--help")
    assert res.exit_code == 0
    for line in ("0  the function succeeded", "1  the function failed", "2  bad usage",
                 "3  unknown or expired token", "5  cannot connect", "7  authentication"):
        assert line in res.stdout, line


# -- remote ----------------------------------------------------------------------------------
def fingerprint_of(data: Path) -> str:
    pem = (data / "tls" / "server.crt").read_text()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def test_remote(server: tuple[str, Path]) -> None:
    base, data = server
    cafile = str(data / "tls" / "server.crt")
    res = cli("call", "--url", base, "--password", "admin", "--cafile", cafile, "GetServerInfo")
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)) == {"version", "machineName"}

    fp = fingerprint_of(data)
    colons = ":".join(fp[i:i + 2] for i in range(0, len(fp), 2)).upper()
    res = cli("call", "--url", base, "--fingerprint", colons, "GetStores", "includeSize=true",
              env={"MAILKEEP_PASSWORD": "admin"})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["statisticsCount"] == 30

    # long-running, followed to its end, log lines on stderr as they arrive
    res = cli("call", "--url", base, "--password", "admin", "--fingerprint", fp,
              "VerifyStore", "id=1", "includeIndexes=true")
    assert res.exit_code == 0, res.output
    assert "30 messages verified" in res.stderr
    assert res.stdout == ""

    # the server parses the strings: its message, exit 1
    res = cli("call", "--url", base, "--password", "admin", "--cafile", cafile,
              "GetStores", "includeSize=maybe")
    assert res.exit_code == 1 and "true or false is expected" in res.stderr, res.output
    res = cli("call", "--url", base, "--password", "admin", "--cafile", cafile, "NoSuchThing")
    assert res.exit_code == 1 and "NoSuchThing" in res.stderr, res.output
    res = cli("call", "--url", base, "--password", "admin", "--cafile", cafile, "list")
    assert res.exit_code == 0 and "VerifyStore id=number" in res.stdout, res.output

    # authentication refused: exit 7, the password nowhere
    secret = "Wr0ng-Secret-Pa55"
    for args in (["--password", secret], []):
        res = cli("call", "--url", base, "--cafile", cafile, *args, "GetServerInfo",
                  env={"MAILKEEP_PASSWORD": secret})
        assert res.exit_code == 7, res.output
        assert "authentication refused" in res.stderr
        assert secret not in res.stdout + res.stderr

    # certificate problems: exit 5
    res = cli("call", "--url", base, "--password", "admin", "--fingerprint", "00" * 32,
              "GetServerInfo")
    assert res.exit_code == 5 and "fingerprint" in res.stderr, res.output
    res = cli("call", "--url", base, "--password", "admin", "GetServerInfo")
    assert res.exit_code == 5 and "cannot connect" in res.stderr, res.output


def test_remote_cannot_connect_and_usage(tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    res = cli("call", "--url", url, "--password", "x", "--insecure", "GetServerInfo")
    assert res.exit_code == 5 and "cannot connect" in res.stderr, res.output
    res = cli("call", "--url", url, "--password", "x", "--insecure", "--fingerprint", "ab",
              "GetServerInfo")
    assert res.exit_code == 2, res.output
    res = cli("call", "--url", url, "GetServerInfo")  # no password, no terminal
    assert res.exit_code == 2 and "MAILKEEP_PASSWORD" in res.stderr, res.output
