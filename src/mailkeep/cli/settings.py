"""`mailkeep settings ...`: the server's settings, through GetSettings, SetSetting and
ResetSetting."""

from __future__ import annotations

import json

import click
from rich.table import Table

from mailkeep.cli.common import call, domain_errors, out, shown


@click.group()
def settings() -> None:
    """Server settings (kept in the data directory; flags of serve override them)."""


@settings.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@domain_errors
def settings_list(ctx: click.Context, as_json: bool) -> None:
    """Every setting with its value (and whether it is the default)."""
    rows = call(ctx, "GetSettings")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("setting", "value", "", "description")
    for r in rows:
        table.add_row(r["key"], shown(json.dumps(r["value"])), "" if r["set"] else "(default)",
                      r["description"])
    out.print(table)


@settings.command("get")
@click.argument("key")
@click.pass_context
@domain_errors
def settings_get(ctx: click.Context, key: str) -> None:
    """Print one setting's value (JSON)."""
    rows = {r["key"]: r for r in call(ctx, "GetSettings")}
    if key not in rows:
        raise click.UsageError(f"no setting {key!r} (known: {', '.join(sorted(rows))})")
    click.echo(json.dumps(rows[key]["value"]))


@settings.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_context
@domain_errors
def settings_set(ctx: click.Context, key: str, value: str) -> None:
    """Change a setting (a running server picks it up when restarted)."""
    got = call(ctx, "SetSetting", key=key, value=value)
    out.print(f"{key} = {json.dumps(got['value'])} (restart `mailkeep serve` to apply)")


@settings.command("unset")
@click.argument("key")
@click.pass_context
@domain_errors
def settings_unset(ctx: click.Context, key: str) -> None:
    """Return a setting to its default."""
    got = call(ctx, "ResetSetting", key=key)
    out.print(f"{key} = {json.dumps(got['value'])} (default)")
