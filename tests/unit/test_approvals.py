"""Approval gates: a node that runs no Job and waits (phase Waiting) for spec.approvals to decide it.

Each scenario drives plan() pass by pass with an injected clock, as the controller would; a lost
status write is a pass whose status is not kept (the next pass starts from the older status)."""

from __future__ import annotations

import json
from datetime import timedelta

from jobchain.api.models import ExecutionStatus
from jobchain.engine.execution.events import events_between
from jobchain.engine.execution.planner import Plan, plan
from jobchain.engine.spec.validation import validate_workflow
from jobchain.engine.timefmt import iso

from .builders import (
    EXECUTION,
    T0,
    FakeCluster,
    created_nodes,
    decide,
    edge,
    env_of,
    execution,
    execution_body,
    gate,
    job,
    node,
    node_status,
    observed,
    pass_of,
    phases,
    spec,
    with_status,
)

A_DONE = T0 + timedelta(seconds=5)
CHAIN = spec(node("a", "approve"), gate("approve", "deploy", timeout=600), node("deploy"))


def at_gate(workflow=CHAIN, **kwargs):  # type: ignore[no-untyped-def]
    """The execution after `a` finished at A_DONE and a pass at A_DONE + 1s reached the gate."""
    ex = execution(workflow, **kwargs)
    first = plan(ex, {}, T0)
    ex = with_status(ex, first.status)
    p = plan(ex, observed(job("a", "Succeeded", '{"v": 1}', finished_at=A_DONE)), A_DONE + timedelta(seconds=1))
    return with_status(ex, p.status), p, first.status


def reasons(old: ExecutionStatus, p: Plan) -> list[str]:
    return [e.reason for e in events_between(old, p.status)]


def a_done() -> dict:  # type: ignore[type-arg]
    return observed(job("a", "Succeeded", '{"v": 1}', finished_at=A_DONE))


def test_a_reached_gate_waits_with_no_job_and_asks_once() -> None:
    ex, p, before = at_gate()
    gate_status = node_status(p.status, "approve")
    assert gate_status.phase == "Waiting"
    assert gate_status.startedAt == iso(A_DONE)  # reached when `a` finished, whenever the pass ran
    assert created_nodes(p) == []
    assert p.status.phase == "Running"
    assert [(w.name, w.message, w.since, w.deadline) for w in p.status.waiting or []] == [
        ("approve", "ship it?", iso(A_DONE), iso(A_DONE + timedelta(seconds=600)))]
    assert p.status.running == "approve (waiting)"
    assert "ApprovalRequested" in reasons(before, p)
    assert p.wake_at == A_DONE + timedelta(seconds=600)  # the pass that times it out
    again = plan(ex, a_done(), A_DONE + timedelta(seconds=30))
    assert reasons(ex.status, again) == []  # asked once
    assert phases(again.status) == phases(ex.status) and again.create == []


def test_approve_succeeds_the_gate_and_the_next_node_gets_the_decision_as_input() -> None:
    ex, _, _ = at_gate()
    ex = decide(ex, "approve", "approve", "ok by alice")
    p = plan(ex, a_done(), A_DONE + timedelta(seconds=40))
    gate_status = node_status(p.status, "approve")
    assert gate_status.phase == "Succeeded" and gate_status.reason == "Approved"
    assert gate_status.output == {"approved": True, "message": "ok by alice"}
    assert "ok by alice" in gate_status.message
    assert created_nodes(p) == ["deploy"]
    assert node_status(p.status, "deploy").inputFrom == "approve"
    assert json.loads(env_of(p.create[0])["JOBCHAIN_INPUT"]) == {"approved": True, "message": "ok by alice"}
    assert p.status.waiting is None


def test_deny_fails_the_gate_and_routes_its_failure_edge() -> None:
    wf = spec(node("a", "approve"), gate("approve", edge("deploy"), edge("notify", "failure")),
              node("deploy"), node("notify"))
    ex, _, _ = at_gate(wf)
    ex = decide(ex, "approve", "deny", "not today")
    p = plan(ex, a_done(), A_DONE + timedelta(seconds=40))
    assert phases(p.status) == {"a": "Succeeded", "approve": "Failed", "deploy": "Skipped", "notify": "Running"}
    assert node_status(p.status, "approve").reason == "Denied"
    assert created_nodes(p) == ["notify"]


