"""Where an installation keeps what it shares: the master database and the stores' catalogs
in SQLite files of the data directory (the embedded default), or in PostgreSQL; segments on
local disk, or in S3-compatible object storage.

The choice is made by `--database` and `--objects` on the command line, or the environment
variables MAILKEEP_DATABASE and MAILKEEP_OBJECTS (the command line sets them, so that every
process the command starts follows it). Nothing here connects to anything."""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_VAR = "MAILKEEP_DATABASE"
OBJECTS_VAR = "MAILKEEP_OBJECTS"


class BadBackend(ValueError):
    """A --database or --objects that names nothing mailkeep can use."""


def check_database(url: str) -> str:
    """A database URL as given, if mailkeep can use it: a libpq URL of PostgreSQL."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise BadBackend("--database takes a PostgreSQL URL (postgresql://user@host:port/db); "
                         "without it, the master database is the data directory's SQLite file")
    return url


def check_objects(url: str) -> str:
    """An objects URL as given, if mailkeep can use it: s3://bucket[/prefix], with a database
    in PostgreSQL (the catalogs there name the segments' parts)."""
    if not url.startswith("s3://") or len(url) <= len("s3://"):
        raise BadBackend("--objects takes an S3 URL (s3://bucket or s3://bucket/prefix); the "
                         "endpoint, region and keys come from the AWS environment")
    return url


def objects_url() -> str | None:
    """The object store the installation keeps its segments in, or None: local disk."""
    url = os.environ.get(OBJECTS_VAR, "").strip()
    if not url:
        return None
    if database_url() is None:
        raise BadBackend("--objects needs --database: the catalogs in PostgreSQL name the "
                         "segments' parts")
    return check_objects(url)


def database_url(data_dir: Path | str | None = None) -> str | None:
    """The PostgreSQL database the installation uses, or None: the SQLite file of the data
    directory."""
    url = os.environ.get(DATABASE_VAR, "").strip()
    return check_database(url) if url else None
