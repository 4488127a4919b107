"""Typed params: values checked against the declared type at start, and typed in CEL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jobchain.api.models import ExecutionPhase
from jobchain.engine.execution.planner import plan
from jobchain.engine.spec.validation import validate_workflow
from tests.unit.builders import T0, edge, env_of, execution, lint_text, node, script_seen, simulate, spec

ROWS = {"name": "rows", "type": "integer", "default": "5"}


def _branch(param: dict[str, Any], when: str) -> Any:
    return spec(node("count", edge("big", "condition", when)), node("big"), params=[param])


def test_an_integer_param_compares_as_a_number_in_cel() -> None:
    run = simulate(_branch(ROWS, "params.rows > 10"), params={"rows": "12"})
    assert run.status.phase == ExecutionPhase.SUCCEEDED
    assert run.started_order() == ["count", "big"]  # as text, "12" > 10 would be a ConditionError


def test_a_default_is_typed_too() -> None:
    run = simulate(_branch(ROWS, "params.rows < 10"))
    assert run.started_order() == ["count", "big"]


def test_a_value_that_is_not_of_the_type_is_refused_at_start_naming_param_type_and_value() -> None:
    p = plan(execution(_branch(ROWS, "params.rows > 10"), params={"rows": "ten"}), {}, T0)
    assert p.status.phase == ExecutionPhase.FAILED
    assert p.status.reason == "InvalidParams"
    assert "spec.params.rows: param rows is type integer, and 'ten' is not an integer" in p.status.message
    assert 'e.g. "10"' in p.status.message


@pytest.mark.parametrize(("kind", "value", "seen"), [
    ("integer", " 7 ", "7"), ("number", "2.50", "2.5"), ("boolean", "true", "true"),
    ("array", '[ "a", "b" ]', '["a","b"]'), ("object", '{"k": 1}', '{"k":1}'),
])
def test_a_typed_value_renders_as_its_json_text(kind: str, value: str, seen: str) -> None:
    workflow = spec(node("a", script='echo "$(params.x)"'), params=[{"name": "x", "type": kind}])
    p = plan(execution(workflow, params={"x": value}), {}, T0)
    assert script_seen(p.create[0]) == f'echo "{seen}"'
    assert p.status.params == {"x": seen}


def test_a_string_param_stays_byte_for_byte() -> None:
    workflow = spec(node("a", script='echo "$(params.x)"'), params=[{"name": "x"}])
    p = plan(execution(workflow, params={"x": " 007 "}), {}, T0)
    assert script_seen(p.create[0]) == 'echo " 007 "'
    assert env_of(p.create[0])["JOBCHAIN_PARAMS"] == '{"x":" 007 "}'


def test_a_list_param_feeds_for_each() -> None:
    workflow = spec(node("fan", forEach="params.tenants"),
                    params=[{"name": "tenants", "type": "array", "default": '["a","b","c"]'}])
    run = simulate(workflow)
    assert run.started_order() == ["fan#0", "fan#1", "fan#2"]


def test_a_default_that_is_not_of_the_type_makes_the_workflow_invalid() -> None:
    problems = validate_workflow(spec(node("a"), params=[{"name": "on", "type": "boolean", "default": "yes"}]))
    assert [str(p) for p in problems] == [
        "spec.params[0].default: param on is type boolean, and 'yes' is not a boolean (it is not JSON); write "
        'its JSON text, e.g. "true" or "false"']


def test_an_execution_of_an_untyped_snapshot_sees_strings_as_before() -> None:
    run = simulate(_branch({"name": "rows", "default": "5"}, "params.rows == '5'"))
    assert run.started_order() == ["count", "big"]


def test_a_schedule_param_of_the_wrong_type_is_refused_by_lint(tmp_path: Path) -> None:
    schedule = {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowSchedule", "metadata": {"name": "nightly"},
                "spec": {"schedule": "@daily", "executionTemplate": {
                    "params": {"rows": "many"},
                    "workflow": {"params": [ROWS], "nodes": [node("a")]}}}}
    code, printed = lint_text(tmp_path, yaml.safe_dump(schedule))
    assert code == 1
    assert ("WorkflowSchedule/nightly: spec.executionTemplate.params.rows: param rows is type integer, and 'many' "
            "is not an integer") in printed
