"""`mailkeep migrate`: the data directory's embedded installation into PostgreSQL, and its
segments into object storage (core/migrate.py). It works on the data directory itself, not
through a server: no server may run on it meanwhile."""

from __future__ import annotations

import json

import click

from mailkeep.cli.common import caller, shown
from mailkeep.cli.output import data_dir, domain_errors, echo
from mailkeep.core.errors import Conflict


@click.command()
@click.option("--to", "to", metavar="URL", required=True,
              help="The PostgreSQL database to move the master database and the catalogs "
                   "to (postgresql://user@host:port/db; empty, or left by an unfinished run).")
@click.option("--objects", "objects", metavar="URL",
              help="Move the stores' segments to S3-compatible object storage too "
                   "(s3://bucket/prefix; endpoint and keys from the AWS environment).")
@click.option("--json", "as_json", is_flag=True, help="The figures of each store as JSON.")
@click.pass_context
@domain_errors
def migrate(ctx: click.Context, to: str, objects: str | None, as_json: bool) -> None:
    """Move this data directory's installation into PostgreSQL (and object storage), checked
    store by store (messages, folders, tree root); run it again to finish one cut off.

    Stop the server first. The passphrase of each store sealed under one is asked
    for. The data directory's files are left as they were; afterwards
    start every server with --database URL (and --objects URL) and this data directory's
    conf/master.key."""
    from mailkeep.core.backends import BadBackend, database_url
    from mailkeep.core.migrate import Migration, summary
    if ctx.obj.get("backends_file"):
        raise Conflict("this data directory's installation is on PostgreSQL already "
                       "(conf/backends.json: `mailkeep backends show`)")
    if database_url() is not None:
        raise Conflict("migrate moves the data directory's embedded installation: leave "
                       "--database and MAILKEEP_DATABASE out (the target is --to)")
    try:
        migration = Migration(
            data_dir(ctx), to, objects, report=lambda line: echo(shown(line), err=True),
            passphrase=lambda name: str(click.prompt(f"Passphrase of store {shown(name)}",
                                                     hide_input=True, err=True)),
            actor=caller().actor)
    except BadBackend as exc:
        raise click.BadParameter(str(exc), param_hint="--objects" if objects and str(
            exc).startswith("--objects") else "--to") from None
    figures = migration.run()
    if as_json:
        echo(json.dumps(summary(figures), indent=2))
        return
    moved = [f for f in figures if not f.skipped]
    echo(f"migrated {len(figures)} stores ({len(moved)} in this run), "
         f"{sum(f.messages for f in figures)} messages; this data directory now runs on them "
         "(conf/backends.json); other servers: --database" + (" and --objects" if objects
                                                              else ""))
