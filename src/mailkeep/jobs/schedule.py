"""Job schedules, pure: parsing the arguments of CreateJob/SetJobSchedule and computing the next
run. No database, no clock: the caller passes the instant after which the next run is wanted.

Rules (docs/jobs.md says the same for users):
- nothing given: manual (runs only on RunJobAsync);
- `date` (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, the time may come from `time` instead): once;
- `interval` N (minutes, one of INTERVALS): every N minutes on the wall clock of the zone,
  counted from its midnight (15: :00 :15 :30 :45);
- `time` alone: daily; with `dayOfWeek` (one day or a comma-separated list): weekly; with
  `dayOfMonth` ("1".."31" or "Last"): monthly, a day past the month's end meaning its last day.
Any other combination is refused. Wall-clock times that do not exist (the hour skipped when
daylight saving time begins) run at the first valid instant after the gap; times that occur
twice (the hour repeated when it ends) run once, at the first occurrence, except for intervals,
which run at every slot of elapsed time (both occurrences).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from mailkeep.core.admin.zones import zone
from mailkeep.core.errors import InvalidArgument
from mailkeep.core.masterdb.jobs import Schedule

__all__ = ["Schedule"]  # the stored form, core.masterdb.jobs's

INTERVALS = (5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720)
DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
TYPES = ("once", "interval", "daily", "weekly", "monthly", "manual")
_PYTHON_WEEKDAY = {name: (i - 1) % 7 for i, name in enumerate(DAYS)}  # Monday = 0

_TIME_RE = re.compile(r"(\d\d):(\d\d)(?::(\d\d))?")
_DATE_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:T(\d\d:\d\d(?::\d\d)?))?")


MANUAL = Schedule("manual")


def parse_time(text: str, what: str = "time") -> time:
    m = _TIME_RE.fullmatch(text.strip())
    if m is None:
        raise InvalidArgument(f"Invalid {what} '{text}': use HH:MM or HH:MM:SS (24 hours).")
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise InvalidArgument(f"Invalid {what} '{text}': use HH:MM or HH:MM:SS (24 hours).")
    return time(hour, minute, second)


def parse_local(text: str, what: str = "date") -> datetime:
    """YYYY-MM-DD (midnight) or YYYY-MM-DDTHH:MM:SS, a wall-clock time without zone."""
    raw = text.strip()
    m = _DATE_RE.fullmatch(raw)
    if m is None:
        hint = (" without a zone suffix (the time zone is timeZoneId)"
                if re.match(r"\d{4}-\d\d-\d\dT[\d:]+(Z|[+-]\d)", raw) else "")
        raise InvalidArgument(f"Invalid {what} '{text}': use YYYY-MM-DD or "
                              f"YYYY-MM-DDTHH:MM:SS{hint}.")
    if not 1900 <= int(m.group(1)) <= 9000:  # any zone's offset must stay inside datetime's
        raise InvalidArgument(f"Invalid {what} '{text}': the year must be from 1900 to 9000.")
    try:
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise InvalidArgument(f"Invalid {what} '{text}': no such day.") from None
    clock = parse_time(m.group(4), what) if m.group(4) else time(0)
    return datetime.combine(day, clock)


def _days(text: str) -> str:
    lower = {d.lower(): d for d in DAYS}
    chosen: set[str] = set()
    for item in text.split(","):
        name = lower.get(item.strip().lower())
        if name is None:
            raise InvalidArgument(f"Invalid dayOfWeek '{item.strip()}': use "
                                  f"{', '.join(DAYS)}, or several separated by commas.")
        chosen.add(name)
    return ",".join(d for d in DAYS if d in chosen)


def _day_of_month(text: str) -> str:
    raw = text.strip()
    if raw.lower() == "last":
        return "Last"
    if raw.isdigit() and 1 <= int(raw) <= 31:
        return str(int(raw))
    raise InvalidArgument(f"Invalid dayOfMonth '{text}': use 1 to 31 or Last.")


def parse(date_arg: str | None = None, interval: float | None = None, time_arg: str | None = None,
          day_of_week: str | None = None, day_of_month: str | None = None) -> Schedule:
    """The schedule of these arguments (None or blank: not given), or InvalidArgument."""
    def given(value: str | None) -> str | None:
        return value if value is not None and value.strip() else None

    date_arg, time_arg = given(date_arg), given(time_arg)
    day_of_week, day_of_month = given(day_of_week), given(day_of_month)
    if date_arg is not None:
        extra = [n for n, v in (("interval", interval), ("dayOfWeek", day_of_week),
                                ("dayOfMonth", day_of_month)) if v is not None]
        if extra:
            raise InvalidArgument(f"A schedule with date runs once: it cannot also have "
                                  f"{' or '.join(extra)}.")
        at = parse_local(date_arg)
        if "T" in date_arg and time_arg is not None:
            raise InvalidArgument("Give the time of a run once either in date "
                                  "(YYYY-MM-DDTHH:MM:SS) or in time, not in both.")
        if time_arg is not None:
            at = datetime.combine(at.date(), parse_time(time_arg))
        return Schedule("once", date=at.date().isoformat(), time=at.time().isoformat())
    if interval is not None:
        extra = [n for n, v in (("time", time_arg), ("dayOfWeek", day_of_week),
                                ("dayOfMonth", day_of_month)) if v is not None]
        if extra:
            raise InvalidArgument(f"A schedule with interval runs every N minutes from "
                                  f"midnight: it cannot also have {' or '.join(extra)}.")
        if float(interval) not in INTERVALS:
            raise InvalidArgument(f"Invalid interval {interval}: use one of "
                                  f"{', '.join(map(str, INTERVALS))} (minutes).")
        return Schedule("interval", interval=int(interval))
    if time_arg is None:
        if day_of_week is not None or day_of_month is not None:
            raise InvalidArgument("A weekly or monthly schedule needs time (HH:MM).")
        return MANUAL
    clock = parse_time(time_arg).isoformat()
    if day_of_week is not None and day_of_month is not None:
        raise InvalidArgument("Give dayOfWeek (weekly) or dayOfMonth (monthly), not both.")
    if day_of_week is not None:
        return Schedule("weekly", time=clock, day_of_week=_days(day_of_week))
    if day_of_month is not None:
        return Schedule("monthly", time=clock, day_of_month=_day_of_month(day_of_month))
    return Schedule("daily", time=clock)


# -- wall clock to instants -----------------------------------------------------------------

def _utc(local: datetime, tz: tzinfo, fold: int) -> datetime:
    return local.replace(tzinfo=tz, fold=fold).astimezone(UTC)


def _exists(local: datetime, tz: tzinfo) -> bool:
    return _utc(local, tz, 0).astimezone(tz).replace(tzinfo=None) == local


def instants(local: datetime, tz: tzinfo, both: bool = False) -> list[datetime]:
    """The UTC instants of a wall-clock time: one; for a time that does not exist, the first
    valid instant after the gap; for one that occurs twice, the first (both: both)."""
    first, second = _utc(local, tz, 0), _utc(local, tz, 1)
    if first == second:
        return [first]
    if _exists(local, tz):  # repeated: fold 0 is the earlier instant
        return sorted({first, second}) if both else [min(first, second)]
    # In a gap: the transition lies between the two readings; find it to the second.
    lo, hi = min(first, second), max(first, second)
    offset = lo.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return [hi.replace(microsecond=0)]


def to_utc(local: datetime, tz: tzinfo) -> datetime:
    """A wall-clock time as one UTC instant (the rules of instants())."""
    return instants(local, tz)[0]


def _day_in_month(year: int, month: int, day_of_month: str) -> int:
    last = calendar.monthrange(year, month)[1]
    return last if day_of_month == "Last" else min(int(day_of_month), last)


def next_run(schedule: Schedule, tz: tzinfo, after: datetime) -> datetime | None:
    """The first run strictly after `after` (an aware datetime) as a UTC datetime; None when
    there is none (manual, or a run once that lies in the past)."""
    after = after.astimezone(UTC)
    today = after.astimezone(tz).date()
    if schedule.type == "manual":
        return None
    if schedule.type == "once":
        assert schedule.date is not None and schedule.time is not None
        at = to_utc(datetime.combine(date.fromisoformat(schedule.date),
                                     time.fromisoformat(schedule.time)), tz)
        return at if at > after else None
    if schedule.type == "monthly":
        assert schedule.time is not None and schedule.day_of_month is not None
        clock = time.fromisoformat(schedule.time)
        year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
        for _ in range(15):
            day = date(year, month, _day_in_month(year, month, schedule.day_of_month))
            at = to_utc(datetime.combine(day, clock), tz)
            if at > after:
                return at
            year, month = (year, month + 1) if month < 12 else (year + 1, 1)
        return None
    for offset in range(-1, 9):  # interval, daily, weekly: day by day
        day = today + timedelta(days=offset)
        found = [at for at in _day_runs(schedule, tz, day) if at > after]
        if found:
            return min(found)
    return None


def _day_runs(schedule: Schedule, tz: tzinfo, day: date) -> list[datetime]:
    midnight = datetime.combine(day, time(0))
    if schedule.type == "interval":
        assert schedule.interval is not None
        out: list[datetime] = []
        for minute in range(0, 24 * 60, schedule.interval):
            out += instants(midnight + timedelta(minutes=minute), tz, both=True)
        return out
    assert schedule.time is not None
    if schedule.type == "weekly":
        assert schedule.day_of_week is not None
        wanted = {_PYTHON_WEEKDAY[d] for d in schedule.day_of_week.split(",")}
        if day.weekday() not in wanted:
            return []
    return [to_utc(datetime.combine(day, time.fromisoformat(schedule.time)), tz)]


def compute_next(schedule: Schedule, tz_id: str, now: float) -> float | None:
    """The next run after `now` (epoch seconds) in a zone given by its id, as epoch seconds;
    None when there is none."""
    at = next_run(schedule, zone(tz_id), datetime.fromtimestamp(now, UTC))
    return at.timestamp() if at is not None else None


def shown_time(epoch: float | None, tz_id: str) -> str | None:
    """An instant as ISO 8601 in a zone, with its offset: 2026-01-31T02:00:00+01:00."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, zone(tz_id)).isoformat(timespec="seconds")
