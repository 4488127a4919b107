"""The planner, a workflow or params it cannot run: not found, invalid, or params refused, each
said in status."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from jobchain.engine.execution.planner import plan

from .builders import (
    T0,
    chain,
    created_nodes,
    env_of,
    execution,
    job,
    lookup,
    node,
    observed,
    script_seen,
    spec,
    with_status,
)

# ---- workflow and params problems ----------------------------------------------------------

def test_a_workflow_not_found_fails_the_execution_saying_where_it_looked() -> None:
    p = plan(execution(ref="etl"), {}, T0, lookup(None, "etl", found=False))
    assert (p.status.phase, p.status.reason) == ("Failed", "WorkflowNotFound")
    assert "'etl' not found in namespace 'team-a'" in p.status.message
    assert p.create == []
    assert p.status.finishedAt is not None


def test_invalid_referenced_workflow_that_did_not_parse() -> None:
    p = plan(execution(ref="etl"), {}, T0, lookup(None, "etl", problems=["spec.nodes[0].scirpt: unknown field"]))
    assert (p.status.phase, p.status.reason) == ("Failed", "InvalidWorkflow")
    assert "spec.nodes[0].scirpt: unknown field" in p.status.message
    assert "Fix the Workflow" in p.status.message


@pytest.mark.parametrize("inline", [True, False])
def test_invalid_workflow_graph_fails_at_once_saying_what_to_fix(inline: bool) -> None:
    bad = spec(node("a", "nope"))
    ex = execution(bad) if inline else execution(ref="etl")
    p = plan(ex, {}, T0, None if inline else lookup(bad, "etl"))
    assert (p.status.phase, p.status.reason) == ("Failed", "InvalidWorkflow")
    assert "spec.nodes[0].next[0].node: edge to unknown node 'nope'" in p.status.message
    assert ("spec.workflow" if inline else "Workflow 'etl'") in p.status.message
    assert p.create == []


PARAMS: list[tuple[str, dict[str, str], list[str]]] = [
    ("unknown param", {"colour": "red", "env": "x"},
     ["spec.params.colour: spec.workflow does not declare this param (declared: env, region)"]),
    ("missing param without default", {}, ["spec.params: must set 'env': spec.workflow declares it without a default"]),
    ("both", {"oops": "1"}, ["spec.params.oops: ", "does not declare", "must set 'env'"]),
]


@pytest.mark.parametrize(("params", "phrases"), [c[1:] for c in PARAMS], ids=[c[0] for c in PARAMS])
def test_invalid_params_fail_the_execution_before_any_job_saying_why(
        params: dict[str, str], phrases: list[str]) -> None:
    workflow = spec(node("a"), params=[{"name": "env"}, {"name": "region", "default": "eu"}])
    p = plan(execution(workflow, params=params), {}, T0)
    assert (p.status.phase, p.status.reason) == ("Failed", "InvalidParams")
    for phrase in phrases:
        assert phrase in p.status.message
    assert p.create == []


def test_params_are_resolved_with_defaults_and_passed_to_nodes() -> None:
    workflow = spec(node("a", script="echo $(params.env) $(params.region)"),
                    params=[{"name": "env"}, {"name": "region", "default": "eu"}])
    p = plan(execution(workflow, params={"env": "prod"}), {}, T0)
    assert p.status.params == {"env": "prod", "region": "eu"}
    assert json.loads(env_of(p.create[0])["JOBCHAIN_PARAMS"]) == {"env": "prod", "region": "eu"}
    assert script_seen(p.create[0]) == "echo prod eu"


def test_workflow_snapshot_is_kept_editing_the_workflow_changes_nothing() -> None:
    ex = execution(ref="etl")
    p1 = plan(ex, {}, T0, lookup(chain("a", "b"), "etl"))
    assert p1.status.workflowName == "etl"
    ex = with_status(ex, p1.status)
    p2 = plan(ex, observed(job("a", "Succeeded")), T0 + timedelta(seconds=1), lookup(chain("x"), "etl"))
    assert created_nodes(p2) == ["b"]
    assert p2.create[0]["metadata"]["labels"]["jobchain.dev/workflow"] == "etl"
    assert p2.status.workflowSpec == chain("a", "b")
