"""The click group of the `mailkeep` command line (cli/entry.py hands it every command line it
does not answer itself).

Each command is a thin projection: it parses options, calls the archive or a catalog function,
and shows the outcome; domain errors become messages and exit codes in one table
(cli/output.py). The commands live in the modules of this package; none of them imports this
module. A command's module is imported only when that command runs (or shows its own help):
`mailkeep --help` lists them from COMMANDS without importing any, so that it answers at once
(tests/test_cli.py keeps the table equal to what the commands say of themselves).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import click

from mailkeep import __version__
from mailkeep.core.files import default_data_dir

# name -> (module of mailkeep.cli, attribute, its line in `mailkeep --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("serve", "serve", "Run the archive server: the Administration API over HTTPS."),
    "settings": ("settings", "settings", "Server settings (kept in the data directory; flags "
                 "of serve override them)."),
    "store": ("stores", "store", "Create, attach, detach and change archive stores."),
    "user": ("users", "user", "Accounts that may use the Administration API and their "
             "archives."),
    "profile": ("profiles", "profile", "Archiving profiles: IMAP and POP3 mailboxes, watched "
                "directories and Maildirs."),
    "call": ("call", "call", "Run an Administration API function and print its result as "
             "JSON."),
    "import": ("mail", "import_", "Import .eml files, directories, mbox files (also .gz), "
               "Maildirs, mail exports and Outlook PST and MSG files."),
    "export": ("mail", "export_", "Write messages back out, byte for byte."),
    "search": ("search", "search", "Full-text search, newest first."),
    "folders": ("mail", "folders", "The folder tree with message counts and sizes."),
    "show": ("mail", "show", "Show one message (ID is <storeId>:<number>)."),
    "verify": ("mail", "verify", "Re-read every record and check catalog and index against "
               "the segments, and the records against each store's Merkle tree and its signed "
               "heads (VerifyStore, or VerifyStores for every store that is not disabled); "
               "without STORE, the audit log's hash chain too (VerifyAuditLog)."),
    "recover": ("mail", "recover", "Rebuild a store's catalog and full-text index from its "
                "segments (RecoverStore)."),
    "audit": ("audit", "audit", "The audit log: list or export it, verify its hash chain."),
    "heads": ("heads", "heads", "Signed tree heads: the public key, the list, an export, "
              "consistency proofs."),
    "proof": ("heads", "proof", "Write message ID's exact bytes, its inclusion proof and the "
              "signed tree head to a new directory: `mailkeep verify-proof DIR --key KEY` "
              "checks it anywhere."),
    "backends": ("backends", "backends", "Where this data directory's installation keeps what it "
                 "shares (PostgreSQL, object storage) when no --database or --objects is "
                 "given: conf/backends.json, its credentials sealed."),
    "migrate": ("migrate", "migrate", "Move this data directory's installation into "
                "PostgreSQL (and object storage), checked store by store (messages, folders, "
                "tree root); run it again to finish one cut off."),
    "verify-proof": ("heads", "verify_proof", "Check a proof with the public key alone: a "
                     "message's (a directory from `mailkeep proof`) or a consistency proof "
                     "(a file from `mailkeep heads consistency`)."),
}


class LazyGroup(click.Group):
    """The commands of COMMANDS, each imported when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(f"mailkeep.cli.{spec[0]}")
        command = getattr(module, spec[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, click.Command(n, help=COMMANDS[n][2]).get_short_help_str(limit))
                for n in names]  # cut as click cuts a command's own help
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", type=click.Path(path_type=Path), envvar="MAILKEEP_DATA",
              default=None, help="Data directory ($MAILKEEP_DATA, else ./mailkeep-data).")
@click.option("--database", metavar="URL", envvar="MAILKEEP_DATABASE", default=None,
              help="The master database in PostgreSQL (postgresql://user@host:port/db, or "
                   "$MAILKEEP_DATABASE) instead of the data directory's SQLite file.")
@click.option("--objects", metavar="URL", envvar="MAILKEEP_OBJECTS", default=None,
              help="The stores' segments in S3-compatible object storage (s3://bucket/prefix, "
                   "or $MAILKEEP_OBJECTS; with --database) instead of the data directory.")
@click.version_option(__version__, prog_name="mailkeep")
@click.pass_context
def main(ctx: click.Context, data: Path | None, database: str | None,
         objects: str | None) -> None:
    """mailkeep: a self-hosted email archive."""
    ctx.ensure_object(dict)
    ctx.obj["data"] = data or default_data_dir()
    ctx.obj["backends_file"] = False
    kept = ctx.obj["data"] / "conf" / "backends.json"
    if not (database or objects) and ctx.invoked_subcommand != "backends" \
            and (kept.exists() or kept.is_symlink()):  # (`backends` itself mends the file)
        from mailkeep.core import backend_conf
        from mailkeep.core.errors import MailkeepError
        try:  # (the engines kept as a setting: `mailkeep backends`)
            ctx.obj["backends_file"] = backend_conf.load_into(os.environ, ctx.obj["data"])
        except MailkeepError as exc:
            raise click.ClickException(exc.message) from None
    if database or objects:
        from mailkeep.core import backends
        try:
            if database:  # in the environment: what the command starts follows it
                os.environ[backends.DATABASE_VAR] = backends.check_database(database)
            if objects:
                os.environ[backends.OBJECTS_VAR] = backends.check_objects(objects)
                backends.objects_url()  # (with a database)
        except backends.BadBackend as exc:
            raise click.BadParameter(str(exc), param_hint="--database" if database and not
                                     objects else "--objects") from None


def help_for_80_columns() -> str:
    """What `mailkeep --help` writes on a terminal of 80 columns or more (cli/entry.py writes
    it without importing click: cli/help_text.py holds it)."""
    with click.Context(main, info_name="mailkeep", terminal_width=78, **main.context_settings
                       ) as ctx:
        return main.get_help(ctx) + "\n"


if __name__ == "__main__":  # `make docs`: cli/help_text.py
    print('"""What `mailkeep --help` writes on a terminal of 80 columns or more, written by '
          "`make docs`\n(cli/group.py's help_for_80_columns; tests/test_cli.py keeps it so).\"\"\""
          "\n\nHELP = (")
    for line in help_for_80_columns().splitlines(keepends=True):
        print(f"    {line!r}")
    print(")")
