"""The planner, stopping a run: cancel, the deadline, and a finished execution that never changes again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jobchain.engine.execution.events import events_between
from jobchain.engine.execution.planner import plan
from jobchain.engine.spec.render import job_name

from .builders import (
    FAIL,
    T0,
    chain,
    execution,
    job,
    lookup,
    node,
    node_status,
    observed,
    phases,
    simulate,
    spec,
    started,
    with_status,
)

# ---- cancel and deadline -------------------------------------------------------------------

def test_cancel_deletes_running_jobs_and_cancels_unstarted_nodes() -> None:
    workflow = spec(node("a", "c"), node("b"), node("c"), parallelism=2)
    ex, _ = started(workflow)
    ex = with_status(ex, ex.status, cancel=True)
    p = plan(ex, observed(job("a"), job("b", "Succeeded", "7")), T0 + timedelta(seconds=5))
    assert p.status.phase == "Cancelled"
    assert p.status.reason == "Cancelled"
    assert p.delete == [job_name("run-1", "a")]
    assert p.create == []
    assert phases(p.status) == {"a": "Cancelled", "b": "Succeeded", "c": "Cancelled"}
    assert node_status(p.status, "b").output == 7
    assert p.wake_at is None


def test_cancel_before_start_cancels_without_creating_anything() -> None:
    p = plan(execution(chain("a", "b"), cancel=True), {}, T0)
    assert p.status.phase == "Cancelled"
    assert p.create == []


def test_cancel_after_a_crash_before_the_first_status_write_deletes_the_jobs_created() -> None:
    # The first reconcile created a's Job and crashed before writing status; then the user cancels.
    ex = execution(chain("a", "b"), cancel=True)
    p = plan(ex, observed(job("a")), T0 + timedelta(seconds=2))
    assert p.status.phase == "Cancelled"
    assert p.delete == [job_name("run-1", "a")]
    assert p.create == []


def test_deadline_sets_wake_at_then_fails_with_deadline_exceeded() -> None:
    ex, p1 = started(chain("a", "b"), timeout=60)
    assert p1.wake_at == T0 + timedelta(seconds=60)
    p2 = plan(ex, observed(job("a")), T0 + timedelta(seconds=30))
    assert p2.status.phase == "Running"
    assert p2.wake_at == T0 + timedelta(seconds=60)
    p3 = plan(ex, observed(job("a")), T0 + timedelta(seconds=60))
    assert p3.status.phase == "Failed"
    assert p3.status.reason == "DeadlineExceeded"
    assert "60s" in p3.status.message
    assert p3.delete == [job_name("run-1", "a")]
    assert phases(p3.status) == {"a": "Cancelled", "b": "Cancelled"}
    assert p3.wake_at is None
    assert p3.status.duration == "1m00s"


def test_without_a_timeout_the_planner_sets_no_wake_at() -> None:
    _, p = started(chain("a"))
    assert p.wake_at is None


# ---- a finished execution ------------------------------------------------------------------

TERMINALS: list[tuple[str, dict[str, Any]]] = [
    ("succeeded", {}),
    ("cancelled", {"cancel": True}),
]


@pytest.mark.parametrize("changes", [c[1] for c in TERMINALS], ids=[c[0] for c in TERMINALS])
def test_finished_execution_never_changes_and_keeps_the_jobs_of_nodes_that_ran(changes: dict[str, Any]) -> None:
    run = simulate(chain("a", "b"))
    final = run.status
    ex = with_status(execution(chain("a", "b")), final, **changes)
    # b's pod finished (its result is in status) but the Job controller has not yet set the
    # Job's Complete condition: the Job, its pod and its log are kept (`jobchain logs` reads them).
    lagging = observed(job("a", "Succeeded"), job("b"))
    p = plan(ex, lagging, T0 + timedelta(hours=1), lookup(None, found=False))
    assert p.status == final
    assert p.create == []
    assert p.delete == []
    assert events_between(ex.status, p.status) == []
    assert p.wake_at is None


def test_finished_execution_deletes_running_jobs_of_nodes_that_did_not_run() -> None:
    ex, _ = started(chain("a", "b"))
    cancelled = plan(with_status(ex, ex.status, cancel=True), observed(job("a")), T0 + timedelta(seconds=1))
    assert cancelled.delete == [job_name("run-1", "a")]
    # The delete did not complete before a crash: the next pass deletes it again.
    again = plan(with_status(ex, cancelled.status, cancel=True), observed(job("a")), T0 + timedelta(seconds=2))
    assert again.status == cancelled.status
    assert again.delete == [job_name("run-1", "a")]


def test_failed_execution_stays_failed_when_cancel_is_set_later() -> None:
    run = simulate(chain("a", "b"), {"a": FAIL})
    ex = with_status(execution(chain("a", "b")), run.status, cancel=True)
    p = plan(ex, {}, T0 + timedelta(hours=1))
    assert p.status == run.status
    assert p.status.phase == "Failed"
