"""Real peers for the sending tests: an aiosmtpd server, a private Dovecot POP3 server, and a
socket that accepts and never speaks. Everything listens on 127.0.0.1 and is stopped by the test
that started it."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import (
    MISSING,
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    Session,
    auth_mechanism,
)

from tests.helpers import free_port

USER = "alice"
PASSWORD = "pw-Secr3t-9f2c"
TOKEN = "ya29.token-Z8d1x"


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    authenticated: bool
    tls: bool


@dataclass
class Recorder:
    """aiosmtpd handler: records what arrives, can refuse senders, recipients or the data, and
    implements CRAM-MD5 and XOAUTH2 through aiosmtpd's auth_MECHANISM hooks."""

    refuse_recipients: frozenset[str] = frozenset()
    refuse_sender: bool = False
    refuse_data: bool = False
    mail_gate: Any = None  # callable() -> str | None: a refusal reply for MAIL, or None
    received: list[Received] = field(default_factory=list)
    auth_log: list[tuple[str, bytes]] = field(default_factory=list)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse_sender:
            return f"553 5.7.1 <{address}>: Sender address rejected: not owned by user"
        if self.mail_gate is not None:
            refusal: str | None = self.mail_gate()
            if refusal:
                return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_data:
            return "554 5.7.1 Message rejected as spam"
        content = envelope.original_content
        assert isinstance(content, bytes) and envelope.mail_from is not None
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                content,
                bool(session.authenticated),
                server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return "250 2.0.0 Ok: queued as 4TEST1"

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        challenge = f"<{secrets.randbelow(10**9)}.{int(time.time())}@mx.test>".encode()
        response = await server.challenge_auth(challenge)
        if response is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(response, bytes)
        self.auth_log.append(("CRAM-MD5", response))
        user, _, digest = response.partition(b" ")
        expected = hmac.new(PASSWORD.encode(), challenge, "md5").hexdigest().encode()
        ok = user == USER.encode() and hmac.compare_digest(digest, expected)
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(user, b""))

    @auth_mechanism("XOAUTH2")
    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 2:
            blob = base64.b64decode(args[1], validate=True)
        else:
            answer = await server.challenge_auth(b"")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            assert isinstance(answer, bytes)
            blob = answer
        self.auth_log.append(("XOAUTH2", blob))
        if blob == f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01".encode():
            return AuthResult(success=True, auth_data=LoginPassword(USER.encode(), b""))
        # As Gmail does: a 334 with a JSON error; the client must answer with an empty line.
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.test/"})
        answer = await server.challenge_auth(error.encode())
        self.auth_log.append(("XOAUTH2-error-answer", b"" if answer is MISSING else bytes(answer)))
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )


def password_authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


class SmtpPeer:
    """An aiosmtpd Controller on 127.0.0.1 with a Recorder; use as a context manager."""

    def __init__(self, handler: Recorder | None = None, **smtp_kwargs: Any) -> None:
        self.handler = handler or Recorder()
        self.port = free_port()
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, **smtp_kwargs
        )

    def __enter__(self) -> SmtpPeer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class SilentServer:
    """Accepts TCP connections and never says anything (a server that hangs before greeting)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()
