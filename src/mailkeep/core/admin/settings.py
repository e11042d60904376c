"""Server settings kept in the master database, so that `mailkeep serve` needs no flags.

Every setting is declared once here, as a Field (its type, default, range and description);
the catalog functions GetSettings, SetSetting and ResetSetting (and `mailkeep settings`) read
and change them, and a command-line flag of `serve` overrides a setting for one run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from mailkeep.core.admin import autocreate
from mailkeep.core.errors import InvalidArgument, NotFound
from mailkeep.core.fields import Field, FieldError
from mailkeep.core.masterdb import MasterDB

DECLARED: dict[str, Field] = {f.name: f for f in (
    Field("api.enabled", "bool", default=False,
          description="Answer the Administration API (serve --enable-api)."),
    Field("server.host", "string", default="0.0.0.0", format="line",
          description="Address the server listens on (serve --host)."),
    Field("server.port", "int", default=8463, low=1, high=65535,
          description="Port the server listens on (serve --port)."),
    Field("server.body_timeout", "int", default=30, low=1, high=3600,
          description="Seconds a request body may take to arrive, whole (408 after)."),
    Field("console.max_upload", "int", default=1 << 30, low=1 << 20, high=1 << 40,
          description="Largest file of mail, in bytes, the console (StartUpload) takes to "
          "import; written to disk as it arrives, never held in memory."),
    Field("server.max_body", "int", default=1 << 20, low=16 << 10, high=1 << 30,
          description="Largest request body, in bytes (413 beyond, before it is read); a "
          "console login's is 16 KiB whatever this says."),
    Field("server.header_timeout", "int", default=20, low=1, high=3600,
          description="Seconds a client has, from connecting or from the previous answer on "
          "its connection, to send a request's whole head (request line and headers); then "
          "the connection is closed (408 if the head had begun)."),
    Field("server.max_connections", "int", default=4096, low=16, high=65536,
          description="Connections open at once, from all clients. When that many are open, a "
          "new one takes the place of the one that has waited longest for its next request "
          "(idle, or sending a head slowly); only when all are in a request is it refused."),
    Field("server.max_connections_per_client", "int", default=1024, low=1, high=65535,
          description="Connections one client address may hold open at once (more: 503 and "
          "closed at once): room for the 1,000 long polls the API supports. The addresses of "
          "server.trusted_proxies are exempt: a proxy's connections are many clients'."),
    Field("server.trusted_proxies", "string", default="", format="networks",
          description="Addresses of reverse proxies whose X-Forwarded-For and "
          "X-Forwarded-Proto name the client (comma-separated IPs or networks); empty: none, "
          "the connection's own address is the client's (login throttling, audit)."),
    Field("tls.enabled", "bool", default=True, description="Serve HTTPS; false for running "
          "behind a TLS-terminating proxy (serve --no-tls)."),
    Field("tls.cert", "string", default=None, format="absolute-path",
          description="Certificate (PEM) to serve; unset: a self-signed one made in <data>/tls "
          "(serve --tls-cert)."),
    Field("tls.key", "string", default=None, format="absolute-path",
          description="Private key (PEM) of tls.cert (serve --tls-key)."),
    Field("paths.allowed", "string", default="", format="line",
          description="Directories (absolute, comma separated) that profiles' sources, store "
          "directories and backups must lie in; empty: anywhere outside the data directory."),
    Field("smtp.enabled", "bool", default=False,
          description="Receive journaled mail over SMTP (serve --smtp-port)."),
    Field("smtp.host", "string", default="0.0.0.0", format="line",
          description="Address the SMTP journal receiver listens on."),
    Field("smtp.port", "int", default=2525, low=1, high=65535,
          description="Port of the SMTP journal receiver."),
    Field("smtp.owner", "string", default="journal", format="line",
          description="The user archive journaled mail goes into."),
    Field("smtp.max_size", "int", default=50 << 20, low=1024, high=1 << 31,
          description="Largest message accepted, in bytes."),
    Field("smtp.max_recipients", "int", default=1000, low=1, high=100_000,
          description="Recipients one message may have (more: 452, as a mail server "
          "answers; the sender sends the rest in another message)."),
    Field("smtp.auth_failures", "int", default=5, low=1, high=100,
          description="Failed AUTH attempts in one SMTP session before it is closed (421)."),
    Field("smtp.max_errors", "int", default=20, low=1, high=1000,
          description="Commands refused (5xx) in one SMTP session since its last message "
          "archived; the next one refused closes it (421), as Postfix's "
          "smtpd_hard_error_limit."),
    Field("smtp.command_timeout", "int", default=300, low=1, high=3600,
          description="Seconds an SMTP client has to send its next command (and between two "
          "parts of a message) before the session is closed (421), as RFC 5321 4.5.3.2.7 "
          "and Postfix's smtpd_timeout."),
    Field("smtp.data_timeout", "int", default=3600, low=1, high=86400,
          description="Seconds a whole message may take to arrive, from DATA to its final "
          "dot (3,600: 50 MiB at 120 kbit/s); then 421 and the session is closed, so a client "
          "sending a byte just inside every smtp.command_timeout cannot hold it for ever."),
    Field("smtp.max_sessions", "int", default=100, low=1, high=10_000,
          description="SMTP sessions open at once, from all clients (more: 421 and closed)."),
    Field("smtp.max_sessions_per_client", "int", default=50, low=1, high=10_000,
          description="SMTP sessions one client address may hold open at once (more: 421 and "
          "closed), as Postfix's smtpd_client_connection_count_limit."),
    Field("smtp.large_messages", "int", default=4, low=1, high=1000,
          description="Messages over 1 MiB received and archived at once: a session whose "
          "message grows past 1 MiB while that many are in progress stops reading it until "
          "one is archived (its sender waits). Bounds the memory large mail takes, whoever "
          "sends it."),
    Field("smtp.networks", "string", default="127.0.0.0/8,::1/128", format="networks",
          description="Client networks allowed to journal, comma separated (CIDR)."),
    Field("smtp.route_by_address", "bool", default=True, description="File journaled mail in "
          "the archives of the users its envelope names (Inbox for recipients, Sent for the "
          "sender), the smtp.owner archive when it names none."),
    Field("smtp.starttls", "bool", default=True,
          description="Offer STARTTLS with the server's certificate."),
    Field("smtp.require_tls", "bool", default=False,
          description="Accept mail only after STARTTLS."),
    Field("smtp.auth", "bool", default=False, description="Accept mail only from clients that "
          "authenticate (AUTH PLAIN or LOGIN, after STARTTLS) as a mailkeep user with the admin "
          "or archive privilege."),
    Field("notify.interval", "int", default=900, low=0, high=86400, description="Seconds "
          "between two notification mails of the same kind; what happens meanwhile goes out "
          "together with a count."),
    Field("notify.check_every", "int", default=300, low=10, high=86400, description="Seconds "
          "between the server's checks of the stores and the disk (a store that cannot be "
          "opened, a disk nearly full)."),
    Field("stores.autocreate", "json", default=None, description="Start a new current store "
          "automatically (SetStoreAutoCreateConfiguration): a JSON object with mode (none, "
          "monthly, quarterly, yearly, size), sizeLimitMB, namePattern, basePath, encrypt."),
    Field("archive.attachment_text", "bool", default=True, description="Index the text inside "
          "attachments (PDF, Office, OpenDocument, RTF, HTML, text, CSV, and inside zips), "
          "each bounded in time and size; off: their names only."),
    Field("archive.extract_memory", "int", default=1024, low=128, high=65536,
          description="MiB of memory each text extraction worker may allocate; a message whose "
          "attachments need more is indexed without their text, with a warning."),
    Field("tree.head_interval", "int", default=60, low=1, high=86400, description="Seconds "
          "between two signed heads of a store's Merkle tree while mail arrives; a head is "
          "also signed whenever the server closes a store it wrote (idle, stopping)."),
    Field("tree.tsa_url", "string", default="", description="An RFC 3161 time-stamping "
          "authority (http:// or https://) that TimestampTreeHeads asks to stamp each store's "
          "newest signed tree head; empty: none."),
    Field("archive.extract_timeout", "number", default=20, low=0.01, high=3600,
          description="Seconds the text of one message may take to be extracted for the "
          "index; a message that takes longer is archived all the same, found by its headers, "
          "with a warning."),
    Field("metrics.enabled", "bool", default=False, description="Serve Prometheus metrics at "
          "/metrics to the clients metrics.networks and metrics.token let in."),
    Field("metrics.networks", "string", default="127.0.0.0/8,::1/128", format="networks",
          description="Client networks that may read /metrics, comma separated (CIDR)."),
    Field("metrics.token", "string", default="", secret=True, max_length=1024,
          description="A bearer token /metrics asks for as well (Authorization: Bearer "
          "TOKEN); kept as its SHA-256 digest. Empty: none."),
)}
# Settings whose value has a shape of its own: checked (and normalized) by their domain.
SHAPES: dict[str, Callable[[Any], Any]] = {
    "stores.autocreate": lambda value: autocreate.parse(value).shown(),
    "metrics.token": lambda value: token_digest(value),
}


def token_digest(token: str) -> str:
    """How metrics.token is kept, and what a request's bearer token is compared as."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def declared(key: str) -> Field:
    setting = DECLARED.get(key)
    if setting is None:
        raise NotFound(f"no setting {key!r} (known: {', '.join(sorted(DECLARED))})")
    return setting


