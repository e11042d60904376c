"""The SMTP journal receiver's limits against a real `mailkeep serve`, over real sockets: errors
per session (smtp.max_errors), a timeout per command (smtp.command_timeout), command and AUTH
line lengths, and sessions per client address and in all (smtp.max_sessions_per_client,
smtp.max_sessions), each refused with the reply a mail server gives. Sessions come from
127.0.0.2 and beyond, apart from the readiness check's 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.helpers import free_port, mk_ok, serving
from tests.web.test_journal import archived

PASSWORD = "Journal-pass-1"


@contextmanager
def receiver(data: Path, log: Path | None = None, **settings: str) -> Iterator[int]:
    """`mailkeep serve` with its SMTP receiver and these settings (its output to `log`, when
    given); the receiver's port."""
    for key, value in settings.items():
        mk_ok(data, "settings", "set", key.replace("__", "."), value)
    smtp_port = free_port()
    with serving(data, "--host", "127.0.0.1", "--port", str(free_port()),
                 "--smtp-port", str(smtp_port), smtp_port=smtp_port, log=log):
        yield smtp_port


class Session:
    """A raw SMTP session: one line sent, one reply read."""

    def __init__(self, port: int, source: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60,
                                             source_address=(source, 0))
        self.lines = self.sock.makefile("rb")

    def reply(self) -> bytes:
        """One reply (the last line of a multi-line one); b"" once the server has closed."""
        while (line := self.lines.readline())[3:4] == b"-":
            pass
        return line.rstrip(b"\r\n")

    def send(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.lines.close()
        self.sock.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def test_errors_lines_and_sessions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for args in (["settings", "set", "smtp.auth", "true"],
                 ["call", "CreateUser", "userName=journal", "privileges=archive,login",
                  f"password={PASSWORD}"]):
        mk_ok(data, *args)
    with receiver(data, smtp__max_sessions="3", smtp__max_sessions_per_client="2") as port:
        errors_close_a_session(port)
        a_message_archived_counts_errors_anew(port)
        command_lines_are_bounded(port)
        auth_lines_are_bounded(port)
        sessions_per_client_and_in_all(port)


def errors_close_a_session(port: int) -> None:
    """smtp.max_errors (20, Postfix's smtpd_hard_error_limit): 20 refused commands are
    answered as ever, the 21st gets 421 4.7.0 and the session is closed."""
    with Session(port, "127.0.0.2") as smtp:
        assert smtp.reply().startswith(b"220 ")
        assert smtp.send(b"EHLO client.example.org").startswith(b"250 ")
        replies = [smtp.send(b"RCPT TO:<someone@example.org>")[:1] for _ in range(20)]
        assert replies == [b"5"] * 20  # refused: no AUTH, no MAIL
        assert smtp.send(b"RCPT TO:<someone@example.org>").startswith(b"421 4.7.0 ")
        assert smtp.reply() == b""  # closed


def a_message_archived_counts_errors_anew(port: int) -> None:
    """The count is of errors since the last message archived, as Postfix's."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60,
                      source_address=("127.0.0.2", 0)) as client:
        client.starttls(context=ssl._create_unverified_context())
        client.ehlo()
        client.login("journal", PASSWORD)
        for _ in range(15):
            assert client.docmd("RCPT", "TO:<someone@example.org>")[0] == 503  # no MAIL
        refused = client.sendmail("mta@example.org", ["someone@example.org"],
                                  b"Subject: archived\r\n\r\nbody\r\n")
        assert refused == {}
        for _ in range(15):
            assert client.docmd("RCPT", "TO:<someone@example.org>")[0] == 503
        assert client.noop()[0] == 250


def command_lines_are_bounded(port: int) -> None:
    """A command line of 1 MiB, or one over RFC 5321's 512 octets, gets 500 (RFC 5321
    4.5.3.1.10) and the session goes on."""
    with Session(port, "127.0.0.2") as smtp:
        assert smtp.reply().startswith(b"220 ")
        assert smtp.send(b"EHLO client.example.org").startswith(b"250 ")
        assert smtp.send(b"NOOP " + b"x" * (1 << 20)).startswith(b"500 ")
        assert smtp.send(b"NOOP " + b"x" * 600).startswith(b"500 ")
        assert smtp.send(b"NOOP " + b"x" * 400).startswith(b"250 ")
        assert smtp.send(b"QUIT").startswith(b"221 ")
        assert smtp.reply() == b""


def auth_lines_are_bounded(port: int) -> None:
    """AUTH's lines may be longer (RFC 4954), but a 1 MiB answer to its challenge gets
    500 5.5.6 and is never taken as credentials; the session goes on."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60,
                      source_address=("127.0.0.2", 0)) as client:
        client.starttls(context=ssl._create_unverified_context())
        client.ehlo()
        assert client.docmd("AUTH", "LOGIN")[0] == 334
        client.send(base64.b64encode(b"u" * (1 << 20)) + b"\r\n")
        code, text = client.getreply()
        assert (code, text[:6]) == (500, b"5.5.6 "), (code, text)
        assert client.noop()[0] == 250
        client.login("journal", PASSWORD)  # a PLAIN initial response, within the limit


