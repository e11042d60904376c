"""Server settings (mailkeep extensions): what `mailkeep settings` and the console show and
change. A change takes effect when the server is next started (flags of `serve` override a
setting for that run)."""

from __future__ import annotations

from typing import Any

from mailkeep.core.admin.settings import DECLARED, Settings, declared
from mailkeep.core.admin.users import ROLES
from mailkeep.core.fields import Field
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function

KEY = Field("key", "string", description="The setting, e.g. api.enabled (GetSettings lists "
            f"them: {', '.join(sorted(DECLARED))}).")
SETTING_SHAPE = ('{"key": str, "value": any, "default": any, "set": bool, "type": str, '
                 '"description": str}')


@function("GetSettings", "mailkeep extension: every server setting with its value, its "
          "default, whether it is set (else the default applies), its type and what it does.",
          f"[{SETTING_SHAPE}]", changes=False, roles=ROLES)
def get_settings(call: Call) -> list[dict[str, Any]]:
    return Settings(call.master).all()


def _secret_value(args: dict[str, Any]) -> dict[str, Any]:
    """A secret setting's value is not for the audit log."""
    setting = DECLARED.get(str(args.get("key")))
    if setting is not None and setting.secret and "value" in args:
        return {**args, "value": setting.shown(args["value"])}
    return args


@function("SetSetting", "mailkeep extension: change a server setting (as an administrator "
          "types it: true/false, a number, text). It takes effect when the server is next "
          "started (the metrics.* settings at once). A secret setting's value is never shown "
          "again.", '{"key": str, "value": any}', KEY,
          Field("value", "string", description="The new value."), redact=_secret_value)
def set_setting(call: Call) -> dict[str, Any]:
    conf = Settings(call.master)
    key = call.arg("key")
    setting = declared(key)
    call.note(before=setting.shown(conf.get(key)))
    return {"key": key, "value": setting.shown(conf.set(key, call.arg("value")))}


@function("ResetSetting", "mailkeep extension: return a server setting to its default.",
          '{"key": str, "value": any}', KEY)
def reset_setting(call: Call) -> dict[str, Any]:
    conf = Settings(call.master)
    key = call.arg("key")
    setting = declared(key)
    call.note(before=setting.shown(conf.get(key)))
    conf.unset(key)
    return {"key": key, "value": setting.shown(conf.get(key))}
