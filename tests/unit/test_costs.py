"""Cost limits on user input (defect 14): no workflow, however written, makes validation or a
condition slow for the operator that serves every namespace.

Each test measures CPU time (not wall time: the machine is shared) and asserts both the
answer a user sees and that it came fast. The figures before the fix are in the docstrings.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import celpy
import pytest
from pydantic import ValidationError

from jobchain.api import limits
from jobchain.api.models import Node, NodeDefaults, Param, WorkflowSpec
from jobchain.engine.spec import cel, refs
from jobchain.engine.spec.validation import validate_workflow
from tests.support import nested_all

VARIABLES: dict[str, Any] = {"output": {}, "input": {}, "params": {}, "node": {}, "nodes": {}}


@functools.cache
def compile_unit() -> float:
    """CPU seconds this machine takes to compile 300 distinct conditions (lark parsing, as validation
    does): the unit of the bounds below that scale with the machine. Absolute CPU limits passed on one
    machine and failed on a slower one of the same kind (the pre-wave code too); a bound in units
    still fails when validation itself gets several times dearer. Best of three, after a warm-up."""
    def once() -> float:
        env = celpy.Environment()
        start = time.process_time()
        for i in range(300):
            env.compile(f"output.rows > {i} && input.name == 'x{i}' || params.p{i} != 'y'")
        return time.process_time() - start
    once()
    return min(once() for _ in range(3))


def cpu_seconds(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.process_time()
    try:
        result: Any = fn()
    except Exception as exc:
        result = exc
    return result, time.process_time() - start


def test_a_short_nested_when_is_refused_at_once() -> None:
    """Six nested .all() over ten items: 190 characters, 10^6 evaluations (about 60 CPU-s before)."""
    expression = nested_all(6)
    assert len(expression) < 200
    result, spent = cpu_seconds(lambda: cel.check(expression))
    assert isinstance(result, cel.CelError)
    assert "costs more than" in str(result) and "simplify" in str(result)
    assert spent < 1.0, f"{spent:.2f} CPU-s"


def test_validation_names_the_costly_when() -> None:
    spec = WorkflowSpec.model_validate({"nodes": [
        {"name": "a", "image": "busybox", "next": [{"node": "b", "type": "condition", "when": nested_all(6)}]},
        {"name": "b", "image": "busybox"},
    ]})
    problems, spent = cpu_seconds(lambda: validate_workflow(spec))
    assert [p.path for p in problems] == ["spec.nodes[0].next[0].when"]
    assert "costs more than" in problems[0].message
    assert spent < 1.0, f"{spent:.2f} CPU-s"


def test_a_costly_when_at_run_time_is_a_condition_error_not_a_stall() -> None:
    """Cheap on the empty trial inputs, quadratic on a real output of 1,000 items."""
    expression = "output.items.all(a, output.items.all(b, a == b || true))"
    cel.check(expression)  # passes validation: its cost depends on the output
    variables = {**VARIABLES, "output": {"items": list(range(1000))}}
    result, spent = cpu_seconds(lambda: cel.evaluate_bool(expression, variables))
    assert isinstance(result, cel.CelError)
    assert f"costs more than {limits.CEL_EVAL_STEPS} evaluation steps" in str(result)
    assert spent < 1.0, f"{spent:.2f} CPU-s"


def test_the_budget_leaves_ordinary_conditions_alone() -> None:
    """A scan of a 1,000-item output fits one evaluation's budget."""
    variables = {**VARIABLES, "output": {"rows": 5, "items": [{"status": "ok"}] * 1000}}
    assert cel.evaluate_bool("output.items.exists(i, i.status == 'failed') || output.rows < 10", variables)
    assert cel.evaluate_bool("!output.items.exists(i, i.status == 'failed')", variables)


def test_the_same_costly_when_gets_the_same_answer_every_time() -> None:
    """A budget in steps, not seconds: a replayed pass decides the same, however busy the operator is."""
    expression = "output.items.all(a, output.items.all(b, true))"
    for size, expected in ((30, True), (1000, None)):
        variables = {**VARIABLES, "output": {"items": list(range(size))}}
        answers = set()
        for _ in range(3):
            try:
                answers.add(cel.evaluate_bool(expression, variables))
            except cel.CelError:
                answers.add(None)
        assert answers == {expected}


def test_reference_scanning_is_linear() -> None:
    """160 KB of unclosed `$(params.a`: 14 CPU-s before (each scan ran on to the end of the text)."""
    text = "$(params.a" * 16_000
    found, spent = cpu_seconds(lambda: list(refs.find(text)))
    assert found == []
    assert spent < 0.5, f"{spent:.2f} CPU-s"
    assert [raw for raw, _ in refs.find("$(params.a$(params.b) $(input.x) $(HOME)")] == ["params.b", "input.x"]


