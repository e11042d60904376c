"""The Prometheus metrics of a real `mailkeep serve` over real TLS: off until enabled, read only
from the networks and with the token their settings name, and counting what the server does
(mail journaled over SMTP, calls of the Administration API) as an operator would graph it."""

from __future__ import annotations

import json
import os
import re
import smtplib
import ssl
from pathlib import Path

import httpx

from tests.apiclient import postgres_rows
from tests.helpers import free_port, mk_ok, serving

SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+|NaN)$', re.M)


def scrape(base: str, data: Path, token: str | None = None) -> httpx.Response:
    tls = ssl.create_default_context(cafile=str(data / "tls" / "server.crt"))
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(base + "/metrics", verify=tls, headers=headers, timeout=30)


def samples(text: str) -> dict[str, float]:
    """name{labels} -> value of every sample of an exposition."""
    return {name + (labels or ""): float(value) for name, labels, value in SAMPLE.findall(text)}


def journal(i: int) -> bytes:
    return (f"From: app@example.org\r\nTo: u@example.org\r\nSubject: metrics {i}\r\n"
            f"Message-ID: <m{i}@example.org>\r\n\r\nline {i}\r\n").encode()


def test_metrics_are_off_by_default_and_let_in_only_whom_their_settings_name(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    mk_ok(data, "settings", "list")  # the data directory, with its TLS certificate to come
    with serving(data, "--host", "127.0.0.1", "--port", str(port), port=port):
        assert scrape(base, data).status_code == 404
        mk_ok(data, "settings", "set", "metrics.enabled", "true")  # read at each request
        got = scrape(base, data)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"].startswith("text/plain; version=0.0.4")
        figures = samples(got.text)
        assert figures["mailkeep_processes_running"] == 0
        assert figures["mailkeep_long_polls_waiting"] == 0
        assert figures["process_resident_memory_bytes"] > 10_000_000
        mk_ok(data, "settings", "set", "metrics.networks", "192.0.2.0/24,2001:db8::/32")
        refused = scrape(base, data)
        assert refused.status_code == 403 and "mailkeep_" not in refused.text
        mk_ok(data, "settings", "unset", "metrics.networks")
        mk_ok(data, "settings", "set", "metrics.token", "s3cret-token")
        for wrong in (None, "s3cret", "s3cret-token2", "S3CRET-TOKEN"):
            refused = scrape(base, data, wrong)
            assert refused.status_code == 403 and "mailkeep_" not in refused.text, wrong
        assert scrape(base, data, "s3cret-token").status_code == 200
    # the token is kept as its digest: nothing shows it again
    listed = mk_ok(data, "settings", "list", "--json").stdout
    assert "s3cret" not in listed
    assert {s["key"]: s for s in json.loads(listed)}["metrics.token"]["value"] == "***"
    if os.environ.get("MAILKEEP_DATABASE"):  # no such file: the rows in PostgreSQL
        assert "s3cret" not in postgres_rows(data)
    else:
        assert b"s3cret" not in (data / "mailkeep.db").read_bytes()


def test_metrics_count_the_mail_the_server_files_and_the_calls_it_answers(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    port, smtp_port = free_port(), free_port()
    base = f"https://127.0.0.1:{port}"
    mk_ok(data, "settings", "set", "metrics.enabled", "true")
    with serving(data, "--host", "127.0.0.1", "--port", str(port), "--smtp-port",
                 str(smtp_port), "--enable-api", port=port, smtp_port=smtp_port):
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
            for i in (1, 2, 3, 4, 5, 3):  # the second 3 is archived already
                smtp.sendmail("app@example.org", ["u@example.org"], journal(i))
        tls = ssl.create_default_context(cafile=str(data / "tls" / "server.crt"))
        info = httpx.post(base + "/api/invoke/GetServerInfo", verify=tls, timeout=30,
                          auth=("admin", "admin"))
        assert info.status_code == 200 and info.json()["statusCode"] == "succeeded"
        figures = samples(scrape(base, data).text)
    assert figures['mailkeep_messages_archived_total{source="journal"}'] == 5
    assert figures['mailkeep_messages_duplicate_total{source="journal"}'] == 1
    assert figures["mailkeep_writer_commit_seconds_count"] >= 1
    assert figures['mailkeep_store_messages{store="Default"}'] == 5
    assert figures['mailkeep_store_bytes{store="Default"}'] > 0
    assert figures["mailkeep_writer_queue"] == 0
    assert figures['mailkeep_call_seconds_count{function="GetServerInfo",via="api"}'] == 1
