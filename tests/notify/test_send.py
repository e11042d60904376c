"""send() against real peers: aiosmtpd (plain, STARTTLS, implicit TLS, every AUTH mechanism) and
Dovecot's POP3 server for POP before SMTP."""

from __future__ import annotations

import base64
import email
import email.policy
import ssl
import threading
import time
from dataclasses import replace
from email.header import decode_header, make_header
from typing import Any

import pytest
import trustme

from mailkeep.notify import Outgoing, Pop3Target, PopBeforeSmtp, SendError, SmtpTarget, send
from tests.helpers import free_port
from tests.sources.dovecot import Dovecot

from .peers import (
    PASSWORD,
    TOKEN,
    USER,
    Recorder,
    SilentServer,
    SmtpPeer,
    password_authenticator,
    server_context,
)

JA_SUBJECT = "異常時通知メール"
JA_BODY = "アーカイブの取り込みでエラーが発生しました。\nフォルダ: 受信箱\n"


def mail(encoding: str = "utf-8", **kw: object) -> Outgoing:
    fields: dict[str, object] = {
        "sender": "mailkeep <mailkeep@archive.test>",
        "recipients": ("admin@example.org", "ops@example.org"),
        "subject": "mailkeep: import failed",
        "body": "The import of folder INBOX failed.\n",
        "encoding": encoding,
    }
    fields.update(kw)
    return Outgoing(**fields)  # type: ignore[arg-type]


def target(peer: SmtpPeer, **kw: object) -> SmtpTarget:
    return SmtpTarget("127.0.0.1", peer.port, timeout=5, **kw)  # type: ignore[arg-type]


def starttls_auth_peer(tls_context: ssl.SSLContext, **kw: Any) -> SmtpPeer:
    return SmtpPeer(
        tls_context=tls_context,
        require_starttls=True,
        authenticator=password_authenticator,
        auth_require_tls=True,
        auth_required=True,
        **kw,
    )


