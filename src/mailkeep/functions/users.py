"""User functions: the accounts of the archive as the Administration API manages them.

Every operation is `core.admin.users.Users`; this module only declares the original's arguments and
passes them on. Validation, the audit log and "a failed call changes nothing" live there.
"""

from __future__ import annotations

from typing import Any

from mailkeep.core.admin.sessions import Sessions
from mailkeep.core.admin.users import (
    AUTHENTICATIONS,
    FOLDER_PRIVILEGES,
    LOGIN_PRIVILEGES,
    PRIVILEGES,
    ROLES,
    Users,
)
from mailkeep.core.fields import Field
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function

USER = Field("userName", "string", description="The user's name (compared case-insensitively).")
PRIVILEGE_VALUES = ("none", *PRIVILEGES)
FOLDER_PRIVILEGE_VALUES = ("none", *FOLDER_PRIVILEGES)
LOGIN_PRIVILEGE_VALUES = ("none", *LOGIN_PRIVILEGES)


def _privileges(nullable: bool = False) -> Field:
    return Field("privileges", "list", nullable,
               f"Comma-separated: {', '.join(PRIVILEGE_VALUES)}.",
               choices=PRIVILEGE_VALUES)


def _login_privileges(nullable: bool) -> Field:
    extra = " Empty: every way." if nullable else ""
    return Field("loginPrivileges", "list", nullable,
               f"Comma-separated: {', '.join(LOGIN_PRIVILEGE_VALUES)}.{extra}",
               choices=LOGIN_PRIVILEGE_VALUES)


AUTHENTICATION_TEXT = f"{' or '.join(AUTHENTICATIONS)} (default integrated)."
USERS_SHAPE = '[{"userName": str, "fullName": str|null, "distinguishedName": str|null}]'
USER_INFO_SHAPE = (
    '{"userName": str, "fullName": str|null, "distinguishedName": str|null, '
    '"authentication": str, "emailAddresses": [str], "pop3UserNames": [str], '
    '"privileges": [str], "privilegesOnFolders": [{"folder": str, "privileges": [str]}], '
    '"loginPrivileges": [str], "role": str|null}')


def _users(call: Call) -> Users:
    return Users(call.master, hasher=call.services.hasher)


@function("GetUsers", "All users, sorted by user name.", USERS_SHAPE, changes=False, roles=ROLES)
def get_users(call: Call) -> list[dict[str, Any]]:
    return _users(call).list()


@function("GetUserInfo", "One user's settings: names, authentication, email addresses, POP3 "
          "user names, privileges and folder privileges (plus mailkeep's loginPrivileges and "
          "role).", USER_INFO_SHAPE, USER, changes=False, roles=ROLES)
def get_user_info(call: Call) -> dict[str, Any]:
    return _users(call).get(call.arg("userName"))


@function("CreateUser", "Create a user.", "null", USER, _privileges(),
          Field("fullName", "string", True, "The user's full name."),
          Field("distinguishedName", "string", True, "The LDAP distinguished name."),
          Field("authentication", "string", True, AUTHENTICATION_TEXT),
          Field("password", "string", True, "The password (integrated authentication).",
              secret=True),
          _login_privileges(nullable=True))
def create_user(call: Call) -> None:
    _users(call).create(call.arg("userName"), call.arg("privileges"), call.arg("fullName"),
                        call.arg("distinguishedName"), call.arg("authentication"),
                        call.arg("password"), login_privileges=call.arg("loginPrivileges"))


@function("DeleteUser", "Delete a user; the archive folder of the user stays. The last "
          "administrator cannot be deleted.", "null", USER)
def delete_user(call: Call) -> None:
    _users(call).delete(call.arg("userName"))
    _end_sessions(call, call.arg("userName"))


@function("RenameUser", "Rename a user; folder privileges on the user's archive follow the "
          "new name.", "null",
          Field("oldUserName", "string", description="The user's current name."),
          Field("newUserName", "string", description="The new name."))
def rename_user(call: Call) -> None:
    _users(call).rename(call.arg("oldUserName"), call.arg("newUserName"))
    _end_sessions(call, call.arg("oldUserName"))


