"""conf/backends.json: the engines of an installation kept as a setting of the data directory
(the database's location cannot be a row of that database): the PostgreSQL URL, the objects
URL with the S3 endpoint, region and access key id, and the two credentials (the database's
password, the S3 secret key) sealed under the master key like every secret. A command or
server of the data directory that is given neither `--database`/`--objects` nor
MAILKEEP_DATABASE/MAILKEEP_OBJECTS takes them from there (cli/group.py): into its
environment, as the flags do, so that what it starts follows them; the credentials as libpq
and the AWS SDK read them (PGPASSWORD, AWS_SECRET_ACCESS_KEY), unless the environment has
its own. `mailkeep backends` sets, shows (never a credential) and clears it; `mailkeep
migrate` sets it when it finishes."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from mailkeep.core.admin.secrets import open_text, seal_text, secret_key, secret_keys
from mailkeep.core.backends import (
    DATABASE_VAR,
    OBJECTS_VAR,
    BadBackend,
    check_database,
    check_objects,
)
from mailkeep.core.errors import InvalidArgument, KeyMissing
from mailkeep.core.files import private_dir, write_json_atomic

FILE = "backends.json"
PURPOSE = "backend credentials"
FORMAT = 1
MAX_BYTES = 64 << 10
# field -> the environment variable it goes to
PLAIN = {"endpoint": "AWS_ENDPOINT_URL", "region": "AWS_DEFAULT_REGION",
         "accessKeyId": "AWS_ACCESS_KEY_ID"}
SEALED = {"databasePassword": "PGPASSWORD", "secretAccessKey": "AWS_SECRET_ACCESS_KEY"}


def path_of(data_dir: Path) -> Path:
    return data_dir / "conf" / FILE


def _read(data_dir: Path) -> dict[str, Any] | None:
    """The file, checked: every value of the type it must be, the URLs ones mailkeep can use;
    InvalidArgument saying what is wrong (never a traceback, never silently another engine)."""
    path = path_of(data_dir)
    if path.is_symlink() and not path.exists():
        raise InvalidArgument(f"conf/{FILE} is a link to nothing: remove it "
                              "(`mailkeep backends clear`) or set it again")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InvalidArgument(f"conf/{FILE} is too large to be a backends file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        raise InvalidArgument(f"conf/{FILE} cannot be read: "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidArgument(f"conf/{FILE} is not a format-{FORMAT} backends file")
    for name in ("database", "objects", *PLAIN, *SEALED):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise InvalidArgument(f"conf/{FILE}: {name} is not text")
    try:
        check_database(str(data.get("database") or ""))
        if data.get("objects"):
            check_objects(str(data["objects"]))
    except BadBackend as exc:
        raise InvalidArgument(f"conf/{FILE}: {exc}") from None
    return data


def without_password(url: str) -> tuple[str, str | None]:
    """A libpq URL without the password it may hold (in its user part, or as password=...
    of its query), and that password, decoded. Several hosts (h1:5432,h2:5433) are kept as
    they are."""
    parts = urlsplit(url)
    password = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hosts = netloc.rsplit("@", 1)
        if ":" in userinfo:
            user, secret = userinfo.split(":", 1)
            netloc, password = f"{user}@{hosts}", unquote(secret)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "sslpassword" for k, _v in query):
        raise InvalidArgument("sslpassword in the URL would be kept in clear: give the key "
                              "without a passphrase, or the URL on the command line")
    kept = [(k, v) for k, v in query if k != "password"]
    if len(kept) != len(query):
        password = password or next(v for k, v in query if k == "password")
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(kept))), password


def save(data_dir: Path, database: str, objects: str | None = None, *,
         endpoint: str | None = None, region: str | None = None,
         access_key_id: str | None = None, password: str | None = None,
         secret_access_key: str | None = None) -> dict[str, Any]:
    """Keep the engines in conf/backends.json (a password in the URL is taken out of it and
    sealed); what `show` says of them."""
    try:
        database = check_database(database)
        if objects:
            check_objects(objects)
    except BadBackend as exc:
        raise InvalidArgument(str(exc)) from None
    database, in_url = without_password(database)
    password = password or in_url
    data: dict[str, Any] = {"format": FORMAT, "database": database, "objects": objects or None,
                            "endpoint": endpoint or None, "region": region or None,
                            "accessKeyId": access_key_id or None}
    for field, value in (("databasePassword", password),
                         ("secretAccessKey", secret_access_key)):
        data[field] = (seal_text(secret_key(data_dir, PURPOSE), value, f"backends.{field}")
                       if value else None)
    private_dir(data_dir / "conf")
    write_json_atomic(path_of(data_dir), data, mode=0o600)
    return show(data_dir)


def show(data_dir: Path) -> dict[str, Any]:
    """What conf/backends.json says, without its credentials (whether each is kept); an empty
    dict without the file."""
    data = _read(data_dir)
    if data is None:
        return {}
    out = {k: data.get(k) for k in ("database", "objects", *PLAIN)}
    out.update({f"has{k[0].upper()}{k[1:]}": bool(data.get(k)) for k in SEALED})
    return out


def clear(data_dir: Path) -> bool:
    """Remove conf/backends.json; whether there was one."""
    try:
        path_of(data_dir).unlink()
        return True
    except FileNotFoundError:
        return False


def load_into(environ: MutableMapping[str, str], data_dir: Path) -> bool:
    """With no database in `environ`: the data directory's engines from conf/backends.json
    into it (what the environment sets itself is kept); whether there were any."""
    if environ.get(DATABASE_VAR) or environ.get(OBJECTS_VAR):
        return False
    data = _read(data_dir)
    if data is None:
        return False
    values: dict[str, str] = {DATABASE_VAR: data["database"]}
    if data.get("objects"):
        values[OBJECTS_VAR] = str(data["objects"])
    for field, var in PLAIN.items():
        if data.get(field):
            values[var] = str(data[field])
    for field, var in SEALED.items():
        if data.get(field):
            try:
                values[var] = open_text(secret_keys(data_dir, PURPOSE), str(data[field]),
                                        f"backends.{field}")
            except (ValueError, TypeError):
                raise KeyMissing(f"the {field} of conf/{FILE} cannot be opened: sealed under "
                                 "another master key than this data directory's, or damaged "
                                 "(`mailkeep backends set` again)") from None
    for var, value in values.items():
        environ.setdefault(var, value)
    return True