def test_deny_without_a_failure_edge_fails_the_execution() -> None:
    ex, _, _ = at_gate()
    p = plan(decide(ex, "approve", "deny"), a_done(), A_DONE + timedelta(seconds=40))
    assert (p.status.phase, p.status.reason) == ("Failed", "NodeFailed")
    assert "approve" in p.status.message


def test_timeout_fails_the_gate_at_its_deadline_decided_from_status_times() -> None:
    ex, _, _ = at_gate()
    deadline = A_DONE + timedelta(seconds=600)
    early = plan(ex, a_done(), deadline - timedelta(seconds=1))
    assert node_status(early.status, "approve").phase == "Waiting"
    late = plan(ex, a_done(), deadline + timedelta(seconds=77))  # the operator came late
    gate_status = node_status(late.status, "approve")
    assert (gate_status.phase, gate_status.reason) == ("Failed", "ApprovalTimeout")
    assert gate_status.finishedAt == iso(deadline)
    assert (late.status.phase, late.status.reason) == ("Failed", "NodeFailed")


def test_a_decision_given_before_the_gate_is_reached_waits_for_it() -> None:
    ex = decide(execution(CHAIN), "approve", "approve", "pre-approved")
    first = plan(ex, {}, T0)
    assert node_status(first.status, "approve").phase == "Pending"  # not reached: not decided yet
    ex = with_status(ex, first.status)
    p = plan(ex, a_done(), A_DONE + timedelta(seconds=1))
    assert node_status(p.status, "approve").phase == "Succeeded"
    assert created_nodes(p) == ["deploy"]  # in the same pass
    assert "ApprovalRequested" not in reasons(ex.status, p)


def test_a_decision_after_the_gate_timed_out_is_ignored_with_one_warning() -> None:
    ex, _, _ = at_gate()
    late = plan(ex, a_done(), A_DONE + timedelta(seconds=601))
    ex = with_status(ex, late.status)
    ex = decide(ex, "approve", "approve")
    p = plan(ex, a_done(), A_DONE + timedelta(seconds=700))
    assert node_status(p.status, "approve").phase == "Failed"
    assert node_status(p.status, "approve").ignoredDecision == "approve"
    assert reasons(ex.status, p) == ["ApprovalIgnored"]
    ex = with_status(ex, p.status)
    again = plan(ex, a_done(), A_DONE + timedelta(seconds=800))
    assert reasons(ex.status, again) == []  # once, not every pass


def test_changing_an_approval_after_it_was_taken_is_ignored() -> None:
    ex, _, _ = at_gate()
    ex = decide(ex, "approve", "approve")
    p = plan(ex, a_done(), A_DONE + timedelta(seconds=5))
    ex = with_status(decide(ex, "approve", "deny"), p.status)
    seen = observed(job("a", "Succeeded", '{"v": 1}', finished_at=A_DONE), job("deploy"))
    q = plan(ex, seen, A_DONE + timedelta(seconds=6))
    assert node_status(q.status, "approve").phase == "Succeeded"
    assert reasons(ex.status, q) == ["ApprovalIgnored"]


def test_a_gate_in_a_parallel_branch_waits_while_the_other_branch_runs() -> None:
    wf = spec(node("a", "approve", "work"), gate("approve", "deploy"), node("work"), node("deploy"))
    ex, p, _ = at_gate(wf)  # parallelism 1: the gate takes no slot
    assert created_nodes(p) == ["work"]
    assert phases(p.status)["approve"] == "Waiting"
    seen = observed(job("a", "Succeeded", '{"v": 1}', finished_at=A_DONE),
                    job("work", "Succeeded", finished_at=A_DONE + timedelta(seconds=9)))
    q = plan(ex, seen, A_DONE + timedelta(seconds=10))
    assert phases(q.status) == {"a": "Succeeded", "approve": "Waiting", "work": "Succeeded", "deploy": "Pending"}
    assert q.status.phase == "Running"
    r = plan(decide(with_status(ex, q.status), "approve", "approve"), seen, A_DONE + timedelta(seconds=11))
    assert created_nodes(r) == ["deploy"]


