"""engine/schedules/cron.py against croniter (a test-only reference) over seeded random expressions,
windows and time zones, half of the windows on a daylight-saving change.

Every time either side names in a window must be named by the other, except where CronJob's
syntax or the documented daylight-saving rule (docs/schedules.md) says otherwise; each of those
has its own test below:
- `*/1` in a day field is a star for CronJob (robfig/cron v3 drops the star bit only for a step
  over 1), a restriction for croniter: croniter is asked the same field as `*`.
- A day field that names every day without a bare `*` (`0-6`, `1-31`) is a restriction that
  every day meets for CronJob, so every day runs; croniter reads some such fields as `*` (and then
  needs the other day field too): croniter is asked `* *` for the two day fields.
- A range of one value (`5-5`, `5-5/2`) is that value for CronJob; croniter 7 reads it as `*`: the
  generator never writes one.
- Clocks going back: croniter runs a wall time in the repeated hour twice, jobchain once, at its
  first occurrence.
- Clocks going forward: jobchain runs a wall time in the skipped hour at the first instant after
  the jump; croniter does for some expressions and not others (`21 * * * *` skips it).
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from croniter import CroniterBadDateError, croniter

from jobchain.engine.schedules.cron import Schedule, ScheduleError, parse

SEED = int(os.environ.get("JOBCHAIN_CRON_SEED", "20261207"))
EXPRESSIONS = 10_000
TIMES = 3  # times asked of croniter per window; the window ends at the last of them
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo",
         "Pacific/Chatham", "Asia/Kolkata", "America/Santiago", "Europe/London", "Asia/Tehran", "America/Havana",
         "Pacific/Apia"]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _part(rng: random.Random, low: int, high: int, names: list[str], star: str) -> str:
    def value() -> str:
        number = rng.randint(low, high)
        if names and rng.random() < 0.3:
            name = names[number - low]
            return name.upper() if rng.random() < 0.5 else name
        return str(number)

    kind = rng.random()
    if kind < 0.25:
        return star
    if kind < 0.4:
        return f"*/{rng.randint(1, high - low + 1)}"
    if kind < 0.6:
        return value()
    first = rng.randint(low, high - 1)
    last = rng.randint(first + 1, high)  # never a-a: croniter 7 reads it as *
    if kind < 0.8:
        return f"{first}-{last}"
    if kind < 0.9:
        return f"{first}-{last}/{rng.randint(1, last - first + 1)}"
    return f"{first}/{rng.randint(1, high - low + 1)}"


def _field(rng: random.Random, low: int, high: int, names: list[str] | None = None, star: str = "*") -> str:
    count = 1 if rng.random() < 0.7 else rng.randint(2, 3)
    return ",".join(_part(rng, low, high, names or [], star) for _ in range(count))


def expression(rng: random.Random) -> str:
    day_star = "?" if rng.random() < 0.1 else "*"
    return " ".join([_field(rng, 0, 59), _field(rng, 0, 23), _field(rng, 1, 31, star=day_star),
                     _field(rng, 1, 12, MONTHS), _field(rng, 0, 6, DAYS, star=day_star)])


def as_croniter_reads_cronjob(text: str) -> str:
    """The same schedule in croniter's reading (see the module doc): `*/1` and `?` in a day field are
    `*`; a day field that names every day without a bare `*` (`0-6`, `1-31`, `*/2,1-31`) makes
    every day match for CronJob (restricted, so either field matching runs the day), which croniter
    says with both day fields `*`."""
    fields = text.split()
    for i in (2, 4):
        fields[i] = ",".join("*" if p in ("*/1", "?") else p for p in fields[i].split(","))
    values = croniter.expand(" ".join(fields))[0]
    for i, every in ((2, set(range(1, 32))), (4, set(range(7)))):
        starred = "*" in fields[i].split(",")
        if not starred and (values[i] == ["*"] or set(values[i]) == every):
            fields[2] = fields[4] = "*"
    return " ".join(fields)


@cache
def transitions(zone: str, year: int) -> tuple[datetime, ...]:
    """The instants in `year` at which `zone`'s UTC offset changes (to the minute)."""
    tz = ZoneInfo(zone)
    out = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        nxt = day + timedelta(days=1)
        if day.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            low, high = day, nxt
            while high - low > timedelta(minutes=1):
                mid = (low + (high - low) / 2).replace(second=0, microsecond=0)
                if mid.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = mid
                else:
                    high = mid
            out.append(high)
        day = nxt
    return tuple(out)


