"""The SMTP journal receiver: a mail server sends (journals) every message to mailkeep, which
answers 250 only once the message is durable in the current store.

aiosmtpd speaks SMTP on the server's event loop; the server's one writer thread
(core/writer.py) owns the current store. Messages that arrive while the writer is busy are taken
together: appended, fsynced and committed once (a group commit), and only then does each of
their senders get its 250. A crash
before that answer leaves the sender without one, so it retries; a crash after it loses
nothing. When the store cannot take mail (another process is writing it, the disk is full),
the sender gets a 451 and retries later.

The envelope (MAIL FROM, RCPT TO) is kept with each message, in its entry record. Every
session lives within the limits of receive/limits.py (sessions, a timeout per command, errors,
line lengths).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import sqlite3
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailkeep.core.admin.auth import Authenticator
from mailkeep.core.admin.users import Users, name_key
from mailkeep.core.archive import Archive
from mailkeep.core.errors import MailkeepError
from mailkeep.core.fields import is_loopback, within
from mailkeep.core.writer import Filed, Filing, StoreWriter
from mailkeep.receive.limits import (
    COMMAND_SECONDS,
    DATA_SECONDS,
    LARGE_MESSAGES,
    MAX_ERRORS,
    LimitedSMTP,
    Sessions,
)

log = logging.getLogger("mailkeep.smtp")


def _not_login_data(record: logging.LogRecord) -> bool:
    """aiosmtpd sets its deprecated Session.login_data itself after every successful AUTH,
    and warns about it each time; mailkeep reads Session.auth_data."""
    return not str(record.msg).startswith("Session.login_data is deprecated")


logging.getLogger("mail.log").addFilter(_not_login_data)
USERS_EVERY_S = 30.0  # how often the users' addresses are read again for routing


@dataclass
class ReceiverSettings:
    host: str = "0.0.0.0"
    port: int = 2525
    owner: str = "journal"  # the archive the journal goes into
    folder: str = "Inbox"
    max_size: int = 50 << 20
    networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    tls_cert: Path | None = None  # STARTTLS offered when set
    tls_key: Path | None = None
    require_tls: bool = False
    route_by_address: bool = True  # into the archives of the users the envelope names
    auth: bool = False  # clients must AUTH (after STARTTLS) as a user allowed to archive
    max_recipients: int = 1000  # RCPT TO per message (Postfix's smtpd_recipient_limit)
    auth_failures: int = 5  # failed AUTH per session before it is closed
    max_errors: int = MAX_ERRORS  # refused commands per session (receive/limits.py)
    command_timeout: float = COMMAND_SECONDS  # seconds to send the next command
    data_timeout: float = DATA_SECONDS  # seconds for a whole message, DATA to its dot
    max_sessions: int = 100  # sessions at once, in all
    max_sessions_per_client: int = 50  # sessions at once from one client address
    large_messages: int = LARGE_MESSAGES  # messages over 1 MiB received and archived at once


@dataclass
class Counters:
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    last_error: str | None = None
    started: float = field(default_factory=time.time)


class JournalWriter:
    """Routes what the receiver hands it and files it through the server's StoreWriter."""

    def __init__(self, settings: ReceiverSettings, store_writer: StoreWriter) -> None:
        self.settings = settings
        self.counters = Counters()
        self.store_writer = store_writer
        self._by_address: dict[str, str] = {}
        self._users_read = -USERS_EVERY_S

    def targets(self, archive: Archive, envelope: dict[str, Any],
                user: str | None = None) -> list[tuple[str, str]]:
        """(owner, folder) to file a journaled message in: Inbox of every user one of whose
        addresses is a recipient, Sent of the user who sent it; the journal archive when the
        envelope names no user (or routing is off). A client that authenticated files where
        routing says only as an administrator or as the journal's own account (smtp.owner, a local
        account: one a directory sync made does not count);
        any other account files into its own archive only (the folders routing gives it there,
        else its journal folder): an employee allowed to archive cannot put mail into someone
        else's archive. Called in the writer thread."""
        routed = self._routed(archive, envelope)
        if user is None:
            return routed
        account = archive.master.accounts.find(name_key(user))
        if account is not None and (account.is_administrator or (
                name_key(user) == name_key(self.settings.owner)
                and account.authentication == "integrated")):  # not one a directory made
            return routed
        owner = account.user_name if account is not None else user
        return [t for t in routed if t[0] == owner] or [(owner, self.settings.folder)]

    def _routed(self, archive: Archive, envelope: dict[str, Any]) -> list[tuple[str, str]]:
        if not self.settings.route_by_address:
            return [(self.settings.owner, self.settings.folder)]
        now = time.monotonic()
        if now - self._users_read > USERS_EVERY_S:
            self._by_address = {}
            try:
                rows = archive.master.accounts.addresses()
            except sqlite3.Error:
                rows = []
            for name, addresses in rows:
                for address in addresses:
                    self._by_address.setdefault(address.lower(), name)
            self._users_read = now
        targets: list[tuple[str, str]] = []
        for address in envelope["to"]:
            user = self._by_address.get(address.lower())
            if user is not None and (user, "Inbox") not in targets:
                targets.append((user, "Inbox"))
        sender = self._by_address.get(str(envelope["from"]).lower())
        if sender is not None and (sender, "Sent") not in targets:
            targets.append((sender, "Sent"))
        return targets or [(self.settings.owner, self.settings.folder)]

    def submit(self, raw: bytes, envelope: dict[str, Any], loop: asyncio.AbstractEventLoop,
               done: asyncio.Future[str], user: str | None = None) -> None:
        """File a message; `user`: the account the client authenticated as (an account
        that is not an administrator files into its own archive only)."""
        def answer(outcome: Filed | BaseException) -> None:
            if isinstance(outcome, BaseException):
                self.counters.refused += 1
                self.counters.last_error = self.store_writer.last_error
                reply = "451 4.3.0 The archive cannot take mail right now; try again later"
            elif outcome.duplicate:
                self.counters.accepted += 1
                self.counters.duplicates += 1
                reply = "250 2.0.0 Already archived"
            else:
                self.counters.accepted += 1
                reply = f"250 2.0.0 Archived as {' '.join(outcome.numbers)}"
            loop.call_soon_threadsafe(_answer, done, reply)

        self.store_writer.submit(Filing(lambda archive: self.targets(archive, envelope, user),
                                        answer, raw=raw, envelope=envelope, source="journal"))