def test_cancel_cancels_a_waiting_gate() -> None:
    ex, _, _ = at_gate()
    p = plan(with_status(ex, ex.status, cancel=True), a_done(), A_DONE + timedelta(seconds=3))
    assert phases(p.status)["approve"] == "Cancelled"
    assert p.status.phase == "Cancelled"


# ---- lost status writes and replayed passes ------------------------------------------------

def test_reaching_the_gate_replayed_later_keeps_when_it_was_reached() -> None:
    ex = execution(CHAIN)
    ex = with_status(ex, plan(ex, {}, T0).status)
    first = plan(ex, a_done(), A_DONE + timedelta(seconds=1))
    replay = plan(ex, a_done(), A_DONE + timedelta(seconds=90))  # the first write was lost
    assert replay.status.waiting == first.status.waiting
    assert node_status(replay.status, "approve") == node_status(first.status, "approve")


def test_a_timeout_replayed_after_a_lost_write_decides_the_same() -> None:
    ex, _, _ = at_gate()
    one = plan(ex, a_done(), A_DONE + timedelta(seconds=650))
    two = plan(ex, a_done(), A_DONE + timedelta(seconds=900))
    assert node_status(one.status, "approve") == node_status(two.status, "approve")
    assert one.status.message == two.status.message


def test_an_approval_replayed_after_a_lost_write_starts_the_next_node_once() -> None:
    ex, _, _ = at_gate()
    ex = decide(ex, "approve", "approve")
    one = plan(ex, a_done(), A_DONE + timedelta(seconds=20))
    # lost write: the Job was created; the replay adopts it instead of making a second one
    seen = observed(job("a", "Succeeded", '{"v": 1}', finished_at=A_DONE), job("deploy"))
    two = plan(ex, seen, A_DONE + timedelta(seconds=21))
    assert created_nodes(one) == ["deploy"]
    assert created_nodes(two) == []  # adopted: no second Job
    assert phases(two.status) == phases(one.status)
    assert node_status(two.status, "approve").output == node_status(one.status, "approve").output


# ---- validation ----------------------------------------------------------------------------

def test_a_gate_with_job_fields_is_refused_with_the_field_path() -> None:
    wf = spec(node("a", "approve"),
              {"name": "approve", "approval": {"message": "?"}, "script": "echo", "timeoutSeconds": 5},
              node("deploy"))
    problems = [str(p) for p in validate_workflow(wf)]
    assert any(p.startswith("spec.nodes[1].script: an approval gate runs no Job") for p in problems), problems
    assert any(p.startswith("spec.nodes[1].timeoutSeconds:") and "approval.timeoutSeconds" in p
               for p in problems), problems


def test_a_gate_needs_no_image() -> None:
    assert validate_workflow(CHAIN) == []


# ---- the controller: Events posted, the count the metric sums -------------------------------

def test_the_controller_posts_approval_requested_once_and_counts_the_waiting_gate() -> None:
    cluster = FakeCluster(execution_body(CHAIN))
    pass_of(cluster, EXECUTION)
    cluster.finish("a", "Succeeded", '{"v": 1}', A_DONE)
    cluster.take_actions()
    outcome = pass_of(cluster, EXECUTION, 6)
    assert ("event", "ApprovalRequested") in cluster.take_actions()
    assert (outcome.phase, outcome.waiting) == ("Running", 1)
    again = pass_of(cluster, EXECUTION, 7)
    assert [a for a in cluster.take_actions() if a[0] == "event"] == []
    assert again.waiting == 1
    body = cluster.executions[EXECUTION]
    body["spec"]["approvals"] = {"approve": {"decision": "approve", "message": "bob"}}
    done = pass_of(cluster, EXECUTION, 8)
    assert done.waiting == 0
    assert ("create", "job", "deploy") in cluster.take_actions()
    assert cluster.status().waiting is None