def second_occurrence(at: datetime) -> bool:
    """A zone-aware time that is the later of two instants with the same wall time (clocks went back)."""
    return at.fold == 1 and at.replace(fold=0).utcoffset() != at.utcoffset()


def gap_stand_in(schedule: Schedule, at: datetime) -> bool:
    """One of jobchain's times standing for wall times the clocks skipped: at the instant of a jump
    forward, and not itself a time the fields name."""
    local = at.astimezone(schedule.zone)
    before = (at - timedelta(seconds=1)).astimezone(schedule.zone)
    jumped = local.utcoffset() is not None and before.utcoffset() is not None and \
        local.utcoffset() > before.utcoffset()  # type: ignore[operator]
    named = schedule.day_matches(local.date()) and local.hour in schedule.hours and local.minute in schedule.minutes
    return jumped and not named


def compare(rng: random.Random) -> tuple[str, str, datetime, list[datetime], list[datetime], int, int, bool]:
    """One random window: (expression, zone, start, ours only, croniter only, repeats, stand-ins,
    whether the expression names no day, so that jobchain refuses it and croniter finds no time)."""
    text = expression(rng)
    zone = rng.choice(ZONES)
    year = rng.randint(2020, 2032)
    changes = transitions(zone, year)
    if changes and rng.random() < 0.5:
        start = rng.choice(changes) + timedelta(minutes=rng.randint(-36 * 60, 6 * 60))
    else:
        start = datetime(year, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 365 * 24 * 60))
    reference = croniter(as_croniter_reads_cronjob(text), start.astimezone(ZoneInfo(zone)))
    try:
        ours = parse(text, zone)
    except ScheduleError as exc:  # jobchain refuses a schedule that names no existing day (Feb 30)
        assert "names no day that exists" in str(exc), exc
        with pytest.raises(CroniterBadDateError):
            reference.get_next(datetime)
        return text, zone, start, [], [], 0, 0, True
    theirs = [reference.get_next(datetime) for _ in range(TIMES)]
    end = theirs[-1].astimezone(UTC)
    repeats = [t.astimezone(UTC) for t in theirs if second_occurrence(t)]
    theirs_utc = {t.astimezone(UTC) for t in theirs} - set(repeats)
    mine = []
    at: datetime | None = start
    while True:
        at = ours.next_after(at)  # type: ignore[arg-type]
        if at is None or at > end:
            break
        mine.append(at)
    stand_ins = [t for t in mine if t not in theirs_utc and gap_stand_in(ours, t)]
    only_ours = sorted(set(mine) - theirs_utc - set(stand_ins))
    only_theirs = sorted(theirs_utc - set(mine))
    return text, zone, start, only_ours, only_theirs, len(repeats), len(stand_ins), False


