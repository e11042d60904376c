"""A real server: `mailkeep serve` over real TLS, driven by urllib the way the original
product's Python wrapper drives it (credentials only after the 401 challenge, utf-8-sig,
a get-status loop with lastKnownStatusVersion and millisecondsTimeout=1000)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ENTRY = Path(sys.executable).with_name("mailkeep")
MAILKEEP = [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "mailkeep"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    data, mail = tmp_path / "data", tmp_path / "mail"
    mail.mkdir()
    for i in range(30):
        (mail / f"{i}.eml").write_bytes(f"Subject: s{i}\r\n\r\nbody {i}\r\n".encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILKEEP_")}
    subprocess.run([*MAILKEEP, "--data", str(data), "import", str(mail)], check=True,
                   capture_output=True, env=env)
    port = free_port()
    proc = subprocess.Popen([*MAILKEEP, "--data", str(data), "serve", "--enable-api",
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("the server did not start listening")
        yield f"https://127.0.0.1:{port}", data
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        assert b"SHA-256 fingerprint" in out


def opener(base: str, data: Path) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=str(data / "tls" / "server.crt"))
    auth = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    auth.add_password(None, base, "admin", "admin")
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                       urllib.request.HTTPBasicAuthHandler(auth))


def post(op: urllib.request.OpenerDirector, url: str, **args: Any) -> dict[str, Any]:
    body = urllib.parse.urlencode(args).encode()
    with op.open(urllib.request.Request(url, data=body, method="POST"), timeout=30) as resp:
        result: dict[str, Any] = json.loads(resp.read().decode("utf-8-sig"))
        return result


def test_wrapper_style_client(server: tuple[str, Path]) -> None:
    base, data = server
    op = opener(base, data)
    info = post(op, f"{base}/api/invoke/GetServerInfo")
    assert info["statusCode"] == "succeeded" and "version" in info["result"]
    with op.open(f"{base}/api/get-metadata", timeout=30) as resp:
        names = {f["name"] for f in json.loads(resp.read().decode("utf-8-sig"))}
    assert {"GetServerInfo", "VerifyStore", "GetStores"} <= names
    status = post(op, f"{base}/api/invoke/VerifyStore", id=1, includeIndexes="true")
    log = status["logOutput"] or ""
    while status["statusCode"] == "running":
        status = post(op, f"{base}/api/get-status", token=status["token"],
                      lastKnownStatusVersion=status["statusVersion"], millisecondsTimeout=1000)
        log += status["logOutput"] or ""
    assert status["statusCode"] == "succeeded", status
    assert "30 messages verified" in log
