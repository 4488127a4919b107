"""The queue of a Workflow (maxConcurrentExecutions) and retry from the failed node (spec.resumeFrom)."""

from __future__ import annotations

from datetime import timedelta

from jobchain.api.models import ExecutionStatus
from jobchain.engine.planner import plan
from jobchain.engine.queue import Member, member_of, place
from jobchain.engine.resume import problem, seed
from tests.unit.builders import (
    T0,
    chain,
    created_nodes,
    env_of,
    execution,
    job,
    node_status,
    observed,
    phases,
    simulate,
    with_status,
)


def members(started: int, waiting: int, finished: int = 0) -> list[Member]:
    out = [Member(f"run-{i}", f"2026-11-28T10:00:0{i}Z", True, False) for i in range(started)]
    out += [Member(f"wait-{i}", f"2026-11-28T10:01:0{i}Z", False, False) for i in range(waiting)]
    out += [Member(f"done-{i}", "2026-11-28T09:00:00Z", True, True) for i in range(finished)]
    return out


def test_beyond_the_limit_executions_wait_in_creation_order_with_their_position() -> None:
    line = members(2, 3, finished=4)
    assert [place(f"wait-{i}", line, 2).message for i in range(3)] == [  # type: ignore[union-attr]
        "waiting: 2 of 2 running, position 1",
        "waiting: 2 of 2 running, position 2",
        "waiting: 2 of 2 running, position 3",
    ]
    assert place("run-0", line, 2) is None


def test_a_free_slot_goes_to_the_first_in_line_only() -> None:
    line = members(1, 3)
    assert place("wait-0", line, 2) is None
    assert place("wait-1", line, 2).position == 1  # type: ignore[union-attr]


def test_a_cancelled_waiting_execution_leaves_the_line() -> None:
    line = members(2, 3)
    line[2] = Member("wait-0", line[2].created, False, False, cancel=True)
    assert place("wait-2", line, 2).position == 2  # type: ignore[union-attr]


def test_only_executions_of_the_workflow_by_reference_are_members() -> None:
    body = {"metadata": {"name": "a", "creationTimestamp": "t"}, "spec": {"workflowRef": {"name": "etl"}},
            "status": {"phase": "Running", "workflowSpec": {"nodes": []}}}
    assert member_of(body, "etl") == Member("a", "t", True, False)
    assert member_of(body, "other") is None
    assert member_of({"metadata": {"name": "b"}, "spec": {"workflow": {"nodes": []}}}, "etl") is None


def failed_run() -> ExecutionStatus:
    """a -> b -> c -> d where c failed."""
    outputs = {"a": '{"n": 1}', "b": '{"n": 2}'}
    run = simulate(chain("a", "b", "c", "d"), lambda node, _m: ("Failed", None) if node == "c"
                   else ("Succeeded", outputs.get(node)))
    assert phases(run.status) == {"a": "Succeeded", "b": "Succeeded", "c": "Failed", "d": "Skipped"}
    return run.status


def test_resume_copies_the_succeeded_nodes_and_runs_the_rest_from_the_failed_one() -> None:
    old = failed_run()
    new = ExecutionStatus()
    seed(new, "first", old, T0 + timedelta(hours=1))
    assert phases(new) == {"a": "Succeeded", "b": "Succeeded", "c": "Pending", "d": "Pending"}
    for name in ("a", "b"):
        copied, original = node_status(new, name), node_status(old, name)
        assert copied.reused and copied.output == original.output and copied.inputFrom == original.inputFrom
        assert copied.finishedAt == original.finishedAt and "first" in copied.message
    ex = execution(ref="wf", status=new, name="second")
    now = T0 + timedelta(hours=1, seconds=1)
    p = plan(ex, {}, now)
    assert created_nodes(p) == ["c"]
    assert env_of(p.create[0])["JOBCHAIN_INPUT"] == '{"n":2}'
    assert node_status(p.status, "c").inputFrom == "b"
    later = plan(with_status(ex, p.status), observed(job("c", "Succeeded", '{"n": 3}', finished_at=now,
                                                         execution_name="second")), now + timedelta(seconds=1))
    assert created_nodes(later) == ["d"]
    assert env_of(later.create[0])["JOBCHAIN_INPUT"] == '{"n":3}'


def test_resume_is_refused_for_a_missing_running_succeeded_or_never_started_execution() -> None:
    assert "no such execution" in (problem("x", None) or "")
    assert "still Running" in (problem("x", ExecutionStatus(phase="Running")) or "")
    assert "nothing to retry" in (problem("x", ExecutionStatus(phase="Succeeded")) or "")
    never_started = ExecutionStatus(phase="Failed", reason="WorkflowNotFound")
    assert "failed before it started" in (problem("x", never_started) or "")
    assert problem("x", failed_run()) is None
