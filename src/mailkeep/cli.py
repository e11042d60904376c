"""The `mailkeep` command line: archive administration from a shell.

Each command is a thin projection of core/: it parses options, calls the archive, and maps
domain errors to messages and exit codes in one table.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from . import __version__
from .core import errors
from .core.archive import Archive, default_data_dir
from .core.master import STATES
from .core.settings import Settings
from .core.writer import shared as shared_writer
from .jobs.process import Cancelled

EXIT_CODES: dict[type[errors.MailkeepError], int] = {
    errors.InvalidArgument: 2,
    errors.NotFound: 3,
    errors.Conflict: 4,
    errors.StoreUnavailable: 5,
    errors.CorruptData: 6,
    errors.KeyMissing: 7,
}

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def exit_code(exc: errors.MailkeepError) -> int:
    return next((c for cls, c in EXIT_CODES.items() if isinstance(exc, cls)), 1)


def domain_errors(fn: F) -> F:
    """Map domain errors to a message on stderr and the exit code of their class."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.MailkeepError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False)
            sys.exit(exit_code(exc))
        except Cancelled:
            err.print("cancelled: what was archived so far is kept", highlight=False)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@contextmanager
def archive_of(ctx: click.Context) -> Iterator[Archive]:
    archive = Archive(ctx.obj["data"])
    try:
        yield archive
    finally:
        archive.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", type=click.Path(path_type=Path), envvar="MAILKEEP_DATA",
              default=None, help="Data directory (default ./mailkeep-data, or $MAILKEEP_DATA).")
@click.version_option(__version__, prog_name="mailkeep")
@click.pass_context
def main(ctx: click.Context, data: Path | None) -> None:
    """mailkeep: a self-hosted email archive."""
    ctx.ensure_object(dict)
    ctx.obj["data"] = data or default_data_dir()


# -- serve -----------------------------------------------------------------------------------
GRACE_S = 3  # seconds a stopping server waits for open connections
@main.command()
@click.option("--host", default=None, help="Address to listen on (setting server.host, "
              "default 0.0.0.0).")
@click.option("--port", default=None, type=int, help="Port (setting server.port, default 8463).")
@click.option("--enable-api/--disable-api", "enable_api", default=None,
              envvar="MAILKEEP_API_ENABLED",
              help="Answer the Administration API (setting api.enabled, default off).")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False),
              help="Certificate (PEM) (setting tls.cert; default: a self-signed one made in "
              "<data>/tls).")
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False),
              help="Its private key (setting tls.key).")
@click.option("--no-tls", is_flag=True, default=None,
              help="Plain HTTP, behind a TLS-terminating proxy (setting tls.enabled=false).")
@click.option("--smtp-port", type=int, default=None,
              help="Also receive journaled mail over SMTP on this port (settings smtp.*).")
@click.pass_context
@domain_errors
def serve(ctx: click.Context, host: str | None, port: int | None, enable_api: bool | None,
          tls_cert: Path | None, tls_key: Path | None, no_tls: bool | None,
          smtp_port: int | None) -> None:
    """Run the archive server: the Administration API over HTTPS. Flags override the
    settings (`mailkeep settings list`) for this run."""
    import uvicorn

    from .web.app import create_app
    from .web.tls import ensure_self_signed, fingerprint

    data: Path = ctx.obj["data"]
    stopping: list[uvicorn.Server] = []
    early_stop = False

    def stop(*_: object) -> None:  # a signal before the server runs must still stop it
        nonlocal early_stop
        early_stop = True
        for server in stopping:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    with archive_of(ctx) as archive:
        conf = Settings(archive.master)
        host = host if host is not None else conf.get("server.host")
        port = port if port is not None else conf.get("server.port")
        enable_api = enable_api if enable_api is not None else conf.get("api.enabled")
        no_tls = no_tls if no_tls else not conf.get("tls.enabled")
        if tls_cert is None and tls_key is None and conf.get("tls.cert") is not None:
            tls_cert, tls_key = Path(conf.get("tls.cert")), Path(conf.get("tls.key") or "")
        smtp = _receiver_settings(conf, smtp_port)
        conf_starttls = bool(conf.get("smtp.starttls"))
        rec, store = archive.current_store()
        entries, _blobs, size = store.catalog.counts()
        out.print(f"mailkeep {__version__}: data directory {archive.data_dir}")
        out.print(f"current store {rec.name!r} (id {rec.id}): {entries} messages, "
                  f"{human(size)}; {len(archive.stores())} store(s) attached")
    if (tls_cert is None) != (tls_key is None) or str(tls_key) == ".":
        raise errors.InvalidArgument("--tls-cert and --tls-key (settings tls.cert and tls.key) "
                                     "go together")
    ssl: dict[str, str] = {}
    if not no_tls:
        if tls_cert is None or tls_key is None:
            tls_cert, tls_key = ensure_self_signed(data.resolve())
        ssl = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
        out.print(f"TLS certificate SHA-256 fingerprint: {fingerprint(tls_cert.read_bytes())}")
    scheme = "http" if no_tls else "https"
    out.print(f"Administration API {'enabled' if enable_api else 'disabled (--enable-api)'} "
              f"at {scheme}://{host}:{port}/api/")
    sys.stdout.flush()
    app = create_app(data.resolve(), api_enabled=bool(enable_api))
    receiver = None
    store_writer = shared_writer(data.resolve())
    if smtp is not None:
        from .receive.smtp import JournalReceiver

        if conf_starttls and ssl:
            smtp.tls_cert, smtp.tls_key = Path(ssl["ssl_certfile"]), Path(ssl["ssl_keyfile"])
        receiver = JournalReceiver(data.resolve(), smtp, store_writer)
        receiver.start()
        out.print(f"SMTP journal receiver on {smtp.host}:{smtp.port} (into the archive of "
                  f"{smtp.owner!r}; clients {', '.join(smtp.networks)}"
                  + ("; STARTTLS" if smtp.tls_cert else "")
                  + ("; AUTH required" if smtp.auth else "") + ")")
        sys.stdout.flush()
    # A client holding a TLS connection open (keep-alive, a long poll) must not keep a
    # stopping server up: after this many seconds the rest is cut off.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=GRACE_S, **ssl)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    stopping.append(server)
    server.should_exit = early_stop
    try:
        server.run()
    finally:
        if receiver is not None:
            receiver.stop()
        store_writer.stop()  # the last filings are committed and answered first
    out.print("stopped")


def _receiver_settings(conf: Settings, port: int | None) -> Any:
    """The SMTP receiver's settings, or None when it is not to run."""
    if port is None and not conf.get("smtp.enabled"):
        return None
    from .receive.smtp import ReceiverSettings

    return ReceiverSettings(
        host=conf.get("smtp.host"), port=port if port is not None else conf.get("smtp.port"),
        owner=conf.get("smtp.owner"), max_size=conf.get("smtp.max_size"),
        networks=tuple(n for n in conf.get("smtp.networks").split(",") if n),
        require_tls=conf.get("smtp.require_tls"),
        route_by_address=conf.get("smtp.route_by_address"), auth=conf.get("smtp.auth"))


# -- settings --------------------------------------------------------------------------------
@main.group()
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


# -- stores ----------------------------------------------------------------------------------
@main.group()
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


from . import cli_call, cli_mail, cli_profiles, cli_users  # noqa: E402,F401  (commands)
