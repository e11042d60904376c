"""The clients of bench/soak.py: the benign mix (SMTP journaling, an IMAP mailbox that keeps
growing, Administration API reads and long polls, console logins) and the hostile one (a huge
encoded-word Subject, 200 MB bodies, 60 MB messages, byte-at-a-time heads and bodies, wrong
passwords).

Every client is a thread (the slow ones share one asyncio loop) that runs until `Shared.stop`,
waits while the server is down (`Shared.up`), and records each request it makes: its kind, when
it started, how long it took, whether the hostile clients were running then, and its outcome
("ok", "cut" when a kill ended it, or what went wrong). soak.py owns the server, the kills and
the phases; nothing here starts or stops a process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import random
import re
import select
import smtplib
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HOSTILE_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 10)]  # benign clients use 127.0.0.1
JOURNAL_FROM, JOURNAL_TO = "mta@soak.test", "archive@soak.test"  # routed to journal/Inbox
HOSTILE_TO = "hostile@soak.test"  # the address of the account `hostile`: hostile/Inbox
GUESSED_USERS = ["admin", "operator", "journal", "root", "postmaster", "backup"]
POLL_MS = 2000  # the long polls' timeout
TOKEN = re.compile(r"\b(s[jhi]-\d{6})\b")


# -- what the clients share ------------------------------------------------------------------
@dataclass
class Target:
    """Where the server is and who may log in."""

    http_port: int
    smtp_port: int
    cafile: Path
    admin: tuple[str, str]
    console: tuple[str, str]
    journal: tuple[str, str]
    host: str = "127.0.0.1"
    _ctx: ssl.SSLContext | None = None

    @property
    def base(self) -> str:
        return f"https://{self.host}:{self.http_port}"

    def tls(self) -> ssl.SSLContext:
        if self._ctx is None:
            self._ctx = ssl.create_default_context(cafile=str(self.cafile))
        return self._ctx

    def http(self, source: str = "127.0.0.1", auth: tuple[str, str] | None = None,
             timeout: float = 60) -> httpx.Client:
        transport = httpx.HTTPTransport(verify=self.tls(), local_address=source)
        return httpx.Client(base_url=self.base, auth=auth, timeout=timeout, transport=transport)

    def smtp(self, source: str = "127.0.0.1", login: tuple[str, str] | None = None,
             timeout: float = 60) -> smtplib.SMTP:
        """An SMTP session after STARTTLS (and AUTH when `login` is given)."""
        client = smtplib.SMTP(self.host, self.smtp_port, timeout=timeout,
                              source_address=(source, 0))
        try:
            client.ehlo("soak.test")
            client.starttls(context=self.tls())
            client.ehlo("soak.test")
            if login is not None:
                client.login(*login)
        except BaseException:
            client.close()
            raise
        return client


@dataclass
class Record:
    kind: str
    start: float  # time.monotonic()
    seconds: float
    hostile: bool  # the hostile clients were running when it started
    outcome: str  # "ok", "cut" (a kill ended it) or what went wrong


@dataclass
class Ledger:
    """Messages one kind of client handed over: token -> SHA-256 of the bytes, and which of
    them were acknowledged (SMTP: a 2xx to DATA; IMAP: APPEND done)."""

    sent: dict[str, str] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    attempts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, token: str, raw: bytes) -> None:
        with self.lock:
            self.sent[token] = hashlib.sha256(raw).hexdigest()
            self.attempts[token] += 1

    def ack(self, token: str) -> None:
        with self.lock:
            self.acked.add(token)


class Shared:
    """State every client reads: whether the server is up (and which lifetime of it), whether
    the hostile clients should run, whether to stop; and what they record."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.up = threading.Event()
        self.stop = threading.Event()
        self.hostile = threading.Event()
        self.generation = 0  # the server's lifetime; soak.py counts it up at each start
        self.records: list[Record] = []
        self.notes: Counter[str] = Counter()  # what the hostile clients saw, by kind/outcome
        self.journal = Ledger()
        self.big_subject = Ledger()
        self.imap = Ledger()
        self.poll_target: tuple[int, str] | None = None  # (generation, token) to long-poll
        self.held: list[float] = []  # seconds each slow connection was held open
        self.body_sent: dict[str, list[int]] = {}  # bytes of a 200 MB body sent, by route
        self._lock = threading.Lock()
        self._serial = itertools.count(1)

    def serial(self) -> int:
        return next(self._serial)

    def wait_up(self) -> bool:
        """Block while the server is down; False once the run is to stop."""
        while not self.stop.is_set():
            if self.up.wait(0.2):
                return True
        return False

    def sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def record(self, kind: str, start: float, hostile: bool, outcome: str,
               seconds: float | None = None) -> None:
        took = time.monotonic() - start if seconds is None else seconds
        with self._lock:
            self.records.append(Record(kind, start, took, hostile, outcome))

    def note(self, what: str) -> None:
        with self._lock:
            self.notes[what] += 1

    def failure(self, generation: int, what: str) -> str:
        """The outcome of a request that failed: "cut" if the server was killed meanwhile."""
        if generation != self.generation or not self.up.is_set():
            return "cut"
        return what


