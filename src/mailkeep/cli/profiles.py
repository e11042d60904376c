"""`mailkeep profile ...`: archiving profiles from the shell, through the catalog functions
(the same checks, results and worker results as the Administration API), in-process."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from mailkeep.cli.common import call, domain_errors, out, shown
from mailkeep.profiles.schema import SCHEMAS, schema_doc

PASSWORD_ENV = "MAILKEEP_PROFILE_PASSWORD"


@click.group()
def profile() -> None:
    """Archiving profiles: IMAP and POP3 mailboxes, watched directories and Maildirs.

    The properties of each type: `mailkeep profile schema`, or docs/profiles.md.
    """


def _properties(source: str, ask_password: bool) -> dict[str, Any]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        props = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"{source}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(props, dict):
        raise click.UsageError(f"{source}: a JSON object is expected")
    if ask_password:
        secret = "accessToken" if props.get("authentication") == "xoauth2" else "password"
        props[secret] = click.prompt(secret.replace("accessToken", "Access token").capitalize(),
                                     hide_input=True, err=True)
    return props


def _call(ctx: click.Context, name: str, **args: Any) -> Any:
    return call(ctx, name, show_log=True, **args)


def _echo(result: Any) -> None:
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))


@profile.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print GetProfiles' JSON.")
@click.pass_context
@domain_errors
def profile_list(ctx: click.Context, as_json: bool) -> None:
    """List the profiles with their last run."""
    profiles = _call(ctx, "GetProfiles", raw=False)
    if as_json:
        _echo(profiles)
        return
    table = Table("id", "name", "type", "archive", "automatic", "last run", "result")
    for p in profiles:
        auto = p["serverSideExecution"]
        last = p["lastResult"] or {}
        table.add_row(str(p["id"]), shown(p["name"]), p["type"], shown(p["userName"]),
                      f"every {auto['automaticPauseBetweenExecutions']} s" if auto["automatic"]
                      else "no", (last.get("startTime") or "")[:19].replace("T", " "),
                      "running" if p["running"] else last.get("result", ""))
    out.print(table)


@profile.command("show")
@click.argument("profile_id", type=int)
@click.option("--raw", is_flag=True, help="With the incremental state (UIDs, UIDLs, files).")
@click.pass_context
@domain_errors
def profile_show(ctx: click.Context, profile_id: int, raw: bool) -> None:
    """Show one profile (never its password)."""
    for p in _call(ctx, "GetProfiles", raw=raw):
        if p["id"] == profile_id:
            _echo(p)
            return
    raise click.UsageError(f"there is no profile {profile_id} (see `mailkeep profile list`)")


@profile.command("schema")
@click.argument("kind", required=False, type=click.Choice(list(SCHEMAS)))
def profile_schema(kind: str | None) -> None:
    """The properties of each profile type (or of one) with defaults and meaning."""
    doc = schema_doc()
    _echo(doc[kind] if kind else doc)


ASK = click.option("--ask-password", is_flag=True,
                   help="Prompt for the password (or access token) instead of putting it in "
                   "the file.")


@profile.command("create")
@click.argument("properties", metavar="FILE")
@ASK
@click.pass_context
@domain_errors
def profile_create(ctx: click.Context, properties: str, ask_password: bool) -> None:
    """Create a profile from a JSON file of properties (- reads stdin)."""
    _echo(_call(ctx, "CreateProfile", properties=_properties(properties, ask_password),
                raw=False))


@profile.command("update")
@click.argument("profile_id", type=int)
@click.argument("properties", metavar="FILE")
@ASK
@click.pass_context
@domain_errors
def profile_update(ctx: click.Context, profile_id: int, properties: str,
                   ask_password: bool) -> None:
    """Change the properties given in a JSON file (- reads stdin); the others stay."""
    _echo(_call(ctx, "UpdateProfile", id=profile_id,
                properties=_properties(properties, ask_password)))


@profile.command("delete")
@click.argument("profile_id", type=int)
@click.pass_context
@domain_errors
def profile_delete(ctx: click.Context, profile_id: int) -> None:
    """Delete a profile (its worker results stay)."""
    _call(ctx, "DeleteProfile", id=profile_id)
    out.print(f"profile {profile_id} deleted")


@profile.command("run")
@click.argument("profile_id", type=int)
@click.pass_context
@domain_errors
def profile_run(ctx: click.Context, profile_id: int) -> None:
    """Run a profile now, in this process (Ctrl-C stops it; what is archived stays).

    While `mailkeep serve` files mail into the same store, run it there instead:
    `mailkeep call --url https://localhost:8463 RunProfile id=N`.
    """
    res = _call(ctx, "RunProfile", id=profile_id)
    _echo(res)
    if res["result"] not in ("succeeded", "completedWithWarnings"):
        sys.exit(1)


@profile.command("auto")
@click.argument("profile_id", type=int)
@click.option("--on/--off", "automatic", default=True, help="Run automatically or not.")
@click.option("--pause", type=int, help="Seconds from the end of a run to the next.")
@click.option("--windows", help='Maintenance windows, e.g. "Mon-Fri 08:00-18:00; Sun '
              '00:00-24:00" ("" for none).')
@click.pass_context
@domain_errors
def profile_auto(ctx: click.Context, profile_id: int, automatic: bool, pause: int | None,
                 windows: str | None) -> None:
    """Let the server run a profile automatically (SetProfileServerSideExecution)."""
    _echo(_call(ctx, "SetProfileServerSideExecution", id=profile_id, automatic=automatic,
                automaticPauseBetweenExecutions=pause, automaticMaintenanceWindows=windows)[
        "serverSideExecution"])


@profile.command("results")
@click.option("--days", type=int, default=7, show_default=True, help="How far back.")
@click.option("--profile", "profile_id", type=int, help="Only this profile.")
@click.option("--json", "as_json", is_flag=True, help="Print GetWorkerResults' JSON.")
@click.pass_context
@domain_errors
def profile_results(ctx: click.Context, days: int, profile_id: int | None,
                    as_json: bool) -> None:
    """The runs of the last days, oldest first."""
    now = datetime.now()
    rows = _call(ctx, "GetWorkerResults",
                 fromIncluding=(now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S"),
                 toExcluding=(now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                 timeZoneID="$Local", profileID=profile_id)
    if as_json:
        _echo(rows)
        return
    table = Table("id", "profile", "started", "result", "archived", "duplicates", "failed",
                  "deleted")
    for r in rows:
        table.add_row(str(r["id"]), shown(r["profileName"]),
                      r["startTime"][:19].replace("T", " "),
                      r["result"], str(r["itemsArchived"]), str(r["itemsDuplicate"]),
                      str(r["itemsFailed"]), str(r["itemsDeleted"]))
    out.print(table)


@profile.command("report")
@click.argument("result_id", type=int)
@click.pass_context
@domain_errors
def profile_report(ctx: click.Context, result_id: int) -> None:
    """One run in full: counts, every failure, warnings and the log."""
    r = _call(ctx, "GetWorkerResultReport", id=result_id)
    click.echo(f"Run {r['id']} of profile {r['profileName']!r} ({r['profileType']}) into the "
               f"archive of {r['userName']}, started by {r['executionStartedBy']}")
    click.echo(f"{r['startTime']} - {r['completeTime'] or '(running)'}: {r['result']}"
               + (f": {r['error']}" if r["error"] else ""))
    click.echo(f"archived {r['itemsArchived']}, already archived {r['itemsDuplicate']}, "
               f"skipped {r['itemsSkipped']}, failed {r['itemsFailed']}, deleted from the "
               f"source {r['itemsDeleted']}, {r['bytesRead']} bytes read")
    for f in r["failures"]:
        click.echo(f"failed: {f['origin']}: {f['reason']}")
    for w in r["warnings"]:
        click.echo(f"warning: {w}")
    if r["log"]:
        click.echo("\nLog:\n" + r["log"].replace("\r\n", "\n"))
