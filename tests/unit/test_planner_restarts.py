"""The planner across restarts, retries and lost Jobs: a Job adopted instead of created twice,
replays after lost status writes, vanished Jobs."""

from __future__ import annotations

from datetime import timedelta

from jobchain.engine.execution.planner import ObservedJob, plan
from jobchain.engine.spec.render import job_name

from .builders import (
    T0,
    chain,
    created_nodes,
    edge,
    execution,
    job,
    node,
    node_status,
    observed,
    phases,
    spec,
    started,
    with_status,
)

# ---- restarts, retries, lost Jobs ----------------------------------------------------------

def test_pending_node_with_an_observed_job_is_adopted_not_created_again() -> None:
    _, p1 = started(chain("a", "b"))
    assert created_nodes(p1) == ["a"]
    fresh = execution(chain("a", "b"))  # the status write of p1 was lost
    p2 = plan(fresh, observed(job("a")), T0 + timedelta(seconds=1))
    assert p2.create == []
    assert node_status(p2.status, "a").phase == "Running"
    assert node_status(p2.status, "a").jobName == job_name("run-1", "a")
    assert p2.status.running == "a"


def test_a_job_created_later_in_the_run_is_adopted_after_a_lost_write() -> None:
    ex, _ = started(chain("a", "b", "c"))
    a_done = observed(job("a", "Succeeded"))
    p2 = plan(ex, a_done, T0 + timedelta(seconds=1))
    assert created_nodes(p2) == ["b"]  # ... and the status write is lost: b is still Pending in ex
    assert node_status(ex.status, "b").phase == "Pending"
    p3 = plan(ex, {**a_done, **observed(job("b"))}, T0 + timedelta(seconds=2))
    assert p3.create == []
    assert phases(p3.status) == {"a": "Succeeded", "b": "Running", "c": "Pending"}


def test_adopted_node_keeps_its_input_so_conditions_decide_as_without_the_crash() -> None:
    workflow = spec(node("a", "b"), node("b", edge("c", "condition", 'input.k == "v"')), node("c"))
    ex, _ = started(workflow)
    a_done = observed(job("a", "Succeeded", '{"k": "v"}', finished_at=T0))
    p2 = plan(ex, a_done, T0 + timedelta(seconds=1))
    assert node_status(p2.status, "b").inputFrom == "a"
    # p2's status write is lost; b's Job is found by the next reconcile, already finished.
    p3 = plan(ex, {**a_done, **observed(job("b", "Succeeded", "{}"))}, T0 + timedelta(seconds=2))
    assert node_status(p3.status, "b").inputFrom == "a"
    assert created_nodes(p3) == ["c"]


def test_replay_after_two_lost_writes_restores_inputs_at_once() -> None:
    # parallelism 2. Lost pass 1: n1 fails before starting (no Job), n5 starts. Lost pass 2: n5 has
    # finished, y starts. The replay from the last written status (s, x Running) finds x and y
    # running: both slots taken. n1 must still be decided now, or n5 would be written finished with
    # no input and change later.
    workflow = spec(
        node("s", "n1"), node("x"),
        node("n1", edge("n5", "failure"), script="echo $(input.v)"),
        node("n5", "y"), node("y", edge("z", "condition", 'input == "five"')), node("z"),
        parallelism=2,
    )
    ex, p0 = started(workflow)
    assert created_nodes(p0) == ["s", "x"]
    t = T0 + timedelta(seconds=1)
    seen = observed(job("s", "Succeeded", "{}", finished_at=t), job("x"),
                    job("n5", "Succeeded", '"five"', finished_at=t + timedelta(seconds=1)), job("y"))
    p3 = plan(ex, seen, t + timedelta(seconds=2))
    assert p3.create == []
    assert phases(p3.status) == {"s": "Succeeded", "x": "Running", "n1": "Failed", "n5": "Succeeded",
                                 "y": "Running", "z": "Pending"}
    assert node_status(p3.status, "n5").inputFrom == "n1"
    assert node_status(p3.status, "y").inputFrom == "n5"
    assert len([n for n in p3.status.nodes if n.phase == "Running"]) == 2


def test_node_that_cannot_start_fails_without_waiting_for_a_slot() -> None:
    workflow = spec(node("s", "bad", "ok"), node("slow1"), node("slow2"),
                    node("bad", edge("h", "failure"), script="$(input.v)"), node("ok"), node("h"), parallelism=2)
    ex, p0 = started(workflow)
    assert created_nodes(p0) == ["s", "slow1"]
    p = plan(ex, observed(job("s", "Succeeded", "{}"), job("slow1")), T0 + timedelta(seconds=1))
    assert created_nodes(p) == ["slow2"]
    bad = node_status(p.status, "bad")
    assert (bad.phase, bad.inputFrom) == ("Failed", "s")
    assert "$(input.v)" in bad.message
    assert phases(p.status)["ok"] == phases(p.status)["h"] == "Pending"  # both wait for a slot


def test_pending_node_whose_job_already_finished_takes_its_result() -> None:
    lost = execution(chain("a", "b"))  # a's Job was created, then the status write was lost
    p = plan(lost, observed(job("a", "Succeeded", '{"v": 1}')), T0 + timedelta(seconds=1))
    assert node_status(p.status, "a").phase == "Succeeded"
    assert node_status(p.status, "a").output == {"v": 1}
    assert created_nodes(p) == ["b"]


def test_same_inputs_twice_plan_the_same_job() -> None:
    ex = execution(chain("a", "b"))
    first, second = plan(ex, {}, T0), plan(ex, {}, T0)
    assert first.create == second.create
    assert first.status == second.status


def test_vanished_job_fails_its_node() -> None:
    ex, _ = started(chain("a", "b"))
    p = plan(ex, {}, T0 + timedelta(seconds=3))
    a = node_status(p.status, "a")
    assert a.phase == "Failed"
    assert "disappeared" in a.message
    assert p.create == []
    assert p.status.phase == "Failed"
    assert node_status(p.status, "b").phase == "Skipped"


def test_finished_node_ignores_what_is_observed_later() -> None:
    ex, _ = started(chain("a", "b"))
    p = plan(ex, observed(job("a", "Succeeded", "1")), T0 + timedelta(seconds=1))
    ex = with_status(ex, p.status)
    p2 = plan(ex, observed(job("a", "Failed", "2"), job("b")), T0 + timedelta(seconds=2))
    assert node_status(p2.status, "a").phase == "Succeeded"
    assert node_status(p2.status, "a").output == 1


def test_pod_retries_and_exit_code_are_recorded() -> None:
    ex, _ = started(chain("a"))
    seen = ObservedJob("a", job_name("run-1", "a"), job("a", "Failed").state, pod_name="pod-x", exit_code=3,
                       raw_output="boom", message="BackoffLimitExceeded", retries=2)
    p = plan(ex, {"a": seen}, T0 + timedelta(seconds=1))
    a = node_status(p.status, "a")
    assert (a.exitCode, a.retries, a.podName, a.output) == (3, 2, "pod-x", "boom")
    assert "BackoffLimitExceeded" in p.status.message
