"""Schedule expressions: parsing cron / macros / `@every`, and the times they name, in a time zone.

Pure and clock-free: every function takes the instant it reasons about, so the unit tests walk a
fake clock over daylight-saving changes. Rules a user can rely on (said in the CRD too):
- Cron fields are read as wall-clock time in `timeZone` (default UTC), with CronJob's syntax:
  `*`, `a`, `a-b`, `*/n`, `a-b/n`, lists, month and weekday names; when both day-of-month and
  day-of-week are restricted, a day matching either runs (as cron does). A field is unrestricted
  only when a part of it is a bare `*` (or `?`, `*/1`): `0 0 */2 * MON` runs on odd days or Mondays.
- Clocks going forward: a wall time in the skipped hour runs at the first instant after the jump.
  Clocks going back: a wall time in the repeated hour runs once, at its first occurrence.
- `@every D` (a Go duration, whole seconds, at least 10s) names the multiples of D since the Unix
  epoch: the same instants whatever the operator did before, so a restart never shifts them and
  the execution name `<schedule>-<unix time>` of each time is known in advance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MIN_EVERY_SECONDS = 10
_SEARCH_DAYS = 366 * 5  # a cron expression that names no day in five years (Feb 30) never runs

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {n: i + 1 for i, n in enumerate(["jan", "feb", "mar", "apr", "may", "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec"])}
_DAYS = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class ScheduleError(ValueError):
    """A schedule or time zone that cannot be used; the message says what and how to fix it."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: either `every` seconds, or the allowed values of the five cron fields."""

    text: str
    zone: ZoneInfo
    every: int | None = None
    minutes: tuple[int, ...] = ()
    hours: tuple[int, ...] = ()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()  # 0 = Sunday
    days_restricted: bool = False
    weekdays_restricted: bool = False

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    def next_after(self, after: datetime) -> datetime | None:
        """The first scheduled instant strictly after `after` (aware), in UTC; None if none in 5 years."""
        after = after.astimezone(UTC)
        if self.every is not None:
            step = int(after.timestamp()) // self.every + 1
            return datetime.fromtimestamp(step * self.every, UTC)
        local = after.astimezone(self.zone)
        day = local.date() - timedelta(days=1)  # the day before: its late times may be after `after` in UTC
        last = self.minutes[-1]
        for _ in range(_SEARCH_DAYS):
            if self.day_matches(day) and self._at(day, self.hours[-1], last) > after:
                for hour in self.hours:
                    # Wall times map to instants in order (a skipped one to the jump, a repeated one
                    # to its first occurrence): an hour whose last minute is not after `after` has none.
                    if self._at(day, hour, last) <= after:
                        continue
                    for minute in self.minutes:
                        at = self._at(day, hour, minute)
                        if at > after:
                            return at
            day += timedelta(days=1)
        return None

    def _at(self, day: date, hour: int, minute: int) -> datetime:
        return resolve(datetime(day.year, day.month, day.day, hour, minute), self.zone)

    def latest_between(self, after: datetime, until: datetime) -> datetime | None:
        """The last scheduled instant in (after, until], or None."""
        if until <= after:
            return None
        if self.every is not None:
            latest = datetime.fromtimestamp(int(until.timestamp()) // self.every * self.every, UTC)
            return latest if latest > after else None
        # Walk forward from a window before `until`, widening it until a time is found (a
        # minutely schedule after a week's downtime must not walk 10,000 times).
        for window in (timedelta(hours=2), timedelta(days=2), timedelta(days=40), timedelta(days=400),
                       timedelta(days=_SEARCH_DAYS)):
            start = max(after, until - window)
            found = None
            at = self.next_after(start)
            while at is not None and at <= until:
                found = at
                at = self.next_after(at)
            if found is not None or start == after:
                return found
        return None


def resolve(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall-clock time in `zone`: the first occurrence of a repeated
    one, the first instant after the jump for one that does not exist."""
    for shift in range(0, 24 * 60 + 1):  # gaps are at most a day (Samoa, 2011)
        candidate = wall + timedelta(minutes=shift)
        at = candidate.replace(tzinfo=zone, fold=0).astimezone(UTC)
        if at.astimezone(zone).replace(tzinfo=None) == candidate:
            return at
    raise ScheduleError(f"no instant for {wall} in {zone.key}")  # pragma: no cover


def parse_zone(name: str | None) -> ZoneInfo:
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"spec.timeZone {name!r} is not an IANA time zone; use a name such as "
                            "Europe/Berlin, America/New_York or UTC") from None


def parse_duration(text: str) -> float:
    """A Go duration ("1h30m", "45s") in seconds."""
    if not text or _GO_PART.sub("", text) != "":
        raise ScheduleError(f"{text!r} is not a duration such as 30s, 5m or 1h30m")
    return sum(float(number) * _GO_UNITS[unit] for number, unit in _GO_PART.findall(text))


def _field(text: str, low: int, high: int, names: dict[str, int], what: str,
           open_high: int | None = None) -> tuple[frozenset[int], bool]:
    """The values one cron field allows, and whether it restricts the day: as robfig/cron v3 (CronJob)
    reads it, a field is unrestricted when one of its parts is `*` or `?` with no step over 1; `*/2`
    restricts, as a list or range does."""
    values: set[int] = set()
    star = False
    top = high if open_high is None else open_high  # where `*` and `N/step` end (day-of-week: 6, not 7)
    for part in text.split(","):
        step = 1
        body = part
        if "/" in part:
            body, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{what} {part!r}: the step after / must be a positive number")
            step = int(step_text)
        if body in ("*", "?"):
            start, end = low, top
            star = star or step == 1
        elif "-" in body:
            first, last = body.split("-", 1)
            start, end = _value(first, low, high, names, what), _value(last, low, high, names, what)
            if start > end:
                raise ScheduleError(f"{what} {part!r}: the range goes backwards")
        else:
            start = _value(body, low, high, names, what)
            end = max(start, top) if "/" in part else start
        values.update(range(start, end + 1, step))
    return frozenset(values), not star


def _value(text: str, low: int, high: int, names: dict[str, int], what: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit() or not low <= int(text) <= high:
        raise ScheduleError(f"{what} {text!r} is not a number from {low} to {high}"
                            + (f" or a name ({', '.join(list(names)[:3])}, ...)" if names else ""))
    return int(text)


def parse(text: str, time_zone: str | None = None) -> Schedule:
    """Parses a schedule; raises ScheduleError saying what is wrong and what would be right."""
    zone = parse_zone(time_zone)
    text = text.strip()
    if text.startswith("@every"):
        seconds = parse_duration(text[len("@every"):].strip())
        if seconds != int(seconds):
            raise ScheduleError(f"spec.schedule {text!r}: use whole seconds")
        if seconds < MIN_EVERY_SECONDS:
            raise ScheduleError(f"spec.schedule {text!r}: @every must be at least {MIN_EVERY_SECONDS}s")
        return Schedule(text, zone, every=int(seconds))
    expanded = MACROS.get(text.lower(), text)
    if expanded.startswith("@"):
        raise ScheduleError(f"spec.schedule {text!r}: unknown macro; use @yearly, @monthly, @weekly, @daily, "
                            "@hourly or @every DURATION")
    fields = expanded.split()
    if len(fields) != 5:
        raise ScheduleError(f"spec.schedule {text!r}: a cron schedule has five fields (minute hour day-of-month "
                            f"month day-of-week), this has {len(fields)}")
    try:
        minutes, _ = _field(fields[0], 0, 59, {}, "minute")
        hours, _ = _field(fields[1], 0, 23, {}, "hour")
        days, days_restricted = _field(fields[2], 1, 31, {}, "day-of-month")
        months, _ = _field(fields[3], 1, 12, _MONTHS, "month")
        weekdays, weekdays_restricted = _field(fields[4], 0, 7, _DAYS, "day-of-week", open_high=6)
    except ScheduleError as exc:
        raise ScheduleError(f"spec.schedule {text!r}: {exc}") from None
    weekdays = frozenset(d % 7 for d in weekdays)  # 7 is Sunday too
    schedule = Schedule(text, zone, None, tuple(sorted(minutes)), tuple(sorted(hours)), days, months, weekdays,
                        days_restricted, weekdays_restricted)
    if schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise ScheduleError(f"spec.schedule {text!r} names no day that exists (such as February 30)")
    return schedule
