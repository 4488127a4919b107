"""The planner's invariants with approval gates, over random workflows (planner_sim.py): decisions
arrive before a gate is reached, while it waits, after its timeout, or never; passes are retried and
status writes lost. Besides the invariants every run keeps (test_planner_properties), a gate never
gets a Job, ends as its decision or its timeout says, and lost writes change nothing of the result,
but for one rule: a decision in spec has no time, so a pass that sees one for a waiting gate takes
it, even when the pass that had timed the gate out (or cancelled it) lost its write."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jobchain.api.models import ExecutionStatus, NodeStatus

from .builders import T0
from .planner_sim import EXAMPLES, Outcome, Scenario, run, scenarios
from .test_planner_properties import check_final, check_lost_writes_change_nothing


def _time(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_gates(sc: Scenario, outcome: Outcome, steady: bool) -> None:
    """Each gate: no Job, and an end its decision or its timeout explains."""
    nodes = {m.name: m for m in outcome.status.nodes}
    for spec_node in sc.workflow.nodes:
        if spec_node.approval is None:
            continue
        me = nodes[spec_node.name]
        assert spec_node.name not in outcome.manifests, f"gate {me.name} got a Job"
        given = sc.approvals.get(me.name)
        timeout = spec_node.approval.timeoutSeconds
        if me.reason == "Approved":
            assert given is not None and given[0] == "approve" and me.phase == "Succeeded"
            assert me.output == {"approved": True, "message": given[1]}
            event("a gate was approved")
        elif me.reason == "Denied":
            assert given is not None and given[0] == "deny" and me.phase == "Failed"
            event("a gate was denied")
        elif me.reason == "ApprovalTimeout":
            assert timeout is not None and me.phase == "Failed"
            assert _time(me.finishedAt) - _time(me.startedAt) == timedelta(seconds=timeout)
            if steady and given is not None and outcome.status.reason in ("Succeeded", "NodeFailed"):
                # a decision that came while the gate waited would have decided it
                assert T0 + timedelta(seconds=given[2]) > _time(me.finishedAt)
                event("a decision came after its gate timed out")
        else:
            assert me.phase in ("Pending", "Skipped", "Cancelled"), f"gate {me.name} is {me.phase}, {me.reason}"
        if given is not None and me.reason in ("Approved", "Denied", "ApprovalTimeout"):
            agrees = {"Approved": "approve", "Denied": "deny"}.get(me.reason) == given[0]
            if agrees:
                assert me.ignoredDecision is None


def decided_late(sc: Scenario, steady: ExecutionStatus, crashing: Outcome) -> bool:
    """The one way lost writes may change a result: a gate timed out (or was cancelled by a cancel or
    the deadline) in the steady run, and in the crashing one the pass that did so lost its write and
    the next saw a decision that came after it: decided by it, by the rule."""
    steady_nodes: dict[str, NodeStatus] = {m.name: m for m in steady.nodes}
    for m in crashing.status.nodes:
        was = steady_nodes[m.name]
        if m.reason in ("Approved", "Denied") and was.reason != m.reason:
            assert crashing.lost > 0
            assert was.reason == "ApprovalTimeout" or was.phase == "Cancelled", (was.phase, was.reason)
            given = sc.approvals[m.name]
            assert T0 + timedelta(seconds=given[2]) > _time(was.finishedAt)  # it came after that end
            return True
    return False


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=not os.environ.get("JOBCHAIN_PROPERTY_SEARCH"), database=None)
@given(sc=scenarios(gates=True), data=st.data())
def test_gates_hold_the_invariants_under_decisions_retries_and_lost_writes(sc: Scenario, data: st.DataObject) -> None:
    steady = run(sc, None)
    crashing = run(sc, data)
    event(f"ended {crashing.status.phase}/{crashing.status.reason}")
    for outcome, is_steady in ((steady, True), (crashing, False)):
        check_gates(sc, outcome, is_steady)
        check_final(sc.workflow, outcome.status, outcome)
    if decided_late(sc, steady.status, crashing):
        event("a timeout's write lost, then a decision came: decided by it, by the rule")
        return
    check_lost_writes_change_nothing(steady, crashing)
