"""`mailkeep backends ...`: where this data directory's installation keeps what it shares
(core/backend_conf.py), for the commands and the server that are given no --database or
--objects. It works on the data directory's conf/ itself, as `mailkeep migrate` does."""

from __future__ import annotations

import json

import click

from mailkeep.cli.common import shown
from mailkeep.cli.output import data_dir, domain_errors, echo


@click.group()
def backends() -> None:
    """Where this data directory's installation keeps what it shares (PostgreSQL, object
    storage) when no --database or --objects is given: conf/backends.json, its credentials
    sealed."""


@backends.command("set")
@click.option("--database", "database", metavar="URL", required=True,
              help="The PostgreSQL database (postgresql://user@host:port/db).")
@click.option("--objects", "objects", metavar="URL",
              help="The S3-compatible object storage of the segments (s3://bucket/prefix).")
@click.option("--endpoint", metavar="URL", help="The S3 endpoint (default: AWS's).")
@click.option("--region", help="The S3 region.")
@click.option("--access-key-id", help="The S3 access key id (its secret key is asked for).")
@click.option("--ask-password", is_flag=True,
              help="Ask for the database's password (else libpq's own: ~/.pgpass, "
                   "PGPASSWORD).")
@click.pass_context
@domain_errors
def backends_set(ctx: click.Context, database: str, objects: str | None, endpoint: str | None,
                 region: str | None, access_key_id: str | None, ask_password: bool) -> None:
    """Keep the engines for every command and server of this data directory; the password
    and the S3 secret key are sealed under the master key (a password written in the URL
    is taken out of it and sealed too)."""
    from mailkeep.core import backend_conf
    password = (str(click.prompt("Database password", hide_input=True, err=True))
                if ask_password else None)
    secret = (str(click.prompt("S3 secret access key", hide_input=True, err=True))
              if access_key_id else None)
    kept = backend_conf.save(data_dir(ctx), database, objects, endpoint=endpoint,
                             region=region, access_key_id=access_key_id, password=password,
                             secret_access_key=secret)
    echo(f"kept in conf/backends.json: database {shown(kept['database'])}"
         + (f", objects {shown(kept['objects'])}" if kept["objects"] else ""))


@backends.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@domain_errors
def backends_show(ctx: click.Context, as_json: bool) -> None:
    """What conf/backends.json keeps (never a credential: whether one is kept)."""
    from mailkeep.core import backend_conf
    kept = backend_conf.show(data_dir(ctx))
    if as_json:
        echo(json.dumps(kept, indent=2))
    elif not kept:
        echo("none kept: the embedded default, unless --database or MAILKEEP_DATABASE says "
             "otherwise")
    else:
        for key, value in kept.items():
            echo(f"{key}: {shown(value)}")


@backends.command("clear")
@click.pass_context
@domain_errors
def backends_clear(ctx: click.Context) -> None:
    """Forget the kept engines: the data directory's embedded files again (what they hold is
    what they held when the installation moved to PostgreSQL)."""
    from mailkeep.core import backend_conf
    echo("conf/backends.json removed" if backend_conf.clear(data_dir(ctx))
         else "none kept")
