"""`mailkeep serve`: the server (Administration API, console API, SMTP journal receiver)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailkeep import __version__
from mailkeep.cli.common import archive_of, domain_errors, human, out, shown
from mailkeep.core import errors
from mailkeep.core.admin.settings import Settings

if TYPE_CHECKING:
    from mailkeep.receive.smtp import ReceiverSettings

# -- serve -----------------------------------------------------------------------------------
GRACE_S = 3  # seconds a stopping server waits for open connections
KEEP_ALIVE_S = 5  # an idle keep-alive connection closes after this
FILES = 1024  # open files besides the connections (stores, segments, logs, the master database)
@click.command()
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
    import ssl

    # Whatever the server creates (stores, exports, backups, logs) is its user's alone; the
    # data directory is made private besides, also when it existed with a wider mode.
    os.umask(0o077)
    # The worker processes the server starts (text extraction, isolated calls such as
    # VerifyStores) are forked from a process that has the function catalog loaded already.
    import multiprocessing
    multiprocessing.set_forkserver_preload(["mailkeep.functions", "mailkeep.core.ingest"])
    from mailkeep.core.heap import hold_mmap_threshold
    hold_mmap_threshold()  # (before any worker starts: they take it from the environment)
    from mailkeep.core.priority import answer_first
    answer_first()

    import uvicorn
    from uvicorn.config import create_ssl_context

    from mailkeep.core.admin.certificates import ensure_self_signed, fingerprint
    from mailkeep.core.files import SERVING_LOCK, private_dir, try_flock
    from mailkeep.web.app import LiveCertificate, create_app
    from mailkeep.web.connections import ConnectionLimits, protocol_class

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
    private_dir(data)
    serving = try_flock(data / SERVING_LOCK, exclusive=False)  # (held until the process ends)
    if serving is None:
        raise errors.Conflict("this data directory is being migrated (`mailkeep migrate`): "
                              "the server starts once the migration has ended")
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
        proxies = str(conf.get("server.trusted_proxies") or "")
        body_seconds = float(conf.get("server.body_timeout"))
        limits = ConnectionLimits(total=int(conf.get("server.max_connections")),
                                  header_seconds=float(conf.get("server.header_timeout")),
                                  per_client=int(conf.get("server.max_connections_per_client")),
                                  exempt=tuple(proxies.split(",")) if proxies else ())
        out.print(f"mailkeep {__version__}: data directory {archive.data_dir}")
        try:
            rec, store = archive.current_store()
        except (errors.KeyMissing, errors.StoreUnavailable) as exc:
            # The server starts all the same: a store sealed under a passphrase is unlocked
            # in it (UnlockStore), a missing disk comes back; its health check reports it.
            out.print(f"[yellow]the current store cannot be opened: {shown(exc.message)}[/yellow]")
        else:
            entries, _blobs, size = store.catalog.counts()
            out.print(f"current store {shown(repr(rec.name))} (id {rec.id}): {entries} messages, "
                      f"{human(size)}; {len(archive.stores())} store(s) attached")
    if (tls_cert is None) != (tls_key is None) or str(tls_key) == ".":
        raise errors.InvalidArgument("--tls-cert and --tls-key (settings tls.cert and tls.key) "
                                     "go together")
    tls_files: dict[str, str] = {}
    if not no_tls:
        if tls_cert is None or tls_key is None:
            tls_cert, tls_key = ensure_self_signed(data.resolve())
        tls_files = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
        out.print(f"TLS certificate SHA-256 fingerprint: {fingerprint(tls_cert.read_bytes())}")
    scheme = "http" if no_tls else "https"
    shown_host = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1", "::1") else host
    out.print(f"Web console at {scheme}://{shown_host}:{port}/ : log in with a mailkeep account "
              "that has the privilege login (admin's initial password works from this machine "
              "only until `mailkeep user password admin` changes it)", highlight=False)
    out.print(f"Administration API {'enabled' if enable_api else 'disabled (--enable-api)'} "
              f"at {scheme}://{host}:{port}/api/")
    sys.stdout.flush()
    if smtp is not None and conf_starttls and tls_files:
        smtp.tls_cert = Path(tls_files["ssl_certfile"])
        smtp.tls_key = Path(tls_files["ssl_keyfile"])
    certificate = LiveCertificate() if tls_files else None
    app = create_app(data.resolve(), api_enabled=bool(enable_api), smtp=smtp,
                     certificate=certificate, body_seconds=body_seconds)
    if smtp is not None:
        out.print(f"SMTP journal receiver on {smtp.host}:{smtp.port} (into the archive of "
                  f"{smtp.owner!r}; clients {', '.join(smtp.networks)}"
                  + ("; STARTTLS" if smtp.tls_cert else "")
                  + ("; AUTH required" if smtp.auth else "") + ")")
        sys.stdout.flush()
    # A client holding a TLS connection open (keep-alive, a long poll) must not keep a
    # stopping server up: after this many seconds the rest is cut off.
    # A client's address is the connection's, unless it comes through a proxy named in
    # server.trusted_proxies: any other client could name itself in X-Forwarded-For.
    # At most server.max_connections connections at once, idle ones giving way to new ones: room for
    # the 1,000 long polls the API supports and the rest; an idle keep-alive connection closes
    # after KEEP_ALIVE_S. Each connection has a deadline and a size limit for every request
    # head, and each client address a number of connections (web/connections.py). No
    # WebSocket: the server has no such route, and an upgraded connection would leave the
    # protocol that counts it.
    _descriptors(limits.total + (smtp.max_sessions if smtp is not None else 0) + FILES)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", ws="none",
                            timeout_keep_alive=KEEP_ALIVE_S,
                            timeout_graceful_shutdown=GRACE_S, proxy_headers=bool(proxies),
                            forwarded_allow_ips=proxies or None)

    def https_context(cert: Path, key: Path) -> ssl.SSLContext:
        """A context as uvicorn makes it (its protocol, ciphers, client certificates)."""
        return create_ssl_context(cert, key, None, config.ssl_version, config.ssl_cert_reqs,
                                  config.ssl_ca_certs, config.ssl_ciphers)

    # The connections' protocol does the TLS handshake itself (web/connections.TlsGate), so
    # that a connection is counted and timed from its first moment: uvicorn gets no context.
    context = https_context(tls_cert, tls_key) if tls_cert and tls_key and tls_files else None
    if certificate is not None and context is not None:
        certificate.attach(context, https_context)  # SetServiceCertificate changes it live
    config.http = protocol_class(limits, context)  # type: ignore[assignment]
    server = uvicorn.Server(config)
    stopping.append(server)
    server.should_exit = early_stop
    server.run()  # its lifespan starts and stops everything the server runs
    out.print("stopped")


def _descriptors(wanted: int) -> None:
    """Room for `wanted` open files: the soft limit (often 1,024) is raised towards the hard
    one, or the connections the server promises would fail to be accepted."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _receiver_settings(conf: Settings, port: int | None) -> ReceiverSettings | None:
    """The SMTP receiver's settings, or None when it is not to run."""
    if port is None and not conf.get("smtp.enabled"):
        return None
    from mailkeep.receive.smtp import ReceiverSettings

    return ReceiverSettings(
        host=conf.get("smtp.host"), port=port if port is not None else conf.get("smtp.port"),
        owner=conf.get("smtp.owner"), max_size=conf.get("smtp.max_size"),
        max_recipients=conf.get("smtp.max_recipients"),
        auth_failures=conf.get("smtp.auth_failures"), max_errors=conf.get("smtp.max_errors"),
        command_timeout=float(conf.get("smtp.command_timeout")),
        data_timeout=float(conf.get("smtp.data_timeout")),
        max_sessions=conf.get("smtp.max_sessions"),
        max_sessions_per_client=conf.get("smtp.max_sessions_per_client"),
        large_messages=conf.get("smtp.large_messages"),
        networks=tuple(n for n in conf.get("smtp.networks").split(",") if n),
        require_tls=conf.get("smtp.require_tls"),
        route_by_address=conf.get("smtp.route_by_address"), auth=conf.get("smtp.auth"))

