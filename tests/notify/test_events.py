"""Notifications: events recorded by whoever meets trouble, mailed by the server grouped per
kind, retried when sending fails; checked against a real aiosmtpd."""

from __future__ import annotations

import email
import email.policy
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailkeep.core.archive import Archive
from mailkeep.core.masterdb import MasterDB
from mailkeep.notify.config import NotificationConfig
from mailkeep.notify.events import Notifier, record_event
from mailkeep.notify.mailer import Mailer
from mailkeep.notify.mailer import configured as mailer_configured
from mailkeep.notify.monitor import Health
from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, fast_users, finish
from tests.helpers import CHEAP, master_sql, mk

from .peers import Recorder, SmtpPeer


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def configure(data: Path, peer: SmtpPeer) -> None:
    NotificationConfig(data).set({
        "serverName": "127.0.0.1", "port": peer.port, "fromMailAddress": "mk@example.org",
        "toMailAddress": "ops@example.org", "mailSubject": "[mailkeep]", "timeOut": 5})


OPENED: list[MasterDB] = []


def master_of(data: Path) -> MasterDB:
    """The master database as a process of its own opens it (closed when the test ends)."""
    master = MasterDB.of(data.resolve())
    OPENED.append(master)
    return master


@pytest.fixture(autouse=True)
def _close_masters() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def notifier(data: Path, clock: Clock, interval: float = 900) -> Notifier:
    return Notifier(master_of(data), Mailer(data).notify, lambda: interval,
                    lambda: mailer_configured(data), clock=clock)


def subjects(recorder: Recorder) -> list[str]:
    return [str(email.message_from_bytes(r.content, policy=email.policy.default)["Subject"])
            for r in recorder.received]


def outbox(data: Path, sql: str) -> list[tuple[str]]:
    """The rows of a query of the outbox (a connection of its own, closed again)."""
    with master_sql(data) as conn:
        rows: list[tuple[str]] = conn.execute(sql).fetchall()
    return rows


def unsent(data: Path) -> int:
    with master_sql(data) as conn:
        count: int = conn.execute(
            "SELECT count(*) FROM notify_events WHERE sent_at IS NULL").fetchone()[0]
    return count


