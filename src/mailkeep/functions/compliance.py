"""The compliance configuration (core/admin/compliance.py): legal hold, and the keys of the
original's configuration that mailkeep keeps without acting on them."""

from __future__ import annotations

from typing import Any

from mailkeep.core.admin.compliance import Compliance
from mailkeep.core.admin.users import ROLES
from mailkeep.core.fields import Field
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function

SHAPE = ('{"legalHold": {"enabled": bool, "reason": str|null, "setBy": str|null, "setAt": '
         'str|null}, ...other keys as they were written}')


@function("GetComplianceConfiguration", "The compliance configuration, one JSON object. "
          "legalHold: while enabled, no message can be deleted by anyone or anything "
          "(DeleteMessage, CompactStore, MergeStore and DetachStore are refused, through every "
          "interface); reason, setBy and setAt say why, who and when (UTC). Keys mailkeep does "
          "not know are kept as they were written.", SHAPE, changes=False, roles=ROLES)
def get_compliance_configuration(call: Call) -> dict[str, Any]:
    return Compliance(call.master).get()


@function("SetComplianceConfiguration", "Write the compliance configuration (a JSON object, "
          "as GetComplianceConfiguration answers it: keys left out keep their values, keys "
          "mailkeep does not know are kept as given). Turning legalHold.enabled on or off needs "
          "legalHold.reason; setBy and setAt are set by the server. The whole object is "
          "checked before anything is saved; every change is audited as "
          "ComplianceChangeSettings. Answers the new configuration.", SHAPE,
          Field("config", "json", description='E.g. {"legalHold": {"enabled": true, '
                '"reason": "Litigation 2026-17"}}.'))
def set_compliance_configuration(call: Call) -> dict[str, Any]:
    return Compliance(call.master).set(call.arg("config"), call.caller.actor)
