"""`mailkeep store ...`: create, attach, detach and change archive stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from mailkeep.cli.common import archive_of, domain_errors, human, out
from mailkeep.core import errors
from mailkeep.core.archive import Archive
from mailkeep.core.master import STATES


# -- stores ----------------------------------------------------------------------------------
@click.group()
def store() -> None:
    """Create, attach, detach and change archive stores."""


def _store_dict(archive: Archive, rec: Any, with_size: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {"id": rec.id, "name": rec.name, "path": str(rec.path),
                         "state": rec.state}
    if with_size and rec.state != "disabled":
        try:
            s = archive.open_store(rec)
            entries, blobs, size = s.catalog.counts()
            d.update(messages=entries, distinctMessages=blobs, rawBytes=size,
                     diskBytes=sum(s.disk_usage().values()), encrypted=s.encrypted)
        except errors.MailkeepError as exc:
            d["error"] = exc.message
    return d


@store.command("create")
@click.argument("name")
@click.option("--path", type=click.Path(path_type=Path), help="Where the store lives "
              "(default <data>/stores/NAME).")
@click.option("--encrypt", is_flag=True, help="Encrypt messages at rest (AES-256-GCM).")
@click.pass_context
@domain_errors
def store_create(ctx: click.Context, name: str, path: Path | None, encrypt: bool) -> None:
    """Create a new store (the first one becomes current)."""
    with archive_of(ctx) as archive:
        rec = archive.create_store(name, path, encrypt)
        out.print(f"created store {rec.name!r} (id {rec.id}, {rec.state}) at {rec.path}"
                  + (", encrypted" if encrypt else ""))


@store.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@domain_errors
def store_list(ctx: click.Context, as_json: bool) -> None:
    """List attached stores."""
    with archive_of(ctx) as archive:
        rows = [_store_dict(archive, r) for r in archive.stores()]
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        table = Table("id", "name", "state", "messages", "size", "on disk", "path")
        for r in rows:
            table.add_row(str(r["id"]), r["name"] + (" (encrypted)" if r.get("encrypted") else ""),
                          r["state"], str(r.get("messages", r.get("error", "-"))),
                          human(r["rawBytes"]) if "rawBytes" in r else "-",
                          human(r["diskBytes"]) if "diskBytes" in r else "-", r["path"])
        out.print(table)


@store.command("attach")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Attach under another name.")
@click.pass_context
@domain_errors
def store_attach(ctx: click.Context, path: Path, name: str | None) -> None:
    """Attach an existing store directory."""
    with archive_of(ctx) as archive:
        rec = archive.attach_store(path, name)
        d = _store_dict(archive, rec)
        out.print(f"attached store {rec.name!r} (id {rec.id}, {rec.state}): "
                  f"{d.get('messages', 0)} messages")


@store.command("detach")
@click.argument("store_ref", metavar="NAME|ID")
@click.pass_context
@domain_errors
def store_detach(ctx: click.Context, store_ref: str) -> None:
    """Detach a store; its directory stays as it is."""
    with archive_of(ctx) as archive:
        rec = archive.detach_store(store_ref)
        out.print(f"detached store {rec.name!r}; its files remain at {rec.path}")


@store.command("rename")
@click.argument("store_ref", metavar="NAME|ID")
@click.argument("new_name")
@click.pass_context
@domain_errors
def store_rename(ctx: click.Context, store_ref: str, new_name: str) -> None:
    """Rename a store."""
    with archive_of(ctx) as archive:
        rec = archive.rename_store(store_ref, new_name)
        out.print(f"store {rec.id} is now named {rec.name!r}")


@store.command("state")
@click.argument("store_ref", metavar="NAME|ID")
@click.argument("state", type=click.Choice(STATES))
@click.pass_context
@domain_errors
def store_state(ctx: click.Context, store_ref: str, state: str) -> None:
    """Set a store's state; making one current demotes the previous current store."""
    with archive_of(ctx) as archive:
        rec = archive.set_store_state(store_ref, state)
        out.print(f"store {rec.name!r} (id {rec.id}) is now {rec.state}")

