"""A private Postfix on a free 127.0.0.1 port that journals a copy of every message it accepts
(`always_bcc`) over SMTP to mailkeep's journal receiver, for tests/web/test_postfix_journal.py.

Everything is in a throwaway directory of its own (config, queue, data, log, the virtual
Maildir); chroot is off; it accepts mail only for `archive.test` (delivered into one virtual
Maildir) and relays nothing: the only mail that leaves it is the journal copy, routed by
`transport_maps` to `smtp:[127.0.0.1]:<mailkeep's SMTP port>`. Started with `postfix start`,
stopped with `postfix stop` and, failing that, by the master's PID.

Recipe and pitfalls: the project's shared PEERS.md, "Postfix: private instance on 127.0.0.1:10025".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.helpers import free_port, public_dir

JOURNAL = "journal@journal.invalid"
LOCAL_DOMAIN = "archive.test"


def postfix_exe() -> str | None:
    return shutil.which("postfix") or (
        "/usr/sbin/postfix" if os.path.exists("/usr/sbin/postfix") else None)


MAIN_CF = """\
compatibility_level = 3.6
config_directory = {pf}/etc
queue_directory = {pf}/queue
data_directory = {pf}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{local}
mydomain = {local}
myorigin = $mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# Clients on 127.0.0.1 only, and no relaying for anybody: only {local} is accepted.
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject
relay_domains =
virtual_mailbox_domains = {local}
virtual_mailbox_base = {pf}/vmail
virtual_mailbox_maps = static:local/Maildir/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
# Not smaller than message_size_limit, or the virtual agent dies and is throttled for 60 s.
virtual_mailbox_limit = 0
mailbox_size_limit = 0
message_size_limit = 104857600
default_transport = error:outbound mail disabled in this test instance
relay_transport = error:outbound mail disabled in this test instance
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
# maillog_file must be under maillog_file_prefixes, or postfix does not start.
maillog_file_prefixes = {pf}
maillog_file = {pf}/maillog

# The journal: a copy of every message, to mailkeep's SMTP receiver.
always_bcc = {journal}
transport_maps = texthash:{pf}/etc/transport

# Keep the message as the client sent it, as a journal wants it: no rewriting of addresses in
# the headers of mail from 127.0.0.1 (nor added Date/Message-ID/From), no headers dropped
# (Postfix drops Bcc and Content-Length by default), no folding of lines over 998 octets
# on the way out.
local_header_rewrite_clients =
message_drop_headers =
smtp_line_length_limit = 0

# Retry within seconds when mailkeep is down.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 2s
"""

# The services of Debian's master.cf that this instance needs, with chroot (the 5th column)
# off: chrooted daemons cannot start in a private instance.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n - 0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n - - trivial-rewrite
bounce     unix  - - n - 0 bounce
defer      unix  - - n - 0 bounce
trace      unix  - - n - 0 bounce
verify     unix  - - n - 1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n - - proxymap
proxywrite unix  - - n - 1 proxymap
smtp       unix  - - n - - smtp
relay      unix  - - n - - smtp
showq      unix  n - n - - showq
error      unix  - - n - - error
retry      unix  - - n - - error
discard    unix  - - n - - discard
virtual    unix  - n n - - virtual
anvil      unix  - - n - 1 anvil
scache     unix  - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
"""


