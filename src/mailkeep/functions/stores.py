"""Store functions: the archive's stores as the Administration API manages them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailkeep.core.archive import Archive
from mailkeep.core.errors import InvalidArgument, MailkeepError
from mailkeep.core.master import STATES, StoreRecord
from mailkeep.core.storage.verify import verify
from mailkeep.functions.call import Call
from mailkeep.functions.registry import Arg, function

STORE_TYPES = ("FileSystemInternal", "SQLServer", "PostgreSQL")
ID = Arg("id", "number", description="The store's id (see GetStores).")
STATE = Arg("requestedState", "string", True, "current, normal, writeProtected or disabled.",
            values=STATES)
# The original's arguments for stores kept in a database server; mailkeep keeps every store
# as a directory, so only FileSystemInternal is accepted and these must stay empty.
DATABASE_ARGS = (
    Arg("type", "string", True, "FileSystemInternal (the only type mailkeep has).",
        values=STORE_TYPES),
    Arg("databaseName", "string", True, "Not used (database-server stores)."),
    Arg("databasePath", "string", True, "Directory of the store."),
    Arg("contentPath", "string", True, "Not used: content lives in the store directory."),
    Arg("indexPath", "string", True, "Not used: the index lives in the store directory."),
    Arg("serverName", "string", True, "Not used (database-server stores)."),
    Arg("userName", "string", True, "Not used (database-server stores)."),
    Arg("password", "string", True, "Not used (database-server stores).", secret=True),
)
STORE_SHAPE = ('[{"id": int, "name": str, "requestedState": str, "databasePath": str, '
               '"statisticsSize": int|null, "statisticsCount": int|null, "error": str|null, '
               '"searchIndexesNeedRebuild": bool, "needsUpgrade": bool, "encrypted": bool}]')


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
            entries, _blobs, raw = store.catalog.counts()
            info["statisticsCount"], info["statisticsSize"] = entries, raw
    except MailkeepError as exc:
        info["error"] = exc.message
    return info


@function("GetStores", "All attached stores with their state, and their message counts and "
          "sizes when includeSize is true.", STORE_SHAPE,
          Arg("includeSize", "bool", True, "Also count messages and bytes (slower)."),
          changes=False)
def get_stores(call: Call) -> list[dict[str, Any]]:
    include = bool(call.arg("includeSize"))
    return [store_info(call.archive, rec, include) for rec in call.archive.stores()]


@function("CreateStore", "Create a store; the first store becomes current.",
          '{"id": int, "name": str, ...} (the new store, as in GetStores)',
          Arg("name", "string", description="Name of the new store."), *DATABASE_ARGS, STATE,
          Arg("encrypt", "bool", True, "Encrypt the store's messages at rest (AES-256-GCM)."))
def create_store(call: Call) -> dict[str, Any]:
    _directory_store_only(call)
    path = call.arg("databasePath")
    rec = call.archive.create_store(call.arg("name"), Path(path) if path else None,
                                    bool(call.arg("encrypt")))
    if call.arg("requestedState") and call.arg("requestedState") != rec.state:
        rec = call.archive.set_store_state(rec.id, call.arg("requestedState"))
    return store_info(call.archive, rec, include_size=False)


@function("AttachStore", "Attach an existing store directory (databasePath).",
          '{"id": int, "name": str, ...} (the attached store, as in GetStores)',
          Arg("name", "string", description="Name to attach it under."),
          # the original requires the type here (and only here)
          Arg("type", "string", False, "FileSystemInternal (the only type mailkeep has).",
              values=STORE_TYPES), *DATABASE_ARGS[1:], STATE)
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
        if not Path(path).is_absolute():
            raise InvalidArgument(f"databasePath {path!r} must be an absolute path.")
        rec = call.archive.relocate_store(rec.id, Path(path))
    return store_info(call.archive, rec, include_size=False)


@function("DetachStore", "Detach a store; its directory stays as it is.", "null", ID)
def detach_store(call: Call) -> None:
    call.archive.detach_store(_store_id(call).id)


@function("RenameStore", "Rename a store.", "null", ID,
          Arg("name", "string", description="The new name."))
def rename_store(call: Call) -> None:
    call.archive.rename_store(_store_id(call).id, call.arg("name"))


@function("SetStoreRequestedState", "Set a store's state; making one current makes the "
          "previous current store normal.", "null", ID,
          Arg("requestedState", "string", description="current, normal, writeProtected or "
              "disabled.", values=STATES))
def set_store_requested_state(call: Call) -> None:
    call.archive.set_store_state(_store_id(call).id, call.arg("requestedState"))


def _verify_one(call: Call, rec: StoreRecord, share: tuple[float, float]) -> list[str]:
    lo, span = share
    store = call.archive.open_store(rec, write=True, check_state=False)
    store.require_writable()
    call.ctx.log(f"Verifying store {rec.name} (id {rec.id})...")

    def report(percent: float, line: str | None) -> None:
        call.ctx.progress(int(lo + span * percent / 100))
        if line:
            call.ctx.log(f"  {line}")

    res = verify(store, report, call.ctx.check_cancelled)
    problems = [f"{rec.id}:{p.message}: {p.text}" if p.message else f"{rec.name}: {p.text}"
                for p in res.problems]
    for p in problems:
        call.ctx.log(f"  problem: {p}")
    call.ctx.log(f"  {res.messages} messages verified, {len(problems)} problems")
    return problems


def _verify_result(problems: list[str], what: str) -> None:
    if problems:
        raise VerifyFailed(f"Verification of {what} found {len(problems)} problems.",
                           "; ".join(problems[:20]))


class VerifyFailed(MailkeepError):
    code = "corrupt_data"

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


INCLUDE_INDEXES = Arg("includeIndexes", "bool", description="Also check the full-text index "
                      "(mailkeep always does; accepted for compatibility).")


@function("VerifyStore", "Re-read every record of a store, check each message against its "
          "hash and the catalog and index against the segments. Fails, naming the damaged "
          "messages, if anything is wrong.", "null", ID, INCLUDE_INDEXES,
          long_running=True, changes=False)
def verify_store(call: Call) -> None:
    rec = _store_id(call)
    _verify_result(_verify_one(call, rec, (0.0, 100.0)), f"store {rec.name}")


@function("VerifyStores", "VerifyStore for every store that is not disabled.", "null",
          INCLUDE_INDEXES, long_running=True, changes=False)
def verify_stores(call: Call) -> None:
    recs = [r for r in call.archive.stores() if r.state != "disabled"]
    problems: list[str] = []
    for i, rec in enumerate(recs):
        problems += _verify_one(call, rec, (100.0 * i / len(recs), 100.0 / len(recs)))
    _verify_result(problems, f"{len(recs)} stores")
