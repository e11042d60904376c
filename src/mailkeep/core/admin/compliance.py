"""The compliance configuration: one JSON object in the master database, read and written
whole (GetComplianceConfiguration / SetComplianceConfiguration), as the original's clients do:
they read it, change a key and write it back, so keys mailkeep does not know are kept as given.

What mailkeep knows of it:

    {"legalHold": {"enabled": bool, "reason": str|null, "setBy": str|null, "setAt": str|null},
     "archiveAccess": {"administrators": bool, "auditors": bool, "reason", "setBy", "setAt"},
     "auditing": {"off": [event, ...]}}

While `legalHold.enabled` is true no message can be deleted by anyone or anything:
DeleteMessage, CompactStore (it would drop the bytes of messages deleted before the hold),
MergeStore and DetachStore are refused, whatever the interface (the API, the console, a job,
the command line in-process), with the hold's reason in the error. Turning the hold on or off
needs a reason; setBy and setAt are the server's (what a client sends for them is ignored).
Every change of the configuration is audited (ComplianceChangeSettings), whoever makes it.

archiveAccess: whether administrators may read other users' messages (default: no; the
functions that manage folders and stores work regardless), and whether accounts with the
privilege `auditor` may search and read every archive (default: yes; they change nothing, and
each of their searches and reads is audited). Changing either needs a reason and, from an
account, that account's password again (`password`, checked and never kept).

auditing.off: events that need not be recorded, among SWITCHABLE; the changes of this
configuration, everything only an administrator can do, and every read by an auditor are
recorded whatever it says.
"""

from __future__ import annotations

import copy
import json
import time
import unicodedata
from collections.abc import Callable
from typing import Any

from mailkeep.core.errors import Conflict, Forbidden, InvalidArgument
from mailkeep.core.masterdb import MasterDB

REASON_MAX = 1000
MAX_DEPTH = 32  # of nested objects and arrays in the configuration


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deep `value` nests, counted no further than limit + 1 (no recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > limit:
                break
            todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item))
    return deepest