def _answer(done: asyncio.Future[str], reply: str) -> None:
    if not done.done():
        done.set_result(reply)


NOT_ALLOWED = "554 5.7.1 This client may not journal to mailkeep"


def peer_host(session: Session) -> str:
    peer = session.peer
    return peer[0] if isinstance(peer, tuple) else str(peer)


class Networks:
    """The client addresses smtp.networks lets in."""

    def __init__(self, networks: tuple[str, ...]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def allow(self, host: str) -> bool:
        return within(host, self.networks)


class JournalHandler:
    def __init__(self, writer: JournalWriter, settings: ReceiverSettings,
                 users: Users | None = None) -> None:
        self.writer = writer
        self.settings = settings
        self.networks = Networks(settings.networks)
        self.users = users

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if not self.networks.allow(peer_host(session)):
            return NOT_ALLOWED
        user = _login(session)
        if user is not None and self.users is not None:
            refusal = await asyncio.to_thread(_archiving_refusal, self.users, user)
            if refusal is not None:  # taken away since AUTH
                log.warning("journal: MAIL from %r refused: %s", user, refusal)
                return "530 5.7.0 This account may no longer journal to mailkeep"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            return "452 4.5.3 Too many recipients"  # RFC 5321 4.5.3.1.10: send the rest later
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if not isinstance(raw, bytes):
            return "554 5.6.0 No message"
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        self.writer.submit(raw, {"from": envelope.mail_from or "",
                                 "to": list(envelope.rcpt_tos)}, loop, done, _login(session))
        return await done


def _login(session: Session) -> str | None:
    """The account the client authenticated as (None: it did not): SmtpAuth's answer."""
    data = session.auth_data if session.authenticated else None
    login = data.login if isinstance(data, LoginPassword) else None
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return login if isinstance(login, str) else None


def _archiving_refusal(users: Users, user: str) -> str | None:
    """Why the account may not journal now (None: it may): it must be allowed to log in and
    hold the privilege admin or archive."""
    refusal = users.login_refusal(user, "smtp")
    if refusal is not None:
        return refusal
    account = users.account(user)
    if account is None or not ({"admin", "archive"} & set(account.privileges)
                               or account.is_administrator):
        return f"User {user} has neither the privilege admin nor archive."
    return None


class SmtpAuth:
    """AUTH PLAIN/LOGIN against mailkeep's accounts, throttled with the server's other logins
    (one Authenticator, so failures here count towards the same lockouts and raise the same
    notification). A client outside smtp.networks gets no answer about a password: its AUTH is
    refused before any is checked. The account needs the privilege login, and admin or
    archive; an account with its initial password only from this machine. Passwords are never
    logged. Called off the event loop (the check hashes)."""

    def __init__(self, authenticator: Authenticator, networks: Networks) -> None:
        self.users = authenticator.users
        self.checker = authenticator
        self.networks = networks

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        address = peer_host(session)
        if not self.networks.allow(address):
            log.warning("journal: AUTH from %s refused: not in smtp.networks", address)
            return AuthResult(success=False, handled=False, message=NOT_ALLOWED)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        result = self.checker.check(user, password, address, "smtp")
        if result.reason == "busy":
            return AuthResult(success=False, handled=False,
                              message="454 4.7.0 Temporary authentication failure")
        if not result.ok:
            log.warning("journal: failed AUTH %s as %r from %s (%s)", mechanism, user, address,
                        result.reason)
            return AuthResult(success=False, handled=False)
        refusal = _archiving_refusal(self.users, user)
        if refusal is not None:
            log.warning("journal: AUTH as %r from %s refused: %s", user, address, refusal)
            self.users.master.audit.write(f"smtp:{user[:200]}", "login.refused", via="smtp",
                                          address=address, reason=refusal)
            return AuthResult(success=False, handled=False)
        if self.users.has_initial_password(user) and not is_loopback(address):
            log.warning("journal: AUTH as %r from %s refused: the account still has its "
                        "initial password (accepted from this machine only)", user, address)
            return AuthResult(success=False, handled=False)
        account = self.users.account(user)
        name = account.user_name if account is not None else user  # as stored
        # on the record, like a console login: one per session (failures: login.failed)
        self.users.master.audit.write(f"smtp:{name}", "session.login", via="smtp",
                                      address=address, mechanism=mechanism[:20])
        return AuthResult(success=True, auth_data=LoginPassword(name.encode(), b""))


@dataclass(frozen=True)
class _Pending:
    mechanism: str
    data: Any


# An address in angle brackets that is a plain dot-atom on both sides of the @ (as nearly every
# MTA writes MAIL FROM and RCPT TO): read here in a regular expression, where aiosmtpd's
# email._header_value_parser took 16 us for each.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"<((?:{_ATOM}\.)*{_ATOM}@(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+)>")


def plain_address(arg: str) -> tuple[str, str] | None:
    """(address, the parameters after it) as aiosmtpd's _getaddr reads a plain `<addr>` (a
    test checks that it reads each such argument alike); None for any other argument, which
    aiosmtpd reads itself."""
    m = _PLAIN_ADDRESS.match(arg)
    if m is None:
        return None
    rest = arg[m.end():].lstrip(" \t")
    if rest.startswith("("):
        return None  # a comment: aiosmtpd's parser takes it
    return m.group(1), rest


class _JournalSMTP(LimitedSMTP):
    """A journal must keep what the mail server sends, byte for byte: a message's lines longer
    than RFC 5321's 1,000 octets (which real mail has, and MTAs pass on) are accepted (up to
    receive/limits.py's DATA_LINE). AUTH's password check runs in a worker thread: it hashes
    for tens of milliseconds, and the event loop serves every other client meanwhile."""

    max_auth_failures = 5

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = plain_address(arg)
        if plain is None or (self.local_part_limit
                             and len(plain[0].rpartition("@")[0]) > self.local_part_limit):
            return super()._getaddr(arg)
        return plain

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        # aiosmtpd calls this synchronously from auth_PLAIN/auth_LOGIN: hand the credentials
        # back instead, for _checked to verify off the loop.
        return AuthResult(success=False, handled=False, auth_data=_Pending(mechanism, auth_data))

    async def _checked(self, result: AuthResult) -> AuthResult:
        pending = result.auth_data
        if not isinstance(pending, _Pending):
            return result  # the mechanism failed before any credentials (bad base64, '*')
        authenticator = self._authenticator
        assert authenticator is not None and self.session is not None and self.envelope is not None
        checked: AuthResult = await asyncio.to_thread(
            authenticator, self, self.session, self.envelope, pending.mechanism, pending.data)
        if not checked.success:
            self._auth_failures = getattr(self, "_auth_failures", 0) + 1
            if self._auth_failures >= self.max_auth_failures:
                # Enough guesses on one connection: a client must open another (and each
                # still counts towards the account's and the address's lockouts).
                await self.push("421 4.7.0 Too many failed AUTH attempts: closing")
                assert self.transport is not None
                self.transport.close()
                return AuthResult(success=False, handled=True)
        return checked

    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        return await self._checked(await super().auth_PLAIN(server, args))

    async def auth_LOGIN(self, server: Any, args: list[str]) -> AuthResult:
        return await self._checked(await super().auth_LOGIN(server, args))


class _Controller(Controller):
    def __init__(self, handler: Any, settings: ReceiverSettings, **kwargs: Any) -> None:
        super().__init__(handler, timeout=settings.command_timeout, **kwargs)
        self.settings = settings
        self.sessions = Sessions(settings.max_sessions, settings.max_sessions_per_client,
                                 Networks(settings.networks).allow, settings.large_messages)

    def factory(self) -> SMTP:
        smtp = _JournalSMTP(self.handler, **self.SMTP_kwargs)
        smtp.max_auth_failures = self.settings.auth_failures
        smtp.max_errors = self.settings.max_errors
        smtp.data_seconds = self.settings.data_timeout
        smtp.sessions = self.sessions
        return smtp


def _event_loop() -> asyncio.AbstractEventLoop:
    """The SMTP listener's own loop (in its own thread): uvloop's where it is installed (the
    HTTP side runs on it too), which answers more sessions a second than asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class CertificateHolder(Protocol):
    """The server's certificate, which a running server changes (web/app.py's
    LiveCertificate): a context attached to it serves the certificate chosen last."""

    def attach(self, context: ssl.SSLContext,
               make: Callable[[Path, Path], ssl.SSLContext]) -> None: ...


def starttls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class JournalReceiver:
    """Starts and stops the SMTP listener (the server's lifespan does); it files through the
    server's writer and checks AUTH with the server's authenticator."""

    def __init__(self, settings: ReceiverSettings, store_writer: StoreWriter,
                 authenticator: Authenticator,
                 certificate: CertificateHolder | None = None) -> None:
        self.settings = settings
        self.writer = JournalWriter(settings, store_writer)
        tls: ssl.SSLContext | None = None
        if settings.tls_cert and settings.tls_key:
            tls = starttls_context(settings.tls_cert, settings.tls_key)
            if certificate is not None:  # SetServiceCertificate reaches STARTTLS too
                certificate.attach(tls, starttls_context)
        if settings.auth and tls is None:
            raise MailkeepError("smtp.auth needs STARTTLS (smtp.starttls and a TLS "
                                "certificate): passwords are not taken over plain SMTP")
        auth: dict[str, Any] = {}
        if settings.auth:
            auth = dict(auth_required=True, auth_require_tls=True,
                        authenticator=SmtpAuth(authenticator, Networks(settings.networks)))
        handler = JournalHandler(self.writer, settings, authenticator.users)
        self.controller = _Controller(
            handler, settings, loop=_event_loop(), hostname=settings.host, port=settings.port,
            data_size_limit=settings.max_size, tls_context=tls,
            require_starttls=settings.require_tls and tls is not None,
            ident="mailkeep journal receiver", decode_data=False, **auth)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
