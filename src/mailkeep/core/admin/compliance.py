"""The compliance configuration: one JSON object in the master database, read and written
whole (GetComplianceConfiguration / SetComplianceConfiguration), as the original's clients do:
they read it, change a key and write it back, so keys mailkeep does not know are kept as given.

What mailkeep knows of it:

    {"legalHold": {"enabled": bool, "reason": str|null, "setBy": str|null, "setAt": str|null}}

While `legalHold.enabled` is true no message can be deleted by anyone or anything:
DeleteMessage, CompactStore (it would drop the bytes of messages deleted before the hold),
MergeStore and DetachStore are refused, whatever the interface (the API, the console, a job,
the command line in-process), with the hold's reason in the error. Turning the hold on or off
needs a reason; setBy and setAt are the server's (what a client sends for them is ignored).
Every change of the configuration is audited (ComplianceChangeSettings), whoever makes it.
"""

from __future__ import annotations

import copy
import json
import time
import unicodedata
from typing import Any

from mailkeep.core.errors import Conflict, InvalidArgument
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
}


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

    def set(self, given: Any, actor: str) -> dict[str, Any]:
        """Replace the configuration with `given` (the keys it has; a key left out keeps its
        value). Checked whole before anything is saved; audited. Returns the new one."""
        if not isinstance(given, dict):
            raise InvalidArgument("The compliance configuration is a JSON object.")
        if _depth(given) > MAX_DEPTH:
            raise InvalidArgument(f"The compliance configuration nests more than {MAX_DEPTH} "
                                  "levels deep.")
        with self.master.tx():
            old = self.get()
            new = copy.deepcopy(old)
            for key, value in given.items():
                if key != "legalHold":
                    new[key] = value  # not mailkeep's: kept as the client wrote it
            if "legalHold" in given:
                new["legalHold"] = self._hold(given["legalHold"], old["legalHold"], actor)
            text = json.dumps(new, sort_keys=True)
            if len(text) > 1_000_000:
                raise InvalidArgument("The compliance configuration is larger than 1 MB.")
            self.master.compliance.put(text)
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            self.master.audit.write(actor, "ComplianceChangeSettings", changed=changed,
                                    legalHold=new["legalHold"]["enabled"],
                                    reason=new["legalHold"]["reason"]
                                    if "legalHold" in changed else None)
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

    def require_no_hold(self, what: str) -> None:
        """Refuse `what` (a deletion) while the archive is under legal hold."""
        hold = self.get()["legalHold"]
        if hold["enabled"]:
            raise Conflict(f"The archive is under legal hold (set by {hold['setBy']} at "
                           f"{hold['setAt']}: {hold['reason']}): {what} is refused until the "
                           "hold is lifted (SetComplianceConfiguration).")
