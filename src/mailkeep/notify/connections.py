"""Named SMTP and POP3 connections (`conf/connections.json`), which the notification mail can
send through by name. Same file discipline as notification.json: atomic writes, sealed
passwords, 5001/5002/5003 when the file cannot be read, written or parsed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mailkeep.core.confdocs import ConfDocument, one_change_at_a_time
from mailkeep.core.errors import Conflict, InvalidArgument, NotFound
from mailkeep.core.fields import Field
from mailkeep.core.tls import check_ca_file
from mailkeep.notify.config import (
    FORMAT,
    ConfigParseError,
    check_value,
    read_json,
    seal,
    unseal,
    write_atomic,
)

FILE = "connections.json"
KINDS = ("smtp", "pop3")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("serverName", "string", True, "Host name or address.", format="host"),
    Field("port", "int", False, "Port (default 25 for smtp, 110 for pop3).", low=1,
          high=65535),
    Field("security", "string", False, "none, implicit (TLS from the first byte: 465, 995) or "
          "starttls (STARTTLS / STLS on a plain connection).", default="none",
          choices=("none", "implicit", "starttls")),
    Field("verifyCertificate", "bool", False, "Check the server's certificate.", default=True),
    Field("caFile", "string", True, "PEM file of a private CA to trust.",
          format="absolute-path"),
    Field("timeOut", "int", False, "Seconds every network step may take.", default=60, low=1,
          high=3600),
    Field("authentication", "string", False, "smtp: none, plain, login, cram-md5, xoauth2; "
          "pop3: user (USER/PASS) or apop.", default="none",
          choices=("none", "plain", "login", "cram-md5", "xoauth2", "user", "apop")),
    Field("userName", "string", True, "User name.", max_length=256, format="line"),
    Field("popBeforeSmtp", "string", True, "smtp only: the pop3 connection to log in to before "
          "sending (POP before SMTP).", max_length=1024, format="line"),
    Field("pop3Interval", "int", False, "smtp only: seconds a POP login is reused; 0: before "
          "every mail.", default=0, low=0, high=86400),
)}
SMTP_AUTH = ("none", "plain", "login", "cram-md5", "xoauth2")
POP_AUTH = ("user", "apop")


def _exposed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a stored password would reach another server than before, or the same one
    less protected (without TLS, without checking its certificate, trusting another CA)."""
    host = (after.get("serverName") or "").lower()
    return (host != (before.get("serverName") or "").lower()
            or after.get("port") != before.get("port")
            or (after.get("security", "none") == "none"
                and before.get("security", "none") != "none")
            or (before.get("verifyCertificate", True) and not after.get("verifyCertificate",
                                                                         True))
            or after.get("caFile") != before.get("caFile"))