def test_grouped_per_kind(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Archive(data).close()
    recorder = Recorder()
    with SmtpPeer(recorder) as peer:
        configure(data, peer)
        clock = Clock()
        n = notifier(data, clock)
        for i in range(3):
            record_event(master_of(data), "auth.lockout", f"account 'x{i}' locked out")
        record_event(master_of(data), "disk.low", "only 10 MB free")
        assert n.run_once().mails == 2
        assert sorted(subjects(recorder)) == [
            "[mailkeep]: An account was locked out after failed logins (3 times)",
            "[mailkeep]: The disk is nearly full"]
        body = email.message_from_bytes(recorder.received[0].content,
                                        policy=email.policy.default).get_content()
        assert "x0" in body and "x2" in body
        # Within the interval, more of the same kind wait, then go out together.
        for i in range(2):
            record_event(master_of(data), "auth.lockout", f"account 'y{i}' locked out")
        clock.now += 60
        assert n.run_once().mails == 0
        clock.now += 900
        assert n.run_once().mails == 1
        assert subjects(recorder)[-1].endswith("(2 times)")
        assert unsent(data) == 0


def test_failed_sending_is_retried_with_backoff(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    Archive(data).close()
    recorder = Recorder()
    peer = SmtpPeer(recorder)
    configure(data, peer)  # configured, but the server is not running yet
    clock = Clock()
    n = notifier(data, clock)
    record_event(master_of(data), "process.failed", "VerifyStore failed")
    with caplog.at_level(logging.WARNING, logger="mailkeep.notify"):
        out = n.run_once()
    assert out.mails == 0 and out.failed and "connect" in out.failed
    assert "next try in 30 s" in caplog.text
    with peer:
        clock.now += 10
        assert n.run_once().mails == 0  # still waiting
        clock.now += 25
        assert n.run_once().mails == 1
    assert subjects(recorder) == ["[mailkeep]: A process failed"]


def test_recording_never_fails_the_operation(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    Archive(data).close()
    master, blocker = master_of(data), master_of(data)  # both opened before it is held
    with blocker.tx():  # another writer holds the database
        with caplog.at_level(logging.WARNING, logger="mailkeep.notify"):
            record_event(master, "import.failures", "x")  # waits 2 s, then gives up
    if os.environ.get("MAILKEEP_DATABASE"):  # in PostgreSQL an insert waits for no writer
        assert outbox(data, "SELECT kind FROM notify_events") == [("import.failures",)]
    else:
        assert "could not record" in caplog.text
    # Without any notification settings, events wait in the outbox; nothing breaks.
    n = notifier(data, Clock())
    record_event(master_of(data), "import.failures", "y")
    assert n.run_once().mails == 0


def test_cli_import_and_verify_record_events(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "ok.eml").write_bytes(b"Subject: fine\r\n\r\nbody\r\n")
    unreadable = mail / "gone.mbox"
    unreadable.symlink_to(tmp_path / "nowhere.mbox")  # listed, cannot be read
    res = mk(data, "import", str(mail))
    assert res.exit_code == 1, res.output
    kinds = [k for (k,) in outbox(data, "SELECT kind FROM notify_events")]
    assert kinds == ["import.failures"]


def test_health_records_new_trouble_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Archive(data) as archive:
        archive.current_store()
        rec = archive.create_store("Second")
    health = Health(data, master_of(data))
    assert health.check() == []
    (rec.path / "store.json").rename(rec.path / "store.moved")
    assert health.check() == ["store.unavailable"]
    assert health.check() == []  # still broken: not news
    (rec.path / "store.moved").rename(rec.path / "store.json")
    assert health.check() == []
    (rec.path / "store.json").rename(rec.path / "store.moved")
    assert health.check() == ["store.unavailable"]  # broken again: news again
    # A disk is "nearly full" below a share of free space; with a share above 100% this
    # disk is, whatever it holds (filling a real disk is not done in a test).
    full = Health(data, master_of(data), low_disk=1.01)
    assert "disk.low" in full.check() and "disk.low" not in full.check()
    texts = [t for (t,) in outbox(data, "SELECT text FROM notify_events WHERE kind = 'disk.low'")]
    assert len(texts) == 1 and "MB free on the disk of" in texts[0]


def test_server_mails_a_lockout(tmp_path: Path) -> None:
    """End to end: the running server notices five failed logins and mails about it."""
    data = tmp_path / "data"
    recorder = Recorder()
    with SmtpPeer(recorder) as peer:
        Archive(data).close()
        configure(data, peer)
        users = fast_users(data)
        users.ensure_initial_admin()
        users.create("ops", "login", password="right-pass", role="operator")
        users.master.close()
        app = create_app(data, api_enabled=True, hasher=CHEAP)
        with TestClient(app, client=LOCAL) as mc:
            for _ in range(5):
                mc.post("/mcapi/auth/login", json={"userName": "ops", "password": "wrong"})
            # Until the mail is here and the notifier has marked what it mailed as sent.
            deadline = time.monotonic() + 20
            while not (recorder.received and unsent(data) == 0) \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
    assert subjects(recorder) == ["[mailkeep]: An account was locked out after failed logins"]
    body = email.message_from_bytes(recorder.received[0].content,
                                    policy=email.policy.default).get_content()
    assert "'ops'" in body and "wrong" not in body
    assert unsent(data) == 0


def test_status_report(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mailkeep.functions.notification import period
    from tests.apiclient import archive_with_messages, invoke

    # Periods are computed in the zone asked for, weeks from Monday.
    now = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)  # a Wednesday; already Thursday in Tokyo
    start, end = period("today", "Asia/Tokyo", now)
    assert (start.isoformat(), end.isoformat()) == ("2026-03-05T00:00:00+09:00",
                                                    "2026-03-06T00:00:00+09:00")
    start, end = period("lastweek", "Europe/Berlin", now)
    assert (start.date().isoformat(), end.date().isoformat()) == ("2026-02-23", "2026-03-02")
    start, end = period("lastmonth", "Europe/Berlin", now)
    assert (start.date().isoformat(), end.date().isoformat()) == ("2026-02-01", "2026-03-01")
    # End to end: what was archived today, and what failed, mailed to the recipients asked.
    data = archive_with_messages(tmp_path / "data", tmp_path / "mail", 7)
    recorder = Recorder()
    with SmtpPeer(recorder) as peer:
        configure(data, peer)
        app = create_app(data, api_enabled=True, hasher=CHEAP)
        with TestClient(app, client=LOCAL) as api:
            failed, _log = finish(api, invoke(api, "VerifyStore", id="9",
                                              includeIndexes="true"))
            assert failed["statusCode"] == "failed"
            body = invoke(api, "SendStatusReport", timespan="today", timeZoneId="$Local",
                          recipients="boss@example.org, ops@example.org")
            assert body["statusCode"] == "succeeded", body
            bad = invoke(api, "SendStatusReport", timespan="today", timeZoneId="Mars/Base",
                         recipients="boss@example.org")
            assert "Unknown time zone" in bad["error"]["message"]
    # The server's notifier may also have mailed the failed VerifyStore to the notification
    # address meanwhile; the report is the one mail to the recipients asked for.
    [got] = [r for r in recorder.received if "boss@example.org" in r.rcpt_tos]
    assert got.rcpt_tos == ["boss@example.org", "ops@example.org"]
    text = email.message_from_bytes(got.content, policy=email.policy.default).get_content()
    assert "in all: 7 messages" in text
    assert "VerifyStore (admin) failed" in text
