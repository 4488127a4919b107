"""WorkflowSchedule passes replayed: lost status writes, executions deleted behind the schedule's back,
and a schedule deleted and re-created under the same name never run one scheduled time twice, nor
lose one. The controller's order of effects is modelled: executions are created (deterministic
names, create-or-adopt) before the status write, which may be lost."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jobchain.api.models import WorkflowScheduleSpec, WorkflowScheduleStatus
from jobchain.engine.schedules.decide import Run, ScheduleRef, decide, execution_name

CREATED = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
# The same examples in every CI run; JOBCHAIN_PROPERTY_SEARCH=1 (hack/test.sh's search phase) hunts with fresh ones.
SEARCH = not os.environ.get("JOBCHAIN_PROPERTY_SEARCH")


def spec(**fields: object) -> WorkflowScheduleSpec:
    return WorkflowScheduleSpec.model_validate({"schedule": "@every 10s",
                                                "executionTemplate": {"workflowRef": {"name": "etl"}}, **fields})


def test_an_adopted_execution_is_recorded_so_deleting_it_does_not_run_its_time_again() -> None:
    """The create of 10:00:20 succeeded, its status write was lost; the replayed pass adopts the
    execution, and the history limit (0) deletes it. The time must not be created a second time."""
    ref = ScheduleRef("nightly", "team", "uid-1", 1, CREATED)
    s = spec(successfulExecutionsHistoryLimit=0)
    at = datetime(2026, 11, 28, 10, 0, 20, tzinfo=UTC)
    done = Run(execution_name("nightly", at), at, "2026-11-28T10:00:20Z", "Succeeded", "2026-11-28T10:00:25Z")
    replay = decide(ref, s, WorkflowScheduleStatus(), [done], at + timedelta(seconds=6))
    assert replay.create == []
    assert replay.status.lastScheduleTime == "2026-11-28T10:00:20Z"
    assert decide(ref, s, replay.status, [done], at + timedelta(seconds=7)).delete == [done.name]
    after = decide(ref, s, replay.status, [], at + timedelta(seconds=8))
    assert after.create == [], f"{at} ran twice"


def test_a_pass_keeps_an_execution_whose_time_its_written_status_does_not_record_yet() -> None:
    """History limit 0: the execution of 10:00:20 finished before any pass recorded it. A pass
    records it and would delete it; if that status write is lost, nothing would be left to say the
    time ran, and it would run again. It is deleted by the next pass, once the record is written."""
    ref = ScheduleRef("nightly", "team", "uid-1", 1, CREATED)
    s = spec(successfulExecutionsHistoryLimit=0)
    at = datetime(2026, 11, 28, 10, 0, 20, tzinfo=UTC)
    done = Run(execution_name("nightly", at), at, "2026-11-28T10:00:20Z", "Succeeded", "2026-11-28T10:00:25Z")
    first = decide(ref, s, WorkflowScheduleStatus(), [done], at + timedelta(seconds=6))
    assert first.delete == [] and first.status.lastScheduleTime == "2026-11-28T10:00:20Z"
    lost_write_replay = decide(ref, s, WorkflowScheduleStatus(), [done], at + timedelta(seconds=7))
    assert lost_write_replay.create == [] and lost_write_replay.delete == []
    written = decide(ref, s, first.status, [done], at + timedelta(seconds=7))
    assert written.delete == [done.name]


@dataclass
class World:
    """The cluster as the schedule's passes see it: the schedule object and its executions."""

    ref: ScheduleRef
    status: WorkflowScheduleStatus = field(default_factory=WorkflowScheduleStatus)
    runs: dict[str, Run] = field(default_factory=dict)
    creates: list[tuple[str, datetime]] = field(default_factory=list)  # every create that made a new object

    def pass_at(self, now: datetime, s: WorkflowScheduleSpec, write_lost: bool) -> None:
        d = decide(self.ref, s, self.status, list(self.runs.values()), now)
        for name, at in d.create:
            if name not in self.runs:  # create-or-adopt: a second create of the same name is a 409
                self.runs[name] = Run(name, at, now.isoformat(), "Running", None)
                self.creates.append((name, at))
        for name in d.delete:
            self.runs.pop(name, None)
        if not write_lost:
            self.status = d.status

    def finish_all(self, now: datetime) -> None:
        for name, r in list(self.runs.items()):
            if not r.finished:
                self.runs[name] = Run(r.name, r.scheduled, r.created, "Succeeded", now.isoformat())