def sessions_per_client_and_in_all(port: int) -> None:
    """smtp.max_sessions_per_client (here 2) and smtp.max_sessions (here 3): one more session
    gets 421 4.7.0 instead of a greeting and is closed; one that ends makes room."""
    with ExitStack() as stack:
        first, _second = (stack.enter_context(Session(port, "127.0.0.2")) for _ in range(2))
        for smtp in (first, _second):
            assert smtp.reply().startswith(b"220 ")
        with Session(port, "127.0.0.2") as third:
            assert third.reply() == b"421 4.7.0 Too many connections from your address"
            assert third.reply() == b""
        other = stack.enter_context(Session(port, "127.0.0.3"))
        assert other.reply().startswith(b"220 ")  # three open: the most in all
        with Session(port, "127.0.0.4") as fourth:
            assert fourth.reply() == b"421 4.7.0 Too many connections"
            assert fourth.reply() == b""
        assert first.send(b"QUIT").startswith(b"221 ")
        assert first.reply() == b""  # closed by the server: its place is free
        with Session(port, "127.0.0.2") as again:
            assert again.reply().startswith(b"220 ")


def test_an_idle_session_is_closed_after_the_command_timeout(tmp_path: Path) -> None:
    """smtp.command_timeout (here 1 s): a client that sends no command gets 421 4.4.2 and is
    disconnected. The test waits for the close; it measures no time."""
    data = tmp_path / "data"
    with receiver(data, smtp__command_timeout="1") as port, Session(port, "127.0.0.2") as smtp:
        assert smtp.reply().startswith(b"220 ")
        assert smtp.send(b"EHLO client.example.org").startswith(b"250 ")
        assert smtp.reply().startswith(b"421 4.4.2 ")
        assert smtp.reply() == b""


def large(tag: str) -> bytes:
    """A message of 2 MiB (lines of 76 octets, one starting with a dot)."""
    line = b"x" * 74 + b"\r\n"
    return (f"From: a@example.org\r\nTo: b@example.org\r\nSubject: large {tag}\r\n"
            f"Message-ID: <{tag}@example.org>\r\n\r\n..dot\r\n").encode() + line * 27600


def test_large_messages_wait_for_room(tmp_path: Path) -> None:
    """smtp.large_messages (here 1): while one message over 1 MiB is being received and
    archived, a second one stops being read once past 1 MiB (the server logs that it waits),
    and is taken, whole, once the first is archived. Both get 250 and are archived byte for
    byte. The test waits for the log line, not for a time."""
    data = tmp_path / "data"
    log = tmp_path / "serve.log"
    a_msg, b_msg = large("first"), large("second")
    with receiver(data, log, smtp__large_messages="1") as port, \
            Session(port, "127.0.0.2") as a, Session(port, "127.0.0.3") as b:
        for smtp in (a, b):
            assert smtp.reply().startswith(b"220 ")
            assert smtp.send(b"EHLO client.example.org").startswith(b"250 ")
            assert smtp.send(b"MAIL FROM:<mta@example.org>").startswith(b"250 ")
            assert smtp.send(b"RCPT TO:<b@example.org>").startswith(b"250 ")
            assert smtp.send(b"DATA").startswith(b"354 ")
        a.sock.sendall(a_msg)  # all but its end
        done = threading.Thread(target=b.sock.sendall, args=(b_msg + b".\r\n",))
        done.start()  # the server may stop reading it: sent from a thread
        waits = until(lambda: b"waits for room" in log.read_bytes())
        assert waits, log.read_text()
        line = next(x for x in log.read_text().splitlines() if "waits for room" in x)
        if "127.0.0.3" in line:  # the second waits while the first is in progress
            b.sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                b.sock.recv(1)  # no reply while it waits
            b.sock.setblocking(True)
        a.sock.sendall(b".\r\n")
        assert a.reply().startswith(b"250 ")
        done.join()
        assert b.reply().startswith(b"250 ")
    kept = {hashlib.sha256(msg.replace(b"\r\n..dot", b"\r\n.dot")).hexdigest()
            for msg in (a_msg, b_msg)}
    assert kept <= set(archived(data)), "not archived byte for byte"


def until(condition: Callable[[], bool]) -> bool:
    """Wait for `condition` (a log line the server writes when the event happens), checking
    every 50 ms, for at most 60 s."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_message_trickled_in_is_cut_off_at_the_data_timeout(tmp_path: Path) -> None:
    """smtp.data_timeout (here 2 s): a client sending its message a line at a time, each well
    inside the command timeout, gets 421 4.4.2 once the message has taken longer than that in
    all, and is disconnected; nothing of it is archived. The lines are paced by waiting for
    the server's answer (a 421) for a moment each time; no time is measured."""
    data = tmp_path / "data"
    with receiver(data, smtp__data_timeout="2") as port, Session(port, "127.0.0.2") as smtp:
        assert smtp.reply().startswith(b"220 ")
        assert smtp.send(b"EHLO client.example.org").startswith(b"250 ")
        assert smtp.send(b"MAIL FROM:<mta@example.org>").startswith(b"250 ")
        assert smtp.send(b"RCPT TO:<b@example.org>").startswith(b"250 ")
        assert smtp.send(b"DATA").startswith(b"354 ")
        smtp.sock.sendall(b"Subject: slow\r\n\r\n")
        smtp.sock.settimeout(0.5)  # the pace of the lines
        answer = b""
        try:
            for _ in range(600):  # five minutes at most: far past the 2 s
                smtp.sock.sendall(b"a line of the message\r\n")
                try:
                    answer = smtp.sock.recv(200)
                    break
                except TimeoutError:
                    continue
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert answer.startswith(b"421 4.4.2 "), answer
    assert not archived(data)
