"""Send one error-notification mail over SMTP, optionally after a POP3 login (POP before SMTP).

The standard library does the protocols (smtplib, poplib, ssl); this module adds what it lacks
(XOAUTH2) and turns every failure into a SendError that names the step, the server and its reply.
`compose.py` builds the bytes; `config.py` turns the stored configuration into the targets here.
"""

from __future__ import annotations

import binascii
import poplib
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mailkeep.core.errors import InvalidArgument
from mailkeep.core.tls import client_context
from mailkeep.notify.compose import compose, envelope_address

TlsMode = Literal["none", "implicit", "starttls"]  # for POP3 "starttls" means STLS
AuthMech = Literal["none", "plain", "login", "cram-md5", "xoauth2"]
Step = Literal["connect", "tls", "pop-login", "auth", "sender", "recipient", "data", "compose"]


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    tls: TlsMode = "none"
    verify: bool = True  # certificate and host name checked; False is for testing only
    ca_file: str | None = None  # PEM of extra CAs to trust (a private CA), besides the system's
    timeout: float = 60.0  # seconds, bounds every network step (connect, TLS, each command)
    auth: AuthMech = "none"
    username: str | None = None
    secret: str | None = None  # password, or the OAuth2 access token for xoauth2

    def __repr__(self) -> str:
        return _repr_without(self, "secret")


@dataclass(frozen=True)
class Pop3Target:
    """The POP3 server to log in to before sending (POP before SMTP)."""

    host: str
    port: int
    tls: TlsMode = "none"
    verify: bool = True
    ca_file: str | None = None
    timeout: float = 60.0
    username: str = ""
    password: str = ""
    apop: bool = False  # APOP (RFC 1939) instead of USER/PASS
    interval_s: int = 0  # a successful POP login is reused this long; 0: before every send

    def __repr__(self) -> str:
        return _repr_without(self, "password")


@dataclass(frozen=True)
class Outgoing:
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    encoding: str = "utf-8"  # "us-ascii", "utf-8", "iso-2022-jp", "shift_jis"


def _repr_without(obj: SmtpTarget | Pop3Target, hidden: str) -> str:
    fields = ", ".join(
        f"{name}={repr('***') if name == hidden and value else repr(value)}"
        for name, value in vars(obj).items()
    )
    return f"{type(obj).__name__}({fields})"


class SendError(Exception):
    """Sending failed at `step`; str() says what, where and the server's reply, never a secret."""

    def __init__(self, step: Step, message: str, reply: str | None = None) -> None:
        super().__init__(message)
        self.step: Step = step
        self.reply = reply


class _Progress:
    """The step a connection is in, readable after a constructor raised."""

    def __init__(self, step: Step) -> None:
        self.step: Step = step


# --- TLS ------------------------------------------------------------------------------------


def _tls_context(verify: bool, ca_file: str | None,
                 fail: Callable[[str], SendError]) -> ssl.SSLContext:
    try:
        return client_context(verify, ca_file)
    except InvalidArgument as exc:  # the same words whatever kept the caFile from being used
        raise fail(exc.message) from None


