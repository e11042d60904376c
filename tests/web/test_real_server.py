"""A real server: `mailkeep serve` over real TLS, driven by urllib the way the original
product's Python wrapper drives it (credentials only after the 401 challenge, utf-8-sig,
a get-status loop with lastKnownStatusVersion and millisecondsTimeout=1000)."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.helpers import free_port, mk, serving


def settings(data: Path, *args: str) -> Result:
    return mk(data, "settings", *args)


def test_serve_from_settings(tmp_path: Path) -> None:
    """`serve` without flags takes host, port and api.enabled from the settings; a flag
    overrides a setting for one run; bad values are refused and change nothing."""
    data = tmp_path / "data"
    port = free_port()
    for key, value in (("server.host", "127.0.0.1"), ("server.port", str(port)),
                       ("api.enabled", "yes")):
        r = settings(data, "set", key, value)
        assert r.exit_code == 0, r.stderr
    for key, value, error in (("server.port", "99999", "between 1 and 65535"),
                              ("api.enabled", "maybe", "true or false"),
                              ("tls.cert", "relative.pem", "absolute path"),
                              ("no.such", "1", "no setting 'no.such'")):
        r = settings(data, "set", key, value)
        assert r.exit_code != 0 and error in r.stderr + r.stdout, (r.stdout, r.stderr)
    listed = {s["key"]: s for s in json.loads(settings(data, "list", "--json").stdout)}
    assert listed["server.port"]["value"] == port and listed["server.port"]["set"] is True
    assert listed["api.enabled"]["value"] is True
    assert listed["tls.enabled"] == {**listed["tls.enabled"], "value": True, "set": False}
    base = f"https://127.0.0.1:{port}"
    with serving(data, port=port):
        info = post(opener(base, data), base + "/api/invoke/GetServerInfo")
        assert info["statusCode"] == "succeeded"
    with serving(data, "--disable-api", port=port):
        with pytest.raises(urllib.error.HTTPError) as err:
            post(opener(base, data), base + "/api/invoke/GetServerInfo")
        assert err.value.code == 403
        err.value.close()
    # A client that keeps its TLS connection open does not keep a stopping server up.
    with serving(data, port=port) as served:
        proc = served.proc
        tls = ssl.create_default_context(cafile=str(data / "tls" / "server.crt"))
        idle = tls.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                               server_hostname="127.0.0.1")
        idle.sendall(b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(12) == b"HTTP/1.1 404"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert time.monotonic() - started < 10
        idle.close()
    assert settings(data, "unset", "api.enabled").exit_code == 0
    assert settings(data, "get", "api.enabled").stdout.strip() == "false"


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
