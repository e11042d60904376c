"""The SMTP journal receiver: a mail server sends (journals) every message to mailkeep, which
answers 250 only once the message is durable in the current store.

aiosmtpd speaks SMTP on the server's event loop; one writer thread owns the current store.
Messages that arrive while the writer is busy are taken together: appended, fsynced and
committed once (a group commit), and only then does each of their senders get its 250. A crash
before that answer leaves the sender without one, so it retries; a crash after it loses
nothing. When the store cannot take mail (another process is writing it, the disk is full),
the sender gets a 451 and retries later.

The envelope (MAIL FROM, RCPT TO) is kept with each message, in its entry record.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import queue
import sqlite3
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from ..core.archive import Archive
from ..core.errors import MailkeepError

log = logging.getLogger("mailkeep.smtp")
BATCH_MAX = 500  # messages in one group commit
BATCH_WAIT_S = 0.005  # how long the writer waits for company once it has one message
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


@dataclass
class _Job:
    raw: bytes
    envelope: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[str]


@dataclass
class Counters:
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    batches: int = 0
    last_error: str | None = None
    started: float = field(default_factory=time.time)


class JournalWriter:
    """The thread that owns the current store and files what the receiver hands it."""

    def __init__(self, data_dir: Path, settings: ReceiverSettings) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.counters = Counters()
        self._by_address: dict[str, str] = {}
        self._users_read = -USERS_EVERY_S
        self._thread = threading.Thread(target=self._run, name="mailkeep-journal",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.jobs.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        archive: Archive | None = None
        try:
            while True:
                first = self.jobs.get()
                if first is None:
                    return
                batch = [first]
                deadline = time.monotonic() + BATCH_WAIT_S
                while len(batch) < BATCH_MAX:
                    try:
                        job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if job is None:
                        self.jobs.put(None)
                        break
                    batch.append(job)
                if archive is None:
                    archive = Archive(self.data_dir)
                    archive.actor = "smtp"
                archive = self._file(archive, batch)
        finally:
            if archive is not None:
                archive.close()

    def _targets(self, archive: Archive, envelope: dict[str, Any]) -> list[tuple[str, str]]:
        """(owner, folder) to file a journaled message in: Inbox of every user one of whose
        addresses is a recipient, Sent of the user who sent it; the journal archive when the
        envelope names no user (or routing is off)."""
        if not self.settings.route_by_address:
            return [(self.settings.owner, self.settings.folder)]
        now = time.monotonic()
        if now - self._users_read > USERS_EVERY_S:
            self._by_address = {}
            try:
                rows = archive.master.conn.execute(
                    "SELECT user_name, email_addresses FROM users").fetchall()
            except sqlite3.Error:
                rows = []
            for user, addresses in rows:
                for address in json.loads(addresses or "[]"):
                    self._by_address.setdefault(address.lower(), user)
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

    def _file(self, archive: Archive, batch: list[_Job]) -> Archive:
        """File a batch and answer its senders; returns the archive to use next (a fresh
        one after a failure, so that the next batch finds the store as it is now)."""
        replies: list[str] = []
        try:
            _rec, store = archive.current_store()
            for job in batch:
                cid = store.packer.content_id(job.raw)
                numbers: list[str] = []
                for owner, folder in self._targets(archive, job.envelope):
                    blob_id, filed = store.lookup(cid, owner, folder)
                    if filed:
                        continue
                    if blob_id is not None:
                        number = store.add_entry(cid, owner, folder, envelope=job.envelope)
                    else:
                        prepared = store.packer.prepare(job.raw, cid, time.time())
                        number = store.add_message(prepared, owner, folder,
                                                   envelope=job.envelope).number
                    numbers.append(f"{_rec.id}:{number}")
                if not numbers:
                    self.counters.duplicates += 1
                    replies.append("250 2.0.0 Already archived")
                else:
                    replies.append(f"250 2.0.0 Archived as {' '.join(numbers)}")
            store.commit()  # fsync of the segment, then the catalog: now it is durable
            self.counters.accepted += len(batch)
            self.counters.batches += 1
            self.counters.last_error = None
        except (MailkeepError, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            log.warning("journal: %d message(s) not archived, senders told to retry: %s",
                        len(batch), message)
            self.counters.refused += len(batch)
            self.counters.last_error = message
            try:
                archive.close()  # aborts the batch; its records are rewound
            except Exception:  # the store may be gone altogether
                log.exception("journal: closing the archive after a failure")
            archive = Archive(self.data_dir)
            archive.actor = "smtp"
            replies = ["451 4.3.0 The archive cannot take mail right now; try again later"
                       ] * len(batch)
        for job, reply in zip(batch, replies, strict=True):
            job.loop.call_soon_threadsafe(_answer, job.done, reply)
        return archive


def _answer(done: asyncio.Future[str], reply: str) -> None:
    if not done.done():
        done.set_result(reply)


class JournalHandler:
    def __init__(self, writer: JournalWriter, settings: ReceiverSettings) -> None:
        self.writer = writer
        self.settings = settings
        self.networks = [ipaddress.ip_network(n, strict=False) for n in settings.networks]

    def _allowed(self, session: Session) -> bool:
        peer = session.peer
        host = peer[0] if isinstance(peer, tuple) else str(peer)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in n for n in self.networks)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if not self._allowed(session):
            return "554 5.7.1 This client may not journal to mailkeep"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if not isinstance(raw, bytes):
            return "554 5.6.0 No message"
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        self.writer.jobs.put(_Job(raw, {"from": envelope.mail_from or "",
                                        "to": list(envelope.rcpt_tos)}, loop, done))
        return await done


class _LongLines(SMTP):
    """A journal must keep what the mail server sends, byte for byte: lines longer than RFC
    5321's 1,000 octets (which real mail has, and MTAs pass on) are accepted."""

    line_length_limit = 1 << 20


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _LongLines(self.handler, **self.SMTP_kwargs)


class JournalReceiver:
    """Starts and stops the SMTP listener and its writer."""

    def __init__(self, data_dir: Path, settings: ReceiverSettings) -> None:
        self.settings = settings
        self.writer = JournalWriter(data_dir, settings)
        tls: ssl.SSLContext | None = None
        if settings.tls_cert and settings.tls_key:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(settings.tls_cert, settings.tls_key)
        self.controller = _Controller(
            JournalHandler(self.writer, settings), hostname=settings.host, port=settings.port,
            data_size_limit=settings.max_size, tls_context=tls,
            require_starttls=settings.require_tls and tls is not None,
            ident="mailkeep journal receiver", decode_data=False)

    def start(self) -> None:
        self.writer.start()
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
        self.writer.stop()
