"""`mailkeep audit ...`: the audit log, listed or exported (CSV, JSON lines), and its hash chain
verified (GetAuditLog, VerifyAuditLog)."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

import click

from mailkeep.cli.common import call, domain_errors, err, out, plain, shown

PAGE = 1000
FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would take such a cell as a formula


@click.group()
def audit() -> None:
    """The audit log: list or export it, verify its hash chain."""


@audit.command("list")
@click.option("--from", "start", metavar="YYYY-MM-DD", help="First day (UTC).")
@click.option("--to", "end", metavar="YYYY-MM-DD", help="Day after the last (UTC).")
@click.option("--actor", default="", help="Part of the actor, e.g. mcapi:alice.")
@click.option("--action", default="", help="Start of the event, e.g. Delete.")
@click.option("--object", "obj", default="", help="Part of the details: a message id (1:5), "
              "a user, a store, a folder.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "jsonl"]), default="table",
              show_default=True, help="csv and jsonl: every matching record, oldest first.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="Records shown as a table (newest first).")
@click.pass_context
@domain_errors
def audit_list(ctx: click.Context, start: str | None, end: str | None, actor: str,
               action: str, obj: str, fmt: str, limit: int) -> None:
    """The records that match, newest first as a table; all of them as CSV or JSON lines."""
    query: dict[str, Any] = {"fromIncluding": start, "toExcluding": end, "actor": actor,
                             "action": action, "object": obj}
    if fmt == "table":
        page = call(ctx, "GetAuditLog", **query, limit=limit)
        for r in page["records"]:
            out.print(f"{r['id']:>7} {r['at']} {shown(r['actor'])} [bold]{shown(r['action'])}"
                      f"[/bold] {shown(json.dumps(r['details'], ensure_ascii=False))}",
                      highlight=False)
        out.print(f"{len(page['records'])} of {page['total']} records")
        return
    records: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = call(ctx, "GetAuditLog", **query, offset=offset, limit=PAGE)
        records.extend(page["records"])
        offset += PAGE
        if offset >= page["total"] or not page["records"]:
            break
    records.reverse()  # oldest first
    if fmt == "jsonl":  # ASCII: no byte of a record can act on a terminal
        for r in records:
            sys.stdout.write(json.dumps(r) + "\n")
        return
    writer = csv.writer(sys.stdout, lineterminator="\r\n")
    writer.writerow(["id", "at", "actor", "action", "details"])
    for r in records:
        cells = [r["id"], r["at"], plain(r["actor"]), plain(r["action"]),
                 plain(json.dumps(r["details"], ensure_ascii=False))]  # controls made visible
        writer.writerow([f"'{c}" if isinstance(c, str) and c.startswith(FORMULA) else c
                         for c in cells])


@audit.command("verify")
@click.option("--expect", metavar="ID:HASH", help="A head noted earlier (lastId:head) that the "
              "chain must still pass through.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@domain_errors
def audit_verify(ctx: click.Context, expect: str | None, as_json: bool) -> None:
    """Walk the audit log's hash chain; exit 1 if it is broken. Note the printed head
    (ID:HASH) somewhere the archive's administrators cannot change, and check against it
    later with --expect."""
    args: dict[str, Any] = {}
    if expect:
        rid, _, head = expect.partition(":")
        if not rid.isdigit() or not head:
            raise click.BadParameter("ID:HASH, as printed by an earlier verify",
                                     param_hint="--expect")
        args = {"expectId": int(rid), "expectHash": head}
    report = call(ctx, "VerifyAuditLog", **args)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    if not print_chain(report, as_json):
        sys.exit(1)


def print_chain(report: dict[str, Any], quiet: bool = False) -> bool:
    """VerifyAuditLog's answer for people: each problem, then the summary with the head to
    note (quiet: the problems alone, on stderr). Whether the chain is whole."""
    for problem in report["problems"]:
        (err if quiet else out).print(f"audit log: {plain(problem)}", markup=False,
                                      highlight=False)
    if not quiet:
        status = "ok" if report["ok"] else f"{len(report['problems'])} problems"
        out.print(f"audit log: {report['records']} records ({report['unchained']} from before "
                  f"the chain), hash chain {status}; head {report['lastId']}:{report['head']}",
                  markup=False, highlight=False)
    return bool(report["ok"])