DEFAULT: dict[str, Any] = {
    "legalHold": {"enabled": False, "reason": None, "setBy": None, "setAt": None},
    "archiveAccess": {"administrators": False, "auditors": True, "reason": None,
                      "setBy": None, "setAt": None},
    "auditing": {"off": []},
}
# Events that may be switched off (auditing.off): reads and searches by users of the folders
# granted to them, exports, failed logins. What only administrators do is never among them.
SWITCHABLE = ("MessageRetrieveContent", "MessageSearch", "MessageExport", "login.failed")
Confirm = Callable[[str], bool]  # the caller's password -> right or not


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Compliance:
    def __init__(self, master: MasterDB) -> None:
        self.master = master

    def get(self) -> dict[str, Any]:
        text = self.master.compliance.get()
        stored: dict[str, Any] = json.loads(text) if text else {}
        out = copy.deepcopy(DEFAULT)
        for key, value in stored.items():
            if isinstance(out.get(key), dict) and isinstance(value, dict):
                out[key].update(value)
            else:
                out[key] = value
        return out

    def set(self, given: Any, actor: str, confirm: Confirm | None = None) -> dict[str, Any]:
        """Replace the configuration with `given` (the keys it has; a key left out keeps its
        value). Checked whole before anything is saved; audited. Returns the new one.
        `confirm`: checks the caller's password (None: the machine's command line, which
        has no account to confirm)."""
        if not isinstance(given, dict):
            raise InvalidArgument("The compliance configuration is a JSON object.")
        if _depth(given) > MAX_DEPTH:
            raise InvalidArgument(f"The compliance configuration nests more than {MAX_DEPTH} "
                                  "levels deep.")
        with self.master.tx():
            old = self.get()
            new = copy.deepcopy(old)
            for key, value in given.items():
                if key not in DEFAULT:
                    new[key] = value  # not mailkeep's: kept as the client wrote it
            if "legalHold" in given:
                new["legalHold"] = self._hold(given["legalHold"], old["legalHold"], actor)
            if "archiveAccess" in given:
                new["archiveAccess"] = self._access(given["archiveAccess"],
                                                    old["archiveAccess"], actor, confirm)
            if "auditing" in given:
                new["auditing"] = self._auditing(given["auditing"])
            text = json.dumps(new, sort_keys=True)
            if len(text) > 1_000_000:
                raise InvalidArgument("The compliance configuration is larger than 1 MB.")
            self.master.compliance.put(text)
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            self.master.audit.write(
                actor, "ComplianceChangeSettings", changed=changed,
                legalHold=new["legalHold"]["enabled"],
                reason=new["legalHold"]["reason"] if "legalHold" in changed else None,
                archiveAccess={k: new["archiveAccess"][k]
                               for k in ("administrators", "auditors", "reason")}
                if "archiveAccess" in changed else None,
                auditingOff=new["auditing"]["off"] if "auditing" in changed else None)
        return new

    @staticmethod
    def _hold(value: Any, old: dict[str, Any], actor: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InvalidArgument("legalHold is a JSON object: {\"enabled\": true|false, "
                                  "\"reason\": \"...\"}.")
        enabled = value.get("enabled", old["enabled"])
        if not isinstance(enabled, bool):
            raise InvalidArgument("legalHold.enabled is true or false.")
        if enabled == old["enabled"]:
            return dict(old)  # unchanged (who set it, when and why stay)
        reason = value.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidArgument(f"A reason is required to turn the legal hold "
                                  f"{'on' if enabled else 'off'} (it is kept and audited).")
        if len(reason) > REASON_MAX or any(
                unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in reason):
            raise InvalidArgument(f"The reason is one line of at most {REASON_MAX} "
                                  "characters, without control or direction characters.")
        return {"enabled": enabled, "reason": reason.strip(), "setBy": actor,
                "setAt": _utc(time.time())}

    @staticmethod
    def _reason(value: Any, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidArgument(f"A reason is required to {what} (it is kept and audited).")
        if len(value) > REASON_MAX or any(
                unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in value):
            raise InvalidArgument(f"The reason is one line of at most {REASON_MAX} "
                                  "characters, without control or direction characters.")
        return value.strip()

    def _access(self, value: Any, old: dict[str, Any], actor: str,
                confirm: Confirm | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InvalidArgument('archiveAccess is a JSON object: {"administrators": '
                                  'true|false, "auditors": true|false, "reason": "...", '
                                  '"password": "..."}.')
        wanted = {k: value.get(k, old[k]) for k in ("administrators", "auditors")}
        if not all(isinstance(v, bool) for v in wanted.values()):
            raise InvalidArgument("archiveAccess.administrators and .auditors are true or "
                                  "false.")
        if all(wanted[k] == old[k] for k in wanted):
            return dict(old)
        reason = self._reason(value.get("reason"), "change who may read other users' mail")
        if confirm is not None:
            password = value.get("password")
            if not isinstance(password, str) or not password or not confirm(password):
                raise Forbidden("Changing archiveAccess needs your password again "
                                "(archiveAccess.password), and it was not right.")
        return {**wanted, "reason": reason, "setBy": actor, "setAt": _utc(time.time())}

    @staticmethod
    def _auditing(value: Any) -> dict[str, Any]:
        off = value.get("off", []) if isinstance(value, dict) else None
        if not isinstance(off, list) or not all(isinstance(e, str) for e in off):
            raise InvalidArgument('auditing is {"off": [event, ...]}.')
        unknown = sorted(set(off) - set(SWITCHABLE))
        if unknown:
            raise InvalidArgument(f"auditing.off: {', '.join(unknown)[:200]} cannot be "
                                  f"switched off; only {', '.join(SWITCHABLE)} can.")
        return {"off": sorted(set(off))}

    def records(self, event: str) -> bool:
        """Whether `event` is to be recorded (auditing.off)."""
        return event not in SWITCHABLE or event not in self.get()["auditing"]["off"]

    def audit(self, actor: str, event: str, /, **details: Any) -> None:
        """Record a switchable event, unless auditing.off says not to."""
        if self.records(event):
            self.master.audit.write(actor, event, **details)

    def require_no_hold(self, what: str) -> None:
        """Refuse `what` (a deletion) while the archive is under legal hold."""
        hold = self.get()["legalHold"]
        if hold["enabled"]:
            raise Conflict(f"The archive is under legal hold (set by {hold['setBy']} at "
                           f"{hold['setAt']}: {hold['reason']}): {what} is refused until the "
                           "hold is lifted (SetComplianceConfiguration).")
