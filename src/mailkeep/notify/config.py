"""The error-notification mail's configuration: where to send it and how.

It lives in `conf/notification.json` of the data directory, written atomically (temp file,
fsync, rename), so a crash leaves the old file or the new one, never half of one. The password
(or OAuth2 token) is sealed with AES-256-GCM under a key derived from the data directory's
master key; it is never returned, logged or written in clear.

The fields are those of the management console's mail/configuration (see docs/notification.md):
which of them a configuration shows depends on how it authenticates: through a named connection
(`connection`), "POP before SMTP", "SMTP" (AUTH), or "None". A change names only the fields it
changes; the rest stay. Every change is validated as a whole before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mailkeep.core.admin.secrets import open_text, seal_text, secret_key, secret_keys
from mailkeep.core.confdocs import ConfDocument, one_change_at_a_time
from mailkeep.core.errors import InvalidArgument, MailkeepError
from mailkeep.core.fields import Field, FieldError, Format
from mailkeep.core.tls import check_ca_file
from mailkeep.notify.compose import ENCODINGS, check_encodable

FILE = "notification.json"
FORMAT = 1
AUTH_TYPES = ("SMTP", "POP before SMTP", "None")
SMTP_MECHANISMS = ("plain", "login", "cram-md5", "xoauth2")


class ConfigReadError(MailkeepError):
    """A settings file of conf/ cannot be read."""


class ConfigWriteError(MailkeepError):
    """A settings file of conf/ cannot be written."""


class ConfigParseError(MailkeepError):
    """A settings file of conf/ cannot be parsed (or its secret cannot be opened)."""


def _text(name: str, description: str, default: str | None = None,
          max_length: int = 1024) -> Field:
    """A one-line text field (no line breaks: header injection)."""
    return Field(name, "string", True, description, default=default, max_length=max_length,
                 format="line")


def _int(name: str, default: int, low: int, high: int, description: str) -> Field:
    return Field(name, "int", False, description, default=default, low=low, high=high)


def _bool(name: str, default: bool, description: str) -> Field:
    return Field(name, "bool", False, description, default=default)


def _choice(name: str, default: str, choices: tuple[str, ...], description: str) -> Field:
    return Field(name, "string", False, description, default=default, choices=choices)


def _formatted(name: str, fmt: Format, description: str) -> Field:
    return Field(name, "string", True, description, format=fmt)


FIELDS: dict[str, Field] = {f.name: f for f in (
    _text("connection", "A named SMTP connection (/mcapi/connection) to send through; setting "
          "it chooses connection mode."),
    _formatted("serverName", "host", "SMTP server host name or address."),
    _bool("useSmtpOverSsl", False, "Implicit TLS (usually port 465)."),
    _bool("useStartTls", False, "STARTTLS on a plain connection (usually 587 or 25). Not "
          "together with useSmtpOverSsl."),
    _int("port", 25, 1, 65535, "SMTP port."),
    _formatted("fromMailAddress", "address", "Sender address."),
    _formatted("toMailAddress", "addresses", "Recipient address(es), comma separated."),
    Field("mailSubject", "string", False, "Subject of the notification mail (must fit the "
          "encoding).", default="mailkeep notification", max_length=200, format="line"),
    _choice("encoding", "utf-8", ENCODINGS, "Charset of the mail."),
    _int("timeOut", 60, 1, 3600, "Seconds every network step may take."),
    _choice("authenticationType", "None", AUTH_TYPES, "SMTP (AUTH), POP before SMTP, or None."),
    _text("userName", "SMTP or POP3 user name.", max_length=256),
    _choice("smtpAuthenticationType", "plain", SMTP_MECHANISMS, "SMTP AUTH mechanism: plain, "
            "login, cram-md5 or xoauth2 (the password is then the OAuth2 access token)."),
    _formatted("pop3ServerName", "host", "POP3 server for POP before SMTP."),
    _bool("usePopOverSsl", False, "POP3 over implicit TLS (usually 995)."),
    _bool("userStartTlsForPop", False, "STLS on a plain POP3 connection. Not together with "
          "usePopOverSsl."),
    _int("pop3Port", 110, 1, 65535, "POP3 port."),
    _bool("useApop", False, "APOP login instead of USER/PASS."),
    _int("pop3Interval", 0, 0, 86400, "Seconds a POP login is reused before logging in again; "
         "0: before every mail."),
    _bool("verifyCertificate", True, "Check the servers' TLS certificates (switch off for "
          "testing only)."),
    _formatted("caFile", "absolute-path", "PEM file of a private CA to trust."),
)}
SECRET = "password"

COMMON = ("fromMailAddress", "toMailAddress", "mailSubject", "encoding")
SMTP_SHAPE = ("serverName", "useSmtpOverSsl", "useStartTls", "port", *COMMON, "timeOut",
              "authenticationType")
SHAPES = {
    "connection": ("connection", *COMMON),
    "POP before SMTP": (*SMTP_SHAPE, "pop3ServerName", "usePopOverSsl", "userStartTlsForPop",
                        "pop3Port", "useApop", "pop3Interval", "userName"),
    "SMTP": (*SMTP_SHAPE, "userName", "smtpAuthenticationType"),
    "None": SMTP_SHAPE,
}
EXTRA = ("verifyCertificate", "caFile")  # mailkeep's own, shown in every shape but connection




def check_value(field: Field, value: Any) -> Any:
    """A field's value as stored (from JSON, or text as a form sends it), or InvalidArgument
    saying what is wrong with it (a CA file is checked where it is set: core.tls)."""
    try:
        return field.take(value)
    except FieldError as exc:
        raise InvalidArgument(exc.message) from None


def _mode(conf: dict[str, Any]) -> str:
    return "connection" if conf.get("connection") else str(conf["authenticationType"])


def _sent_to(conf: dict[str, Any]) -> set[tuple[str, bool]]:
    """Where the stored password goes: (protocol://host:port, over TLS) of the login that
    uses it."""
    mode = _mode(conf)
    if mode == "SMTP":
        return {(f"smtp://{str(conf['serverName']).lower()}:{conf['port']}",
                 bool(conf["useSmtpOverSsl"] or conf["useStartTls"]))}
    if mode == "POP before SMTP":
        return {(f"pop3://{str(conf['pop3ServerName']).lower()}:{conf['pop3Port']}",
                 bool(conf["usePopOverSsl"] or conf["userStartTlsForPop"]))}
    return set()


def validate(conf: dict[str, Any], has_password: bool, connections: set[str] | None) -> None:
    """What a configuration as a whole must satisfy to be saved."""
    mode = _mode(conf)
    if conf["useSmtpOverSsl"] and conf["useStartTls"]:
        raise InvalidArgument(
            "useSmtpOverSsl (implicit TLS, usually port 465) and useStartTls (STARTTLS, "
            "usually port 587 or 25) cannot both be true: a connection uses one or the other; "
            "set the one your server speaks on this port")
    if conf["usePopOverSsl"] and conf["userStartTlsForPop"]:
        raise InvalidArgument(
            "usePopOverSsl (implicit TLS, usually port 995) and userStartTlsForPop (STLS, "
            "usually port 110) cannot both be true")
    try:
        check_encodable(conf["mailSubject"], conf["encoding"])
    except ValueError as exc:
        raise InvalidArgument(f"mailSubject cannot be sent as {conf['encoding']}: {exc}") from None
    needed = ["fromMailAddress", "toMailAddress"]
    if mode == "connection":
        if connections is not None and conf["connection"] not in connections:
            raise InvalidArgument(f"connection {conf['connection']!r} is not a named SMTP "
                                  "connection (see /mcapi/connection/list)")
    else:
        needed.append("serverName")
    if mode in ("SMTP", "POP before SMTP"):
        needed.append("userName")
    if mode == "POP before SMTP":
        needed.append("pop3ServerName")
    missing = [n for n in needed if not conf.get(n)]
    if missing:
        raise InvalidArgument(f"{', '.join(missing)} must be set for "
                              + ("a named connection" if mode == "connection"
                                 else f"authenticationType {mode!r}"))
    if mode in ("SMTP", "POP before SMTP") and not has_password:
        raise InvalidArgument(f"password must be set when authenticationType is {mode!r}")


def _key(data_dir: Path) -> bytes:
    try:
        return secret_key(data_dir, "notification secrets")
    except OSError as exc:
        raise ConfigWriteError(f"the master key (conf/master.key) that seals the password "
                               f"could not be created: {exc.strerror or exc}") from None


def seal(data_dir: Path, secret: str, what: str) -> str:
    return seal_text(_key(data_dir), secret, what)


def unseal(data_dir: Path, sealed: str, what: str) -> str:
    _key(data_dir)  # the master key (made if there is none)
    try:
        return open_text(secret_keys(data_dir, "notification secrets"), sealed, what)
    except ValueError as exc:
        raise ConfigParseError(f"the stored {what} cannot be decrypted with this data "
                               f"directory's master key ({exc})") from None


def write_atomic(doc: ConfDocument, data: dict[str, Any]) -> None:
    """Written whole (core/confdocs.py: a file readable by this account only, or a row of the
    master database in PostgreSQL)."""
    try:
        doc.write_json(data)
    except OSError as exc:
        raise ConfigWriteError(f"{doc.name} could not be written: {exc.strerror or exc}"
                               ) from None


def read_json(doc: ConfDocument) -> dict[str, Any] | None:
    """The document's JSON object, None if there is none; 5001 unreadable, 5003 not
    parsable."""
    try:
        text = doc.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigReadError(f"{doc.name} could not be read: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigParseError(f"{doc.name} is not valid JSON (line {exc.lineno}, column "
                               f"{exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:
        raise ConfigParseError(f"{doc.name} cannot be parsed: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigParseError(f"{doc.name} is not a format-{FORMAT} mailkeep settings file")
    return data


class NotificationConfig:
    """The notification mail's settings: conf/notification.json of a data directory, or its
    row in PostgreSQL (core/confdocs.py)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.doc = ConfDocument(data_dir, FILE)

    def _load(self) -> tuple[dict[str, Any], str | None]:
        data = read_json(self.doc)
        conf = {name: f.default for name, f in FIELDS.items()}
        if data is None:
            return conf, None
        stored = data.get("configuration")
        if not isinstance(stored, dict):
            raise ConfigParseError(f"{self.doc.name} has no configuration object")
        for name, value in stored.items():
            field = FIELDS.get(name)
            if field is None:
                raise ConfigParseError(f"{self.doc.name} has an unknown field {name!r}")
            try:
                # a stored CA file that is gone now fails when sending, not when reading
                conf[name] = (check_value(field, value) if field.format != "absolute-path"
                              else value)
            except InvalidArgument as exc:
                raise ConfigParseError(f"{self.doc.name}: {exc.message}") from None
        sealed = data.get("password")
        if sealed is not None and not isinstance(sealed, str):
            raise ConfigParseError(f"{self.doc.name} has a malformed password entry")
        return conf, sealed

    def get(self) -> dict[str, Any]:
        """The configuration in the shape of its authentication type, without the password."""
        conf, _sealed = self._load()
        mode = _mode(conf)
        names = SHAPES[mode] + (() if mode == "connection" else EXTRA)
        return {name: conf[name] for name in names}

    def credential(self) -> dict[str, Any] | None:
        """Whom the notification mail logs in as, and whether a password is stored (never the
        password); None when it does not log in (no authentication, or a named connection)."""
        conf, sealed = self._load()
        mode = _mode(conf)
        if mode not in ("SMTP", "POP before SMTP"):
            return None
        server = (f"{conf['serverName']}:{conf['port']}" if mode == "SMTP"
                  else f"{conf['pop3ServerName']}:{conf['pop3Port']}")
        return {"userName": conf["userName"], "server": server, "authentication": mode,
                "hasSecret": sealed is not None}

    def full(self) -> tuple[dict[str, Any], str | None]:
        """Every field, and the password in clear (for sending only; never shown)."""
        conf, sealed = self._load()
        return conf, (unseal(self.data_dir, sealed, "password") if sealed else None)

    @one_change_at_a_time
    def reseal(self) -> bool:
        """Seal the stored password again under the current master key (after a renewal);
        whether there is one."""
        data = read_json(self.doc)
        if data is None or not data.get("password"):
            return False
        _conf, password = self.full()
        assert password is not None
        write_atomic(self.doc, {**data, "password": seal(self.data_dir, password, "password")})
        return True

    def _given_for(self, conf: dict[str, Any]) -> set[tuple[str, bool]]:
        """Where the stored password was given for: the login it was set with (a file from
        before this was kept: where the configuration sends it now)."""
        data = read_json(self.doc) or {}
        kept = data.get("passwordFor")
        if not isinstance(kept, list):
            return _sent_to(conf)
        try:
            return {(str(d), bool(t)) for d, t in kept}
        except (TypeError, ValueError):  # not as written: trust it for nothing
            return set()

    @one_change_at_a_time
    def set(self, changes: dict[str, Any], connections: set[str] | None = None) -> list[str]:
        """Apply a partial change (absent fields stay, the password stays unless given);
        everything is checked before the file is written. Returns the fields changed."""
        conf, sealed = self._load()
        before = dict(conf)
        given_for = self._given_for(before)
        password = changes.get(SECRET)
        unknown = [n for n in changes if n not in FIELDS and n != SECRET]
        if unknown:
            raise InvalidArgument(
                f"unknown field {unknown[0]!r} (known: {', '.join(FIELDS)}, password)")
        for name, value in changes.items():
            if name != SECRET:
                conf[name] = check_value(FIELDS[name], value)
        if "connection" in changes and "authenticationType" in changes and conf["connection"]:
            raise InvalidArgument("give either connection (send through a named connection) or "
                                  "authenticationType, not both")
        if "authenticationType" in changes:
            conf["connection"] = None
        if conf.get("caFile") != before.get("caFile"):
            check_ca_file(conf.get("caFile"))
        if password is not None:
            if not isinstance(password, str) or any(c in password for c in "\r\n\x00"):
                raise InvalidArgument("password must be a string of one line")
        elif sealed is not None and not all(
                any(h == host and (tls or not was_tls) for h, was_tls in given_for)
                for host, tls in _sent_to(conf)):
            # Write-only is only worth something if it cannot be redirected to another host,
            # nor to the same one without TLS.
            raise InvalidArgument("give the password again when it would go to another server "
                                  "or port (serverName, port, pop3ServerName, pop3Port, "
                                  "authenticationType) or without TLS where it had TLS: the "
                                  "stored one is never sent where it was not")
        validate(conf, bool(password) or sealed is not None, connections)
        if password is not None:
            sealed = seal(self.data_dir, password, "password") if password else None
            given_for = _sent_to(conf)
        write_atomic(self.doc, {"format": FORMAT, "configuration": conf, "password": sealed,
                                 "passwordFor": sorted([d, t] for d, t in given_for)})
        changed = [n for n in FIELDS if conf[n] != before[n]]
        return changed + ([SECRET] if password is not None else [])