def _describe(exc: BaseException, timeout: float) -> str:
    """Plain words for a network or TLS failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if isinstance(exc.__context__, TimeoutError):
            return f"no reply within {timeout:g} s"
        if isinstance(exc.__context__, ssl.SSLError):
            return _describe(exc.__context__, timeout)
        return "the server closed the connection"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- SMTP -----------------------------------------------------------------------------------


class _Smtp(smtplib.SMTP):
    def __init__(self, target: SmtpTarget, progress: _Progress) -> None:
        self._progress = progress
        # An explicit EHLO name avoids smtplib's reverse DNS lookup, which no timeout bounds;
        # it is replaced by the address literal of our end once connected.
        super().__init__(target.host, target.port, "localhost", target.timeout)


class _SmtpSsl(smtplib.SMTP_SSL):
    def __init__(self, target: SmtpTarget, progress: _Progress, ctx: ssl.SSLContext) -> None:
        self._progress = progress
        super().__init__(target.host, target.port, "localhost", timeout=target.timeout,
                         context=ctx)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), timeout)
        self._progress.step = "tls"
        wrapped = self.context.wrap_socket(sock, server_hostname=host)
        self._progress.step = "connect"  # the greeting comes next
        return wrapped


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return _one_line(f"{code} {text}")


class _Sender:
    """One SMTP session: the steps in order, each failure mapped to a SendError."""

    def __init__(self, target: SmtpTarget) -> None:
        self.target = target
        self.where = f"{target.host}:{target.port}"
        self.progress = _Progress("connect")

    def fail(self, message: str, reply: str | None = None) -> SendError:
        text = f"{self.progress.step} failed on SMTP server {self.where}: {message}"
        if reply:
            text += f" (server replied: {reply})"
        secret = self.target.secret
        if secret:
            text = text.replace(secret, "***")
            reply = reply.replace(secret, "***") if reply else reply
        return SendError(self.progress.step, text, reply)

    def run(self, sender: str, recipients: list[str], data: bytes) -> str:
        try:
            conn = self.open()
        except (OSError, smtplib.SMTPException) as exc:
            raise self.map(exc) from None
        try:
            return self.session(conn, sender, recipients, data)
        except (OSError, smtplib.SMTPException) as exc:
            raise self.map(exc) from None
        finally:
            _close_smtp(conn)

    def map(self, exc: BaseException) -> SendError:
        if isinstance(exc, smtplib.SMTPResponseException):
            what = {
                "connect": "the server refused the connection",
                "tls": "STARTTLS was refused",
                "auth": f"authentication ({self.target.auth.upper()}) was refused",
                "sender": "the sender was refused",
                "data": "the message was refused",
            }.get(self.progress.step, "the server refused")
            return self.fail(what, _reply(exc.smtp_code, exc.smtp_error))
        if isinstance(exc, ssl.SSLError):
            self.progress.step = "tls"
        return self.fail(_describe(exc, self.target.timeout))

    def open(self) -> smtplib.SMTP:
        target = self.target
        ctx = None
        if target.tls != "none":
            self.progress.step = "tls"
            ctx = _tls_context(target.verify, target.ca_file, self.fail)
            self.progress.step = "connect"
        if target.tls == "implicit":
            assert ctx is not None
            return _SmtpSsl(target, self.progress, ctx)
        return _Smtp(target, self.progress)

    def session(self, conn: smtplib.SMTP, sender: str, recipients: list[str], data: bytes) -> str:
        target = self.target
        if conn.sock is not None:
            conn.local_hostname = _address_literal(conn.sock)
        self.hello(conn)
        if target.tls == "starttls":
            self.progress.step = "tls"
            if not conn.has_extn("starttls"):
                raise self.fail("the server does not offer STARTTLS; not sending in clear")
            ctx = _tls_context(target.verify, target.ca_file, self.fail)
            code, text = conn.starttls(context=ctx)
            self.progress.step = "connect"
            self.hello(conn)
        if target.auth != "none":
            self.progress.step = "auth"
            self.authenticate(conn)
        self.progress.step = "sender"
        code, text = conn.mail(sender)
        if code != 250:
            raise self.fail(f"MAIL FROM:<{sender}> was refused", _reply(code, text))
        self.progress.step = "recipient"
        refused = []
        for rcpt in recipients:
            code, text = conn.rcpt(rcpt)
            if code not in (250, 251):
                refused.append((rcpt, _reply(code, text)))
        if refused:
            names = "; ".join(f"{r} ({reply})" for r, reply in refused)
            accepted = len(recipients) - len(refused)
            raise self.fail(
                f"{len(refused)} of {len(recipients)} recipients refused: {names}"
                + (f"; nothing was sent to the {accepted} accepted" if accepted else ""),
                refused[0][1],
            )
        self.progress.step = "data"
        code, text = conn.data(data)
        if code != 250:
            raise self.fail("the message was refused", _reply(code, text))
        return f"sent to {len(recipients)} recipient(s) via {self.where}: {_reply(code, text)}"

    def hello(self, conn: smtplib.SMTP) -> None:
        code, text = conn.ehlo()
        if not 200 <= code <= 299:
            code, text = conn.helo()
            if not 200 <= code <= 299:
                raise self.fail("EHLO and HELO were refused", _reply(code, text))

    def authenticate(self, conn: smtplib.SMTP) -> None:
        target = self.target
        mech = target.auth.upper()
        offered = conn.esmtp_features.get("auth", "").upper().split()
        if mech not in offered:
            tls_hint = "" if target.tls != "none" else " (some servers offer AUTH only over TLS)"
            raise self.fail(
                f"the server does not offer AUTH {mech}; it offers "
                + (", ".join(offered) if offered else "no AUTH mechanism")
                + tls_hint
            )
        if not target.username or not target.secret:
            raise self.fail(f"AUTH {mech} needs a username and a secret")
        if not (target.username.isascii() and target.secret.isascii()):
            raise self.fail(f"AUTH {mech}: the username and secret must be ASCII")
        conn.user, conn.password = target.username, target.secret
        if mech == "XOAUTH2":
            self.xoauth2(conn, target.username, target.secret)
            return
        authobjects: dict[str, Callable[..., str]] = {
            "PLAIN": conn.auth_plain,
            "LOGIN": conn.auth_login,
            "CRAM-MD5": conn.auth_cram_md5,
        }
        authobject = authobjects[mech]
        conn.auth(mech, authobject, initial_response_ok=mech != "CRAM-MD5")

    def xoauth2(self, conn: smtplib.SMTP, user: str, token: str) -> None:
        # smtplib has no XOAUTH2; the exchange is one initial response, and on failure the server
        # sends a 334 with a base64 JSON error, to which the client answers with an empty line.
        errors: list[str] = []

        def authobject(challenge: bytes | None = None) -> str:
            if challenge is None:
                return f"user={user}\x01auth=Bearer {token}\x01\x01"
            errors.append(_one_line(challenge.decode("utf-8", "replace")))
            return ""

        try:
            conn.auth("XOAUTH2", authobject, initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as exc:
            detail = f"; error details: {errors[-1]}" if errors else ""
            raise self.fail(
                "authentication (XOAUTH2) was refused" + detail,
                _reply(exc.smtp_code, exc.smtp_error),
            ) from None
        except binascii.Error:
            raise self.fail("the server's XOAUTH2 challenge is not base64") from None


def _address_literal(sock: socket.socket) -> str:
    host = sock.getsockname()[0]
    return f"[IPv6:{host}]" if ":" in host else f"[{host}]"


def _close_smtp(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        conn.close()


# --- POP before SMTP ------------------------------------------------------------------------


class _Pop3(poplib.POP3):
    def __init__(self, target: Pop3Target, progress: list[str], sockets: list[socket.socket]
                 ) -> None:
        self._progress = progress
        self._sockets = sockets
        super().__init__(target.host, target.port, target.timeout)

    def _create_socket(self, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout)
        self._sockets.append(sock)
        self._progress.append("greeting")
        return sock


class _Pop3Ssl(poplib.POP3_SSL):
    def __init__(self, target: Pop3Target, progress: list[str], sockets: list[socket.socket],
                 ctx: ssl.SSLContext) -> None:
        self._progress = progress
        self._sockets = sockets
        self._ctx = ctx
        super().__init__(target.host, target.port, timeout=target.timeout, context=ctx)

    def _create_socket(self, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout)
        self._sockets.append(sock)
        self._progress.append("TLS handshake")
        wrapped = self._ctx.wrap_socket(sock, server_hostname=self.host)
        self._sockets.append(wrapped)
        self._progress.append("greeting")
        return wrapped


_APOP_TIMESTAMP = re.compile(rb"<[^>]*@[^>]*>")  # RFC 1939 7: the greeting's msg-id


def pop_login(target: Pop3Target) -> str:
    """Log in to the POP3 server and log out again; returns the server's reply to the login."""
    where = f"{target.host}:{target.port}"
    progress = ["connect"]
    sockets: list[socket.socket] = []

    def fail(message: str, reply: str | None = None) -> SendError:
        text = f"pop-login failed on POP3 server {where} ({progress[-1]}): {message}"
        if reply:
            text += f" (server replied: {reply})"
        if target.password:
            text = text.replace(target.password, "***")
            reply = reply.replace(target.password, "***") if reply else reply
        return SendError("pop-login", text, reply)

    conn: poplib.POP3 | None = None
    try:
        if target.tls == "none" or target.tls == "starttls":
            conn = _Pop3(target, progress, sockets)
        else:
            ctx = _tls_context(target.verify, target.ca_file, fail)
            conn = _Pop3Ssl(target, progress, sockets, ctx)
        if target.tls == "starttls":
            progress.append("STLS")
            if "STLS" not in conn.capa():
                raise fail("the server does not offer STLS; not logging in in clear")
            conn.stls(_tls_context(target.verify, target.ca_file, fail))
        progress.append("APOP" if target.apop else "USER/PASS")
        if target.apop:
            if not _APOP_TIMESTAMP.search(conn.getwelcome()):
                raise fail("the server does not offer APOP (no timestamp in its greeting)",
                           _one_line(conn.getwelcome().decode("utf-8", "replace")))
            reply = conn.apop(target.username, target.password)
        else:
            conn.user(target.username)
            reply = conn.pass_(target.password)
        progress.append("QUIT")
        conn.quit()
        conn = None
        return _one_line(reply.decode("utf-8", "replace"))
    except poplib.error_proto as exc:
        raw = exc.args[0] if exc.args else b""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise fail("the server refused", _one_line(text)) from None
    except (OSError, ssl.SSLError) as exc:
        raise fail(_describe(exc, target.timeout)) from None
    finally:
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass  # after a failed STLS handshake the socket is already gone
        for sock in sockets:
            sock.close()


