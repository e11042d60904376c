"""Real peers for the sending tests: an aiosmtpd server, a private Dovecot POP3 server, and a
socket that accepts and never speaks. Everything listens on 127.0.0.1 and is stopped by the test
that started it."""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
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

USER = "alice"
PASSWORD = "pw-Secr3t-9f2c"
TOKEN = "ya29.token-Z8d1x"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


DOVECOT_CONF = """\
base_dir = {dv}/run
state_dir = {dv}/state
log_path = {dv}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{dv}/cert.pem
ssl_key = <{dv}/key.pem
disable_plaintext_auth = no
# APOP needs the password in clear in the passdb ({{PLAIN}} in the passwd-file).
auth_mechanisms = plain login apop
auth_failure_delay = 0
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dv}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={dv}/mail/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
  }}
}}
# No auth penalty (a growing delay after a failed login): the tests fail a login on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
pop3_uidl_format = %08Xu%08Xv
"""


class Dovecot:
    """A private Dovecot POP3 server: plain/STLS on `port`, implicit TLS on `tls_port`."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        exe = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
        )
        if exe is None:
            raise RuntimeError(
                "dovecot is not installed (packages dovecot-core dovecot-pop3d; .ci/run installs "
                "them): the POP-before-SMTP tests need a real POP3 server"
            )
        self.exe = exe
        # Not under pytest's 0700 temp root: Dovecot's processes run as other users.
        self.dir = Path(tempfile.mkdtemp(prefix="mailkeep-dovecot-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port()
        self.log = self.dir / "dovecot.log"
        for sub in ("run", "state", f"mail/{USER}/Maildir/cur", f"mail/{USER}/Maildir/new",
                    f"mail/{USER}/Maildir/tmp"):
            (self.dir / sub).mkdir(parents=True)
        cert.cert_chain_pems[0].write_to_path(str(self.dir / "cert.pem"))
        cert.private_key_pem.write_to_path(str(self.dir / "key.pem"))
        (self.dir / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        (self.dir / "dovecot.conf").write_text(
            DOVECOT_CONF.format(dv=self.dir, pop3=self.port, pop3s=self.tls_port)
        )
        subprocess.run(["chown", "-R", "nobody:nogroup", str(self.dir / "mail")], check=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "-F", "-c", str(self.dir / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(
                    f"dovecot exited with {self.proc.returncode}: {err}{self.logs()}"
                )
            if all(_listening(p) for p in (self.port, self.tls_port)):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen within 10 s: {self.logs()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def logins(self) -> int:
        """How many POP3 logins Dovecot has logged so far."""
        return sum(
            1 for line in self.logs().splitlines()
            if "pop3-login: Info: Login: user=<" + USER + ">" in line
        )

    def wait_logins(self, n: int, timeout: float = 5.0) -> int:
        """Dovecot's log process writes a moment after the login; wait until it shows n."""
        deadline = time.monotonic() + timeout
        while self.logins() < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.logins()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False
