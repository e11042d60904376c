"""Incremental IMAP source: every folder of a mailbox, only what is new since the last run.

The caller keeps a state per folder (UIDVALIDITY and the highest UID known to be archived).
A run fetches the messages above that UID, oldest first, with BODY.PEEK[] (so nothing is
marked seen), FLAGS and INTERNALDATE. The state only advances when the caller confirms that a
message is durable, and only over an unbroken run of confirmed UIDs, so a message that was not
confirmed is fetched again next time. A folder whose UIDVALIDITY changed is fetched from the
start: the archive stores each message once, so the repeated ones are duplicates.

Folder names are decoded from IMAP modified UTF-7 and use '/' between levels, whatever the
server's own delimiter is; INBOX is always "INBOX".
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailkeep.core.errors import InvalidArgument
from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.core.tls import client_context
from mailkeep.sources.maildir import decode_mutf7

Item = RawMessage | SourceProblem

FETCH_BATCH = 25  # messages per UID FETCH: bounds memory and keeps progress steady
FETCH_ITEMS = [b"BODY.PEEK[]", b"FLAGS", b"INTERNALDATE"]
SYSTEM_FLAGS = {
    b"\\seen": "seen",
    b"\\answered": "answered",
    b"\\flagged": "flagged",
    b"\\draft": "draft",
    b"\\deleted": "deleted",
    b"$forwarded": "forwarded",
}
NOT_SELECTABLE = {b"\\noselect", b"\\nonexistent"}


class SourceError(Exception):
    """A mail server could not be reached or refused us; `step` says where (connect, tls,
    login, ...), `message` carries the server's reply. The secret is never part of it."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int = 993
    security: Literal["implicit", "starttls", "none"] = "implicit"
    verify: bool = True
    ca_file: str | None = None
    timeout: float = 60.0
    username: str = ""
    secret: str = field(default="", repr=False)  # password, or OAuth2 token for xoauth2
    auth: Literal["login", "plain", "xoauth2"] = "login"
    folders: tuple[str, ...] = ()  # () = all folders; else only these (decoded, '/'-separated)
    exclude: tuple[str, ...] = ()  # folders (with their subfolders) to skip
    delete_after_days: int | None = None  # default for ImapSource.delete_archived


@dataclass
class FolderState:
    uidvalidity: int
    last_uid: int


def tls_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """The client context (core/tls.py); SourceError when the caFile cannot be used."""
    try:
        return client_context(verify, ca_file)
    except InvalidArgument as exc:
        raise SourceError("tls", exc.message) from None


def scrub(text: str, secret: str) -> str:
    """`text` without the secret in it (a server that echoes what it got must not leak it)."""
    return text.replace(secret, "***") if secret else text


def _reply(exc: BaseException, secret: str) -> str:
    text = str(exc) or type(exc).__name__
    if text.startswith("b'") and text.endswith("'") or text.startswith('b"'):
        text = text[2:-1]  # imaplib quotes the server's bytes reply
    return scrub(text, secret)


def connect(settings: ImapSettings) -> IMAPClient:
    """A logged-in IMAPClient, TLS as the settings say; SourceError on any failure."""
    ctx = tls_context(settings.verify, settings.ca_file)
    try:
        client = IMAPClient(
            settings.host,
            port=settings.port,
            ssl=settings.security == "implicit",
            ssl_context=ctx,
            timeout=settings.timeout,
        )
    except (OSError, IMAPClientError) as exc:
        raise SourceError("connect", _reply(exc, settings.secret)) from None
    client.folder_encode = False  # names stay as on the wire; decoded here
    client.normalise_times = False  # INTERNALDATE with its zone
    try:
        if settings.security == "starttls":
            try:
                client.starttls(ctx)
            except (OSError, IMAPClientError) as exc:
                raise SourceError("starttls", _reply(exc, settings.secret)) from None
        try:
            if settings.auth == "xoauth2":
                client.oauth2_login(settings.username, settings.secret)
            elif settings.auth == "plain":
                client.plain_login(settings.username, settings.secret)
            else:
                client.login(settings.username, settings.secret)
        except (OSError, IMAPClientError) as exc:
            raise SourceError("login", _reply(exc, settings.secret)) from None
    except BaseException:
        _close(client)
        raise
    return client


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass


