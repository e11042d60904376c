"""`mailkeep call FUNCTION name=value ...`: any catalog function from the shell.

In-process against the data directory by default; with --url against a running server through
mailkeep.client.AdminClient, following long-running functions to their end.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click
import httpx
from rich.progress import Progress

from mailkeep.cli.common import EXIT_INTERRUPTED, domain_errors, err, plain, progress_bar, shown
from mailkeep.cli.common import call as call_local
from mailkeep.client import (
    AdminApiError,
    AdminClient,
    AuthenticationError,
    ProcessCancelled,
    ProcessFailed,
    Status,
    TokenExpired,
)
from mailkeep.core.fields import Field
from mailkeep.functions import REGISTRY

# Exit codes of `mailkeep call --url` (documented in its --help).
EXIT_FAILED, EXIT_TOKEN, EXIT_CONNECT, EXIT_AUTH = 1, 3, 5, 7


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"arguments are name=value, not {item!r}")
        out[name] = value
    return out


def _print_result(result: Any) -> None:
    if result is not None:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    sys.stdout.flush()


def _fail(code: int, message: str, details: str = "") -> NoReturn:
    err.print(f"[red]error:[/red] {shown(message)}", highlight=False)
    if details:
        err.print(plain(details, lines=True), highlight=False, markup=False)
    sys.exit(code)


EPILOG = """\b
With --url the function runs on that server (Administration API over HTTPS): NAME=VALUE
strings go to the server unchanged, it parses them. The password comes from --password,
$MAILKEEP_PASSWORD or a prompt on a terminal; it is never printed.
\b
Exit codes:
  0  the function succeeded (its result, if any, is printed as JSON on stdout)
  1  the function failed or was cancelled (message and details on stderr)
  2  bad usage or arguments
  3  unknown or expired token (the server forgot the process)
  5  cannot connect (network, TLS, certificate or fingerprint mismatch)
  7  authentication refused (wrong credentials, not an administrator, API disabled)
In-process (without --url), errors of the archive keep the exit codes of the other commands.
"""


@click.command("call", context_settings={"ignore_unknown_options": True}, epilog=EPILOG)
@click.argument("function_name", metavar="FUNCTION")
@click.argument("arguments", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--list", "list_only", is_flag=True, help="List the functions instead.")
@click.option("--url", help="Call this server (e.g. https://host:8463) instead of in-process.")
@click.option("--user", default="admin", show_default=True, help="User name (with --url).")
@click.option("--password", envvar="MAILKEEP_PASSWORD", show_default=False, show_envvar=True,
              help="Password (with --url).")
@click.option("--fingerprint", metavar="SHA256",
              help="Trust exactly the server certificate with this SHA-256 fingerprint.")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False),
              help="Trust certificates signed by (or equal to) this PEM file.")
@click.option("--insecure", is_flag=True, help="Do not verify the server's certificate.")
@click.pass_context
@domain_errors
def call(ctx: click.Context, function_name: str, arguments: tuple[str, ...],
         list_only: bool, url: str | None, user: str, password: str | None,
         fingerprint: str | None, cafile: str | None, insecure: bool) -> None:
    """Run an Administration API function and print its result as JSON.

    FUNCTION `list` (or --list) lists the functions and their arguments.
    """
    if url is None:
        if fingerprint or cafile or insecure:
            raise click.UsageError("--fingerprint, --cafile and --insecure go with --url")
        _local(ctx, function_name, arguments, list_only)
        return
    if sum(bool(x) for x in (fingerprint, cafile, insecure)) > 1:
        raise click.UsageError("use one of --fingerprint, --cafile and --insecure")
    pairs = _pairs(arguments)
    if password is None:
        if not sys.stdin.isatty():
            raise click.UsageError("give --password or set $MAILKEEP_PASSWORD")
        password = click.prompt("Password", hide_input=True, err=True)
    verify: bool | str = cafile if cafile else not insecure
    _remote(url, user, password or "", verify, fingerprint, function_name, pairs, list_only)


def _optional(a: Field) -> bool:
    return a.nullable or a.default is not None


def _local(ctx: click.Context, function_name: str, arguments: tuple[str, ...],
           list_only: bool) -> None:
    if list_only or function_name == "list":
        for each in REGISTRY:
            shown = " ".join(f"{a.name}={'?' if _optional(a) else ''}{a.api_type}"
                             for a in each.args)
            click.echo(f"{each.name} {shown}".rstrip())
        return
    if REGISTRY.get(function_name) is None:
        raise click.UsageError(f"unknown function {function_name} (see `mailkeep call list`)")
    _print_result(call_local(ctx, function_name, form=_pairs(arguments), show_log=True))


class _Follower:
    """The progress callback of AdminClient.invoke: a bar on a terminal, log lines on stderr."""

    def __init__(self) -> None:
        self.token: str | None = None
        self._bar: Progress | None = None
        self._task: Any = None

    def __call__(self, status: Status) -> None:
        self.token = status.token or self.token
        if status.log:
            err.print(plain(status.log.rstrip("\r\n"), lines=True), highlight=False,
                      markup=False)
        if status.code == "running" and err.is_terminal:
            if self._bar is None:
                self._bar = progress_bar()
                self._bar.start()
                self._task = self._bar.add_task("running", total=100)
            self._bar.update(self._task, completed=status.percent or 0,
                             description=status.text or "running")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _remote(url: str, user: str, password: str, verify: bool | str, fingerprint: str | None,
            function_name: str, pairs: dict[str, str], list_only: bool) -> None:
    if {"function", "progress"} & set(pairs):
        raise click.UsageError("arguments named function or progress cannot be passed")
    follow = _Follower()
    api: AdminClient | None = None
    try:
        api = AdminClient(url, user, password, verify=verify, fingerprint=fingerprint)
        if list_only or function_name == "list":
            for each in api.functions():
                shown = " ".join(f"{a['name']}={'?' if a.get('nullable') else ''}{a['type']}"
                                 for a in each.get("args", []))
                click.echo(f"{each['name']} {shown}".rstrip())
            return
        try:
            result = api.invoke(function_name, follow, **pairs)
        finally:
            follow.stop()
    except KeyboardInterrupt:
        if api is not None and follow.token:
            try:
                api.cancel(follow.token)
                err.print("interrupted: asked the server to cancel the process", highlight=False)
            except (AdminApiError, httpx.HTTPError):
                pass
        sys.exit(EXIT_INTERRUPTED)
    except AuthenticationError as exc:
        _fail(EXIT_AUTH, f"authentication refused: {exc.message}")
    except TokenExpired as exc:
        _fail(EXIT_TOKEN, exc.message)
    except (ProcessFailed, ProcessCancelled) as exc:
        _fail(EXIT_FAILED, exc.message, exc.details)
    except AdminApiError as exc:
        if exc.status_code is None:  # raised before any answer: the pinned fingerprint
            _fail(EXIT_CONNECT, exc.message)
        _fail(EXIT_FAILED, exc.message, exc.details)
    except (httpx.TransportError, OSError) as exc:
        _fail(EXIT_CONNECT, f"cannot connect to {url}: {exc}")
    except ValueError as exc:  # a body that is not JSON: not an Administration API
        _fail(EXIT_FAILED, f"unexpected answer from {url}: {exc}")
    finally:
        if api is not None:
            api.close()
    _print_result(result)