steps = st.lists(st.tuples(st.integers(1, 25),  # seconds to the next pass
                           st.booleans(),  # its status write is lost
                           st.booleans(),  # the executions finish before it
                           st.booleans()),  # someone deletes every finished execution by hand before it
                 min_size=1, max_size=40)


@settings(max_examples=250, deadline=None, derandomize=SEARCH, database=None)
@given(steps=steps, history=st.integers(0, 2))
def test_lost_status_writes_and_deleted_executions_never_run_a_time_twice(
        steps: list[tuple[int, bool, bool, bool]], history: int) -> None:
    world = World(ScheduleRef("nightly", "team", "uid-1", 1, CREATED))
    s = spec(successfulExecutionsHistoryLimit=history)
    now = CREATED
    last_lost = False
    for gap, lost, finish, delete_by_hand in steps:
        now += timedelta(seconds=gap)
        if finish:
            world.finish_all(now)
        # Deleted after a pass whose status write landed: an execution created by a pass whose write
        # was lost and deleted before any later pass saw it leaves no trace of its time anywhere (the
        # same window a CronJob has); the operator's own deletes (history, TTL) come from passes.
        if delete_by_hand and not last_lost:
            world.runs = {n: r for n, r in world.runs.items() if not r.finished}
        world.pass_at(now, s, write_lost=lost)
        last_lost = lost
    times = [at for _, at in world.creates]
    assert len(times) == len(set(times)), f"a time ran twice: {sorted(times)}"
    assert all(at > CREATED for at in times)
    # Nothing is lost either: a pass whose write is kept, with the same clock, creates nothing more,
    # and the last time that was due by the last pass has run.
    world.pass_at(now, s, write_lost=False)
    assert [at for _, at in world.creates] == times
    assert any(now - timedelta(seconds=10) < at <= now for at in times) or now < CREATED + timedelta(seconds=10)


@settings(max_examples=100, deadline=None, derandomize=SEARCH, database=None)
@given(before=st.integers(0, 60), gap=st.integers(0, 30), after=st.integers(1, 60), lost=st.booleans())
def test_a_schedule_deleted_mid_pass_and_recreated_under_its_name_starts_afresh(
        before: int, gap: int, after: int, lost: bool) -> None:
    """The first object runs for `before` seconds; its last pass creates an execution but the object
    is deleted before that pass's status write lands (lost). A new object of the same name (new uid,
    empty status) appears `gap` seconds later. The controller gives a pass only the executions the
    object owns (uid), so the new one sees none of the old one's: it runs no time from before it
    existed, and each of its own times once."""
    first = World(ScheduleRef("nightly", "team", "uid-1", 1, CREATED))
    s = spec()
    now = CREATED
    for _ in range(before // 5):
        now += timedelta(seconds=5)
        first.pass_at(now, s, write_lost=False)
    now += timedelta(seconds=5)
    first.pass_at(now, s, write_lost=lost)  # deleted mid-pass
    recreated_at = now + timedelta(seconds=gap)
    second = World(ScheduleRef("nightly", "team", "uid-2", 1, recreated_at))
    now = recreated_at
    for _ in range(after):
        now += timedelta(seconds=1)
        second.pass_at(now, s, write_lost=False)
    times = [at for _, at in second.creates]
    assert all(at > recreated_at for at in times), "a time from before the new object existed ran"
    assert len(times) == len(set(times))
    expected = (int(now.timestamp()) // 10 - int(recreated_at.timestamp()) // 10)
    assert len(times) == expected, "every time of the new object ran once"
