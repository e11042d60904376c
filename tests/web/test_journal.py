"""The SMTP journal receiver of a real `mailkeep serve`: messages sent with smtplib are in the
archive byte for byte with their envelope, and a kill -9 of the server while clients are
sending loses no message that got its 250."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import smtplib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailkeep.core.archive import Archive
from tests.helpers import audit_since, free_port, mk, mk_ok, mk_process, serving


@contextmanager
def server(data: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`mailkeep serve` with its SMTP receiver on a free port, once that answers (a test may
    kill it: how it ends is not checked here)."""
    smtp_port = free_port()
    with serving(data, "--host", "127.0.0.1", "--port", str(free_port()),
                 "--smtp-port", str(smtp_port), *flags, smtp_port=smtp_port,
                 clean_exit=False) as served:
        yield served.proc, smtp_port


def message(i: int) -> bytes:
    return (f"From: app@example.org\r\nTo: u{i % 7}@example.org\r\nSubject: journal {i}\r\n"
            f"Message-ID: <j{i}@example.org>\r\n\r\n" + f"line {i}\r\n" * 40).encode()


def archived(data: Path) -> dict[str, tuple[str, dict[str, object] | None]]:
    """sha256 -> (folder, envelope) of every message in the archive."""
    out = {}
    with Archive(data) as archive:
        for _rec, store in archive.readable_stores():
            for (number,) in store.catalog.conn.execute("SELECT number FROM entries"):
                hit = store.catalog.entry(number)
                assert hit is not None
                out[hashlib.sha256(store.read(number)).hexdigest()] = (
                    f"{hit.owner}/{hit.folder}", store.catalog.envelope(number))
    return out


def test_journal_keeps_bytes_and_envelope(tmp_path: Path) -> None:
    data = tmp_path / "data"
    raw = message(1).replace(b"line 1\r\n", b".leading dot\r\nline 1\r\n", 1)
    with server(data) as (_proc, port), smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=ssl._create_unverified_context())  # the server's own cert
        client.ehlo()
        refused = client.sendmail("mta@example.org", ["a@example.org", "b@example.org"], raw)
        assert refused == {}
        code, text = client.noop()
        assert code == 250
        # The same message again: a duplicate, still 250 (a retry after a lost answer).
        assert client.sendmail("mta@example.org", ["a@example.org"], raw) == {}
        # A line far over RFC 5321's limit, as real mail has: kept as it is.
        long_line = message(3) + b"x" * 5000 + b"\r\n"
        assert client.sendmail("mta@example.org", ["c@example.org"], long_line) == {}
    got = archived(data)
    assert got == {
        hashlib.sha256(raw).hexdigest(): ("journal/Inbox", {
            "from": "mta@example.org", "to": ["a@example.org", "b@example.org"]}),
        hashlib.sha256(long_line).hexdigest(): ("journal/Inbox", {
            "from": "mta@example.org", "to": ["c@example.org"]})}
    # The envelope is in the segments: a catalog rebuilt from them, and compacted, has it.
    for args in (["recover", "Default"], ["call", "CompactStore", "id=1"]):
        mk_ok(data, *args)
        assert archived(data) == got


def test_clients_outside_the_allowed_networks_are_refused(tmp_path: Path) -> None:
    """A client outside smtp.networks is refused at its greeting (554) and the connection
    closed: it holds none of the sessions the allowed MTAs need."""
    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "smtp.networks", "192.0.2.0/24")
    with server(data) as (_proc, port):
        for _ in range(60):  # more than smtp.max_sessions_per_client: none of them is held
            with pytest.raises(smtplib.SMTPConnectError) as err:
                smtplib.SMTP("127.0.0.1", port, timeout=10)
            assert err.value.smtp_code == 554
            assert err.value.smtp_error == b"5.7.1 This client may not journal to mailkeep"
    assert archived(data) == {}


def test_kill_while_journaling_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acknowledged: set[str] = set()
    lock = threading.Lock()
    enough = threading.Event()  # 150 messages have got their 250
    with server(data) as (proc, port):
        stop = threading.Event()

        def client(k: int) -> None:
            i = k * 100_000
            while not stop.is_set():
                raw = message(i)
                i += 1
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                        smtp.sendmail("mta@example.org", ["x@example.org"], raw)
                except (OSError, smtplib.SMTPException):
                    return  # the server is gone: this message got no 250
                with lock:
                    acknowledged.add(hashlib.sha256(raw).hexdigest())
                    if len(acknowledged) >= 150:
                        enough.set()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        enough.wait(30)
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of it all
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert len(acknowledged) >= 150
    check = mk(data, "verify")
    assert check.exit_code == 0, check.output
    missing = acknowledged - set(archived(data))
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged messages lost"