@function("SetUserPassword", "Set a user's password (must not be empty).", "null", USER,
          Field("password", "string", description="The new password.", secret=True))
def set_user_password(call: Call) -> None:
    _users(call).set_password(call.arg("userName"), call.arg("password"))
    _end_sessions(call, call.arg("userName"))


def _end_sessions(call: Call, user_name: str) -> None:
    """A deleted or renamed account, or a new password, ends the console sessions."""
    Sessions(call.master).end_user(user_name)


@function("SetUserFullName", "Set or clear a user's full name.", "null", USER,
          Field("fullName", "string", True, "The full name; empty clears it."))
def set_user_full_name(call: Call) -> None:
    _users(call).set_full_name(call.arg("userName"), call.arg("fullName"))


@function("SetUserEmailAddresses", "Set a user's email addresses.", "null", USER,
          Field("emailAddresses", "list", True, "Comma-separated addresses; empty clears them."))
def set_user_email_addresses(call: Call) -> None:
    _users(call).set_email_addresses(call.arg("userName"), call.arg("emailAddresses"))


@function("SetUserPrivileges", "Set a user's privileges; the last administrator keeps admin.",
          "null", USER, _privileges())
def set_user_privileges(call: Call) -> None:
    before = _users(call).set_privileges(call.arg("userName"), call.arg("privileges"))
    call.note(before=before or ["none"])


@function("SetUserPrivilegesOnFolder", "Set a user's privileges on one archive folder; none "
          "removes them.", "null", USER,
          Field("folder", "string", description="Folder path; the top level is a user name."),
          Field("privileges", "list",
              description=f"Comma-separated: {', '.join(FOLDER_PRIVILEGE_VALUES)}.",
              choices=FOLDER_PRIVILEGE_VALUES))
def set_user_privileges_on_folder(call: Call) -> None:
    _users(call).set_privileges_on_folder(call.arg("userName"), call.arg("folder"),
                                          call.arg("privileges"))


@function("ClearUserPrivilegesOnFolders", "Remove all of a user's folder privileges.", "null",
          USER)
def clear_user_privileges_on_folders(call: Call) -> None:
    _users(call).clear_privileges_on_folders(call.arg("userName"))


@function("SetUserAuthentication", "Set how a user authenticates; cached logins end.", "null",
          USER, Field("authentication", "string", description=AUTHENTICATION_TEXT))
def set_user_authentication(call: Call) -> None:
    _users(call).set_authentication(call.arg("userName"), call.arg("authentication"))


@function("SetUserLoginPrivileges", "Set the ways a user may log in.", "null", USER,
          _login_privileges(nullable=False))
def set_user_login_privileges(call: Call) -> None:
    before = _users(call).set_login_privileges(call.arg("userName"),
                                               call.arg("loginPrivileges"))
    call.note(before=before or ["none"])
    _end_sessions(call, call.arg("userName"))  # a way taken away counts at once


@function("SetUserDistinguishedName", "Set or clear a user's LDAP distinguished name.", "null",
          USER, Field("distinguishedName", "string", True, "The distinguished name; empty clears "
                    "it."))
def set_user_distinguished_name(call: Call) -> None:
    _users(call).set_distinguished_name(call.arg("userName"), call.arg("distinguishedName"))


@function("SetUserPop3UserNames", "Set a user's POP3 user names.", "null", USER,
          Field("pop3UserNames", "list", True, "Comma-separated names; empty clears them."))
def set_user_pop3_user_names(call: Call) -> None:
    _users(call).set_pop3_user_names(call.arg("userName"), call.arg("pop3UserNames"))


@function("SetUserRole", "Set a user's management-console role: administrator (everything), "
          "developer or operator (read the notification settings and connections), or empty "
          "for none (the account cannot log in to the console; an account with the admin "
          "privilege counts as administrator). The last administrator keeps its role.", "null",
          USER, Field("role", "string", True, "administrator, developer, operator, or empty."))
def set_user_role(call: Call) -> None:
    call.note(before=_users(call).set_role(call.arg("userName"), call.arg("role")))