def test_the_schema_caps_the_number_of_params() -> None:
    with pytest.raises(ValidationError) as caught:
        WorkflowSpec.model_validate({"params": [{"name": f"p{i}"} for i in range(limits.MAX_PARAMS + 1)],
                                     "nodes": [{"name": "a", "image": "busybox"}]})
    assert "at most 100 items" in str(caught.value)


def test_duplicate_checks_are_linear() -> None:
    """40,000 params (past the schema, as a stale client might send): 75 CPU-s before (list.count per param)."""
    spec = WorkflowSpec.model_construct(
        params=[Param(name=f"p{i % 20_000}") for i in range(40_000)],
        defaults=NodeDefaults(image="busybox"),
        parallelism=1,
        outputLimitBytes=None,
        nodes=[Node(name=f"n{i % 250}") for i in range(500)],
    )
    problems, spent = cpu_seconds(lambda: validate_workflow(spec))
    assert spent < 1.0, f"{spent:.2f} CPU-s"
    assert problems[0].message == "duplicate node name 'n0' (also nodes[0])"
    assert len(problems) == 51  # 50 shown, and one line saying how many more
    assert problems[-1].message.startswith("and ") and "more problem(s)" in problems[-1].message


def largest_workflow() -> WorkflowSpec:
    """The most work validation can be given within the schema's limits (and larger than etcd holds)."""
    nodes = []
    for i in range(limits.MAX_NODES):
        edges: list[dict[str, Any]] = [
            {"node": f"n{j}", "type": "condition", "when": f"output.rows > {j} && has(output.k{i})"}
            if j < i + 3 else {"node": f"n{j}"}
            for j in range(i + 1, min(limits.MAX_NODES, i + 1 + limits.MAX_EDGES))
        ]
        script = " ".join(f"$(params.p{k}) $(nodes.n{i - 1}.output.k)" for k in range(10)) if i else "true"
        nodes.append({"name": f"n{i}", "script": script, "next": edges,
                      "env": [{"name": f"E{k}", "value": f"$(params.p{k}) $(input.k)" if i else "x"}
                              for k in range(20)]})
    return WorkflowSpec.model_validate({
        "params": [{"name": f"p{k}", "default": "x"} for k in range(limits.MAX_PARAMS)],
        "defaults": {"image": "busybox"},
        "nodes": nodes,
    })


def test_the_largest_workflow_validates_within_a_second() -> None:
    """What the Workflow's Ready condition and every execution start do: never seconds of the operator's time."""
    spec = largest_workflow()
    problems, spent = cpu_seconds(lambda: validate_workflow(spec))
    assert problems == []
    # about 14 units (1.7 to 2.3 CPU-s on a 2-core machine of 2026-12); the pre-wave code took as many
    assert spent < 30 * compile_unit(), f"{spent:.2f} CPU-s, {spent / compile_unit():.1f} units"


def test_many_conditions_are_refused_before_they_are_compiled() -> None:
    when = "output.rows > 10 && " * 40 + "true"  # 841 characters, under the per-`when` limit
    spec = WorkflowSpec.model_validate({"defaults": {"image": "busybox"}, "nodes": [
        {"name": f"n{i}", "next": [{"node": f"n{i + 1}", "type": "condition", "when": f"{when} || {i} > 0"}]}
        for i in range(99)
    ] + [{"name": "n99"}]})
    problems, spent = cpu_seconds(lambda: validate_workflow(spec))
    assert [p.path for p in problems] == ["spec.nodes"]
    assert f"more than {limits.MAX_WHEN_TOTAL}" in problems[0].message
    assert spent < 0.5, f"{spent:.2f} CPU-s"


def test_the_checks_of_one_workflow_share_one_budget() -> None:
    """Each `when` under its own budget, all of them together over the workflow's: said once, then skipped."""
    costly = "[" + ",".join(map(str, range(100))) + "].all(x, [0,1,2,3].all(y, true))"  # ~4,500 steps
    nodes: list[dict[str, Any]] = [
        {"name": f"n{i}", "next": [{"node": f"n{i + 1}", "type": "condition", "when": f"{costly} || {i} > 0"}]}
        for i in range(40)
    ]
    spec = WorkflowSpec.model_validate({"defaults": {"image": "busybox"}, "nodes": [*nodes, {"name": "n40"}]})
    problems, spent = cpu_seconds(lambda: validate_workflow(spec))
    assert len(problems) == 1 and "not checked" in problems[0].message
    # about 10 units (1.3 to 1.5 CPU-s on a 2-core machine of 2026-12): the budget stops the checks
    assert spent < 25 * compile_unit(), f"{spent:.2f} CPU-s, {spent / compile_unit():.1f} units"


def test_the_when_length_is_capped_by_the_schema() -> None:
    with pytest.raises(ValidationError) as caught:
        WorkflowSpec.model_validate({"nodes": [
            {"name": "a", "image": "x", "next": [{"node": "b", "type": "condition", "when": "true" + " " * 1024}]},
            {"name": "b", "image": "x"}]})
    assert "at most 1024 characters" in str(caught.value)