def test_routing_into_user_archives(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for args in (["CreateUser", "userName=alice", "privileges=login"],
                 ["SetUserEmailAddresses", "userName=alice",
                  "emailAddresses=alice@example.org,a.l@example.org"],
                 ["CreateUser", "userName=bob", "privileges=login"],
                 ["SetUserEmailAddresses", "userName=bob", "emailAddresses=bob@example.org"]):
        mk_ok(data, "call", *args)
    to_alice, from_bob, nobody = message(10), message(11), message(12)
    with server(data) as (_proc, port), smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("x@elsewhere.example", ["A.L@example.org", "z@elsewhere.example"],
                        to_alice)
        client.sendmail("bob@example.org", ["alice@example.org"], from_bob)
        client.sendmail("x@elsewhere.example", ["y@elsewhere.example"], nobody)
    where: dict[str, set[str]] = {}
    with Archive(data) as archive:
        for _rec, store in archive.readable_stores():
            for (number,) in store.catalog.conn.execute("SELECT number FROM entries"):
                hit = store.catalog.entry(number)
                assert hit is not None
                digest = hashlib.sha256(store.read(number)).hexdigest()
                where.setdefault(digest, set()).add(f"{hit.owner}/{hit.folder}")
    assert where == {hashlib.sha256(to_alice).hexdigest(): {"alice/Inbox"},
                     hashlib.sha256(from_bob).hexdigest(): {"alice/Inbox", "bob/Sent"},
                     hashlib.sha256(nobody).hexdigest(): {"journal/Inbox"}}


def test_auth_required_after_starttls(tmp_path: Path) -> None:
    """smtp.auth: only a client that logs in (after STARTTLS) as a user with the archive (or
    admin) privilege may journal; a wrong password or a user without it is refused. The MTA
    logs in as the journal's account (smtp.owner, "journal"), whose mail goes where routing
    says."""
    data = tmp_path / "data"
    for args in (["settings", "set", "smtp.auth", "true"],
                 ["call", "CreateUser", "userName=journal", "privileges=archive,login",
                  "password=Mta-secret-81"],
                 ["call", "CreateUser", "userName=reader", "privileges=login",
                  "password=Reader-secret-81"]):
        mk_ok(data, *args)
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE  # the server's self-signed certificate
    raw = message(1)
    with server(data) as (proc, port):
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("mta@example.org", ["x@example.org"], raw)
            assert refused.value.smtp_code == 530  # authentication required
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.starttls(context=tls)
            for user, password in (("journal", "wrong-password"),
                                   ("reader", "Reader-secret-81")):
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    client.login(user, password)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.starttls(context=tls)
            client.login("journal", "Mta-secret-81")
            assert client.sendmail("mta@example.org", ["x@example.org"], raw) == {}
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert b"wrong-password" not in err and b"Reader-secret-81" not in err
    assert b"deprecated" not in err, err  # no warning of aiosmtpd's for each message
    assert [f for f, _env in archived(data).values()] == ["journal/Inbox"]
    # the logins are on the record: the failed ones and the one that worked, no password
    found = {(actor, action) for actor, action, _d in audit_since(data)
             if action in ("login.failed", "session.login")}
    assert found == {("smtp:journal", "login.failed"), ("smtp:journal", "session.login")}
    refusals = [(actor, d) for actor, action, d in audit_since(data)
                if action == "login.refused"]  # (smtplib tries each mechanism offered)
    assert refusals and all(actor == "smtp:reader" and d["via"] == "smtp"
                            and "archive" in d["reason"] for actor, d in refusals)
    assert "Mta-secret-81" not in str(audit_since(data))


def test_recipients_per_message_are_limited_as_a_mail_server_does(tmp_path: Path) -> None:
    """smtp.max_recipients (1000): the next RCPT gets 452 4.5.3, the message goes on with the
    recipients taken (the sender sends the rest in another message)."""
    data = tmp_path / "data"
    mk_ok(data, "settings", "set", "smtp.max_recipients", "20")
    rcpts = [f"r{i}@example.org" for i in range(25)]
    with server(data) as (_proc, port), smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        assert client.mail("mta@example.org")[0] == 250
        codes = [client.rcpt(r)[0] for r in rcpts]
        assert codes == [250] * 20 + [452] * 5
        assert client.data(message(9))[0] == 250
    [(folder, envelope)] = archived(data).values()
    assert envelope is not None and envelope["to"] == rcpts[:20]


def test_a_session_is_closed_after_five_failed_auth_attempts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for args in (["settings", "set", "smtp.auth", "true"],
                 ["call", "CreateUser", "userName=journal", "privileges=archive,login",
                  "password=Journal-pass-1"]):
        mk_ok(data, *args)
    with server(data) as (_proc, port), smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=ssl._create_unverified_context())
        client.ehlo()
        replies = []
        for i in range(5):
            code, _text = client.docmd("AUTH", "PLAIN " + base64.b64encode(
                f"\0journal\0guess {i}".encode()).decode())
            replies.append(code)
        assert replies == [535, 535, 535, 535, 421]
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def test_verify_while_the_server_journals(tmp_path: Path) -> None:
    """`mailkeep verify` while the server's writer holds the store (mail keeps coming): the
    store is verified as it stands (nothing in progress is taken for damage) and found sound;
    every message sent meanwhile is archived."""
    data = tmp_path / "data"
    sent: list[bytes] = []
    stop = threading.Event()
    with server(data) as (_proc, port):

        def journal() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                i = 1000
                while not stop.is_set() or len(sent) < 20:
                    raw = message(i)
                    assert client.sendmail("mta@example.org", ["x@example.org"], raw) == {}
                    sent.append(raw)
                    i += 1

        sender = threading.Thread(target=journal)
        sender.start()
        try:
            while len(sent) < 20:  # the writer has the store open
                sender.join(0.05)
                assert sender.is_alive() or len(sent) >= 20
            results = [mk_process(data, "verify") for _ in range(3)]
        finally:
            stop.set()
            sender.join()
    for res in results:
        assert res.returncode == 0, res.stdout + res.stderr
        assert ": ok" in res.stdout and "problem" not in res.stdout
        # mail never stopped coming, so the writer held the store all along
        assert "being written: verified as it stands now" in res.stdout
    assert {hashlib.sha256(raw).hexdigest() for raw in sent} <= set(archived(data))
