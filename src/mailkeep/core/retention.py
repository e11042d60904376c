"""Retention policies: how long messages must be kept (minimum) and may be kept (maximum).

The configuration is one JSON object (GetRetentionPolicies / SetRetentionPolicies):

    {"policies": [{"name": str, "enabled": bool,
                   "minimum": {"value": int, "unit": "days"|"months"|"years"} | null,
                   "maximum": {"value": int, "unit": ...} | null,
                   "referenceDate": "archived" | "sent",
                   "scope": "" (every message) | a search query, e.g. "folder:alice/Invoices",
                   "deleteAutomatically": bool}],
     "fourEyes": bool}

For a message, the policies that apply are the enabled ones whose scope matches it. Its
minimum runs until the latest end of their minimums; its maximum until the earliest end of
their maximums, never before the minimum (a longer minimum wins over a shorter maximum). The
legal hold wins over both. Before its minimum ends, a message cannot be deleted by anyone
(the error names the policy). After its maximum, ProcessRetentionPolicies deletes it if the
policy whose maximum ends first says deleteAutomatically (each deletion audited with that
policy); its bytes leave the store at the next compaction.

With `fourEyes`, DeleteMessage is refused: an administrator asks (RequestMessageDeletion) and
a second one approves (ApproveMessageDeletion); only then is the message deleted.
"""

from __future__ import annotations

import calendar
import copy
import json
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mailkeep.core.admin.compliance import Compliance
from mailkeep.core.errors import Conflict, InvalidArgument
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.storage.query import Query, compile_query, fields_of

if TYPE_CHECKING:
    from mailkeep.core.archive import Archive
    from mailkeep.core.storage.store import Store

UNITS = ("days", "months", "years")
MAX_POLICIES = 100
NAME_MAX = 100
MAX_YEARS = 200  # a retention longer than this is a typing mistake
SCOPE_MAX = 1000
DEFAULT: dict[str, Any] = {"policies": [], "fourEyes": False}
SCOPE_FIELDS = ("folder", "user", "from", "sender", "to", "cc", "bcc", "subject", "has",
                "after", "before", "on")


