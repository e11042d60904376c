"""Failed logins are in the audit log, through the Administration API and the console: who
was tried, from where, which way; bounded by the lockouts (an attempt a lock refuses verifies
nothing and records nothing), and the lockout itself recorded once."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from mailkeep.core.masterdb import MasterDB
from tests.apiclient import api_client
from tests.helpers import mk_ok


def records(data: Path, action: str) -> list[Any]:
    master = MasterDB.of(data.resolve())
    try:
        return master.audit.find(action=action, limit=1000)[1]
    finally:
        master.close()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_failed_logins_are_audited_and_bounded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mk_ok(data, "call", "CreateUser", "userName=alice", "privileges=login",
          "password=Alice-pass-1")
    long_name = "=cmd|' /C calc'!A0" + "x" * 500
    with api_client(data) as api:
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("admin", "wrong")).status_code == 401
        answer = api.post("/mcapi/auth/login", json={"userName": "alice",
                                                     "password": "wrong"}).json()["result"]
        assert answer["status"] == "error"
        api.post("/api/invoke/GetServerInfo", headers=basic(long_name, "wrong"))
        failed = records(data, "login.failed")
        assert [(r.actor, r.details["via"], r.details["user"]) for r in reversed(failed)] == [
            ("api:admin", "api", "admin"), ("mcapi:alice", "mcapi", "alice"),
            (f"api:{long_name[:200]}", "api", long_name[:200])]
        assert all(r.details["address"] == "127.0.0.1" for r in failed)
        assert "wrong" not in str([r.details for r in failed])  # never the password
        # alice from this address: locked after five failures in all; later tries verify
        # nothing and record nothing
        for _ in range(10):
            api.post("/mcapi/auth/login", json={"userName": "alice", "password": "wrong"})
        alice = [r for r in records(data, "login.failed") if r.details["user"] == "alice"]
        assert len(alice) == 5
        [lock] = records(data, "login.lockout")
        assert lock.details == {"user": "alice", "address": "127.0.0.1"}