def parse(setting: Field, text: str) -> Any:
    """A setting's value from how an administrator types it; a clear error otherwise."""
    try:
        value = setting.parse(text)
    except FieldError as exc:
        raise InvalidArgument(exc.message) from None
    if value is None or value == "":
        raise InvalidArgument(f"{setting.name} must not be empty (to go back to the default: "
                              f"`mailkeep settings unset {setting.name}`)")
    shape = SHAPES.get(setting.name)
    if shape is not None:
        try:
            return shape(value)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{setting.name}: {exc.message}") from None
    return value


class Settings:
    def __init__(self, master: MasterDB) -> None:
        self.master = master

    def get(self, key: str) -> Any:
        setting = declared(key)
        stored = self.master.settings.get(key)
        return setting.default if stored is None else json.loads(stored)

    def is_set(self, key: str) -> bool:
        declared(key)
        return self.master.settings.get(key) is not None

    def set(self, key: str, text: str) -> Any:
        """Set a setting from text, as an administrator types it."""
        return self.put(key, parse(declared(key), text))

    def put(self, key: str, value: Any) -> Any:
        """Set a setting to a value already checked."""
        declared(key)
        self.master.settings.put(key, json.dumps(value))
        return value

    def unset(self, key: str) -> None:
        declared(key)
        self.master.settings.delete(key)

    def all(self) -> list[dict[str, Any]]:
        """Every setting as it may be shown (a secret one only says whether it is set)."""
        return [{"key": s.name, "value": s.shown(self.get(s.name)), "default": s.default,
                 "set": self.is_set(s.name), "type": s.kind, "description": s.description}
                for s in sorted(DECLARED.values(), key=lambda s: s.name)]
