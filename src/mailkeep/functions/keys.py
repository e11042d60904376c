"""Keys and credentials: the stored credentials profiles and connections use (never their
secrets), renewing the master key, and unlocking a store sealed under a passphrase."""

from __future__ import annotations

from typing import Any

from mailkeep.core.admin.directory import Directory
from mailkeep.core.admin.mfa import MultiFactor
from mailkeep.core.errors import Conflict, InvalidArgument
from mailkeep.core.fields import Field
from mailkeep.core.keys import PASSPHRASE
from mailkeep.core.renewal import renew
from mailkeep.core.storage.store import MANIFEST, read_manifest
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function
from mailkeep.functions.stores import ID, store_info
from mailkeep.notify.config import NotificationConfig
from mailkeep.notify.connections import Connections
from mailkeep.profiles import schema
from mailkeep.profiles.store import Profiles

CREDENTIALS_SHAPE = ('[{"usedBy": "profile"|"connection"|"notification", "id": int|null, '
                     '"name": str, "server": str|null, "userName": str|null, '
                     '"authentication": str, "hasSecret": bool}]')


@function("GetCredentials", "The credentials mailkeep keeps to log in elsewhere: those of the "
          "archiving profiles (mail servers), the named connections and the notification mail "
          "(SMTP, POP before SMTP). Never the secrets themselves: hasSecret says whether a "
          "password or token is stored (sealed under the master key).", CREDENTIALS_SHAPE,
          changes=False)
def get_credentials(call: Call) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for prof in Profiles(call.master, call.data_dir).all():
        props = prof.properties
        if props["type"] not in ("imap", "pop3"):
            continue
        auth = props.get("authentication", "apop" if props.get("apop") else "password")
        out.append({"usedBy": "profile", "id": prof.id, "name": prof.name,
                    "server": f"{props['host']}:{schema.default_port(props)}",
                    "userName": props["login"], "authentication": auth,
                    "hasSecret": bool(prof.secret_names)})
    for conn in Connections(call.data_dir).all():
        if conn["authentication"] == "none":
            continue
        out.append({"usedBy": "connection", "id": None, "name": conn["name"],
                    "server": f"{conn['serverName']}:{conn['port']}",
                    "userName": conn["userName"], "authentication": conn["authentication"],
                    "hasSecret": conn["hasPassword"]})
    notification = NotificationConfig(call.data_dir).credential()
    if notification is not None:
        out.append({"usedBy": "notification", "id": None, "name": "notification mail",
                    **notification})
    return out


@function("RenewMasterKey", "Make a new master key and wrap every attached store's key and "
          "every sealed secret (profile passwords and tokens, the notification mail's and the "
          "connections' passwords) under it, safe against a crash at any point: before the new "
          "key takes effect nothing has changed, after it the old key still opens what is not "
          "re-wrapped yet, and the next RenewMasterKey finishes or undoes a renewal that was "
          "cut off. The replaced key stays in conf/ as master.key.retired-<id>, so detached "
          "stores and backups made before still open; copy the new conf/master.key wherever "
          "you keep the key. Refused when the key comes from MAILKEEP_MASTER_KEY.",
          '{"keyId": str, "stores": int (the store keys wrapped anew)}', long_running=True)
def renew_master_key(call: Call) -> dict[str, Any]:
    if call.master.postgres:
        raise Conflict("the master key of an installation on PostgreSQL is every server's: "
                       "renewing it is not supported yet (each server would need the new key "
                       "at the same moment)")
    paths = [r.path for r in call.archive.stores() if (r.path / MANIFEST).exists()]
    skipped = [r.name for r in call.archive.stores() if not (r.path / MANIFEST).exists()]
    for name in skipped:
        call.ctx.log(f"Store {name} is not found where it is registered: its key stays "
                     "wrapped under the old master key (kept in conf/).")

    def reseal() -> None:
        profiles = Profiles(call.master, call.data_dir).reseal()
        connections = Connections(call.data_dir).reseal()
        notification = NotificationConfig(call.data_dir).reseal()
        mfa = MultiFactor(call.master, call.data_dir).reseal()
        if Directory(call.master, call.data_dir).reseal():
            call.ctx.log("The directory's bind password sealed anew.")
        call.ctx.log(f"Secrets sealed anew: {profiles} profile(s), {connections} "
                     f"connection(s), {mfa} MFA secret(s)"
                     f"{', the notification mail' if notification else ''}.")

    new_id, rewrapped = renew(call.services.keys, paths, reseal, call.ctx.log,
                              call.ctx.check_cancelled)
    call.note(keyId=new_id, stores=rewrapped)
    call.ctx.progress(100)
    return {"keyId": new_id, "stores": rewrapped}


@function("UnlockStore", "Open a store whose key is sealed under a passphrase instead of the "
          "master key (a store made with CreateStore passphrase=..., to hand to someone "
          "else): the passphrase unwraps its key, which the server keeps in memory until it "
          "stops, so the store is searched and read like the others. A wrong passphrase "
          "changes nothing; after five in a row, each next try waits (1 s, doubling, up to 15 "
          "minutes). Answers the store as GetStores shows it.",
          '{"id": int, "name": str, ...} (the store, as in GetStores)', ID,
          Field("passphrase", "string", description="The store's passphrase.", secret=True))
def unlock_store(call: Call) -> dict[str, Any]:
    rec = call.archive.find_store(int(call.arg("id")))
    manifest = read_manifest(rec.path)
    enc = manifest.get("encryption") or {}
    if enc.get("key_id") != PASSPHRASE:
        raise InvalidArgument(f"Store {rec.name} (id {rec.id}) is not sealed under a "
                              "passphrase: nothing to unlock.")
    try:
        call.services.keys.unlock(manifest, call.arg("passphrase"))
    except InvalidArgument:
        raise InvalidArgument(f"The passphrase does not open store {rec.name} (id "
                              f"{rec.id}).") from None
    if call.caller.via == "cli":
        call.ctx.log("Unlocked in this process only: a server unlocks it with "
                     "`mailkeep call --url ... UnlockStore`.")
    return store_info(call.archive, rec, include_size=True)
