"""WorkflowSchedule: the next-time computation (time zones, DST) and the decision of a pass, on a fake clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from jobchain.api.models import WorkflowScheduleSpec, WorkflowScheduleStatus
from jobchain.engine.schedules.cron import ScheduleError, parse
from jobchain.engine.schedules.decide import Run, ScheduleRef, decide, execution_manifest, execution_name


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def times(schedule: str, zone: str | None, start: str, count: int) -> list[str]:
    parsed = parse(schedule, zone)
    at: datetime | None = utc(start)
    out = []
    for _ in range(count):
        assert at is not None
        at = parsed.next_after(at)
        assert at is not None
        out.append(at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


@pytest.mark.parametrize(("schedule", "zone", "start", "expected"), [
    ("30 2 * * *", None, "2026-03-01T00:00:00Z", ["2026-03-01T02:30:00Z", "2026-03-02T02:30:00Z"]),
    ("@hourly", None, "2026-03-01T00:59:59Z", ["2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z"]),
    ("@daily", "Europe/Berlin", "2026-01-10T12:00:00Z", ["2026-01-10T23:00:00Z", "2026-01-11T23:00:00Z"]),
    ("*/15 9-10 * * mon-fri", None, "2026-11-27T10:40:00Z",  # a Friday
     ["2026-11-27T10:45:00Z", "2026-11-30T09:00:00Z", "2026-11-30T09:15:00Z"]),
    ("0 0 1,15 * 1", None, "2026-06-01T00:00:00Z",  # day-of-month OR Monday, as cron
     ["2026-06-08T00:00:00Z", "2026-06-15T00:00:00Z", "2026-06-22T00:00:00Z"]),
    ("0 12 29 feb *", None, "2026-01-01T00:00:00Z", ["2028-02-29T12:00:00Z"]),
    ("@every 30s", "Europe/Berlin", "2026-03-01T00:00:10Z", ["2026-03-01T00:00:30Z", "2026-03-01T00:01:00Z"]),
    ("@every 1h30m", None, "1970-01-01T00:00:00Z", ["1970-01-01T01:30:00Z", "1970-01-01T03:00:00Z"]),
])
def test_a_schedule_fires_at_these_next_times(schedule: str, zone: str | None, start: str, expected: list[str]) -> None:
    assert times(schedule, zone, start, len(expected)) == expected


def test_spring_forward_runs_a_skipped_time_once_right_after_the_jump() -> None:
    # Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST (01:00 UTC). 02:30 does not exist that day.
    assert times("30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", 3) == [
        "2026-03-28T01:30:00Z",  # 02:30 CET
        "2026-03-29T01:00:00Z",  # the jump: 03:00 CEST
        "2026-03-30T00:30:00Z",  # 02:30 CEST
    ]
    # Every hour's 02:00 and 03:00 fall on the same instant that night: it runs once.
    assert times("0 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", 2) == [
        "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"]


def test_fall_back_runs_a_repeated_time_once_at_its_first_occurrence() -> None:
    # Berlin, 2026-10-25: 03:00 CEST -> 02:00 CET (01:00 UTC); 02:30 happens twice.
    assert times("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2) == [
        "2026-10-25T00:30:00Z",  # 02:30 CEST, the first 02:30
        "2026-10-26T01:30:00Z",  # 02:30 CET the next day
    ]
    # New York's hourly run in the repeated hour: 01:00 EDT and 01:00 EST are one wall time, run once.
    assert times("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", 3) == [
        "2026-11-01T05:00:00Z",  # 01:00 EDT
        "2026-11-01T07:00:00Z",  # 02:00 EST (01:00 EST, the repeat, is not run again)
        "2026-11-01T08:00:00Z",
    ]


@pytest.mark.parametrize(("schedule", "zone", "says"), [
    ("61 * * * *", None, "minute '61' is not a number from 0 to 59"),
    ("* * * *", None, "five fields"),
    ("@every 5s", None, "at least 10s"),
    ("@every 10.5s", None, "whole seconds"),
    ("@every soon", None, "not a duration"),
    ("@fortnightly", None, "unknown macro"),
    ("0 0 30 2 *", None, "February 30"),
    ("0 0 * * *", "Mars/Olympus", "not an IANA time zone"),
    ("*/0 * * * *", None, "positive number"),
])
def test_bad_schedules_say_what_is_wrong(schedule: str, zone: str | None, says: str) -> None:
    with pytest.raises(ScheduleError, match=says.replace("(", r"\(")):
        parse(schedule, zone)


# ---- the decision of a pass ----------------------------------------------------------------

CREATED = utc("2026-11-28T10:00:00Z")
REF = ScheduleRef("nightly", "team", "uid-1", 1, CREATED)


def spec(**fields: object) -> WorkflowScheduleSpec:
    return WorkflowScheduleSpec.model_validate({"schedule": "@every 10s",
                                                "executionTemplate": {"workflowRef": {"name": "etl"}}, **fields})


def run(at: str, phase: str | None = "Running", finished: str | None = None) -> Run:
    when = utc(at)
    return Run(execution_name("nightly", when), when, at, phase, finished)


def test_a_due_time_creates_its_deterministically_named_execution_and_status_says_so() -> None:
    now = utc("2026-11-28T10:00:21Z")
    d = decide(REF, spec(), WorkflowScheduleStatus(), [], now)
    assert d.create == [("nightly-1795860020", utc("2026-11-28T10:00:20Z"))]
    assert d.status.lastScheduleTime == "2026-11-28T10:00:20Z"
    assert d.status.nextScheduleTime == "2026-11-28T10:00:30Z"
    assert d.status.active == ["nightly-1795860020"]
    assert d.wake_at == utc("2026-11-28T10:00:30Z")
    manifest = execution_manifest(REF, spec(), utc("2026-11-28T10:00:20Z"))
    assert manifest["metadata"]["name"] == "nightly-1795860020"
    assert manifest["metadata"]["labels"]["jobchain.dev/schedule"] == "nightly"
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert manifest["metadata"]["annotations"]["jobchain.dev/scheduled-time"] == "2026-11-28T10:00:20Z"
    assert manifest["spec"] == {"workflowRef": {"name": "etl"}}


def test_a_replayed_pass_after_a_lost_status_write_adopts_instead_of_creating_again() -> None:
    now = utc("2026-11-28T10:00:22Z")
    d = decide(REF, spec(), WorkflowScheduleStatus(), [run("2026-11-28T10:00:20Z")], now)
    assert d.create == []
    assert d.status.active == ["nightly-1795860020"]


def test_no_time_before_the_schedule_existed_runs() -> None:
    d = decide(REF, spec(), WorkflowScheduleStatus(), [], utc("2026-11-28T10:00:05Z"))
    assert d.create == []


def test_after_downtime_only_the_most_recent_missed_time_runs() -> None:
    old = WorkflowScheduleStatus(lastScheduleTime="2026-11-28T10:00:20Z")
    d = decide(REF, spec(), old, [], utc("2026-11-28T10:05:03Z"))  # 28 times missed
    assert [t for _, t in d.create] == [utc("2026-11-28T10:05:00Z")]


def test_a_missed_time_older_than_the_starting_deadline_is_skipped_with_an_event() -> None:
    old = WorkflowScheduleStatus(lastScheduleTime="2026-11-28T10:00:20Z")
    s = spec(schedule="0 * * * *", startingDeadlineSeconds=300)
    d = decide(REF, s, old, [], utc("2026-11-28T11:06:00Z"))  # 11:00 is 360 s late
    assert d.create == []
    assert d.status.lastSkippedTime == "2026-11-28T11:00:00Z"
    assert [e.reason for e in d.events] == ["MissedSchedule"]
    within = decide(REF, s, old, [], utc("2026-11-28T11:04:00Z"))
    assert [t for _, t in within.create] == [utc("2026-11-28T11:00:00Z")]
    # The skipped time is not tried again on the next pass.
    again = decide(REF, s, d.status, [], utc("2026-11-28T11:06:30Z"))
    assert again.create == [] and again.events == []


def test_forbid_skips_a_time_while_one_runs_and_allow_starts_another() -> None:
    running = [run("2026-11-28T10:00:20Z")]
    old = WorkflowScheduleStatus(lastScheduleTime="2026-11-28T10:00:20Z")
    now = utc("2026-11-28T10:00:31Z")
    forbid = decide(REF, spec(concurrencyPolicy="Forbid"), old, running, now)
    assert forbid.create == [] and forbid.status.lastSkippedTime == "2026-11-28T10:00:30Z"
    assert forbid.events[0].reason == "Skipped"
    allow = decide(REF, spec(), old, running, now)
    assert [n for n, _ in allow.create] == ["nightly-1795860030"]
    assert allow.status.active == ["nightly-1795860020", "nightly-1795860030"]


def test_replace_cancels_the_running_one_and_starts_the_new_one() -> None:
    old = WorkflowScheduleStatus(lastScheduleTime="2026-11-28T10:00:20Z")
    d = decide(REF, spec(concurrencyPolicy="Replace"), old, [run("2026-11-28T10:00:20Z")], utc("2026-11-28T10:00:31Z"))
    assert d.cancel == ["nightly-1795860020"]
    assert [n for n, _ in d.create] == ["nightly-1795860030"]


def test_suspend_starts_nothing_and_shows_no_next_time() -> None:
    d = decide(REF, spec(suspend=True), WorkflowScheduleStatus(), [], utc("2026-11-28T10:00:31Z"))
    assert d.create == [] and d.status.nextScheduleTime is None and d.wake_at is None
    assert d.status.conditions[0].reason == "Suspended"


def test_history_limits_keep_the_newest_finished_executions() -> None:
    runs = [run(f"2026-11-28T10:0{i}:00Z", "Succeeded", f"2026-11-28T10:0{i}:05Z") for i in range(5)]
    runs += [run(f"2026-11-28T10:1{i}:00Z", "Failed", f"2026-11-28T10:1{i}:05Z") for i in range(3)]
    d = decide(REF, spec(successfulExecutionsHistoryLimit=2, failedExecutionsHistoryLimit=1),
               WorkflowScheduleStatus(lastScheduleTime="2026-11-28T10:59:50Z"), runs, utc("2026-11-28T10:59:55Z"))
    assert sorted(d.delete) == sorted([runs[0].name, runs[1].name, runs[2].name, runs[5].name, runs[6].name])
    assert d.status.lastSuccessfulTime == "2026-11-28T10:04:05Z"


def test_an_invalid_schedule_is_not_ready_says_why_once_and_creates_nothing() -> None:
    bad = spec(schedule="61 * * * *")
    d = decide(REF, bad, WorkflowScheduleStatus(), [], utc("2026-11-28T10:00:31Z"))
    assert d.create == [] and d.wake_at is None
    ready = d.status.conditions[0]
    assert (ready.status, ready.reason) == ("False", "InvalidSchedule")
    assert "minute '61'" in ready.message
    assert [e.reason for e in d.events] == ["InvalidSchedule"]
    assert decide(REF, bad, d.status, [], utc("2026-11-28T10:00:41Z")).events == []


def test_the_missed_time_rule_walks_a_fake_clock_without_doubling_or_losing_a_time() -> None:
    """A pass every 3 s, an operator down from 10:00:40 to 10:01:07: every time up to the downtime
    runs once, the missed ones collapse into the most recent, then it goes on."""
    status = WorkflowScheduleStatus()
    runs: list[Run] = []
    created = []
    now = CREATED
    while now < utc("2026-11-28T10:01:40Z"):
        now += timedelta(seconds=3)
        if utc("2026-11-28T10:00:40Z") <= now < utc("2026-11-28T10:01:07Z"):
            continue
        d = decide(REF, spec(), status, runs, now)
        status = d.status
        for name, at in d.create:
            created.append(at.strftime("%H:%M:%S"))
            runs.append(Run(name, at, name, "Succeeded", None))
    assert created == ["10:00:10", "10:00:20", "10:00:30", "10:01:00", "10:01:10", "10:01:20", "10:01:30",
                       "10:01:40"]
