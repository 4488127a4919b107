"""The planner, what a node reads: outputs passed on as inputs and references, from which
predecessor, and references that cannot resolve."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from jobchain.api.models import WorkflowSpec
from jobchain.engine.execution.planner import plan
from jobchain.engine.spec.render import job_name

from .builders import (
    T0,
    Result,
    created_nodes,
    edge,
    env_of,
    execution,
    job,
    node,
    node_status,
    observed,
    ok,
    phases,
    script_seen,
    simulate,
    spec,
    with_status,
)

# ---- outputs and inputs --------------------------------------------------------------------

def test_chain_passes_outputs_as_input_env_and_references() -> None:
    workflow = spec(
        node("extract", "transform"),
        node("transform", "load", script="fetch $(input.url) --rows $(input.rows)"),
        node("load", env=[{"name": "SRC", "value": "$(nodes.extract.output.url)"},
                          {"name": "PREV", "value": "$(input)"}]),
    )
    results = {"extract": ok({"url": "s3://b/k", "rows": 5}), "transform": ok("done")}
    run = simulate(workflow, results)
    assert run.status.phase == "Succeeded"
    transform = run.cluster.manifests[job_name("run-1", "transform")]
    assert json.loads(env_of(transform)["JOBCHAIN_INPUT"]) == {"url": "s3://b/k", "rows": 5}
    assert script_seen(transform) == "fetch s3://b/k --rows 5"
    load_env = env_of(run.cluster.manifests[job_name("run-1", "load")])
    assert load_env["SRC"] == "s3://b/k"
    assert load_env["PREV"] == "done"
    assert node_status(run.status, "extract").output == {"url": "s3://b/k", "rows": 5}
    assert node_status(run.status, "transform").output == "done"
    assert node_status(run.status, "transform").inputFrom == "extract"
    assert node_status(run.status, "extract").inputFrom is None


@pytest.mark.parametrize("join", ["all", "any"])
@pytest.mark.parametrize(("first", "last"), [("a", "b"), ("b", "a")])
def test_input_comes_from_the_predecessor_that_finished_last(join: str, first: str, last: str) -> None:
    workflow = spec(node("a", "j"), node("b", "j"), node("j", join=join), parallelism=2)
    ex = execution(workflow)
    p1 = plan(ex, {}, T0)
    assert created_nodes(p1) == ["a", "b"]
    ex = with_status(ex, p1.status)
    t1, t2 = T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)
    done = observed(job(first, "Succeeded", f'"from {first}"', finished_at=t1),
                    job(last, "Succeeded", f'"from {last}"', finished_at=t2))
    p2 = plan(ex, done, t2 + timedelta(seconds=1))
    assert created_nodes(p2) == ["j"]
    assert env_of(p2.create[0])["JOBCHAIN_INPUT"] == f'"from {last}"'
    assert node_status(p2.status, "j").inputFrom == last


def test_input_is_from_the_edge_that_held_not_a_later_skipped_one() -> None:
    workflow = spec(node("a", "j"), node("b", edge("j", "failure")), node("j", join="any"), parallelism=2)
    ex = execution(workflow)
    ex = with_status(ex, plan(ex, {}, T0).status)
    done = observed(job("a", "Succeeded", '"a"', finished_at=T0 + timedelta(seconds=1)),
                    job("b", "Succeeded", '"b"', finished_at=T0 + timedelta(seconds=2)))
    p = plan(ex, done, T0 + timedelta(seconds=3))
    assert node_status(p.status, "j").inputFrom == "a"
    assert env_of(p.create[0])["JOBCHAIN_INPUT"] == '"a"'


UNRESOLVED: list[tuple[str, WorkflowSpec, dict[str, Result], str, str]] = [
    ("missing input key", spec(node("a", "b"), node("b", script="echo $(input.url)")),
     {"a": ok({"other": 1})}, "b", "$(input.url)"),
    ("input is text, not an object", spec(node("a", "b"), node("b", args=["$(input.url)"])),
     {"a": ok("plain")}, "b", "$(input.url)"),
    ("output of a node that was skipped", spec(
        node("a", edge("s", "condition", "false"), "b"), node("s", "b"),
        node("b", join="any", env=[{"name": "X", "value": "$(nodes.s.output)"}])),
     {}, "b", "$(nodes.s.output)"),
]


@pytest.mark.parametrize(("workflow", "results", "failed", "reference"),
                         [c[1:] for c in UNRESOLVED], ids=[c[0] for c in UNRESOLVED])
def test_unresolvable_reference_fails_the_node_naming_it(workflow: WorkflowSpec, results: dict[str, Result],
                                                          failed: str, reference: str) -> None:
    run = simulate(workflow, results)
    status = node_status(run.status, failed)
    assert status.phase == "Failed"
    assert reference in status.message
    assert status.jobName is None
    assert failed not in run.cluster.creates
    assert run.status.phase == "Failed"
    assert reference in run.status.message


def test_unresolvable_reference_can_be_handled_by_a_failure_edge() -> None:
    workflow = spec(node("a", "b"), node("b", edge("h", "failure"), script="echo $(input.x)"), node("h"))
    run = simulate(workflow, {"a": ok({})})
    assert phases(run.status) == {"a": "Succeeded", "b": "Failed", "h": "Succeeded"}
    assert run.status.phase == "Succeeded"
