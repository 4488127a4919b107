"""Cron's day-of-month / day-of-week rule as CronJob (robfig/cron v3) reads it: when both fields
restrict, a day matching either runs; a field counts as unrestricted only when one of its parts is
a bare `*` or `?` (or `*/1`): `*/2` restricts, as a list or range does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobchain.engine.schedules.cron import parse


def days(schedule: str, start: str, count: int) -> list[str]:
    parsed = parse(schedule)
    at: datetime | None = datetime.fromisoformat(start).replace(tzinfo=UTC)
    out = []
    for _ in range(count):
        assert at is not None
        at = parsed.next_after(at)
        assert at is not None
        out.append(at.strftime("%a %d"))
    return out


def test_a_stepped_star_in_day_of_month_restricts_so_odd_days_or_mondays_run() -> None:
    # December 2026 starts on a Tuesday; the 7th and the 14th are Mondays.
    assert days("0 0 */2 * MON", "2026-11-30T12:00:00", 8) == [
        "Tue 01", "Thu 03", "Sat 05", "Mon 07", "Wed 09", "Fri 11", "Sun 13", "Mon 14"]


@pytest.mark.parametrize(("schedule", "start", "expected"), [
    # */2 in day-of-week restricts too: the 15th, or Sun/Tue/Thu/Sat.
    ("0 0 15 * */2", "2026-12-13T12:00:00", ["Tue 15", "Thu 17", "Sat 19"]),
    # */1 is a star: only Mondays.
    ("0 0 */1 * MON", "2026-12-01T12:00:00", ["Mon 07", "Mon 14"]),
    # A list with a bare star in it is a star wherever the star stands.
    ("0 0 5,* * MON", "2026-12-01T12:00:00", ["Mon 07", "Mon 14"]),
    ("0 0 *,5 * MON", "2026-12-01T12:00:00", ["Mon 07", "Mon 14"]),
])
def test_which_day_fields_restrict(schedule: str, start: str, expected: list[str]) -> None:
    assert days(schedule, start, len(expected)) == expected


def test_a_stepped_day_of_week_ends_on_saturday_so_7_is_not_added_as_a_second_sunday() -> None:
    # robfig/cron's day-of-week runs 0-6: `1/3` is Mon and Thu, `1/6` is Mon only (1, 7 would add Sunday).
    assert days("0 0 * * 1/3", "2026-12-01T12:00:00", 3) == ["Thu 03", "Mon 07", "Thu 10"]
    assert days("0 0 * * 1/6", "2026-12-01T12:00:00", 2) == ["Mon 07", "Mon 14"]
