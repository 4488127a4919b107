"""A pass that may start nothing (a cancel, a passed deadline) with forEach lists over its CEL budget.

Found by test_approval_properties: such a pass evaluates the forEach lists of ready nodes (a bad or
empty list decides the node without a Job), but it keeps no list of a node it does not start. When
the lists together cost more than one pass's budget, every pass left the last to the next and
waited for it (wake_at: now), and the cancelled execution never ended."""

from __future__ import annotations

from datetime import timedelta

from jobchain.engine.execution.conditions import PassBudget
from jobchain.engine.execution.planner import plan

from .builders import T0, execution, node, phases, spec, with_status

SMALL = PassBudget(steps=30, seconds=1.0, clock=lambda: 0.0)  # less than the two lists cost together
TWO_LISTS = spec(node("a", forEach="[1, 2, 3]", script="echo $(item)"),
                 node("b", forEach="['x', 'y']", script="echo $(item)"), node("c"), parallelism=4)


def test_a_cancel_ends_the_run_when_its_forEach_lists_cost_more_than_a_pass() -> None:
    ex = execution(TWO_LISTS, cancel=True)
    p = plan(ex, {}, T0, cel_budget=SMALL)
    for step in range(1, 5):  # (the controller plans again at wake_at, here at once)
        if p.status.phase != "Running":
            break
        p = plan(with_status(ex, p.status), {}, T0 + timedelta(seconds=step), cel_budget=SMALL)
    assert (p.status.phase, p.status.reason) == ("Cancelled", "Cancelled")
    assert phases(p.status) == {"a": "Cancelled", "b": "Cancelled", "c": "Cancelled"}
    assert p.create == []


def test_a_passed_deadline_ends_the_run_when_its_forEach_lists_cost_more_than_a_pass() -> None:
    ex = execution(TWO_LISTS, timeout=5)
    first = plan(ex, {}, T0, cel_budget=PassBudget(steps=0, seconds=1.0, clock=lambda: 0.0))  # starts nothing
    p = plan(with_status(ex, first.status), {}, T0 + timedelta(seconds=6), cel_budget=SMALL)
    for step in range(7, 11):
        if p.status.phase != "Running":
            break
        p = plan(with_status(ex, p.status), {}, T0 + timedelta(seconds=step), cel_budget=SMALL)
    assert (p.status.phase, p.status.reason) == ("Failed", "DeadlineExceeded")
