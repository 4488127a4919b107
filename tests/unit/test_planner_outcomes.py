"""The planner, how a run ends: the phase and reason a workflow reaches from its node results,
and conditions that fail at run time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobchain.api.models import WorkflowSpec
from jobchain.engine.execution.events import events_between
from jobchain.engine.execution.planner import plan
from jobchain.engine.spec.render import job_name

from .builders import (
    FAIL,
    T0,
    Result,
    chain,
    created_nodes,
    edge,
    execution,
    job,
    node,
    observed,
    ok,
    phases,
    simulate,
    spec,
    started,
    with_status,
)

# ---- outcomes of whole runs ----------------------------------------------------------------

OUTCOMES: list[tuple[str, WorkflowSpec, dict[str, Result], str, str, dict[str, str]]] = [
    # (id, workflow, what each node's Job does, execution phase, reason, node phases)
    ("chain succeeds", chain("a", "b", "c"), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Succeeded", "c": "Succeeded"}),
    ("failure routes to the failure edge, success edge skipped",
     spec(node("a", edge("deploy"), edge("cleanup", "failure")), node("deploy"), node("cleanup")),
     {"a": FAIL}, "Succeeded", "Succeeded", {"a": "Failed", "deploy": "Skipped", "cleanup": "Succeeded"}),
    ("success skips the failure edge",
     spec(node("a", edge("deploy"), edge("cleanup", "failure")), node("deploy"), node("cleanup")),
     {}, "Succeeded", "Succeeded", {"a": "Succeeded", "deploy": "Succeeded", "cleanup": "Skipped"}),
    ("always runs after a failure, which is handled",
     spec(node("a", edge("report", "always")), node("report")),
     {"a": FAIL}, "Succeeded", "Succeeded", {"a": "Failed", "report": "Succeeded"}),
    ("always runs after a success",
     spec(node("a", edge("report", "always")), node("report")),
     {}, "Succeeded", "Succeeded", {"a": "Succeeded", "report": "Succeeded"}),
    ("unhandled failure fails the execution and skips the rest", chain("a", "b", "c"), {"a": FAIL},
     "Failed", "NodeFailed", {"a": "Failed", "b": "Skipped", "c": "Skipped"}),
    ("handled failure downstream of a failure handler still fails if itself unhandled",
     spec(node("a", edge("fix", "failure")), node("fix")), {"a": FAIL, "fix": FAIL},
     "Failed", "NodeFailed", {"a": "Failed", "fix": "Failed"}),
    ("condition true runs the node",
     spec(node("a", edge("big", "condition", "output.n > 10")), node("big")), {"a": ok({"n": 11})},
     "Succeeded", "Succeeded", {"a": "Succeeded", "big": "Succeeded"}),
    ("condition false skips the node",
     spec(node("a", edge("big", "condition", "output.n > 10")), node("big")), {"a": ok({"n": 3})},
     "Succeeded", "Succeeded", {"a": "Succeeded", "big": "Skipped"}),
    ("condition on a failed node does not hold",
     spec(node("a", edge("big", "condition", "true"), edge("h", "failure")), node("big"), node("h")),
     {"a": FAIL}, "Succeeded", "Succeeded", {"a": "Failed", "big": "Skipped", "h": "Succeeded"}),
    ("has() tests an optional key",
     spec(node("a", edge("b", "condition", "has(output.skip) && output.skip")), node("b")), {"a": ok({})},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Skipped"}),
    ("condition sees params",
     spec(node("a", edge("b", "condition", 'params.env == "prod"')), node("b"),
          params=[{"name": "env", "default": "prod"}]), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Succeeded"}),
    ("condition sees node exit code",
     spec(node("a", edge("b", "condition", "node.exitCode == 0 && node.phase == 'Succeeded'")), node("b")), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Succeeded"}),
    ("condition sees input and other nodes",
     spec(node("a", "m"), node("m", edge("b", "condition",
                                         'input.k == "v" && nodes.a.output.k == "v" && nodes.a.phase == "Succeeded"')),
          node("b")),
     {"a": ok({"k": "v"})}, "Succeeded", "Succeeded", {"a": "Succeeded", "m": "Succeeded", "b": "Succeeded"}),
    ("join all runs when every edge holds",
     spec(node("a", "j"), node("b", "j"), node("j")), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Succeeded", "j": "Succeeded"}),
    ("join all skips when one edge does not hold",
     spec(node("a", "j"), node("b", "j", edge("h", "failure")), node("j"), node("h")), {"b": FAIL},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Failed", "j": "Skipped", "h": "Succeeded"}),
    ("join any runs when one edge holds",
     spec(node("a", "j"), node("b", "j", edge("h", "failure")), node("j", join="any"), node("h")), {"b": FAIL},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Failed", "j": "Succeeded", "h": "Succeeded"}),
    ("join any skips when no edge holds",
     spec(node("a", "j", edge("h1", "failure")), node("b", "j", edge("h2", "failure")), node("j", join="any"),
          node("h1"), node("h2")),
     {"a": FAIL, "b": FAIL}, "Succeeded", "Succeeded",
     {"a": "Failed", "b": "Failed", "j": "Skipped", "h1": "Succeeded", "h2": "Succeeded"}),
    ("join any waits for every incoming edge to be decided",
     spec(node("a", "j"), node("b", "c"), node("c", "j"), node("j", join="any")), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Succeeded", "c": "Succeeded", "j": "Succeeded"}),
    ("skip cascades through always edges: a skipped node's edges hold for nothing",
     spec(node("a", edge("b", "condition", "false")), node("b", edge("c", "always")), node("c", "d"), node("d")),
     {}, "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Skipped", "c": "Skipped", "d": "Skipped"}),
    ("skip cascade stops at a join any with another holding edge",
     spec(node("a", edge("b", "condition", "false"), "j"), node("b", "j"), node("j", join="any")), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Skipped", "j": "Succeeded"}),
    ("failed node message names the failed nodes", spec(node("a"), node("b")), {"a": FAIL, "b": FAIL},
     "Failed", "NodeFailed", {"a": "Failed", "b": "Failed"}),
]


@pytest.mark.parametrize(("workflow", "results", "phase", "reason", "node_phases"),
                         [c[1:] for c in OUTCOMES], ids=[c[0] for c in OUTCOMES])
def test_a_workflow_with_these_node_results_ends_in_this_phase_and_reason(
        workflow: WorkflowSpec, results: dict[str, Result], phase: str, reason: str,
        node_phases: dict[str, str]) -> None:
    run = simulate(workflow, results)
    assert phases(run.status) == node_phases
    assert run.status.phase == phase
    assert run.status.reason == reason
    assert run.status.finishedAt is not None
    unhandled = [n for n, r in results.items() if r == FAIL and phase == "Failed"]
    for name in unhandled:
        if not any(e.type in ("failure", "always") for e in next(n for n in workflow.nodes if n.name == name).next):
            assert name in run.status.message
    skipped = [n for n in run.status.nodes if n.phase == "Skipped"]
    assert all(n.jobName is None and n.message.startswith("skipped:") for n in skipped)
    assert sorted(run.cluster.creates) == sorted(n for n, p in node_phases.items() if p != "Skipped")


def test_unhandled_failure_message_names_only_the_unhandled_node() -> None:
    workflow = spec(node("a", edge("h", "failure")), node("h"), node("b"))
    run = simulate(workflow, {"a": FAIL, "b": ("Failed", None)})
    assert run.status.phase == "Failed"
    assert "node(s) b failed" in run.status.message
    assert "a:" not in run.status.message


# ---- conditions that fail at run time ------------------------------------------------------

def test_condition_runtime_error_fails_the_execution_with_condition_error() -> None:
    workflow = spec(node("a", edge("b", "condition", "output.missing == 1")), node("b"), node("slow"),
                    parallelism=2)
    ex = execution(workflow)
    p1 = plan(ex, {}, T0)
    assert created_nodes(p1) == ["a", "slow"]
    ex = with_status(ex, p1.status)
    p2 = plan(ex, observed(job("a", "Succeeded", '{"k": 1}'), job("slow")), T0 + timedelta(seconds=1))
    status = p2.status
    assert status.phase == "Failed"
    assert status.reason == "ConditionError"
    assert "spec.nodes[0].next[0]" in status.message
    assert "a -> b" in status.message
    assert "output.missing == 1" in status.message
    assert "has(...)" in status.message
    assert p2.delete == [job_name("run-1", "slow")]
    assert p2.create == []
    assert phases(status) == {"a": "Succeeded", "b": "Cancelled", "slow": "Cancelled"}


def test_condition_error_after_a_start_in_the_same_pass_creates_no_job() -> None:
    # x fails before starting (unresolved reference) while y starts; only then is z decided, and its
    # condition errors. y is Cancelled with the execution: it must not get a Job.
    workflow = spec(
        node("a", "x", "y", edge("z", "condition", "output.missing == 1")),
        node("x", edge("z", "failure"), script="echo $(input.nope)"),
        node("y"),
        node("z"),
        parallelism=2,
    )
    ex, _ = started(workflow)
    p = plan(ex, observed(job("a", "Succeeded", "{}")), T0 + timedelta(seconds=1))
    assert p.status.reason == "ConditionError"
    assert phases(p.status) == {"a": "Succeeded", "x": "Failed", "y": "Cancelled", "z": "Cancelled"}
    assert p.create == []
    assert "NodeStarted" not in [e.reason for e in events_between(ex.status, p.status)]  # no Job, no event


def test_condition_that_is_not_a_bool_is_a_condition_error() -> None:
    run = simulate(spec(node("a", edge("b", "condition", "output.n")), node("b")), {"a": ok({"n": 1})})
    assert run.status.reason == "ConditionError"
    assert "bool" in run.status.message
