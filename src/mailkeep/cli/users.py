"""`mailkeep user ...`: accounts from the shell (the API's user functions, for the console)."""

from __future__ import annotations

import click

from mailkeep.cli.common import archive_of, domain_errors, out
from mailkeep.core.admin.users import Users


@click.group()
def user() -> None:
    """Accounts that may use the Administration API and their archives."""


@user.command("password")
@click.argument("user_name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The new password (asked for when not given).")
@click.pass_context
@domain_errors
def user_password(ctx: click.Context, user_name: str, password: str) -> None:
    """Set an account's password (for example the initial admin's)."""
    with archive_of(ctx) as archive:
        users = Users(archive.master)
        users.ensure_initial_admin()
        users.set_password(user_name, password, actor=archive.actor)
    out.print(f"password of {user_name} changed")


@user.command("list")
@click.pass_context
@domain_errors
def user_list(ctx: click.Context) -> None:
    """List the accounts."""
    with archive_of(ctx) as archive:
        users = Users(archive.master)
        users.ensure_initial_admin()
        for u in users.list():
            out.print(f"{u['userName']}  {u['fullName'] or ''}".rstrip(), highlight=False)
