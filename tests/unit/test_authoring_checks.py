"""Mistakes caught before anything runs: each refused by `jobchain lint` and by the Workflow's
Ready condition, with the field path, what is wrong and what to write instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jobchain.engine.execution.passes import workflow_status
from jobchain.engine.spec import pod_fields
from tests.unit.builders import T0, edge, lint_text, node

PARAMS = [{"name": "rows", "type": "integer", "default": "5"}, {"name": "env", "default": "prod"},
          {"name": "token", "secret": True}]


def _workflow(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "jobchain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "etl"},
            "spec": {"params": PARAMS, "nodes": list(nodes)}}


def _when(expression: str) -> dict[str, Any]:
    return _workflow(node("count", edge("load", "condition", expression)), node("load"))


# (case id: a sentence, the workflow, the field path, what the message must say)
CASES = [
    ("a when that gives a number, not a bool", _when("output.rows + 1"), "spec.nodes[0].next[0].when",
     ["`when` gives a number, not a bool; compare it", "    output.rows + 1\n    ^^^^^^^^^^^^^^^"]),
    ("a forEach over an integer param", _workflow(node("fan", forEach="params.rows")), "spec.nodes[0].forEach",
     ["forEach gives an int, not a list; give a list: an array param (type: array)", "    ^^^^^^^^^^^"]),
    ("a string param compared with a number", _when("params.env > 10"), "spec.nodes[0].next[0].when",
     ["`>` compares a string with an int", "declare param env with `type: integer`", "int(params.env)"]),
    ("an integer param compared with a string", _when("params.rows == '10'"), "spec.nodes[0].next[0].when",
     ["`==` compares an int with a string", "param rows is a number: compare it with a number"]),
    ("a node name with a hyphen read as a subtraction",
     _workflow(node("list-tenants", edge("load", "condition", "nodes.list-tenants.output.n > 0")), node("load")),
     "spec.nodes[0].next[0].when",
     ["`nodes.list-tenants` reads as a subtraction", "write a node name with a hyphen as nodes['list-tenants']"]),
    ("a misspelt param in CEL", _when("params.row > 1"), "spec.nodes[0].next[0].when",
     ["params has no param 'row' (did you mean 'rows'?)", "           ^^^"]),
    ("a misspelt node in CEL", _when("nodes.cuont.phase == 'Succeeded'"), "spec.nodes[0].next[0].when",
     ["nodes has no node 'cuont' (did you mean 'count'?)"]),
    ("a misspelt variable in CEL", _when("outptu.rows > 1"), "spec.nodes[0].next[0].when",
     ["unknown name 'outptu' (did you mean 'output'?)"]),
    ("&& over a number", _when("params.rows && output.ok"), "spec.nodes[0].next[0].when",
     ["`&&` needs a bool, and this is an int"]),
    ("a default that is not of its param's type",
     {**_workflow(node("a")), "spec": {"params": [{"name": "rows", "type": "integer", "default": "many"}],
                                       "nodes": [node("a")]}},
     "spec.params[0].default", ["param rows is type integer, and 'many' is not an integer", 'e.g. "10"']),
    ("a secret param with a type",
     {**_workflow(node("a")), "spec": {"params": [{"name": "key", "secret": True, "type": "integer"}],
                                       "nodes": [node("a")]}},
     "spec.params[0].type", ["a secret param is a string", "remove `type`"]),
    ("an edge to a misspelt node", _workflow(node("extract", "laod"), node("load")), "spec.nodes[0].next[0].node",
     ["edge to unknown node 'laod' (did you mean 'load'?)"]),
    ("a reference to a misspelt param", _workflow(node("a", script="echo $(params.envv)")), "spec.nodes[0].script",
     ["$(params.envv) names an unknown param (did you mean 'env'?)"]),
    ("nodeSelektor in a pod template",
     _workflow(node("a", podTemplate={"spec": {"nodeSelektor": {"disk": "ssd"}}})),
     "spec.nodes[0].podTemplate.spec.nodeSelektor",
     ["unknown field 'nodeSelektor' (did you mean 'nodeSelector'?)", "the API server would drop it"]),
    ("request for requests in resources", _workflow(node("a", resources={"request": {"cpu": "1"}})),
     "spec.nodes[0].resources.request", ["unknown field 'request' (did you mean 'requests'?)"]),
    ("a misspelt key of env valueFrom",
     _workflow(node("a", env=[{"name": "PW", "valueFrom": {"secretKeyref": {"name": "db", "key": "pw"}}}])),
     "spec.nodes[0].env[0].valueFrom.secretKeyref", ["unknown field 'secretKeyref' (did you mean 'secretKeyRef'?)"]),
    ("a map where a pod template wants a list",
     _workflow(node("a", podTemplate={"spec": {"tolerations": {"key": "gpu"}}})),
     "spec.nodes[0].podTemplate.spec.tolerations", ["must be a list, not a map"]),
]


@pytest.mark.parametrize(("workflow", "path", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_by_lint_and_by_the_ready_condition(tmp_path: Path, workflow: dict[str, Any], path: str,
                                                   says: list[str]) -> None:
    code, printed = lint_text(tmp_path, yaml.safe_dump(workflow, sort_keys=False))
    assert code != 0
    assert f"Workflow/etl: {path}: " in printed
    ready = workflow_status({"metadata": {"generation": 1}, "spec": workflow["spec"]}, T0).conditions[0]
    assert (ready.status, ready.reason) == ("False", "InvalidWorkflow")
    assert f"{path}: " in ready.message
    for text in says:
        assert text in printed
        assert text in ready.message


@pytest.mark.parametrize("expression", [
    "params.rows > 10 && output.kind == 'full'",
    "has(output.key) ? output.key.size() > 0 : params.env == 'prod'",
    "nodes['count'].output.n + 1 > params.rows || node.exitCode == 0",
    "output.items.exists(i, i.rows > params.rows) && int(params.env) > 3",
    "output.total / 2 > 1.5 && params.env + '-x' == 'prod-x' && 'a' in output.tags",
    "node.phase == 'Succeeded' && size(output.list) == params.rows",
    "output.note == 'see nodes.list-tenants'",
])
def test_what_may_work_is_not_refused(tmp_path: Path, expression: str) -> None:
    code, printed = lint_text(tmp_path, yaml.safe_dump(_when(expression)))
    assert (code, printed.splitlines()[-1]) == (0, "ok: 1 object(s) in 1 file(s)")


def test_a_valid_pod_template_resources_and_value_from_pass(tmp_path: Path) -> None:
    workflow = _workflow(node(
        "a", resources={"requests": {"cpu": 1, "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        podTemplate={"metadata": {"labels": {"team": "a"}},
                     "spec": {"nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "gpu", "operator": "Exists"}],
                              "securityContext": {"runAsUser": 1000}}}))
    code, printed = lint_text(tmp_path, yaml.safe_dump(workflow))
    assert code == 0, printed


def test_the_shipped_pod_schema_is_of_the_kubernetes_version_the_project_pins() -> None:
    pinned = next(line.split("=", 1)[1] for line in Path("hack/versions.env").read_text().splitlines()
                  if line.startswith("KUBE_VERSION="))
    assert pinned.lstrip("v").startswith(pod_fields.kubernetes_version() + "."), (
        "regenerate operator/jobchain/engine/spec/pod_schema.json with hack/pod-schema.py")
