"""Time zone ids as the Administration API takes them: `$Local` (the server's own zone), IANA ids
(Europe/Berlin) and the common Windows ids the original product uses ("W. Europe Standard
Time"), all turned into a tzinfo that knows the zone's daylight saving rules.
"""

from __future__ import annotations

import os
import zoneinfo
from datetime import tzinfo
from pathlib import Path

from mailkeep.core.errors import InvalidArgument

LOCAL = "$Local"

# Windows time zone ids -> IANA (the "001" territory of CLDR's windowsZones.xml).
WINDOWS: dict[str, str] = {
    "Dateline Standard Time": "Etc/GMT+12",
    "UTC": "Etc/UTC",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Central Standard Time": "America/Chicago",
    "Central America Standard Time": "America/Guatemala",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina",
    "SA Pacific Standard Time": "America/Bogota",
    "Eastern Standard Time": "America/New_York",
    "Atlantic Standard Time": "America/Halifax",
    "Newfoundland Standard Time": "America/St_Johns",
    "Pacific SA Standard Time": "America/Santiago",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "GMT Standard Time": "Europe/London",
    "Morocco Standard Time": "Africa/Casablanca",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "Romance Standard Time": "Europe/Paris",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "GTB Standard Time": "Europe/Bucharest",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "Egypt Standard Time": "Africa/Cairo",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Israel Standard Time": "Asia/Jerusalem",
    "Turkey Standard Time": "Europe/Istanbul",
    "Russian Standard Time": "Europe/Moscow",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Arabian Standard Time": "Asia/Dubai",
    "Iran Standard Time": "Asia/Tehran",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Kolkata",
    "SE Asia Standard Time": "Asia/Bangkok",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Taipei Standard Time": "Asia/Taipei",
    "W. Australia Standard Time": "Australia/Perth",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "New Zealand Standard Time": "Pacific/Auckland",
}
_WINDOWS_LOWER = {name.lower(): name for name in WINDOWS}


def canonical(zone_id: str) -> str:
    """The id as it is stored and shown: Windows ids in their own spelling, others as given.
    Raises InvalidArgument for an unknown id (see zone())."""
    zone(zone_id)
    if zone_id.strip().lower() == LOCAL.lower():
        return LOCAL
    return _WINDOWS_LOWER.get(zone_id.strip().lower(), zone_id.strip())


def zone(zone_id: str) -> tzinfo:
    """The zone of `zone_id`: `$Local`, a Windows id (case-insensitive) or an IANA id."""
    text = zone_id.strip()
    if text.lower() == LOCAL.lower():
        return local_zone()
    windows = _WINDOWS_LOWER.get(text.lower())
    key = WINDOWS[windows] if windows is not None else text
    try:
        if key and not key.startswith(("/", ".")) and "\x00" not in key:
            return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    raise InvalidArgument(f"Unknown time zone '{zone_id}': use $Local (the server's zone), an "
                          "IANA id such as Europe/Berlin (GetTimeZones lists them) or a Windows "
                          "id such as W. Europe Standard Time.")


def local_zone() -> tzinfo:
    """The server's zone with its rules: $TZ, else /etc/localtime's link or contents, else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        try:
            return zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    link = Path("/etc/localtime")
    try:
        target = str(link.resolve())
        if "zoneinfo/" in target:
            return zoneinfo.ZoneInfo(target.split("zoneinfo/", 1)[1])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    try:
        with link.open("rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="localtime")
    except (ValueError, OSError):
        return zoneinfo.ZoneInfo("UTC")