class Connections:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.doc = ConfDocument(data_dir, FILE)

    def _load(self) -> list[dict[str, Any]]:
        data = read_json(self.doc)
        if data is None:
            return []
        items = data.get("connections")
        if not isinstance(items, list) or not all(
                isinstance(c, dict) and isinstance(c.get("name"), str)
                and c.get("type") in KINDS for c in items):
            raise ConfigParseError(f"{FILE} has no valid list of connections")
        return items

    def _save(self, items: list[dict[str, Any]]) -> None:
        write_atomic(self.doc, {"format": FORMAT, "connections": items})

    @staticmethod
    def _shown(item: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in item.items() if k != "password"}
        out["hasPassword"] = bool(item.get("password"))
        return out

    def all(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [self._shown(c) for c in self._load() if kind in (None, c["type"])]

    def _find(self, items: list[dict[str, Any]], name: str) -> dict[str, Any]:
        for item in items:
            if item["name"].lower() == name.lower():
                return item
        raise NotFound(f"no connection named {name!r} (see /mcapi/connection/list)")

    def show(self, name: str) -> dict[str, Any]:
        return self._shown(self._find(self._load(), name))

    def secret(self, name: str) -> tuple[dict[str, Any], str | None]:
        """A connection with its password in clear (for sending only)."""
        item = self._find(self._load(), name)
        sealed = item.get("password")
        return item, unseal(self.data_dir, sealed, f"password of {item['name']}") if sealed \
            else None

    @one_change_at_a_time
    def reseal(self) -> int:
        """Seal every stored password again under the current master key (after a renewal);
        how many there are."""
        items = self._load()
        count = 0
        for item in items:
            if item.get("password"):
                what = f"password of {item['name']}"
                item["password"] = seal(self.data_dir, unseal(self.data_dir, item["password"],
                                                              what), what)
                count += 1
        if count:
            self._save(items)
        return count

    @one_change_at_a_time
    def create(self, name: str, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        if not NAME_RE.match(name or ""):
            raise InvalidArgument(f"connection name {name!r} must be 1-64 letters, digits, "
                                  "'.', '_' or '-', starting with a letter or digit")
        if kind not in KINDS:
            raise InvalidArgument(f"type must be smtp or pop3, not {kind!r}")
        items = self._load()
        if any(c["name"].lower() == name.lower() for c in items):
            raise Conflict(f"a connection named {name!r} already exists")
        item: dict[str, Any] = {"name": name, "type": kind}
        item.update({k: f.default for k, f in FIELDS.items()})
        item["port"] = 25 if kind == "smtp" else 110
        item["authentication"] = "none" if kind == "smtp" else "user"
        self._apply(item, fields, items)
        items.append(item)
        self._save(items)
        return self._shown(item)

    @one_change_at_a_time
    def update(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        items = self._load()
        item = self._find(items, name)
        changed = dict(item)
        self._apply(changed, fields, items)
        items[items.index(item)] = changed
        self._save(items)
        return self._shown(changed)

    @one_change_at_a_time
    def delete(self, name: str, in_use: str | None) -> None:
        items = self._load()
        item = self._find(items, name)
        if in_use is not None and in_use.lower() == item["name"].lower():
            raise Conflict(f"connection {item['name']!r} is used by the notification mail: "
                           "choose another connection there first")
        users = [c["name"] for c in items if c.get("popBeforeSmtp", "") and
                 c["popBeforeSmtp"].lower() == item["name"].lower()]
        if users:
            raise Conflict(f"connection {item['name']!r} is the POP before SMTP login of "
                           f"{', '.join(users)}")
        items.remove(item)
        self._save(items)

    def _apply(self, item: dict[str, Any], fields: dict[str, Any],
               items: list[dict[str, Any]]) -> None:
        before = dict(item)
        password = fields.get("password")
        for key, value in fields.items():
            if key == "password":
                continue
            field = FIELDS.get(key)
            if field is None:
                raise InvalidArgument(f"unknown field {key!r} (known: {', '.join(FIELDS)}, "
                                      "password)")
            item[key] = check_value(field, value)
        kind = item["type"]
        if not item.get("serverName"):
            raise InvalidArgument("serverName must be set")
        allowed = SMTP_AUTH if kind == "smtp" else POP_AUTH
        if item["authentication"] not in allowed:
            raise InvalidArgument(f"authentication of a {kind} connection is one of "
                                  f"{', '.join(allowed)}, not {item['authentication']!r}")
        if item.get("caFile") != (before or {}).get("caFile"):
            check_ca_file(item.get("caFile"))
        if kind == "pop3" and item.get("popBeforeSmtp"):
            raise InvalidArgument("popBeforeSmtp applies to smtp connections only")
        if item.get("popBeforeSmtp"):
            pop = [c for c in items if c["name"].lower() == item["popBeforeSmtp"].lower()
                   and c["type"] == "pop3"]
            if not pop:
                raise InvalidArgument(f"popBeforeSmtp {item['popBeforeSmtp']!r} is not a pop3 "
                                      "connection")
        if password is not None:
            if not isinstance(password, str) or any(c in password for c in "\r\n\x00"):
                raise InvalidArgument("password must be a string of one line")
            item["password"] = (seal(self.data_dir, password, f"password of {item['name']}")
                                if password else None)
        elif item.get("password") and before and _exposed(before, item):
            raise InvalidArgument("give the password again when serverName or port changes, "
                                  "or when security, verifyCertificate or caFile would let it "
                                  "go where the stored one never went")
        needs_user = item["authentication"] != "none"
        if needs_user and not (item.get("userName") and item.get("password")):
            raise InvalidArgument(f"authentication {item['authentication']!r} needs userName "
                                  "and password")