def test_an_approval_whose_write_was_lost_is_taken_again_by_a_cancelling_pass() -> None:
    ex, _, _ = at_gate()
    ex = decide(ex, "approve", "approve")
    one = plan(ex, a_done(), A_DONE + timedelta(seconds=20))
    assert created_nodes(one) == ["deploy"]
    # that write is lost; then a cancel: the replay takes the approval that explains deploy's Job
    seen = observed(job("a", "Succeeded", '{"v": 1}', finished_at=A_DONE), job("deploy"))
    two = plan(with_status(ex, ex.status, cancel=True), seen, A_DONE + timedelta(seconds=21))
    assert phases(two.status) == {"a": "Succeeded", "approve": "Succeeded", "deploy": "Cancelled"}
    assert two.status.phase == "Cancelled"


def test_the_input_of_a_node_after_a_gate_and_a_job_does_not_change_with_a_replay() -> None:
    # found by test_approval_properties: `join` sees a denied gate and a node that finished after it
    # was reached; the decision's pass lost its write, and the replay came later than the node's end
    wf = spec(node("slow", edge("after", "always")), gate("approve", edge("after", "failure")),
              node("after", join="any"))
    ex = execution(wf)
    ex = with_status(ex, plan(ex, {}, T0).status)  # the gate is reached at T0 and waits
    ex = decide(ex, "approve", "deny")  # a pass at T0 + 1s takes it; its write is lost
    seen = observed(job("slow", "Succeeded", finished_at=T0 + timedelta(seconds=3)))
    replay = plan(ex, seen, T0 + timedelta(seconds=4))
    gate_status = node_status(replay.status, "approve")
    assert gate_status.finishedAt == iso(T0)  # when it was reached, not when a pass saw it
    assert node_status(replay.status, "after").inputFrom == "slow"  # it finished last


def test_a_gate_decided_in_the_pass_that_reached_it_stays_decided_when_a_cancel_replays_it() -> None:
    # found by test_approval_properties: the decision was in spec before the gate was reached, so the
    # pass that reached it decided it and started deploy; its status write was lost, and the next pass
    # saw a cancel. The gate was never Waiting in status, yet its fate was sealed like a skip's is.
    ex = decide(execution(CHAIN), "approve", "approve", "ok by alice")
    ex = with_status(ex, plan(ex, {}, T0).status)
    one = plan(ex, a_done(), A_DONE + timedelta(seconds=1))
    assert created_nodes(one) == ["deploy"]
    seen = observed(job("a", "Succeeded", '{"v": 1}', finished_at=A_DONE), job("deploy"))
    two = plan(with_status(ex, ex.status, cancel=True), seen, A_DONE + timedelta(seconds=2))
    assert phases(two.status) == {"a": "Succeeded", "approve": "Succeeded", "deploy": "Cancelled"}
    assert node_status(two.status, "approve") == node_status(one.status, "approve")
    assert node_status(two.status, "deploy").inputFrom == "approve"  # deploy's Job is explained


def test_a_gate_that_timed_out_before_a_cancel_pass_is_decided_by_its_timeout_not_cancelled() -> None:
    # the pass that reached the gate lost its write; the next came after the gate's timeout, with a cancel
    wf = spec(node("a", "approve"), gate("approve", "deploy", timeout=5), node("deploy"))
    ex = execution(wf)
    ex = with_status(ex, plan(ex, {}, T0).status)
    waited = plan(ex, a_done(), A_DONE + timedelta(seconds=1))
    steady = plan(with_status(ex, waited.status, cancel=True), a_done(), A_DONE + timedelta(seconds=6))
    replay = plan(with_status(ex, ex.status, cancel=True), a_done(), A_DONE + timedelta(seconds=6))
    assert node_status(steady.status, "approve").reason == "ApprovalTimeout"
    assert node_status(replay.status, "approve") == node_status(steady.status, "approve")


def test_a_stop_does_not_put_a_gate_without_a_decision_waiting() -> None:
    ex = execution(CHAIN)
    ex = with_status(ex, plan(ex, {}, T0).status, stop=True)
    p = plan(ex, a_done(), A_DONE + timedelta(seconds=1))
    assert phases(p.status)["approve"] == "Cancelled" and p.status.reason == "Stopped"
