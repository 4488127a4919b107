"""One validation module: the operator, `jobchain lint` and `jobchain run` refuse the same input
with the same words, and no hostile workflow costs the operator more than a moment."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobchain.api.models import WorkflowExecutionSpec
from jobchain.api.vocabulary import WORKFLOWS
from jobchain.cli import run
from jobchain.cli.errors import CliError
from jobchain.cli.lint import run_lint
from jobchain.engine.execution.passes import workflow_status
from jobchain.engine.execution.planner import plan
from jobchain.engine.spec.validation import join, validate_execution, validate_params
from tests.support import nested_all

from .builders import T0, edge, execution, job, lookup, node, observed, spec, with_status
from .fakes import FakeCluster

DECLARED = [{"name": "target"}, {"name": "size", "default": "1"}]


@pytest.mark.parametrize("params", [{}, {"target": "t", "sise": "2"}, {"sise": "2"}])
def test_the_params_check_says_the_same_in_the_operator_lint_and_run(tmp_path: Path, params: dict[str, str]) -> None:
    workflow = spec(node("a"), params=DECLARED)
    expected = validate_params(params, workflow.params, "Workflow 'etl'")
    assert expected

    # The operator: the execution fails with reason InvalidParams and exactly these problems.
    ex = execution(ref="etl", params=params)
    p = plan(ex, {}, T0, lookup(workflow, "etl"))
    assert (p.status.phase, p.status.reason, p.status.message) == ("Failed", "InvalidParams", join(expected))

    # jobchain lint: one line per problem, FILE: KIND/NAME: path: message.
    files = [{"apiVersion": "jobchain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "etl"},
              "spec": workflow.model_dump(mode="json", by_alias=True, exclude_none=True)},
             {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution", "metadata": {"name": "e"},
              "spec": {"workflowRef": {"name": "etl"}, "params": params}}]
    path = tmp_path / "etl.yaml"
    path.write_text(yaml.safe_dump_all(files))
    out = io.StringIO()
    assert run_lint([str(path)], out) == 1
    assert out.getvalue().splitlines()[:-1] == [f"{path}: WorkflowExecution/e: {p}" for p in expected]

    # jobchain run: the same problems, refused before anything is created.
    cluster = FakeCluster()
    cluster.objects[(WORKFLOWS, "etl")] = files[0]
    with pytest.raises(CliError) as caught:
        run.run_workflow(cluster, "etl", params, None, None, io.StringIO())
    assert caught.value.message == (f"{join(expected)}; set params with -p NAME=VALUE, secret params with "
                                    "--secret-param NAME=SECRET:KEY")
    assert cluster.created == []


def test_an_execution_names_exactly_one_workflow() -> None:
    both = WorkflowExecutionSpec.model_validate({"workflowRef": {"name": "w"}, "workflow": {"nodes": [node("a")]}})
    neither = WorkflowExecutionSpec.model_validate({})
    assert [str(p) for p in validate_execution(both, None)] == [
        "spec: set either workflowRef or workflow (inline), not both"]
    assert [str(p) for p in validate_execution(neither, None)] == [
        "spec: set workflowRef.name (a Workflow in the same namespace) or an inline workflow "
        "(or resumeFrom, to retry an execution)"]


def cpu(fn: Any) -> tuple[Any, float]:
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


HOSTILE = spec(node("a", edge("b", "condition", nested_all(6))), node("b"))


def test_a_hostile_workflow_costs_the_operator_a_moment_not_a_minute() -> None:
    """The Workflow reconcile (Ready condition) took 77 CPU-s for a 184-character `when` before."""
    body = {"metadata": {"name": "w", "namespace": "n", "generation": 1},
            "spec": HOSTILE.model_dump(mode="json", by_alias=True, exclude_none=True)}
    status, spent = cpu(lambda: workflow_status(body, datetime(2026, 1, 1, tzinfo=UTC)))
    assert status.conditions[0].status == "False"
    assert "costs more than" in status.conditions[0].message
    assert spent < 1.0, f"{spent:.2f} CPU-s"


def test_an_execution_of_it_fails_at_once() -> None:
    p, spent = cpu(lambda: plan(execution(HOSTILE), {}, T0))
    assert (p.status.phase, p.status.reason) == ("Failed", "InvalidWorkflow")
    assert "spec.nodes[0].next[0].when: CEL costs more than" in p.status.message
    assert spent < 1.0, f"{spent:.2f} CPU-s"


def test_a_condition_too_costly_for_its_output_is_a_condition_error_decided_in_a_moment() -> None:
    quadratic = "output.items.all(a, output.items.all(b, a == b || true))"
    workflow = spec(node("a", edge("b", "condition", quadratic)), node("b"))
    ex = execution(workflow)
    ex = with_status(ex, plan(ex, {}, T0).status)
    items = ",".join(str(i) for i in range(1000))
    p, spent = cpu(lambda: plan(ex, observed(job("a", "Succeeded", f'{{"items": [{items}]}}', finished_at=T0)), T0))
    assert (p.status.phase, p.status.reason) == ("Failed", "ConditionError")
    assert "costs more than 20000 evaluation steps" in p.status.message
    assert spent < 1.0, f"{spent:.2f} CPU-s"
