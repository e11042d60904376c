"""The notification mail end to end: configured through /mcapi (and the admin API), sent by
mail/configuration/test and TestSmtpSettings to a real aiosmtpd (TLS from trustme, AUTH) and,
for POP before SMTP, after a real Dovecot POP3 login; what arrives is checked byte for byte."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.web.app import create_app
from tests.apiclient import LOCAL, finish, invoke
from tests.helpers import CHEAP
from tests.sources.dovecot import Dovecot
from tests.web.test_mcapi import body, err, get_conf, h, login, set_conf

from .peers import PASSWORD, USER, Recorder, SmtpPeer, password_authenticator


@pytest.fixture
def mc(tmp_path: Path) -> Iterator[TestClient]:
    data = tmp_path / "data"
    app = create_app(data, api_enabled=True, hasher=CHEAP)
    with TestClient(app, client=LOCAL) as c:
        yield c


def starttls_peer(tls_context: Any, recorder: Recorder) -> SmtpPeer:
    return SmtpPeer(recorder, tls_context=tls_context, require_starttls=True,
                    authenticator=password_authenticator, auth_require_tls=True)


def smtp_conf(peer: SmtpPeer, ca_file: str, **extra: Any) -> dict[str, Any]:
    return {"serverName": "127.0.0.1", "port": peer.port, "useSmtpOverSsl": False,
            "useStartTls": True, "fromMailAddress": "archive@example.org",
            "toMailAddress": "ops@example.org", "mailSubject": "異常時通知メール",
            "encoding": "iso-2022-jp", "timeOut": 10, "authenticationType": "SMTP",
            "userName": USER, "smtpAuthenticationType": "plain", "caFile": ca_file, **extra}


def test_test_mail_over_starttls_with_auth(mc: TestClient, tls_context: Any,
                                           ca_file: str) -> None:
    recorder = Recorder()
    with starttls_peer(tls_context, recorder) as peer:
        sid = login(mc)
        resp = set_conf(mc, sid, {**smtp_conf(peer, ca_file), "password": PASSWORD})
        assert resp.status_code == 200, body(resp)
        resp = mc.post("/mcapi/mail/configuration/test", headers=h(sid))
        assert (resp.status_code, body(resp)) == (200, {"status": "success", "data": {}})
    [got] = recorder.received
    assert got.tls and got.authenticated and got.rcpt_tos == ["ops@example.org"]
    assert b"Subject: =?ISO-2022-JP?B?" in got.content
    msg = email.message_from_bytes(got.content, policy=email.policy.default)
    assert msg["Subject"] == "異常時通知メール"
    assert msg["Content-Transfer-Encoding"] == "7bit"
    assert "test of mailkeep's error-notification mail" in msg.get_content()


def test_test_mail_failures_say_where(mc: TestClient, tls_context: Any, ca_file: str) -> None:
    recorder = Recorder(refuse_recipients=frozenset({"ops@example.org"}))
    with starttls_peer(tls_context, recorder) as peer:
        sid = login(mc)
        assert set_conf(mc, sid, {**smtp_conf(peer, ca_file), "password": "wrong-one"}
                        ).status_code == 200
        message = err(mc.post("/mcapi/mail/configuration/test", headers=h(sid)), 500, 5009)
        assert "auth" in message and "535" in message and "wrong-one" not in message
        assert set_conf(mc, sid, {"password": PASSWORD}).status_code == 200
        message = err(mc.post("/mcapi/mail/configuration/test", headers=h(sid)), 500, 5009)
        assert "recipient" in message and "ops@example.org" in message and "550" in message
        # The certificate is checked by default: without the private CA the TLS step fails.
        assert set_conf(mc, sid, {"caFile": None, "toMailAddress": "x@example.org"}
                        ).status_code == 200
        message = err(mc.post("/mcapi/mail/configuration/test", headers=h(sid)), 500, 5009)
        assert "tls" in message.lower() and "certificate verify failed" in message
        # The admin API runs the same test as a process, with log lines for each step.
        result, log = finish(mc, invoke(mc, "TestSmtpSettings"))
        assert result["statusCode"] == "failed" and "certificate" in result["error"]["message"]
        assert "SMTP: 127.0.0.1" in log and "Failed at step tls" in log
        assert set_conf(mc, sid, {"caFile": ca_file}).status_code == 200
        result, log = finish(mc, invoke(mc, "TestSmtpSettings"))
        assert result["statusCode"] == "succeeded", result
        assert "Sent: " in log and PASSWORD not in log
    assert [r.rcpt_tos for r in recorder.received] == [["x@example.org"]]


def test_pop_before_smtp_with_apop(mc: TestClient, dovecot: Dovecot) -> None:
    before = dovecot.logins(USER)
    recorder = Recorder(mail_gate=lambda: None if dovecot.logins(USER) > before
                        else "530 5.7.0 POP before SMTP required")
    with SmtpPeer(recorder) as peer:
        sid = login(mc)
        conf = {"serverName": "127.0.0.1", "port": peer.port, "fromMailAddress":
                "archive@example.org", "toMailAddress": "ops@example.org",
                "encoding": "utf-8", "mailSubject": "Archiv-Störung", "timeOut": 10,
                "authenticationType": "POP before SMTP", "pop3ServerName": "127.0.0.1",
                "pop3Port": dovecot.pop3_port, "useApop": True, "pop3Interval": 0,
                "userName": USER, "password": PASSWORD}
        assert set_conf(mc, sid, conf).status_code == 200, get_conf(mc, sid)
        resp = mc.post("/mcapi/mail/configuration/test", headers=h(sid))
        assert resp.status_code == 200, body(resp)
        assert "method=APOP" in dovecot.logs()
        assert set_conf(mc, sid, {"password": "not-it"}).status_code == 200
        message = err(mc.post("/mcapi/mail/configuration/test", headers=h(sid)), 500, 5009)
        assert "pop-login" in message and "not-it" not in message
    [got] = recorder.received
    msg = email.message_from_bytes(got.content, policy=email.policy.default)
    assert msg["Subject"] == "Archiv-Störung"
