"""Sending the notification mail with the saved configuration: the configuration (or the named
connection it points at) becomes an SMTP target and, for POP before SMTP, a POP3 target."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailkeep.core.errors import InvalidArgument, MailkeepError
from mailkeep.notify.config import NotificationConfig
from mailkeep.notify.connections import Connections
from mailkeep.notify.send import Outgoing, Pop3Target, PopBeforeSmtp, SendError, SmtpTarget, send


class SendFailed(MailkeepError):
    """The mail could not be sent; the message says at which step and what the server said."""

    def __init__(self, message: str, step: str) -> None:
        super().__init__(message)
        self.step = step

    @property
    def details(self) -> str:
        """The Administration API's error.details (error_table.py)."""
        return f"send_failed:{self.step}"


POP_STATE = PopBeforeSmtp()  # one per server process: pop3Interval spans mails


def _tls(implicit: bool, starttls: bool) -> str:
    return "implicit" if implicit else "starttls" if starttls else "none"


def targets(data_dir: Path) -> tuple[SmtpTarget, Pop3Target | None, dict[str, Any]]:
    """(SMTP target, POP3 target or None, the configuration) from the saved settings."""
    conf, password = NotificationConfig(data_dir).full()
    if not conf.get("toMailAddress") or not conf.get("fromMailAddress"):
        raise InvalidArgument("the notification mail has no sender or recipient yet: set "
                              "fromMailAddress and toMailAddress first")
    if conf.get("connection"):
        return (*_from_connection(data_dir, conf["connection"]), conf)
    if not conf.get("serverName"):
        raise InvalidArgument("the notification mail has no SMTP server yet: set serverName")
    mode = conf["authenticationType"]
    common = {"verify": conf["verifyCertificate"], "ca_file": conf["caFile"],
              "timeout": float(conf["timeOut"])}
    smtp = SmtpTarget(conf["serverName"], conf["port"],
                      _tls(conf["useSmtpOverSsl"], conf["useStartTls"]),  # type: ignore[arg-type]
                      auth=conf["smtpAuthenticationType"] if mode == "SMTP" else "none",
                      username=conf["userName"] if mode == "SMTP" else None,
                      secret=password if mode == "SMTP" else None, **common)
    pop = None
    if mode == "POP before SMTP":
        pop = Pop3Target(conf["pop3ServerName"], conf["pop3Port"],
                         _tls(conf["usePopOverSsl"],  # type: ignore[arg-type]
                              conf["userStartTlsForPop"]),
                         username=conf["userName"] or "", password=password or "",
                         apop=conf["useApop"], interval_s=conf["pop3Interval"], **common)
    return smtp, pop, conf


def _from_connection(data_dir: Path, name: str) -> tuple[SmtpTarget, Pop3Target | None]:
    connections = Connections(data_dir)
    item, password = connections.secret(name)
    if item["type"] != "smtp":
        raise InvalidArgument(f"connection {name!r} is a {item['type']} connection, not smtp")
    auth = item["authentication"]
    smtp = SmtpTarget(item["serverName"], item["port"], item["security"],
                      verify=item["verifyCertificate"], ca_file=item["caFile"],
                      timeout=float(item["timeOut"]), auth=auth,
                      username=item["userName"] if auth != "none" else None,
                      secret=password if auth != "none" else None)
    pop = None
    if item.get("popBeforeSmtp"):
        p, pop_password = connections.secret(item["popBeforeSmtp"])
        pop = Pop3Target(p["serverName"], p["port"], p["security"],
                         verify=p["verifyCertificate"], ca_file=p["caFile"],
                         timeout=float(p["timeOut"]), username=p["userName"] or "",
                         password=pop_password or "", apop=p["authentication"] == "apop",
                         interval_s=item["pop3Interval"])
    return smtp, pop


def configured(data_dir: Path) -> bool:
    """Whether the notification mail has somewhere to go (a broken file counts as no)."""
    try:
        conf, _secret = NotificationConfig(data_dir).full()
    except Exception:
        return False
    return bool(conf.get("toMailAddress") and (conf.get("connection") or conf.get("serverName")))


class Mailer:
    def __init__(self, data_dir: Path, log: Callable[[str], None] = lambda line: None) -> None:
        self.data_dir = data_dir
        self.log = log

    def notify(self, title: str, body: str) -> str:
        """A notification: the configured subject, then what it is about."""
        conf, _secret = NotificationConfig(self.data_dir).full()
        return self.send(f"{conf['mailSubject']}: {title}".lstrip(": "), body)

    def send(self, subject: str | None, body: str, to: str | None = None) -> str:
        """Send one mail with the saved settings (subject None: the configured mailSubject;
        to None: the configured recipients). Raises SendFailed saying at which step."""
        smtp, pop, conf = targets(self.data_dir)
        recipients = tuple(a.strip() for a in (to or conf["toMailAddress"]).split(",")
                           if a.strip())
        message = Outgoing(conf["fromMailAddress"], recipients,
                           subject if subject is not None else conf["mailSubject"], body,
                           conf["encoding"])
        if pop is not None:
            self.log(f"POP before SMTP: {pop.host}:{pop.port} ({pop.tls}, "
                     f"{'APOP' if pop.apop else 'USER/PASS'})")
        self.log(f"SMTP: {smtp.host}:{smtp.port} ({smtp.tls}, auth {smtp.auth}), "
                 f"from {message.sender} to {', '.join(recipients)}, {message.encoding}")
        try:
            return send(smtp, message, pop, POP_STATE)
        except SendError as exc:
            self.log(f"Failed at step {exc.step}: {exc}")
            raise SendFailed(str(exc), exc.step) from None
