"""Calls the server runs in a process of their own (functions/isolated.py), through a real
`mailkeep serve`: VerifyStores answers over the Administration API what `mailkeep verify`
answers in the shell, with its progress and log lines on the usual status protocol and one
audit record; and when its process is killed, the call fails saying so while the server goes
on serving. CompactStore and RecoverStore work in a child process the same way."""

from __future__ import annotations

import json
import os
import signal
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from mailkeep.core.masterdb import MasterDB
from tests.apiclient import archive_with_messages
from tests.helpers import audit_since, free_port, last_audit_id, mk_ok, serving


def envelope(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = json.loads(r.content.decode("utf-8-sig"))
    return body


def client(base: str, data: Path) -> httpx.Client:
    tls = ssl.create_default_context(cafile=str(data / "tls" / "server.crt"))
    return httpx.Client(base_url=base, verify=tls, auth=("admin", "admin"), timeout=60)


def follow(c: httpx.Client, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The final status of a call, and every log line it gave on the way."""
    log = body.get("logOutput") or ""
    while body["statusCode"] == "running":
        body = envelope(c.post("/api/get-status", data={
            "token": body["token"], "lastKnownStatusVersion": str(body["statusVersion"]),
            "millisecondsTimeout": "5000"}))
        log += body.get("logOutput") or ""
    return body, log


@contextmanager
def master_held(data: Path) -> Iterator[None]:
    """A write transaction of the test's own on the master database, open until the block
    ends: a process that writes it meanwhile waits."""
    master = MasterDB.of(data)
    try:
        with master.tx():
            yield
    finally:
        master.close()


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def test_verify_stores_over_the_api_answers_what_the_shell_does(tmp_path: Path) -> None:
    data = archive_with_messages(tmp_path / "data", tmp_path / "mail", 300)
    shell = json.loads(mk_ok(data, "verify", "--json").stdout)
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port), port=port):
        before = last_audit_id(data)
        with client(base, data) as c:
            first = envelope(c.post("/api/invoke/VerifyStores",
                                    data={"includeIndexes": "true", "report": "true"}))
            final, log = follow(c, first)
    assert final["statusCode"] == "succeeded", final
    report = final["result"]
    assert report["stores"][0]["messages"] == 300 and report["stores"][0]["ok"] is True
    # what the shell said, but for what differs by the moment (signed heads, while written)
    for key in ("store", "name", "messages", "records", "ok", "problems"):
        assert report["stores"][0][key] == shell[0][key], key
    assert "300 messages verified, 0 problems" in log
    records = [r for r in audit_since(data, before) if r[1] == "VerifyStores"]
    assert len(records) == 1 and records[0][0] == "api:admin", records
    assert records[0][2]["outcome"] == "succeeded"


def test_a_verify_whose_process_is_killed_fails_and_the_server_goes_on(tmp_path: Path) -> None:
    """The call's process is held where it writes its audit record (a write transaction this
    test keeps open on the master database), then killed there."""
    data = archive_with_messages(tmp_path / "data", tmp_path / "mail", 20)
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    before = last_audit_id(data)
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port),
                 port=port) as served, client(base, data) as c:
        with master_held(data):
            body = envelope(c.post("/api/invoke/VerifyStores", data={"report": "true"}))
            assert body["statusCode"] == "running" and body["token"]
            log = body.get("logOutput") or ""
            while "20 messages verified" not in log:  # its work is done: now it waits
                body = envelope(c.post("/api/get-status", data={
                    "token": body["token"], "lastKnownStatusVersion": str(body["statusVersion"]),
                    "millisecondsTimeout": "5000"}))
                assert body["statusCode"] == "running", body
                log += body.get("logOutput") or ""
            forkservers = children(served.proc.pid)
            workers = [w for f in forkservers for w in children(f)]
            assert len(workers) == 1, (forkservers, workers)
            os.kill(workers[0], signal.SIGKILL)
        final, _log = follow(c, body)
        assert final["statusCode"] == "failed", final
        assert "ended without an answer" in final["error"]["message"]
        assert "-9" in final["error"]["message"]
        # the server itself goes on: it answers, and verifies again
        assert envelope(c.post("/api/invoke/GetServerInfo"))["statusCode"] == "succeeded"
        again, _ = follow(c, envelope(c.post("/api/invoke/VerifyStores")))
        assert again["statusCode"] == "succeeded", again
        # a call's process has ended by the time its outcome is known
        assert not any(children(f) for f in children(served.proc.pid))
    records = [r for r in audit_since(data, before) if r[1] == "VerifyStores"]
    assert [r[2]["outcome"] for r in records] == ["failed", "succeeded"], records
    assert "ended without an answer" in records[0][2]["error"]


def test_compaction_and_recovery_run_in_a_process_of_their_own(tmp_path: Path) -> None:
    """CompactStore and RecoverStore over the API: each works in a child process (the one
    the server has while the call is held at its audit record), and answers what it did;
    the store then holds what it should, as the shell sees it."""
    data = archive_with_messages(tmp_path / "data", tmp_path / "mail", 40)
    subjects = {m["id"]: m["subject"] for m in json.loads(
        mk_ok(data, "search", "--json", "--limit", "100", "message").stdout)["messages"]}
    kept = {s for i, s in subjects.items() if int(i.split(":")[1]) > 10}
    assert len(subjects) == 40 and len(kept) == 30
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    before = last_audit_id(data)
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port),
                 port=port) as served, client(base, data) as c:
        for number in range(1, 11):
            done = envelope(c.post("/api/invoke/DeleteMessage", data={
                "id": f"1:{number}", "reason": "a test of compaction"}))
            assert done["statusCode"] == "succeeded", done
        for name, args, finished in (("CompactStore", {"id": "1"}, "records kept"),
                                     ("RecoverStore", {"id": "1"}, "in the rebuilt catalog")):
            with master_held(data):
                body = envelope(c.post(f"/api/invoke/{name}", data=args))
                assert body["statusCode"] == "running" and body["token"], body
                log = body.get("logOutput") or ""
                while finished not in log:  # its work is done: now it waits for the master
                    body = envelope(c.post("/api/get-status", data={
                        "token": body["token"],
                        "lastKnownStatusVersion": str(body["statusVersion"]),
                        "millisecondsTimeout": "5000"}))
                    assert body["statusCode"] == "running", body
                    log += body.get("logOutput") or ""
                workers = [w for f in children(served.proc.pid) for w in children(f)]
                assert len(workers) == 1, (name, workers)
            final, _ = follow(c, body)
            assert final["statusCode"] == "succeeded", final
            if name == "CompactStore":
                assert final["result"]["messagesDropped"] == 10
                assert final["result"]["bytesAfter"] < final["result"]["bytesBefore"]
            else:
                assert final["result"]["messages"] == 30 and final["result"]["problems"] == []
        assert not any(children(f) for f in children(served.proc.pid))
        found = envelope(c.post("/api/invoke/GetMessages", data={"folder": "admin"}))
        assert found["statusCode"] == "succeeded", found
    report = json.loads(mk_ok(data, "verify", "--json").stdout)
    assert report[0]["messages"] == 30 and report[0]["ok"] is True
    assert {m["subject"] for m in json.loads(mk_ok(
        data, "search", "--json", "--limit", "100", "message").stdout)["messages"]} == kept
    records = [r[1] for r in audit_since(data, before)]
    assert records.count("CompactStore") == 1 and records.count("RecoverStore") == 1