def parsed(content: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


# --- plain, STARTTLS, implicit TLS ------------------------------------------------------------


def test_plain_send_delivers_envelope_and_message() -> None:
    with SmtpPeer() as peer:
        summary = send(target(peer), mail())
    assert "250" in summary and "queued as 4TEST1" in summary
    [got] = peer.handler.received
    assert got.mail_from == "mailkeep@archive.test"
    assert got.rcpt_tos == ["admin@example.org", "ops@example.org"]
    assert not got.tls and not got.authenticated
    assert b"\r\n" in got.content and b"\n" not in got.content.replace(b"\r\n", b"")
    msg = parsed(got.content)
    assert msg["Subject"] == "mailkeep: import failed"
    assert msg["To"] == "admin@example.org, ops@example.org"
    for name in ("From", "Date", "Message-ID", "MIME-Version", "Content-Transfer-Encoding"):
        assert msg[name], name


def test_starttls_with_private_ca(tls_context: ssl.SSLContext, ca_file: str) -> None:
    with SmtpPeer(tls_context=tls_context, require_starttls=True) as peer:
        send(target(peer, tls="starttls", ca_file=ca_file), mail())
    [got] = peer.handler.received
    assert got.tls


def test_starttls_required_by_server_but_not_used_fails_at_sender(
    tls_context: ssl.SSLContext,
) -> None:
    with SmtpPeer(tls_context=tls_context, require_starttls=True) as peer:
        with pytest.raises(SendError) as err:
            send(target(peer), mail())
    assert err.value.step == "sender"
    assert err.value.reply is not None and err.value.reply.startswith("530")
    assert not peer.handler.received


def test_starttls_not_offered_is_an_error_not_a_fallback(ca_file: str) -> None:
    with SmtpPeer() as peer:
        with pytest.raises(SendError) as err:
            send(target(peer, tls="starttls", ca_file=ca_file), mail())
    assert err.value.step == "tls"
    assert "does not offer STARTTLS" in str(err.value)
    assert f"127.0.0.1:{peer.port}" in str(err.value)
    assert not peer.handler.received


def test_implicit_tls(tls_context: ssl.SSLContext, ca_file: str) -> None:
    with SmtpPeer(ssl_context=tls_context) as peer:
        summary = send(target(peer, tls="implicit", ca_file=ca_file), mail())
    assert "250" in summary
    [got] = peer.handler.received
    assert got.tls


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_certificate_of_unknown_ca_fails_at_tls_unless_verify_is_off(
    mode: str, foreign_tls_context: ssl.SSLContext, ca_file: str
) -> None:
    kwargs: dict[str, Any] = (
        {"ssl_context": foreign_tls_context}
        if mode == "implicit"
        else {"tls_context": foreign_tls_context, "require_starttls": True}
    )
    with SmtpPeer(**kwargs) as peer:
        with pytest.raises(SendError) as err:
            send(target(peer, tls=mode, ca_file=ca_file), mail())
        assert err.value.step == "tls"
        assert "certificate verify failed" in str(err.value)
        assert not peer.handler.received
        send(target(peer, tls=mode, verify=False), mail())
    assert len(peer.handler.received) == 1


def test_host_name_is_checked(ca: trustme.CA, ca_file: str) -> None:
    # Trusted CA, but the certificate names another host.
    other = server_context(ca.issue_cert("mail.example.org"))
    with SmtpPeer(ssl_context=other) as peer:
        with pytest.raises(SendError) as err:
            send(target(peer, tls="implicit", ca_file=ca_file), mail())
    assert err.value.step == "tls"
    assert "certificate verify failed" in str(err.value) and "127.0.0.1" in str(err.value)
    assert not peer.handler.received


# --- AUTH ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mech", ["plain", "login", "cram-md5", "xoauth2"])
def test_auth_mechanisms(mech: str, tls_context: ssl.SSLContext, ca_file: str) -> None:
    secret = TOKEN if mech == "xoauth2" else PASSWORD
    with starttls_auth_peer(tls_context) as peer:
        send(
            target(peer, tls="starttls", ca_file=ca_file, auth=mech, username=USER,
                   secret=secret),
            mail(),
        )
    [got] = peer.handler.received
    assert got.authenticated and got.tls
    if mech == "cram-md5":
        [(name, response)] = peer.handler.auth_log
        assert name == "CRAM-MD5" and response.startswith(b"alice ")
    if mech == "xoauth2":
        [(name, blob)] = peer.handler.auth_log
        assert blob == b"user=alice\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"


@pytest.mark.parametrize("mech", ["plain", "login", "cram-md5"])
def test_wrong_password_fails_at_auth_without_leaking_it(
    mech: str, tls_context: ssl.SSLContext, ca_file: str
) -> None:
    wrong = "Wr0ng-pass-XYZ"
    with starttls_auth_peer(tls_context) as peer:
        with pytest.raises(SendError) as err:
            send(
                target(peer, tls="starttls", ca_file=ca_file, auth=mech, username=USER,
                       secret=wrong),
                mail(),
            )
    text = str(err.value)
    assert err.value.step == "auth"
    assert "535" in text and err.value.reply and err.value.reply.startswith("535")
    assert f"127.0.0.1:{peer.port}" in text
    assert wrong not in text and wrong not in repr(err.value)
    assert base64.b64encode(wrong.encode()).decode() not in text
    assert not peer.handler.received


def test_xoauth2_error_challenge_is_answered_and_reported(
    tls_context: ssl.SSLContext, ca_file: str
) -> None:
    bad_token = "ya29.expired-token-Q"
    with starttls_auth_peer(tls_context) as peer:
        with pytest.raises(SendError) as err:
            send(
                target(peer, tls="starttls", ca_file=ca_file, auth="xoauth2", username=USER,
                       secret=bad_token),
                mail(),
            )
    text = str(err.value)
    assert err.value.step == "auth"
    assert "535 5.7.8" in text and '"status": "401"' in text
    assert bad_token not in text
    # The client answered the 334 error challenge with an empty line, as XOAUTH2 requires.
    assert ("XOAUTH2-error-answer", b"") in peer.handler.auth_log


def test_mechanism_not_offered_names_what_is(tls_context: ssl.SSLContext, ca_file: str) -> None:
    with starttls_auth_peer(tls_context, auth_exclude_mechanism=["CRAM-MD5", "XOAUTH2"]) as peer:
        with pytest.raises(SendError) as err:
            send(
                target(peer, tls="starttls", ca_file=ca_file, auth="cram-md5", username=USER,
                       secret=PASSWORD),
                mail(),
            )
    assert err.value.step == "auth"
    assert "does not offer AUTH CRAM-MD5; it offers LOGIN, PLAIN" in str(err.value)


def test_auth_over_implicit_tls(tls_context: ssl.SSLContext, ca_file: str) -> None:
    # aiosmtpd's auth_require_tls only knows STARTTLS, so it is off on this implicit-TLS server.
    with SmtpPeer(
        ssl_context=tls_context, authenticator=password_authenticator, auth_require_tls=False
    ) as peer:
        send(
            target(peer, tls="implicit", ca_file=ca_file, auth="plain", username=USER,
                   secret=PASSWORD),
            mail(),
        )
    [got] = peer.handler.received
    assert got.authenticated and got.tls


# --- refusals and network failures -----------------------------------------------------------


def test_refused_recipient_is_named_even_if_others_are_accepted() -> None:
    handler = Recorder(refuse_recipients=frozenset({"ops@example.org"}))
    with SmtpPeer(handler) as peer:
        with pytest.raises(SendError) as err:
            send(target(peer), mail())
    text = str(err.value)
    assert err.value.step == "recipient"
    assert "ops@example.org" in text and "550 5.1.1" in text
    assert "admin@example.org (" not in text  # the accepted one is not called refused
    assert not handler.received


def test_refused_sender() -> None:
    with SmtpPeer(Recorder(refuse_sender=True)) as peer:
        with pytest.raises(SendError) as err:
            send(target(peer), mail())
    assert err.value.step == "sender"
    assert err.value.reply is not None and err.value.reply.startswith("553 5.7.1")
    assert "mailkeep@archive.test" in str(err.value)


def test_refused_data() -> None:
    with SmtpPeer(Recorder(refuse_data=True)) as peer:
        with pytest.raises(SendError) as err:
            send(target(peer), mail())
    assert err.value.step == "data"
    assert "554 5.7.1 Message rejected as spam" in str(err.value)


def test_connection_refused() -> None:
    port = free_port()
    with pytest.raises(SendError) as err:
        send(SmtpTarget("127.0.0.1", port, timeout=2), mail())
    assert err.value.step == "connect"
    assert f"127.0.0.1:{port}" in str(err.value) and "connection refused" in str(err.value)


def test_unresolvable_host() -> None:
    with pytest.raises(SendError) as err:
        send(SmtpTarget("no-such-host.invalid", 25, timeout=2), mail())
    assert err.value.step == "connect"
    assert "cannot resolve" in str(err.value)


def test_server_that_never_greets_times_out_at_connect() -> None:
    with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(SendError) as err:
            send(SmtpTarget("127.0.0.1", silent.port, timeout=1), mail())
        elapsed = time.monotonic() - started
    assert err.value.step == "connect"
    assert "1 s" in str(err.value)
    assert 0.9 <= elapsed < 3


def test_tls_handshake_that_never_completes_times_out_at_tls(ca_file: str) -> None:
    with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(SendError) as err:
            send(SmtpTarget("127.0.0.1", silent.port, tls="implicit", ca_file=ca_file,
                            timeout=1), mail())
        elapsed = time.monotonic() - started
    assert err.value.step == "tls"
    assert "timed out" in str(err.value)
    assert elapsed < 3


def test_text_the_charset_cannot_carry_fails_before_connecting() -> None:
    with SmtpPeer() as peer:
        with pytest.raises(SendError) as err:
            send(target(peer), mail("iso-2022-jp", subject="通知 ① 件"))
    assert err.value.step == "compose"
    assert "'①'" in str(err.value) and "iso-2022-jp" in str(err.value)
    assert not peer.handler.received


# --- what the server receives in each charset ------------------------------------------------


def test_iso_2022_jp_bytes_as_received() -> None:
    with SmtpPeer() as peer:
        send(target(peer), mail("iso-2022-jp", subject=JA_SUBJECT, body=JA_BODY))
    [got] = peer.handler.received
    head, _, body = got.content.partition(b"\r\n\r\n")
    subject = next(line for line in head.split(b"\r\n") if line.startswith(b"Subject: "))
    assert subject.startswith(b"Subject: =?ISO-2022-JP?B?") and subject.endswith(b"?=")
    assert str(make_header(decode_header(subject[len("Subject: "):].decode()))) == JA_SUBJECT
    assert b'Content-Type: text/plain; charset="ISO-2022-JP"' in head
    assert b"Content-Transfer-Encoding: 7bit" in head
    assert b"\x1b$B" in body and all(byte < 0x80 for byte in body)
    # aiosmtpd undoes the dot-stuffing; every line ends in ASCII mode (RFC 1468).
    for line in body.split(b"\r\n"):
        if b"\x1b$B" in line:
            assert line.endswith(b"\x1b(B")
    assert body.decode("iso-2022-jp").replace("\r\n", "\n") == JA_BODY
    assert got.rcpt_tos == ["admin@example.org", "ops@example.org"]


@pytest.mark.parametrize("encoding", ["utf-8", "shift_jis", "iso-2022-jp"])
def test_japanese_round_trips(encoding: str) -> None:
    with SmtpPeer() as peer:
        send(target(peer), mail(encoding, subject=JA_SUBJECT, body=JA_BODY,
                                recipients=("管理者 <admin@example.org>",)))
    [got] = peer.handler.received
    assert got.rcpt_tos == ["admin@example.org"]
    assert all(byte < 0x80 for byte in got.content)
    msg = parsed(got.content)
    assert msg["Subject"] == JA_SUBJECT
    assert msg["To"] == "管理者 <admin@example.org>"
    assert msg.get_content().replace("\r\n", "\n") == JA_BODY
    assert msg.get_content_charset() == encoding


def test_us_ascii_as_received() -> None:
    with SmtpPeer() as peer:
        send(target(peer), mail("us-ascii"))
    [got] = peer.handler.received
    msg = parsed(got.content)
    assert msg.get_content_charset() == "us-ascii"
    assert msg["Content-Transfer-Encoding"] == "7bit"
    assert msg.get_content().replace("\r\n", "\n") == "The import of folder INBOX failed.\n"


def test_dot_lines_survive() -> None:
    body = "first\n.\n..two dots\nlast\n"
    with SmtpPeer() as peer:
        send(target(peer), mail("us-ascii", body=body))
    [got] = peer.handler.received
    assert parsed(got.content).get_content().replace("\r\n", "\n") == body


# --- POP before SMTP against Dovecot ---------------------------------------------------------


def pop_gate(dovecot: Dovecot, handler: Recorder) -> Recorder:
    """The SMTP server accepts MAIL only after a new POP3 login shows in Dovecot's log."""
    seen = [dovecot.logins(USER)]

    def gate() -> str | None:
        now = dovecot.wait_logins(USER, seen[0] + 1, timeout=1)
        if now <= seen[0]:
            return "553 5.7.1 relay denied: log in with POP3 first"
        seen[0] = now
        return None

    handler.mail_gate = gate
    return handler


def pop_target(dovecot: Dovecot, **kw: object) -> Pop3Target:
    fields: dict[str, object] = {"username": USER, "password": PASSWORD, "timeout": 5}
    fields.update(kw)
    return Pop3Target("127.0.0.1", dovecot.pop3_port, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("apop", [False, True])
def test_pop_before_smtp(dovecot: Dovecot, apop: bool) -> None:
    before = dovecot.logins(USER)
    with SmtpPeer(pop_gate(dovecot, Recorder())) as peer:
        send(target(peer), mail(), pop=pop_target(dovecot, apop=apop))
    assert len(peer.handler.received) == 1
    assert dovecot.wait_logins(USER, before + 1) == before + 1
    method = "APOP" if apop else "PLAIN"
    assert f"Login: user=<{USER}>, method={method}" in dovecot.logs()


def test_smtp_gate_refuses_without_pop_login(dovecot: Dovecot) -> None:
    # The gate really depends on the POP login: without it the mail is refused.
    with SmtpPeer(pop_gate(dovecot, Recorder())) as peer:
        with pytest.raises(SendError) as err:
            send(target(peer), mail())
    assert err.value.step == "sender" and "POP3 first" in str(err.value)


@pytest.mark.parametrize("apop", [False, True])
def test_wrong_pop_password(dovecot: Dovecot, apop: bool) -> None:
    wrong = "not-the-Pa55word"
    with SmtpPeer() as peer:
        with pytest.raises(SendError) as err:
            send(target(peer), mail(), pop=pop_target(dovecot, password=wrong, apop=apop))
    text = str(err.value)
    assert err.value.step == "pop-login"
    assert err.value.reply == "-ERR [AUTH] Authentication failed."
    assert f"127.0.0.1:{dovecot.pop3_port}" in text and "Authentication failed" in text
    assert wrong not in text
    assert not peer.handler.received


def test_pop_interval_reuses_a_login(dovecot: Dovecot) -> None:
    state = PopBeforeSmtp()
    pop = pop_target(dovecot, interval_s=3600)
    before = dovecot.logins(USER)
    with SmtpPeer() as peer:
        send(target(peer), mail(), pop=pop, pop_state=state)
        assert dovecot.wait_logins(USER, before + 1) == before + 1
        send(target(peer), mail(), pop=pop, pop_state=state)
        # interval 0 logs in before every send, even with the state remembering the last one
        every = replace(pop, interval_s=0)
        send(target(peer), mail(), pop=every, pop_state=state)
        send(target(peer), mail(), pop=every, pop_state=state)
    assert len(peer.handler.received) == 4
    assert dovecot.settled_logins(USER) == before + 3  # no login made wrongly


def test_pop_interval_expires(dovecot: Dovecot) -> None:
    now = [1000.0]
    state = PopBeforeSmtp(clock=lambda: now[0])
    pop = pop_target(dovecot, interval_s=60)
    before = dovecot.logins(USER)
    assert state.login_if_due(pop) is True
    now[0] += 59
    assert state.login_if_due(pop) is False
    now[0] += 2
    assert state.login_if_due(pop) is True
    assert dovecot.wait_logins(USER, before + 2) == before + 2


def test_failed_pop_login_is_not_remembered(dovecot: Dovecot) -> None:
    state = PopBeforeSmtp()
    pop = pop_target(dovecot, interval_s=3600)
    with pytest.raises(SendError):
        state.login_if_due(replace(pop, password="wrong"))
    before = dovecot.logins(USER)
    assert state.login_if_due(pop) is True
    assert dovecot.wait_logins(USER, before + 1) == before + 1


def test_pop_login_once_for_concurrent_senders(dovecot: Dovecot) -> None:
    state = PopBeforeSmtp()
    pop = pop_target(dovecot, interval_s=3600)
    before = dovecot.logins(USER)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(state.login_if_due(pop)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert dovecot.wait_logins(USER, before + 1) == before + 1
    assert dovecot.settled_logins(USER) == before + 1  # and no other


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_pop_over_tls(dovecot: Dovecot, ca_file: str, mode: str) -> None:
    port = dovecot.pop3s_port if mode == "implicit" else dovecot.pop3_port
    before = dovecot.logins(USER)
    with SmtpPeer(pop_gate(dovecot, Recorder())) as peer:
        send(target(peer), mail(), pop=replace(pop_target(dovecot, tls=mode, ca_file=ca_file),
                                               port=port))
    assert len(peer.handler.received) == 1
    assert dovecot.wait_logins(USER, before + 1) == before + 1
    assert "method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid=" in dovecot.logs()
    last = [line for line in dovecot.logs().splitlines() if "Login: user=<alice>" in line][-1]
    assert "TLS" in last


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_pop_certificate_of_unknown_ca(dovecot: Dovecot, mode: str) -> None:
    port = dovecot.pop3s_port if mode == "implicit" else dovecot.pop3_port
    with pytest.raises(SendError) as err:
        PopBeforeSmtp().login_if_due(replace(pop_target(dovecot, tls=mode), port=port))
    assert err.value.step == "pop-login"
    assert "certificate verify failed" in str(err.value)


def test_targets_do_not_show_secrets() -> None:
    smtp = SmtpTarget("mx.example.org", 587, auth="plain", username=USER, secret="s3cr3t-Value")
    pop = Pop3Target("pop.example.org", 110, username=USER, password="p0p-Value")
    assert "s3cr3t-Value" not in repr(smtp) and "secret='***'" in repr(smtp)
    assert "p0p-Value" not in repr(pop) and "password='***'" in repr(pop)
