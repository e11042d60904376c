"""Schedules without database or clock: parsing, conflicts, next runs in real zones (DST)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

import pytest

from mailkeep.core.admin.zones import LOCAL, canonical, zone
from mailkeep.core.errors import InvalidArgument
from mailkeep.jobs.schedule import MANUAL, Schedule, next_run, parse, parse_local, to_utc

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(at: datetime | None, tz: tzinfo) -> str | None:
    return None if at is None else at.astimezone(tz).isoformat()


def runs(schedule: Schedule, tz: tzinfo, after: datetime, count: int) -> list[str]:
    out: list[str] = []
    for _ in range(count):
        nxt = next_run(schedule, tz, after)
        assert nxt is not None and nxt > after
        out.append(nxt.astimezone(tz).isoformat())
        after = nxt
    return out


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# -- parsing --------------------------------------------------------------------------------

def test_types_and_normal_forms() -> None:
    assert parse() == MANUAL
    assert parse(date_arg="2026-05-01") == Schedule("once", date="2026-05-01", time="00:00:00")
    assert parse(date_arg="2026-05-01T13:45:10").time == "13:45:10"
    assert parse(date_arg="2026-05-01", time_arg="07:05").time == "07:05:00"
    assert parse(interval=15.0) == Schedule("interval", interval=15)
    assert parse(time_arg="02:00") == Schedule("daily", time="02:00:00")
    weekly = parse(time_arg="23:59:59", day_of_week="friday, Monday,Friday")
    assert weekly == Schedule("weekly", time="23:59:59", day_of_week="Monday,Friday")
    assert parse(time_arg="01:00", day_of_month="last").day_of_month == "Last"
    assert parse(time_arg="01:00", day_of_month="07").day_of_month == "7"
    # blank means not given (the API's empty optional argument)
    assert parse(date_arg=" ", time_arg="", day_of_week="") == MANUAL


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"date_arg": "2026-05-01", "interval": 15}, "cannot also have interval"),
    ({"date_arg": "2026-05-01", "day_of_week": "Monday"}, "cannot also have dayOfWeek"),
    ({"date_arg": "2026-05-01T10:00:00", "time_arg": "11:00"}, "not in both"),
    ({"interval": 15, "time_arg": "10:00"}, "cannot also have time"),
    ({"interval": 7}, "Invalid interval 7"),
    ({"interval": 15.5}, "Invalid interval"),
    ({"day_of_week": "Monday"}, "needs time"),
    ({"day_of_month": "3"}, "needs time"),
    ({"time_arg": "10:00", "day_of_week": "Monday", "day_of_month": "3"}, "not both"),
    ({"time_arg": "24:00"}, "Invalid time"),
    ({"time_arg": "10h"}, "Invalid time"),
    ({"time_arg": "10:00", "day_of_week": "Mon"}, "Invalid dayOfWeek 'Mon'"),
    ({"time_arg": "10:00", "day_of_month": "32"}, "Invalid dayOfMonth"),
    ({"time_arg": "10:00", "day_of_month": "0"}, "Invalid dayOfMonth"),
    ({"date_arg": "2026-02-30"}, "no such day"),
    ({"date_arg": "2026-05-01T10:00:00Z"}, "without a zone suffix"),
    ({"date_arg": "2026-05-01T10:00:00+02:00"}, "without a zone suffix"),
    ({"date_arg": "01.05.2026"}, "Invalid date"),
])
def test_conflicts_and_bad_values_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse(**kwargs)  # type: ignore[arg-type]


def test_zones() -> None:
    assert zone("W. Europe Standard Time") == BERLIN
    assert zone("pacific standard time") == ZoneInfo("America/Los_Angeles")
    assert zone("Tokyo Standard Time") == ZoneInfo("Asia/Tokyo")
    assert zone("UTC") is not None and zone("Europe/Berlin") == BERLIN
    assert canonical("gmt standard time") == "GMT Standard Time"
    assert canonical("$local") == LOCAL
    local_now = datetime(2026, 7, 1, tzinfo=UTC).astimezone(zone(LOCAL))
    assert local_now.utcoffset() is not None
    for bad in ("Mars/Olympus", "../etc/passwd", "/etc/localtime", "", "W. Europe Time"):
        with pytest.raises(InvalidArgument, match="Unknown time zone"):
            zone(bad)


# -- next runs ------------------------------------------------------------------------------

def test_once() -> None:
    s = parse(date_arg="2026-05-01T10:00:00")
    assert local(next_run(s, BERLIN, utc(2026, 4, 1)), BERLIN) == "2026-05-01T10:00:00+02:00"
    assert next_run(s, BERLIN, utc(2026, 5, 1, 8)) is None  # exactly then: not after
    assert next_run(MANUAL, BERLIN, utc(2026, 5, 1)) is None


def test_interval_is_aligned_to_the_zones_midnight() -> None:
    s = parse(interval=15)
    assert runs(s, BERLIN, utc(2026, 1, 15, 9, 7, 13), 4) == [
        "2026-01-15T10:15:00+01:00", "2026-01-15T10:30:00+01:00",
        "2026-01-15T10:45:00+01:00", "2026-01-15T11:00:00+01:00"]
    # India is UTC+05:30: 180 minutes from its midnight, not from UTC's
    kolkata = ZoneInfo("Asia/Kolkata")
    assert runs(parse(interval=180), kolkata, utc(2026, 1, 15, 0, 0), 2) == [
        "2026-01-15T06:00:00+05:30", "2026-01-15T09:00:00+05:30"]
    # crossing midnight
    assert runs(parse(interval=720), BERLIN, utc(2026, 1, 15, 12), 2) == [
        "2026-01-16T00:00:00+01:00", "2026-01-16T12:00:00+01:00"]


def test_interval_over_dst_changes() -> None:
    s = parse(interval=30)
    # spring forward in Berlin, 2026-03-29 02:00 -> 03:00: the slots of the gap collapse
    assert runs(s, BERLIN, utc(2026, 3, 29, 0, 15), 3) == [
        "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]
    # fall back, 2026-10-25 03:00 -> 02:00: every 30 minutes of elapsed time, both 02:30s
    assert runs(s, BERLIN, utc(2026, 10, 24, 23, 45), 5) == [
        "2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"]


def test_daily_over_dst_changes() -> None:
    s = parse(time_arg="02:30")
    # spring forward: 02:30 does not exist; once, at the first valid instant after the gap
    assert runs(s, BERLIN, utc(2026, 3, 28, 12), 3) == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]
    # fall back: 02:30 occurs twice; once, the first
    assert runs(s, BERLIN, utc(2026, 10, 24, 12), 2) == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    # New York springs forward at 02:00 too, on another day
    assert runs(s, NEW_YORK, utc(2026, 3, 7, 12), 2) == [
        "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]


def test_weekly_with_a_list_of_days() -> None:
    s = parse(time_arg="06:00", day_of_week="Friday,Monday,Wednesday")
    # 2026-01-15 is a Thursday
    assert runs(s, BERLIN, utc(2026, 1, 15, 12), 5) == [
        "2026-01-16T06:00:00+01:00", "2026-01-19T06:00:00+01:00", "2026-01-21T06:00:00+01:00",
        "2026-01-23T06:00:00+01:00", "2026-01-26T06:00:00+01:00"]
    sunday = parse(time_arg="00:00", day_of_week="Sunday")
    assert runs(sunday, BERLIN, utc(2026, 1, 18, 0, 0), 1) == ["2026-01-25T00:00:00+01:00"]


def test_monthly_last_and_short_months() -> None:
    last = parse(time_arg="23:00", day_of_month="Last")
    assert runs(last, BERLIN, utc(2026, 1, 15), 4) == [
        "2026-01-31T23:00:00+01:00", "2026-02-28T23:00:00+01:00", "2026-03-31T23:00:00+02:00",
        "2026-04-30T23:00:00+02:00"]
    leap = runs(last, BERLIN, utc(2028, 2, 1), 1)
    assert leap == ["2028-02-29T23:00:00+01:00"]
    thirty_first = parse(time_arg="08:00", day_of_month="31")
    assert runs(thirty_first, BERLIN, utc(2026, 1, 31, 8), 4) == [
        "2026-02-28T08:00:00+01:00", "2026-03-31T08:00:00+02:00", "2026-04-30T08:00:00+02:00",
        "2026-05-31T08:00:00+02:00"]
    first = parse(time_arg="00:30", day_of_month="1")
    assert runs(first, BERLIN, utc(2026, 12, 15), 2) == [
        "2027-01-01T00:30:00+01:00", "2027-02-01T00:30:00+01:00"]


def test_wall_clock_to_utc() -> None:
    assert to_utc(parse_local("2026-03-29T02:30:00"), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert to_utc(parse_local("2026-10-25T02:30:00"), BERLIN) == utc(2026, 10, 25, 0, 30)
    assert to_utc(parse_local("2026-01-31"), BERLIN) == utc(2026, 1, 30, 23, 0)
