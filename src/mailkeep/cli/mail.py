"""CLI commands about messages: import, export, search, folders, show, verify, recover."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.tree import Tree

from mailkeep.cli.audit import print_chain
from mailkeep.cli.common import (
    archive_of,
    call,
    caller,
    data_dir,
    domain_errors,
    err,
    exit_code,
    human,
    out,
    plain,
    shown,
)
from mailkeep.core.admin.places import checked_place
from mailkeep.core.errors import MailkeepError
from mailkeep.core.export import export as run_export
from mailkeep.core.heap import hold_mmap_threshold
from mailkeep.core.ingest import Importer, ImportStats, Outcome
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.mime.parse import describe
from mailkeep.notify.events import record_event
from mailkeep.sources.detect import read_paths


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--folder", default="", help="Base folder for the imported mail.")
@click.option("--user", default="admin", show_default=True, help="Archive user who owns it.")
@click.option("--jsonl", is_flag=True, help="Print one JSON line per message once it is "
              "durable, and the summary as the last line.")
@click.option("--workers", type=int, default=None, help="Parser processes (default: cores).")
@click.pass_context
@domain_errors
def import_(ctx: click.Context, paths: tuple[Path, ...], folder: str, user: str, jsonl: bool,
            workers: int | None) -> None:
    """Import .eml files, directories, mbox files (also .gz), Maildirs, mail exports and
    Outlook PST and MSG files."""
    progress: Progress | None = None
    task = None
    if not jsonl and err.is_terminal:
        progress = Progress(SpinnerColumn(), BarColumn(), TaskProgressColumn(),
                            TimeRemainingColumn(), TextColumn("{task.description}"),
                            console=err, transient=True)
        task = progress.add_task("importing", total=None)
        progress.start()

    def on_outcome(o: Outcome) -> None:
        if jsonl:
            rec: dict[str, Any] = {"status": o.status, "origin": o.origin}
            if o.message_id:
                rec["id"] = o.message_id
            if o.reason:
                rec["reason"] = o.reason
            if o.warnings:
                rec["warnings"] = o.warnings
            sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        elif o.status in ("failed", "skipped"):
            err.print(f"[yellow]{o.status}:[/yellow] {shown(o.origin)}: {shown(o.reason)}",
                      highlight=False)

    def on_progress(s: ImportStats) -> None:
        if progress is not None and task is not None:
            progress.update(task, total=s.input_total or None, completed=s.input_done,
                            description=(
                                f"{s.archived} archived, {s.duplicates} dup, {s.failed} failed, "
                                f"{s.messages_per_second:.0f}/s"))

    importer: Importer | None = None
    hold_mmap_threshold()  # (before the workers start: they take it from the environment)
    try:
        with archive_of(ctx) as archive:
            for path in paths:  # the data directory's own files (its master database, its
                # keys) must never become messages of the archive
                checked_place(Path(path), archive.data_dir, "import source", [])
            importer = Importer(archive, owner=user, base_folder=folder, on_outcome=on_outcome,
                                on_progress=on_progress, workers=workers)
            try:
                stats = importer.run(read_paths(paths))
            finally:  # not a catalog function: audited here, once, however it ended
                counts = importer.stats
                archive.master.audit.write(
                    caller().actor, "import", via="cli", paths=[str(p) for p in paths],
                    folder=folder, user=user, archived=counts.archived,
                    duplicates=counts.duplicates, failed=counts.failed, skipped=counts.skipped)
    except KeyboardInterrupt:
        if progress is not None:
            progress.stop()
        done = importer.stats.archived if importer is not None else 0
        err.print(f"interrupted: {done} messages were archived before the interruption; "
                  "run the same import again to add the rest")
        sys.exit(130)
    finally:
        if progress is not None:
            progress.stop()
    if jsonl:
        click.echo(json.dumps({"summary": stats.as_dict()}))
    else:
        out.print(f"{stats.archived} archived, {stats.duplicates} duplicates, "
                  f"{stats.failed} failed, {stats.skipped} skipped, "
                  f"{stats.warnings} with warnings; "
                  f"{human(stats.bytes)} in {stats.seconds:.1f} s "
                  f"({stats.messages_per_second:.{0 if stats.messages_per_second >= 10 else 1}f}"
                  " messages/s, "
                  f"{human(stats.bytes_per_second)}/s)", highlight=False)
    if stats.failed:
        with MasterDB.of(data_dir(ctx)) as master:
            record_event(master, "import.failures",
                         f"import of {', '.join(str(p) for p in paths)}: {stats.failed} "
                         f"message(s) could not be archived ({stats.archived} archived)")
        sys.exit(1)


@click.command("export")
@click.option("--to", "destination", required=True, type=click.Path(path_type=Path),
              help="A directory (one .eml per message) or a FILE.mbox.")
@click.option("--folder", help="Only this folder (and its subfolders).")
@click.option("--user", help="Only this user's archive.")
@click.option("--query", default="", help="Only messages matching this search.")
@click.pass_context
@domain_errors
def export_(ctx: click.Context, destination: Path, folder: str | None, user: str | None,
            query: str) -> None:
    """Write messages back out, byte for byte."""
    start = time.monotonic()
    with archive_of(ctx) as archive:
        stats = run_export(archive, destination, query, folder, user)
        archive.master.audit.write(caller().actor, "MessageExport", query=query,
                                   folder=folder, user=user, count=stats.messages,
                                   destination=str(destination))
    for mid, why in stats.failed:
        err.print(f"[red]not exported:[/red] {shown(mid)}: {shown(why)}", highlight=False)
    for name, exc in stats.unavailable.items():
        err.print(f"[yellow]warning:[/yellow] store {shown(repr(name))} not exported: "
                  f"{shown(exc.message)}", highlight=False)
    out.print(f"exported {stats.messages} messages ({human(stats.bytes)}) to {destination} "
              f"in {time.monotonic() - start:.1f} s"
              + (f"; {len(stats.failed)} could not be read" if stats.failed else ""),
              highlight=False)
    if stats.failed:
        sys.exit(1)
    if stats.unavailable:
        sys.exit(max(exit_code(e) for e in stats.unavailable.values()))


@click.command()
@click.option("--user", help="Only this user's archive.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@domain_errors
def folders(ctx: click.Context, user: str | None, as_json: bool) -> None:
    """The folder tree with message counts and sizes."""
    with archive_of(ctx) as archive:
        rows = archive.folders(user)
    if as_json:
        click.echo(json.dumps([{"user": o, "folder": p, "messages": n, "bytes": b}
                               for o, p, n, b in rows], ensure_ascii=False, indent=2))
        return
    trees: dict[str, Tree] = {}
    nodes: dict[tuple[str, str], Tree] = {}
    for owner, path, n, b in rows:
        root = trees.setdefault(owner, Tree(f"[bold]{shown(owner)}[/bold]"))
        parent, prefix = root, ""
        for part in [p for p in path.split("/") if p] or [""]:
            prefix = f"{prefix}/{part}" if prefix else part
            node = nodes.get((owner, prefix))
            if node is None:
                node = parent.add(shown(part) if part else "(root)")
                nodes[(owner, prefix)] = node
            parent = node
        noun = "message" if n == 1 else "messages"
        leaf = path.rsplit("/", 1)[-1]
        parent.label = f"{shown(leaf) if leaf else '(root)'}  {n} {noun}, {human(b)}"
    for t in trees.values():
        out.print(t)


@click.command()
@click.argument("message_id", metavar="ID")
@click.option("--raw", is_flag=True, help="Print the exact bytes as archived.")
@click.pass_context
@domain_errors
def show(ctx: click.Context, message_id: str, raw: bool) -> None:
    """Show one message (ID is <storeId>:<number>)."""
    with archive_of(ctx) as archive:
        rec, store, number = archive.message(message_id)
        hit = store.catalog.entry(number)
        archive.master.audit.write(caller().actor, "MessageRetrieveContent", id=message_id,
                                   owner=hit.owner if hit else None)
        if raw:
            for chunk in store.read_chunks(number):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        flags, _ = store.catalog.entry_flags(number)
        noted = store.catalog.entry_warnings(number)
        head = store.read(number)
    view = describe(head)
    assert hit is not None
    out.print(f"[bold]{shown(message_id)}[/bold]  {shown(hit.owner)}/{shown(hit.folder)}  "
              f"{human(hit.size)}" + (f"  flags: {shown(', '.join(flags))}" if flags else ""),
              highlight=False)
    for name, value in view.headers:
        out.print(f"[bold]{shown(name)}:[/bold] {shown(value)}", highlight=False)
    for note in noted:
        out.print(f"[yellow]Indexed with a warning:[/yellow] {shown(note)}", highlight=False)
    out.print()
    out.print(plain(view.text, lines=True), highlight=False, markup=False)
    if view.attachments:
        out.print()
        out.print("[bold]Attachments:[/bold]")
        for fname, ctype, size in view.attachments:
            out.print(f"  {shown(fname) if fname else '(no name)'}  {shown(ctype)}  "
                      f"{human(size)}", highlight=False)


@click.command()
@click.argument("store_ref", metavar="[STORE]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--heads", "heads_file", type=click.File("r", encoding="utf-8"),
              help="Signed tree heads kept elsewhere (from `mailkeep heads export`): each must "
              "be a root of its store's tree.")
@click.option("--key", "key", help="The public key the heads must be signed with (default: "
              "this data directory's).")
@click.pass_context
@domain_errors
def verify(ctx: click.Context, store_ref: str | None, as_json: bool, heads_file: Any,
           key: str | None) -> None:
    """Re-read every record and check catalog and index against the segments, and the
    records against each store's Merkle tree and its signed heads (VerifyStore, or
    VerifyStores for every store that is not disabled); without STORE, the audit log's hash
    chain too (VerifyAuditLog)."""
    failure: MailkeepError | None = None
    extra: dict[str, Any] = {}
    if heads_file is not None:
        extra["heads"] = heads_file.read(64 << 20)
    if key:
        extra["publicKey"] = key
    try:
        if store_ref:
            with archive_of(ctx) as archive:
                store_id = archive.find_store(store_ref).id
            report = call(ctx, "VerifyStore", id=store_id, includeIndexes=True, report=True,
                          **extra)
        else:
            report = call(ctx, "VerifyStores", includeIndexes=True, report=True, **extra)
    except MailkeepError as exc:
        report = getattr(exc, "report", None)
        if report is None:
            raise
        failure = exc
    stores: list[dict[str, Any]] = report["stores"]
    if as_json:
        click.echo(json.dumps(stores, indent=2))
    else:
        for s in stores:
            if "error" in s:
                err.print(f"[red]store {shown(repr(s['name']))} (id {s['store']}) not "
                          f"verified:[/red] {shown(s['error'])}", highlight=False)
                continue
            for line in s["repairedOnOpen"]:
                out.print(f"store {shown(repr(s['name']))}: on open: {shown(line)}",
                          highlight=False)
            status = ("[green]ok[/green]" if s["ok"]
                      else f"[red]{len(s['problems'])} problems[/red]")
            out.print(f"store {shown(repr(s['name']))} (id {s['store']}): {s['messages']} "
                      "messages, "
                      f"{s['records']} records: {status}")
            tree = s.get("tree")
            if tree:
                head = tree["latestHead"]
                out.print(f"  tree: {tree['leaves']} leaves, {tree['records']} records match "
                          f"them, {tree['signedHeads']} signed heads checked" + (
                              f"; latest: {head['size']} leaves, root {head['root'][:16]}..."
                              if head else "; none signed yet")
                          + (f"; {tree['declaredLost']} leaves declared lost by recover"
                             if tree.get("declaredLost") else "")
                          + ("; heads signed by other keys too (another data directory's): "
                             + ", ".join(tree["otherKeys"]) if tree.get("otherKeys") else "")
                          + (f"; {tree['timestamped']} time-stamped (RFC 3161, latest "
                             f"{tree['lastTimestamp']})" if tree.get("timestamped") else ""),
                          highlight=False)
            if s.get("whileWritten"):
                out.print("  the store is being written: verified as it stands now (messages "
                          "archived from now on are verified next time)")
            for p in s["problems"]:
                out.print(f"  {shown(p['id'] or '-')}: {shown(p['problem'])}",
                          highlight=False)
    # the whole archive: its audit log's chain too (with --json its problems go to stderr and
    # the exit code says it)
    chain_ok = store_ref is not None or print_chain(call(ctx, "VerifyAuditLog"), as_json)
    if failure is not None:
        sys.exit(exit_code(failure))
    if not chain_ok:
        sys.exit(1)


@click.command()
@click.argument("store_ref", metavar="STORE")
@click.pass_context
@domain_errors
def recover(ctx: click.Context, store_ref: str) -> None:
    """Rebuild a store's catalog and full-text index from its segments (RecoverStore)."""
    with archive_of(ctx) as archive:
        rec = archive.find_store(store_ref)
    res = call(ctx, "RecoverStore", id=rec.id)
    for p in res["problems"]:
        out.print(f"  {shown(p)}", highlight=False)
    out.print(f"store {shown(repr(rec.name))}: catalog rebuilt with {res['messages']} "
              f"messages from {res['records']} records, {len(res['problems'])} problems",
              highlight=False)