def utc(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_period(epoch: int, value: int, unit: str) -> int:
    """epoch + value units, in calendar terms (UTC): 1 month after 31 January is the last day
    of February; 1 year after 29 February is 28 February."""
    if unit == "days":
        return epoch + value * 86400
    d = datetime.fromtimestamp(epoch, UTC)
    months = value * (12 if unit == "years" else 1)
    year, month0 = divmod(d.month - 1 + months, 12)
    year += d.year
    if year > 9999:
        return 253402300799  # the end of year 9999: as good as never
    day = min(d.day, calendar.monthrange(year, month0 + 1)[1])
    return int(d.replace(year=year, month=month0 + 1, day=day).timestamp())


def _clean_text(value: Any, what: str, limit: int, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or (not value.strip() and not empty_ok):
        raise InvalidArgument(f"{what} is text" + ("" if empty_ok else " and not empty") + ".")
    if len(value) > limit or any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")
                                 for c in value):
        raise InvalidArgument(f"{what} is one line of at most {limit} characters, without "
                              "control or direction characters.")
    return value.strip()


def _period(value: Any, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"value", "unit"}:
        raise InvalidArgument(f'{what} is {{"value": N, "unit": "days"|"months"|"years"}} '
                              "or null.")
    n, unit = value.get("value"), value.get("unit")
    if unit not in UNITS:
        raise InvalidArgument(f"{what}.unit is days, months or years.")
    limit = {"days": MAX_YEARS * 366, "months": MAX_YEARS * 12, "years": MAX_YEARS}[unit]
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= limit:
        raise InvalidArgument(f"{what}.value is a whole number from 1 to {limit} {unit}.")
    return {"value": n, "unit": unit}


@dataclass
class Policy:
    name: str
    enabled: bool
    minimum: dict[str, Any] | None
    maximum: dict[str, Any] | None
    reference: str  # "archived" | "sent"
    scope: str
    delete_automatically: bool
    query: Query | None  # compiled scope; None: every message

    def shown(self) -> dict[str, Any]:
        return {"name": self.name, "enabled": self.enabled, "minimum": self.minimum,
                "maximum": self.maximum, "referenceDate": self.reference, "scope": self.scope,
                "deleteAutomatically": self.delete_automatically}

    def until(self, period: dict[str, Any] | None, sent: int, archived: int) -> int | None:
        if period is None:
            return None
        start = archived if self.reference == "archived" else sent
        return add_period(start, period["value"], period["unit"])

    @staticmethod
    def period_text(period: dict[str, Any]) -> str:
        unit = period["unit"] if period["value"] != 1 else period["unit"].rstrip("s")
        return f"{period['value']} {unit}"


def parse_policy(value: Any, i: int) -> Policy:
    what = f"policies[{i}]"
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} is a JSON object.")
    known = {"name", "enabled", "minimum", "maximum", "referenceDate", "scope",
             "deleteAutomatically"}
    if set(value) - known:
        raise InvalidArgument(f"{what} has keys mailkeep does not know: "
                              f"{', '.join(sorted(set(value) - known))}.")
    name = _clean_text(value.get("name"), f"{what}.name", NAME_MAX)
    enabled = value.get("enabled", True)
    auto = value.get("deleteAutomatically", False)
    if not isinstance(enabled, bool) or not isinstance(auto, bool):
        raise InvalidArgument(f"{what}.enabled and deleteAutomatically are true or false.")
    reference = value.get("referenceDate", "archived")
    if reference not in ("archived", "sent"):
        raise InvalidArgument(f"{what}.referenceDate is archived or sent.")
    minimum = _period(value.get("minimum"), f"{what}.minimum")
    maximum = _period(value.get("maximum"), f"{what}.maximum")
    if minimum is None and maximum is None:
        raise InvalidArgument(f"{what} needs a minimum, a maximum or both.")
    if auto and maximum is None:
        raise InvalidArgument(f"{what}: deleteAutomatically needs a maximum.")
    scope = _clean_text(value.get("scope", ""), f"{what}.scope", SCOPE_MAX, empty_ok=True)
    # what a message is (where, from whom, when), not what it says: a scope searching the
    # text would let whoever sets policies learn it through GetMessageRetention
    odd = [f or "a word" for f in fields_of(scope) if f not in SCOPE_FIELDS]
    if odd:
        raise InvalidArgument(f"{what}.scope may use {', '.join(SCOPE_FIELDS)}; not "
                              f"{odd[0]} (a scope does not search the text).")
    try:
        query = compile_query(scope) if scope else None
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}.scope is not a valid search: {exc.message}") from None
    return Policy(name, enabled, minimum, maximum, reference, scope, auto, query)


@dataclass
class Effect:
    """What the policies make of one message."""

    policies: list[tuple[Policy, int | None, int | None]]  # (policy, its minimum, maximum end)
    minimum: int | None  # until when it must be kept
    minimum_by: Policy | None
    maximum: int | None  # from when it may no longer be kept
    maximum_by: Policy | None

    @property
    def deletes(self) -> bool:
        return self.maximum_by is not None and self.maximum_by.delete_automatically


def effect(applying: list[Policy], sent: int, archived: int) -> Effect:
    rows = [(p, p.until(p.minimum, sent, archived), p.until(p.maximum, sent, archived))
            for p in applying]
    mins = [(m, p) for p, m, _x in rows if m is not None]
    maxs = [(x, p) for p, _m, x in rows if x is not None]
    minimum, minimum_by = max(mins, key=lambda t: t[0]) if mins else (None, None)
    maximum, maximum_by = min(maxs, key=lambda t: t[0]) if maxs else (None, None)
    if maximum is not None and minimum is not None and maximum < minimum:
        maximum = minimum  # the longer minimum wins
    return Effect(rows, minimum, minimum_by, maximum, maximum_by)


