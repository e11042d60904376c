"""mailkeep.client against the real app: in-process (async, ASGI transport) and over real TLS
with the server's certificate pinned by fingerprint."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

import httpx
import pytest

from mailkeep.client import (
    AdminApiError,
    AdminClient,
    AsyncAdminClient,
    AuthenticationError,
    ProcessFailed,
    Status,
)
from mailkeep.jobs.engine import Engine
from mailkeep.web.app import create_app
from tests.apiclient import archive_with_messages
from tests.helpers import CHEAP


def archive_with_mail(tmp_path: Path) -> Path:
    return archive_with_messages(tmp_path / "data", tmp_path / "mail", 25, "body {i}")


async def test_async_client_in_process(tmp_path: Path) -> None:
    data = archive_with_mail(tmp_path)
    engine = Engine(grace_ms=0)  # every call hands out a token: the client must follow it
    app = create_app(data, api_enabled=True, hasher=CHEAP, engine=engine)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    try:
        async with AsyncAdminClient("http://mailkeep", transport=transport) as api:
            info = await api.invoke("GetServerInfo")
            assert set(info) == {"version", "machineName"}
            seen: list[Status] = []
            assert await api.invoke("VerifyStore", progress=seen.append, id=1,
                                    includeIndexes=True) is None
            assert seen[-1].code == "succeeded"
            assert any(s.log and "25 messages verified" in s.log for s in seen)
            stores = await api.invoke("GetStores", includeSize=True)
            assert stores[0]["statisticsCount"] == 25
            with pytest.raises(ProcessFailed, match="Missing API argument id"):
                await api.invoke("RenameStore", name="x")
            names = {f["name"] for f in await api.functions()}
            assert "VerifyStore" in names
        async with AsyncAdminClient("http://mailkeep", password="wrong",
                                    transport=transport) as api:
            with pytest.raises(AuthenticationError):
                await api.invoke("GetServerInfo")
    finally:
        await engine.stop()


def test_sync_client_pins_the_certificate(server: tuple[str, Path]) -> None:
    base, data = server
    pem = (data / "tls" / "server.crt").read_text()
    fp = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
    with AdminClient(base, fingerprint=":".join(fp[i:i + 2] for i in range(0, 64, 2))) as api:
        assert api.invoke("GetStores")[0]["name"] == "Default"
        assert api.invoke("VerifyStore", id=1, includeIndexes=False) is None
    with pytest.raises(AdminApiError, match="pinned fingerprint"):
        AdminClient(base, fingerprint="00" * 32)
    with AdminClient(base, verify=str(data / "tls" / "server.crt")) as api:
        assert "version" in api.invoke("GetServerInfo")
