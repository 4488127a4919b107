"""Workflow validation: every rule, with the path and the words a user is shown."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import WorkflowSpec
from jobchain.engine.spec.graph import Graph
from jobchain.engine.spec.validation import validate_workflow

from .builders import edge, node, spec

VALID: list[tuple[str, WorkflowSpec]] = [
    ("one node", spec(node("a"))),
    ("image from defaults", spec(node("a", image=None), defaults={"image": "alpine"})),
    ("chain", spec(node("a", "b"), node("b", "c"), node("c"))),
    ("diamond with join any", spec(
        node("a", "b", "c"), node("b", "d"), node("c", "d"), node("d", join="any"))),
    ("every edge kind", spec(
        node("a", edge("b", "success"), edge("c", "failure"), edge("d", "always"),
             edge("e", "condition", "has(output.ok) && output.ok")),
        node("b"), node("c"), node("d"), node("e"))),
    ("two independent start nodes", spec(node("a"), node("b"))),
    ("references in every field", spec(
        node("a", "b", script="echo $(params.p) $(execution.name) $(execution.namespace)"),
        node("b", command=["sh", "-c", "echo $(input) $(input.k.0)"],
             args=["$(nodes.a.output)", "$(nodes.a.output.key)"],
             env=[{"name": "X", "value": "$(params.p)"}]),
        params=[{"name": "p", "default": "1"}])),
    ("output of a node two hops upstream", spec(
        node("a", "b"), node("b", "c"), node("c", script="echo $(nodes.a.output)"))),
    ("Kubernetes' own $(VAR) expansion is left alone", spec(node("a", script="echo $(HOME) $(MY_VAR)"))),
    ("declaration order need not be topological", spec(node("c"), node("b", "c"), node("a", "b"))),
]


@pytest.mark.parametrize("workflow", [w for _, w in VALID], ids=[i for i, _ in VALID])
def test_valid_workflows_have_no_problems(workflow: WorkflowSpec) -> None:
    assert validate_workflow(workflow) == []


INVALID: list[tuple[str, WorkflowSpec, str, str]] = [
    # (id, spec, path of the problem, phrase of its message)
    ("cycle", spec(node("s", "a"), node("a", "b"), node("b", "a")),
     "spec.nodes", "cycle: a -> b -> a"),
    ("self loop", spec(node("s", "a"), node("a", "a")), "spec.nodes", "cycle: a -> a"),
    ("no start node (every node has an incoming edge)", spec(node("a", "b"), node("b", "a")),
     "spec.nodes", "cycle"),
    ("edge to an unknown node", spec(node("a", "nope"), node("b")),
     "spec.nodes[0].next[0].node", "edge to unknown node 'nope' (nodes: a, b)"),
    ("duplicate node name", spec(node("a"), node("a")),
     "spec.nodes[1].name", "duplicate node name 'a' (also nodes[0])"),
    ("second edge between the same nodes", spec(node("a", "b", edge("b", "failure")), node("b")),
     "spec.nodes[0].next[1].node", "second edge from 'a' to 'b'"),
    ("condition edge without when", spec(node("a", edge("b", "condition")), node("b")),
     "spec.nodes[0].next[0].when", "type: condition needs `when`"),
    ("condition edge with an empty when", spec(node("a", edge("b", "condition", "")), node("b")),
     "spec.nodes[0].next[0].when", "type: condition needs `when`"),
    ("when on a success edge", spec(node("a", edge("b", "success", "true")), node("b")),
     "spec.nodes[0].next[0].when", "`when` only goes with type: condition (this edge is type: success)"),
    ("when on an always edge", spec(node("a", edge("b", "always", "true")), node("b")),
     "spec.nodes[0].next[0].when", "this edge is type: always"),
    ("when that does not compile", spec(node("a", edge("b", "condition", "output.ok ==")), node("b")),
     "spec.nodes[0].next[0].when", "does not compile"),
    ("unknown param", spec(node("a", script="echo $(params.nope)"), params=[{"name": "p", "default": ""}]),
     "spec.nodes[0].script", "$(params.nope) names an unknown param (declared: p)"),
    ("unknown param, none declared", spec(node("a", command=["echo", "$(params.x)"])),
     "spec.nodes[0].command[1]", "(declared: none)"),
    ("unknown node in a reference", spec(node("a", "b"), node("b", args=["$(nodes.zz.output)"])),
     "spec.nodes[1].args[0]", "$(nodes.zz.output) names an unknown node"),
    ("reference to a node that does not run before", spec(
        node("a", "b", "c"), node("b", env=[{"name": "X", "value": "$(nodes.c.output)"}]), node("c")),
     "spec.nodes[1].env[0].value", "node 'c' does not run before 'b'"),
    ("reference to a downstream node", spec(node("a", "b", script="$(nodes.b.output)"), node("b")),
     "spec.nodes[0].script", "does not run before"),
    ("$(input) in a start node", spec(node("a", script="echo $(input.x)")),
     "spec.nodes[0].script", "'a' is a start node and has no input"),
    ("malformed reference", spec(node("a", "b"), node("b", script="echo $(nodes.a)")),
     "spec.nodes[1].script", "$(nodes.a) is not a valid reference"),
    ("$(params) without a name", spec(node("a", script="echo $(params)")),
     "spec.nodes[0].script", "is not a valid reference"),
    ("no image", spec(node("a", image=None)),
     "spec.nodes[0].image", "no image: set it on the node or in spec.defaults.image"),
    ("script and command", spec(node("a", script="echo", command=["echo"])),
     "spec.nodes[0]", "either script or command/args, not both"),
    ("duplicate param", spec(node("a"), params=[{"name": "p"}, {"name": "p"}]),
     "spec.params", "duplicate param name 'p'"),
]


@pytest.mark.parametrize(("workflow", "path", "phrase"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_each_invalid_workflow_names_the_field_and_the_fix(workflow: WorkflowSpec, path: str, phrase: str) -> None:
    problems = validate_workflow(workflow)
    matching = [p for p in problems if p.path == path]
    assert matching, f"no problem at {path}; got {[str(p) for p in problems]}"
    assert any(phrase in p.message for p in matching), [str(p) for p in problems]
    assert any(str(p).startswith(f"{path}: ") for p in matching)


def test_every_problem_is_reported_at_once() -> None:
    workflow = spec(node("a", "nope", edge("b", "condition")), node("b", image=None), node("b"))
    paths = {p.path for p in validate_workflow(workflow)}
    assert {"spec.nodes[0].next[0].node", "spec.nodes[0].next[1].when", "spec.nodes[1].image",
            "spec.nodes[2].name"} <= paths


def test_prefix_is_used_for_paths() -> None:
    problems = validate_workflow(spec(node("a", "nope")), prefix="spec.workflow")
    assert [p.path for p in problems] == ["spec.workflow.nodes[0].next[0].node"]


MODEL_ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    ("`on:` instead of `type:`", {"nodes": [{"name": "a", "image": "x", "next": [{"node": "b", "on": "success"}]},
                                            {"name": "b", "image": "x"}]},
     "spec.nodes[0].next[0]", "`type:`"),
    ("YAML 1.1 reads a bare on as true", {"nodes": [{"name": "a", "image": "x", "next": [{"node": "b", True: "x"}]},
                                                    {"name": "b", "image": "x"}]},
     "spec.nodes[0].next[0]", "boolean true"),
    ("unknown field", {"nodes": [{"name": "a", "image": "x", "scirpt": "echo"}]},
     "spec.nodes[0].scirpt", "unknown field (check its spelling"),
    ("node name not a DNS label", {"nodes": [{"name": "Build_Step", "image": "x"}]},
     "spec.nodes[0].name", "pattern"),
    ("unknown edge type", {"nodes": [{"name": "a", "image": "x", "next": [{"node": "b", "type": "sucess"}]},
                                     {"name": "b", "image": "x"}]},
     "spec.nodes[0].next[0].type", "success"),
    ("no nodes", {"nodes": []}, "spec.nodes", "at least 1"),
    ("parallelism 0", {"nodes": [{"name": "a", "image": "x"}], "parallelism": 0},
     "spec.parallelism", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("body", "path", "phrase"), [c[1:] for c in MODEL_ERRORS], ids=[c[0] for c in MODEL_ERRORS])
def test_spec_the_models_refuse_says_where_and_what(body: dict[str, Any], path: str, phrase: str) -> None:
    with pytest.raises(ValidationError) as info:
        WorkflowSpec.model_validate(body)
    lines = describe_validation_error(info.value, "spec")
    assert any(line.startswith(f"{path}: ") and phrase in line for line in lines), lines


GRAPHS: list[tuple[str, WorkflowSpec, list[str], dict[str, set[str]]]] = [
    ("chain", spec(node("a", "b"), node("b", "c"), node("c")), ["a"], {"c": {"a", "b"}, "a": set()}),
    ("diamond", spec(node("a", "b", "c"), node("b", "d"), node("c", "d"), node("d")),
     ["a"], {"d": {"a", "b", "c"}, "b": {"a"}}),
    ("two starts, declaration order", spec(node("z", "m"), node("a", "m"), node("m")),
     ["z", "a"], {"m": {"z", "a"}}),
]


@pytest.mark.parametrize(("workflow", "starts", "upstream"), [g[1:] for g in GRAPHS], ids=[g[0] for g in GRAPHS])
def test_the_graph_finds_start_nodes_and_each_nodes_upstream(
        workflow: WorkflowSpec, starts: list[str], upstream: dict[str, set[str]]) -> None:
    graph = Graph.of(workflow)
    assert graph.starts() == starts
    for name, expected in upstream.items():
        assert graph.upstream(name) == expected