class Retention:
    def __init__(self, master: MasterDB) -> None:
        self.master = master

    def get(self) -> dict[str, Any]:
        text = self.master.retention.get()
        stored: dict[str, Any] = json.loads(text) if text else {}
        out = copy.deepcopy(DEFAULT)
        out.update(stored)
        return out

    def policies(self, enabled_only: bool = True) -> list[Policy]:
        got = [parse_policy(p, i) for i, p in enumerate(self.get()["policies"])]
        return [p for p in got if p.enabled or not enabled_only]

    def four_eyes(self) -> bool:
        return bool(self.get().get("fourEyes"))

    def set(self, given: Any, actor: str) -> dict[str, Any]:
        """Replace the configuration (checked whole first); audited."""
        if not isinstance(given, dict):
            raise InvalidArgument("The retention configuration is a JSON object: "
                                  '{"policies": [...], "fourEyes": false}.')
        if set(given) - {"policies", "fourEyes"}:
            raise InvalidArgument("The retention configuration has policies and fourEyes, "
                                  "nothing else.")
        with self.master.tx():
            new = self.get()
            if "policies" in given:
                items = given["policies"]
                if not isinstance(items, list) or len(items) > MAX_POLICIES:
                    raise InvalidArgument(f"policies is a list of at most {MAX_POLICIES}.")
                parsed = [parse_policy(p, i) for i, p in enumerate(items)]
                names = [p.name.casefold() for p in parsed]
                if len(set(names)) != len(names):
                    raise InvalidArgument("Two policies have the same name.")
                new["policies"] = [p.shown() for p in parsed]
            if "fourEyes" in given:
                if not isinstance(given["fourEyes"], bool):
                    raise InvalidArgument("fourEyes is true or false.")
                new["fourEyes"] = given["fourEyes"]
            old = self.get()
            self.master.retention.put(json.dumps(new, sort_keys=True))
            self.master.audit.write(actor, "RetentionPoliciesChange",
                                    policies=[p["name"] for p in new["policies"]],
                                    fourEyes=new["fourEyes"],
                                    before=[p["name"] for p in old["policies"]])
        return new

    def require_deletable(self, what: str, effect_of: Effect, now: float | None = None) -> None:
        """Refuse deleting before the message's minimum retention ends."""
        now = time.time() if now is None else now
        if effect_of.minimum is not None and now < effect_of.minimum:
            assert effect_of.minimum_by is not None
            p = effect_of.minimum_by
            raise Conflict(f"{what} is refused: retention policy {p.name!r} keeps it until "
                           f"{utc(effect_of.minimum)} ({Policy.period_text(p.minimum or {})} "
                           f"from the date it was {p.reference}).")


def applying(store: Store, number: int, policies: list[Policy]) -> list[Policy]:
    return [p for p in policies if p.query is None or store.catalog.matches(p.query, number)]


def message_effect(store: Store, number: int, policies: list[Policy]) -> Effect | None:
    """The policies' effect on message `number` of `store` (None: no such message)."""
    dates = store.catalog.entry_dates(number)
    if dates is None:
        return None
    return effect(applying(store, number, policies), *dates)


@dataclass
class ProcessStats:
    examined: int = 0
    deleted: int = 0
    kept_by_hold: bool = False
    left: int = 0  # due but in a store that cannot be changed now

    def shown(self) -> dict[str, Any]:
        return {"examined": self.examined, "deleted": self.deleted, "left": self.left}


CHUNK = 200  # deletions in one batch (one fsync)