class Postfix:
    """A private Postfix listening on 127.0.0.1:`port` that journals to 127.0.0.1:`journal_port`.
    Use as a context manager, or call start() and stop()."""

    def __init__(self, journal_port: int) -> None:
        exe = postfix_exe()
        assert exe is not None, "postfix is not installed (`make test` installs it)"
        self.exe = exe
        self.sbin = Path(exe).parent
        self.journal_port = journal_port
        self.port = free_port()
        # Not under pytest's tmp_path: its parents are root-only (0700), and the unprivileged
        # Postfix daemons (and the virtual agent, as uid 65534) must reach their directories.
        self.dir = public_dir("mk-postfix-")
        self.etc = self.dir / "etc"
        self.maillog = self.dir / "maillog"
        self.maildir = self.dir / "vmail" / "local" / "Maildir"
        self.master_pid: int | None = None

    # -- life -----------------------------------------------------------------------------
    def start(self) -> None:
        pf = str(self.dir)
        for sub in ("etc", "queue", "data", "vmail"):
            (self.dir / sub).mkdir(mode=0o755)
        (self.etc / "main.cf").write_text(MAIN_CF.format(pf=pf, local=LOCAL_DOMAIN,
                                                         journal=JOURNAL))
        (self.etc / "master.cf").write_text(MASTER_CF.format(port=self.port))
        # texthash: read as it is, no postmap needed.
        (self.etc / "transport").write_text(
            f"{JOURNAL.split('@')[1]} smtp:[127.0.0.1]:{self.journal_port}\n")
        shutil.chown(self.dir / "data", "postfix")  # data_directory must be postfix's
        shutil.chown(self.dir / "vmail", "nobody", "nogroup")
        self.run("postfix", "check")  # creates the missing queue directories
        self.run("postfix", "start")
        pid_file = self.dir / "queue" / "pid" / "master.pid"
        deadline = time.monotonic() + 30
        while True:
            try:
                self.master_pid = int(pid_file.read_text().split()[0])
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as probe:
                    probe.noop()
                break
            except (OSError, ValueError, IndexError, smtplib.SMTPException):
                assert time.monotonic() < deadline, "postfix did not start:\n" + self.log()
                time.sleep(0.1)

    def stop(self) -> None:
        """Stops the master and its children (`postfix stop`, else by PID); removes the
        directory. Safe to call more than once, and after a failed start."""
        try:
            if self.master_pid is not None:
                subprocess.run([self.exe, "-c", str(self.etc), "stop"], capture_output=True,
                               timeout=60)
                deadline = time.monotonic() + 30
                while _alive(self.master_pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if _alive(self.master_pid):
                    os.kill(self.master_pid, signal.SIGKILL)
                self.master_pid = None
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Postfix:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use ------------------------------------------------------------------------------
    def run(self, command: str, *args: str) -> str:
        """A Postfix command (postfix, postqueue, ...) against this instance's config."""
        done = subprocess.run([str(self.sbin / command), "-c", str(self.etc), *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (f"{command} {' '.join(args)}: {done.stdout}{done.stderr}"
                                      f"\n{self.log()}")
        return done.stdout

    def send(self, sender: str, recipients: list[str], raw: bytes) -> str:
        """Sends raw (CRLF lines) over SMTP; returns the queue ID of the 250 answer."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.ehlo()
            code, text = client.mail(sender)
            assert code == 250, text
            for rcpt in recipients:
                code, text = client.rcpt(rcpt)
                assert code == 250, (rcpt, text)
            code, text = client.data(raw)
            assert code == 250, text
        found = re.search(rb"queued as (\w+)", text)
        assert found, text
        return found.group(1).decode()

    def queue(self) -> list[dict[str, Any]]:
        """`postqueue -j`: one dict per queued message (queue_name, queue_id, sender,
        recipients: [{address, delay_reason}])."""
        return [json.loads(line) for line in self.run("postqueue", "-j").splitlines() if line]

    def log(self) -> str:
        try:
            return self.maillog.read_text(errors="replace")
        except OSError:
            return "(no maillog)"

    def journal_deliveries(self) -> list[tuple[str, str, str]]:
        """(queue ID, status, text) of every attempt to deliver a journal copy, from the log."""
        pattern = re.compile(r" postfix/\S+: (\w+): to=<" + re.escape(JOURNAL)
                             + r">,.* status=(\w+) \((.*)\)$", re.M)
        return pattern.findall(self.log())

    def local_deliveries(self) -> list[str]:
        """Queue IDs of the copies delivered into the virtual Maildir, from the log."""
        pattern = re.compile(r" postfix/virtual\[\d+\]: (\w+): to=<[^>]*@"
                             + re.escape(LOCAL_DOMAIN) + r">,.* status=sent ", re.M)
        return pattern.findall(self.log())


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie, which nobody may reap here, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
