"""Search across the stores of a data directory, and the read-only way to it that a command
line takes.

`search_stores` is the one search across stores: each store's catalog gives its first page in
its own order, and the pages are merged into one, by date (newest first) or by sender, subject
or size. `Archive.search_compiled` hands it the stores it opened (it brings a catalog that
lags its segments up to date first). `quick_search` hands it the catalogs of a data directory
opened read-only and nothing else of the stores: no keys, no segments, no Merkle tree, none
of their modules imported. That is what `mailkeep search` takes, so that a command line
answers in tens of milliseconds. Where reading alone would not do what Archive does (a
catalog that lags its segments or cannot be opened, an encrypted store whose key must be
checked, a data directory not made yet), quick_search returns None and the caller opens the
Archive.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable

from mailkeep.core.errors import CorruptData, InvalidArgument, MailkeepError, NotFound
from mailkeep.core.masterdb.readonly import read_only_stores
from mailkeep.core.storage.catalog import CATALOG, Catalog
from mailkeep.core.storage.manifest import read_manifest, segments_past

TYPE_CHECKING = False  # (typing is not imported at run time: cli/entry.py)
if TYPE_CHECKING:
    from typing import Any

    from mailkeep.core.storage.catalog_pg import PgCatalog
    from mailkeep.core.storage.catalog_search import Hit
    from mailkeep.core.storage.query import Query

TOO_COMPLEX = ("too large", "too many", "stack overflow", "too complex", "too big")


class StoreHit:
    __slots__ = ("store_id", "hit", "matched")  # (not a dataclass: cli/entry.py)

    def __init__(self, store_id: int, hit: Hit) -> None:
        self.store_id = store_id
        self.hit = hit
        self.matched: list[str] = []  # attachments a word was found in

    def __repr__(self) -> str:
        return f"StoreHit({self.store_id}, {self.hit!r}, matched={self.matched!r})"

    @property
    def message_id(self) -> str:
        return f"{self.store_id}:{self.hit.number}"


class SearchResult:
    __slots__ = ("total", "exact", "hits", "unavailable")

    def __init__(self, total: int, hits: list[StoreHit],
                 unavailable: dict[str, MailkeepError], exact: bool = True) -> None:
        self.total = total
        self.exact = exact  # False: total is an estimate (Searching.count_matches)
        self.hits = hits
        self.unavailable = unavailable  # store name -> why it was not searched


def search_stores(catalogs: Iterable[tuple[int, str, Catalog | PgCatalog]], q: Query,
                  limit: int,
                  offset: int, sort: str, ascending: bool,
                  unavailable: dict[str, MailkeepError], exact: bool = False) -> SearchResult:
    """The page [offset, offset + limit) of q's matches across the catalogs (store id, store
    name, catalog), with the total count: estimated where a store has many matches, unless
    `exact` (Searching.count_matches). A catalog with a damaged page is left out and named
    in `unavailable` (with the others there already); a query too complex for SQLite is an
    InvalidArgument."""
    if limit < 0 or offset < 0:
        raise InvalidArgument("limit and offset must not be negative")
    total, all_exact, hits = 0, True, list[StoreHit]()
    for store_id, name, catalog in catalogs:
        try:
            t, is_exact, h = catalog.search(q, limit + offset, 0, sort, ascending, exact)
        except sqlite3.DatabaseError as exc:  # a damaged page: the others are searched
            if any(w in str(exc).lower() for w in TOO_COMPLEX):
                raise InvalidArgument(f"The search is too complex to run ({exc}): use "
                                      "fewer words and filters.") from None
            unavailable[name] = CorruptData(
                f"the catalog of store {name!r} cannot be searched ({exc}): run "
                f"RepairStoreDatabase id={store_id} (or `mailkeep recover {store_id}`)")
            continue
        total += t
        all_exact = all_exact and is_exact
        hits.extend(StoreHit(store_id, x) for x in h)
    if sort == "date":
        hits.sort(key=lambda s: (s.hit.date, s.store_id, s.hit.number), reverse=not ascending)
    else:  # the stores' pages merged: by the key, then newest first
        def key(s: StoreHit) -> Any:
            return {"from": s.hit.sender.lower(), "subject": s.hit.subject.lower(),
                    "size": s.hit.size}[sort]
        hits.sort(key=lambda s: (s.hit.date, s.store_id, s.hit.number), reverse=True)
        hits.sort(key=key, reverse=not ascending)
    return SearchResult(total, hits[offset: offset + limit], dict(unavailable), all_exact)


def quick_search(data_dir: str, q: Query, limit: int, offset: int, exact: bool = False
                 ) -> SearchResult | None:
    """search_stores over the catalogs of data_dir's stores opened read-only, newest first;
    None where Archive must do it (see the module's doc). Disabled stores are not searched,
    as Archive does not search them."""
    records = read_only_stores(data_dir)
    if records is None:
        return None
    opened: list[tuple[int, str, Catalog]] = []
    unavailable: dict[str, MailkeepError] = {}
    try:
        for store_id, name, directory, state in records:
            if state == "disabled":
                continue
            try:
                manifest = read_manifest(directory)
            except (NotFound, CorruptData):
                return None  # Archive says why, in its own words
            catalog_file = os.path.join(directory, CATALOG)
            if manifest.get("encryption") or not os.path.isfile(catalog_file):
                return None
            try:
                catalog = Catalog(catalog_file, readonly=True)
            except sqlite3.DatabaseError:
                return None
            opened.append((store_id, name, catalog))
            try:
                if segments_past(directory, catalog.applied()):
                    return None  # a crash left the catalog behind: the Archive catches up
            except (sqlite3.DatabaseError, OSError, ValueError):
                return None
        return search_stores(opened, q, limit, offset, "date", False, unavailable, exact)
    finally:
        for _id, _name, catalog in opened:
            catalog.close()