def error_name(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}"
    if isinstance(exc, httpx.TimeoutException | socket.timeout | TimeoutError):
        return "timeout"
    return type(exc).__name__


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The Administration API's answer (a JSON envelope after a UTF-8 BOM)."""
    response.raise_for_status()
    body: dict[str, Any] = json.loads(response.content.decode("utf-8-sig"))
    return body


# -- messages --------------------------------------------------------------------------------
def crlf(raw: bytes) -> bytes:
    """Line ends as SMTP and IMAP carry them (smtplib would make them so anyway)."""
    out = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    return out if out.endswith(b"\r\n") else out + b"\r\n"


def tagged(raw: bytes, token: str) -> bytes:
    """A corpus message made unique: its own Message-ID, and the token first in its Subject
    (where GetMessages shows it)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines: list[bytes] = []
    subject = b""
    dropping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                lines.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        dropping = name in (b"message-id", b"subject")
        if name == b"subject":
            subject = line.split(b":", 1)[1].strip()
        if not dropping:
            lines.append(line)
    salt = random.getrandbits(32)
    lines.append(f"Message-ID: <{token}.{salt:08x}@soak.test>".encode())
    lines.append(b"Subject: " + token.encode() + (b" " + subject if subject else b""))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body if sep else b"")


def big_subject(token: str, size: int = 1_600_000) -> bytes:
    """A message whose Subject is `size` bytes of RFC 2047 encoded words, five to a folded
    line: the token, then (decoded) a long run of 'a'."""
    line = b" =?utf-8?q?a?=" * 5
    folded = b"\r\n".join([line] * (size // (len(line) + 2)))
    salt = random.getrandbits(32)
    return (b"From: <attacker@hostile.example>\r\nTo: <" + HOSTILE_TO.encode() + b">\r\n"
            b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
            + f"Message-ID: <{token}.{salt:08x}@hostile.example>\r\n".encode()
            + b"Subject: " + token.encode() + b"\r\n" + folded + b"\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n")


def oversized_message(size: int) -> bytes:
    line = b"x" * 996 + b"\r\n"
    return (b"From: <attacker@hostile.example>\r\nSubject: oversized\r\n\r\n"
            + line * (size // len(line) + 1))


# -- benign clients --------------------------------------------------------------------------
class Client(threading.Thread):
    def __init__(self, shared: Shared, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.shared = shared
        self.t = shared.target


class Journal(Client):
    """An MTA journaling over one STARTTLS + AUTH session at a time (a new one every
    `per_session` messages, as Postfix reuses a connection a while): corpus messages, each
    with a unique token, at `rate` per second. A message whose DATA got no 2xx (a kill cut
    the session, a 4xx) is sent again, the same bytes, until it is acknowledged."""

    def __init__(self, shared: Shared, n: int, corpus: list[bytes], rate: float,
                 per_session: int = 50) -> None:
        super().__init__(shared, f"journal-{n}")
        self.corpus, self.interval, self.per_session = corpus, 1 / rate, per_session
        self.pending: tuple[str, bytes] | None = None

    def next_message(self) -> tuple[str, bytes]:
        if self.pending is None:
            token = f"sj-{self.shared.serial():06d}"
            self.pending = (token, tagged(random.choice(self.corpus), token))
        return self.pending

    def run(self) -> None:
        sh = self.shared
        due = time.monotonic()
        while sh.wait_up():
            gen, start, hostile = sh.generation, time.monotonic(), sh.hostile.is_set()
            try:
                session = self.t.smtp(login=self.t.journal)
            except (OSError, smtplib.SMTPException) as exc:
                sh.record("smtp: session (connect, STARTTLS, AUTH)", start, hostile,
                          sh.failure(gen, error_name(exc)))
                sh.sleep(0.1)
                continue
            sh.record("smtp: session (connect, STARTTLS, AUTH)", start, hostile, "ok")
            with session:
                for _ in range(self.per_session):
                    due = max(due + self.interval, time.monotonic())
                    sh.sleep(due - time.monotonic())
                    if sh.stop.is_set() or not self.send(session):
                        break
                else:
                    try:
                        session.quit()
                    except (OSError, smtplib.SMTPException):
                        pass

    def send(self, session: smtplib.SMTP) -> bool:
        """One message; False when the session is over."""
        sh = self.shared
        token, raw = self.next_message()
        sh.journal.attempt(token, raw)
        gen, start, hostile = sh.generation, time.monotonic(), sh.hostile.is_set()
        kind = "smtp: message (MAIL to 250)"
        try:
            session.sendmail(JOURNAL_FROM, [JOURNAL_TO], raw)
        except (smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused,
                smtplib.SMTPSenderRefused) as exc:  # an answer: the session goes on
            sh.record(kind, start, hostile, sh.failure(gen, error_name(exc)))
            return True
        except (OSError, smtplib.SMTPException) as exc:
            sh.record(kind, start, hostile, sh.failure(gen, error_name(exc)))
            return False
        sh.journal.ack(token)
        self.pending = None
        sh.record(kind, start, hostile, "ok")
        return True


class Mailbox(Client):
    """Appends tagged corpus messages to the IMAP mailbox the profile archives, at `rate` per
    second, straight to Dovecot (the server is not involved)."""

    def __init__(self, shared: Shared, connect: Callable[[], Any], corpus: list[bytes],
                 rate: float) -> None:
        super().__init__(shared, "mailbox")
        self.connect, self.corpus, self.interval = connect, corpus, 1 / rate

    def run(self) -> None:
        imap = self.connect()
        try:
            while not self.shared.stop.is_set():
                token = f"si-{self.shared.serial():06d}"
                raw = tagged(random.choice(self.corpus), token)
                self.shared.imap.attempt(token, raw)
                imap.append("INBOX", raw)
                self.shared.imap.ack(token)
                self.shared.sleep(self.interval)
        finally:
            imap.logout()


class Admin(Client):
    """An administrator's script over one keep-alive connection: `call` is done every
    `every` seconds and timed under `kind`."""

    def __init__(self, shared: Shared, kind: str, call: Callable[[httpx.Client], None],
                 every: float) -> None:
        super().__init__(shared, kind)
        self.kind, self.call, self.every = kind, call, every

    def run(self) -> None:
        sh = self.shared
        with self.t.http(auth=self.t.admin) as client:
            while sh.wait_up():
                gen, start, hostile = sh.generation, time.monotonic(), sh.hostile.is_set()
                try:
                    self.call(client)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    sh.record(self.kind, start, hostile, sh.failure(gen, error_name(exc)))
                    sh.sleep(0.1)
                    continue
                sh.record(self.kind, start, hostile, "ok")
                sh.sleep(self.every)


def invoke(client: httpx.Client, function: str, **args: Any) -> dict[str, Any]:
    """Invoke a function and follow it to its end with long polls; the final envelope."""
    body = envelope(client.post(f"/api/invoke/{function}", data=args))
    while body["statusCode"] == "running":
        body = envelope(client.post("/api/get-status", data={
            "token": body["token"], "lastKnownStatusVersion": str(body["statusVersion"]),
            "millisecondsTimeout": "5000"}))
    return body


def succeeded(body: dict[str, Any]) -> Any:
    if body["statusCode"] != "succeeded":
        raise ValueError(f"{body['statusCode']}: {body.get('error')}")
    return body["result"]


class StalledRuns(Client):
    """Keeps one long-running process for the long polls to wait on: RunProfile of a profile
    whose IMAP server accepts the connection and never answers (it fails after the profile's
    timeout), started again when it ends or the server was killed."""

    def __init__(self, shared: Shared, profile_id: int) -> None:
        super().__init__(shared, "stalled")
        self.profile_id = profile_id

    def run(self) -> None:
        sh = self.shared
        with self.t.http(auth=self.t.admin) as client:
            while sh.wait_up():
                gen = sh.generation
                try:
                    body = envelope(client.post("/api/invoke/RunProfile",
                                                data={"id": self.profile_id}))
                    if body["statusCode"] == "running":
                        sh.poll_target = (gen, str(body["token"]))
                        while body["statusCode"] == "running":
                            body = envelope(client.post("/api/get-status", data={
                                "token": body["token"],
                                "lastKnownStatusVersion": str(body["statusVersion"]),
                                "millisecondsTimeout": "60000"}))
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                sh.poll_target = None
                sh.sleep(0.2)


class Poller(Client):
    """A monitor long-polling the stalled process: get-status with its last known version and
    a 2 s timeout. Nothing changes meanwhile, so the answer is due at 2 s; what is recorded
    is how late it came. An answer with a change (the process ended) is not timed."""

    def __init__(self, shared: Shared, n: int) -> None:
        super().__init__(shared, f"poller-{n}")

    def run(self) -> None:
        sh = self.shared
        with self.t.http(auth=self.t.admin) as client:
            version, polled = -1, None
            while sh.wait_up():
                target = sh.poll_target
                if target is None or target[0] != sh.generation:
                    sh.sleep(0.05)
                    continue
                if target != polled:
                    polled, version = target, -1
                gen, start, hostile = sh.generation, time.monotonic(), sh.hostile.is_set()
                try:
                    r = client.post("/api/get-status", data={
                        "token": target[1], "lastKnownStatusVersion": str(version),
                        "millisecondsTimeout": "0" if version < 0 else str(POLL_MS)})
                    if r.status_code == 404:  # the process is gone (a kill): wait for another
                        sh.sleep(0.05)
                        continue
                    body = envelope(r)
                except (httpx.HTTPError, ValueError) as exc:
                    sh.record("api: get-status long poll (lateness past 2 s)", start, hostile,
                              sh.failure(gen, error_name(exc)))
                    sh.sleep(0.1)
                    continue
                if version >= 0 and body["statusVersion"] == version:
                    sh.record("api: get-status long poll (lateness past 2 s)", start, hostile,
                              "ok", time.monotonic() - start - POLL_MS / 1000)
                version = int(body["statusVersion"])
                if body["statusCode"] != "running":
                    while sh.poll_target == target and not sh.stop.is_set():
                        sh.sleep(0.05)


class Console(Client):
    """A console user: log in, read the connections, log out, every `every` seconds."""

    def __init__(self, shared: Shared, every: float) -> None:
        super().__init__(shared, "console")
        self.every = every

    def run(self) -> None:
        sh = self.shared
        user, password = self.t.console
        with self.t.http() as client:
            while sh.wait_up():
                gen, start, hostile = sh.generation, time.monotonic(), sh.hostile.is_set()
                kind = "console: login"
                try:
                    r = client.post("/mcapi/auth/login", json={"userName": user,
                                                               "password": password})
                    r.raise_for_status()
                    sid = r.json()["result"]["data"]["sessionId"]
                    sh.record(kind, start, hostile, "ok")
                    kind, start = "console: connection/list", time.monotonic()
                    client.get("/mcapi/connection/list",
                               headers={"X-Fs-SessionId": sid}).raise_for_status()
                    sh.record(kind, start, hostile, "ok")
                    kind, start = "console: logout", time.monotonic()
                    client.post("/mcapi/auth/logout",
                                headers={"X-Fs-SessionId": sid}).raise_for_status()
                    sh.record(kind, start, hostile, "ok")
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    sh.record(kind, start, hostile, sh.failure(gen, error_name(exc)))
                    sh.sleep(0.1)
                    continue
                sh.sleep(self.every)


# -- hostile clients -------------------------------------------------------------------------
class Hostile(Client):
    """A hostile client: acts only while `Shared.hostile` is set."""

    def active(self) -> bool:
        sh = self.shared
        while not sh.stop.is_set():
            if sh.hostile.wait(0.2) and sh.up.is_set():
                return True
        return False


class BigSubject(Hostile):
    """The journal passes on what reached the MTA: messages whose Subject is 1.6 MB of
    encoded words, to the account `hostile` (each unique, so each is parsed and stored)."""

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared, "big-subject")

    def run(self) -> None:
        sh = self.shared
        pending: tuple[str, bytes] | None = None
        while self.active():
            gen, start = sh.generation, time.monotonic()
            try:
                with self.t.smtp(login=self.t.journal, timeout=120) as session:
                    while sh.hostile.is_set() and not sh.stop.is_set():
                        if pending is None:
                            token = f"sh-{sh.serial():06d}"
                            pending = (token, big_subject(token))
                        sh.big_subject.attempt(*pending)
                        start = time.monotonic()
                        session.sendmail("attacker@hostile.example", [HOSTILE_TO], pending[1])
                        sh.big_subject.ack(pending[0])
                        pending = None
                        sh.record("hostile: 1.6 MB encoded-word Subject (MAIL to 250)", start,
                                  True, "ok")
                        sh.sleep(1.0)
            except (OSError, smtplib.SMTPException) as exc:
                sh.record("hostile: 1.6 MB encoded-word Subject (MAIL to 250)", start, True,
                          sh.failure(gen, error_name(exc)))
                sh.sleep(0.2)


def http_answer(sock: ssl.SSLSocket, head: bytes | None = None) -> str:
    """The status of the answer waiting on `sock` (or read already: `head`), or why there is
    none."""
    if head is None:
        sock.settimeout(10)
        try:
            head = sock.recv(4096)
        except OSError as exc:
            return type(exc).__name__
    if not head:
        return "closed without an answer"
    parts = head.split(b" ", 2)
    return f"HTTP {parts[1].decode('latin-1')}" if len(parts) > 1 else "garbled answer"


def early_answer(sock: ssl.SSLSocket) -> bytes | None:
    """What the server has sent so far, without waiting (b"": it closed; None: nothing yet).
    A socket can be readable with no answer in it: TLS 1.3 session tickets."""
    if not select.select([sock], [], [], 0)[0]:
        return None
    sock.setblocking(False)
    try:
        return sock.recv(4096)
    except ssl.SSLWantReadError:
        return None
    finally:
        sock.settimeout(30)


class BigBodies(Hostile):
    """200 MB request bodies: to the console's login with a Content-Length, the same chunked,
    and to the Administration API with a Content-Length. Each is sent until the server answers
    or cuts the connection; what is noted is the answer and how much was sent before it."""

    SIZE = 200 << 20
    ROUTES = [("/mcapi/auth/login", "length"), ("/mcapi/auth/login", "chunked"),
              ("/api/invoke/GetServerInfo", "length")]

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared, "big-bodies")

    def run(self) -> None:
        routes = itertools.cycle(self.ROUTES)
        sources = itertools.cycle(HOSTILE_ADDRESSES)
        chunk = b"{" + b"x" * ((64 << 10) - 1)
        while self.active():
            path, how = next(routes)
            kind = f"hostile: 200 MB body ({how}) to {path}"
            gen, start = self.shared.generation, time.monotonic()
            try:
                sent, answer = self.post(next(sources), path, how, chunk)
            except (OSError, ssl.SSLError) as exc:
                self.shared.record(kind, start, True, self.shared.failure(gen, error_name(exc)))
                self.shared.sleep(0.2)
                continue
            self.shared.body_sent.setdefault(kind, []).append(sent)
            self.shared.note(f"{kind}: {answer}")
            self.shared.record(kind, start, True, "ok")
            self.shared.sleep(0.5)

    def post(self, source: str, path: str, how: str, chunk: bytes) -> tuple[int, str]:
        raw = socket.create_connection((self.t.host, self.t.http_port), timeout=30,
                                       source_address=(source, 0))
        with self.t.tls().wrap_socket(raw, server_hostname=self.t.host) as sock:
            size = ("Transfer-Encoding: chunked" if how == "chunked"
                    else f"Content-Length: {self.SIZE}")
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {self.t.host}\r\nContent-Type: "
                         f"application/json\r\n{size}\r\n\r\n".encode())
            sent = 0
            framed = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if how == "chunked"
                      else chunk)
            head = None
            try:
                while sent < self.SIZE and not self.shared.stop.is_set():
                    head = early_answer(sock)
                    if head is not None:
                        break
                    sock.sendall(framed)
                    sent += len(chunk)
                if how == "chunked" and sent >= self.SIZE:
                    sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # cut off: its answer, if any, is still to be read
            return sent, http_answer(sock, head)


class Oversized(Hostile):
    """SMTP messages over smtp.max_size (60 MB, no SIZE declared), from a session that
    authenticated (the MTA passing on what it got)."""

    def __init__(self, shared: Shared, size: int = 60 << 20) -> None:
        super().__init__(shared, "oversized")
        self.message = oversized_message(size)

    def run(self) -> None:
        sh = self.shared
        while self.active():
            gen, start = sh.generation, time.monotonic()
            kind = "hostile: 60 MB message over SMTP (no SIZE)"
            try:
                with self.t.smtp(login=self.t.journal, timeout=120) as session:
                    start = time.monotonic()
                    session.mail("attacker@hostile.example")
                    session.rcpt(HOSTILE_TO)
                    code, _ = session.data(self.message)
                    sh.note(f"{kind}: SMTP {code}")
            except smtplib.SMTPResponseException as exc:
                sh.note(f"{kind}: SMTP {exc.smtp_code}")
            except (OSError, smtplib.SMTPException) as exc:
                sh.record(kind, start, True, sh.failure(gen, error_name(exc)))
                sh.sleep(0.2)
                continue
            sh.record(kind, start, True, "ok")
            sh.sleep(2.0)


class Guesser(Hostile):
    """Wrong passwords, one way in (`way`: console, api or smtp), from the hostile addresses
    in turn, for the names in GUESSED_USERS in turn, `pause` seconds apart."""

    def __init__(self, shared: Shared, way: str, pause: float) -> None:
        super().__init__(shared, f"guess-{way}")
        self.way, self.pause = way, pause
        self.clients: dict[str, httpx.Client] = {}
        self.sessions: dict[str, smtplib.SMTP] = {}

    def run(self) -> None:
        sources = itertools.cycle(HOSTILE_ADDRESSES)
        users = itertools.cycle(GUESSED_USERS)
        kind = f"hostile: wrong password ({self.way})"
        try:
            while self.active():
                source, user = next(sources), next(users)
                password = f"guess-{random.getrandbits(40):x}"
                gen, start = self.shared.generation, time.monotonic()
                try:
                    answer = getattr(self, self.way)(source, user, password)
                except (OSError, httpx.HTTPError, smtplib.SMTPException) as exc:
                    self.shared.record(kind, start, True,
                                       self.shared.failure(gen, error_name(exc)))
                    self.drop(source)
                    self.shared.sleep(0.2)
                    continue
                self.shared.note(f"{kind}: {answer}")
                self.shared.record(kind, start, True, "ok")
                self.shared.sleep(self.pause)
        finally:
            for source in list(self.clients) + list(self.sessions):
                self.drop(source)

    def drop(self, source: str) -> None:
        client = self.clients.pop(source, None)
        if client is not None:
            client.close()
        session = self.sessions.pop(source, None)
        if session is not None:
            session.close()

    def http(self, source: str) -> httpx.Client:
        if source not in self.clients:
            self.clients[source] = self.t.http(source=source)
        return self.clients[source]

    def console(self, source: str, user: str, password: str) -> str:
        r = self.http(source).post("/mcapi/auth/login",
                                   json={"userName": user, "password": password})
        return f"HTTP {r.status_code}"

    def api(self, source: str, user: str, password: str) -> str:
        r = self.http(source).post("/api/invoke/GetServerInfo", auth=(user, password))
        return f"HTTP {r.status_code}"

    def smtp(self, source: str, user: str, password: str) -> str:
        if source not in self.sessions:
            self.sessions[source] = self.t.smtp(source=source)
        session = self.sessions[source]
        session.user, session.password = user, password
        try:  # one AUTH PLAIN (login() would go on to try AUTH LOGIN as well)
            session.auth("PLAIN", session.auth_plain)
        except smtplib.SMTPAuthenticationError as exc:
            if exc.smtp_code == 421:
                self.drop(source)
            return f"SMTP {exc.smtp_code}"
        except smtplib.SMTPServerDisconnected:
            self.drop(source)
            return "SMTP session closed"
        return "SMTP accepted (!)"


class Slow(threading.Thread):
    """Byte-at-a-time clients on one asyncio loop, while the hostile clients run: request heads
    (a complete GetServerInfo request, one byte every `interval` seconds), request bodies (the
    console's login, Content-Length 64, the body one byte at a time) and SMTP commands. Each
    connection is opened again when the server closes it; how long each was held is noted."""

    def __init__(self, shared: Shared, heads: int, bodies: int, smtp: int,
                 interval: float) -> None:
        super().__init__(name="slow", daemon=True)
        self.shared, self.t = shared, shared.target
        self.counts = {"head": heads, "body": bodies, "smtp": smtp}
        self.interval = interval
        self.open_now = 0
        self.max_open = 0

    def run(self) -> None:
        asyncio.run(self.main())

    async def main(self) -> None:
        sources = itertools.cycle(HOSTILE_ADDRESSES)
        tasks = [asyncio.create_task(self.loop(what, next(sources)))
                 for what, n in self.counts.items() for _ in range(n)]
        await asyncio.gather(*tasks)

    async def loop(self, what: str, source: str) -> None:
        sh = self.shared
        while not sh.stop.is_set():
            if not (sh.hostile.is_set() and sh.up.is_set()):
                await asyncio.sleep(0.2)
                continue
            await asyncio.sleep(random.uniform(0, self.interval))
            gen, start = sh.generation, time.monotonic()
            outcome = await self.one(what, source)
            held = time.monotonic() - start
            cut = gen != sh.generation or not sh.up.is_set()
            if outcome.startswith("server") and not cut:
                sh.held.append(held)
            sh.note(f"hostile: slow {what}: {'cut by a kill' if cut else outcome}")
            await asyncio.sleep(0.5)

    def script(self, what: str) -> tuple[bytes, bytes]:
        """(sent at once, sent a byte at a time)."""
        if what == "head":
            auth = base64.b64encode(":".join(self.t.admin).encode()).decode()
            return b"", (f"POST /api/invoke/GetServerInfo HTTP/1.1\r\nHost: {self.t.host}\r\n"
                         f"Authorization: Basic {auth}\r\nContent-Length: 0\r\n\r\n").encode()
        if what == "body":
            return (f"POST /mcapi/auth/login HTTP/1.1\r\nHost: {self.t.host}\r\nContent-Type: "
                    "application/json\r\nContent-Length: 64\r\n\r\n").encode(), (
                        b'{"userName": "operator", "password": "' + b"x" * 24 + b'"}')
        return b"", b"EHLO slow.example\r\nMAIL FROM:<a@slow.example>\r\n" * 20

    async def one(self, what: str, source: str) -> str:
        """One slow connection, until the server closes it or answers, the script ends or the
        hostile phase does; what ended it."""
        port = self.t.smtp_port if what == "smtp" else self.t.http_port
        tls = None if what == "smtp" else self.t.tls()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                self.t.host, port, ssl=tls, local_addr=(source, 0)), 30)
        except (TimeoutError, OSError) as exc:
            return f"connect failed: {type(exc).__name__}"
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        at_once, trickle = self.script(what)
        reading = asyncio.create_task(reader.read(65536))
        try:
            writer.write(at_once)
            for i in range(len(trickle)):
                if reading.done():
                    if what == "smtp" and reading.result():  # a reply: the session goes on
                        reading = asyncio.create_task(reader.read(65536))
                    else:
                        break
                writer.write(trickle[i:i + 1])
                await writer.drain()
                over = asyncio.create_task(self._phase_over())
                done, _ = await asyncio.wait({reading, over}, timeout=self.interval,
                                             return_when=asyncio.FIRST_COMPLETED)
                over.cancel()
                if over in done:
                    return "closed by the client (phase over)"
            if not reading.done():
                if what == "smtp":
                    return "script sent whole"
                await asyncio.wait({reading}, timeout=10)  # the request is whole: its answer
                if not reading.done():
                    return "no answer to the whole request"
            data = reading.result()
            if not data:
                return "server closed the connection"
            return f"server answered {data.split(bytes([13]), 1)[0].decode('latin-1')[:40]}"
        except (OSError, asyncio.IncompleteReadError) as exc:
            return f"server cut the connection ({type(exc).__name__})"
        finally:
            reading.cancel()
            self.open_now -= 1
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2)
            except (TimeoutError, OSError):
                pass

    async def _phase_over(self) -> None:
        sh = self.shared
        while sh.hostile.is_set() and not sh.stop.is_set() and sh.up.is_set():
            await asyncio.sleep(0.2)


class Stall(threading.Thread):
    """An 'IMAP server' that accepts connections and never says a word."""

    def __init__(self) -> None:
        super().__init__(name="stall", daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        self.closing = False

    def run(self) -> None:
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.held = [c for c in self.held if c.fileno() >= 0][-200:]

    def close(self) -> None:
        self.closing = True
        self.sock.close()
        for conn in self.held:
            conn.close()


def tokens(text: str) -> Iterator[str]:
    yield from TOKEN.findall(text)
