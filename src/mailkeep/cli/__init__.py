"""The `mailkeep` command line: archive administration from a shell.

Each command is a thin projection: it parses options, calls the archive or a catalog function,
and shows the outcome; domain errors become messages and exit codes in one table
(cli/common.py). The commands live in the modules of this package and are added to the group
here; none of them imports this module.
"""

from __future__ import annotations

from pathlib import Path

import click

from mailkeep import __version__
from mailkeep.cli import audit, call, heads, mail, profiles, serve, settings, stores, users
from mailkeep.core.archive import default_data_dir


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", type=click.Path(path_type=Path), envvar="MAILKEEP_DATA",
              default=None, help="Data directory (default ./mailkeep-data, or $MAILKEEP_DATA).")
@click.version_option(__version__, prog_name="mailkeep")
@click.pass_context
def main(ctx: click.Context, data: Path | None) -> None:
    """mailkeep: a self-hosted email archive."""
    ctx.ensure_object(dict)
    ctx.obj["data"] = data or default_data_dir()


for command in (serve.serve, settings.settings, stores.store, users.user, profiles.profile,
                call.call, mail.import_, mail.export_, mail.search, mail.folders, mail.show,
                mail.verify, mail.recover, audit.audit, heads.heads, heads.proof,
                heads.verify_proof):
    main.add_command(command)