@dataclass
class _Folder:
    name: str  # decoded, '/'-separated
    raw: bytes  # as on the wire


def list_folders(client: IMAPClient) -> list[_Folder]:
    """Selectable folders, INBOX first, then by name."""
    found: list[_Folder] = []
    for flags, delimiter, raw in client.list_folders():
        if {bytes(f).lower() for f in flags} & NOT_SELECTABLE:
            continue
        if isinstance(raw, str):
            raw = raw.encode("ascii", "replace")
        wire = raw.decode("ascii", "replace")
        if wire.upper() == "INBOX":
            name = "INBOX"
        else:
            delim = delimiter.decode("ascii", "replace") if delimiter else ""
            parts = wire.split(delim) if delim else [wire]
            name = "/".join(decode_mutf7(part) for part in parts)
        found.append(_Folder(name, raw))
    found.sort(key=lambda f: (f.name != "INBOX", f.name))
    return found


def _flags(raw: Iterable[Any]) -> frozenset[str]:
    out = set()
    for flag in raw:
        name = SYSTEM_FLAGS.get(bytes(flag).lower() if isinstance(flag, bytes) else b"")
        if name:
            out.add(name)
    return frozenset(out)


def _epoch(value: Any) -> float | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


@dataclass
class _Run:
    """Per-folder bookkeeping of one run: UIDs handed out and not yet confirmed, in order."""

    uidvalidity: int
    pending: list[int] = field(default_factory=list)
    confirmed: set[int] = field(default_factory=set)


