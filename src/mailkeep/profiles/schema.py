"""The properties of an archiving profile: one JSON object per profile, checked field by field
against the schema of its source type. docs/profiles.md is the reference for users.

Secrets (`password`, `accessToken`) are write-only: they are taken out of the properties and
stored sealed; what is shown has `hasPassword` / `hasAccessToken` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailkeep.core.errors import InvalidArgument
from mailkeep.core.fields import Field, FieldError, Kind
from mailkeep.core.tls import check_ca_file
from mailkeep.sources.maildir import is_maildir
from mailkeep.sources.pst import MAGIC as PST_MAGIC

TYPES = ("imap", "pop3", "directory", "maildir", "pst")
SECRETS = ("password", "accessToken")
SECURITY = ("implicit", "starttls", "none")
NAME_MAX = 200


_KINDS: dict[str, Kind] = {"str": "string", "int": "int", "bool": "bool", "list": "list"}


def _f(name: str, kind: str, default: Any = None, required: bool = False,
       values: tuple[str, ...] = (), doc: str = "") -> Field:
    """A property: kind str, int, bool or list, "?" for one that may be null. Text is one
    line (no control characters); numbers are whole, 0 to 10**9."""
    base = kind.rstrip("?")
    return Field(name, _KINDS[base],
                 kind.endswith("?"), doc, default=default, required=required, choices=values,
                 low=0 if base == "int" else None, high=10**9 if base == "int" else None,
                 format="line" if base == "str" and not values else "",
                 secret=name in SECRETS)


def _by_name(*fields: Field) -> dict[str, Field]:
    return {f.name: f for f in fields}


_COMMON = _by_name(
    _f("name", "str", required=True, doc="Unique name of the profile."),
    _f("type", "str", required=True, values=TYPES, doc="The source type."),
    _f("userName", "str", required=True,
       doc="The mailkeep user whose archive the mail goes into."),
    _f("targetFolder", "str", "", doc="Folder of that archive the source's folders go under "
       "('' = the top; messages at the top of the source then go to Inbox)."),
)
_SERVER = _by_name(
    _f("host", "str", required=True, doc="Mail server host name or address."),
    _f("port", "int?", doc="Default: 993/995 for implicit TLS, else 143/110."),
    _f("security", "str", "implicit", values=SECURITY,
       doc="implicit (IMAPS/POP3S), starttls (STARTTLS/STLS) or none."),
    _f("verifyCertificate", "bool", True, doc="Check the server's certificate and name."),
    _f("caFile", "str?", doc="PEM file of a private certificate authority to trust."),
    _f("timeout", "int", 60, doc="Seconds each network step may take."),
    _f("login", "str", required=True, doc="Account name on the mail server."),
    _f("password", "str?", doc="Write-only; stored sealed."),
    _f("deleteAfterDays", "int?", doc="Delete messages from the server once archived and this "
       "many days old (null: never delete)."),
)
SCHEMAS: dict[str, dict[str, Field]] = {
    "imap": {**_COMMON, **_SERVER, **_by_name(
        _f("authentication", "str", "login", values=("login", "plain", "xoauth2"),
           doc="LOGIN, AUTHENTICATE PLAIN, or XOAUTH2 with accessToken."),
        _f("accessToken", "str?", doc="OAuth2 access token for xoauth2; write-only."),
        _f("folders", "list", [], doc="Only these folders ('/'-separated, decoded); [] = all "
           "folders."),
        _f("excludeFolders", "list", [], doc="Folders (with their subfolders) to leave out."))},
    "pop3": {**_COMMON, **_SERVER, **_by_name(
        _f("apop", "bool", False, doc="Log in with APOP instead of USER/PASS."),
        _f("targetFolder", "str", "Inbox", doc="Folder the messages are filed in."))},
    "directory": {**_COMMON, **_by_name(
        _f("path", "str", required=True, doc="Absolute path of the directory to watch."),
        _f("pattern", "str", "*.eml", doc="File names to take (glob)."),
        _f("recursive", "bool", True, doc="Also look in subdirectories (their names become "
           "folders)."),
        _f("deleteAfterArchive", "bool", False, doc="Remove each file once it is archived "
           "durably."))},
    "maildir": {**_COMMON, **_by_name(
        _f("path", "str", required=True, doc="Absolute path of the Maildir (with cur/ and new/; "
           "Maildir++ folders included)."),
        _f("deleteAfterArchive", "bool", False, doc="Remove each message file once it is "
           "archived durably."))},
    "pst": {**_COMMON, **_by_name(
        _f("path", "str", required=True, doc="Absolute path of an Outlook PST or OST file; "
           "read again whole when it changes (what is archived already is stored once)."))},
}


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(f"Invalid profile properties: {message}.")


def _check(name: str, field: Field, value: Any) -> Any:
    try:
        checked = field.check(value)
    except FieldError as exc:
        raise _bad(exc.message) from None
    if field.kind == "list":
        return [v.strip("/") for v in checked]
    return checked


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
        if p["caFile"] is not None:
            try:
                check_ca_file(p["caFile"])
            except InvalidArgument as exc:
                raise _bad(exc.message) from None
    if "path" in p:
        path = Path(p["path"])
        if not path.is_absolute():
            raise _bad("path must be absolute")
        if p["type"] == "pst":
            try:
                with path.open("rb") as f:
                    magic = f.read(4)
            except OSError as exc:
                raise _bad(f"path {p['path']!r} cannot be read ({exc.strerror or exc})"
                           ) from None
            if magic != PST_MAGIC:
                raise _bad(f"path {p['path']!r} is not an Outlook PST or OST file")
        elif not path.is_dir():
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
    kinds = {"string": "str", "int": "int", "bool": "bool", "list": "list"}
    return {kind: {name: {"type": kinds[f.kind] + ("|null" if f.nullable else ""),
                          "default": f.default, "required": f.required,
                          **({"values": list(f.choices)} if f.choices else {}),
                          "doc": f.description}
                   for name, f in fields.items()} for kind, fields in SCHEMAS.items()}
