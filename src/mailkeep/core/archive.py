"""The archive of one data directory: its stores (registered in the master database), search
across them, and the changes of what they hold (deleting, moving folders).

Functions (functions/) and the command line reach the stores through it; it knows nothing of
them. It does not audit: the one invoke path audits each call, with the details a method
returns (the message deleted, the stores changed).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from mailkeep.core.admin import autocreate
from mailkeep.core.admin.compliance import Compliance
from mailkeep.core.admin.places import checked_place, roots_of
from mailkeep.core.admin.settings import Settings
from mailkeep.core.backends import objects_url
from mailkeep.core.crypto import key_id
from mailkeep.core.errors import (
    Conflict,
    CorruptData,
    InvalidArgument,
    KeyMissing,
    MailkeepError,
    NotFound,
    StoreUnavailable,
)
from mailkeep.core.files import private_dir
from mailkeep.core.finder import SearchResult, StoreHit, search_stores
from mailkeep.core.heads import SigningKey, sign_store
from mailkeep.core.keys import KeyRing
from mailkeep.core.masterdb import STATES, MasterDB, StoreRecord
from mailkeep.core.masterdb.stores import NAME_RULE
from mailkeep.core.masterdb.stores import valid_name as valid_store_name
from mailkeep.core.objects import ObjectStore
from mailkeep.core.retention import Retention, first_kept, message_effect
from mailkeep.core.storage.catalog import full_name, under
from mailkeep.core.storage.catalog_search import Hit
from mailkeep.core.storage.query import Query, compile_query
from mailkeep.core.storage.segment_objects import fetch_manifest
from mailkeep.core.storage.store import Store, read_manifest

log = logging.getLogger(__name__)
DEFAULT_STORE = "Default"


def parse_message_id(value: str) -> tuple[int, int]:
    # ASCII digits without leading zeros: one message has one id (the audit log's, too)
    m = re.fullmatch(r"(0|[1-9][0-9]{0,17}):(0|[1-9][0-9]{0,17})", value.strip())
    if not m:
        raise InvalidArgument(f"message id {value[:60]!r} is not of the form "
                              "<storeId>:<number>")
    return int(m.group(1)), int(m.group(2))


def one_master_key(master: MasterDB, keys: KeyRing) -> None:
    """An installation on PostgreSQL has one master key, which every server must have (the
    same conf/master.key, or MAILKEEP_MASTER_KEY): the database keeps its id, set by the first
    server; KeyMissing for a server with another key, or none."""
    mine = keys.master(create=False)
    known = master.installation.get("master_key_id")
    if known is None:
        mine = mine or keys.master(create=True)
        assert mine is not None
        known = master.installation.settle("master_key_id", key_id(mine))
    if mine is None or key_id(mine) != known:
        raise KeyMissing(f"this server does not have the installation's master key (id "
                         f"{known}): give it the same conf/master.key or MAILKEEP_MASTER_KEY "
                         "as the servers that share its database")


class Archive:
    """The stores of a data directory. `master` is the process's master database (its owner
    closes it); without one the archive opens and closes its own."""

    def __init__(self, data_dir: Path, master: MasterDB | None = None,
                 keys: KeyRing | None = None, clock: Callable[[], float] = time.time) -> None:
        self.data_dir = data_dir.resolve()
        self.clock = clock  # the time stores are rolled over by (tests set it)
        self.keys = keys or KeyRing(self.data_dir)
        private_dir(self.data_dir)
        private_dir(self.data_dir / "conf")
        self._own_master = master is None
        self.master = master if master is not None else MasterDB.of(self.data_dir)
        if self.master.postgres:
            try:
                one_master_key(self.master, self.keys)
            except BaseException:
                if self._own_master:
                    self.master.close()
                raise
        self._open: dict[tuple[int, bool], Store] = {}
        self._signing_key: SigningKey | None = None
        self._looked: dict[str, tuple[int, float]] = {}  # store -> (leaves, when) last signed
        self._interval = 0.0  # tree.head_interval as last read
        self.unavailable: dict[str, MailkeepError] = {}
        self._objects: ObjectStore | None = None

    def close(self) -> None:
        self.sign_heads(force=True)
        for s in self._open.values():
            s.close()
        self._open.clear()
        if self._own_master:
            self.master.close()

    def sign_heads(self, force: bool = False) -> None:
        """Sign the tree heads of the stores this archive writes (core/heads.py): those that
        grew, once `tree.head_interval` seconds passed since their last head (at once with
        `force`). A head that cannot be signed now is signed at the next chance: logged."""
        now = time.monotonic()
        # after a batch: nothing is read unless the tree grew and the interval (as last
        # read) has passed since this archive last looked
        writing = [s for (_id, write), s in self._open.items() if write and s.writable
                   and (force or self._looked.get(s.id, (-1, -1e18))[0] != s.tree.size
                        and now - self._looked.get(s.id, (-1, -1e18))[1] >= self._interval)]
        if not writing:
            return
        try:
            self._interval = float(Settings(self.master).get("tree.head_interval"))
            for store in writing:
                sign_store(self.master, self.signing_key, store, self._interval, force)
                self._looked[store.id] = (store.tree.size, now)
        except Exception:
            log.exception("signing a tree head")

    @property
    def signing_key(self) -> SigningKey:
        if self._signing_key is None:
            self._signing_key = SigningKey(self.data_dir, self.master)
        return self._signing_key

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def master_key(self, create: bool = False) -> bytes | None:
        return self.keys.master(create)

    # -- the registry ---------------------------------------------------------------------
    def stores(self) -> list[StoreRecord]:
        """The registry. With the segments in object storage, each store's directory is
        this server's own: stores/<store id> of its data directory (a staging area and a
        cache, segment_objects.py), whatever the server that made it wrote down."""
        recs = self.master.stores.all()
        if self.objects is None:
            return recs
        return [replace(r, path=self.data_dir / "stores" / r.uuid) for r in recs]

    @property
    def objects(self) -> ObjectStore | None:
        if self._objects is None and objects_url() is not None:
            self._objects = ObjectStore(str(objects_url()))
        return self._objects

    def find_store(self, ref: str | int) -> StoreRecord:
        ref_s = str(ref)
        for rec in self.stores():
            if str(rec.id) == ref_s or rec.name == ref_s:
                return rec
        raise NotFound(f"no store {ref_s!r} (see `mailkeep store list`)")

    def _check_name(self, name: str) -> None:
        if not valid_store_name(name):
            raise InvalidArgument(f"store name {name!r} is not allowed ({NAME_RULE})")
        if any(r.name == name for r in self.stores()):
            raise Conflict(f"a store named {name!r} already exists")

    def create_store(self, name: str, path: Path | None = None, encrypt: bool = False,
                     passphrase: str | None = None) -> StoreRecord:
        """A new store (current if it is the first); encrypted under the master key, or under
        a passphrase (then locked until UnlockStore, in every process)."""
        self._check_name(name)
        store_id = str(uuid.uuid4())
        if self.objects is not None:  # (a directory of this server's: Archive.stores)
            target = self.data_dir / "stores" / store_id
        else:
            target = (self._store_place(path) if path is not None
                      else (self.data_dir / "stores" / name).resolve())
        key = self.master_key(create=True) if encrypt and passphrase is None else None
        store = Store.create(target, name, key, encrypt, passphrase, created=self.clock(),
                             store_id=store_id)
        store.close()
        state = "normal" if any(r.state == "current" for r in self.stores()) else "current"
        return self.master.stores.add(store.id, name, target, state)

    def _store_place(self, path: Path) -> Path:
        """A store directory mailkeep may use (core.admin.places): in the data directory
        only under stores/, elsewhere within paths.allowed."""
        return checked_place(path, self.data_dir, "Store directory",
                             roots_of(Settings(self.master).get("paths.allowed")),
                             stores_ok=True)

    def attach_store(self, path: Path, name: str | None = None) -> StoreRecord:
        target = self._store_place(path)
        try:
            manifest = read_manifest(target)
        except (NotFound, CorruptData) as exc:
            # One answer whether the path is missing, unreadable, a file or not a store: the
            # caller learns nothing about other files (the log keeps what it was).
            log.warning("AttachStore %s: %s", target, exc.message)
            raise NotFound(f"{target} is not a mailkeep store (no readable store.json in "
                           "it).") from None
        if any(r.uuid == manifest["id"] for r in self.stores()):
            raise Conflict(f"the store at {target} is already attached")
        name = name or str(manifest["name"])
        self._check_name(name)
        # Open it once for writing before registering it: this checks the key of an
        # encrypted store and brings the catalog up to date with the segments. A store sealed
        # under a passphrase nobody has given yet is attached locked: UnlockStore opens it.
        if not self.keys.locked(manifest):
            Store.open(target, self.keys, write=True).close()
        state = "normal" if any(r.state == "current" for r in self.stores()) else "current"
        rec = self.master.stores.add(str(manifest["id"]), name, target, state)
        if name != manifest["name"]:
            self._rename_manifest(rec, name)
        return rec

    def detach_store(self, ref: str | int, merged: bool = False) -> StoreRecord:
        """`merged`: every message of the store was filed in another one (MergeStore): none
        leaves the archive, so retention minimums do not hold it back."""
        rec = self.find_store(ref)
        Compliance(self.master).require_no_hold(f"detaching store {rec.name!r}")
        policies = Retention(self.master).policies()
        if policies and not merged:
            try:
                kept = first_kept(self.open_store(rec, check_state=False), policies)
            except MailkeepError:
                kept = None  # unreadable here: what it holds cannot be known
            if kept is not None:
                raise Conflict(f"store {rec.name!r} holds {kept[0]} messages still under "
                               f"their minimum retention (e.g. {rec.id}:{kept[1]}, retention "
                               f"policy {kept[2].name!r}): detaching would take them out of "
                               "the archive; make it write-protected instead")
        if rec.state == "current" and len(self.stores()) > 1:
            raise Conflict(f"store {rec.name!r} is the current store: make another store "
                           "current before detaching it")
        self._close_store(rec.id)
        self.master.stores.remove(rec.id)
        return rec

    def relocate_store(self, ref: str | int, path: Path) -> StoreRecord:
        """Point a store at the directory its files were moved to (the same store: its
        manifest's id must match); nothing is copied or moved."""
        rec = self.find_store(ref)
        target = self._store_place(path.expanduser())
        if target == rec.path.resolve():
            return rec
        manifest = read_manifest(target)
        if manifest["id"] != rec.uuid:
            raise Conflict(f"{target} holds another store ({manifest['name']!r}), not "
                           f"{rec.name!r}")
        if (rec.path / "store.json").exists():
            raise Conflict(f"store {rec.name!r} is still at {rec.path}: move its directory "
                           "first (with the server not writing it), then point it there")
        self._close_store(rec.id)
        Store.open(target, self.keys, write=True).close()  # checks key and catalog
        self.master.stores.move(rec.id, target)
        return self.find_store(rec.id)

    def rename_store(self, ref: str | int, name: str) -> StoreRecord:
        rec = self.find_store(ref)
        if name == rec.name:
            return rec
        self._check_name(name)
        self._rename_manifest(rec, name)
        self.master.stores.rename(rec.id, name)
        return self.find_store(rec.id)

    def _rename_manifest(self, rec: StoreRecord, name: str) -> None:
        store = self.open_store(rec, write=True, check_state=False)
        store.require_writable()
        store.rename(name)

    def set_store_state(self, ref: str | int, state: str) -> StoreRecord:
        if state not in STATES:
            raise InvalidArgument(f"store state must be one of {', '.join(STATES)}")
        rec = self.find_store(ref)
        if rec.state == "current" and state != "current":
            raise Conflict(f"store {rec.name!r} is the current store: make another store "
                           "current instead (exactly one store is current)")
        self.master.stores.set_state(rec.id, state)
        if state == "disabled":
            self._close_store(rec.id)
        return self.find_store(rec.id)

    # -- opening --------------------------------------------------------------------------
    def open_store(self, rec: StoreRecord, write: bool = False, check_state: bool = True
                   ) -> Store:
        if check_state and rec.state == "disabled":
            raise StoreUnavailable(f"store {rec.name!r} is disabled")
        cached = self._open.get((rec.id, write))
        if cached is not None:
            return cached
        if self.objects is not None and not (rec.path / "store.json").exists():
            fetch_manifest(self.objects, rec.uuid, rec.path)  # first time on this server
        if not (rec.path / "store.json").exists():
            raise StoreUnavailable(f"store {rec.name!r} is not found at {rec.path}")
        # A catalog that lags the segments (a crash, a power cut) or cannot be read is
        # brought up to date by a reader itself when no writer holds the store to do it.
        may_repair = not write and (rec.id, True) not in self._open
        store: Store | None = None
        try:
            store = Store.open(rec.path, self.keys, write=write)
            stale = may_repair and store.behind_segments()
        except CorruptData:
            if not may_repair:
                raise
            stale = True
        if stale or store is None:
            if store is not None:
                store.close()
            Store.open(rec.path, self.keys, write=True).close()
            store = Store.open(rec.path, self.keys, write=False)
        self._open[(rec.id, write)] = store
        return store

    def _close_store(self, store_id: int) -> None:
        for key in [k for k in self._open if k[0] == store_id]:
            self._open.pop(key).close()

    def current_store(self) -> tuple[StoreRecord, Store]:
        """The store new mail goes to, opened for writing (created on first use)."""
        recs = self.stores()
        if not recs:
            default = self.data_dir / "stores" / DEFAULT_STORE
            if (default / "store.json").exists() and not self.master.stores.knows(
                    str(read_manifest(default)["id"])):
                self.attach_store(default)  # a first start that was cut off after creating it
            elif default.exists():
                # Stores existed and were detached: do not guess, say what to do.
                raise StoreUnavailable("no store is attached: `mailkeep store attach PATH` or "
                                       "`mailkeep store create NAME`")
            else:
                try:
                    rec = self.create_store(DEFAULT_STORE)
                except (Conflict, sqlite3.IntegrityError):
                    # another server's first mail made it just now (a shared database)
                    rec = self.find_store(DEFAULT_STORE)
                else:
                    # Nobody asked for it: the first mail made it. The log says so.
                    self.master.audit.write("system", "store.create", id=rec.id,
                                            name=rec.name, path=str(rec.path),
                                            reason="first mail")
            recs = self.stores()
        cur = [r for r in recs if r.state == "current"]
        if not cur:
            raise StoreUnavailable("no store is current: `mailkeep store state ID current`")
        rec, store = cur[0], self.open_store(cur[0], write=True)
        store.require_writable()
        config = autocreate.from_stored(Settings(self.master).get("stores.autocreate"))
        if autocreate.due(config, float(store.manifest.get("created", 0)),
                          sum(store.disk_usage().values()) if config.mode == "size" else 0,
                          self.clock()):
            rec = self._start_next_store(config, rec)
            store = self.open_store(rec, write=True)
            store.require_writable()
        return rec, store

    def _start_next_store(self, config: autocreate.AutoCreate, previous: StoreRecord
                          ) -> StoreRecord:
        """A new current store, named and placed as the configuration says."""
        now = datetime.fromtimestamp(self.clock())
        names = {r.name for r in self.stores()}
        pattern = config.name_pattern or autocreate.DEFAULT_PATTERN[config.mode]
        name = autocreate.name_for(pattern, now, len(names) + 1)
        taken = name
        for i in range(2, 1000):
            if taken not in names:
                break
            taken = f"{name} ({i})"
        base = Path(config.base_path) if config.base_path else self.data_dir / "stores"
        try:
            rec = self.create_store(taken, base / taken, config.encrypt)
        except Conflict:  # another process started it a moment ago
            return next(r for r in self.stores() if r.state == "current")
        rec = self.set_store_state(rec.id, "current")
        # Nobody called for it: the configuration did. The log says so.
        self.master.audit.write("system", "store.autocreate", id=rec.id, name=rec.name,
                                path=str(rec.path), previous=previous.name, mode=config.mode)
        return rec

    def readable_stores(self) -> list[tuple[StoreRecord, Store]]:
        """The stores that can be read now; the others are in `self.unavailable` with why,
        so that one store without its key or its disk does not stop the rest."""
        out = []
        self.unavailable = {}
        for rec in self.stores():
            if rec.state == "disabled":
                continue
            try:
                out.append((rec, self.open_store(rec)))
            except (StoreUnavailable, KeyMissing, CorruptData, NotFound) as exc:
                self.unavailable[rec.name] = exc
        return out

    # -- reading --------------------------------------------------------------------------
    def search(self, query: str, limit: int = 20, offset: int = 0, exact: bool = False
               ) -> SearchResult:
        return self.search_compiled(compile_query(query), limit, offset, exact=exact)

    def search_compiled(self, q: Query, limit: int = 20, offset: int = 0, sort: str = "date",
                        ascending: bool = False, exact: bool = False) -> SearchResult:
        """search() of a compiled query (to which a caller's scope may have been added),
        ordered by date (newest first) or by sender, subject or size, then newest first. The
        total is estimated past many matches unless `exact` (Searching.count_matches)."""
        stores = self.readable_stores()
        result = search_stores(((rec.id, rec.name, store.catalog) for rec, store in stores),
                               q, limit, offset, sort, ascending, self.unavailable, exact)
        page = result.hits
        if q.terms:
            self._name_attachments(q, page)
        return result

    def _name_attachments(self, q: Query, page: list[StoreHit]) -> None:
        """Which attachments of each message on the page a word sought was found in."""
        by_store: dict[int, list[StoreHit]] = {}
        for h in page:
            if h.hit.has_attachment:
                by_store.setdefault(h.store_id, []).append(h)
        for store_id, hits in by_store.items():
            try:
                store = self.open_store(self.find_store(store_id))
                found = store.catalog.matched_attachments(q, [h.hit.number for h in hits])
            except (sqlite3.DatabaseError, StoreUnavailable, KeyMissing, CorruptData, NotFound):
                continue  # the page is shown all the same
            for h in hits:
                h.matched = found.get(h.hit.number, [])

    def iter_messages(self, query: str = "") -> list[tuple[StoreRecord, Store, list[int]]]:
        q = compile_query(query)
        return [(rec, store, list(store.catalog.iter_numbers(q)))
                for rec, store in self.readable_stores()]

    def message(self, message_id: str) -> tuple[StoreRecord, Store, int]:
        store_id, number = parse_message_id(message_id)
        rec = self.find_store(store_id)
        store = self.open_store(rec)
        if store.catalog.entry(number) is None:
            raise NotFound(f"message {message_id} does not exist")
        return rec, store, number

    def folders(self, owner: str | None = None) -> list[tuple[str, str, int, int]]:
        """(owner, path, messages, bytes) summed over the readable stores."""
        acc: dict[tuple[str, str], list[int]] = {}
        for _rec, store in self.readable_stores():
            for o, p, n, b in store.catalog.folders(owner):
                cur = acc.setdefault((o, p), [0, 0])
                cur[0] += n
                cur[1] += b
        return [(o, p, v[0], v[1]) for (o, p), v in sorted(acc.items())]


    # -- changing what is archived ---------------------------------------------------------
    def modifiable_store(self, rec: StoreRecord) -> Store:
        """A store opened for changing what it holds: not write-protected, not disabled, and
        not being written by another process."""
        if rec.state in ("writeProtected", "disabled"):
            raise Conflict(f"store {rec.name!r} (id {rec.id}) is {rec.state}: its messages "
                           "cannot be changed")
        store = self.open_store(rec, write=True)
        store.require_writable()
        return store

    def check_deletable(self, message_id: str) -> tuple[Store, int, Hit]:
        """What deleting a message needs: no legal hold, its store changeable, the message
        there, its minimum retention over; else the error saying which."""
        store_id, number = parse_message_id(message_id)
        Compliance(self.master).require_no_hold(f"deleting message {message_id}")
        rec = self.find_store(store_id)
        store = self.modifiable_store(rec)
        hit = store.catalog.entry(number)
        if hit is None:
            raise NotFound(f"message {message_id} does not exist")
        retention = Retention(self.master)
        kept = message_effect(store, number, retention.policies())
        if kept is not None:
            retention.require_deletable(f"deleting message {message_id}", kept)
        return store, number, hit

    def delete_message(self, message_id: str, reason: str) -> Hit:
        """Delete one message for good, with the reason in the audit log."""
        if not reason.strip():
            raise InvalidArgument("a reason is required to delete a message (it is kept in "
                                  "the audit log)")
        store, number, hit = self.check_deletable(message_id)
        store.delete_message(number, reason)
        return hit

    def move_folder(self, owner: str, path: str, to_owner: str, to_path: str) -> list[int]:
        """Move a folder with its subfolders in every store that holds part of it (message
        numbers stay); every such store is checked before any is changed. Returns the ids of
        the stores changed."""
        if (owner, path) == (to_owner, to_path):
            raise InvalidArgument("the folder and its new place are the same")
        if owner == to_owner and under(to_path, path):
            raise InvalidArgument(f"cannot move {full_name(owner, path)} into itself")
        holding: list[StoreRecord] = []
        opened: list[tuple[StoreRecord, Store]] = []
        for rec in self.stores():  # disabled ones too: a folder moves whole or not at all
            try:
                opened.append((rec, self.open_store(rec, check_state=False)))
            except MailkeepError as exc:
                raise StoreUnavailable(f"store {rec.name!r} (id {rec.id}) cannot be read, so "
                                       f"its part of {full_name(owner, path)} cannot be "
                                       f"checked: {exc.message}") from None
        for rec, store in opened:
            # The new place is taken if it, or anything below it, exists in any store.
            taken = [p for o, p, _n, _b in store.catalog.folders(to_owner)
                     if under(p, to_path)]
            if taken:
                raise Conflict(f"folder {full_name(to_owner, taken[0])} already exists in "
                               f"store {rec.name!r}")
            if any(under(p, path) for _o, p, _n, _b in store.catalog.folders(owner)):
                holding.append(rec)
        if not holding:
            raise NotFound(f"folder {full_name(owner, path)} does not exist")
        # A message kept by a policy whose scope finds it where it is could leave that scope
        # by moving: refused while any is under such a minimum (the policy is named).
        policies = Retention(self.master).policies()
        subtree = compile_query(f'user:"{owner}"' + (f' folder:"{owner}/{path}"' if path
                                                        else ""))
        for rec, store in opened:
            if rec in holding:
                kept = first_kept(store, policies, scoped_only=True, within=subtree)
                if kept is not None:
                    raise Conflict(f"{kept[0]} messages of {full_name(owner, path)} (e.g. "
                                   f"{rec.id}:{kept[1]}) are kept by retention policy "
                                   f"{kept[2].name!r}, whose scope could not find them after "
                                   "the move: moving it is refused until their minimum ends "
                                   "(or the policy changes)")
        stores = [(rec, self.modifiable_store(rec)) for rec in holding]  # all, or none
        for _rec, store in stores:
            store.folder_change({"op": "move", "owner": owner, "folder": path,
                                 "to_owner": to_owner, "to_folder": to_path})
        return [rec.id for rec, _ in stores]

    def drop_empty_folders(self, owner: str | None, path: str) -> tuple[list[str], list[str]]:
        """Remove the folders under owner/path (everything if owner is None) that hold no
        messages of their own. Returns (folders removed, stores skipped with why)."""
        removed: list[str] = []
        skipped: list[str] = []
        for rec, store in self.readable_stores():
            empty = [(o, p) for o, p in store.catalog.empty_folders()
                     if owner is None or (o == owner and under(p, path))]
            if not empty:
                continue
            try:
                store = self.modifiable_store(rec)
            except MailkeepError as exc:
                skipped.append(f"store {rec.name} (id {rec.id}): {exc.message}")
                continue
            for o, p in empty:
                store.folder_change({"op": "drop", "owner": o, "folder": p})
                removed.append(full_name(o, p))
        return removed, skipped

