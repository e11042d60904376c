"""`mailkeep user ...`: accounts from the shell, through the catalog's user functions."""

from __future__ import annotations

import click

from mailkeep.cli.common import call, data_dir, domain_errors, out, plain
from mailkeep.core.admin.users import Users
from mailkeep.core.masterdb import MasterDB


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
    """Set an account's password (for example the initial admin's): SetUserPassword, which
    also ends the account's console sessions."""
    with MasterDB.of(data_dir(ctx)) as master:  # on a new data directory: admin first
        Users(master).ensure_initial_admin()
    call(ctx, "SetUserPassword", userName=user_name, password=password)
    out.print(f"password of {user_name} changed")


@user.command("list")
@click.pass_context
@domain_errors
def user_list(ctx: click.Context) -> None:
    """List the accounts."""
    with MasterDB.of(data_dir(ctx)) as master:
        Users(master).ensure_initial_admin()
    for u in call(ctx, "GetUsers"):
        out.print(plain(f"{u['userName']}  {u['fullName'] or ''}".rstrip()), highlight=False,
                  markup=False)
