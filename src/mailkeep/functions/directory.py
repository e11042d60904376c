"""Directory services (core.admin.directory has the rules): the original's
GetDirectoryServicesConfiguration, SetDirectoryServicesConfiguration and
SyncUsersWithDirectoryServices. SetUserAuthentication (functions/users.py) makes an account a
directory account, or a local one again."""

from __future__ import annotations

from typing import Any

from mailkeep.core.admin.directory import FIELDS, Directory
from mailkeep.core.admin.users import ROLES
from mailkeep.core.fields import Field
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function

SHOWN = ('{"type": "none"|"ldap"|"activeDirectory", "server": str|null, "port": int|null, '
         '"security": "ldaps"|"starttls"|"none", "verifyCertificate": bool, "caFile": str|null, '
         '"timeout": int, "bindDn": str|null, "baseDn": str|null, "userFilter": str|null, '
         '"groupDn": str|null, "loginAttribute": str|null, "fullNameAttribute": str|null, '
         '"emailAttribute": str, "proxyAddressesAttribute": str, "privileges": [str], '
         '"disableMissing": bool, "hasBindPassword": bool}')


@function("GetDirectoryServicesConfiguration", "Where accounts come from besides the local "
          "ones: the LDAP or Active Directory server, how mailkeep binds and searches it, and "
          "what a sync does. The bind password is never shown (hasBindPassword).", SHOWN,
          changes=False, roles=ROLES)
def get_directory_services_configuration(call: Call) -> dict[str, Any]:
    return Directory(call.master, call.data_dir).config()


@function("SetDirectoryServicesConfiguration", "Change the directory configuration: the fields "
          "given, the others keep their values; checked as a whole before it is saved. Fields: "
          + ", ".join(f"{f.name} ({f.description})" for f in FIELDS.values())
          + ". bindPassword is write-only and must be given again when server, port, security, "
          "verifyCertificate, caFile or bindDn changes.", SHOWN,
          Field("config", "json", description="The fields to change, e.g. {\"type\": \"ldap\", "
                "\"server\": \"ldap.example.org\", \"baseDn\": \"dc=example,dc=org\", "
                "\"bindDn\": \"cn=mailkeep,ou=services,dc=example,dc=org\", "
                "\"bindPassword\": \"...\"}.", secret_keys=("bindPassword",)))
def set_directory_services_configuration(call: Call) -> dict[str, Any]:
    return Directory(call.master, call.data_dir).configure(call.arg("config"))


@function("SyncUsersWithDirectoryServices", "Bring the accounts up to date with the directory: "
          "create the users it selects (as directory accounts, with the configured "
          "privileges), update their full names, DNs and email addresses, keep those it "
          "disables (and, with disableMissing, those gone from it) from logging in. Never "
          "deletes an account or an archive; never takes over a local account. With dryRun, "
          "says what it would do and changes nothing.",
          '{"dryRun": bool, "created": [str], "updated": [str], "disabled": [str], '
          '"enabled": [str], "missing": [str], "skipped": [str], "unchanged": int}',
          Field("dryRun", "bool", True, "Only say what would change.", default=False),
          long_running=True)
def sync_users_with_directory_services(call: Call) -> dict[str, Any]:
    dry_run = bool(call.arg("dryRun"))
    report = Directory(call.master, call.data_dir).sync(dry_run, call.ctx.log)
    shown = report.shown(dry_run)
    call.ctx.log(f"{len(report.created)} created, {len(report.updated)} updated, "
                 f"{len(report.disabled)} disabled, {len(report.enabled)} enabled again, "
                 f"{len(report.missing)} gone, {len(report.skipped)} left out, "
                 f"{report.unchanged} unchanged" + (" (dry run: nothing changed)"
                                                    if dry_run else "") + ".")
    call.note(**{k: len(v) if isinstance(v, list) else v for k, v in shown.items()})
    return shown
