"""The compliance configuration (core/admin/compliance.py): legal hold, and the keys of the
original's configuration that mailkeep keeps without acting on them."""

from __future__ import annotations

import re
from typing import Any

from mailkeep.core.admin.compliance import SWITCHABLE, Compliance
from mailkeep.core.admin.users import ROLES, Users
from mailkeep.core.fields import Field
from mailkeep.functions.call import Call
from mailkeep.functions.invoke import SYSTEM_VIAS
from mailkeep.functions.registry import function

SHAPE = ('{"legalHold": {"enabled": bool, "reason": str|null, "setBy": str|null, "setAt": '
         'str|null}, "archiveAccess": {"administrators": bool, "auditors": bool, "reason": '
         'str|null, "setBy": str|null, "setAt": str|null}, "auditing": {"off": [str]}, '
         '...other keys as they were written}')


SECRET_KEY = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def _masked(config: Any, depth: int = 0) -> Any:
    """The configuration as the audit log keeps it: the value of any key that names a
    password, a secret, a token or a key masked, wherever it is (archiveAccess.password is
    the one mailkeep takes; a client may put one anywhere)."""
    if depth > 40:
        return "***"
    if isinstance(config, dict):
        return {k: ("***" if SECRET_KEY.search(str(k)) and v else _masked(v, depth + 1))
                for k, v in config.items()}
    if isinstance(config, list):
        return [_masked(v, depth + 1) for v in config]
    return config


@function("GetComplianceConfiguration", "The compliance configuration, one JSON object. "
          "legalHold: while enabled, no message can be deleted by anyone or anything "
          "(DeleteMessage, CompactStore, MergeStore and DetachStore are refused, through every "
          "interface); reason, setBy and setAt say why, who and when (UTC). archiveAccess: "
          "whether administrators may read other users' messages (default false) and whether "
          "accounts with the privilege auditor may search and read every archive (default "
          "true; each of their reads is audited). auditing.off: the events not recorded, "
          f"among {', '.join(SWITCHABLE)}. Keys mailkeep does not know are kept as they were "
          "written.", SHAPE, changes=False, roles=ROLES)
def get_compliance_configuration(call: Call) -> dict[str, Any]:
    return Compliance(call.master).get()


@function("SetComplianceConfiguration", "Write the compliance configuration (a JSON object, "
          "as GetComplianceConfiguration answers it: keys left out keep their values, keys "
          "mailkeep does not know are kept as given). Turning legalHold.enabled on or off needs "
          "legalHold.reason; changing archiveAccess needs archiveAccess.reason and, from an "
          "account, archiveAccess.password (the caller's, checked and never kept); setBy and "
          "setAt are set by the server. The whole object is "
          "checked before anything is saved; every change is audited as "
          "ComplianceChangeSettings. Answers the new configuration.", SHAPE,
          Field("config", "json", description='E.g. {"legalHold": {"enabled": true, '
                '"reason": "Litigation 2026-17"}}.', mask=_masked))
def set_compliance_configuration(call: Call) -> dict[str, Any]:
    confirm = None
    if call.caller.via not in SYSTEM_VIAS:
        users = Users(call.master, hasher=call.services.hasher)
        confirm = lambda password: users.verify_password(call.user, password)  # noqa: E731
    return Compliance(call.master).set(call.arg("config"), call.caller.actor, confirm)