class PopBeforeSmtp:
    """Remembers when the last successful POP login happened (per Pop3Target) so that
    interval_s is honoured; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[Pop3Target, float] = {}

    def login_if_due(self, target: Pop3Target) -> bool:
        """Log in unless a login to `target` succeeded less than interval_s ago; True if it did."""
        # The lock is held across the login so that concurrent senders log in once, not twice.
        with self._lock:
            last = self._last.get(target)
            started = self._clock()
            if target.interval_s > 0 and last is not None and started - last < target.interval_s:
                return False
            self._last.pop(target, None)
            pop_login(target)
            self._last[target] = started
            return True


# --- the entry point ------------------------------------------------------------------------


def send(
    smtp: SmtpTarget,
    message: Outgoing,
    pop: Pop3Target | None = None,
    pop_state: PopBeforeSmtp | None = None,
) -> str:
    """Send one mail; returns a one-line summary (e.g. the server's final 250 reply).

    With `pop`, log in to that POP3 server first; `pop_state` remembers logins so that
    `pop.interval_s` is honoured (without it, every send logs in). Raises SendError.
    """
    try:
        data = compose(message)
    except ValueError as exc:
        raise SendError("compose", f"compose failed: {exc}") from None
    if pop is not None:
        (pop_state or PopBeforeSmtp()).login_if_due(pop)
    sender = envelope_address(message.sender)
    recipients = [envelope_address(r) for r in message.recipients]
    return _Sender(smtp).run(sender, recipients, data)


__all__ = [
    "AuthMech",
    "Outgoing",
    "Pop3Target",
    "PopBeforeSmtp",
    "SendError",
    "SmtpTarget",
    "TlsMode",
    "pop_login",
    "send",
]