def process(archive: Archive, actor: str, log: Callable[[str], None],
            progress: Callable[[int], None], check_cancelled: Callable[[], None],
            now: float | None = None) -> ProcessStats:
    """Delete every message past its maximum whose deciding policy deletes automatically.
    Idempotent and resumable: each run looks at what is archived now; a run cut off leaves
    what it deleted deleted and the rest for the next."""
    now = time.time() if now is None else now
    stats = ProcessStats()
    compliance = Compliance(archive.master)
    compliance.require_no_hold("retention processing")
    policies = Retention(archive.master).policies()
    if not any(p.delete_automatically for p in policies):
        log("No enabled policy deletes automatically: nothing to do.")
        return stats
    recs = [r for r in archive.stores() if r.state != "disabled"]
    for i, rec in enumerate(recs):
        check_cancelled()
        store = archive.open_store(rec, write=rec.state != "writeProtected", check_state=False)
        matches = {p.name: set(store.catalog.iter_numbers(p.query))
                   for p in policies if p.query is not None}
        due: list[tuple[int, Policy]] = []
        for number, sent, archived in store.catalog.retention_rows():
            stats.examined += 1
            ap = [p for p in policies if p.query is None or number in matches[p.name]]
            if not ap:
                continue
            e = effect(ap, sent, archived)
            if e.deletes and e.maximum is not None and now >= e.maximum \
                    and (e.minimum is None or now >= e.minimum):
                assert e.maximum_by is not None
                due.append((number, e.maximum_by))
        if not due:
            progress(int(100 * (i + 1) / len(recs)))
            continue
        if rec.state == "writeProtected" or not store.writable:
            why = "write-protected" if rec.state == "writeProtected" else "busy"
            log(f"Store {rec.name}: {len(due)} messages are past their maximum retention but "
                f"the store is {why}: left for the next run.")
            stats.left += len(due)
            continue
        log(f"Store {rec.name}: {len(due)} messages past their maximum retention.")
        for start in range(0, len(due), CHUNK):
            check_cancelled()
            compliance.require_no_hold("retention processing")  # placed meanwhile
            chunk = due[start:start + CHUNK]
            hits = {n: store.catalog.entry(n) for n, _p in chunk}
            done = set(store.delete_messages([
                (n, f"retention policy {p.name!r}: maximum "
                    f"{Policy.period_text(p.maximum or {})} from the date it was "
                    f"{p.reference} has passed") for n, p in chunk]))
            with archive.master.tx():
                for n, p in chunk:
                    if n in done:
                        hit = hits[n]
                        archive.master.audit.write(
                            actor, "MessageDelete", id=f"{rec.id}:{n}", policy=p.name,
                            via="retention", folder=f"{hit.owner}/{hit.folder}" if hit else None)
            stats.deleted += len(done)
            progress(int(100 * (i + (start + len(chunk)) / len(due)) / len(recs)))
    log(f"{stats.examined} messages examined, {stats.deleted} deleted"
        + (f", {stats.left} left (stores that could not be changed)" if stats.left else "")
        + ". Their bytes leave the stores at the next compaction (CompactStore).")
    return stats


def first_kept(store: Store, policies: list[Policy], scoped_only: bool = False,
               within: Query | None = None, now: float | None = None
               ) -> tuple[int, int, Policy] | None:
    """(how many, one number, its policy) of the messages of `store` (those `within` finds)
    still under a minimum retention; None if none. `scoped_only`: count only minimums of
    policies with a scope (what moving a message can take it out of)."""
    now = time.time() if now is None else now
    keeping = [p for p in policies if p.minimum is not None
               and (p.query is not None or not scoped_only)]
    if not keeping:
        return None
    inside = set(store.catalog.iter_numbers(within)) if within is not None else None
    matches = {p.name: set(store.catalog.iter_numbers(p.query))
               for p in keeping if p.query is not None}
    count, first = 0, None
    for number, sent, archived in store.catalog.retention_rows():
        if inside is not None and number not in inside:
            continue
        for p in keeping:
            if p.query is not None and number not in matches[p.name]:
                continue
            until = p.until(p.minimum, sent, archived)
            if until is not None and now < until:
                count += 1
                first = first or (number, p)
                break
    return (count, first[0], first[1]) if first is not None else None