class ImapSource:
    """Iterate for RawMessage (new messages, oldest UID first per folder) and SourceProblem
    (folders and messages that could not be read); confirm() each message once it is durable;
    save `state` afterwards."""

    def __init__(self, settings: ImapSettings, state: dict[str, FolderState]) -> None:
        self.settings = settings
        self.state: dict[str, FolderState] = {
            name: FolderState(s.uidvalidity, s.last_uid) for name, s in state.items()
        }
        self._runs: dict[str, _Run] = {}
        self._handed_out: dict[str, tuple[str, int, int]] = {}  # origin -> folder, v, uid

    # -- selection

    def wanted(self, folder: str) -> bool:
        s = self.settings
        if s.folders and folder not in s.folders:
            return False
        return not any(folder == x or folder.startswith(x.rstrip("/") + "/") for x in s.exclude)

    def origin(self, folder: str, uidvalidity: int, uid: int | None = None) -> str:
        url = f"imap://{self.settings.username}@{self.settings.host}/{folder}"
        url += f";UIDVALIDITY={uidvalidity}"
        return url if uid is None else f"{url}/;UID={uid}"

    # -- reading

    def __iter__(self) -> Iterator[Item]:
        client = connect(self.settings)
        try:
            try:
                folders = list_folders(client)
            except (OSError, IMAPClientError) as exc:
                yield SourceProblem(self.origin("", 0).split(";")[0], f"LIST: {exc}")
                return
            for folder in folders:
                if self.wanted(folder.name):
                    try:
                        yield from self._read_folder(client, folder)
                    except (OSError, IMAPClientError) as exc:
                        # The connection is gone or unusable: report it and end the run.
                        yield SourceProblem(
                            f"imap://{self.settings.username}@{self.settings.host}/"
                            f"{folder.name}",
                            _reply(exc, self.settings.secret),
                        )
                        return
        finally:
            _close(client)

    def _read_folder(self, client: IMAPClient, folder: _Folder) -> Iterator[Item]:
        base = f"imap://{self.settings.username}@{self.settings.host}/{folder.name}"
        try:
            info = client.select_folder(folder.raw, readonly=True)
        except IMAPClientError as exc:
            yield SourceProblem(base, f"SELECT: {_reply(exc, self.settings.secret)}")
            return
        uidvalidity = int(info.get(b"UIDVALIDITY", 0))
        known = self.state.get(folder.name)
        if known is None or known.uidvalidity != uidvalidity:
            known = self.state[folder.name] = FolderState(uidvalidity, 0)
        run = self._runs[folder.name] = _Run(uidvalidity)
        start = known.last_uid + 1
        # "N:*" always matches the highest UID, even below N: filter again.
        uids = sorted(u for u in client.search([b"UID", f"{start}:*".encode()]) if u >= start)
        for at in range(0, len(uids), FETCH_BATCH):
            batch = uids[at : at + FETCH_BATCH]
            fetched = client.fetch(batch, FETCH_ITEMS)
            for uid in batch:
                item = fetched.get(uid)
                if item is None:
                    continue  # expunged meanwhile
                origin = self.origin(folder.name, uidvalidity, uid)
                run.pending.append(uid)
                body = item.get(b"BODY[]")
                if not isinstance(body, bytes):
                    yield SourceProblem(origin, "the server sent no message body")
                    continue
                self._handed_out[origin] = (folder.name, uidvalidity, uid)
                yield RawMessage(
                    folder=folder.name,
                    origin=origin,
                    data=body,
                    flags=_flags(item.get(b"FLAGS", ())),
                    internal_date=_epoch(item.get(b"INTERNALDATE")),
                )

    def confirm(self, message: RawMessage) -> None:
        """The message is stored durably: the state may move past it."""
        key = self._handed_out.pop(message.origin, None)
        if key is None:
            return
        folder, uidvalidity, uid = key
        run = self._runs.get(folder)
        state = self.state.get(folder)
        if run is None or state is None or run.uidvalidity != uidvalidity:
            return
        run.confirmed.add(uid)
        while run.pending and run.pending[0] in run.confirmed:
            state.last_uid = max(state.last_uid, run.pending.pop(0))

    def _is_confirmed(self, folder: str, uidvalidity: int, uid: int) -> bool:
        state = self.state.get(folder)
        if state is None or state.uidvalidity != uidvalidity:
            return False
        if uid <= state.last_uid:
            return True
        run = self._runs.get(folder)
        return run is not None and run.uidvalidity == uidvalidity and uid in run.confirmed

    # -- deleting

    def delete_archived(self, older_than_days: int | None = None) -> int:
        """Delete from the server the confirmed messages whose INTERNALDATE is more than
        `older_than_days` (default: the settings' delete_after_days) days old; return how many.
        Only those messages are expunged (UID EXPUNGE); without UIDPLUS they are expunged only
        when no other message of the folder is flagged \\Deleted, else left flagged."""
        days = self.settings.delete_after_days if older_than_days is None else older_than_days
        if days is None or days < 0:
            return 0
        cutoff = time.time() - days * 86400.0
        before = (datetime.now(UTC) - timedelta(days=days) + timedelta(days=2)).date()
        deleted = 0
        client = connect(self.settings)
        try:
            uidplus = b"UIDPLUS" in client.capabilities()
            for folder in list_folders(client):
                if folder.name not in self.state or not self.wanted(folder.name):
                    continue
                info = client.select_folder(folder.raw)
                uidvalidity = int(info.get(b"UIDVALIDITY", 0))
                # SEARCH BEFORE has day granularity in the server's zone: narrow it, then check
                # each INTERNALDATE exactly.
                found = client.search([b"BEFORE", before])
                candidates = [u for u in found if self._is_confirmed(folder.name, uidvalidity, u)]
                if not candidates:
                    continue
                dates = client.fetch(candidates, [b"INTERNALDATE"])
                doomed = sorted(
                    uid
                    for uid, item in dates.items()
                    if (when := _epoch(item.get(b"INTERNALDATE"))) is not None and when < cutoff
                )
                if not doomed:
                    continue
                client.add_flags(doomed, [b"\\Deleted"], silent=True)
                if uidplus:
                    client.uid_expunge(doomed)
                elif set(client.search([b"DELETED"])) <= set(doomed):
                    client.expunge()
                else:
                    continue
                deleted += len(doomed)
        except IMAPClientError as exc:
            raise SourceError("delete", _reply(exc, self.settings.secret)) from None
        finally:
            _close(client)
        return deleted
