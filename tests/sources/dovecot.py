"""A private Dovecot (IMAP and POP3) on free 127.0.0.1 ports for the IMAP and POP3 source tests,
plus real messages from the shared test corpus. Each test gets a user of its own, so one server
serves a whole test module; the test module starts it and stops it by PID (see the `dovecot`
fixture of tests/conftest.py)."""

from __future__ import annotations

import os
import poplib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from itertools import count
from typing import Protocol

import trustme
from imapclient import IMAPClient

from mailkeep.core.message import RawMessage, SourceProblem
from tests.helpers import TRICKY, free_port, public_dir, stop_process

# Real messages of several kinds: 8-bit and ISO-2022-JP bodies, nested multiparts, CRLF files,
# RFC 2047 headers, a long-header message.
CORPUS_FILES = (
    "cpython-test_email/msg_01.txt",
    "cpython-test_email/msg_02.txt",
    "cpython-test_email/msg_07.txt",
    "cpython-test_email/msg_15.txt",
    "cpython-test_email/msg_44.txt",
    "flanker/torture.eml",
    "mime4j/long-headers.msg",
    "php-mime-mail-parser/m0001",
    "sisimai-set-of-emails/maildir/bsd/lhost-sendmail-01.eml",
    "sisimai-set-of-emails/maildir/dos/lhost-sendmail-01.eml",
    "ruby-mail/multi_charset/japanese.eml",
    "stalwart-mail-parser/eml/rfc/001.eml",
)
PASSWORD = "pw-Dove-7c1e"

CONF = """\
base_dir = {dv}/run
state_dir = {dv}/state
log_path = {dv}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{dv}/cert.pem
ssl_key = <{dv}/key.pem
disable_plaintext_auth = no
# APOP needs the password in clear in the passdb ({{PLAIN}} in the passwd-file).
auth_mechanisms = plain login apop xoauth2
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
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
  }}
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


def corpus_messages() -> list[bytes]:
    """The corpus messages with CRLF line ends, as IMAP carries them (APPEND makes them so)."""
    out = []
    for name in CORPUS_FILES:
        data = (TRICKY / name).read_bytes()
        out.append(re.sub(rb"\r\n|\r|\n", b"\r\n", data))
    return out


class Dovecot:
    """IMAP on `imap_port` (STARTTLS offered), IMAPS on `imaps_port`, POP3 on `pop3_port`
    (STLS offered), POP3S on `pop3s_port`; the certificate is from `ca` (a new CA unless one
    is given). Accounts user1..user100 with PASSWORD, plus `accounts` (name -> password)."""

    def __init__(self, ca: trustme.CA | None = None,
                 accounts: dict[str, str] | None = None) -> None:
        exe = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
        )
        if exe is None:
            raise RuntimeError(
                "dovecot is not installed (packages dovecot-core dovecot-imapd dovecot-pop3d; "
                "`make test` installs them): the IMAP and POP3 tests need a real server"
            )
        self.exe = exe
        self.ca = ca or trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        # Not under pytest's 0700 temp root: Dovecot's processes run as other users.
        self.dir = public_dir("mailkeep-dovecot-")
        self.imap_port, self.imaps_port = free_port(), free_port()
        self.pop3_port, self.pop3s_port = free_port(), free_port()
        self.log = self.dir / "dovecot.log"
        for sub in ("run", "state", "mail"):
            (self.dir / sub).mkdir()
        cert.cert_chain_pems[0].write_to_path(str(self.dir / "cert.pem"))
        cert.private_key_pem.write_to_path(str(self.dir / "key.pem"))
        self.ca_file = str(self.dir / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self._users = count(1)
        self._passwd = self.dir / "passwd"
        self._passwd.write_text(
            "".join(f"user{n}:{{PLAIN}}{PASSWORD}\n" for n in range(1, 101))
            + "".join(f"{name}:{{PLAIN}}{pw}\n" for name, pw in (accounts or {}).items())
        )
        (self.dir / "dovecot.conf").write_text(
            CONF.format(
                dv=self.dir,
                imap=self.imap_port,
                imaps=self.imaps_port,
                pop3=self.pop3_port,
                pop3s=self.pop3s_port,
            )
        )
        subprocess.run(["chown", "-R", "nobody:nogroup", str(self.dir / "mail")], check=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def new_user(self) -> str:
        """A user with an empty mailbox (password PASSWORD)."""
        n = next(self._users)
        assert n <= 100, "add more users to the passwd file"
        return f"user{n}"

    def admin(self, user: str) -> IMAPClient:
        """A plain IMAP connection as `user`, for filling and changing the mailbox."""
        client = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=10)
        client.login(user, PASSWORD)
        return client

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "-F", "-c", str(self.dir / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        ports = (self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(
                    f"dovecot exited with {self.proc.returncode}: {err}{self.logs()}"
                )
            if all(_listening(p) for p in ports):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen within 10 s: {self.logs()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def logins(self, user: str) -> int:
        """How many POP3 logins of `user` Dovecot has logged so far."""
        return sum(1 for line in self.logs().splitlines()
                   if f"pop3-login: Info: Login: user=<{user}>" in line)

    def wait_logins(self, user: str, n: int, timeout: float = 5.0) -> int:
        """Dovecot's log process writes a moment after the login; wait until it shows n."""
        deadline = time.monotonic() + timeout
        while self.logins(user) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.logins(user)

    def settled_logins(self, user: str) -> int:
        """How many POP3 logins of `user` Dovecot has logged, once every login made before
        this call is in the log: a POP3 login of a user of its own is made here and waited
        for. Every pop3-login process writes to Dovecot's log process through the same pipe,
        in the order of the logins, so a login made earlier is logged before that one."""
        marker = self.new_user()
        client = poplib.POP3("127.0.0.1", self.pop3_port, timeout=10)
        try:
            client.user(marker)
            client.pass_(PASSWORD)
        finally:
            client.quit()
        assert self.wait_logins(marker, 1, timeout=30) == 1, self.logs()
        return self.logins(user)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


class Confirming(Protocol):
    def __iter__(self) -> Iterator[RawMessage | SourceProblem]: ...

    def confirm(self, message: RawMessage) -> None: ...


def run(source: Confirming, confirm: bool = True) -> list[RawMessage]:
    """Every message of a source run (a problem fails the test), each confirmed durable
    unless asked not to, as the archive would."""
    out = []
    for item in source:
        assert not isinstance(item, SourceProblem), item
        out.append(item)
        if confirm:
            source.confirm(item)
    return out
