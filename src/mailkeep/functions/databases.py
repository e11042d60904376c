"""Database upkeep: the master database (CompactMasterDatabase) and the stores' catalogs
(MaintainFileSystemDatabases, RepairStoreDatabase), each a process with progress and log."""

from __future__ import annotations

from typing import Any

from mailkeep.core.errors import Conflict, CorruptData, MailkeepError
from mailkeep.core.masterdb import StoreRecord
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function
from mailkeep.functions.stores import ID

SIZES = '{"bytesBefore": int, "bytesAfter": int}'


@function("CompactMasterDatabase", "Check the master database (accounts, settings, jobs, "
          "profiles, audit log, ...) and rewrite it without its free pages, folding its "
          "write-ahead log in; expired console sessions go first. Fails, changing nothing, if "
          "the check finds damage.", SIZES, long_running=True)
def compact_master_database(call: Call) -> dict[str, int]:
    master = call.master
    call.ctx.progress(0, "Checking the master database")
    problems = master.check()
    if problems:
        for p in problems[:20]:
            call.ctx.log(f"  problem: {p}")
        raise CorruptData(f"The master database is damaged ({len(problems)} problems, e.g. "
                          f"{problems[0]}): not compacted; restore it from a backup "
                          "(CreateBackup) or export what it holds.")
    master.sessions.live(call.services.now())  # removes the expired ones
    call.ctx.check_cancelled()  # the last moment to stop
    call.ctx.progress(30, "Rewriting the master database")
    before, after = master.compact()
    call.ctx.log(f"Master database: {before} -> {after} bytes.")
    call.ctx.progress(100)
    return {"bytesBefore": before, "bytesAfter": after}


def _each_store(call: Call, recs: list[StoreRecord], work: Any) -> list[dict[str, Any]]:
    """Run work(rec, store) for each store, opened for writing; a store that cannot be opened
    (or that another process writes) is named and the others done all the same; then the
    first such error is raised."""
    results: list[dict[str, Any]] = []
    failed: MailkeepError | None = None
    for i, rec in enumerate(recs):
        call.ctx.check_cancelled()
        call.ctx.progress(int(100 * i / max(len(recs), 1)), f"Store {rec.name}")
        try:
            store = call.archive.open_store(rec, write=True, check_state=False)
            store.require_writable()
            for line in store.recovered_on_open:
                call.ctx.log(f"  store {rec.name}: on open: {line}")
            results.append({"id": rec.id, "name": rec.name, **work(rec, store)})
        except MailkeepError as exc:
            call.ctx.log(f"Store {rec.name} (id {rec.id}): {exc.message}")
            failed = failed or exc
    call.ctx.progress(100)
    if failed is not None:
        raise failed
    return results


@function("MaintainFileSystemDatabases", "Upkeep of every store's catalog that is not "
          "disabled: the full-text index's segments merged (searches read fewer), the query "
          "planner's statistics refreshed, the file rewritten without free pages. A store "
          "that cannot be opened, or that another process is writing, is named and the "
          "others are done; the process then fails with its error.",
          '[{"id": int, "name": str, "bytesBefore": int, "bytesAfter": int}]',
          long_running=True)
def maintain_file_system_databases(call: Call) -> list[dict[str, Any]]:
    def work(rec: StoreRecord, store: Any) -> dict[str, int]:
        before, after = store.catalog.maintain()
        call.ctx.log(f"Store {rec.name} (id {rec.id}): catalog {before} -> {after} bytes.")
        return {"bytesBefore": before, "bytesAfter": after}

    recs = [r for r in call.archive.stores() if r.state != "disabled"]
    return _each_store(call, recs, work)


@function("RepairStoreDatabase", "Check a store's catalog (SQLite's own check and the "
          "full-text index's) and, if it is damaged, rebuild it from the store's segments, "
          "keeping message numbers (as RecoverStore does); a catalog that cannot be opened at "
          "all is set aside and rebuilt on the way. Refused for a disabled store. Answers what "
          "was found and whether it was rebuilt.",
          '{"problems": [str], "rebuilt": bool, "messages": int}', ID, long_running=True)
def repair_store_database(call: Call) -> dict[str, Any]:
    rec = call.archive.find_store(int(call.arg("id")))
    if rec.state == "disabled":
        raise Conflict(f"Store {rec.name} (id {rec.id}) is disabled: enable it first "
                       "(SetStoreRequestedState).")
    found: dict[str, Any] = {}

    def work(rec: StoreRecord, store: Any) -> dict[str, Any]:
        repaired = list(store.recovered_on_open)  # what opening it already put right
        damage = store.catalog.check()
        for p in repaired + damage:
            call.ctx.log(f"  problem: {p}")
        if damage:
            call.ctx.log(f"Rebuilding the catalog of store {rec.name} from its segments...")
            messages, _records, more = store.rebuild_catalog()
            for p in more:
                call.ctx.log(f"  {p}")
        else:
            messages = store.catalog.counts()[0]
        rebuilt = bool(damage) or any("rebuilt" in line for line in repaired)
        if not repaired and not damage:
            call.ctx.log(f"The catalog of store {rec.name} is sound: nothing to repair.")
        found.update(problems=repaired + damage, rebuilt=rebuilt, messages=messages)
        return found

    _each_store(call, [rec], work)
    return found