def test_cron_times_agree_with_croniter_over_ten_thousand_random_expressions_windows_and_zones() -> None:
    rng = random.Random(SEED)
    disagreements = []
    repeats = stand_ins = never = 0
    for _ in range(EXPRESSIONS):
        text, zone, start, only_ours, only_theirs, repeated, stood_in, refused = compare(rng)
        never += refused
        repeats += repeated
        stand_ins += stood_in
        if only_ours or only_theirs:
            disagreements.append(f"{text!r} in {zone} after {start.isoformat()}: only jobchain "
                                 f"{[t.isoformat() for t in only_ours]}, only croniter "
                                 f"{[t.isoformat() for t in only_theirs]}")
    print(f"\ncron vs croniter: seed {SEED}, {EXPRESSIONS} expressions, one window of {TIMES} croniter times each, "
          f"{len(disagreements)} disagreements; repeated-hour second runs croniter makes and jobchain does not: "
          f"{repeats}; skipped-hour times jobchain runs at the jump and croniter does not: {stand_ins}; "
          f"expressions naming no day (jobchain refuses them, croniter finds no time): {never}")
    assert not disagreements, "\n".join(disagreements[:20])
    assert repeats > 0 and stand_ins > 0, "the windows reached no daylight-saving change"


def utc_times(schedule: str, zone: str, start: str, count: int) -> list[str]:
    parsed = parse(schedule, zone)
    at: datetime | None = datetime.fromisoformat(start)
    out = []
    for _ in range(count):
        at = parsed.next_after(at)  # type: ignore[arg-type]
        assert at is not None
        out.append(at.strftime("%m-%d %H:%M"))
    return out


def croniter_times(schedule: str, zone: str, start: str, count: int) -> list[str]:
    it = croniter(schedule, datetime.fromisoformat(start).astimezone(ZoneInfo(zone)))
    return [it.get_next(datetime).astimezone(UTC).strftime("%m-%d %H:%M") for _ in range(count)]


def test_star_step_one_in_a_day_field_is_a_star_for_cronjob_and_a_restriction_for_croniter() -> None:
    # 2026-12-01 is a Tuesday: CronJob runs Mondays only; croniter runs every day.
    assert utc_times("0 0 */1 * MON", "UTC", "2026-12-01T12:00:00+00:00", 2) == ["12-07 00:00", "12-14 00:00"]
    assert croniter_times("0 0 */1 * MON", "UTC", "2026-12-01T12:00:00+00:00", 2) == ["12-02 00:00", "12-03 00:00"]


def test_a_day_field_naming_every_day_runs_every_day_where_croniter_may_read_it_as_a_star() -> None:
    # CronJob: day-of-month (every day, no star) or Sun/Wed/Sat: every day. croniter: Sun/Wed/Sat.
    assert utc_times("0 0 */20,1-31 * */3", "UTC", "2026-12-01T12:00:00+00:00", 2) == ["12-02 00:00", "12-03 00:00"]
    assert croniter_times("0 0 */20,1-31 * */3", "UTC", "2026-12-01T12:00:00+00:00", 2) == ["12-02 00:00",
                                                                                           "12-05 00:00"]


def test_a_range_of_one_value_is_that_value_though_croniter_reads_it_as_every_value() -> None:
    assert utc_times("0 22-22 * * *", "UTC", "2026-05-28T03:07:00+00:00", 2) == ["05-28 22:00", "05-29 22:00"]
    assert croniter_times("0 22-22 * * *", "UTC", "2026-05-28T03:07:00+00:00", 2) == ["05-28 04:00", "05-28 05:00"]


def test_a_repeated_wall_time_runs_once_where_croniter_runs_it_twice() -> None:
    # Berlin, 2026-10-25: 02:30 CEST (00:30 UTC) and 02:30 CET (01:30 UTC).
    assert utc_times("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+00:00", 2) == ["10-25 00:30", "10-26 01:30"]
    assert croniter_times("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+00:00", 2) == ["10-25 00:30",
                                                                                            "10-25 01:30"]


def test_a_skipped_wall_time_runs_at_the_jump_where_croniter_skips_it_for_an_hourly_schedule() -> None:
    # Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC; 02:21 does not exist.
    assert utc_times("21 * * * *", "Europe/Berlin", "2026-03-29T00:30:00+00:00", 2) == ["03-29 01:00", "03-29 01:21"]
    assert croniter_times("21 * * * *", "Europe/Berlin", "2026-03-29T00:30:00+00:00", 2) == ["03-29 01:21",
                                                                                            "03-29 02:21"]
