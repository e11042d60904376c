"""Store functions: the archive's stores as the Administration API manages them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mailkeep.core.admin import autocreate
from mailkeep.core.admin.settings import Settings
from mailkeep.core.admin.users import ROLES
from mailkeep.core.archive import Archive
from mailkeep.core.errors import InvalidArgument, MailkeepError
from mailkeep.core.fields import Field
from mailkeep.core.heads import parse_heads, parse_public_key
from mailkeep.core.masterdb import STATES, StoreRecord
from mailkeep.core.storage.store import read_manifest
from mailkeep.core.storage.verify import VerifyFailed, verify
from mailkeep.core.treecheck import check_store
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function

STORE_TYPES = ("FileSystemInternal", "SQLServer", "PostgreSQL")
ID = Field("id", "number", description="The store's id (see GetStores).")
STATE = Field("requestedState", "string", True, "current, normal, writeProtected or disabled.",
            choices=STATES)
# The original's arguments for stores kept in a database server; mailkeep keeps every store
# as a directory, so only FileSystemInternal is accepted and these must stay empty.
DATABASE_ARGS = (
    Field("type", "string", True, "FileSystemInternal (the only type mailkeep has).",
        choices=STORE_TYPES),
    Field("databaseName", "string", True, "Not used (database-server stores)."),
    Field("databasePath", "string", True, "Directory of the store (an absolute path).",
          format="absolute-path"),
    Field("contentPath", "string", True, "Not used: content lives in the store directory."),
    Field("indexPath", "string", True, "Not used: the index lives in the store directory."),
    Field("serverName", "string", True, "Not used (database-server stores)."),
    Field("userName", "string", True, "Not used (database-server stores)."),
    Field("password", "string", True, "Not used (database-server stores).", secret=True),
)
STORE_SHAPE = ('[{"id": int, "name": str, "requestedState": str, "databasePath": str, '
               '"statisticsSize": int|null, "statisticsCount": int|null, "error": str|null, '
               '"searchIndexesNeedRebuild": bool, "needsUpgrade": bool, "encrypted": bool'
               '[, "distinctCount": int, "diskSize": int with includeSize]}]')


def _store_id(call: Call) -> StoreRecord:
    return call.archive.find_store(int(call.arg("id")))


def _directory_store_only(call: Call) -> None:
    kind = call.arg("type")
    if kind not in (None, "FileSystemInternal"):
        raise InvalidArgument(f"Store type {kind} is not supported: mailkeep keeps every store "
                              "as a directory (FileSystemInternal).")
    for name in ("databaseName", "serverName", "userName", "password"):
        if call.arg(name):
            raise InvalidArgument(f"API argument {name} applies to database-server stores, "
                                  "which mailkeep does not have.")


def store_info(archive: Archive, rec: StoreRecord, include_size: bool) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": rec.id, "name": rec.name, "requestedState": rec.state,
        "databasePath": str(rec.path), "statisticsSize": None, "statisticsCount": None,
        "error": None, "searchIndexesNeedRebuild": False, "needsUpgrade": False,
        "encrypted": False}
    if rec.state == "disabled":
        return info
    try:
        store = archive.open_store(rec)
        info["encrypted"] = store.encrypted
        if include_size:
            entries, blobs, raw = store.catalog.counts()
            info["statisticsCount"], info["statisticsSize"] = entries, raw
            info["distinctCount"] = blobs
            info["diskSize"] = sum(store.disk_usage().values())
    except MailkeepError as exc:
        info["error"] = exc.message
    return info


@function("GetStores", "All attached stores with their state, and their message counts and "
          "sizes when includeSize is true.", STORE_SHAPE,
          Field("includeSize", "bool", True, "Also count messages and bytes (slower)."),
          changes=False, roles=ROLES)
def get_stores(call: Call) -> list[dict[str, Any]]:
    include = bool(call.arg("includeSize"))
    return [store_info(call.archive, rec, include) for rec in call.archive.stores()]


@function("CreateStore", "Create a store; the first store becomes current.",
          '{"id": int, "name": str, ...} (the new store, as in GetStores)',
          Field("name", "string", description="Name of the new store."), *DATABASE_ARGS, STATE,
          Field("encrypt", "bool", True, "mailkeep extension: encrypt the store's messages at "
                "rest (AES-256-GCM) under a key the master key wraps."),
          Field("passphrase", "string", True, "mailkeep extension: encrypt it under a key this "
                "passphrase wraps instead (at least 12 characters): a store to hand to someone "
                "else, opened with UnlockStore.", secret=True))
def create_store(call: Call) -> dict[str, Any]:
    _directory_store_only(call)
    path = call.arg("databasePath")
    passphrase = call.arg("passphrase") or None
    rec = call.archive.create_store(call.arg("name"), Path(path) if path else None,
                                    bool(call.arg("encrypt")) or passphrase is not None,
                                    passphrase)
    if passphrase is not None:  # its maker may use it at once
        call.services.keys.unlock(read_manifest(rec.path), passphrase)
    if call.arg("requestedState") and call.arg("requestedState") != rec.state:
        rec = call.archive.set_store_state(rec.id, call.arg("requestedState"))
    return store_info(call.archive, rec, include_size=False)


@function("AttachStore", "Attach an existing store directory (databasePath).",
          '{"id": int, "name": str, ...} (the attached store, as in GetStores)',
          Field("name", "string", description="Name to attach it under."),
          # the original requires the type here (and only here)
          Field("type", "string", False, "FileSystemInternal (the only type mailkeep has).",
              choices=STORE_TYPES), *DATABASE_ARGS[1:], STATE)
def attach_store(call: Call) -> dict[str, Any]:
    _directory_store_only(call)
    path = call.arg("databasePath")
    if not path:
        raise InvalidArgument("Missing API argument databasePath (the store's directory).")
    rec = call.archive.attach_store(Path(path), call.arg("name"))
    if call.arg("requestedState") and call.arg("requestedState") != rec.state:
        rec = call.archive.set_store_state(rec.id, call.arg("requestedState"))
    return store_info(call.archive, rec, include_size=True)


@function("SetStoreProperties", "Point a store at the directory its files were moved to "
          "(databasePath, an absolute path): move the store's directory first, then call "
          "this; the directory must hold the same store (its manifest id is checked) and the "
          "old place must no longer hold it. Nothing is copied. Only FileSystemInternal "
          "stores exist in mailkeep, so the database-server arguments must stay empty.",
          '{"id": int, "name": str, ...} (the store, as in GetStores)', ID, *DATABASE_ARGS)
def set_store_properties(call: Call) -> dict[str, Any]:
    _directory_store_only(call)
    rec = _store_id(call)
    for name in ("contentPath", "indexPath"):
        if call.arg(name):
            raise InvalidArgument(f"API argument {name} does not apply: a mailkeep store keeps "
                                  "its content and index in its own directory.")
    path = call.arg("databasePath")
    if path:
        rec = call.archive.relocate_store(rec.id, Path(path))
    return store_info(call.archive, rec, include_size=False)


@function("DetachStore", "Detach a store; its directory stays as it is.", "null", ID)
def detach_store(call: Call) -> None:
    call.archive.detach_store(_store_id(call).id)


@function("RenameStore", "Rename a store.", "null", ID,
          Field("name", "string", description="The new name."))
def rename_store(call: Call) -> None:
    call.archive.rename_store(_store_id(call).id, call.arg("name"))


@function("SetStoreRequestedState", "Set a store's state; making one current makes the "
          "previous current store normal.", "null", ID,
          Field("requestedState", "string", description="current, normal, writeProtected or "
              "disabled.", choices=STATES))
def set_store_requested_state(call: Call) -> None:
    call.archive.set_store_state(_store_id(call).id, call.arg("requestedState"))


def _verify_one(call: Call, rec: StoreRecord, share: tuple[float, float]) -> dict[str, Any]:
    """Verify one store; its report: {store, name, messages, records, ok, problems: [{id,
    problem}], repairedOnOpen}, or {store, name, ok: false, error} when it cannot be opened
    for verifying (the error is raised after all stores were looked at)."""
    lo, span = share
    call.ctx.log(f"Verifying store {rec.name} (id {rec.id})...")
    # With the writer's lock when it is free; else (the server's own writer, an import) the
    # store is verified as it stood at one moment, and what is written meanwhile is not
    # taken for damage (core/storage/verify.py).
    store = call.archive.open_store(rec, write=True, check_state=False)
    if not store.writable:
        call.ctx.log("  the store is being written: verified as it stands now (messages "
                     "archived from now on are verified next time)")
    for line in store.recovered_on_open:
        call.ctx.log(f"  on open: {line}")

    def report(percent: float, line: str | None) -> None:
        call.ctx.progress(int(lo + span * percent / 100))
        if line:
            call.ctx.log(f"  {line}")

    res = verify(store, report, call.ctx.check_cancelled)
    problems = [{"id": f"{rec.id}:{p.message}" if p.message else None, "problem": p.text}
                for p in res.problems]
    given = call.arg("publicKey")
    public = parse_public_key(given) if given else call.archive.signing_key.public()
    exported, exported_key = _exported_heads(call)
    tree = check_store(store, call.master.heads.of_store(store.id), public, exported,
                       "the heads given", exported_key, call.master.heads.timestamps(store.id))
    problems += [{"id": None, "problem": f"tree: {p}"} for p in tree.problems]
    for p in problems:
        call.ctx.log(f"  problem: {p['id'] or rec.name}: {p['problem']}")
    call.ctx.log(f"  {res.messages} messages verified, {len(problems)} problems")
    return {"store": rec.id, "name": rec.name, "messages": res.messages,
            "records": res.records, "ok": not problems, "problems": problems,
            "repairedOnOpen": list(store.recovered_on_open),
            "whileWritten": not store.writable, "tree": tree.shown()}


def _exported_heads(call: Call) -> tuple[list[dict[str, Any]], Ed25519PublicKey | None]:
    """The heads given, and the public key their export names (its first line)."""
    heads, bad, key = parse_heads((call.arg("heads") or "").splitlines(), "heads:")
    if bad:
        raise InvalidArgument(f"{bad[0]} (the heads are JSON lines, as `mailkeep heads "
                              "export` writes them)")
    return heads, parse_public_key(key) if key is not None else None


def verify_stores(call: Call, recs: list[StoreRecord], what: str) -> dict[str, Any]:
    """Verify each store; every store is looked at even when one cannot be opened. Damage
    fails with VerifyFailed (naming the messages); else a store that could not be opened
    fails with its own error. Either carries the report in `report`."""
    stores: list[dict[str, Any]] = []
    unopened: MailkeepError | None = None
    for i, rec in enumerate(recs):
        call.ctx.check_cancelled()
        share = (100.0 * i / len(recs), 100.0 / len(recs))
        try:
            stores.append(_verify_one(call, rec, share))
        except MailkeepError as exc:
            call.ctx.log(f"  store {rec.name} (id {rec.id}) not verified: {exc.message}")
            stores.append({"store": rec.id, "name": rec.name, "ok": False,
                           "error": exc.message})
            unopened = unopened or exc
    report = {"stores": stores}
    problems = [f"{p['id']}: {p['problem']}" if p["id"] else f"{s['name']}: {p['problem']}"
                for s in stores for p in s.get("problems", [])]
    if problems:
        damaged = VerifyFailed(f"Verification of {what} found {len(problems)} problems.",
                               "; ".join(problems[:20]))
        damaged.report = report
        raise damaged
    if unopened is not None:
        unopened.report = report  # type: ignore[attr-defined]
        raise unopened
    return report


HEADS = Field("heads", "string", True, "mailkeep extension: signed tree heads kept elsewhere "
              "(JSON lines, as `mailkeep heads export` writes them): each must be a root of "
              "the store's tree, or its history was rewritten.")
PUBLIC_KEY = Field("publicKey", "string", True, "mailkeep extension: the public key the heads "
                   "must be signed with (\"ed25519:...\"; default: this data directory's).")
INCLUDE_INDEXES = Field("includeIndexes", "bool", description="Also check the full-text "
                        "index (mailkeep always does; accepted for compatibility).",
                        default=False)
REPORT = Field("report", "bool", True, "mailkeep extension: answer the report (the stores "
               "verified, their messages, records and problems) instead of null.")


VERIFY_SHAPE = ('{"stores": [{"store": int, "name": str, "messages": int, "records": int, '
                '"ok": bool, "problems": [{"id": str|null, "problem": str}], '
                '"repairedOnOpen": [str], "whileWritten": bool, "tree": {"leaves": int, '
                '"records": int, "signedHeads": int, "latestHead": object|null, '
                '"leavesAfterLatestHead": int, "declaredLost": int, "otherKeys": [str], '
                '"timestamped": int, "lastTimestamp": str|null}} | {"store": int, "name": str, '
                '"ok": false, "error": str}]}')


@function("VerifyStore", "Re-read every record of a store, check each message against its "
          "hash and the catalog and index against the segments, and the records against the "
          "store's Merkle tree and every signed head of it (its own, this data directory's, "
          "and those given). Fails, naming the damaged messages, if anything is wrong. "
          "Answers null, or the report with report=true.",
          f"null | {VERIFY_SHAPE}", ID, INCLUDE_INDEXES, REPORT, HEADS, PUBLIC_KEY,
          long_running=True, changes=False, isolated=True)
def verify_store(call: Call) -> dict[str, Any] | None:
    rec = _store_id(call)
    report = verify_stores(call, [rec], f"store {rec.name}")
    return report if call.arg("report") else None


@function("VerifyStores", "VerifyStore for every store that is not disabled (a store that "
          "cannot be opened is named, and the others are verified all the same).",
          f"null | {VERIFY_SHAPE}", INCLUDE_INDEXES, REPORT, HEADS, PUBLIC_KEY,
          long_running=True, changes=False, isolated=True)
def verify_all_stores(call: Call) -> dict[str, Any] | None:
    recs = [r for r in call.archive.stores() if r.state != "disabled"]
    report = verify_stores(call, recs, f"{len(recs)} stores")
    return report if call.arg("report") else None


AUTOCREATE_SHAPE = ('{"mode": "none"|"monthly"|"quarterly"|"yearly"|"size", "sizeLimitMB": '
                    'int|null, "namePattern": str, "basePath": str|null, "encrypt": bool}')


@function("GetStoreAutoCreateConfiguration", "Whether (and when) a new current store is started "
          "automatically: mode none, monthly, quarterly or yearly (a new store at the first "
          "mail of a new period, by the server's clock), or size (once the current store "
          "holds sizeLimitMB megabytes on disk). New stores are named by namePattern "
          "({year}, {month}, {quarter}, {n}: the number of stores), made in basePath (null: "
          "the data directory's stores/), encrypted if encrypt; the previous current store "
          "becomes normal.", AUTOCREATE_SHAPE, changes=False, roles=ROLES)
def get_store_auto_create_configuration(call: Call) -> dict[str, Any]:
    return autocreate.from_stored(Settings(call.master).get("stores.autocreate")).shown()


@function("SetStoreAutoCreateConfiguration", "Change when a new current store is started "
          "automatically (see GetStoreAutoCreateConfiguration); the fields not given keep "
          "their values; {\"mode\": \"none\"} stops it. Checked as a whole before anything "
          "is saved. Answers the configuration now in force.", AUTOCREATE_SHAPE,
          Field("config", "json", description="The fields to change, e.g. {\"mode\": "
                "\"monthly\"} or {\"mode\": \"size\", \"sizeLimitMB\": 51200}."))
def set_store_auto_create_configuration(call: Call) -> dict[str, Any]:
    conf = Settings(call.master)
    before = autocreate.from_stored(conf.get("stores.autocreate"))
    after = autocreate.parse(call.arg("config"), before)
    call.note(before=before.shown())
    conf.put("stores.autocreate", after.stored())
    return after.shown()
