"""`outputSchema`: a node's declared output shape types the CEL that reads it (`output` on its edges,
`nodes.NAME.output` elsewhere), so a mistake about an output is refused before anything runs; a
schema outside the subset is refused with its path instead of being believed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jobchain.engine.execution.passes import workflow_status
from tests.unit.builders import T0, edge, lint_text, node

SCHEMA = {"type": "object", "properties": {"rows": {"type": "integer"}, "kind": {"type": "string"},
                                           "tables": {"type": "array", "items": {"type": "string"}}},
          "required": ["rows"]}
CLOSED = {**SCHEMA, "additionalProperties": False}


def _workflow(when: str, schema: Any = SCHEMA, downstream_when: str | None = None) -> dict[str, Any]:
    nodes = [node("count", edge("load", "condition", when), outputSchema=schema), node("load")]
    if downstream_when is not None:
        nodes[1] = node("load", edge("report", "condition", downstream_when))
        nodes.append(node("report"))
    return {"apiVersion": "jobchain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "etl"},
            "spec": {"nodes": nodes}}


def refused(tmp_path: Path, workflow: dict[str, Any], path: str, *says: str) -> None:
    code, printed = lint_text(tmp_path, yaml.safe_dump(workflow, sort_keys=False))
    assert code != 0 and f"Workflow/etl: {path}: " in printed, printed
    ready = workflow_status({"metadata": {"generation": 1}, "spec": workflow["spec"]}, T0).conditions[0]
    assert (ready.status, ready.reason) == ("False", "InvalidWorkflow")
    for text in says:
        assert text in printed and text in ready.message, printed


@pytest.mark.parametrize(("workflow", "path", "says"), [
    (_workflow("output.rows > 'ten'"), "spec.nodes[0].next[0].when", ["`>` compares an int with a string"]),
    (_workflow("output.kind"), "spec.nodes[0].next[0].when", ["`when` gives a string, not a bool"]),
    (_workflow("output.rows > 0 && output.kind + 1 == 2"), "spec.nodes[0].next[0].when",
     ["`+` of a string and an int"]),
    (_workflow("true", downstream_when="nodes.count.output.rows == 'many'"), "spec.nodes[1].next[0].when",
     ["`==` compares an int with a string"]),
    (_workflow("output.rosw > 1", CLOSED), "spec.nodes[0].next[0].when",
     ["has no key 'rosw' (did you mean 'rows'?)"]),
], ids=["an int key compared with a string", "a string key as the when",
        "a string key in arithmetic", "another node's output through nodes.NAME",
        "a key a closed schema does not declare"])
def test_a_mistake_about_a_declared_output_is_refused(tmp_path: Path, workflow: dict[str, Any], path: str,
                                                      says: list[str]) -> None:
    refused(tmp_path, workflow, path, *says)


@pytest.mark.parametrize("when", [
    "output.rows > 10 && output.kind == 'full'",
    "output.tables.exists(t, t == 'users') && size(output.tables) > 1",
    "output.extra == 'undeclared keys may be there: the schema is open'",
    "has(output.kind) ? output.kind.startsWith('f') : output.rows == 0",
])
def test_what_fits_the_schema_passes(tmp_path: Path, when: str) -> None:
    code, printed = lint_text(tmp_path, yaml.safe_dump(_workflow(when)))
    assert (code, printed.splitlines()[-1]) == (0, "ok: 1 object(s) in 1 file(s)")


def test_without_a_schema_the_output_stays_dynamic(tmp_path: Path) -> None:
    code, printed = lint_text(tmp_path, yaml.safe_dump(_workflow("output.rows > 'ten'", schema=None)))
    assert code == 0, printed


@pytest.mark.parametrize(("schema", "path", "says"), [
    ({"type": "object", "properties": {"rows": {"type": "integer", "minimum": 1}}},
     "spec.nodes[0].outputSchema.properties.rows.minimum", "'minimum' is not part of the schema subset"),
    ({"type": "int"}, "spec.nodes[0].outputSchema.type", "unknown type 'int'; use one of: string, integer"),
    ({"type": "object", "properties": {"a": {}}, "required": ["b"]}, "spec.nodes[0].outputSchema.required",
     "'b' is required but not in properties"),
    ({"type": "string", "items": {"type": "string"}}, "spec.nodes[0].outputSchema.items", "only an array has items"),
    ("object", "spec.nodes[0].outputSchema", "Input should be a valid dictionary"),
], ids=["a keyword outside the subset", "an unknown type", "required not declared", "items on a string",
        "not an object"])
def test_a_schema_outside_the_subset_is_refused_with_its_path(tmp_path: Path, schema: Any, path: str,
                                                              says: str) -> None:
    refused(tmp_path, _workflow("true", schema), path, says)
