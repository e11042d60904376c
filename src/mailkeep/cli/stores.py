"""`mailkeep store ...`: create, attach, detach and change archive stores, through the
catalog's store functions (stores are named by name or id here; the functions take ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from mailkeep.cli.common import call, domain_errors, human, out, shown
from mailkeep.core.errors import NotFound
from mailkeep.core.masterdb import STATES


@click.group()
def store() -> None:
    """Create, attach, detach and change archive stores."""


def _stores(ctx: click.Context) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = call(ctx, "GetStores", includeSize=True)
    return rows


def _find(ctx: click.Context, ref: str) -> dict[str, Any]:
    """A store named by its name or its id."""
    for row in _stores(ctx):
        if str(row["id"]) == ref or row["name"] == ref:
            return row
    raise NotFound(f"no store {ref!r} (see `mailkeep store list`)")


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    """A GetStores item as `store list --json` shows it."""
    shown: dict[str, Any] = {"id": row["id"], "name": row["name"], "path": row["databasePath"],
                             "state": row["requestedState"]}
    if row["error"] is not None:
        shown["error"] = row["error"]
    elif row["statisticsCount"] is not None:
        shown.update(messages=row["statisticsCount"], distinctMessages=row["distinctCount"],
                     rawBytes=row["statisticsSize"], diskBytes=row["diskSize"],
                     encrypted=row["encrypted"])
    return shown


@store.command("create")
@click.argument("name")
@click.option("--path", type=click.Path(path_type=Path), help="Where the store lives "
              "(default <data>/stores/NAME).")
@click.option("--encrypt", is_flag=True, help="Encrypt messages at rest (AES-256-GCM) under "
              "a key the data directory's master key wraps.")
@click.option("--passphrase", "ask_passphrase", is_flag=True, help="Encrypt it under a key a "
              "passphrase wraps instead (asked for): a store to hand to someone else, opened "
              "there with UnlockStore.")
@click.pass_context
@domain_errors
def store_create(ctx: click.Context, name: str, path: Path | None, encrypt: bool,
                 ask_passphrase: bool) -> None:
    """Create a new store (the first one becomes current)."""
    passphrase = None
    if ask_passphrase:
        passphrase = click.prompt("Passphrase", hide_input=True, confirmation_prompt=True,
                                  err=True)
    rec = call(ctx, "CreateStore", name=name, encrypt=encrypt or None, passphrase=passphrase,
               databasePath=str(path.resolve()) if path else None)
    sealed = ", encrypted under a passphrase" if passphrase else (
        ", encrypted" if encrypt else "")
    out.print(f"created store {shown(repr(rec['name']))} (id {rec['id']}, "
              f"{rec['requestedState']}) at {shown(rec['databasePath'])}{sealed}")


@store.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@domain_errors
def store_list(ctx: click.Context, as_json: bool) -> None:
    """List attached stores."""
    rows = [_listed(r) for r in _stores(ctx)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "state", "messages", "size", "on disk", "path")
    for r in rows:
        table.add_row(str(r["id"]),
                      shown(r["name"]) + (" (encrypted)" if r.get("encrypted") else ""),
                      r["state"], shown(r.get("messages", r.get("error", "-"))),
                      human(r["rawBytes"]) if "rawBytes" in r else "-",
                      human(r["diskBytes"]) if "diskBytes" in r else "-", shown(r["path"]))
    out.print(table)


@store.command("attach")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Attach under another name.")
@click.pass_context
@domain_errors
def store_attach(ctx: click.Context, path: Path, name: str | None) -> None:
    """Attach an existing store directory."""
    rec = call(ctx, "AttachStore", name=name or "", type="FileSystemInternal",
               databasePath=str(path.resolve()))
    out.print(f"attached store {shown(repr(rec['name']))} (id {rec['id']}, "
              f"{rec['requestedState']}): {rec['statisticsCount'] or 0} messages")


@store.command("detach")
@click.argument("store_ref", metavar="NAME|ID")
@click.pass_context
@domain_errors
def store_detach(ctx: click.Context, store_ref: str) -> None:
    """Detach a store; its directory stays as it is."""
    rec = _find(ctx, store_ref)
    call(ctx, "DetachStore", id=rec["id"])
    out.print(f"detached store {shown(repr(rec['name']))}; its files remain at "
              f"{shown(rec['databasePath'])}")


@store.command("rename")
@click.argument("store_ref", metavar="NAME|ID")
@click.argument("new_name")
@click.pass_context
@domain_errors
def store_rename(ctx: click.Context, store_ref: str, new_name: str) -> None:
    """Rename a store."""
    rec = _find(ctx, store_ref)
    call(ctx, "RenameStore", id=rec["id"], name=new_name)
    out.print(f"store {rec['id']} is now named {new_name!r}")


@store.command("state")
@click.argument("store_ref", metavar="NAME|ID")
@click.argument("state", type=click.Choice(STATES))
@click.pass_context
@domain_errors
def store_state(ctx: click.Context, store_ref: str, state: str) -> None:
    """Set a store's state; making one current demotes the previous current store."""
    rec = _find(ctx, store_ref)
    call(ctx, "SetStoreRequestedState", id=rec["id"], requestedState=state)
    out.print(f"store {shown(repr(rec['name']))} (id {rec['id']}) is now {state}")


@store.command("export")
@click.argument("store_ref", metavar="NAME|ID")
@click.argument("directory", type=click.Path(path_type=Path))
@click.pass_context
@domain_errors
def store_export(ctx: click.Context, store_ref: str, directory: Path) -> None:
    """Copy a store, wherever this installation keeps it (PostgreSQL, object storage), to a
    self-contained directory that `store attach` takes on any installation with the same
    master key; checked (messages, folders, tree root, every record verified)."""
    from mailkeep.cli.output import archive_of, echo
    from mailkeep.core.migrate import export_store
    with archive_of(ctx) as archive:
        rec = archive.find_store(store_ref)
        made = export_store(archive, rec, directory,
                            report=lambda line: echo(shown(line), err=True))
    out.print(f"store {shown(repr(rec.name))}: {made.messages} messages, {made.entries} in "
              f"folders, {made.leaves} tree leaves, exported to {shown(str(directory))} "
              f"({made.seconds} s): attach it with `mailkeep store attach`", highlight=False)
