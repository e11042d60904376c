"""Server settings kept in the master database, so that `mailkeep serve` needs no flags.

Every setting is declared once here with its type, default and description; `mailkeep settings`
lists, reads and changes them, and a command-line flag of `serve` overrides a setting for one
run. Changes are written to the audit log. Later layers (notification mail, archiving
profiles) declare their settings here too.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mailkeep.core.errors import InvalidArgument, NotFound
from mailkeep.core.master import Master

SettingType = Literal["bool", "int", "str", "path", "networks"]

SCHEMA = "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
TRUE = {"true", "1", "yes", "on"}
FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Setting:
    key: str
    type: SettingType
    default: Any
    description: str
    low: int | None = None
    high: int | None = None


DECLARED = {s.key: s for s in (
    Setting("api.enabled", "bool", False, "Answer the Administration API (serve --enable-api)."),
    Setting("server.host", "str", "0.0.0.0", "Address the server listens on (serve --host)."),
    Setting("server.port", "int", 8463, "Port the server listens on (serve --port).", 1, 65535),
    Setting("tls.enabled", "bool", True, "Serve HTTPS; false for running behind a "
            "TLS-terminating proxy (serve --no-tls)."),
    Setting("tls.cert", "path", None, "Certificate (PEM) to serve; unset: a self-signed one "
            "made in <data>/tls (serve --tls-cert)."),
    Setting("tls.key", "path", None, "Private key (PEM) of tls.cert (serve --tls-key)."),
    Setting("smtp.enabled", "bool", False, "Receive journaled mail over SMTP (serve "
            "--smtp-port)."),
    Setting("smtp.host", "str", "0.0.0.0", "Address the SMTP journal receiver listens on."),
    Setting("smtp.port", "int", 2525, "Port of the SMTP journal receiver.", 1, 65535),
    Setting("smtp.owner", "str", "journal", "The user archive journaled mail goes into."),
    Setting("smtp.max_size", "int", 50 << 20, "Largest message accepted, in bytes.", 1024,
            1 << 31),
    Setting("smtp.networks", "networks", "127.0.0.0/8,::1/128", "Client networks allowed to "
            "journal, comma separated (CIDR)."),
    Setting("smtp.route_by_address", "bool", True, "File journaled mail in the archives of "
            "the users its envelope names (Inbox for recipients, Sent for the sender), the "
            "smtp.owner archive when it names none."),
    Setting("smtp.starttls", "bool", True, "Offer STARTTLS with the server's certificate."),
    Setting("smtp.require_tls", "bool", False, "Accept mail only after STARTTLS."),
    Setting("smtp.auth", "bool", False, "Accept mail only from clients that authenticate "
            "(AUTH PLAIN or LOGIN, after STARTTLS) as a mailkeep user with the admin or "
            "archive privilege."),
    Setting("notify.interval", "int", 900, "Seconds between two notification mails of the "
            "same kind; what happens meanwhile goes out together with a count.", 0, 86400),
    Setting("notify.check_every", "int", 300, "Seconds between the server's checks of the "
            "stores and the disk (a store that cannot be opened, a disk nearly full).", 10,
            86400),
)}


def parse(setting: Setting, text: str) -> Any:
    """A setting's value from how an administrator types it; a clear error otherwise."""
    value = text.strip()
    if setting.type == "bool":
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        raise InvalidArgument(f"{setting.key} is true or false, not {text!r}")
    if setting.type == "int":
        try:
            number = int(value)
        except ValueError:
            raise InvalidArgument(f"{setting.key} is a whole number, not {text!r}") from None
        if (setting.low is not None and number < setting.low) or (
                setting.high is not None and number > setting.high):
            raise InvalidArgument(f"{setting.key} must be between {setting.low} and "
                                  f"{setting.high}, not {number}")
        return number
    if not value:
        raise InvalidArgument(f"{setting.key} must not be empty (to go back to the default: "
                              f"`mailkeep settings unset {setting.key}`)")
    if setting.type == "networks":
        items = [n.strip() for n in value.split(",") if n.strip()]
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise InvalidArgument(f"{setting.key}: {item!r} is not a network such as "
                                      "192.0.2.0/24 or 2001:db8::/32") from None
        return ",".join(items)
    if setting.type == "path":
        path = Path(value).expanduser()
        if not path.is_absolute():
            raise InvalidArgument(f"{setting.key} must be an absolute path, not {text!r}")
        return str(path)
    return value


class Settings:
    def __init__(self, master: Master) -> None:
        self.master = master
        master.conn.execute(SCHEMA)

    @staticmethod
    def declared(key: str) -> Setting:
        setting = DECLARED.get(key)
        if setting is None:
            raise NotFound(f"no setting {key!r} (known: {', '.join(sorted(DECLARED))})")
        return setting

    def get(self, key: str) -> Any:
        setting = self.declared(key)
        row = self.master.conn.execute("SELECT value FROM settings WHERE key = ?",
                                       (key,)).fetchone()
        return setting.default if row is None else json.loads(row[0])

    def is_set(self, key: str) -> bool:
        self.declared(key)
        return self.master.conn.execute("SELECT 1 FROM settings WHERE key = ?",
                                        (key,)).fetchone() is not None

    def set(self, key: str, text: str, actor: str) -> Any:
        value = parse(self.declared(key), text)
        self.master.conn.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)",
                                 (key, json.dumps(value)))
        self.master.audit(actor, "settings.set", key=key, value=value)
        return value

    def unset(self, key: str, actor: str) -> None:
        self.declared(key)
        self.master.conn.execute("DELETE FROM settings WHERE key = ?", (key,))
        self.master.audit(actor, "settings.unset", key=key)

    def all(self) -> list[dict[str, Any]]:
        return [{"key": s.key, "value": self.get(s.key), "default": s.default,
                 "set": self.is_set(s.key), "type": s.type, "description": s.description}
                for s in sorted(DECLARED.values(), key=lambda s: s.key)]
