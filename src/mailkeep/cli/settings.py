"""`mailkeep settings ...`: the server's settings kept in the data directory."""

from __future__ import annotations

import json

import click
from rich.table import Table

from mailkeep.cli.common import archive_of, domain_errors, out
from mailkeep.core.admin.settings import Settings


# -- settings --------------------------------------------------------------------------------
@click.group()
def settings() -> None:
    """Server settings (kept in the data directory; flags of serve override them)."""


@settings.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@domain_errors
def settings_list(ctx: click.Context, as_json: bool) -> None:
    """Every setting with its value (and whether it is the default)."""
    with archive_of(ctx) as archive:
        rows = Settings(archive.master).all()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("setting", "value", "", "description")
    for r in rows:
        table.add_row(r["key"], json.dumps(r["value"]), "" if r["set"] else "(default)",
                      r["description"])
    out.print(table)


@settings.command("get")
@click.argument("key")
@click.pass_context
@domain_errors
def settings_get(ctx: click.Context, key: str) -> None:
    """Print one setting's value (JSON)."""
    with archive_of(ctx) as archive:
        click.echo(json.dumps(Settings(archive.master).get(key)))


@settings.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_context
@domain_errors
def settings_set(ctx: click.Context, key: str, value: str) -> None:
    """Change a setting (a running server picks it up when restarted)."""
    with archive_of(ctx) as archive:
        got = Settings(archive.master).set(key, value, archive.actor)
    out.print(f"{key} = {json.dumps(got)} (restart `mailkeep serve` to apply)")


@settings.command("unset")
@click.argument("key")
@click.pass_context
@domain_errors
def settings_unset(ctx: click.Context, key: str) -> None:
    """Return a setting to its default."""
    with archive_of(ctx) as archive:
        conf = Settings(archive.master)
        conf.unset(key, archive.actor)
        out.print(f"{key} = {json.dumps(conf.get(key))} (default)")


