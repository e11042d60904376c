"""Maintenance functions: recovery, index rebuilds, statistics, upgrades and backups of stores.

mailkeep's stores differ from the original's in ways these functions say plainly rather than
hide: the segments are the recovery records, the full-text index lives in the catalog and is
rebuilt with it (by recover), and there is one store format. Segments are rewritten only by
recover (damaged stretches set aside) and CompactStore (deleted messages dropped).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from mailkeep.core import reindex
from mailkeep.core.admin.compliance import Compliance
from mailkeep.core.admin.places import checked_place, roots_of
from mailkeep.core.admin.settings import Settings
from mailkeep.core.admin.users import ROLES
from mailkeep.core.errors import Conflict, InvalidArgument, MailkeepError
from mailkeep.core.fields import Field
from mailkeep.core.masterdb import MasterDB, StoreRecord
from mailkeep.core.renewal import keys_still
from mailkeep.core.storage.backup import copy_store
from mailkeep.core.storage.compact import compact
from mailkeep.core.storage.merge import merge
from mailkeep.core.storage.store import read_manifest
from mailkeep.core.storage.verify import RecoverFailed, recover
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function
from mailkeep.functions.stores import ID, verify_stores

Share = tuple[float, float]  # (start percent, span percent) of one store in a multi-store run




def _store(call: Call) -> StoreRecord:
    return call.archive.find_store(int(call.arg("id")))


def _enabled(call: Call) -> list[StoreRecord]:
    return [r for r in call.archive.stores() if r.state != "disabled"]


def _share(i: int, n: int) -> Share:
    return (100.0 * i / n, 100.0 / n) if n else (0.0, 100.0)


def _recover_one(call: Call, rec: StoreRecord, share: Share) -> dict[str, Any]:
    lo, span = share
    store = call.archive.open_store(rec, write=True, check_state=False)
    store.require_writable()
    call.ctx.log(f"Rebuilding catalog and full-text index of store {rec.name} (id {rec.id}) "
                 "from its segments...")
    for line in store.recovered_on_open:
        call.ctx.log(f"  on open: {line}")

    def report(percent: float, line: str | None) -> None:
        call.ctx.progress(int(lo + span * percent / 100))
        if line:
            call.ctx.log(f"  {line}")

    res = recover(store, report)
    for p in res.problems:
        call.ctx.log(f"  problem: {p}")
    call.ctx.log(f"  {res.messages} messages in the rebuilt catalog, {res.records} records "
                 f"read, {len(res.problems)} problems")
    call.ctx.progress(int(lo + span))
    return {"messages": res.messages, "records": res.records, "problems": res.problems}


# -- recovery -------------------------------------------------------------------------------

RECOVER_SHAPE = '{"messages": int, "records": int, "problems": [str]}'


@function("RecoverStore", "Rebuild a store's catalog and full-text index from its segments "
          "(the recovery records), keeping message numbers; damaged stretches of a segment are "
          "set aside under segments/damaged/ and named in the result.", RECOVER_SHAPE, ID,
          Field("encryptionKey", "string", True, "Not used: encrypted stores are unlocked with "
              "the data directory's master key; must be empty.", secret=True),
          Field("recoverDeletedMessages", "bool", True, "Not supported (deletions are final); "
              "must be empty or false."),
          long_running=True, isolated=True)
def recover_store(call: Call) -> dict[str, Any]:
    if call.arg("encryptionKey"):
        raise InvalidArgument("API argument encryptionKey is not used by mailkeep: encrypted "
                              "stores are unlocked with the data directory's master key "
                              "(conf/master.key or MAILKEEP_MASTER_KEY). Leave it empty.")
    if call.arg("recoverDeletedMessages"):
        raise InvalidArgument("recoverDeletedMessages=true is not supported: a deleted "
                              "message's tombstone is final in mailkeep and recover does not "
                              "bring it back.")
    return _recover_one(call, _store(call), (0.0, 100.0))


@function("RecreateRecoveryRecords", "mailkeep's segments are the recovery records and are "
          "never recreated: verifies them instead, and fails if they are damaged.", "null", ID,
          long_running=True, changes=False)
def recreate_recovery_records(call: Call) -> None:
    rec = _store(call)
    call.ctx.log(f"Store {rec.name}: the segments are the recovery records (catalog and index "
                 "are rebuilt from them); there is nothing to recreate, verifying them instead.")
    verify_stores(call, [rec], f"store {rec.name}")


# -- full-text indexes ----------------------------------------------------------------------

def _selected(call: Call) -> set[int]:
    return call.master.stores.selected_indexes()


def _select(call: Call, ids: list[int]) -> None:
    call.master.stores.select_indexes(ids)


def _unselect(call: Call, store_id: int) -> None:
    call.master.stores.unselect_index(store_id)


@function("GetStoreIndexes", "The full-text index of a store (or of every store): one per "
          "store, kept in its catalog.",
          '[{"storeId": int, "name": "fulltext", "needsRebuild": bool, '
          '"selectedForRebuild": bool, "attachmentTextPending": int|null}]',
          Field("id", "number", True, "The store's id; all stores when empty."), changes=False,
          roles=ROLES)
def get_store_indexes(call: Call) -> list[dict[str, Any]]:
    recs = [_store(call)] if call.arg("id") is not None else call.archive.stores()
    selected = _selected(call)
    return [{"storeId": r.id, "name": "fulltext", "needsRebuild": False,
             "selectedForRebuild": r.id in selected,
             "attachmentTextPending": _attachment_text_pending(call, r)} for r in recs]


def _attachment_text_pending(call: Call, rec: StoreRecord) -> int | None:
    """Messages whose attachments IndexAttachmentText has yet to read (None: unknown, the
    store cannot be opened)."""
    try:
        return reindex.pending(call.archive.open_store(rec))
    except (MailkeepError, OSError, sqlite3.Error):
        return None


@function("SelectAllStoreIndexesForRebuild", "Select the index of every store that is not "
          "disabled for RebuildSelectedStoreIndexes.", "null")
def select_all_store_indexes_for_rebuild(call: Call) -> None:
    _select(call, [r.id for r in _enabled(call)])


@function("RebuildStoreIndex", "Rebuild a store's full-text index; it is rebuilt together "
          "with the catalog from the segments (as RecoverStore does).", "null", ID,
          Field("folder", "string", description="Accepted for compatibility: the index covers "
              "the whole store and is rebuilt whole."), long_running=True, isolated=True)
def rebuild_store_index(call: Call) -> None:
    rec = _store(call)
    if call.arg("folder"):
        call.ctx.log(f"The index of store {rec.name} covers the whole store: folder "
                     f"{call.arg('folder')} is rebuilt with the rest.")
    _recover_one(call, rec, (0.0, 100.0))
    _unselect(call, rec.id)


@function("RebuildSelectedStoreIndexes", "Rebuild the indexes selected with "
          "SelectAllStoreIndexesForRebuild; each stays selected until its rebuild succeeds.",
          "null", long_running=True, isolated=True)
def rebuild_selected_store_indexes(call: Call) -> None:
    selected = _selected(call)
    recs = [r for r in call.archive.stores() if r.id in selected]
    for gone in selected - {r.id for r in recs}:
        _unselect(call, gone)  # detached since it was selected
    if not recs:
        call.ctx.log("No store index is selected for rebuild.")
        return
    failed: list[str] = []
    for i, rec in enumerate(recs):
        call.ctx.check_cancelled()
        try:
            _recover_one(call, rec, _share(i, len(recs)))
        except MailkeepError as exc:
            call.ctx.log(f"  store {rec.name}: {exc.message}")
            failed.append(f"{rec.name}: {exc.message}")
            continue
        _unselect(call, rec.id)
    if failed:
        raise RecoverFailed(f"The index of {len(failed)} of {len(recs)} stores could not be "
                            "rebuilt; they stay selected.", "; ".join(failed))


# -- the text inside attachments ---------------------------------------------------------------

@function("IndexAttachmentText", "mailkeep extension: read the text inside the attachments of "
          "messages stored before it was read (archive.attachment_text was off, or an older "
          "version stored them) into the full-text index, as a process with progress, in worker "
          "processes; mail keeps arriving meanwhile. How far it went is kept in each store, so "
          "a process that stopped (cancelled, a restart) goes on from there when run again.",
          '{"stores": int, "messages": int, "changed": int, "endedWorkers": int, '
          '"skipped": [str]}',
          Field("id", "number", True, "The store's id; every store that is not disabled when "
                "empty."), long_running=True)
def index_attachment_text(call: Call) -> dict[str, Any]:
    conf = Settings(call.master)
    if not conf.get("archive.attachment_text"):
        raise InvalidArgument("Setting archive.attachment_text is off: turn it on first "
                              "(new mail would not have the text inside its attachments read "
                              "either).")
    recs = [_store(call)] if call.arg("id") is not None else _enabled(call)
    writer = call.services.writer

    def progress(percent: int, line: str) -> None:
        call.ctx.progress(percent)
        if line:
            call.ctx.log(line)

    def cancelled() -> bool:
        call.ctx.check_cancelled()  # raises: what was done is committed
        return False

    out = reindex.run(call.archive, recs, writer.run_task, progress, cancelled,
                      int(conf.get("archive.extract_memory")) << 20)
    for line in out.skipped:
        call.ctx.log(f"Left out: {line}")
    call.ctx.log(f"Read the attachments of {out.messages} message(s) in {out.stores} store(s);"
                 f" {out.changed} had text to index"
                 + (f"; {out.ended_workers} ended their worker (indexed without that text)"
                    if out.ended_workers else "") + ".")
    call.ctx.progress(100)
    return {"stores": out.stores, "messages": out.messages, "changed": out.changed,
            "endedWorkers": out.ended_workers, "skipped": out.skipped}


# -- statistics, opening, upgrades ----------------------------------------------------------

def _open_error(exc: Exception) -> str:
    return exc.message if isinstance(exc, MailkeepError) else f"{type(exc).__name__}: {exc}"


@function("RefreshAllStoreStatistics", "Open every store that is not disabled and count its "
          "messages and bytes (logged).", "null", long_running=True, changes=False)
def refresh_all_store_statistics(call: Call) -> None:
    recs = _enabled(call)
    for i, rec in enumerate(recs):
        call.ctx.check_cancelled()
        call.ctx.progress(int(_share(i, len(recs))[0]))
        try:
            entries, blobs, raw = call.archive.open_store(rec).catalog.counts()
        except (MailkeepError, OSError, sqlite3.Error) as exc:
            call.ctx.log(f"Store {rec.name} (id {rec.id}): cannot be opened: {_open_error(exc)}")
            continue
        call.ctx.log(f"Store {rec.name} (id {rec.id}): {entries} messages, {blobs} distinct, "
                     f"{raw} bytes")
    call.ctx.progress(100)


@function("RetryOpenStores", "Try to open every store that is not disabled; says which "
          "open and why the others do not.",
          '[{"id": int, "name": str, "ok": bool, "error": str|null}]',
          long_running=True, changes=False)
def retry_open_stores(call: Call) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rec in _enabled(call):
        call.ctx.check_cancelled()
        error: str | None = None
        try:
            call.archive.open_store(rec)
        except (MailkeepError, OSError, sqlite3.Error) as exc:
            error = _open_error(exc)
        call.ctx.log(f"Store {rec.name} (id {rec.id}): " + ("open" if error is None else error))
        out.append({"id": rec.id, "name": rec.name, "ok": error is None, "error": error})
    return out


def _upgrade(call: Call, rec: StoreRecord) -> None:
    manifest = read_manifest(rec.path)  # fails clearly on a store of an unknown format
    call.ctx.log(f"Store {rec.name} is up to date (format {manifest['format']}, the only "
                 "format mailkeep has).")


@function("UpgradeStore", "Bring a store to the current format; every mailkeep store is "
          "format 1, the only format, so this checks and changes nothing.", "null", ID,
          long_running=True, changes=False)
def upgrade_store(call: Call) -> None:
    _upgrade(call, _store(call))


@function("UpgradeStores", "UpgradeStore for every store that is not disabled.", "null",
          long_running=True, changes=False)
def upgrade_stores(call: Call) -> None:
    for rec in _enabled(call):
        _upgrade(call, rec)


# -- compaction and merging -----------------------------------------------------------------

COMPACT_SHAPE = ('{"bytesBefore": int, "bytesAfter": int, "recordsBefore": int, '
                 '"recordsAfter": int, "messagesDropped": int}')


@function("CompactStore", "Rewrite a store's segments without the bytes of deleted messages "
          "(DeleteMessage leaves them until now) and without records nothing needs any more; "
          "message ids do not change. The store cannot take new mail while this runs; "
          "searching it goes on. A store with damaged segments is refused (recover it "
          "first). Crash-safe: the new segments replace the old ones only once complete. "
          "Log lines tell how many records were kept; cancel-async stops it and changes "
          "nothing.", COMPACT_SHAPE, ID, long_running=True, isolated=True)
def compact_store(call: Call) -> dict[str, int]:
    rec = _store(call)
    if rec.state == "disabled":
        raise Conflict(f"Store {rec.name} (id {rec.id}) is disabled.")
    Compliance(call.master).require_no_hold(f"compacting store {rec.name!r} (it drops the bytes "
                                            "of deleted messages)")
    store = call.archive.open_store(rec, write=True, check_state=False)
    store.require_writable()
    call.ctx.log(f"Compacting store {rec.name} (id {rec.id})...")

    def report(percent: float, line: str | None) -> None:
        call.ctx.progress(int(percent))
        if line:
            call.ctx.log(f"  {line}")

    res = compact(store, report, call.ctx.check_cancelled, lambda: Compliance(
        call.master).require_no_hold(f"compacting store {rec.name!r} (a legal hold was placed "
                                     "while it ran; nothing was changed)"))
    call.ctx.log(f"  {res.records_after} of {res.records_before} records kept, "
                 f"{res.messages_dropped} deleted messages' bytes dropped; segments "
                 f"{res.bytes_before} -> {res.bytes_after} bytes")
    return {"bytesBefore": res.bytes_before, "bytesAfter": res.bytes_after,
            "recordsBefore": res.records_before, "recordsAfter": res.records_after,
            "messagesDropped": res.messages_dropped}


@function("MergeStore", "Merge the store sourceId into the store id: every message of the "
          "source is filed in the target with its folder, flags and dates (a message the "
          "target already has in that folder counts as a duplicate), re-compressed and, for "
          "an encrypted target, sealed with the target's key. Once all are in, the source "
          "is detached; its files stay on disk, untouched, for you to delete or keep. The "
          "merged messages get new ids <id>:<number>. The source must not be the current "
          "store; the target must accept changes (not write-protected or disabled). A "
          "merge that was cancelled or failed leaves the source attached and can be run "
          "again.", '{"messages": int, "merged": int, "duplicates": int}', ID,
          Field("sourceId", "number", description="The store to merge into id (then detached)."),
          long_running=True, isolated=True)
def merge_store(call: Call) -> dict[str, int]:
    target_rec = _store(call)
    source_rec = call.archive.find_store(int(call.arg("sourceId")))
    if source_rec.id == target_rec.id:
        raise InvalidArgument("A store cannot be merged into itself (id and sourceId are the "
                              "same).")
    if source_rec.state == "current":
        raise Conflict(f"Store {source_rec.name} (id {source_rec.id}) is the current store: "
                       "make another store current before merging it away.")
    Compliance(call.master).require_no_hold(f"merging store {source_rec.name!r} away (it "
                                            "ends detached)")
    target = call.archive.modifiable_store(target_rec)
    source = call.archive.open_store(source_rec, write=True, check_state=False)
    source.require_writable()  # nothing else writes it while it is copied
    call.ctx.log(f"Merging store {source_rec.name} (id {source_rec.id}) into "
                 f"{target_rec.name} (id {target_rec.id})...")

    def report(percent: float, line: str | None) -> None:
        call.ctx.progress(min(99, int(percent)))
        if line:
            call.ctx.log(f"  {line}")

    res = merge(source, target, report, call.ctx.check_cancelled)
    call.ctx.log(f"  {res.merged} messages merged, {res.duplicates} duplicates of "
                 f"{res.messages}")
    call.archive.detach_store(source_rec.id, merged=True)
    call.ctx.log(f"Store {source_rec.name} (id {source_rec.id}) detached; its files are "
                 f"still at {source_rec.path}.")
    call.ctx.progress(100)
    return {"messages": res.messages, "merged": res.merged, "duplicates": res.duplicates}


# -- backup ---------------------------------------------------------------------------------

def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _check_target(call: Call, raw: str) -> tuple[Path, bool]:
    target = Path(raw).expanduser()
    if not raw.strip() or not target.is_absolute():
        raise InvalidArgument(f"Backup path {raw!r} must be an absolute directory path.")
    target = target.resolve()
    data = call.archive.data_dir
    if target.is_relative_to(data) or data.is_relative_to(target):
        raise InvalidArgument(f"Backup path {target} must be outside the data directory {data}.")
    roots = roots_of(Settings(call.master).get("paths.allowed"))
    checked_place(target, data, "Backup path", roots)
    for rec in call.archive.stores():
        store_dir = rec.path.resolve()
        if target.is_relative_to(store_dir) or store_dir.is_relative_to(target):
            raise InvalidArgument(f"Backup path {target} must be outside store {rec.name} "
                                  f"({store_dir}).")
    existed = target.exists()
    if existed and (not target.is_dir() or any(target.iterdir())):
        raise Conflict(f"Backup path {target} exists and is not an empty directory.")
    return target, existed


@function("CreateBackup", "A consistent copy of the data directory while the server runs: "
          "conf/ and tls/, the master database, and every store (catalog through SQLite's "
          "backup API, segments up to what the catalog has applied). Restore by using the "
          "copy as the data directory.", '{"path": str, "bytes": int}',
          Field("path", "string", description="An empty or new directory outside the data "
              "directory and the stores (an absolute path).", format="absolute-path"),
          Field("excludeSearchIndexes", "bool", description="Leave the stores' catalogs (which "
                "hold the full-text index) out; they are rebuilt from the segments on first "
                "open of the restored copy.", default=False),
          long_running=True, changes=False)
def create_backup(call: Call) -> dict[str, Any]:
    target, existed = _check_target(call, str(call.arg("path")))
    exclude = bool(call.arg("excludeSearchIndexes"))
    data = call.archive.data_dir
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.chmod(0o700)  # it holds the master key and the accounts: private, as the data dir
    try:
        with keys_still(data, "The master key is being renewed, or another backup runs: "
                        "back up once it has ended."):
            _backup(call, data, target, exclude)
    except BaseException:
        for child in list(target.iterdir()):  # it was empty or new: leave no half backup
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        if not existed:
            target.rmdir()
        raise
    size = _tree_bytes(target)
    call.ctx.progress(100)
    call.ctx.log(f"Backup complete: {target} ({size} bytes).")
    return {"path": str(target), "bytes": size}


def _backup(call: Call, data: Path, target: Path, exclude: bool) -> None:
    for sub in ("conf", "tls"):
        if (data / sub).is_dir():
            shutil.copytree(data / sub, target / sub, symlinks=True)
            call.ctx.log(f"Copied {sub}/")
    call.master.backup(target / "mailkeep.db")
    call.ctx.log("Backed up the master database (mailkeep.db)")
    copy = MasterDB(target / "mailkeep.db")
    try:
        recs = copy.stores.all()
        encrypted = False
        for i, rec in enumerate(recs):
            call.ctx.check_cancelled()
            lo, _span = _share(i, len(recs))
            call.ctx.progress(int(lo))
            src = rec.path.resolve()
            if not (src / "store.json").exists():
                if rec.state == "disabled":
                    call.ctx.log(f"Store {rec.name} (id {rec.id}) is disabled and not found at "
                                 f"{src}: left out of the backup")
                    continue
                raise MailkeepError(f"Store {rec.name} (id {rec.id}) is not found at {src}: "
                                    "the backup is not complete and was removed (detach or "
                                    "disable the store, or bring it back, and try again).")
            encrypted = encrypted or bool(read_manifest(src).get("encryption"))
            # Stores inside the data directory keep their place; others go under external/.
            dst = (target / src.relative_to(data) if src.is_relative_to(data)
                   else target / "external" / str(rec.id))
            call.ctx.log(f"Backing up store {rec.name} (id {rec.id})...")
            copy_store(rec.path, dst, exclude, f"{rec.name} (id {rec.id})", call.ctx.log)
            copy.stores.move(rec.id, dst)
            call.ctx.log(f"  {_tree_bytes(dst)} bytes")
    finally:
        copy.close()
    if encrypted and not (target / "conf" / "master.key").exists():
        call.ctx.log("Warning: encrypted stores are backed up, but the master key is not in "
                     "conf/master.key (it comes from MAILKEEP_MASTER_KEY): keep it with the "
                     "backup.")
