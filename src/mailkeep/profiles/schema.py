"""The properties of an archiving profile: one JSON object per profile, checked field by field
against the schema of its source type. docs/profiles.md is the reference for users.

Secrets (`password`, `accessToken`) are write-only: they are taken out of the properties and
stored sealed; what is shown has `hasPassword` / `hasAccessToken` instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailkeep.core.errors import InvalidArgument
from mailkeep.sources.maildir import is_maildir

TYPES = ("imap", "pop3", "directory", "maildir")
SECRETS = ("password", "accessToken")
SECURITY = ("implicit", "starttls", "none")
NAME_MAX = 200


@dataclass(frozen=True)
class Field:
    kind: str  # str | int | bool | list | str? (nullable str) | int? (nullable int)
    default: Any = None
    required: bool = False
    values: tuple[str, ...] = ()
    doc: str = ""


_COMMON = {
    "name": Field("str", required=True, doc="Unique name of the profile."),
    "type": Field("str", required=True, values=TYPES, doc="The source type."),
    "userName": Field("str", required=True,
                      doc="The mailkeep user whose archive the mail goes into."),
    "targetFolder": Field("str", "", doc="Folder of that archive the source's folders go "
                          "under ('' = the top; messages at the top of the source then go "
                          "to Inbox)."),
}
_SERVER = {
    "host": Field("str", required=True, doc="Mail server host name or address."),
    "port": Field("int?", doc="Default: 993/995 for implicit TLS, else 143/110."),
    "security": Field("str", "implicit", values=SECURITY,
                      doc="implicit (IMAPS/POP3S), starttls (STARTTLS/STLS) or none."),
    "verifyCertificate": Field("bool", True, doc="Check the server's certificate and name."),
    "caFile": Field("str?", doc="PEM file of a private certificate authority to trust."),
    "timeout": Field("int", 60, doc="Seconds each network step may take."),
    "login": Field("str", required=True, doc="Account name on the mail server."),
    "password": Field("str?", doc="Write-only; stored sealed."),
    "deleteAfterDays": Field("int?", doc="Delete messages from the server once archived and "
                             "this many days old (null: never delete)."),
}
SCHEMAS: dict[str, dict[str, Field]] = {
    "imap": {**_COMMON, **_SERVER,
             "authentication": Field("str", "login", values=("login", "plain", "xoauth2"),
                                     doc="LOGIN, AUTHENTICATE PLAIN, or XOAUTH2 with "
                                     "accessToken."),
             "accessToken": Field("str?", doc="OAuth2 access token for xoauth2; write-only."),
             "folders": Field("list", [], doc="Only these folders ('/'-separated, decoded); "
                              "[] = all folders."),
             "excludeFolders": Field("list", [], doc="Folders (with their subfolders) to "
                                     "leave out.")},
    "pop3": {**_COMMON, **_SERVER,
             "apop": Field("bool", False, doc="Log in with APOP instead of USER/PASS."),
             "targetFolder": Field("str", "Inbox", doc="Folder the messages are filed in.")},
    "directory": {**_COMMON,
                  "path": Field("str", required=True, doc="Absolute path of the directory "
                                "to watch."),
                  "pattern": Field("str", "*.eml", doc="File names to take (glob)."),
                  "recursive": Field("bool", True, doc="Also look in subdirectories (their "
                                     "names become folders)."),
                  "deleteAfterArchive": Field("bool", False, doc="Remove each file once it "
                                              "is archived durably.")},
    "maildir": {**_COMMON,
                "path": Field("str", required=True, doc="Absolute path of the Maildir (with "
                              "cur/ and new/; Maildir++ folders included)."),
                "deleteAfterArchive": Field("bool", False, doc="Remove each message file "
                                            "once it is archived durably.")},
}


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(f"Invalid profile properties: {message}.")


def _check(name: str, field: Field, value: Any) -> Any:
    kind = field.kind
    if value is None:
        if kind.endswith("?"):
            return None
        raise _bad(f"{name} must not be null")
    base = kind.rstrip("?")
    if base == "str":
        if not isinstance(value, str):
            raise _bad(f"{name} must be a string")
        if any(ord(c) < 32 for c in value):
            raise _bad(f"{name} must not contain control characters")
        if field.values and value not in field.values:
            raise _bad(f"{name} must be one of {', '.join(field.values)}")
        return value
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(f"{name} must be a whole number")
        if value < 0 or value > 10**9:
            raise _bad(f"{name} is out of range")
        return value
    if base == "bool":
        if not isinstance(value, bool):
            raise _bad(f"{name} must be true or false")
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _bad(f"{name} must be a list of folder names")
    return [v.strip("/") for v in value]


def normalize(props: Any, old: dict[str, Any] | None = None) -> tuple[dict[str, Any],
                                                                       dict[str, str]]:
    """(properties without secrets, with defaults filled in; the secrets given). `old` are the
    stored properties for a partial update (the type cannot change)."""
    if not isinstance(props, dict):
        raise _bad("a JSON object is expected")
    kind = props.get("type", (old or {}).get("type"))
    if kind not in TYPES:
        raise _bad(f"type must be one of {', '.join(TYPES)}")
    if old is not None and kind != old.get("type"):
        raise _bad("type cannot be changed; create a new profile")
    schema = SCHEMAS[kind]
    unknown = sorted(set(props) - set(schema))
    if unknown:
        raise _bad(f"unknown field(s) for a {kind} profile: {', '.join(unknown)} (see "
                   "docs/profiles.md)")
    out: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for name, field in schema.items():
        if name in props:
            value = _check(name, field, props[name])
        elif old is not None and name in old:
            value = old[name]
        elif field.required:
            raise _bad(f"{name} is required")
        else:
            value = field.default
        if name in SECRETS:
            if value:
                secrets[name] = value
            continue
        out[name] = value
    _check_whole(out)
    return out, secrets


def _check_whole(p: dict[str, Any]) -> None:
    name = p["name"].strip()
    if not name or len(name) > NAME_MAX or name != p["name"]:
        raise _bad(f"name must be 1-{NAME_MAX} characters without surrounding spaces")
    if any(part in ("", ".", "..") for part in p["targetFolder"].split("/")) and \
            p["targetFolder"] != "":
        raise _bad("targetFolder must be a '/'-separated folder path without empty parts")
    if "host" in p:
        if not p["host"].strip() or " " in p["host"]:
            raise _bad("host must be a host name or address")
        if p["port"] is not None and not 0 < p["port"] < 65536:
            raise _bad("port must be between 1 and 65535")
        if p["timeout"] == 0 or p["timeout"] > 3600:
            raise _bad("timeout must be between 1 and 3600 seconds")
        if p["caFile"] is not None and not os.path.isfile(p["caFile"]):
            raise _bad(f"caFile {p['caFile']!r} is not a readable file")
    if "path" in p:
        path = Path(p["path"])
        if not path.is_absolute():
            raise _bad("path must be absolute")
        if not path.is_dir():
            raise _bad(f"path {p['path']!r} is not a directory")
        if p["type"] == "maildir" and not is_maildir(path):
            raise _bad(f"path {p['path']!r} is not a Maildir (no cur/ and new/)")


def default_port(p: dict[str, Any]) -> int:
    if p.get("port"):
        return int(p["port"])
    implicit = p.get("security") == "implicit"
    if p["type"] == "imap":
        return 993 if implicit else 143
    return 995 if implicit else 110


def needs_secret(p: dict[str, Any], secrets: dict[str, str]) -> None:
    """A server profile cannot run without its password (or token)."""
    if p["type"] == "imap" and p.get("authentication") == "xoauth2":
        if not secrets.get("accessToken"):
            raise _bad("accessToken is required for authentication xoauth2")
    elif p["type"] in ("imap", "pop3") and not secrets.get("password"):
        raise _bad("password is required")


def shown(p: dict[str, Any], secrets: dict[str, str] | set[str]) -> dict[str, Any]:
    """The properties as the API shows them: secrets only as has<Name> flags."""
    out = dict(p)
    if p["type"] in ("imap", "pop3"):
        out["hasPassword"] = "password" in secrets
    if p["type"] == "imap":
        out["hasAccessToken"] = "accessToken" in secrets
    return out


def schema_doc() -> dict[str, Any]:
    """The schemas as data (for `mailkeep profile schema` and the docs)."""
    return {kind: {name: {"type": f.kind.replace("?", "|null"), "default": f.default,
                          "required": f.required, **({"values": list(f.values)}
                                                     if f.values else {}), "doc": f.doc}
                   for name, f in fields.items()} for kind, fields in SCHEMAS.items()}
